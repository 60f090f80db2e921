"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Every candidate runs :meth:`LeaderElector.run` with the same Lease name and its own
identity. At most one is the leader at a time:

    ┌────────── try every retry_period (jittered) ──────────┐
    ▼                                                        │ held by another whose
  acquire: GET the Lease ── missing ──▶ create it (holder = me) ──▶ LEADING
    │                                                        ▲     │ renew every retry_period
    │ held by another, and its record changed less than       │     │ (an update with the
    │ lease_duration ago by *our* clock ──────────────────────┘     │ resourceVersion read)
    │ free, expired, or mine ──▶ update it (holder = me) ──────────▶ │
                                                                   │ no successful renew
                                           stopped leading ◀───────┘ for renew_deadline

The expiry is judged by when this candidate saw the record last change, on its own clock,
never by comparing the record's renewTime with its clock (client-go's rule; clocks of two
machines need not agree). Each write carries the resourceVersion it was computed from, so
two candidates never both win one version. ``leaseTransitions`` counts changes of holder,
``acquireTime`` is when the current holder took it. :meth:`release` (on a graceful stop)
empties the holder so that another candidate takes over at once instead of after
``lease_duration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Awaitable, Callable

from ..api.errors import ApiError
from ..api.resources import LEASES
from ..api.types import Obj
from ..util.clock import Clock, SystemClock
from ..util.timefmt import epoch_rfc3339
from .rest import ApiClient

log = logging.getLogger(__name__)

JITTER = 1.2  # client-go's JitterFactor: a retry waits retry_period × [1, 2.2)


@dataclass(frozen=True)
class LeaderElectionConfig:
    """kube-scheduler's defaults: 15 s lease, 10 s renew deadline, 2 s retry period."""

    name: str
    identity: str
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    """One candidate (see the module docstring)."""

    def __init__(self, client: ApiClient, config: LeaderElectionConfig, *,
                 clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.is_leader = False
        self._observed: Obj | None = None  # the Lease's spec as last read
        self._observed_at = 0.0  # our monotonic time when it last changed
        self._lease: Obj | None = None  # the Lease as last read or written

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Wait to become the leader, then run ``lead()`` while the lease is renewed.
        Returns when leadership is lost (``lead`` is then cancelled) or ``lead`` returns;
        cancelling ``run`` cancels ``lead``. The caller decides what losing means (the
        Kubernetes components exit)."""
        while not await self.try_acquire_or_renew():
            await self.clock.sleep(self.config.retry_period * (1 + JITTER * self.rng.random()))
        self.is_leader = True
        log.info("%s: %s became the leader", self.config.name, self.config.identity)
        task = asyncio.create_task(lead(), name=f"leading-{self.config.name}")
        try:
            await self._renew_until_lost(task)
        finally:
            self.is_leader = False
            task.cancel()
            [outcome] = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.error("%s: the leader's work failed: %r", self.config.name, outcome)

    async def _renew_until_lost(self, task: asyncio.Task[None]) -> None:
        last_renew = self.clock.monotonic()
        while not task.done():
            await self._sleep_or_done(task, self.config.retry_period)
            if task.done():
                return
            if await self.try_acquire_or_renew():
                last_renew = self.clock.monotonic()
            elif self.clock.monotonic() - last_renew >= self.config.renew_deadline:
                log.warning("%s: %s lost the lease (no renewal for %gs)", self.config.name,
                            self.config.identity, self.config.renew_deadline)
                return

    async def _sleep_or_done(self, task: asyncio.Task[None], seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({sleeper, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sleeper

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the lease afterwards."""
        cfg = self.config
        try:
            lease = await self.client.get(LEASES, cfg.name, cfg.namespace)
        except ApiError as exc:
            if exc.code != 404:
                log.warning("%s: reading the lease: %s", cfg.name, exc.message)
                return False
            return await self._write(None, transitions=0, acquired=None)
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = spec, self.clock.monotonic()
        holder = spec.get("holderIdentity") or ""
        mine = holder == cfg.identity
        duration = spec.get("leaseDurationSeconds") or cfg.lease_duration
        if holder and not mine and self.clock.monotonic() < self._observed_at + duration:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        return await self._write(lease, transitions=transitions,
                                 acquired=spec.get("acquireTime") if mine else None)

    async def _write(self, lease: Obj | None, *, transitions: int,
                     acquired: str | None) -> bool:
        """Write the Lease as held by this candidate; ``acquired``: the acquireTime to keep
        (None: taken now)."""
        cfg = self.config
        now = epoch_rfc3339(self.clock.now(), micro=True)
        spec = {"holderIdentity": cfg.identity,
                "leaseDurationSeconds": int(cfg.lease_duration),
                "acquireTime": acquired or now, "renewTime": now,
                "leaseTransitions": transitions}
        try:
            if lease is None:
                self._lease = await self.client.create(LEASES, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                    "spec": spec}, cfg.namespace)
            else:  # carries the resourceVersion read: a concurrent writer makes this a 409
                self._lease = await self.client.update(LEASES, dict(lease, spec=spec))
        except ApiError as exc:
            if exc.code not in (409, 404):
                log.warning("%s: writing the lease: %s", cfg.name, exc.message)
            return False
        self._observed, self._observed_at = spec, self.clock.monotonic()
        return True

    async def release(self) -> None:
        """Give the lease up if this candidate's last write of it is still the current one
        (holder emptied, 1 s duration), so that another takes over at once. Best effort:
        errors are logged."""
        if self._lease is None:  # set only by a write of ours, as the holder
            return
        spec = dict(self._lease.get("spec") or {}, holderIdentity="", leaseDurationSeconds=1,
                    renewTime=epoch_rfc3339(self.clock.now(), micro=True))
        try:
            await self.client.update(LEASES, dict(self._lease, spec=spec))
        except ApiError as exc:
            log.warning("%s: releasing the lease: %s", self.config.name, exc.message)
        self._lease = None


async def lead_while_elected(elector: LeaderElector,
                             lead: Callable[[], Awaitable[None]]) -> None:
    """Run ``lead()`` whenever ``elector`` leads (it is cancelled when the lease is lost),
    then campaign again; until cancelled, which also releases the lease."""
    try:
        while True:
            await elector.run(lead)
            await elector.clock.sleep(elector.config.retry_period)  # no hot loop on failures
    finally:
        await elector.release()
