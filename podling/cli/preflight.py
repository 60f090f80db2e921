"""Checks before a node agent starts, each failing with one line that says what to do.

* the host programs a node runs: runc, conmon, catatonit, iptables (found as the runtime
  finds them: on PATH, also in /usr/sbin, /sbin, /usr/local/sbin) and the CNI plugins
  podling uses (bridge, host-local, portmap in /usr/lib/cni or /opt/cni/bin);
* the data dir's filesystem can hold overlayfs upper dirs (container root filesystems are
  overlay mounts there): an overlay is mounted and unmounted in ``<data-dir>/agent``.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile

from ..network import cni_config
from ..util import mounts
from .errors import CliError

# program → Debian package
NODE_BINARIES = {"runc": "runc", "conmon": "conmon", "catatonit": "catatonit",
                 "iptables": "iptables"}
CNI_PACKAGE = "containernetworking-plugins"
_SBIN = ":/usr/sbin:/sbin:/usr/local/sbin"


def missing_binaries(path: str | None = None) -> dict[str, str]:
    """The programs (and CNI plugins, as ``cni/<name>``) a node needs that are missing,
    each with the Debian package that provides it."""
    search = (os.environ.get("PATH", "") if path is None else path) + _SBIN
    missing = {name: package for name, package in NODE_BINARIES.items()
               if shutil.which(name, path=search) is None}
    plugin_dir = cni_config.default_plugin_dir()
    for plugin in cni_config.REQUIRED_PLUGINS:
        if not os.access(os.path.join(plugin_dir, plugin), os.X_OK):
            missing[f"{plugin_dir}/{plugin}"] = CNI_PACKAGE
    return missing


def check_binaries(hint: str = "") -> None:
    missing = missing_binaries()
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise CliError(f"podling: missing {', '.join(missing)}: apt-get install {packages}"
                       + (f" ({hint})" if hint else ""))


def _filesystem(path: str) -> str:
    """The type of the filesystem ``path`` is on (the deepest mount above it)."""
    real = os.path.realpath(path)
    best, fstype = "", "unknown"
    for point, kind, _ in mounts.mount_table():
        if (real == point or real.startswith(point.rstrip("/") + "/")) \
                and len(point) >= len(best):
            best, fstype = point, kind
    return fstype


def check_overlay(data_dir: str) -> None:
    """Mount a throw-away overlay in ``<data_dir>/agent``; a CliError if the kernel refuses
    it there. Without the right to mount (not root) there is nothing to learn: no error."""
    base = os.path.join(data_dir, "agent")
    try:
        os.makedirs(base, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".overlay-check-", dir=base)
    except OSError as exc:
        raise CliError(f"podling: cannot use data dir {data_dir}: {exc.strerror}") from None
    try:
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(probe, name))
        options = (f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work")
        try:
            mounts.mount("overlay", f"{probe}/merged", "overlay", 0, options)
        except OSError as exc:
            if exc.errno == errno.EPERM:
                return
            raise CliError(
                f"podling: data dir {data_dir} is on a {_filesystem(data_dir)} filesystem "
                f"where overlayfs cannot work ({os.strerror(exc.errno or 0)}): choose a "
                "--data-dir on ext4, xfs or btrfs") from None
        mounts.unmount(f"{probe}/merged", lazy=False)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def check_node_host(data_dir: str, hint: str = "") -> None:
    """Everything above, binaries first."""
    check_binaries(hint)
    check_overlay(data_dir)
