"""MetadataStore: records, lookup by name / digest / ID / prefix, tag moves, untagging."""

from __future__ import annotations

import json
import threading

import pytest

from podling.images.errors import ImageError, InvalidImageName
from podling.images.interface import ImageConfig
from podling.images.metadata import (AmbiguousImageReference, CorruptMetadata, ImageRecord,
                                     LayerRecord, MetadataStore, manifest_json,
                                     parse_image_config, record_from)


def digest(c: str) -> str:
    return "sha256:" + c * 64


def record(image_id: str, *names: str, repo: tuple[str, ...] = (),
           manifest: str = digest("m")) -> ImageRecord:
    return ImageRecord(id=image_id, manifest_digest=manifest,
                       manifest_media_type="application/vnd.oci.image.manifest.v1+json",
                       layers=(LayerRecord(digest("1"), digest("2"), 100),),
                       config_size=10, names=names, repo_digests=repo)


NGINX = "docker.io/library/nginx:latest"
ID_A = "sha256:abc1" + "0" * 60
ID_B = "sha256:abc2" + "0" * 60


@pytest.fixture
def store(tmp_path) -> MetadataStore:
    s = MetadataStore(str(tmp_path))
    s.add(record(ID_A, NGINX, repo=(f"docker.io/library/nginx@{digest('d')}",),
                 manifest=digest("e")))
    s.add(record(ID_B, "quay.io/team/app:v1"))
    return s


@pytest.mark.parametrize("ref, want", [
    ("nginx", ID_A),
    ("nginx:latest", ID_A),
    ("docker.io/library/nginx", ID_A),
    ("index.docker.io/library/nginx:latest", ID_A),
    (f"nginx@{digest('d')}", ID_A),  # the repo digest
    (f"nginx:latest@{digest('d')}", ID_A),
    (f"nginx@{digest('e')}", ID_A),  # the manifest digest, same repository
    (f"busybox@{digest('e')}", None),  # ... another repository
    (ID_A, ID_A),
    (ID_A[len("sha256:"):], ID_A),
    ("abc10", ID_A),
    ("sha256:abc2", ID_B),
    ("quay.io/team/app:v1", ID_B),
    ("quay.io/team/app:v2", None),
    ("nginx:1.25", None),
    ("ab", None),  # too short for a prefix, and no such name
])
def test_lookup(store: MetadataStore, ref: str, want: str | None) -> None:
    found = store.get(ref)
    assert (found.id if found else None) == want


def test_ambiguous_prefix_and_invalid_reference(store: MetadataStore) -> None:
    with pytest.raises(AmbiguousImageReference, match="matches 2 images"):
        store.get("abc")  # a valid name too, but not an image: then a prefix of both
    with pytest.raises(AmbiguousImageReference):
        store.get("sha256:abc")
    with pytest.raises(InvalidImageName):
        store.get("Not A Reference")


def test_add_merges_names_and_moves_tags(store: MetadataStore) -> None:
    store.add(record(ID_A, "docker.io/library/nginx:1.25"))
    a = store.get_by_id(ID_A)
    assert a is not None and a.names == (NGINX, "docker.io/library/nginx:1.25")
    assert a.repo_digests  # kept from the first add
    new_id = "sha256:" + "c" * 64
    store.add(record(new_id, NGINX))
    assert store.get("nginx").id == new_id
    a = store.get_by_id(ID_A)
    assert a is not None and a.names == ("docker.io/library/nginx:1.25",)
    store.add(record(new_id, "docker.io/library/nginx:1.25"))
    dangling = store.get_by_id(ID_A)
    assert dangling is not None and dangling.names == ()  # kept, untagged
    assert [r.id for r in store.list()][-1] == ID_A  # untagged images list last


def test_remove_name(store: MetadataStore) -> None:
    store.add(record(ID_A, "docker.io/library/nginx:1.25"))
    before, removed = store.remove_name("nginx:1.25")
    assert before is not None and not removed
    assert store.get_by_id(ID_A).names == (NGINX,)
    before, removed = store.remove_name("nginx")
    assert removed and store.get_by_id(ID_A) is None
    assert store.remove_name("nginx") == (None, False)
    _, removed = store.remove_name("sha256:abc2")  # by ID prefix: the whole image
    assert removed and store.list() == []


def test_remove_by_digest_removes_the_image(store: MetadataStore) -> None:
    _, removed = store.remove_name(f"nginx@{digest('d')}")
    assert removed and store.get("nginx") is None
    assert store.delete(ID_B) is not None
    assert store.delete(ID_B) is None


def test_persistence_and_atomic_file(tmp_path, store: MetadataStore) -> None:
    again = MetadataStore(str(tmp_path))
    assert [r.to_json() for r in again.list()] == [r.to_json() for r in store.list()]
    doc = json.loads((tmp_path / "images.json").read_text())
    assert doc["version"] == 1 and set(doc["images"]) == {ID_A, ID_B}
    assert (tmp_path / "images.json").stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_corrupt_file_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "images.json").write_text("{nope")
    with pytest.raises(CorruptMetadata, match="images.json"):
        MetadataStore(str(tmp_path)).list()
    (tmp_path / "images.json").write_text('{"version": 99}')
    with pytest.raises(CorruptMetadata, match="version"):
        MetadataStore(str(tmp_path)).list()


def test_concurrent_adds_lose_nothing(tmp_path) -> None:
    def worker(i: int) -> None:
        s = MetadataStore(str(tmp_path))
        for j in range(10):
            s.add(record("sha256:" + f"{i:02x}{j:02x}".ljust(64, "0"), f"r/x{i}:t{j}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(MetadataStore(str(tmp_path)).list()) == 40


def test_record_helpers() -> None:
    config = json.dumps({"architecture": "arm64", "os": "linux",
                         "config": {"Entrypoint": ["/e"], "Cmd": None, "Env": ["A=1"],
                                    "WorkingDir": "/w", "User": "1:2",
                                    "StopSignal": "SIGQUIT",
                                    "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                                    "Volumes": {"/data": {}}, "Labels": {"k": "v"}},
                         "rootfs": {"type": "layers", "diff_ids": [digest("2")]}}).encode()
    manifest = {"config": {"digest": digest("c"), "size": len(config)},
                "layers": [{"digest": digest("1"), "size": 5,
                            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]}
    rec = record_from("x", manifest, digest("m"), "mt", config)
    assert rec.id == digest("c") and rec.diff_ids == (digest("2"),)
    assert rec.architecture == "arm64" and rec.size == 5 + len(config)
    assert rec.blobs() == {digest("c"), digest("1"), digest("m")}
    assert parse_image_config(json.loads(config)) == ImageConfig(
        entrypoint=["/e"], cmd=[], env=["A=1"], working_dir="/w", user="1:2",
        stop_signal="SIGQUIT", exposed_ports=["443/tcp", "80/tcp"], volumes=["/data"],
        labels={"k": "v"})
    with pytest.raises(ImageError, match="diff IDs"):
        record_from("x", {**manifest, "layers": []}, digest("m"), "mt", config)
    with pytest.raises(ImageError, match="rootfs"):
        record_from("x", manifest, digest("m"), "mt", b"{}")
    with pytest.raises(ImageError, match="not JSON"):
        manifest_json(b"<html>", "x")
    with pytest.raises(ImageError, match="no config or layers"):
        manifest_json(b"{}", "x")
