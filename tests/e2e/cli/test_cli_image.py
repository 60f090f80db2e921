"""`podling image`: flags after the subcommand, `ls --format json`, and progress on stderr
only with --progress (stderr is not a terminal here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from podling.images import build_demo

REPO = str(Path(__file__).resolve().parents[3])


def podling(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.touch()
    out = subprocess.run([sys.executable, "-m", "podling", *args], capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": REPO, "PODLING_CONFIG": str(config)})
    assert out.returncode == 0, out.stderr
    return out


def test_import_with_progress_then_ls_as_json(tmp_path):
    try:
        archive = build_demo.build_busybox(tmp_path / "busybox.tar")
    except build_demo.BuildError as e:
        pytest.skip(str(e))
    data = str(tmp_path / "data")
    assert podling("image", "ls", "--format", "json", "--data-dir", data,
                   tmp_path=tmp_path).stdout == "[]\n"
    out = podling("image", "import", str(archive), "--data-dir", data, tmp_path=tmp_path)
    assert out.stderr == ""  # no terminal, no --progress: nothing on stderr
    podling("image", "rm", "busybox", "--data-dir", data, tmp_path=tmp_path)
    out = podling("image", "import", "--progress", str(archive), "-d", data, tmp_path=tmp_path)
    assert out.stdout.startswith("imported docker.io/library/busybox:latest sha256:")
    assert f"importing {archive} (" in out.stderr and ": done in " in out.stderr
    images = json.loads(podling("image", "ls", "-o", "json", "-d", data,
                                tmp_path=tmp_path).stdout)
    assert [i["repoTags"] for i in images] == [["docker.io/library/busybox:latest"]]
    assert images[0]["id"].startswith("sha256:") and images[0]["size"] > 100_000
    assert set(images[0]) == {"id", "repoTags", "repoDigests", "size", "manifestDigest",
                              "os", "architecture"}


def test_build_demo_progress_only_when_asked(tmp_path):
    try:
        build_demo.find_busybox()
    except build_demo.BuildError as e:
        pytest.skip(str(e))
    out_dir = tmp_path / "demo"
    config = tmp_path / "config.yaml"
    config.touch()
    out = subprocess.run([sys.executable, "-m", "podling", "image", "build-demo", "--progress",
                          str(out_dir)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": REPO, "PODLING_CONFIG": str(config)})
    if out.returncode != 0:
        pytest.skip(f"cannot build the demo images here: {out.stderr}")
    assert [line.split()[0] for line in out.stdout.splitlines()] == [
        str(out_dir / "busybox.tar"), str(out_dir / "nginx.tar")]
    assert out.stderr.startswith(f"building the offline images in {out_dir}: done in ")
