"""FakeNetwork behaves like the NetworkPlugin contract says (for the agent's unit tests)."""

from __future__ import annotations

import pytest

from podling.network.fake import Call, FakeNetwork
from podling.network.interface import NetworkError, NetworkPlugin, PodNetworkInfo


def pod(sid: str) -> PodNetworkInfo:
    return PodNetworkInfo("default", f"p-{sid}", f"uid-{sid}", sid)


def test_is_a_network_plugin():
    assert isinstance(FakeNetwork(), NetworkPlugin)


async def test_allocates_in_cidr_and_releases():
    net = FakeNetwork("10.9.0.0/29")
    a = await net.setup_pod("/run/netns/a", pod("a"))
    b = await net.setup_pod("/run/netns/b", pod("b"))
    assert (a.ips, a.gateway, a.prefix_lengths) == (("10.9.0.2",), "10.9.0.1", (29,))
    assert b.primary == "10.9.0.3"
    assert await net.setup_pod("/run/netns/a", pod("a")) == a  # already attached: same IP
    await net.teardown_pod("/run/netns/a", pod("a"))
    await net.teardown_pod(None, pod("a"))  # idempotent
    await net.teardown_pod(None, pod("never"))  # never set up: success
    assert net.attached == {"b": "10.9.0.3"}
    c = await net.setup_pod("/run/netns/c", pod("c"))
    assert c.primary == "10.9.0.2"  # the released address is reused, lowest first


async def test_exhaustion():
    net = FakeNetwork("10.9.0.0/30")  # one pod address
    await net.setup_pod("/x", pod("a"))
    with pytest.raises(NetworkError, match="no IP addresses available"):
        await net.setup_pod("/y", pod("b"))


async def test_call_log_and_error_injection():
    net = FakeNetwork()
    net.fail_next("setup_pod", NetworkError("boom"), times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="boom"):
            await net.setup_pod("/x", pod("a"))
    assert net.attached == {}
    await net.setup_pod("/x", pod("a"))
    assert net.methods() == ["setup_pod"] * 3
    assert net.calls[-1] == Call("setup_pod", "/x", pod("a"))
    net.fail_next("teardown_pod", NetworkError("stuck"))
    with pytest.raises(NetworkError):
        await net.teardown_pod("/x", pod("a"))
    assert "a" in net.attached  # failed teardown changed nothing


async def test_ready_and_purge():
    net = FakeNetwork(ready=False)
    assert await net.ready() is False
    net.is_ready = True
    assert await net.ready() is True
    await net.setup_pod("/x", pod("a"))
    await net.purge()
    assert net.attached == {} and net.netns == {}
    assert (await net.setup_pod("/x", pod("b"))).primary == "10.42.0.2"
