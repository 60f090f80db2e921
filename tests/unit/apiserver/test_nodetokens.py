"""Node token records shared through the datastore (StoredRecords): a token issued by one
server is accepted by another on the same datastore, a name is issued once unless replaced,
and a replaced token stops working elsewhere once that server's map is older than its age."""

from __future__ import annotations

from podling.apiserver.nodetokens import StoredRecords
from podling.storage.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_record_made_by_one_server_is_found_by_another() -> None:
    store, clock = MemoryStore(), Clock()
    one = StoredRecords(store, clock=clock)
    other = StoredRecords(store, clock=clock)
    assert await other.node_of("d1") is None  # loads the (empty) map
    assert await one.add("n1", "d1", replace=False)
    assert await other.node_of("d1") is None  # a miss right after a load: not read again
    clock.now += 1.5
    assert await other.node_of("d1") == "n1"


async def test_a_name_is_issued_once_unless_replaced() -> None:
    store, clock = MemoryStore(), Clock()
    one = StoredRecords(store, clock=clock, max_age_seconds=30)
    other = StoredRecords(store, clock=clock, max_age_seconds=30)
    assert await one.add("n1", "d1", replace=False)
    assert not await other.add("n1", "d2", replace=False)
    assert await one.node_of("d2") is None
    assert await other.node_of("d1") == "n1"
    assert await one.add("n1", "d2", replace=True)
    assert await one.node_of("d1") is None and await one.node_of("d2") == "n1"
    assert await other.node_of("d1") == "n1"  # still its map's answer...
    clock.now += 31
    assert await other.node_of("d1") is None  # ...until the map is older than its age
    assert await other.node_of("d2") == "n1"


def test_describe_names_the_datastore_key() -> None:
    records = StoredRecords(MemoryStore(), location="/registry/podling.io/nodetokens/")
    assert records.describe("n1") == ("delete the key /registry/podling.io/nodetokens/n1 "
                                      "from the datastore")
