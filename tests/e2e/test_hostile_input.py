"""Hostile input through a real worker: every bad record dead-lettered, every good one processed.

A worker run is expensive, so hypothesis generates one corpus (derandomized: the same records
every run) of valid records with awkward text and ids and invalid records of every kind, and
the test sends it in one batch, plus a 1 MB record at the broker's size limit.
"""

from __future__ import annotations

import asyncio
import random
import time
from itertools import count
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from handoff.kafka_clients import client_kwargs
from schemas.topics import Topic
from tests.hostile import (
    HUMAN_REQUEST,
    INVALID_KINDS,
    T0,
    VALID_KINDS,
    Case,
    invalid_records,
    valid_records,
)
from tests.kafka_support import Deployment

pytestmark = pytest.mark.kafka

PER_KIND = 5  # records of each kind; the first hypothesis draws are the simplest


def corpus() -> list[Case]:
    """PER_KIND records of every valid and invalid kind, shuffled with a fixed seed."""
    out: list[Case] = []
    numbers = count()

    @given(data=st.data())
    @settings(max_examples=PER_KIND, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def collect(data: st.DataObject) -> None:
        for kind in VALID_KINDS:
            out.append(data.draw(valid_records(next(numbers), kind)))
        for kind in INVALID_KINDS:
            out.append(data.draw(invalid_records(next(numbers), kind)))

    collect()
    # A presence for a user the directory knows (the generated ones wait for their user).
    user = "\u202eu\u0301ser-\u05d0"
    out.append(Case("valid:directory-user", Topic.DIRECTORY, f"user:{user}".encode(),
                    orjson.dumps({"kind": "user", "id": user, "account_id": "acct-\u0627"}), True))
    out.append(Case("valid:presence", Topic.AGENT_PRESENCE, user.encode(), orjson.dumps(
        {"event_id": "p-known", "user_id": user, "status": "available", "occurred_at": T0,
         "max_open_conversations": 3}), True))
    # At the broker's default message.max.bytes (1 MiB): arrives, and is dead-lettered by size.
    out.append(Case("invalid:megabyte", Topic.CHAT_MESSAGES, b"c-mega", orjson.dumps(
        {"event_id": "mega", "conversation_id": "c-mega", "account_id": "acct-mega",
         "channel": "chat", "sender": "visitor", "sent_at": T0,
         "text": "\u202e" + "a\u0301" * 333_000}), False))
    random.Random(7).shuffle(out)
    return out


async def send(deployment: Deployment, cases: list[Case]) -> list[tuple[str, int, int]]:
    """Send every case in one batch; returns (topic, partition, offset) of each."""
    settings_ = deployment.settings
    producer = AIOKafkaProducer(**client_kwargs(settings_), acks="all", linger_ms=5,
                                max_request_size=1_040_000)
    await producer.start()
    try:
        futures = [await producer.send(settings_.topic(c.topic), key=c.key, value=c.value)
                   for c in cases]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(c.topic.value, m.partition, m.offset) for c, m in zip(cases, metas, strict=True)]


async def read_until(deployment: Deployment, done: Any, timeout: float
                     ) -> dict[str, list[Any]]:
    names = {deployment.settings.topic(t): t.value for t in
             (Topic.DEADLETTER, Topic.HANDOFF_EVENTS, Topic.ACCOUNT_EVENTS)}
    consumer = AIOKafkaConsumer(*names, **client_kwargs(deployment.settings),
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed", group_id=None,
                                max_partition_fetch_bytes=2 * 1024 * 1024)
    seen: dict[str, list[Any]] = {name: [] for name in names.values()}
    await consumer.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(seen):
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                seen[names[tp.topic]] += [orjson.loads(m.value) for m in messages]
    finally:
        await consumer.stop()
    return seen


def test_hostile_corpus_is_dead_lettered_and_valid_records_are_processed(
        deployment: Deployment) -> None:
    cases = corpus()
    assert {c.kind.split(":")[1] for c in cases} >= {*VALID_KINDS, *INVALID_KINDS} - {
        "directory-user", "presence", "human", "chat"} | {"megabyte"}
    worker = deployment.workers[0]
    log_start = worker.log_path.stat().st_size

    where = asyncio.run(send(deployment, cases))
    sentinel = {"event_id": "after-the-storm", "conversation_id": "c-after",
                "account_id": "acct-after", "channel": "chat", "sender": "visitor",
                "text": HUMAN_REQUEST, "sent_at": T0}
    deployment.send(Topic.CHAT_MESSAGES, sentinel)

    invalid = {w: c for w, c in zip(where, cases, strict=True) if not c.valid}
    valid = {w: c for w, c in zip(where, cases, strict=True) if c.valid}
    # Presence for a user nobody knows waits (it is valid, just not sequenced yet).
    sequenced = {w for w, c in valid.items() if c.kind != "valid:presence-unknown-user"}
    handoffs = {c.handoff for c in valid.values() if c.handoff} | {
        ("c-after", "after-the-storm")}

    def letters(seen: dict[str, list[Any]]) -> dict[tuple[str, int, int], Any]:
        return {(d["source_topic"], d["partition"], d["offset"]): d for d in seen["deadletter"]}

    def origins(seen: dict[str, list[Any]]) -> set[tuple[str, int, int]]:
        return {(e["origin"]["topic"], e["origin"]["partition"], e["origin"]["offset"])
                for e in seen["handoff.account-events"]}

    def handed(seen: dict[str, list[Any]]) -> list[tuple[str, str]]:
        return [(h["conversation_id"], h["trigger"]["message_event_id"])
                for h in seen["handoff.events"]]

    def done(seen: dict[str, list[Any]]) -> bool:
        return (set(invalid) <= set(letters(seen)) and sequenced <= origins(seen)
                and handoffs <= set(handed(seen)))

    seen = asyncio.run(read_until(deployment, done, timeout=40))

    dead = letters(seen)
    missing = {w: c.kind for w, c in invalid.items() if w not in dead}
    assert not missing, f"invalid records not dead-lettered: {missing}"
    for w, case in invalid.items():
        letter = dead[w]
        assert letter["error"].strip(), case.kind
        assert letter["payload_bytes"] == len(case.value or b"")
        assert letter["payload_truncated"] == (len(case.value or b"") > 65_536)
    assert not {w: c.kind for w, c in valid.items() if w in dead}, "valid records dead-lettered"
    assert not [d for d in seen["deadletter"] if d["source_topic"] == "handoff.account-events"]
    assert sequenced <= origins(seen)
    got = handed(seen)
    for handoff in handoffs:
        assert got.count(handoff) == 1, handoff  # exactly one handoff per conversation

    assert worker.process is not None and worker.process.poll() is None, "the worker stopped"
    with worker.log_path.open("rb") as log:
        log.seek(log_start)
        text = log.read()
    assert b"Traceback" not in text, text.decode(errors="replace")[-3000:]
    assert b"crashed" not in text.lower()
