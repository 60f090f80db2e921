"""The errors of turning a container spec into a runtime config.

Each carries the container's waiting reason, as the kubelet reports it in the container
status (``CreateContainerConfigError``, ``CreateContainerError``).
"""

from __future__ import annotations

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"


class ContainerConfigError(Exception):
    """The container cannot be configured; ``reason`` is the container's waiting reason."""

    def __init__(self, message: str, reason: str = CREATE_CONTAINER_CONFIG_ERROR) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

