"""The errors of turning a container spec into a runtime config.

Each carries the container's waiting reason, as the kubelet reports it in the container
status (``CreateContainerConfigError``, ``CreateContainerError``).
"""

from __future__ import annotations

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"


class ContainerConfigError(Exception):
    """The container cannot be configured; ``reason`` is the container's waiting reason.

    ``retry_soon``: the cause lies outside the pod's spec and may go away by itself (a
    ConfigMap or Secret that does not exist yet), so the start is tried again within
    seconds rather than at the next periodic resync."""

    retry_soon = False

    def __init__(self, message: str, reason: str = CREATE_CONTAINER_CONFIG_ERROR) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class UnresolvedReferenceError(ContainerConfigError):
    """A ConfigMap or Secret (or a key of one) the container's environment needs is missing
    or could not be read (``CreateContainerConfigError`` with the kubelet's message)."""

    retry_soon = True
