"""What the OCI runtime puts in config.json to confine a container: seccomp blocks
(runtime/oci/seccomp.py), the capabilities a privileged container gets, host devices."""

from __future__ import annotations

import json

import pytest

from podling.runtime.interface import (SECCOMP_LOCALHOST, SECCOMP_RUNTIME_DEFAULT,
                                       InvalidConfig)
from podling.runtime.oci import seccomp
from podling.runtime.oci.bundle import DEFAULT_CAPABILITIES


def allowed(block: dict) -> set[str]:
    return {name for rule in block["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
            and "args" not in rule for name in rule["names"]}


def test_runtime_default_denies_with_eperm_what_it_does_not_allow() -> None:
    block = seccomp.runtime_default(list(DEFAULT_CAPABILITIES))
    assert (block["defaultAction"], block["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    names = allowed(block)
    assert {"read", "write", "openat", "execve", "mkdir", "ptrace", "chroot"} <= names
    assert not names & {"mount", "unshare", "setns", "keyctl", "bpf", "reboot",
                        "init_module", "clone", "clone3", "io_uring_setup", "personality"}
    clone = [r for r in block["syscalls"] if r["names"] == ["clone"]]
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in \
        block["syscalls"]
    personas = {r["args"][0]["value"] for r in block["syscalls"]
                if r["names"] == ["personality"]}
    assert personas == {0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF}


def test_capabilities_unlock_their_calls() -> None:
    block = seccomp.runtime_default([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    assert {"mount", "unshare", "setns", "clone3", "settimeofday", "clock_settime"} <= \
        allowed(block)
    assert {"names": ["clone"], "action": "SCMP_ACT_ALLOW"} in block["syscalls"]
    no_chroot = seccomp.runtime_default([c for c in DEFAULT_CAPABILITIES
                                         if c != "CAP_SYS_CHROOT"])
    assert "chroot" not in allowed(no_chroot)


def test_profile_for(tmp_path) -> None:
    caps = list(DEFAULT_CAPABILITIES)
    assert seccomp.profile_for("", caps, privileged=False) is None
    assert seccomp.profile_for(SECCOMP_RUNTIME_DEFAULT, caps, privileged=True) is None
    assert seccomp.profile_for(SECCOMP_RUNTIME_DEFAULT, caps, privileged=False)[
        "defaultAction"] == "SCMP_ACT_ERRNO"
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    assert seccomp.profile_for(SECCOMP_LOCALHOST + str(good), caps, privileged=False) == \
        {"defaultAction": "SCMP_ACT_ALLOW"}


@pytest.mark.parametrize("content, message", [
    (None, "cannot load seccomp profile '{path}': No such file or directory"),
    ("{nope", "seccomp profile '{path}' is not JSON"),
    ("[1]", "seccomp profile '{path}' is not a seccomp profile (no defaultAction)"),
])
def test_a_localhost_profile_that_cannot_be_used_is_invalid_config(tmp_path, content,
                                                                   message) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidConfig) as info:
        seccomp.profile_for(SECCOMP_LOCALHOST + str(path), [], privileged=False)
    assert str(info.value).startswith(message.format(path=path))


def test_privileged_and_all_mean_what_the_host_can_grant() -> None:
    from podling.runtime.interface import SecurityOptions
    from podling.runtime.oci.bundle import ALL_CAPABILITIES, capabilities, held_capabilities
    host = held_capabilities(0x1FFFEFFFFFF)  # a host without CAP_SYS_RESOURCE (bit 24)
    assert "CAP_SYS_RESOURCE" not in host and len(host) == len(ALL_CAPABILITIES) - 1
    assert capabilities(SecurityOptions(privileged=True), host) == list(host)
    assert capabilities(SecurityOptions(capabilities_add=("ALL",)), host) == list(host)
    assert "CAP_SYS_RESOURCE" in capabilities(SecurityOptions(
        capabilities_add=("SYS_RESOURCE",)), host)  # asked for by name: as given


def test_host_devices_lists_device_nodes_but_not_the_console_or_pts(tmp_path) -> None:
    import os
    import stat

    from podling.runtime.oci.proc import host_devices
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    (tmp_path / "pts").mkdir()
    (tmp_path / "sub").mkdir()
    os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(tmp_path / "sub" / "loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    os.mknod(tmp_path / "console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
    os.mknod(tmp_path / "pts" / "0", 0o620 | stat.S_IFCHR, os.makedev(136, 0))
    (tmp_path / "plain").write_text("not a device")
    os.chmod(tmp_path / "null", 0o666)  # whatever the umask
    os.chmod(tmp_path / "sub" / "loop9", 0o660)
    assert host_devices(str(tmp_path)) == [
        {"path": f"{tmp_path}/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": f"{tmp_path}/sub/loop9", "type": "b", "major": 7, "minor": 9,
         "fileMode": 0o660, "uid": 0, "gid": 0}]
