"""End-to-end tests of handoff.localkafka against a real Kafka 4.x broker."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)

from handoff import localkafka

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("mvn") is None,
    reason="the local Kafka broker needs java and mvn on PATH",
)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """State dir of one broker shared by the module; always stopped at the end."""
    path = tmp_path_factory.mktemp("kafka-state")
    localkafka.start(data_dir=path)
    try:
        yield path
    finally:
        localkafka.stop(data_dir=path)


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Read ``count`` records from ``topic`` through a consumer group, then a bit more."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < count:
                batches = await consumer.getmany(timeout_ms=500)
                values += [msg.value for msgs in batches.values() for msg in msgs]
        # One more poll so that unexpected extra records would be seen too.
        batches = await consumer.getmany(timeout_ms=500)
        values += [msg.value for msgs in batches.values() for msg in msgs]
        await consumer.commit()
    finally:
        await consumer.stop()
    return values


def test_produce_and_consume(state: Path) -> None:
    bootstrap = localkafka.start(data_dir=state)
    topic = f"t-{uuid.uuid4().hex}"
    asyncio.run(_produce(bootstrap, topic, b"hello"))
    assert asyncio.run(_consume_all(bootstrap, topic, 1)) == [b"hello"]


async def _transaction(bootstrap: str, topic: str, group: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        # An aborted record must stay invisible to read_committed consumers.
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        # Exactly-once consume-transform-produce also commits offsets in the txn.
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed")
            await producer.send_offsets_to_transaction({TopicPartition(topic, 0): 7}, group)
    finally:
        await producer.stop()


async def _committed(bootstrap: str, topic: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()
    return offset


def test_transactional_producer_commits(state: Path) -> None:
    bootstrap = localkafka.start(data_dir=state)
    topic = f"tx-{uuid.uuid4().hex}"
    group = f"txg-{uuid.uuid4().hex}"
    asyncio.run(_transaction(bootstrap, topic, group))
    assert asyncio.run(_consume_all(bootstrap, topic, 1)) == [b"committed"]
    assert asyncio.run(_committed(bootstrap, topic, group)) == 7


def test_start_reuses_running_broker(state: Path) -> None:
    first = localkafka.start(data_dir=state)
    pid = (state / "kafka.pid").read_text()
    assert localkafka.start(data_dir=state) == first
    assert (state / "kafka.pid").read_text() == pid
    assert localkafka.status(data_dir=state) == first


def test_restart_is_fresh_and_skips_maven(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = localkafka.start(data_dir=state)
    topic = f"r-{uuid.uuid4().hex}"
    asyncio.run(_produce(bootstrap, topic, b"before"))

    assert localkafka.stop(data_dir=state) is True
    assert localkafka.status(data_dir=state) is None
    assert localkafka.stop(data_dir=state) is False

    marker = localkafka.lib_dir() / ".complete"
    mtime = marker.stat().st_mtime_ns

    def no_maven(pom: Path, out_dir: Path) -> None:
        raise AssertionError(f"second start ran Maven ({pom} -> {out_dir})")

    monkeypatch.setattr(localkafka, "_run_maven", no_maven)
    assert localkafka.ensure_jars() is False
    again = localkafka.start(data_dir=state)
    assert marker.stat().st_mtime_ns == mtime
    assert localkafka.status(data_dir=state) == again

    # The log dir is formatted afresh on every start: the old record is gone.
    asyncio.run(_produce(again, topic, b"after"))
    assert asyncio.run(_consume_all(again, topic, 1)) == [b"after"]
