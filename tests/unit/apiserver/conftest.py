"""Registry fixtures: the real in-memory storage and one RegistryStore per resource."""

from __future__ import annotations

import pytest

from podling.apiserver.app import registry_stores
from podling.apiserver.registry.store import RegistryStore
from podling.storage.memory import MemoryStore


@pytest.fixture
def storage() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def stores(storage: MemoryStore) -> dict[str, RegistryStore]:
    return registry_stores(storage)


@pytest.fixture
def pods(stores: dict[str, RegistryStore]) -> RegistryStore:
    return stores["pods"]
