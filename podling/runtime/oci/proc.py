"""Subprocesses with a deadline (docs/architecture.md §4): every child is killed and reaped on
failure.

``run(argv, timeout=…)`` returns a ``Completed`` value for any exit status (callers decide
what a non-zero status means) and raises ``RuntimeCommandError`` only when the command cannot
be started, and CommandTimeout when it does not finish in time. Cancellation kills and reaps the child, then re-raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..interface import RuntimeCommandError


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_text(self) -> str:
        """The child's stderr (or stdout) as one trimmed line for error messages."""
        text = (self.stderr or self.stdout).decode(errors="replace").strip()
        return text or f"exit status {self.returncode}"


class CommandTimeout(RuntimeCommandError):
    """The command did not finish before its deadline (it was killed and reaped)."""


async def kill_and_reap(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL ``proc`` if it is still running and wait for it (never leaves a zombie)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(Exception):
        await asyncio.shield(proc.wait())


async def run(argv: Sequence[str], *, timeout: float, stdin: bytes | None = None,
              env: Mapping[str, str] | None = None,
              pass_fds: Sequence[int] = ()) -> Completed:
    """Run ``argv`` to completion within ``timeout`` seconds, capturing stdout and stderr.

    Raises RuntimeCommandError if the program is missing or the deadline passes (the child
    is killed and reaped first)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None, pass_fds=tuple(pass_fds),
            start_new_session=True)
    except OSError as exc:
        raise RuntimeCommandError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        await kill_and_reap(proc)
        raise CommandTimeout(
            f"{os.path.basename(argv[0])} {' '.join(argv[1:3])} timed out after {timeout:g}s"
        ) from None
    except BaseException:
        await kill_and_reap(proc)
        raise
    assert proc.returncode is not None
    return Completed(tuple(argv), proc.returncode, out, err)


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name (state first), or [] when
    there is no such process. One read."""
    if pid <= 0:
        return []
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2:].split()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in (b"Z", b"X")


def pid_start_time(pid: int) -> int:
    """The process start time in clock ticks since boot (field 22 of /proc/pid/stat), or 0.

    Together with the pid it identifies a process across pid reuse."""
    fields = _stat_fields(pid)
    return int(fields[19]) if len(fields) > 19 else 0


def command_name(pid: int) -> str:
    """The process's command name (``/proc/<pid>/comm``: what its last exec or a
    PR_SET_NAME made it), or "" when there is no such process."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode(errors="replace")
    except OSError:
        return ""


def same_process(pid: int, start_time: int) -> bool:
    """True if ``pid`` is alive (not a zombie) and is the process that had ``start_time``
    (0: any). One read of /proc/<pid>/stat."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in (b"Z", b"X"):
        return False
    return start_time == 0 or (len(fields) > 19 and int(fields[19]) == start_time)


def descendants(pid: int) -> list[int]:
    """``pid``'s living descendants (children first), from the ppid fields in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def kill_tree(pid: int, start_time: int) -> None:
    """SIGKILL ``pid`` and its descendants if ``pid`` is still the process that had
    ``start_time`` (never a reused pid). Descendants are listed before anything is killed."""
    if not same_process(pid, start_time):
        return
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, 9)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def boot_time() -> float:
    """The boot time (epoch seconds) that /proc start times count from."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


@functools.cache
def bounding_set() -> int:
    """This process's capability bounding set (``CapBnd``): what it can grant a child."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return 0


_SKIPPED_DEV_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices(root: str = "/dev") -> list[dict[str, object]]:
    """The host's device nodes as OCI ``linux.devices`` entries, what a privileged container
    gets (containerd's host devices): every character and block device under ``root``,
    except /dev/console and those under pts, shm, fd and mqueue."""
    import stat
    found: list[dict[str, object]] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in _SKIPPED_DEV_DIRS]
        for name in sorted(files):
            path = os.path.join(directory, name)
            if path == os.path.join(root, "console"):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue  # gone meanwhile
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
            if kind:
                found.append({"path": path, "type": kind, "major": os.major(st.st_rdev),
                              "minor": os.minor(st.st_rdev),
                              "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                              "gid": st.st_gid})
    return found
