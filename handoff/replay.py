"""Replay: the decision core over the recorded per-account log, whole or over a range.

The log (`handoff.account-events`) holds every input in the order the live worker decided
it, so running the same core over it with a fresh store gives the live outputs again, byte for
byte. Intake's dead letters are not decisions and are not replayed.

A range (`handoff/history.py`: by offsets per partition, or by record time) only limits which
outputs are written: each partition is still decided from its first record, without writing,
so the settings, directory, presence, rotations and conversations are as they were when the
range starts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from handoff.config import WorkerSettings
from handoff.core.engine import Engine
from handoff.core.store import Decision, StateReader, Write
from handoff.history import LogRange, Progress, open_consumer, parse_event, plan, read_spans
from handoff.kafka_clients import client_kwargs
from handoff.spill import SpillStore
from schemas.codec import dumps
from schemas.topics import Topic
from steps.decide import build_engine


class Store(StateReader, Protocol):
    """What replay needs of a store: reads for the core, and applying a decision's writes."""

    def apply(self, writes: list[Write]) -> None: ...


def decide(engine: Engine, store: Store, event: Any) -> Decision | None:
    """Decide one parsed event as the live worker does, and keep its writes.

    None when the core cannot decide it: the live worker dead-letters such a record and moves on.
    """
    try:
        decision = engine.decide(store, event)
    except Exception:
        return None
    store.apply(decision.writes)
    return decision


async def run_replay(settings: WorkerSettings, *, out: Path | None = None,
                     to_prefix: str | None = None, log_range: LogRange | None = None,
                     store: Store | None = None, progress: bool = False) -> int:
    """Replay the recorded log (or a range of it); write lines to `out` or publish under
    `to_prefix`. Returns how many output records were written."""
    engine = build_engine(settings.human_request_dirs)
    spill = SpillStore() if store is None else None
    state: Store = spill if spill is not None else store  # type: ignore[assignment]
    producer = None
    sink = None
    try:
        if to_prefix is not None:
            producer = AIOKafkaProducer(**client_kwargs(settings), acks="all",
                                        enable_idempotence=True, linger_ms=5)
            await producer.start()
        sink = out.open("wb") if out is not None else None
        return await _replay(settings, engine, state, log_range or LogRange(), sink, producer,
                             to_prefix or "", progress)
    finally:
        if producer is not None:
            await producer.stop()
        if sink is not None:
            sink.close()
        if spill is not None:
            spill.close()


async def _replay(settings: WorkerSettings, engine: Engine, state: Store, log_range: LogRange,
                  sink: IO[bytes] | None, producer: AIOKafkaProducer | None, to_prefix: str,
                  progress: bool) -> int:
    source = settings.topic(Topic.ACCOUNT_EVENTS)
    count = 0
    async with open_consumer(settings) as consumer:
        spans = await plan(consumer, source, log_range)
        counter = Progress("replay", sum(s.records for s in spans), enabled=progress)
        pending: list[asyncio.Future[Any]] = []
        # Accounts never span partitions, so each partition replays on its own.
        async for record in read_spans(consumer, source, spans, progress=counter):
            event = parse_event(record.value)
            if event is None:
                continue  # the live worker dead-lettered it too
            decision = decide(engine, state, event)
            if decision is None or not record.in_range:
                continue  # before the range: state only
            for emit in decision.emits:
                value = dumps(emit.value)
                if sink is not None:
                    sink.write(orjson.dumps({"topic": emit.topic.value, "key": emit.key,
                                             "value": orjson.loads(value)}) + b"\n")
                if producer is not None:
                    pending.append(await producer.send(f"{to_prefix}{emit.topic.value}",
                                                       value=value, key=emit.key.encode()))
                    if len(pending) >= 1000:
                        await asyncio.gather(*pending)
                        pending.clear()
                count += 1
        if pending:
            await asyncio.gather(*pending)
        counter.close()
    return count
