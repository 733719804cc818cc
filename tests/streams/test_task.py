"""The task runner without a broker: what one transaction sends, and when stores change.

A fake producer records every call; the steps and stores are the real ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from handoff.config import WorkerSettings
from handoff.ops.metrics import Metrics
from schemas.codec import dumps
from schemas.topics import Topic, partition_for
from steps.decide import Parsed, build_engine
from steps.intake import InputRecord
from steps.validation import Limits
from streams.state import MemoryStore, changelog_topic
from streams.task import Sender, Task, store_codec, store_names
from tests.builders import chat, inbox

SETTINGS = WorkerSettings(topic_prefix="p.", partitions=4)  # type: ignore[call-arg]
HUMAN = "I want to talk to a human"
ENGINE = build_engine()


class Sent:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class FakeBatch:
    """A batch builder holding at most `limit` records, like aiokafka's at its byte size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None
               ) -> object | None:
        if len(self.records) >= self.limit:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """Records sends per transaction; `fail_commit` makes the next commit raise."""

    def __init__(self, batch_records: int = 1_000) -> None:
        self.batch_records = batch_records
        self.batches: list[int] = []  # the size of each batch sent
        self.open: list[tuple[str, bytes | None, bytes | None, int | None]] | None = None
        self.committed: list[list[tuple[str, bytes | None, bytes | None, int | None]]] = []
        self.offsets: list[dict[TopicPartition, Any]] = []
        self.aborted = 0
        self.fail_commit = False
        self.next_offset = 0

    async def begin_transaction(self) -> None:
        assert self.open is None, "a transaction is already open"
        self.open = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None) -> asyncio.Future[Sent]:
        assert self.open is not None, "send outside a transaction"
        self.open.append((topic, key, value, partition))
        future: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()
        future.set_result(Sent(self.next_offset))
        self.next_offset += 1
        return future

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.batch_records)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int
                         ) -> asyncio.Future[Sent]:
        assert self.open is not None, "send outside a transaction"
        assert batch.records, "an empty batch"
        self.batches.append(len(batch.records))
        self.open.extend((topic, key, value, partition) for key, value in batch.records)
        future: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()
        future.set_result(Sent(self.next_offset))  # a batch's delivery: its first offset
        self.next_offset += len(batch.records)
        return future

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, Any],
                                          group_id: str) -> None:
        assert self.open is not None and group_id == SETTINGS.group_id
        self.offsets.append(offsets)

    async def commit_transaction(self) -> None:
        assert self.open is not None
        if self.fail_commit:
            raise RuntimeError("broker said no")
        self.committed.append(self.open)
        self.open = None

    async def abort_transaction(self) -> None:
        self.open = None
        self.aborted += 1


def a_task(partition: int = 0, batch_records: int = 1_000
           ) -> tuple[Task, FakeProducer, Metrics]:
    producer = FakeProducer(batch_records)
    metrics = Metrics()
    stores = {name: MemoryStore(name, partition, store_codec(name)) for name in store_names()}
    task = Task(partition=partition, settings=SETTINGS, producer=producer,  # type: ignore[arg-type]
                stores=stores, engine=ENGINE, metrics=metrics, limits=Limits())
    return task, producer, metrics


def log_record(event: Any, offset: int) -> InputRecord:
    return InputRecord(topic=Topic.ACCOUNT_EVENTS, partition=0, offset=offset,
                       timestamp_ms=1_000, key=event.account_id.encode(), value=dumps(event))


def handoffs(metrics: Metrics) -> float:
    found = metrics.registry.get_sample_value(
        "handoff_handoffs_total", {"trigger": "human_requested", "process": "live"})
    return found or 0.0


async def test_a_decided_batch_commits_outputs_changelogs_and_offsets_together() -> None:
    task, producer, metrics = a_task()
    log_tp = TopicPartition(SETTINGS.topic(Topic.ACCOUNT_EVENTS), 0)
    await task.begin()
    await task.decide(log_record(inbox("support"), 0))
    await task.decide(log_record(chat("m-1", "hello"), 1))
    await task.decide(log_record(chat("m-2", HUMAN), 2))
    task.offsets[log_tp] = 3
    # Nothing is applied before the commit: a reader of the store sees the old state.
    assert task.stores["conversations"].get("c-1") is None
    assert handoffs(metrics) == 0
    await task.commit(SETTINGS.group_id)

    (sent,) = producer.committed
    topics = [topic for topic, *_ in sent]
    assert SETTINGS.topic(Topic.HANDOFF_EVENTS) in topics
    changelog = changelog_topic(SETTINGS.group_id, "conversations")
    conversation_writes = [(key, partition) for topic, key, _, partition in sent
                           if topic == changelog]
    # Two decisions changed the conversation; its changelog gets it once, on the task's partition.
    assert conversation_writes == [(b"c-1", 0)]
    last = next(v for t, _, v, _ in sent if t == changelog)
    assert orjson.loads(last or b"")["phase"] == "handed_off"
    assert producer.offsets[-1][log_tp].offset == 3
    assert task.committed[log_tp] == 3
    stored = task.stores["conversations"].get("c-1")
    assert stored is not None and stored.phase == "handed_off"  # type: ignore[attr-defined]
    assert handoffs(metrics) == 1


