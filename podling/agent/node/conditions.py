"""The Node's conditions as the kubelet's setters make them: ``MemoryPressure``,
``DiskPressure``, ``PIDPressure`` and ``Ready`` with the kubelet's reasons and messages, and
the node events recorded when one changes. Pure.
"""

from __future__ import annotations

from podling.agent.node.host import Pressure
from podling.api.types import Obj

# type → ((status-if-short reason, message), (status-if-fine reason, message), event names)
_PRESSURE = {
    "MemoryPressure": (("KubeletHasInsufficientMemory",
                        "kubelet has insufficient memory available"),
                       ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                       ("NodeHasInsufficientMemory", "NodeHasSufficientMemory")),
    "DiskPressure": (("KubeletHasDiskPressure", "kubelet has disk pressure"),
                     ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                     ("NodeHasDiskPressure", "NodeHasNoDiskPressure")),
    "PIDPressure": (("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                    ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("NodeHasInsufficientPID", "NodeHasSufficientPID")),
}
CONDITION_TYPES = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def ready_message(problems: list[str]) -> str:
    """The NotReady message: one problem as is, several as ``[a, b]`` (an aggregate error)."""
    return problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"


def desired_conditions(problems: list[str], pressure: Pressure) -> dict[str, tuple[str, str, str]]:
    """type → (status, reason, message), in the kubelet's order."""
    out: dict[str, tuple[str, str, str]] = {}
    for type_, short in (("MemoryPressure", pressure.memory), ("DiskPressure", pressure.disk),
                         ("PIDPressure", pressure.pid)):
        (bad_reason, bad_msg), (ok_reason, ok_msg), _ = _PRESSURE[type_]
        out[type_] = ("True", bad_reason, bad_msg) if short else ("False", ok_reason, ok_msg)
    if problems:
        out["Ready"] = ("False", "KubeletNotReady", ready_message(problems))
    else:
        out["Ready"] = ("True", "KubeletReady", "kubelet is posting ready status")
    return out


def merge_conditions(previous: list[Obj], desired: dict[str, tuple[str, str, str]],
                     now: str) -> list[Obj]:
    """New conditions stamped with ``now`` as heartbeat; ``lastTransitionTime`` is kept from
    ``previous`` when that condition's status is unchanged."""
    before = {c.get("type"): c for c in previous if isinstance(c, dict)}
    out = []
    for type_, (status, reason, message) in desired.items():
        old = before.get(type_) or {}
        transition = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": transition or now})
    return out


def without_heartbeats(status: Obj) -> Obj:
    """``status`` minus the heartbeat times: what decides whether a report is due early."""
    conditions = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                  for c in status.get("conditions") or []]
    return dict(status, conditions=conditions)


def condition_events(previous: list[Obj], current: list[Obj]) -> list[tuple[str, str]]:
    """(type, reason) of the node events the kubelet records for new or flipped conditions:
    ``NodeHasSufficientMemory``…, ``NodeReady`` / ``NodeNotReady``."""
    before = {c.get("type"): c.get("status") for c in previous}
    events = []
    for cond in current:
        type_, status = cond["type"], cond["status"]
        if before.get(type_) == status:
            continue
        if type_ == "Ready":
            reason = "NodeReady" if status == "True" else "NodeNotReady"
        else:
            bad, good = _PRESSURE[type_][2]
            reason = bad if status == "True" else good
        events.append(("Warning" if reason == "NodeNotReady" else "Normal", reason))
    return events
