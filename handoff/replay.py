"""Replay: the decision core over the recorded per-account log, from the beginning.

The log (`handoff.account-events`) holds every input in the order the live worker decided
it, so running the same core over it with a fresh store gives the live outputs again, byte for
byte. Intake's dead letters are not decisions and are not replayed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import TypeAdapter, ValidationError

from agents.decisions import build_engine
from handoff.config import WorkerSettings
from handoff.core.store import MemoryStore
from schemas.internal import AccountEvent
from schemas.topics import Topic
from streams.codecs import dumps

_account_event: TypeAdapter[Any] = TypeAdapter(AccountEvent)


async def run_replay(settings: WorkerSettings, *, out: Path | None = None,
                     to_prefix: str | None = None) -> int:
    """Replay everything recorded so far; write lines to `out` or publish under `to_prefix`."""
    engine = build_engine(settings.human_request_dirs)
    store = MemoryStore()
    source = settings.topic(Topic.ACCOUNT_EVENTS)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    producer = None
    if to_prefix is not None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                    enable_idempotence=True)
        await producer.start()
    sink = out.open("wb") if out is not None else None
    count = 0
    await consumer.start()
    try:
        partitions = [TopicPartition(source, p)
                      for p in sorted(consumer.partitions_for_topic(source) or
                                      await _partitions(consumer, source))]
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            # Accounts never span partitions, so each partition replays on its own.
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    try:
                        event = _account_event.validate_json(message.value, strict=True)
                    except ValidationError:
                        continue  # the live worker dead-lettered it too
                    decision = engine.decide(store, event)
                    store.apply(decision.writes)
                    for emit in decision.emits:
                        value = dumps(emit.value)
                        if sink is not None:
                            sink.write(orjson.dumps({"topic": emit.topic.value, "key": emit.key,
                                                     "value": orjson.loads(value)}) + b"\n")
                        if producer is not None:
                            await producer.send(f"{to_prefix}{emit.topic.value}", value=value,
                                                key=emit.key.encode())
                        count += 1
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
        if sink is not None:
            sink.close()
    return count


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()
