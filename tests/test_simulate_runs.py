"""The what-if against a real broker: the two runs in two processes report exactly what one
pass with both engines reports, and records of other accounts change nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from handoff import simulate
from handoff.config import WorkerSettings, load_settings
from handoff.history import LogRange
from handoff.kafka_clients import client_kwargs
from handoff.simulate import run_simulation
from schemas.codec import dumps
from schemas.topics import Topic, partition_for
from tests import builders as b
from tests.test_replay_tools import mixed

PARTITIONS = 2
PROPOSAL: dict[str, Any] = {
    "custom_triggers": ["anyone", "hi", "HI"],  # "HI" normalises like "hi": kept once
    "process": "live",
    "routing": {"mode": "direct", "destination": "support",
                "assignees": [{"type": "user", "id": "u-3"}]}}


def neighbours() -> list[Any]:
    """Another account's records, put on acme's partition: they must be skipped."""
    return [b.inbox("support", account="zeta"), b.user("u-3", account="zeta"),
            b.presence("u-3", account="zeta"),
            *[b.chat(f"z-{i}", "talk to a human", conversation=f"z-{i}", account="zeta")
              for i in range(5)]]


async def produce(settings: WorkerSettings) -> None:
    topic = settings.topic(Topic.ACCOUNT_EVENTS)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    home = partition_for("acme", PARTITIONS)
    ours, theirs = mixed(), neighbours()
    interleaved = [e for pair in zip(ours, theirs, strict=False) for e in pair]
    interleaved += ours[len(theirs):]
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all")
    await producer.start()
    try:
        for event in interleaved:
            await producer.send_and_wait(topic, dumps(event), key=event.account_id.encode(),
                                         partition=home)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str) -> WorkerSettings:
    chosen = load_settings(bootstrap_servers=kafka_bootstrap,
                           topic_prefix=f"t-simulate-{uuid.uuid4().hex[:8]}.")
    asyncio.run(produce(chosen))
    return chosen


@pytest.mark.parametrize("log_range", [LogRange(), LogRange(from_offsets={0: 20, 1: 20})],
                         ids=["whole log", "from offset 20"])
def test_two_processes_report_what_one_pass_reports(settings: WorkerSettings,
                                                    log_range: LogRange) -> None:
    one = asyncio.run(run_simulation(settings, "acme", PROPOSAL, log_range, parallel=False))
    two = asyncio.run(run_simulation(settings, "acme", PROPOSAL, log_range, parallel=True))
    assert two.to_json(list_changed=True) == one.to_json(list_changed=True)
    # Not two empty reports: the proposal changes outcomes, and zeta's records are not counted.
    assert one.what_if.handoffs != one.recorded.handoffs and one.changed
    assert one.records_in_range + one.records_before == len(mixed())
    assert one.proposal.custom_triggers == ["anyone", "hi"]
    assert all(c.conversation_id.startswith("c-") for c in one.changed)
    if not log_range.whole:
        # cfg-1 (version 1) was saved before the range: the proposal replaces it.
        assert one.records_before > 0 and one.versions_replaced[0] == 1


def test_a_child_that_fails_leaves_the_what_if_to_this_process(
        settings: WorkerSettings, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    one = asyncio.run(run_simulation(settings, "acme", PROPOSAL, parallel=False))

    def fail(*args: object) -> simulate.Side:
        raise SystemExit("no what-if here")

    monkeypatch.setattr(simulate, "_child_run", fail)
    two = asyncio.run(run_simulation(settings, "acme", PROPOSAL, parallel=True))
    assert two.to_json(list_changed=True) == one.to_json(list_changed=True)
    assert "no what-if here; deciding the what-if run in this process" in caplog.text
