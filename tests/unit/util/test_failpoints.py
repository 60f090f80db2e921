"""Failpoints: parsing, counts, the file that switches them at run time, stand-in programs."""

from __future__ import annotations

import os
import subprocess

import pytest

from podling.util import failpoints
from podling.util.failpoints import Action


@pytest.fixture
def points(monkeypatch, tmp_path):
    """Failpoints from a file the test writes (the environment's term is always on)."""
    path = tmp_path / "failpoints"
    monkeypatch.setenv(failpoints.ENV, "storage.write=enospc")
    monkeypatch.setenv(failpoints.FILE_ENV, str(path))
    failpoints.reload()
    yield path
    monkeypatch.delenv(failpoints.ENV)
    monkeypatch.delenv(failpoints.FILE_ENV)
    failpoints.reload()


def test_parse() -> None:
    assert failpoints.parse("a.b=error; c=2*delay(1.5)\n# off\nd-e=hang") == {
        "a.b": (Action("error"), None), "c": (Action("delay", "1.5"), 2),
        "d-e": (Action("hang"), None)}
    with pytest.raises(failpoints.FailpointSyntaxError):
        failpoints.parse("runc.create")


def test_off_by_default() -> None:
    failpoints.reload()
    assert failpoints.fire("storage.write") is None


def test_counts_and_the_file(points) -> None:
    assert failpoints.fire("storage.write") == Action("enospc")
    assert failpoints.fire("cni.add") is None
    points.write_text("cni.add=2*error\n")
    assert [failpoints.fire("cni.add") for _ in range(3)] == [Action("error"), Action("error"),
                                                              None]
    points.write_text("cni.add=hang; storage.write=bad syntax")  # ignored as a whole
    assert failpoints.fire("cni.add") is None
    assert failpoints.fire("storage.write") == Action("enospc")
    points.unlink()
    assert failpoints.fire("cni.add") is None


def test_stand_ins_fail_or_hang(tmp_path) -> None:
    failing = failpoints.stand_in(str(tmp_path), "runc", Action("error"), stdout='{"a": 1}',
                                  stderr="it's broken")
    done = subprocess.run([failing, "create", "x"], capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (1, '{"a": 1}\n', "it's broken\n")
    hanging = failpoints.stand_in(str(tmp_path), "bridge", Action("hang"))
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([hanging], timeout=0.5)
    assert os.access(hanging, os.X_OK)
    picky = failpoints.stand_in(str(tmp_path), "runc", Action("error"), only_for="create",
                                otherwise="/bin/echo")
    other = subprocess.run([picky, "--root=/r", "delete", "c"], capture_output=True, text=True)
    assert (other.returncode, other.stdout) == (0, "--root=/r delete c\n")
    assert subprocess.run([picky, "create", "c"], capture_output=True).returncode == 1
