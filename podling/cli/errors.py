"""The command line's errors: one line on stderr and an exit status, never a traceback.

Exit statuses (as k3s and most CLIs): 1 for an error while running, 2 for a usage error (a
bad flag, environment or config file value).
"""

from __future__ import annotations


class CliError(Exception):
    """An error to print as is (one line) before exiting with ``status``."""

    status = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(CliError):
    """A bad flag, environment variable or config file value."""

    status = 2
