"""The storage conformance suite against every local backend."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

pytest.register_assert_rewrite("podling.storage.testing.conformance")

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


@pytest.fixture(params=[memory_factory, sqlite_factory], ids=["memory", "sqlite"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return request.param(tmp_path)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_storage_conformance(check: Check, factory: StoreFactory) -> None:
    await check(factory)
