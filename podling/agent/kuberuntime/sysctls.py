"""The kubelet's sysctl admission: which ``spec.securityContext.sysctls`` a pod may set.

A sysctl is admitted when it is one of Kubernetes' safe sysctls (namespaced, and isolated
from other pods) or matches the node's ``--allowed-unsafe-sysctls`` (names, or prefixes
ending in ``*``, each of a namespaced group: ``kernel.shm*``, ``kernel.msg*``,
``kernel.sem``, ``fs.mqueue.*``, ``net.*``). A ``net`` sysctl is refused for a pod on the
host's network, an ``ipc`` one for a pod in the host's IPC namespace. A refusal is reason
``SysctlForbidden``, message ``forbidden sysctl: "<name>" not allowlisted`` or
``forbidden sysctl: "<name>" not allowed with host net enabled``. Names may be written
with slashes (``net/ipv4/tcp_syncookies``); they are judged in the dotted form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line checks patterns with this module: keep it light
    from podling.api.views import PodView

FORBIDDEN = "SysctlForbidden"
_IPC = ("kernel.shm", "kernel.msg", "fs.mqueue.")


def dotted(name: str) -> str:
    """``net/ipv4/ip_forward`` → ``net.ipv4.ip_forward`` (a name whose first separator is a
    slash has its slashes and dots swapped, as Kubernetes reads it)."""
    first = next((c for c in name if c in "./"), ".")
    return name.translate(str.maketrans("./", "/.")) if first == "/" else name


def namespace_of(name: str) -> str:
    """"ipc", "net", or "" for a sysctl no pod namespace isolates."""
    if name == "kernel.sem" or name.startswith(_IPC):
        return "ipc"
    return "net" if name.startswith("net.") else ""


def unknown_patterns(patterns: tuple[str, ...]) -> list[str]:
    """The ``--allowed-unsafe-sysctls`` entries that are no namespaced sysctl (refused at
    start, as the kubelet does)."""
    return [p for p in patterns if not namespace_of(dotted(p).rstrip("*"))]


def _allowed(name: str, unsafe: tuple[str, ...]) -> bool:
    from podling.api.podsecurity import SAFE_SYSCTLS  # the same list as Pod Security's
    return name in SAFE_SYSCTLS or any(
        name.startswith(p[:-1]) if p.endswith("*") else name == p
        for p in (dotted(u) for u in unsafe))


def sysctl_problem(pod: PodView, unsafe: tuple[str, ...] = ()) -> str | None:
    """The message refusing ``pod``'s first forbidden sysctl, or None."""
    spec = pod.spec
    for raw, _ in spec.security_context.sysctls:
        name = dotted(raw)
        if not _allowed(name, unsafe):
            return f'forbidden sysctl: "{name}" not allowlisted'
        namespace = namespace_of(name)
        if (namespace == "net" and spec.host_network) or (namespace == "ipc" and spec.host_ipc):
            return f'forbidden sysctl: "{name}" not allowed with host {namespace} enabled'
    return None
