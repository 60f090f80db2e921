"""read_archive: docker save archives, OCI archives and layouts; tags; malformed input."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from podling.images.archive import ArchiveImage, read_archive
from podling.images.errors import DigestMismatch, InvalidArchive


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_tar(path, files: dict[str, bytes], symlinks: dict[str, str] | None = None,
              compress: bool = False) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    data = gzip.compress(buf.getvalue()) if compress else buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


L1 = layer_tar({"bin/sh": b"#!shell", "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"})
L2 = layer_tar({"hello": b"world"})


def config_for(layers: list[bytes]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                       "rootfs": {"type": "layers",
                                  "diff_ids": [sha(x) for x in layers]}}).encode()


def docker_save_files(tags=("busybox:latest", "example.com/x/busybox:1"),
                      layer_paths=("l1/layer.tar", "l2/layer.tar"), **overrides) -> dict:
    config = config_for([L1, L2])
    cfg_name = sha(config).split(":")[1] + ".json"
    item = {"Config": cfg_name, "RepoTags": list(tags), "Layers": list(layer_paths)}
    item.update(overrides)
    return {
        "manifest.json": json.dumps([item]).encode(),
        "repositories": json.dumps({"busybox": {"latest": "l2"}}).encode(),
        cfg_name: config,
        "l1/layer.tar": L1,
        "l2/layer.tar": L2,
    }


def read_all(blob) -> bytes:
    with blob.open() as f:
        return f.read()


def check_docker_image(img: ArchiveImage) -> None:
    manifest = json.loads(img.manifest_bytes)
    assert img.manifest_media_type == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["digest"] == sha(img.config_bytes)
    assert [lay["digest"] for lay in manifest["layers"]] == [sha(L1), sha(L2)]
    assert [lay["mediaType"] for lay in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar"] * 2
    assert [b.digest for b in img.layers] == [sha(L1), sha(L2)]
    assert read_all(img.layers[0]) == L1 and read_all(img.layers[1]) == L2
    assert img.manifest_digest == sha(img.manifest_bytes)


def test_docker_save_archive(tmp_path):
    [img] = read_archive(write_tar(tmp_path / "a.tar", docker_save_files()))
    assert img.names == ("busybox:latest", "example.com/x/busybox:1")
    check_docker_image(img)


def test_docker_save_gzipped_with_symlinked_layer(tmp_path):
    files = docker_save_files(layer_paths=("l1/layer.tar", "l3/layer.tar"))
    files["l1/layer.tar"], files["l2/layer.tar"] = L1, L2
    path = write_tar(tmp_path / "a.tar.gz", files, {"l3/layer.tar": "../l2/layer.tar"},
                     compress=True)
    [img] = read_archive(path)
    check_docker_image(img)


def test_docker_save_directory(tmp_path):
    for name, data in docker_save_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    [img] = read_archive(str(tmp_path))
    check_docker_image(img)


def oci_layout_files(ref_annotations: dict[str, str], layers=(L1, L2)) -> dict[str, bytes]:
    gz = [gzip.compress(x, mtime=0) for x in layers]
    config = config_for(list(layers))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(g), "size": len(g)} for g in gz]}).encode()
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
         "size": len(manifest), "annotations": ref_annotations}]}
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
             "index.json": json.dumps(index).encode()}
    for blob in (manifest, config, *gz):
        files["blobs/sha256/" + sha(blob).split(":")[1]] = blob
    return files


def write_dir(root, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return str(root)


@pytest.mark.parametrize("annotations,base_name,names", [
    ({"org.opencontainers.image.ref.name": "docker.io/library/nginx:1.25"}, None,
     ("docker.io/library/nginx:1.25",)),
    ({"org.opencontainers.image.ref.name": "latest",
      "io.containerd.image.name": "docker.io/library/nginx:latest"}, None,
     ("docker.io/library/nginx:latest",)),
    ({"org.opencontainers.image.ref.name": "latest"}, "example.com/nginx",
     ("example.com/nginx:latest",)),
    ({"org.opencontainers.image.ref.name": "latest"}, None, ()),
    ({}, "example.com/nginx", ()),
])
def test_oci_archive_names(tmp_path, annotations, base_name, names):
    path = write_tar(tmp_path / "oci.tar", oci_layout_files(annotations))
    [img] = read_archive(path, base_name=base_name)
    assert img.names == names


def test_oci_archive_and_layout_dir_give_same_image(tmp_path):
    files = oci_layout_files({"org.opencontainers.image.ref.name": "x.io/a/b:c"})
    (tmp_path / "d").mkdir()
    [a] = read_archive(write_tar(tmp_path / "oci.tar", files))
    [b] = read_archive(write_dir(tmp_path / "d", files))
    for img in (a, b):
        assert img.manifest_digest == json.loads(files["index.json"])["manifests"][0]["digest"]
        assert gzip.decompress(read_all(img.layers[1])) == L2
        assert img.layers[0].media_type.endswith("tar+gzip")
    assert a.manifest_bytes == b.manifest_bytes and a.config_bytes == b.config_bytes


def test_oci_nested_index_picks_this_platform(tmp_path):
    files = oci_layout_files({})
    inner = json.loads(files["index.json"])
    inner["manifests"][0]["platform"] = {"os": "linux", "architecture": "amd64"}
    other = dict(inner["manifests"][0], platform={"os": "linux", "architecture": "s390x"})
    inner["manifests"].insert(0, other)
    inner["mediaType"] = "application/vnd.oci.image.index.v1+json"
    inner_bytes = json.dumps(inner).encode()
    files["blobs/sha256/" + sha(inner_bytes).split(":")[1]] = inner_bytes
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(inner_bytes),
         "size": len(inner_bytes),
         "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"}}]}).encode()
    import podling.images.archive as archive
    if archive.host_arch() != "amd64":
        pytest.skip("platform fixture is amd64")
    [img] = read_archive(write_tar(tmp_path / "oci.tar", files))
    assert img.names == ("docker.io/library/multi:1",)
    assert json.loads(img.manifest_bytes)["layers"][0]["size"] > 0


def test_corrupted_oci_layer_is_detected_at_eof(tmp_path):
    files = oci_layout_files({})
    manifest = json.loads(next(v for k, v in files.items() if b'"layers"' in v))
    key = "blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]
    files[key] = bytes([files[key][0] ^ 1]) + files[key][1:]
    [img] = read_archive(write_tar(tmp_path / "oci.tar", files))
    with pytest.raises(DigestMismatch):
        read_all(img.layers[0])


def test_corrupted_manifest_is_rejected(tmp_path):
    files = oci_layout_files({})
    digest = json.loads(files["index.json"])["manifests"][0]["digest"]
    key = "blobs/sha256/" + digest.split(":")[1]
    files[key] = files[key].replace(b"schemaVersion", b"schemaVersiox")
    with pytest.raises(DigestMismatch):
        read_archive(write_tar(tmp_path / "oci.tar", files))


def _docker(**kw):
    return lambda: docker_save_files(**kw)


def _mutate(fn):
    def build():
        files = docker_save_files()
        fn(files)
        return files
    return build


MALFORMED = {
    "empty": lambda: {"other": b"x"},
    "manifest not json": lambda: {"manifest.json": b"{nope"},
    "manifest not list": lambda: {"manifest.json": b"{}"},
    "manifest empty list": lambda: {"manifest.json": b"[]"},
    "layer escapes with ..": _docker(layer_paths=("../x/layer.tar", "l2/layer.tar")),
    "absolute layer path": _docker(layer_paths=("/etc/passwd", "l2/layer.tar")),
    "config escapes": _mutate(lambda f: f.__setitem__("manifest.json", json.dumps(
        [{"Config": "../../etc/shadow", "RepoTags": [], "Layers": []}]).encode())),
    "missing layer": _docker(layer_paths=("l1/layer.tar", "nope/layer.tar")),
    "layer count mismatch": _docker(layer_paths=("l1/layer.tar",)),
    "tags not strings": _docker(tags=(1,)),
    "bad oci-layout": lambda: {"oci-layout": b'{"imageLayoutVersion":"9"}',
                               "index.json": b'{"manifests":[]}'},
    "oci digest traversal": lambda: {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                                     "index.json": json.dumps({"manifests": [
                                         {"digest": "sha256:../../x", "size": 1}]}).encode()},
    "oci missing manifest blob": lambda: {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                                          "index.json": json.dumps({"manifests": [
                                              {"digest": "sha256:" + "a" * 64,
                                               "size": 1}]}).encode()},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_archives_are_rejected(tmp_path, name):
    path = write_tar(tmp_path / "bad.tar", MALFORMED[name]())
    with pytest.raises(InvalidArchive):
        read_archive(path)


def test_symlink_escaping_archive_is_rejected(tmp_path):
    files = docker_save_files()
    del files["l2/layer.tar"]
    path = write_tar(tmp_path / "a.tar", files, {"l2/layer.tar": "../../../etc/passwd"})
    with pytest.raises(InvalidArchive):
        read_archive(path)


def test_directory_symlink_outside_is_rejected(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    files = docker_save_files()
    del files["l2/layer.tar"]
    write_dir(root, files)
    (tmp_path / "outside.tar").write_bytes(L2)
    (root / "l2").mkdir()
    os.symlink(str(tmp_path / "outside.tar"), root / "l2" / "layer.tar")
    with pytest.raises(InvalidArchive):
        read_archive(str(root))


def test_not_an_archive(tmp_path):
    (tmp_path / "x").write_bytes(b"hello, not a tar" * 100)
    with pytest.raises(InvalidArchive):
        read_archive(str(tmp_path / "x"))
    with pytest.raises(InvalidArchive):
        read_archive(str(tmp_path / "missing"))


def test_docker_layer_not_matching_diff_id(tmp_path):
    files = docker_save_files()
    files["l2/layer.tar"] = layer_tar({"hello": b"tampered"})
    with pytest.raises(DigestMismatch):
        read_archive(write_tar(tmp_path / "a.tar", files))
