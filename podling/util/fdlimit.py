"""The process's open-file limit: every client connection holds a file descriptor."""

from __future__ import annotations

import resource


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (Go programs, kube-apiserver and the
    kubelet among them, do this at start; a systemd service's soft default is 1,024).
    Returns the soft limit now in force; never lowers it, never fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft
