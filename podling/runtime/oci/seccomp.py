"""seccomp profiles for containers (the ``linux.seccomp`` block of config.json).

``SecurityOptions.seccomp`` says which (CRI's profile names):

    ""                    Unconfined: no filter (Kubernetes' default when a pod names none)
    "runtime/default"     RuntimeDefault: :func:`runtime_default`
    "localhost/<path>"    Localhost: the OCI seccomp block in the file at <path> (absolute;
                          the agent resolves ``localhostProfile`` under its seccomp dir)

**RuntimeDefault** denies with EPERM every system call not on its allow-list
(``seccomp_default.json``, written by ``tools/seccomp_profile.py``: the kernel's calls
minus those gated by a capability and those no container gets). A call gated by a
capability is allowed when the container holds that capability. Two calls are allowed by
their arguments: ``clone`` without namespace flags (with CAP_SYS_ADMIN, any ``clone``),
and ``personality`` for the harmless personas only. Without CAP_SYS_ADMIN, ``clone3``
fails with ENOSYS so that the C library falls back to ``clone``, whose flags a filter can
see. A privileged container is never filtered (Kubernetes: privileged implies
Unconfined).
"""

from __future__ import annotations

import functools
import json
import os
import platform
from typing import Any

from ..interface import SECCOMP_LOCALHOST, SECCOMP_RUNTIME_DEFAULT, InvalidConfig

EPERM, ENOSYS = 1, 38
#: the clone flags that make namespaces: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
#: NEWPID, NEWNET (and NEWTIME, which clone cannot take)
NAMESPACE_FLAGS = 0x7E020000
#: PER_LINUX, PER_LINUX32, UNAME26 with each, and the query (0xffffffff)
HARMLESS_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
_ARCHITECTURES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                  "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}


@functools.cache
def _data() -> dict[str, Any]:
    with open(os.path.join(os.path.dirname(__file__), "seccomp_default.json")) as f:
        return json.load(f)


def runtime_default(capabilities: list[str]) -> dict[str, Any]:
    """The RuntimeDefault block for a container holding ``capabilities`` (CAP_X names)."""
    data = _data()
    allowed = set(data["allow"])
    for cap in capabilities:
        allowed.update(data["byCapability"].get(cap, ()))
    rules: list[dict[str, Any]] = [{"names": sorted(allowed), "action": "SCMP_ACT_ALLOW"}]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]} for persona in HARMLESS_PERSONAS]
    if "CAP_SYS_ADMIN" in capabilities:
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW"})
    else:
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": _clone_flags_index(), "value": NAMESPACE_FLAGS, "valueTwo": 0,
             "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    block: dict[str, Any] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
                             "syscalls": rules}
    architectures = _ARCHITECTURES.get(platform.machine())
    if architectures:
        block["architectures"] = architectures
    return block


def _clone_flags_index() -> int:
    """Where clone's flags are: its first argument, except on s390x (the second)."""
    return 1 if platform.machine() == "s390x" else 0


def profile_for(seccomp: str, capabilities: list[str], *, privileged: bool
                ) -> dict[str, Any] | None:
    """The ``linux.seccomp`` block for ``SecurityOptions.seccomp`` (None: no filter).
    Reads a Localhost profile's file; InvalidConfig when it cannot be read or is no JSON
    object (the container is not created: CreateContainerError)."""
    if privileged or not seccomp:
        return None
    if seccomp == SECCOMP_RUNTIME_DEFAULT:
        return runtime_default(capabilities)
    if not seccomp.startswith(SECCOMP_LOCALHOST):
        raise InvalidConfig(f"unknown seccomp profile {seccomp!r}")
    path = seccomp[len(SECCOMP_LOCALHOST):]
    try:
        with open(path) as f:
            profile = json.load(f)
    except OSError as exc:
        raise InvalidConfig(f"cannot load seccomp profile {path!r}: "
                            f"{exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidConfig(f"seccomp profile {path!r} is not JSON: {exc}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise InvalidConfig(f"seccomp profile {path!r} is not a seccomp profile (no "
                            "defaultAction)")
    return profile
