"""The decision agent: reads each account's sequenced log, asks the core, publishes the answer.

It does nothing the core could do: parse, decide, keep the writes, send the emits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import TypeAdapter, ValidationError

from handoff.core.engine import Engine
from handoff.core.store import Table
from handoff.core.triggers import Matchers
from handoff.ops.logs import event_fields
from handoff.triggers.human_request import HumanRequestDetector
from schemas.internal import AccountEvent
from schemas.topics import Topic
from steps.deadletter import dead_letter, describe
from streams.app import Topology
from streams.codecs import dumps

log = logging.getLogger(__name__)

_account_event: TypeAdapter[Any] = TypeAdapter(AccountEvent)


class TableReader:
    """The core's `StateReader` over this worker's Faust tables."""

    __slots__ = ("_tables",)

    def __init__(self, tables: dict[Table, Any]) -> None:
        self._tables = tables

    def get(self, table: Table, key: str) -> object | None:
        value: object | None = self._tables[table].get(key)
        return value


def build_engine(extra_dirs: list[Any] | None = None) -> Engine:
    """The engine with the shipped human-request phrases plus any operator folders."""
    return Engine(Matchers(HumanRequestDetector.load(list(extra_dirs or []))))


def register(t: Topology) -> None:
    """Attach the decision agent to the account-keyed log."""
    engine = build_engine(t.settings.human_request_dirs)
    reader = TableReader(t.tables)
    tables = t.tables
    topics = t.topics
    deadletter = topics[Topic.DEADLETTER]
    payload_limit = t.settings.deadletter_payload_bytes

    async def decide(stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            started = time.perf_counter()
            message = event.message
            try:
                sequenced = _account_event.validate_json(event.value, strict=True)
            except ValidationError as exc:
                # Only a producer other than intake could write this: set it aside, go on.
                await deadletter.send(key=event.key, value=dumps(dead_letter(
                    Topic.ACCOUNT_EVENTS.value, message.partition, message.offset,
                    message.timestamp, event.value, describe(exc), payload_limit)))
                continue
            try:
                decision = engine.decide(reader, sequenced)
            except Exception as exc:
                # A record the core cannot decide (a bug, not the broker): one poison record
                # must not stop every account behind it. Replay skips it the same way.
                log.exception("decision failed for %s[%s]@%s", message.topic,
                              message.partition, message.offset, extra=event_fields(sequenced))
                await deadletter.send(key=event.key, value=dumps(dead_letter(
                    Topic.ACCOUNT_EVENTS.value, message.partition, message.offset,
                    message.timestamp, event.value,
                    f"decision failed: {type(exc).__name__}: {exc}", payload_limit)))
                continue
            for write in decision.writes:
                table = tables[write.table]
                if write.value is None:
                    table.pop(write.key, None)
                else:
                    table[write.key] = write.value
            for emit in decision.emits:
                await topics[emit.topic].send(key=emit.key.encode(), value=dumps(emit.value))
            t.metrics.observe_decision(sequenced, decision, started)
            yield None

    t.app.agent(topics[Topic.ACCOUNT_EVENTS], name="decisions")(decide)
