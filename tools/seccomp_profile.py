#!/usr/bin/env python3
"""Write podling's RuntimeDefault seccomp data (podling/runtime/oci/seccomp_default.json).

The allow-list is every system call the kernel headers of this machine name for x86_64
and i386 (``<asm/unistd_64.h>``, ``<asm/unistd_32.h>``, from Debian's linux-libc-dev),
minus the calls a container must not make without a capability, which are listed here
by the capability that allows them, and minus the calls no container gets at all. Run it
again after a kernel-headers update and commit the result:

    python3 tools/seccomp_profile.py
"""

from __future__ import annotations

import json
import os
import re
import sys

HEADERS = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
           "/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "podling", "runtime", "oci", "seccomp_default.json")

#: allowed only when the container holds the capability
BY_CAPABILITY = {
    "CAP_SYS_ADMIN": [
        "bpf", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
        "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
        "sethostname", "setns", "swapoff", "swapon", "syslog", "umount", "umount2",
        "unshare", "pivot_root"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64",
                     "adjtimex", "clock_adjtime", "clock_adjtime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
}

#: never allowed: obsolete, unimplemented, or a kernel attack surface containers do not need
NEVER = [
    "add_key", "keyctl", "request_key",  # the kernel keyring is not namespaced
    "kexec_load", "kexec_file_load", "create_module", "get_kernel_syms", "query_module",
    "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "afs_syscall", "tuxcall",
    "security", "getpmsg", "putpmsg", "vserver", "break", "ftime", "gtty", "stty", "lock",
    "mpx", "prof", "profil", "ulimit", "idle", "move_pages", "migrate_pages",
    "personality",  # allowed for the harmless personas only, by an argument rule
    "clone",  # allowed without namespace flags, by an argument rule
]


def names(header: str) -> set[str]:
    with open(header) as f:
        return set(re.findall(r"#define __NR_(\w+)\s+\d+", f.read()))


def main() -> int:
    every: set[str] = set()
    for header in HEADERS:
        every |= names(header)
    gated = {name for calls in BY_CAPABILITY.values() for name in calls}
    allowed = sorted(every - gated - set(NEVER))
    data = {"comment": "written by tools/seccomp_profile.py; see podling/runtime/oci/"
                       "seccomp.py", "allow": allowed,
            "byCapability": {cap: sorted(calls) for cap, calls in sorted(BY_CAPABILITY.items())}}
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"{OUT}: {len(allowed)} calls allowed, {len(gated)} by capability", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
