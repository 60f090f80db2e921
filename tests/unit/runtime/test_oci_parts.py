"""Pure parts of the OCI runtime: records, exit files, conmon's sync protocol, state table."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from podling.runtime.interface import (ContainerConfig, ContainerState, InvalidConfig, Mount,
                                       MountPropagation, NamespaceMode, NamespaceOptions,
                                       PodSandboxConfig, Resources, SecurityOptions)
from podling.runtime.oci import conmon, exits, host, names, state
from podling.runtime.oci.store import ContainerRecord, SandboxRecord, Store


def test_store_roundtrip(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.ensure_layout()
    sb = SandboxRecord("s1", PodSandboxConfig(
        name="p", namespace="n", uid="u", labels={"a": "b"},
        namespace_options=NamespaceOptions(pid=NamespaceMode.POD)), 1.5, pause_pid=9)
    ct = ContainerRecord("c1", "s1", ContainerConfig(
        name="c", rootfs="/r", command=["x"], mounts=[Mount("/a", "/b", True,
                                                            MountPropagation.BIDIRECTIONAL)],
        resources=Resources(cpu_shares=2), security=SecurityOptions(
            capabilities_add=("NET_ADMIN",), masked_paths=("/x",))), 2.5, started_at=3.0)
    store.save_sandbox(sb)
    store.save_container(ct)
    os.makedirs(tmp_path / "containers" / "half-written")
    again = Store(str(tmp_path))
    again.load()
    assert again.sandboxes == {"s1": sb}
    assert again.containers == {"c1": ct}
    again.delete_container("c1")
    again.delete_sandbox("s1")
    assert os.listdir(tmp_path / "containers") == ["half-written"]
    assert again.read_settings() == {}
    again.write_settings({"x": 1})
    assert again.read_settings() == {"x": 1}


def test_exit_files(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert exits.read_exit_file(d, "c") is None
    exits.write_exit_file(d, "c", 3)
    record = exits.read_exit_file(d, "c")
    assert record is not None and (record.id, record.exit_code) == ("c", 3)
    (tmp_path / "partial").write_text("")
    assert exits.read_exit_file(d, "partial") is None


def test_parse_inotify_events() -> None:
    def event(name: bytes) -> bytes:
        padded = name + b"\0" * (16 - len(name))
        return struct.pack("iIII", 1, 0x80, 0, len(padded)) + padded
    assert exits.parse_events(event(b"abc") + event(b"def")) == ["abc", "def"]
    assert exits.parse_events(b"") == []


@pytest.mark.parametrize("line, expected", [
    (b'{"data": 4242}', (4242, "")),
    (b'{"data": -1, "message": "exec failed"}', (-1, "exec failed")),
    (b"garbage", (-1, "unreadable message from conmon: b'garbage'")),
])
def test_sync_message(line: bytes, expected: tuple[int, str]) -> None:
    assert conmon.parse_sync_message(line) == expected


def test_conmon_argv() -> None:
    spec = conmon.ConmonLaunch(
        conmon="/usr/bin/conmon", runtime="/usr/sbin/runc", runtime_root="/r/runc", cid="c1",
        name="web", bundle="/r/c1", pid_file="/r/c1/pid", conmon_pid_file="/r/c1/conmon.pid",
        log_path="/logs/web.log", exit_dir="/r/exits", socket_dir="/r/sockets",
        persist_dir="/r/c1", terminal=True, stdin=True, leave_stdin_open=True)
    argv = conmon.conmon_argv(spec)
    joined = " ".join(argv)
    for part in ("--api-version 1", "-c c1", "-u c1", "-n web", "-r /usr/sbin/runc",
                 "-b /r/c1", "-p /r/c1/pid", "-P /r/c1/conmon.pid",
                 "-l k8s-file:/logs/web.log", "--exit-dir /r/exits",
                 "--socket-dir-path /r/sockets", "--runtime-arg --root=/r/runc", "-t", "-i",
                 "--leave-stdin-open"):
        assert part in joined, part


def record(**kw: object) -> ContainerRecord:
    return ContainerRecord("c", "s", ContainerConfig(name="c", rootfs="/r", command=["x"]),
                           1.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw, exit_record, alive, conmon_alive, expected", [
    ({}, None, False, False, ContainerState.CREATED),
    ({"finished_at": 2.0}, None, False, False, ContainerState.EXITED),
    ({"started_at": 2.0}, exits.ExitRecord("c", 0, 3.0), False, False, ContainerState.EXITED),
    ({"started_at": 2.0}, None, True, False, ContainerState.RUNNING),
    ({"started_at": 2.0}, None, False, True, ContainerState.RUNNING),
    ({"started_at": 2.0}, None, False, False, ContainerState.UNKNOWN),
])
def test_state_table(kw: dict[str, object], exit_record: exits.ExitRecord | None, alive: bool,
                     conmon_alive: bool, expected: ContainerState) -> None:
    assert state.container_state(record(**kw), exit_record, init_alive=alive,
                                 conmon_alive=conmon_alive) is expected


def test_oom_reason(tmp_path: Path) -> None:
    exits.write_exit_file(str(tmp_path), "c", 137)
    (tmp_path / "oom").write_text("")
    st = state.container_status(record(started_at=2.0, pid=10**9), exit_dir=str(tmp_path),
                                container_dir=str(tmp_path))
    assert (st.state, st.exit_code, st.reason) == (ContainerState.EXITED, 137, "OOMKilled")


@pytest.mark.parametrize("given, expected", [
    ("SIGTERM", "SIGTERM"), ("term", "SIGTERM"), ("9", "SIGKILL"), ("SIGQUIT", "SIGQUIT")])
def test_signal_names(given: str, expected: str) -> None:
    assert names.signal_name(given) == expected


@pytest.mark.parametrize("bad", ["SIGNOPE", "999", ""])
def test_bad_signal_names(bad: str) -> None:
    with pytest.raises(InvalidConfig):
        names.signal_name(bad)


def test_cgroup_mode_and_runtime_check() -> None:
    assert host.cgroup_mode() in ("unified", "hybrid", "legacy")
    assert host.check_runtime_supports("/usr/bin/crun", "hybrid")
    assert host.check_runtime_supports("/usr/sbin/runc", "hybrid") is None
    assert len(names.new_id()) == 32


@pytest.mark.parametrize("text, expected", [
    ('time="2026-11-27T14:38:07Z" level=error msg="runc create failed: exec: \\"/x\\": '
     'stat /x: no such file or directory"\n',
     'runc create failed: exec: "/x": stat /x: no such file or directory'),
    ("plain text\n", "plain text"),
])
def test_clean_runc_message(text: str, expected: str) -> None:
    from podling.runtime.oci.runc import clean_message
    assert clean_message(text) == expected
