"""Restoring stores from a real changelog: committed records only, tombstones, markers, the tail."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.state import (
    Codec,
    MemoryStore,
    RocksDBStore,
    Store,
    changelog_topic,
    json_codec,
    restore,
)

pytestmark = pytest.mark.kafka

# Not a timing assertion: a bound so that a restore that hangs fails the test instead of the run.
HANG_GUARD_S = 120.0

Record = tuple[str, Any]  # key, value (None: tombstone; bytes: sent as they are)


class Changelog:
    """One compacted changelog partition of our own, written with transactions."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.topic = changelog_topic(f"t{uuid.uuid4().hex[:10]}.handoff", "conversations")
        self.tp = TopicPartition(self.topic, 0)

    async def create(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.topic, num_partitions=1, replication_factor=1,
                                                topic_configs={"cleanup.policy": "compact"})])
        finally:
            await admin.close()

    def producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True,
                                transactional_id=f"test-{uuid.uuid4().hex}")

    async def transaction(self, records: list[Record], commit: bool = True) -> None:
        """One transaction of `records`, committed or aborted."""
        producer = self.producer()
        await producer.start()
        try:
            await producer.begin_transaction()
            await self.send(producer, records)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
        finally:
            await producer.stop()

    async def send(self, producer: AIOKafkaProducer, records: list[Record]) -> None:
        for key, value in records:
            raw = value if value is None or isinstance(value, bytes) else orjson.dumps(value)
            await producer.send_and_wait(self.topic, raw, key=key.encode(), partition=0)

    async def restore(self, store: Store) -> dict[TopicPartition, int]:
        consumer = self.consumer()
        await consumer.start()
        try:
            return await asyncio.wait_for(restore(consumer, {self.tp: store}), HANG_GUARD_S)
        finally:
            await consumer.stop()

    def consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                isolation_level="read_committed", enable_auto_commit=False)


@pytest.fixture
async def changelog(kafka_bootstrap: str) -> AsyncIterator[Changelog]:
    log = Changelog(kafka_bootstrap)
    await log.create()
    yield log


class Counting:
    """Wraps a codec and counts its calls."""

    def __init__(self, inner: Codec) -> None:
        self.decodes = 0
        self.encodes = 0
        self.inner = inner
        self.codec = Codec(self._encode, self._decode)

    def _encode(self, value: object) -> bytes:
        self.encodes += 1
        return self.inner.encode(value)

    def _decode(self, raw: bytes) -> object:
        self.decodes += 1
        return self.inner.decode(raw)


StoreMaker = Callable[[Codec], Store]


