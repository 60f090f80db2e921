"""The runtime conformance suite against FakeRuntime and OciRuntime (runc + conmon).

The OCI variant needs root, runc, conmon, catatonit and busybox-static; it uses a private
runtime root and cgroup root per test and checks after each test that nothing is left:
no runc containers, conmon processes, mounts, cgroups or directories.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest

pytest.register_assert_rewrite("podling.runtime.testing.conformance")

from podling.runtime.fake import FakeRuntime  # noqa: E402
from podling.runtime.interface import (ContainerConfig, ContainerStartError,  # noqa: E402
                                       ExecResult, NamespaceOptions, PodSandboxConfig,
                                       RuntimeService)
from podling.runtime.testing.conformance import (CHECKS, IGNORE_TERM, REAL_CHECKS,  # noqa: E402
                                                 Check)
from podling.runtime.testing.rootfs import build_busybox_rootfs, find_busybox  # noqa: E402


def _sandbox_config(name: str, *, namespace_options: NamespaceOptions | None = None,
                    labels: dict[str, str] | None = None) -> PodSandboxConfig:
    return PodSandboxConfig(name=name, namespace="default", uid=f"uid-{name}", hostname=name,
                            labels=labels or {},
                            namespace_options=namespace_options or NamespaceOptions())


# -- fake ----------------------------------------------------------------------------------


class FakeHarness:
    real = False

    def __init__(self) -> None:
        self.runtime: RuntimeService = FakeRuntime()
        fake = self.fake
        fake.on_start = self._on_start
        fake.exec_handler = lambda cid, argv: ExecResult(
            0, (" ".join(argv[1:]) + "\n").encode() if argv[:1] == ["echo"] else b"", b"")

    @property
    def fake(self) -> FakeRuntime:
        assert isinstance(self.runtime, FakeRuntime)
        return self.runtime

    def sandbox_config(self, name: str, **kw: object) -> PodSandboxConfig:
        return _sandbox_config(name, **kw)  # type: ignore[arg-type]

    def container_config(self, name: str, script: str, *, labels: dict[str, str] | None = None,
                         annotations: dict[str, str] | None = None,
                         command: list[str] | None = None) -> ContainerConfig:
        return ContainerConfig(name=name, rootfs="/nonexistent-rootfs",
                               command=command or ["sh", "-c", script], labels=labels or {},
                               annotations=annotations or {})

    @staticmethod
    async def _on_start(rt: FakeRuntime, cid: str, config: ContainerConfig) -> None:
        """Emulate the conformance script vocabulary."""
        if config.command[0] == "/nonexistent":
            rt.fail_start(cid, 'exec: "/nonexistent": no such file or directory')
            raise ContainerStartError("no such file")
        script = config.command[-1]
        if script == IGNORE_TERM:
            rt.ignore_term.add(cid)
        match = re.search(r"(?:^|; )exit (\d+)$", script)
        if match:
            rt.exit_container(cid, int(match.group(1)))

    async def reopen(self) -> RuntimeService:
        return self.runtime

    async def close(self) -> None:
        await self.runtime.close()


# -- oci -----------------------------------------------------------------------------------


def _oci_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("runc", "conmon", "catatonit"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return f"{tool} is not installed"
    if find_busybox() is None:
        return "busybox-static is not installed"
    return None


@pytest.fixture(scope="module")
def busybox_rootfs() -> AsyncIterator[str]:  # type: ignore[misc]
    if _oci_missing():
        pytest.skip(_oci_missing() or "")
    directory = tempfile.mkdtemp(prefix="pdl-rootfs-")
    try:
        yield build_busybox_rootfs(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class OciHarness:
    real = True

    def __init__(self, rootfs: str, work: str) -> None:
        from podling.runtime.oci import OciRuntime, OciRuntimeConfig
        self.rootfs = rootfs
        self.work = work
        self.config = OciRuntimeConfig(root=os.path.join(work, "rt"),
                                       cgroup_root=f"/podling-test-{uuid.uuid4().hex[:12]}")
        self._make = lambda: OciRuntime(self.config)
        self.runtime: RuntimeService = self._make()

    def sandbox_config(self, name: str, **kw: object) -> PodSandboxConfig:
        return _sandbox_config(name, **kw)  # type: ignore[arg-type]

    def container_config(self, name: str, script: str, *, labels: dict[str, str] | None = None,
                         annotations: dict[str, str] | None = None,
                         command: list[str] | None = None) -> ContainerConfig:
        return ContainerConfig(
            name=name, rootfs=self.rootfs, command=command or ["sh", "-c", script],
            labels=labels or {}, annotations=annotations or {},
            log_path=os.path.join(self.work, "logs", f"{name}-{uuid.uuid4().hex[:6]}.log"))

    async def reopen(self) -> RuntimeService:
        await self.runtime.close()
        self.runtime = self._make()
        return self.runtime

    async def close(self) -> None:
        from podling.runtime.oci import purge
        await self.runtime.close()
        problems = await purge(self.config.root)
        assert problems == [], problems
        assert_nothing_left(self.config.root, self.config.cgroup_root)


def assert_nothing_left(root: str, cgroup_root: str) -> None:
    """No directory, mount, process or cgroup mentioning this runtime remains."""
    assert not os.path.exists(root), root
    with open("/proc/self/mountinfo") as f:
        assert root not in f.read()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        assert root.encode() not in cmdline, cmdline
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", hierarchy, cgroup_root.strip("/"))
        assert not os.path.exists(path), path


# -- the parametrised runner ---------------------------------------------------------------


@pytest.fixture(params=["fake", "oci"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "fake":
        h: FakeHarness | OciHarness = FakeHarness()
    else:
        rootfs = request.getfixturevalue("busybox_rootfs")
        work = tempfile.mkdtemp(prefix="pdl-", dir="/tmp")
        h = OciHarness(rootfs, work)
    try:
        yield h
    finally:
        await h.close()
        if isinstance(h, OciHarness):
            shutil.rmtree(h.work, ignore_errors=True)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_runtime_conformance(check: Check, harness: FakeHarness | OciHarness) -> None:
    await check(harness)  # type: ignore[arg-type]


@pytest.mark.parametrize("check", REAL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_runtime_real_processes(check: Check, harness: FakeHarness | OciHarness) -> None:
    if not harness.real:
        pytest.skip("needs real processes")
    await check(harness)  # type: ignore[arg-type]


# -- OCI-only checks -----------------------------------------------------------------------


@pytest.fixture
async def oci(busybox_rootfs: str) -> AsyncIterator[OciHarness]:
    work = tempfile.mkdtemp(prefix="pdl-", dir="/tmp")
    h = OciHarness(busybox_rootfs, work)
    try:
        yield h
    finally:
        await h.close()
        shutil.rmtree(work, ignore_errors=True)


async def test_oci_remove_sandbox_leaves_nothing(oci: OciHarness) -> None:
    from podling.runtime.oci.runc import Runc
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("p"))
    for name in ("a", "b"):
        cid = await rt.create_container(sid, oci.container_config(name, "sleep 1000"))
        await rt.start_container(cid)
    netns = (await rt.pod_sandbox_status(sid)).network_namespace_path
    await rt.remove_pod_sandbox(sid)
    await rt.remove_pod_sandbox(sid)
    root = oci.config.root
    assert await Runc(shutil.which("runc") or "runc", os.path.join(root, "runc")).list() == []
    with open("/proc/self/mountinfo") as f:
        assert root not in f.read()
    assert not os.path.exists(netns)
    assert os.listdir(os.path.join(root, "sandboxes")) == []
    assert os.listdir(os.path.join(root, "containers")) == []
    assert os.listdir(os.path.join(root, "exits")) == []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", hierarchy, oci.config.cgroup_root.strip("/"))
        assert not os.path.isdir(base) or os.listdir(base) == [] or all(
            not os.path.isdir(os.path.join(base, d)) for d in os.listdir(base)), base


async def test_oci_host_namespaces(oci: OciHarness) -> None:
    from podling.runtime.interface import NamespaceMode
    node = NamespaceOptions(network=NamespaceMode.NODE, pid=NamespaceMode.NODE,
                            ipc=NamespaceMode.NODE)
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("h", namespace_options=node))
    assert (await rt.pod_sandbox_status(sid)).network_namespace_path == ""
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    for ns in ("net", "pid", "ipc", "uts"):
        result = await rt.exec_sync(cid, ["readlink", f"/proc/self/ns/{ns}"], 5)
        assert result.stdout.decode().strip() == os.readlink(f"/proc/self/ns/{ns}"), ns
    await rt.remove_pod_sandbox(sid)


async def test_oci_exec_timeout_kills_process(oci: OciHarness) -> None:
    from podling.runtime.interface import ExecTimeout
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("p"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    with pytest.raises(ExecTimeout):
        await rt.exec_sync(cid, ["sleep", "777"], 0.5)
    ps = (await rt.exec_sync(cid, ["ps", "-o", "args"], 5)).stdout.decode()
    assert "sleep 777" not in ps, ps


SURVIVOR = """
import asyncio, json, sys
from podling.runtime.oci import OciRuntime, OciRuntimeConfig
from podling.runtime.interface import ContainerConfig, PodSandboxConfig

