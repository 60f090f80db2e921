"""Bounded exponential back-off with jitter, for loops that must never spin on errors."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay n (from 0) is ``min(maximum, initial * factor**n)`` stretched by up to
    ``jitter`` (0.2 → +0..20 %), and never more than ``maximum``."""

    initial: float = 0.8
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2


class Backoff:
    """The delays of one retry loop. Not shared between tasks."""

    def __init__(self, policy: BackoffPolicy = BackoffPolicy(),
                 rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def next(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        p = self.policy
        base = min(p.maximum, p.initial * p.factor ** min(self._failures, 64))
        self._failures += 1
        return min(p.maximum, base * (1 + p.jitter * self._rng.random()))

    def reset(self) -> None:
        """Things work again: the next failure waits ``initial`` once more."""
        self._failures = 0
