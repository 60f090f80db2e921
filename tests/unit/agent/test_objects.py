"""ObjectCache: TTL, shared in-flight reads, not-found cached as None, invalidation by pod."""

from __future__ import annotations

import asyncio

import pytest

from podling.agent.objects import ObjectCache
from podling.api.errors import ApiError
from podling.api.resources import CONFIG_MAPS, SECRETS
from podling.util.clock import FakeClock


class CountingClient:
    """An ApiClient.get stand-in over a dict, counting reads; ``gate`` holds reads back."""

    def __init__(self, objects: dict[tuple[str, str, str], dict]) -> None:
        self.objects = objects
        self.reads: list[tuple[str, str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: ApiError | None = None

    async def get(self, resource, name, namespace=None):
        key = (resource.name, namespace, name)
        self.reads.append(key)
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{resource.name} "{name}" not found')
        return self.objects[key]


def cm(name: str, value: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"}, "data": {"k": value}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_reads_once_within_the_ttl_and_again_after(clock):
    client = CountingClient({("configmaps", "ns", "a"): cm("a", "1")})
    cache = ObjectCache(client, ttl=10, clock=clock.monotonic)  # type: ignore[arg-type]
    assert (await cache.get(CONFIG_MAPS, "ns", "a"))["data"] == {"k": "1"}
    client.objects[("configmaps", "ns", "a")] = cm("a", "2")
    clock.advance(9)
    assert (await cache.get(CONFIG_MAPS, "ns", "a"))["data"] == {"k": "1"}
    clock.advance(1)
    assert (await cache.get(CONFIG_MAPS, "ns", "a"))["data"] == {"k": "2"}
    assert len(client.reads) == 2


async def test_missing_object_is_none_and_cached(clock):
    client = CountingClient({})
    cache = ObjectCache(client, ttl=10, clock=clock.monotonic)  # type: ignore[arg-type]
    assert await cache.get(SECRETS, "ns", "gone") is None
    assert await cache.get(SECRETS, "ns", "gone") is None
    assert client.reads == [("secrets", "ns", "gone")]


async def test_concurrent_gets_share_one_read(clock):
    client = CountingClient({("configmaps", "ns", "a"): cm("a", "1")})
    client.gate.clear()
    cache = ObjectCache(client, ttl=10, clock=clock.monotonic)  # type: ignore[arg-type]
    gets = [asyncio.create_task(cache.get(CONFIG_MAPS, "ns", "a")) for _ in range(5)]
    await asyncio.sleep(0)
    client.gate.set()
    results = await asyncio.gather(*gets)
    assert [r["data"] for r in results] == [{"k": "1"}] * 5
    assert len(client.reads) == 1


async def test_other_errors_propagate_and_are_not_cached(clock):
    client = CountingClient({("configmaps", "ns", "a"): cm("a", "1")})
    client.error = ApiError(500, "InternalError", "boom")
    cache = ObjectCache(client, ttl=10, clock=clock.monotonic)  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        await cache.get(CONFIG_MAPS, "ns", "a")
    client.error = None
    assert (await cache.get(CONFIG_MAPS, "ns", "a"))["data"] == {"k": "1"}


async def test_invalidate_pod_forgets_only_what_the_pod_refers_to(clock):
    client = CountingClient({("configmaps", "ns", "a"): cm("a", "1"),
                             ("configmaps", "ns", "b"): cm("b", "1"),
                             ("secrets", "ns", "s"): {"metadata": {"name": "s"}}})
    cache = ObjectCache(client, ttl=100, clock=clock.monotonic)  # type: ignore[arg-type]
    for resource, name in ((CONFIG_MAPS, "a"), (CONFIG_MAPS, "b"), (SECRETS, "s")):
        await cache.get(resource, "ns", name)
    pod = {"metadata": {"name": "p", "namespace": "ns"},
           "spec": {"volumes": [{"name": "v", "configMap": {"name": "a"}},
                                {"name": "w", "secret": {"secretName": "s"}}]}}
    cache.invalidate_pod(pod)
    for resource, name in ((CONFIG_MAPS, "a"), (CONFIG_MAPS, "b"), (SECRETS, "s")):
        await cache.get(resource, "ns", name)
    assert client.reads[3:] == [("configmaps", "ns", "a"), ("secrets", "ns", "s")]
