"""A small etcd v3 client over etcd's JSON gateway (``/v3/kv/...``, ``/v3/watch``), on aiohttp.

Why our own: the calls the store needs are few (range, txn, watch, compaction, status), the
gateway ships with every etcd 3.4+ server (Debian's ``etcd-server`` included), and aiohttp
is already how podling speaks HTTP. The gRPC clients would add a large native dependency,
and the pure-Python ones are not kept up with etcd.

Wire form: keys and values are base64 in JSON; 64-bit integers come back as strings; fields
at their default (a revision of 0, ``succeeded: false``, event type PUT) are left out.

Endpoints. Every request goes to the current endpoint. On a connection failure or a 5xx the
client moves to the next one and tries it, once around the list (:meth:`EtcdClient.call`
repeats a pass that no endpoint took, e.g. during a leader election, for up to ``timeout``
seconds). Then it raises :class:`EtcdUnavailable`. A request waits at most ``timeout``
seconds per endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp

RETRY_PAUSE = 0.2  # seconds between passes over the endpoints


class EtcdError(Exception):
    """etcd answered with an error (a bad request, a failed precondition of its own)."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered (all down, no quorum, or timed out)."""


class EtcdCompacted(EtcdError):
    """A watch asked for a revision that etcd has compacted away."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (oldest kept: {compact_revision})")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """One change: ``deleted`` or a put of ``kv`` (``kv.value`` is empty for a delete)."""

    deleted: bool
    kv: KeyValue


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def prefix_end(prefix: str) -> str:
    """The ``range_end`` that makes a range or watch cover every key starting with ``prefix``
    (its last byte plus one; prefixes here end in "/", so there is no carry)."""
    data = prefix.encode()
    return (data[:-1] + bytes([data[-1] + 1])).decode()


def kv_of(raw: dict[str, Any]) -> KeyValue:
    """A KeyValue from its JSON form."""
    return KeyValue(base64.b64decode(raw["key"]).decode(),
                    base64.b64decode(raw.get("value", "")),
                    int(raw.get("create_revision", 0)), int(raw.get("mod_revision", 0)))


def _revision(answer: dict[str, Any]) -> int:
    return int((answer.get("header") or {}).get("revision", 0))


class EtcdClient:
    """See the module docstring. ``endpoints``: ``http(s)://host:port`` URLs."""

    def __init__(self, endpoints: list[str], *, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 10.0) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self._current = 0
        self._timeout = timeout
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context if ssl_context else False))

    async def close(self) -> None:
        await self._session.close()

    # -- unary calls ---------------------------------------------------------------------

    async def call(self, path: str, body: dict[str, Any], *,
                   timeout: float | None = None) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<path>`` on the first endpoint that answers, from the
        current one on. A pass in which no endpoint took the request (connection refused,
        or etcd busy electing a leader) is repeated for up to ``timeout`` seconds (the
        client's by default); a request that timed out is not repeated (etcd may still
        commit it)."""
        timeout = self._timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            failures: list[str] = []
            retry = await self._pass(path, body, failures, timeout)
            if isinstance(retry, dict):
                return retry
            if not retry or asyncio.get_running_loop().time() >= deadline:
                raise EtcdUnavailable("no endpoint answered: " + "; ".join(failures))
            await asyncio.sleep(RETRY_PAUSE)

    async def _pass(self, path: str, body: dict[str, Any], failures: list[str],
                    timeout: float) -> dict[str, Any] | bool:
        """One try of each endpoint: the answer, or whether a new pass may help."""
        retry = True
        start = self._current
        for offset in range(len(self.endpoints)):
            index = (start + offset) % len(self.endpoints)
            endpoint = self.endpoints[index]
            try:
                async with asyncio.timeout(timeout):
                    async with self._session.post(f"{endpoint}/v3/{path}", json=body) as resp:
                        text = await resp.text()
                        if resp.status < 500:
                            answer = json.loads(text) if text else {}
                            if resp.status >= 400:
                                raise EtcdError(answer.get("error") or answer.get("message")
                                                or text)
                            self._current = index
                            return answer
                        failures.append(f"{endpoint}: HTTP {resp.status}: {text[:200]}")
                        retry = retry and "leader" in text  # not applied: try again
            except aiohttp.ClientConnectorError as exc:  # never reached etcd
                failures.append(f"{endpoint}: {exc}")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                failures.append(f"{endpoint}: {type(exc).__name__}: {exc}")
                retry = False  # it may have reached etcd: the outcome is unknown
        self._current = (start + 1) % len(self.endpoints)
        return retry

    async def range(self, key: str, *, end: str | None = None, keys_only: bool = False,
                    min_mod_revision: int = 0, timeout: float | None = None
                    ) -> tuple[list[KeyValue], int]:
        """The keys from ``key`` (to ``end``, exclusive) and the store's revision (a
        linearizable read); ``keys_only``: without their values; ``min_mod_revision``: only
        keys modified at or after it."""
        body: dict[str, Any] = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        if keys_only:
            body["keys_only"] = True
        if min_mod_revision:
            body["min_mod_revision"] = str(min_mod_revision)
        answer = await self.call("kv/range", body, timeout=timeout)
        return [kv_of(raw) for raw in answer.get("kvs", [])], _revision(answer)

    async def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
                  failure: list[dict[str, Any]]) -> tuple[bool, int, list[dict[str, Any]]]:
        """(succeeded, the store's revision after it, the responses of the branch taken)."""
        answer = await self.call("kv/txn", {"compare": compare, "success": success,
                                            "failure": failure})
        return bool(answer.get("succeeded")), _revision(answer), answer.get("responses", [])

    async def compact(self, revision: int) -> None:
        await self.call("kv/compaction", {"revision": str(revision)})

    # -- watch ---------------------------------------------------------------------------

    async def watch(self, key: str, *, end: str, start_revision: int
                    ) -> AsyncIterator[tuple[int, list[WatchedEvent]]]:
        """(progress, events) batches for the keys in [key, end) from ``start_revision``.
        ``progress`` is non-zero only in etcd's progress notifications (no events): every
        event up to that revision has been sent. The answer that confirms the watch is
        not one (its revision is the store's, with the events still to come). Ends with
        :class:`EtcdCompacted` when the revision is gone, with :class:`EtcdUnavailable`
        when the stream breaks (the caller resumes)."""
        endpoint = self.endpoints[self._current]
        request = {"create_request": {"key": b64(key), "range_end": b64(end),
                                      "start_revision": str(start_revision),
                                      "progress_notify": True}}
        try:
            async with self._session.post(f"{endpoint}/v3/watch", json=request,
                                          timeout=aiohttp.ClientTimeout(
                                              total=None, connect=self._timeout)) as resp:
                if resp.status != 200:
                    raise EtcdUnavailable(f"{endpoint}: watch: HTTP {resp.status}")
                async for line in resp.content:
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result")
                    if result is None:
                        raise EtcdUnavailable(f"{endpoint}: watch: {line[:200]!r}")
                    compacted = int(result.get("compact_revision", 0))
                    if compacted:
                        raise EtcdCompacted(compacted)
                    if result.get("canceled"):
                        raise EtcdUnavailable(f"{endpoint}: watch canceled: "
                                              f"{result.get('cancel_reason', '')}")
                    events = [WatchedEvent(raw.get("type") == "DELETE", kv_of(raw["kv"]))
                              for raw in result.get("events", [])]
                    progress = 0 if events or result.get("created") else _revision(result)
                    yield progress, events
        except (aiohttp.ClientError, OSError) as exc:
            self._current = (self._current + 1) % len(self.endpoints)
            raise EtcdUnavailable(f"{endpoint}: watch: {type(exc).__name__}: {exc}") from exc
        self._current = (self._current + 1) % len(self.endpoints)
        raise EtcdUnavailable(f"{endpoint}: watch stream ended")