async def test_changelog_writes_go_in_batches_in_order_and_the_store_resumes_after_the_last(
        ) -> None:
    task, producer, _ = a_task(batch_records=2)
    await task.begin()
    for n in range(5):  # five conversations: five changelog records, batches of two at most
        await task.decide(log_record(chat(f"m-{n}", "hello", conversation_id=f"c-{n}"), n))
    await task.commit(SETTINGS.group_id)
    changelog = changelog_topic(SETTINGS.group_id, "conversations")
    (sent,) = producer.committed
    keys = [key for topic, key, _, partition in sent if topic == changelog and partition == 0]
    assert keys == [f"c-{n}".encode() for n in range(5)]
    assert producer.batches[-3:] == [2, 2, 1]
    # One transaction from offset 0: a record's place in it is its offset.
    offsets = [n for n, (topic, *_) in enumerate(sent) if topic == changelog]
    store = task.stores["conversations"]
    assert store.restore_from() == offsets[-1] + 1
    assert all(store.get(f"c-{n}") is not None for n in range(5))


async def test_an_aborted_transaction_leaves_stores_and_metrics_as_committed() -> None:
    task, producer, metrics = a_task()
    producer.fail_commit = True
    await task.begin()
    await task.decide(log_record(chat("m-1", HUMAN), 0))
    with pytest.raises(RuntimeError):
        await task.commit(SETTINGS.group_id)
    await task.abort()
    assert producer.aborted == 1 and producer.committed == []
    assert task.stores["conversations"].get("c-1") is None
    assert all(not changes for changes in task.pending.values())
    assert handoffs(metrics) == 0
    # The same record decided again after the abort hands off once, as if the first try
    # never happened.
    producer.fail_commit = False
    await task.begin()
    await task.decide(log_record(chat("m-1", HUMAN), 0))
    await task.commit(SETTINGS.group_id)
    assert handoffs(metrics) == 1
    events = [v for t, _, v, _ in producer.committed[0]
              if t == SETTINGS.topic(Topic.HANDOFF_EVENTS)]
    assert len(events) == 1


async def test_a_bad_record_is_dead_lettered_with_its_coordinates_and_counted_once() -> None:
    task, producer, metrics = a_task()
    bad = InputRecord(topic=Topic.ACCOUNT_EVENTS, partition=0, offset=7, timestamp_ms=1_000,
                      key=b"acme", value=b"{not json")
    await task.begin()
    await task.decide(bad)
    await task.commit(SETTINGS.group_id)
    (sent,) = producer.committed
    ((topic, key, value, _),) = sent
    assert topic == SETTINGS.topic(Topic.DEADLETTER) and key == b"acme"
    letter = orjson.loads(value or b"")
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (
        "handoff.account-events", 0, 7)
    assert "json" in letter["error"].lower()
    assert metrics.registry.get_sample_value(
        "handoff_dead_letters_total",
        {"source_topic": "handoff.account-events", "reason": "not_json"}) == 1


async def test_intake_forwards_a_chat_message_to_its_accounts_partition() -> None:
    task, producer, _ = a_task()
    sender = Sender(SETTINGS.topic(Topic.ACCOUNT_EVENTS), SETTINGS.partitions)
    body = orjson.dumps(chat("m-1").record.model_dump(mode="json"))
    record = InputRecord(topic=Topic.CHAT_MESSAGES, partition=0, offset=5, timestamp_ms=1_000,
                         key=b"c-1", value=body)
    await task.begin()
    await task.intake(record, 2_000, sender)
    await task.commit(SETTINGS.group_id)
    ((topic, key, value, partition),) = producer.committed[0]
    assert topic == SETTINGS.topic(Topic.ACCOUNT_EVENTS) and key == b"acme"
    assert partition == partition_for("acme", SETTINGS.partitions)
    forwarded = orjson.loads(value or b"")
    assert forwarded["origin"] == {"topic": "chat.messages", "partition": 0, "offset": 5}
    assert forwarded["record"]["event_id"] == "m-1"


class Watched(FakeProducer):
    """A task's producer that logs each hand-over and each wait for a delivery in `order`."""

    def __init__(self, name: str, order: list[str]) -> None:
        super().__init__()
        self.name = name
        self.order = order

    def _delivery(self, what: str) -> Any:
        order, name = self.order, self.name

        class Delivery:
            def __await__(self) -> Any:
                order.append(f"waited for {name}")
                return asyncio.sleep(0).__await__()

        order.append(f"{name} {what}")
        return Delivery()

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None) -> Any:
        await super().send(topic, value, key, partition)
        return self._delivery(f"sends {value!r}")

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        await super().send_batch(batch, topic, partition=partition)
        return self._delivery(f"hands over {[v for _, v in batch.records]}")


def watched(partition: int, order: list[str]) -> tuple[Task, Watched]:
    task, _, _ = a_task(partition)
    task.producer = producer = Watched(f"task {partition}", order)  # type: ignore[assignment]
    return task, producer


