"""Record a process with py-spy for a while and summarise where its time went.

    with PySpy(pid, "out.raw", gil=True):    # py-spy record --format raw (idle samples off)
        ...                                  # the work to profile
    print(top_text(summarise("out.raw")))    # the top functions by self and by total samples

``--gil`` keeps only samples of the thread holding the GIL: Python CPU, without threads
blocked in a system call (idle thread-pool workers, waitpid). Used by ``pods_bench.py
--profile DIR``; also runnable on a raw file: ``python bench/pyspy_top.py out.raw [N]``.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
from typing import Any

_LINE = re.compile(r":\d+\)$")
_PREFIX = re.compile(r"\((?:/[^()]*?/)?(site-packages|python3\.\d+|podling)/")
#: frames of every sample (the interpreter's and the event loop's own), left out of "total"
_PLUMBING = ("asyncio/", "runpy", "<module>", "podling/__main__", "podling/cli/main",
             "threading.py)", "concurrent/futures/thread.py")


def py_spy() -> str:
    """The py-spy next to this Python (the venv's), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.path.exists(here) else (shutil.which("py-spy") or "py-spy")


class PySpy:
    """``py-spy record`` of ``pid`` into ``path`` (raw format) while the block runs."""

    def __init__(self, pid: int, path: str, *, gil: bool = True, rate: int = 100) -> None:
        self.cmd = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--rate",
                    str(rate), "--nonblocking", "-o", path] + (["--gil"] if gil else [])
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PySpy:
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _frame(raw: str) -> str:
    return _PREFIX.sub(r"(\1/", _LINE.sub(")", raw))


def summarise(path: str, n: int = 15) -> dict[str, Any]:
    """``{"samples", "self": [[function, %], ...], "total": [...]}``, the top ``n`` each;
    functions are ``name (file)`` (line numbers merged); ``total`` counts a function once
    per sample it is on the stack of, without the event loop's and threads' plumbing."""
    self_c: collections.Counter[str] = collections.Counter()
    total_c: collections.Counter[str] = collections.Counter()
    samples = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            c = int(count)
            samples += c
            frames = [_frame(x) for x in stack.split(";")]
            self_c[frames[-1]] += c
            for frame in set(frames):
                if not any(p in frame for p in _PLUMBING):
                    total_c[frame] += c

    def top(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(100.0 * c / samples, 1)] for name, c in counter.most_common(n)]
    return {"samples": samples, "self": top(self_c) if samples else [],
            "total": top(total_c) if samples else []}


def top_text(summary: dict[str, Any]) -> str:
    lines = [f"py-spy: {summary['samples']} samples", "  self %   function"]
    lines += [f"  {pct:6.1f}   {name}" for name, pct in summary["self"]]
    lines += ["  total %  function"]
    lines += [f"  {pct:6.1f}   {name}" for name, pct in summary["total"]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(top_text(summarise(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15)))
