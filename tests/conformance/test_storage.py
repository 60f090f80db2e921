"""The storage conformance suite against every local backend."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Iterator

import pytest

pytest.register_assert_rewrite("podling.storage.testing.conformance")

from podling.storage.etcd import EtcdClient, EtcdStore  # noqa: E402
from podling.storage.etcd.testing import EtcdProcess  # noqa: E402
from podling.storage.interface import Storage  # noqa: E402
from podling.storage.memory import MemoryStore  # noqa: E402
from podling.storage.sqlite import SqliteStore  # noqa: E402
from podling.storage.testing.conformance import CHECKS, Check, StoreFactory  # noqa: E402


def memory_factory(tmp_path: Path) -> StoreFactory:
    async def factory(*, history: int) -> Storage:
        return MemoryStore(history=history)
    return factory


def sqlite_factory(tmp_path: Path) -> StoreFactory:
    numbers = itertools.count()

    async def factory(*, history: int) -> Storage:
        return await SqliteStore.open(str(tmp_path / f"store-{next(numbers)}.db"),
                                      history=history)
    return factory


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """One etcd member for the module; each store gets a prefix of its own in it."""
    with EtcdProcess(str(tmp_path_factory.mktemp("etcd"))) as process:
        yield process


def etcd_factory(tmp_path: Path, etcd: EtcdProcess) -> StoreFactory:
    async def factory(*, history: int) -> Storage:
        return await EtcdStore.open(EtcdClient([etcd.url]),
                                    prefix=f"/podling-test/{uuid.uuid4().hex}",
                                    history=history)
    return factory


@pytest.fixture(params=["memory", "sqlite", "etcd"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "etcd":
        return etcd_factory(tmp_path, request.getfixturevalue("etcd"))
    return {"memory": memory_factory, "sqlite": sqlite_factory}[request.param](tmp_path)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_storage_conformance(check: Check, factory: StoreFactory) -> None:
    await check(factory)