async def test_a_record_of_another_topic_waits_for_what_another_task_sent_before_it() -> None:
    order: list[str] = []
    (first, one), (second, two) = watched(0, order), watched(1, order)
    sender = Sender("p.handoff.account-events", 4)
    await first.begin()
    await second.begin()
    await sender.forward(first, "acme", b"c1", control=False)
    await sender.forward(second, "acme", b"c2", control=False)  # two chats: no wait
    assert order == []  # both wait in their task's open batch
    await sender.forward(first, "acme", b"p1", control=True)  # presence after a chat of task 1
    # Its own chat is handed over first (so it stays ahead), task 1's is handed over and
    # delivered, and only then the presence goes.
    assert order == ["task 0 hands over [b'c1']", "task 1 hands over [b'c2']",
                     "waited for task 1", "task 0 sends b'p1'"]
    await first.commit(SETTINGS.group_id)
    await second.commit(SETTINGS.group_id)
    assert [v for *_, v, _ in one.committed[0]] == [b"c1", b"p1"]
    assert [v for *_, v, _ in two.committed[0]] == [b"c2"]


async def test_chats_of_other_tasks_wait_for_a_settings_record_after_its_own_tasks_chat(
        ) -> None:
    """The barrier is the settings record, not the latest send: task 0's chat after it does
    not let task 1's chat overtake it (a retried produce once appended it 13 chats late)."""
    order: list[str] = []
    (first, one), (second, two) = watched(0, order), watched(1, order)
    sender = Sender("p.handoff.account-events", 4)
    await first.begin()
    await second.begin()
    await sender.forward(first, "acme", b"s1", control=True)  # the settings request
    await sender.forward(first, "acme", b"c1", control=False)  # a chat of task 0
    await sender.forward(second, "acme", b"c2", control=False)  # a chat of task 1
    await sender.forward(second, "acme", b"c3", control=False)  # another: waits again (done)
    assert order == ["task 0 sends b's1'", "waited for task 0", "waited for task 0"]
    await second.commit(SETTINGS.group_id)
    await first.commit(SETTINGS.group_id)
    assert [v for *_, v, _ in one.committed[0]] == [b"s1", b"c1"]
    assert [v for *_, v, _ in two.committed[0]] == [b"c2", b"c3"]
    sender.reset()
    order.clear()
    await second.begin()
    await sender.forward(second, "acme", b"c4", control=False)  # next cycle: committed
    assert order == []


async def test_chats_fill_batches_in_order_and_the_commit_hands_over_the_last() -> None:
    task, producer, _ = a_task(batch_records=2)
    sender = Sender("p.handoff.account-events", 4)
    await task.begin()
    for n in range(5):
        await sender.forward(task, "acme", f"c{n}".encode(), control=False)
    assert producer.batches == [2, 2]  # the full ones went as they filled
    await task.commit(SETTINGS.group_id)
    assert producer.batches == [2, 2, 1]
    assert [v for *_, v, _ in producer.committed[0]] == [f"c{n}".encode() for n in range(5)]


async def test_a_failed_hand_over_asked_for_by_another_task_fails_its_own_commit() -> None:
    order: list[str] = []
    (first, _), (second, two) = watched(0, order), watched(1, order)
    sender = Sender("p.handoff.account-events", 4)
    await first.begin()
    await second.begin()
    await sender.forward(second, "acme", b"c1", control=False)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("producer gone")

    two.send_batch = broken  # type: ignore[method-assign]
    await sender.forward(first, "acme", b"p1", control=True)  # goes on: nothing to wait for
    await first.commit(SETTINGS.group_id)
    # Task 1's chat never reached its producer: committing its offsets would lose it.
    with pytest.raises(RuntimeError, match="producer gone"):
        await second.commit(SETTINGS.group_id)
    assert two.committed == []


@pytest.mark.parametrize("held", [True, False])
async def test_intake_leaves_the_parsed_event_for_a_log_partition_this_worker_decides(
        held: bool) -> None:
    task, producer, metrics = a_task()
    parsed = Parsed()
    task.parsed = parsed
    log_partition = partition_for("acme", SETTINGS.partitions)
    sender = Sender(SETTINGS.topic(Topic.ACCOUNT_EVENTS), SETTINGS.partitions, parsed,
                    {log_partition} if held else set())
    body = orjson.dumps(chat("m-1", HUMAN).record.model_dump(mode="json"))
    record = InputRecord(topic=Topic.CHAT_MESSAGES, partition=0, offset=5, timestamp_ms=1_000,
                         key=b"c-1", value=body)
    await task.begin()
    await task.intake(record, 2_000, sender)
    assert len(parsed) == (1 if held else 0)
    await task.flush(SETTINGS.topic(Topic.ACCOUNT_EVENTS), log_partition)  # its open batch
    assert producer.open is not None
    forwarded = producer.open[-1][2]
    await task.decide(InputRecord(topic=Topic.ACCOUNT_EVENTS, partition=log_partition, offset=0,
                                  timestamp_ms=1_000, key=b"acme", value=forwarded))
    assert len(parsed) == 0
    await task.commit(SETTINGS.group_id)
    assert handoffs(metrics) == 1
