"""config.json contents for sandboxes and containers (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from podling.runtime.interface import (ContainerConfig, InvalidConfig, Mount,
                                       MountPropagation, NamespaceMode, NamespaceOptions,
                                       PodSandboxConfig, Resources, SecurityOptions)
from podling.runtime.oci import bundle

POD, CONTAINER, NODE = NamespaceMode.POD, NamespaceMode.CONTAINER, NamespaceMode.NODE
NETNS = "/run/podling/netns/s1"


def sandbox_cfg(**kw: Any) -> PodSandboxConfig:
    return PodSandboxConfig(name="web", namespace="default", uid="u1", hostname="web", **kw)


def sandbox_doc(options: NamespaceOptions = NamespaceOptions(), **kw: Any) -> dict[str, Any]:
    return bundle.sandbox_spec(sandbox_cfg(namespace_options=options, **kw),
                               netns_path="" if options.network is NODE else NETNS,
                               pause_rootfs="/r/pause/rootfs", pause_binary="/usr/bin/catatonit",
                               shm_path="" if options.ipc is NODE else "/r/s1/shm",
                               cgroups_path="/podling/pod-s1/s1", rlimits=[])


def ref(options: NamespaceOptions = NamespaceOptions()) -> bundle.SandboxRef:
    return bundle.SandboxRef(options, "" if options.network is NODE else NETNS, 4242,
                             "" if options.ipc is NODE else "/r/s1/shm", "/podling/pod-s1")


def container_doc(config: ContainerConfig | None = None,
                  options: NamespaceOptions = NamespaceOptions(),
                  rlimits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    config = config or ContainerConfig(name="c", rootfs="/snap/c", command=["/app", "-v"])
    return bundle.container_spec(config, ref(options), cgroups_path="/podling/pod-s1/c1",
                                 rlimits=rlimits or [])


def namespaces(doc: dict[str, Any]) -> dict[str, str]:
    return {ns["type"]: ns.get("path", "") for ns in doc["linux"]["namespaces"]}


def mount(doc: dict[str, Any], destination: str) -> dict[str, Any]:
    [m] = [m for m in doc["mounts"] if m["destination"] == destination]
    return m


# -- sandbox ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options, expected", [
    (NamespaceOptions(), {"mount": "", "network": NETNS, "uts": "", "ipc": "", "pid": ""}),
    (NamespaceOptions(pid=POD), {"mount": "", "network": NETNS, "uts": "", "ipc": "",
                                 "pid": ""}),
    (NamespaceOptions(network=NODE), {"mount": "", "ipc": "", "pid": ""}),
    (NamespaceOptions(pid=NODE), {"mount": "", "network": NETNS, "uts": "", "ipc": ""}),
    (NamespaceOptions(ipc=NODE), {"mount": "", "network": NETNS, "uts": "", "pid": ""}),
])
def test_sandbox_namespaces(options: NamespaceOptions, expected: dict[str, str]) -> None:
    assert namespaces(sandbox_doc(options)) == expected


def test_sandbox_process_root_and_hostname() -> None:
    doc = sandbox_doc()
    assert doc["process"]["args"] == ["/pause", "-P"]
    assert doc["root"] == {"path": "/r/pause/rootfs", "readonly": True}
    assert doc["hostname"] == "web"
    assert mount(doc, "/pause")["source"] == "/usr/bin/catatonit"
    assert "ro" in mount(doc, "/pause")["options"]
    assert mount(doc, "/dev/shm")["source"] == "/r/s1/shm"
    assert doc["linux"]["cgroupsPath"] == "/podling/pod-s1/s1"
    assert doc["process"]["noNewPrivileges"] is True
    assert "rlimits" not in doc["process"]


def test_sandbox_host_network_has_no_hostname() -> None:
    assert "hostname" not in sandbox_doc(NamespaceOptions(network=NODE))


def test_sandbox_host_ipc_uses_host_shm() -> None:
    assert mount(sandbox_doc(NamespaceOptions(ipc=NODE)), "/dev/shm")["source"] == "/dev/shm"


# -- container namespaces -------------------------------------------------------------------


@pytest.mark.parametrize("options, expected", [
    (NamespaceOptions(), {"mount": "", "network": NETNS, "uts": "/proc/4242/ns/uts",
                          "ipc": "/proc/4242/ns/ipc", "pid": ""}),
    (NamespaceOptions(pid=POD), {"mount": "", "network": NETNS, "uts": "/proc/4242/ns/uts",
                                 "ipc": "/proc/4242/ns/ipc", "pid": "/proc/4242/ns/pid"}),
    (NamespaceOptions(pid=NODE), {"mount": "", "network": NETNS, "uts": "/proc/4242/ns/uts",
                                  "ipc": "/proc/4242/ns/ipc"}),
    (NamespaceOptions(network=NODE, ipc=NODE), {"mount": "", "pid": ""}),
])
def test_container_namespaces(options: NamespaceOptions, expected: dict[str, str]) -> None:
    assert namespaces(container_doc(options=options)) == expected


@pytest.mark.parametrize("options, pid", [
    (NamespaceOptions(), "/proc/777/ns/pid"),  # an ephemeral container joins its target's
    (NamespaceOptions(pid=POD), "/proc/4242/ns/pid"),  # the pod's shared one wins
])
def test_a_pid_target_is_joined_only_without_a_pod_pid_namespace(options: NamespaceOptions,
                                                                   pid: str) -> None:
    config = ContainerConfig(name="c", rootfs="/snap/c", command=["/sh"], pid_target="c0")
    doc = bundle.container_spec(config, ref(options), cgroups_path="/p/c1", rlimits=[],
                                pid_target=777)
    assert namespaces(doc)["pid"] == pid
    host = bundle.container_spec(config, ref(NamespaceOptions(pid=NODE)), cgroups_path="/p/c1",
                                 rlimits=[], pid_target=777)
    assert "pid" not in namespaces(host)


def test_container_never_sets_hostname() -> None:
    assert "hostname" not in container_doc()


# -- process --------------------------------------------------------------------------------


def test_process_fields() -> None:
    config = ContainerConfig(name="c", rootfs="/snap", command=["/bin/sh", "-c", "x"],
                             env=["A=1"], working_dir="/work", uid=1000, gid=2000,
                             additional_gids=[3, 4], tty=True)
    proc = container_doc(config)["process"]
    assert proc["args"] == ["/bin/sh", "-c", "x"]
    assert proc["env"][0].startswith("PATH=") and proc["env"][1] == "A=1"
    assert proc["cwd"] == "/work" and proc["terminal"] is True
    assert proc["user"] == {"uid": 1000, "gid": 2000, "additionalGids": [3, 4]}


def test_caller_path_is_kept() -> None:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"], env=["PATH=/only"])
    assert container_doc(config)["process"]["env"] == ["PATH=/only"]


@pytest.mark.parametrize("config", [
    ContainerConfig(name="c", rootfs="/s", command=[]),
    ContainerConfig(name="c", rootfs="/s", command=["x"], working_dir="rel"),
    ContainerConfig(name="c", rootfs="/s", command=["x"], mounts=[Mount("rel", "/x")]),
    ContainerConfig(name="c", rootfs="/s", command=["x"], mounts=[Mount("/x", "rel")]),
])
def test_invalid_configs(config: ContainerConfig) -> None:
    with pytest.raises(InvalidConfig):
        container_doc(config)


# -- capabilities, security -----------------------------------------------------------------


def caps_of(security: SecurityOptions) -> list[str]:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"], security=security)
    caps = container_doc(config)["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert "inheritable" not in caps and "ambient" not in caps
    return caps["bounding"]


@pytest.mark.parametrize("security, present, absent", [
    (SecurityOptions(), ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
     ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]),
    (SecurityOptions(capabilities_add=("NET_ADMIN",)), ["CAP_NET_ADMIN", "CAP_CHOWN"], []),
    (SecurityOptions(capabilities_drop=("CAP_CHOWN", "kill")), ["CAP_SETUID"],
     ["CAP_CHOWN", "CAP_KILL"]),
    (SecurityOptions(capabilities_drop=("ALL",), capabilities_add=("NET_BIND_SERVICE",)),
     ["CAP_NET_BIND_SERVICE"], ["CAP_CHOWN"]),
    (SecurityOptions(capabilities_add=("ALL",)), ["CAP_SYS_ADMIN", "CAP_BPF"], []),
    (SecurityOptions(privileged=True, capabilities_drop=("ALL",)), ["CAP_SYS_ADMIN"], []),
])
def test_capabilities(security: SecurityOptions, present: list[str], absent: list[str]) -> None:
    caps = caps_of(security)
    assert all(c in caps for c in present), caps
    assert not any(c in caps for c in absent), caps
    assert len(set(caps)) == len(caps)


def test_drop_all_add_one_is_exactly_one() -> None:
    assert caps_of(SecurityOptions(capabilities_drop=("ALL",),
                                   capabilities_add=("CAP_NET_RAW",))) == ["CAP_NET_RAW"]


def test_defaults_mask_and_protect_paths() -> None:
    linux = container_doc()["linux"]
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert "/proc/sys" in linux["readonlyPaths"]
    assert "ro" in mount(container_doc(), "/sys")["options"]
    assert linux["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert "seccomp" not in linux


def test_custom_masked_paths() -> None:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"],
                             security=SecurityOptions(masked_paths=(), readonly_paths=("/a",)))
    linux = container_doc(config)["linux"]
    assert linux["maskedPaths"] == [] and linux["readonlyPaths"] == ["/a"]


def test_privileged() -> None:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"],
                             security=SecurityOptions(privileged=True, no_new_privs=True))
    doc = container_doc(config)
    assert "maskedPaths" not in doc["linux"] and "readonlyPaths" not in doc["linux"]
    assert "rw" in mount(doc, "/sys")["options"]
    assert doc["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert doc["process"]["noNewPrivileges"] is False


@pytest.mark.parametrize("readonly", [True, False])
def test_readonly_rootfs(readonly: bool) -> None:
    config = ContainerConfig(name="c", rootfs="/snap", command=["x"],
                             security=SecurityOptions(readonly_rootfs=readonly))
    assert container_doc(config)["root"] == {"path": "/snap", "readonly": readonly}


def test_no_new_privs() -> None:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"],
                             security=SecurityOptions(no_new_privs=True))
    assert container_doc(config)["process"]["noNewPrivileges"] is True
    assert container_doc()["process"]["noNewPrivileges"] is False


# -- resources, mounts ----------------------------------------------------------------------


def test_resources() -> None:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"], resources=Resources(
        cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_limit_bytes=64 << 20))
    res = container_doc(config)["linux"]["resources"]
    assert res["cpu"] == {"shares": 512, "quota": 50000, "period": 100000}
    assert res["memory"] == {"limit": 64 << 20}
    assert container_doc()["linux"]["cgroupsPath"] == "/podling/pod-s1/c1"


def test_no_resources_means_no_blocks() -> None:
    res = container_doc()["linux"]["resources"]
    assert "cpu" not in res and "memory" not in res


def test_kernel_mounts_and_shm() -> None:
    doc = container_doc()
    destinations = [m["destination"] for m in doc["mounts"]]
    for d in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"):
        assert d in destinations
    assert mount(doc, "/dev/shm")["source"] == "/r/s1/shm"
    assert mount(container_doc(options=NamespaceOptions(ipc=NODE)), "/dev/shm")["source"] \
        == "/dev/shm"


def test_caller_mounts_ordered_with_propagation() -> None:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"], mounts=[
        Mount("/h/deep", "/data/sub/deep", readonly=True),
        Mount("/h/data", "/data/", propagation=MountPropagation.HOST_TO_CONTAINER),
        Mount("/h/hosts", "/etc/hosts"),
    ])
    doc = container_doc(config)
    user = doc["mounts"][-3:]
    assert [m["destination"] for m in user] == ["/data", "/etc/hosts", "/data/sub/deep"]
    assert user[0]["options"] == ["rbind", "rw", "rslave"]
    assert user[2]["options"] == ["rbind", "ro", "rprivate"]
    assert doc["linux"]["rootfsPropagation"] == "rslave"


def test_bidirectional_makes_root_shared() -> None:
    config = ContainerConfig(name="c", rootfs="/s", command=["x"], mounts=[
        Mount("/a", "/a", propagation=MountPropagation.BIDIRECTIONAL)])
    assert container_doc(config)["linux"]["rootfsPropagation"] == "rshared"
    assert "rootfsPropagation" not in container_doc()["linux"]


# -- rlimits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wanted, host, expected", [
    ({"RLIMIT_NOFILE": (1048576, 1048576)}, {"RLIMIT_NOFILE": (1024, 20000)},
     [{"type": "RLIMIT_NOFILE", "soft": 20000, "hard": 20000}]),
    ({"RLIMIT_NOFILE": (1024, 4096)}, {"RLIMIT_NOFILE": (1024, 20000)},
     [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]),
    ({"RLIMIT_NPROC": (-1, -1)}, {"RLIMIT_NPROC": (96365, 96365)},
     [{"type": "RLIMIT_NPROC", "soft": 96365, "hard": 96365}]),
    ({"RLIMIT_CORE": (-1, -1)}, {"RLIMIT_CORE": (0, -1)},
     [{"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]),
    ({"RLIMIT_NOFILE": (5000, 1000)}, {"RLIMIT_NOFILE": (1024, 20000)},
     [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 1000}]),
    ({"RLIMIT_BOGUS": (1, 1)}, {}, []),
])
def test_clamp_rlimits(wanted: dict[str, tuple[int, int]], host: dict[str, tuple[int, int]],
                       expected: list[dict[str, Any]]) -> None:
    assert bundle.clamp_rlimits(wanted, host) == expected


def test_rlimits_never_exceed_this_hosts_hard_limits() -> None:
    host = bundle.host_rlimits(["RLIMIT_NOFILE", "RLIMIT_NPROC"])
    limits = bundle.clamp_rlimits({"RLIMIT_NOFILE": (2**40, 2**40),
                                   "RLIMIT_NPROC": (2**40, 2**40)}, host)
    for limit in limits:
        hard = host[limit["type"]][1]
        if hard >= 0:
            assert limit["hard"] <= hard and limit["soft"] <= hard
    doc = container_doc(rlimits=limits)
    assert doc["process"]["rlimits"] == limits


def test_sandbox_hostname_defaults_to_pod_name() -> None:
    doc = bundle.sandbox_spec(
        PodSandboxConfig(name="web-0", namespace="d", uid="u"), netns_path=NETNS,
        pause_rootfs="/p", pause_binary="/c", shm_path="/s", cgroups_path="/x", rlimits=[])
    assert doc["hostname"] == "web-0"
