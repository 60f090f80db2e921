"""The ServiceAccounts controller and the root CA publisher against a real in-process API
server: every active namespace gets ``default`` and ``kube-root-ca.crt``; they come back
when deleted (and the CA when changed); terminating namespaces get nothing."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from inprocess import wait_until

from podling.api.errors import ApiError
from podling.api.resources import CONFIG_MAPS, NAMESPACES, SERVICE_ACCOUNTS
from podling.client import ApiClient
from podling.controllers import ControllerConfig, ControllerManager
from podling.controllers.serviceaccounts import DESCRIPTION, DESCRIPTION_ANNOTATION

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
async def manager(client: ApiClient) -> AsyncIterator[ControllerManager]:
    running = ControllerManager(client, ControllerConfig(root_ca_pem=CA,
                                                         namespace_retry_seconds=0.02))
    running.start()
    yield running
    await running.stop()


async def get_or_none(client: ApiClient, resource, name: str, ns: str | None) -> dict | None:
    try:
        return await client.get(resource, name, ns)
    except ApiError as exc:
        assert exc.code == 404
        return None


async def test_every_namespace_gets_default_and_the_ca(client: ApiClient,
                                                       manager: ControllerManager) -> None:
    await client.create(NAMESPACES, {"metadata": {"name": "team"}})
    for ns in ("default", "kube-system", "team"):
        await wait_until(lambda: get_or_none(client, SERVICE_ACCOUNTS, "default", ns),
                         f"default ServiceAccount in {ns}")
        cm = await wait_until(lambda: get_or_none(client, CONFIG_MAPS, "kube-root-ca.crt", ns),
                              f"kube-root-ca.crt in {ns}")
        assert cm["data"] == {"ca.crt": CA}
        assert cm["metadata"]["annotations"] == {DESCRIPTION_ANNOTATION: DESCRIPTION}


async def test_deleted_objects_come_back_and_the_ca_is_restored(
        client: ApiClient, manager: ControllerManager) -> None:
    first = await wait_until(lambda: get_or_none(client, SERVICE_ACCOUNTS, "default", "default"),
                             "default ServiceAccount")
    await client.delete(SERVICE_ACCOUNTS, "default", "default")

    async def recreated() -> bool:
        again = await get_or_none(client, SERVICE_ACCOUNTS, "default", "default")
        return bool(again) and again["metadata"]["uid"] != first["metadata"]["uid"]
    await wait_until(recreated, "a new default ServiceAccount")
    await wait_until(lambda: get_or_none(client, CONFIG_MAPS, "kube-root-ca.crt", "default"),
                     "kube-root-ca.crt")
    await client.patch(CONFIG_MAPS, "kube-root-ca.crt", {"data": {"ca.crt": "x", "y": "z"}},
                       "default")

    async def restored() -> bool:
        cm = await get_or_none(client, CONFIG_MAPS, "kube-root-ca.crt", "default")
        return bool(cm) and cm["data"] == {"ca.crt": CA}
    await wait_until(restored, "the CA restored")


async def test_a_terminating_namespace_gets_nothing(client: ApiClient,
                                                    manager: ControllerManager) -> None:
    await client.create(NAMESPACES, {"metadata": {"name": "going"}})
    await wait_until(lambda: get_or_none(client, SERVICE_ACCOUNTS, "default", "going"),
                     "default ServiceAccount in going")
    await client.delete(NAMESPACES, "going")

    async def namespace_gone() -> bool:
        return await get_or_none(client, NAMESPACES, "going", None) is None
    await wait_until(namespace_gone, "the namespace emptied and removed")


def test_no_ca_no_publisher(client: ApiClient) -> None:
    assert ControllerManager(client, ControllerConfig()).root_ca is None
