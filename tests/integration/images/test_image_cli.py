"""``podling image`` end to end, as subprocesses with a temporary --data-dir."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podling.images import build_demo

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}


def podling(data_dir: Path, *args: str, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "podling", "image", "--data-dir",
                          str(data_dir), *args], capture_output=True, text=True,
                         timeout=timeout, env=ENV)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        build_demo.find_busybox()
    except build_demo.BuildError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("cli-demo")
    result = podling(out / "unused", "build-demo", str(out), check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot build the demo images here: {result.stderr}")
    assert "busybox.tar" in result.stdout and "nginx.tar" in result.stdout
    return out


def test_import_ls_inspect_rm_prune(demo_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("busybox", "nginx"):
        out = podling(data, "import", str(demo_dir / f"{name}.tar"))
        assert f"imported docker.io/library/{name}:latest sha256:" in out.stdout
    rows = podling(data, "ls").stdout.splitlines()
    assert rows[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "SIZE"]
    assert [r.split()[:2] for r in rows[1:]] == [["docker.io/library/busybox", "latest"],
                                                 ["docker.io/library/nginx", "latest"]]
    assert all(re.fullmatch(r"[0-9a-f]{13}", r.split()[2]) for r in rows[1:])
    doc = json.loads(podling(data, "inspect", "nginx").stdout)
    assert doc["names"] == ["docker.io/library/nginx:latest"]
    assert doc["config"]["exposed_ports"] == ["80/tcp"]
    assert len(doc["rootfs_layers"]) == 2 and all(os.path.isdir(p)
                                                  for p in doc["rootfs_layers"])
    ids = podling(data, "ls", "-q").stdout.split()
    assert doc["id"] in ids and len(ids) == 2
    missing = podling(data, "inspect", "nope", check=False)
    assert missing.returncode == 1 and "no such image: nope" in missing.stderr
    assert "Deleted: nginx" in podling(data, "rm", "nginx").stdout
    assert not os.path.isdir(doc["rootfs_layers"][1])
    assert os.path.isdir(doc["rootfs_layers"][0])  # still busybox's
    bad = podling(data, "rm", "nginx", check=False)
    assert bad.returncode == 1 and "no such image" in bad.stderr
    out = podling(data, "prune").stdout
    assert "Removed 0 image(s)" in out  # busybox is tagged: kept
    out = podling(data, "prune", "--all").stdout
    assert "Removed 1 image(s)" in out
    assert podling(data, "ls").stdout.splitlines()[1:] == []
    assert os.listdir(data / "images" / "layers" / "sha256") == []
    assert os.listdir(data / "images" / "content" / "blobs" / "sha256") == []


def test_invalid_reference_and_bad_archive(tmp_path: Path) -> None:
    out = podling(tmp_path, "pull", "Not/Valid", check=False)
    assert out.returncode == 1 and "invalid reference format" in out.stderr
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    out = podling(tmp_path, "import", str(tmp_path / "junk.tar"), check=False)
    assert out.returncode == 1 and out.stderr.startswith("podling: ")


@pytest.mark.skipif(not os.access("/usr/bin/docker-registry", os.X_OK),
                    reason="needs Debian's docker-registry")
def test_registry_demo_then_pull_nginx(demo_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    demo = subprocess.Popen([sys.executable, "-m", "podling", "image", "--data-dir",
                             str(data), "registry-demo", str(demo_dir / "regdemo")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, "PODLING_NGINX_DEBS": os.environ.get(
                                "PODLING_NGINX_DEBS", "")}, start_new_session=True)
    registry_pid = 0
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "mirrored" not in line:
            line = demo.stdout.readline()
            assert line, demo.stderr.read() if demo.stderr else "registry-demo exited"
        registry_pid = int(re.search(r"pid (\d+)", line).group(1))
        assert (data / "registries.yaml").exists()
        out = podling(data, "pull", "nginx")
        assert out.stdout.startswith("docker.io/library/nginx:latest sha256:")
        assert "nginx" in podling(data, "ls").stdout
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for stream in (demo.stdout, demo.stderr):
            if stream is not None:
                stream.close()
    assert demo.returncode == 0
    if registry_pid:
        with pytest.raises(ProcessLookupError):
            os.kill(registry_pid, 0)
