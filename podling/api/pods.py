"""Pure helpers about Pod objects (JSON dicts) that every layer asks the same way.

The pod phase state machine (core/v1 PodPhase)::

    Pending ──▶ Running ──▶ Succeeded | Failed      (terminal: never left again)
       └──────────────────▶ Succeeded | Failed
    Unknown: the node cannot be reached (set by the API side, not by the agent)

A pod in a terminal phase holds no resources on its node, cannot be scheduled, exec'd or
attached to; Kubernetes calls this ``IsPodPhaseTerminal`` / ``IsPodTerminal``. Nothing here
does I/O or mutates its arguments.
"""

from __future__ import annotations

from typing import Any, Mapping

PENDING, RUNNING, SUCCEEDED, FAILED, UNKNOWN = (
    "Pending", "Running", "Succeeded", "Failed", "Unknown")
TERMINAL_PHASES = (SUCCEEDED, FAILED)


def phase(pod: Mapping[str, Any]) -> str:
    """``status.phase``, or '' when the pod has no status yet."""
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminal_phase(value: str | None) -> bool:
    """True for Succeeded and Failed."""
    return value in TERMINAL_PHASES


def is_terminal(pod: Mapping[str, Any]) -> bool:
    """True when the pod's phase is terminal (Succeeded or Failed)."""
    return is_terminal_phase(phase(pod))
