"""Object ids and signal names."""

from __future__ import annotations

import secrets
import signal as _signal

from ..interface import InvalidConfig


def new_id() -> str:
    """A fresh random id (32 hex digits) for a sandbox or container."""
    return secrets.token_hex(16)


def signal_name(name: str) -> str:
    """Validate a signal given as ``SIGTERM``, ``TERM`` or ``15``; returns ``SIGTERM`` form.
    Raises InvalidConfig for anything else."""
    text = name.strip().upper()
    if text.isdigit():
        try:
            return _signal.Signals(int(text)).name
        except ValueError:
            raise InvalidConfig(f"unknown signal {name!r}") from None
    text = text if text.startswith("SIG") else "SIG" + text
    if not hasattr(_signal.Signals, text):
        raise InvalidConfig(f"unknown signal {name!r}")
    return text
