"""The kubelet-style atomic writer: timestamped directory, ``..data`` swap, user-visible
symlinks, modes, removal of obsolete keys, and no write when nothing changed."""

from __future__ import annotations

import os
import re
import stat

import pytest

from podling.agent.kuberuntime.atomic_writer import (DATA_DIR, FileProjection, PayloadError,
                                                     write_payload)

TS = re.compile(r"^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$")


def entries(target: str) -> set[str]:
    return set(os.listdir(target))


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_write_layout(tmp_path) -> None:
    target = str(tmp_path)
    written = write_payload(target, {"a": FileProjection(b"1", 0o644),
                                     "dir/b": FileProjection(b"2", 0o400)},
                            now=lambda: 1_700_000_000.5)
    assert written
    data = os.readlink(os.path.join(target, DATA_DIR))
    assert TS.match(data) and data.startswith("..2023_11_14_22_13_20.")
    assert entries(target) == {data, DATA_DIR, "a", "dir"}
    assert os.readlink(os.path.join(target, "a")) == "..data/a"
    assert os.readlink(os.path.join(target, "dir")) == "..data/dir"
    with open(os.path.join(target, "dir", "b"), "rb") as f:
        assert f.read() == b"2"
    assert mode(os.path.join(target, "a")) == 0o644
    assert mode(os.path.join(target, "dir", "b")) == 0o400
    assert mode(os.path.join(target, data)) == 0o755
    assert mode(os.path.join(target, data, "dir")) == 0o755


def test_unchanged_payload_is_not_rewritten(tmp_path) -> None:
    target = str(tmp_path)
    payload = {"a": FileProjection(b"1", 0o644)}
    write_payload(target, payload)
    before = os.readlink(os.path.join(target, DATA_DIR))
    inode = os.stat(os.path.join(target, "a")).st_ino
    assert not write_payload(target, dict(payload))
    assert os.readlink(os.path.join(target, DATA_DIR)) == before
    assert os.stat(os.path.join(target, "a")).st_ino == inode


@pytest.mark.parametrize("change", [
    {"a": FileProjection(b"2", 0o644)},            # content
    {"a": FileProjection(b"1", 0o600)},            # mode
    {"a": FileProjection(b"1", 0o644), "b": FileProjection(b"", 0o644)},  # a new key
])
def test_a_change_swaps_the_data_link(tmp_path, change) -> None:
    target = str(tmp_path)
    write_payload(target, {"a": FileProjection(b"1", 0o644)})
    old = os.readlink(os.path.join(target, DATA_DIR))
    opened = open(os.path.join(target, "a"), "rb")  # a reader of the old version
    assert write_payload(target, change)
    new = os.readlink(os.path.join(target, DATA_DIR))
    assert new != old and not os.path.exists(os.path.join(target, old))
    assert opened.read() == b"1"  # the old file stays readable through its open fd
    opened.close()
    for path, projection in change.items():
        with open(os.path.join(target, path), "rb") as f:
            assert f.read() == projection.data
        assert mode(os.path.join(target, path)) == projection.mode
    assert not os.path.lexists(os.path.join(target, "..data_tmp"))


def test_obsolete_keys_are_removed(tmp_path) -> None:
    target = str(tmp_path)
    write_payload(target, {"a": FileProjection(b"1", 0o644), "d/x": FileProjection(b"", 0o644),
                           "keep": FileProjection(b"k", 0o644)})
    write_payload(target, {"keep": FileProjection(b"k2", 0o644)})
    data = os.readlink(os.path.join(target, DATA_DIR))
    assert entries(target) == {data, DATA_DIR, "keep"}
    write_payload(target, {})
    data = os.readlink(os.path.join(target, DATA_DIR))
    assert entries(target) == {data, DATA_DIR}
    assert os.listdir(os.path.join(target, data)) == []


def test_leftovers_of_a_crash_are_cleaned(tmp_path) -> None:
    target = str(tmp_path)
    write_payload(target, {"a": FileProjection(b"1", 0o644)})
    os.mkdir(os.path.join(target, "..2020_01_01_00_00_00.1"))   # a half-written version
    os.symlink("nowhere", os.path.join(target, "..data_tmp"))
    write_payload(target, {"a": FileProjection(b"2", 0o644)})
    data = os.readlink(os.path.join(target, DATA_DIR))
    assert entries(target) == {data, DATA_DIR, "a"}


def test_fs_group_adds_group_read(tmp_path) -> None:
    target = str(tmp_path)
    write_payload(target, {"t": FileProjection(b"tok", 0o600)}, fs_group=os.getegid())
    assert mode(os.path.join(target, "t")) == 0o640
    assert os.stat(os.path.join(target, "t")).st_gid == os.getegid()
    assert not write_payload(target, {"t": FileProjection(b"tok", 0o600)},
                             fs_group=os.getegid())


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../../b", "..hidden", ""])
def test_bad_paths_are_refused(tmp_path, path) -> None:
    with pytest.raises(PayloadError):
        write_payload(str(tmp_path), {path: FileProjection(b"", 0o644)})
    assert os.listdir(tmp_path) == []