@pytest.fixture(params=["memory", "rocksdb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    opened: list[Store] = []

    def make(codec: Codec) -> Store:
        store: Store = (MemoryStore("conversations", 0, codec) if request.param == "memory"
                        else RocksDBStore(tmp_path / "conversations-0", "conversations", 0, codec))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


COMMITTED: list[Record] = [
    ("c-1", {"turns": 1}), ("c-2", {"turns": 1}), ("c-3", {"turns": 1}),
    ("c-1", {"turns": 2}), ("c-2", None), ("bad", b"\xff not json"), ("c-4", {"turns": 1}),
    ("c-4", None),
]
ABORTED: list[Record] = [("c-1", {"turns": 99}), ("c-5", {"turns": 1}), ("c-3", None)]


async def test_restore_applies_committed_records_and_tombstones_only(
        changelog: Changelog, make_store: StoreMaker, caplog: pytest.LogCaptureFixture) -> None:
    await changelog.transaction(COMMITTED)
    await changelog.transaction(ABORTED, commit=False)
    counting = Counting(json_codec())
    store = make_store(counting.codec)
    applied = await changelog.restore(store)
    # Nothing decoded or encoded by the restore: the stores keep the records' bytes, and
    # decode a value when it is first read.
    assert (counting.decodes, counting.encodes) == (0, 0)
    assert applied == {changelog.tp: len(COMMITTED)}
    # The plain-data scan reads no model and leaves the undecodable value out.
    assert dict(store.scan()) == {"c-1": {"turns": 2}, "c-3": {"turns": 1}}
    with caplog.at_level(logging.WARNING, logger="streams.state.base"):
        assert store.get("bad") is None  # skipped when read, as if never written
        assert dict(store.items()) == {"c-1": {"turns": 2}, "c-3": {"turns": 1}}
    assert any("'bad'" in r.getMessage() and "undecodable" in r.getMessage()
               for r in caplog.records)
    assert store.get("c-1") == {"turns": 2}
    # Past both transactions' markers: 8 + commit marker + 3 aborted + abort marker.
    assert store.restore_from() == len(COMMITTED) + 1 + len(ABORTED) + 1


async def test_an_open_transaction_does_not_hold_the_restore(
        changelog: Changelog, make_store: StoreMaker) -> None:
    """The restore ends at the last stable offset: end_offsets honours read_committed."""
    await changelog.transaction([("c-1", {"turns": 1})])
    producer = changelog.producer()
    await producer.start()
    try:
        await producer.begin_transaction()
        await changelog.send(producer, [("c-1", {"turns": 7}), ("c-2", {"turns": 1})])
        store = make_store(json_codec())
        applied = await changelog.restore(store)
        assert dict(store.items()) == {"c-1": {"turns": 1}}
        assert applied == {changelog.tp: 1}
        assert store.restore_from() == 2
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def test_rocksdb_reopen_restores_only_the_tail(changelog: Changelog, tmp_path: Path) -> None:
    path = tmp_path / "conversations-0"
    await changelog.transaction(COMMITTED)
    store = RocksDBStore(path, "conversations", 0, json_codec())
    assert await changelog.restore(store) == {changelog.tp: len(COMMITTED)}
    store.close()

    await changelog.transaction([("c-3", {"turns": 5}), ("c-1", None)])
    await changelog.transaction([("c-9", {"turns": 1})], commit=False)
    store = RocksDBStore(path, "conversations", 0, json_codec())
    try:
        assert await changelog.restore(store) == {changelog.tp: 2}
        assert dict(store.items()) == {"c-3": {"turns": 5}}
        store.close()
        store = RocksDBStore(path, "conversations", 0, json_codec())
        # Nothing new, and the markers and aborted records read last time are not read again.
        assert await changelog.restore(store) == {changelog.tp: 0}
    finally:
        store.close()


async def test_a_store_ahead_of_its_changelog_is_dropped_and_rebuilt(
        changelog: Changelog, make_store: StoreMaker) -> None:
    """A resume offset past the end means the topic was recreated: local data is stale."""
    await changelog.transaction([("c-1", {"turns": 1})])
    store = make_store(json_codec())
    store.write({"stale": {"turns": 3}}, 1_000)
    assert await changelog.restore(store) == {changelog.tp: 1}
    assert dict(store.items()) == {"c-1": {"turns": 1}}
    assert store.restore_from() == 2


async def test_the_restore_consumer_can_be_reused(
        changelog: Changelog, kafka_bootstrap: str, make_store: StoreMaker) -> None:
    other = Changelog(kafka_bootstrap)
    await other.create()
    await changelog.transaction([("c-1", {"turns": 1})])
    await other.transaction([("o-1", {"turns": 1}), ("o-2", {"turns": 1})])
    first, second = make_store(json_codec()), MemoryStore("other", 0, json_codec())
    consumer = changelog.consumer()
    await consumer.start()

    def run(stores: dict[TopicPartition, Store]) -> Awaitable[dict[TopicPartition, int]]:
        return asyncio.wait_for(restore(consumer, stores), HANG_GUARD_S)

    try:
        assert await run({changelog.tp: first}) == {changelog.tp: 1}
        # Left assigned but paused (unassigning makes aiokafka's stop() hang); the next
        # restore's assignment replaces it.
        assert consumer.assignment() == {changelog.tp}
        assert consumer.paused() == {changelog.tp}
        assert await run({other.tp: second}) == {other.tp: 2}
        assert consumer.assignment() == {other.tp}
        assert await run({changelog.tp: first, other.tp: second}) == {changelog.tp: 0, other.tp: 0}
    finally:
        await asyncio.wait_for(consumer.stop(), HANG_GUARD_S)
    assert dict(second.items()) == {"o-1": {"turns": 1}, "o-2": {"turns": 1}}