async def main():
    rt = OciRuntime(OciRuntimeConfig(root=sys.argv[1], cgroup_root=sys.argv[2]))
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name="s", namespace="default", uid="u"))
    cid = await rt.create_container(sid, ContainerConfig(
        name="c", rootfs=sys.argv[3], command=["sleep", "1000"], log_path=sys.argv[4]))
    await rt.start_container(cid)
    status = await rt.container_status(cid)
    print(json.dumps({"sid": sid, "cid": cid, "pid": status.pid}))
    await rt.close()

asyncio.run(main())
"""


async def test_oci_containers_outlive_the_python_process(oci: OciHarness) -> None:
    import asyncio
    import json
    import sys
    from podling.runtime.interface import ContainerState, SandboxState
    await oci.runtime.close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SURVIVOR, oci.config.root, oci.config.cgroup_root, oci.rootfs,
        os.path.join(oci.work, "survivor.log"), stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    info = json.loads(out)
    rt = await oci.reopen()
    [status] = await rt.list_containers()
    assert (status.id, status.state, status.pid) == (info["cid"], ContainerState.RUNNING,
                                                     info["pid"])
    assert os.path.exists(f"/proc/{info['pid']}")
    assert (await rt.pod_sandbox_status(info["sid"])).state is SandboxState.READY
    await rt.stop_container(info["cid"], 0)
    assert (await rt.wait_container(info["cid"])).exit_code == 137
    await rt.remove_pod_sandbox(info["sid"])
