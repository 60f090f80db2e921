"""`podling completion bash|zsh`: generated from the parser, and bash completes with it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from podling.cli import layers
from podling.cli.completion import script


def complete(*words: str, prefix: str = "") -> list[str]:
    """What bash offers for the last of ``words`` (``podling`` first)."""
    line = " ".join(f"'{w}'" for w in words)
    program = (prefix + script("bash", layers.build_parser())
               + f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _podling; "
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    out = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return [w for w in out.stdout.splitlines() if w]


pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_commands_subcommands_and_flags():
    assert sorted(complete("podling", "")) == sorted([
        "server", "agent", "purge", "image", "token", "kubeconfig", "demo", "completion",
        "kubectl", "--help", "--version"])
    assert complete("podling", "image", "pu") == ["pull"]
    assert complete("podling", "image", "pull", "--data") == ["--data-dir"]
    assert complete("podling", "server", "--node-t") == ["--node-taint", "--node-taints"]
    assert complete("podling", "completion", "") == ["--help", "bash", "zsh"]


def test_flag_values_choices_or_files():
    assert complete("podling", "image", "ls", "--format", "") == ["table", "json"]
    assert complete("podling", "server", "--log-level", "D") == ["DEBUG"]
    assert complete("podling", "server", "--data-dir", "") == []  # bash falls back to files


def test_zsh_loads_the_bash_function():
    text = script("zsh", layers.build_parser())
    assert text.startswith("#compdef podling\n")
    assert "bashcompinit" in text and "complete -o default -F _podling podling" in text


def test_kubectl_words_come_from_kubectl_through_podling(tmp_path):
    """`podling kubectl <TAB>` runs `podling kubectl [--data-dir D] __complete …` (cobra's
    protocol): a fake kubectl answers and records its arguments and KUBECONFIG."""
    import os
    import sys
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    (bin_dir / "kubectl").write_text(
        f'#!/bin/sh\necho "$KUBECONFIG $*" >> {record}\n'
        'printf "get\\tDisplay one or many resources\\ngetx\\n:4\\n"\n')
    (bin_dir / "podling").write_text(
        f'#!/bin/sh\nexec {sys.executable} -m podling "$@"\n')
    for name in ("kubectl", "podling"):
        (bin_dir / name).chmod(0o755)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    env = (f"export PATH={bin_dir}:$PATH PYTHONPATH={repo} KUBECONFIG=/k "
           "PODLING_CONFIG=/nonexistent; ")
    assert complete("podling", "kubectl", "ge", prefix=env) == ["get", "getx"]
    assert complete("podling", "kubectl", "--data-dir", "/d", "get", "po",
                    prefix=env) == []  # the fake offers no "po…"
    assert record.read_text().splitlines() == ["/k __complete ge",
                                               "/d/kubeconfig __complete get po"]
