"""limit_malloc_arenas sets glibc's M_ARENA_MAX unless the environment already chose."""

from __future__ import annotations

import os
import subprocess
import sys

import podling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(podling.__file__)))
CODE = "from podling.util.libc import limit_malloc_arenas as f; print(f(2))"


def _run(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", CODE], check=True, capture_output=True,
                          text=True, env={**env, "PYTHONPATH": ROOT}).stdout.strip()


def test_the_limit_is_set_through_mallopt():
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _run(env) == "True"  # glibc: mallopt returned 1


def test_an_environment_setting_wins():
    assert _run({**os.environ, "MALLOC_ARENA_MAX": "4"}) == "False"
