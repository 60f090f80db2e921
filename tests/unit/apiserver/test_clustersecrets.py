"""The cluster's shared secrets (clustersecrets): the first server seals its files into the
datastore, a later one with the token gets the same files, and every wrong way in is a
one-line BootstrapError. The datastore is the memory store: the sealing is what is tested."""

from __future__ import annotations

import os
import stat

import pytest

from podling.apiserver import clustersecrets
from podling.apiserver.clustersecrets import BootstrapError, share
from podling.storage.memory import MemoryStore
from podling.util import jointoken


def make_files(server_dir: str, tag: str = "a"):
    """A create() that writes stand-in secrets (what the server's generators would)."""
    def create() -> None:
        os.makedirs(server_dir, exist_ok=True)
        for name in clustersecrets.SHARED:
            path = os.path.join(server_dir, name)
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write(f"{tag}:{name}")
    return create


def read(server_dir: str, name: str) -> str:
    with open(os.path.join(server_dir, name)) as f:
        return f.read()


async def test_a_later_server_gets_the_first_servers_files_and_token(tmp_path) -> None:
    store = MemoryStore()
    first, later = str(tmp_path / "first"), str(tmp_path / "later")
    token = await share(store, first, "", make_files(first))
    parsed = jointoken.parse(token, jointoken.SERVER)
    assert parsed is not None
    assert parsed.ca_hash == jointoken.ca_hash(read(first, "ca.crt").encode())
    assert read(first, "token").strip() == token
    os.makedirs(later)
    with open(os.path.join(later, "serving.crt"), "w") as f:
        f.write("issued by another CA")
    assert await share(store, later, token, make_files(later, "b")) == token
    for name, mode in clustersecrets.SHARED.items():
        assert read(later, name) == read(first, name)
        assert stat.S_IMODE(os.stat(os.path.join(later, name)).st_mode) == mode
    assert not os.path.exists(os.path.join(later, "serving.crt"))  # issued again from the CA
    stored = (await store.get(clustersecrets.KEY))["ciphertext"]
    assert "a:ca.key" not in stored  # sealed, not merely encoded


async def test_a_restarted_server_uses_its_saved_token(tmp_path) -> None:
    store = MemoryStore()
    first = str(tmp_path / "first")
    token = await share(store, first, "", make_files(first))
    assert await share(store, first, "", make_files(first)) == token


async def test_a_chosen_token_on_the_first_server(tmp_path) -> None:
    store = MemoryStore()
    first, later = str(tmp_path / "first"), str(tmp_path / "later")
    token = await share(store, first, "my-secret", make_files(first))
    assert token.endswith("::server:my-secret")
    await share(store, later, "my-secret", make_files(later, "b"))
    assert read(later, "ca.key") == "a:ca.key"


@pytest.mark.parametrize("given, message", [
    ("", "already holds a cluster: start this server with --token"),
    ("wrong", "does not decrypt"),
    ("K10" + "0" * 64 + "::node:abc", "that is the agents' join token"),
])
async def test_a_later_server_without_the_right_token(tmp_path, given, message) -> None:
    store = MemoryStore()
    first, later = str(tmp_path / "first"), str(tmp_path / "later")
    await share(store, first, "s3cret", make_files(first))
    with pytest.raises(BootstrapError, match=message):
        await share(store, later, given, make_files(later, "b"))
    assert not os.path.exists(os.path.join(later, "ca.key"))


async def test_a_token_of_another_ca_is_refused(tmp_path) -> None:
    store = MemoryStore()
    first, later = str(tmp_path / "first"), str(tmp_path / "later")
    await share(store, first, "s3cret", make_files(first))
    other = str(jointoken.JoinToken("0" * 64, "s3cret", jointoken.SERVER))
    with pytest.raises(BootstrapError, match="CA hash does not match"):
        await share(store, later, other, make_files(later, "b"))


async def test_joining_needs_a_cluster_in_the_datastore(tmp_path) -> None:
    with pytest.raises(BootstrapError, match="holds no cluster to join"):
        await share(MemoryStore(), str(tmp_path), "x", make_files(str(tmp_path)),
                    joining=True)


class RacedStore(MemoryStore):
    """Another first server's record lands just before this server's first create."""

    def __init__(self, rival: dict) -> None:
        super().__init__()
        self.rival: dict | None = rival

    async def create(self, key, obj):
        if self.rival is not None:
            rival, self.rival = self.rival, None
            await super().create(key, rival)
        return await super().create(key, obj)


async def test_two_first_servers_racing_end_with_one_cluster(tmp_path) -> None:
    rival = {name: f"b:{name}" for name in clustersecrets.SHARED}
    store = RacedStore(clustersecrets.encrypt(rival, "t"))
    a = str(tmp_path / "a")
    await share(store, a, "t", make_files(a))
    assert read(a, "ca.key") == "b:ca.key"  # a took the winner's secrets


def test_a_damaged_record_is_a_clear_error() -> None:
    record = clustersecrets.encrypt({"ca.crt": "x"}, "t")
    with pytest.raises(BootstrapError, match="damaged"):
        clustersecrets.decrypt({**record, "salt": "%%%"}, "t")
