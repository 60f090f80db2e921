"""Build a tiny busybox root filesystem from the host's busybox-static (for tests)."""

from __future__ import annotations

import os
import shutil
import subprocess

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> str | None:
    """The path of a statically linked busybox, or None."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            return path
    return None


def build_busybox_rootfs(target: str, busybox: str | None = None) -> str:
    """Create ``target`` with /bin/busybox, its applet symlinks, /etc/passwd and /etc/group,
    /tmp and the mount points a container needs. Returns ``target``."""
    busybox = busybox or find_busybox()
    if busybox is None:
        raise FileNotFoundError("busybox not found (apt-get install busybox-static)")
    for sub in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/run"):
        os.makedirs(os.path.join(target, sub), exist_ok=True)
    os.chmod(os.path.join(target, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(target, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(target, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(target, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(target, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return target
