"""One task: partition p of every input topic and of the account log, with its stores and its
transactional producer. The runner that applies any step's result lives here, so dead letters,
store writes and sends are made in one place.

A task's transaction holds everything one cycle produced for it: forwards to the account log,
outputs, dead letters, each changed store key once (last value wins) on its changelog, and the
input offsets. Store writes stay pending until the commit succeeds, so an aborted transaction
leaves the stores as the committed changelog has them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from pydantic import BaseModel

from handoff.config import WorkerSettings
from handoff.core.engine import Engine
from handoff.core.store import TABLE_MODELS, Decision, StateReader, Table
from handoff.ops.logs import event_fields, record_fields
from handoff.ops.metrics import Metrics
from schemas.codec import dumps
from schemas.internal import SequencedTick
from schemas.topics import Topic, partition_for
from steps.deadletter import dead_letter
from steps.decide import Parsed, decide
from steps.intake import LOOKUP_VALUES, InputRecord, Intake, Lookup, intake
from steps.validation import Limits
from streams.state import Codec, Store, changelog_topic, int_codec, json_codec, model_codec

log = logging.getLogger(__name__)

_MISSING = object()
_TABLES = frozenset(t.value for t in Table)


def store_names() -> list[str]:
    """Every store a task owns: the core's tables and intake's lookups."""
    return [t.value for t in Table] + [lookup.value for lookup in Lookup]


def store_codec(name: str) -> Codec:
    """How one store's values are written to its changelog and read back."""
    if name in _TABLES:
        model = TABLE_MODELS[Table(name)]
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model_codec(model)
        return int_codec()
    kind = LOOKUP_VALUES[Lookup(name)]
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return model_codec(kind)
    return json_codec()


class _Reader:
    """Reads one group of stores, this transaction's pending writes first."""

    __slots__ = ("_pending", "_stores")

    def __init__(self, stores: Mapping[str, Store], pending: Mapping[str, dict[str, object]]
                 ) -> None:
        self._stores = stores
        self._pending = pending

    def get(self, table: Any, key: str) -> object | None:
        name = str(table)
        hit = self._pending[name].get(key, _MISSING)
        if hit is not _MISSING:
            return hit
        return self._stores[name].get(key)


@dataclass
class Task:
    """Partition number `partition` of the co-partitioned topics, owned by this worker."""

    partition: int
    settings: WorkerSettings
    producer: AIOKafkaProducer
    stores: dict[str, Store]
    engine: Engine
    metrics: Metrics
    limits: Limits
    # Next offset to read per input partition, as of the last committed transaction.
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    ready: bool = False  # restored and positioned: its records may be processed
    opened: int = 0  # the loop's count of task openings when this one opened
    pending: dict[str, dict[str, object]] = field(default_factory=dict)
    # Offsets this cycle moved to (committed with the transaction).
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    in_transaction: bool = False
    # Accounts with something waiting on time (the core's `waiting` table, as committed):
    # the loop writes clock ticks into their log, and only theirs.
    waiting: set[str] = field(default_factory=set)
    ticked_ms: int = 0  # when the last ticks were written
    # What to report once the transaction is committed (an aborted one never happened).
    _observed: list[Callable[[], None]] = field(default_factory=list)
    # This cycle's decisions for the metrics (event, decision, seconds), reported in one call
    # at the commit: a call per decision cost about as much as a fifth of intake.
    _decided: list[tuple[Any, Decision, float]] = field(default_factory=list)
    # Events intake built, for the decision step (shared by the worker's tasks: an account's
    # log partition is often another task's).
    parsed: Parsed = field(default_factory=Parsed)
    # Records queued in a batch of their own per (topic, partition), not yet handed to the
    # producer (`send_later`); and the error of a flush another task's forward asked for,
    # which fails this transaction at its commit (its records would be missing from it).
    _later: dict[tuple[str, int], Any] = field(default_factory=dict)
    _flush_failed: BaseException | None = None

    def __post_init__(self) -> None:
        self.pending = {name: {} for name in self.stores}
        self.reader: StateReader = _Reader(self.stores, self.pending)
        self.lookups = _Reader(self.stores, self.pending)
        self.waiting = {key for key, _ in self.stores[Table.WAITING.value].items()}

    # -- the transaction -------------------------------------------------------------------

    async def begin(self) -> None:
        """Open this cycle's transaction."""
        await self.producer.begin_transaction()
        self.in_transaction = True

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None = None) -> Any:
        """Queue one record in the open transaction; returns its delivery future."""
        return await self.producer.send(topic, value=value, key=key, partition=partition)

    async def send_later(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        """Queue one record in this transaction's open batch for (topic, partition); the batch
        reaches the producer at `flush` (or at the commit), after what was sent before it."""
        batch = self._later.get((topic, partition))
        if batch is None:
            batch = self._later[topic, partition] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            # Full at the producer's batch size: hand it over, start the next (a first
            # record always fits).
            await self.flush(topic, partition)
            batch = self._later[topic, partition] = self.producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)

    async def flush(self, topic: str, partition: int) -> Any:
        """Hand the open batch for (topic, partition) to the producer; its delivery future, or
        None when nothing was open."""
        batch = self._later.pop((topic, partition), None)
        if batch is None:
            return None
        try:
            return await self.producer.send_batch(batch, topic, partition=partition)
        except Exception as exc:
            self._flush_failed = self._flush_failed or exc
            raise

    async def commit(self, group_id: str) -> None:
        """Write the changed store keys and the offsets, commit, then apply the writes."""
        p = self.partition
        producer = self.producer
        for topic, partition in list(self._later):
            await self.flush(topic, partition)
        if self._flush_failed is not None:
            raise self._flush_failed
        # Per store: the delivery future of its last changelog batch and that batch's size.
        last: dict[str, tuple[Any, int]] = {}
        # The changelog's bytes, handed to the store too: RocksDB keeps them, not a re-encoding.
        bodies: dict[str, dict[str, bytes]] = {}
        for name, changes in self.pending.items():
            if not changes:
                continue
            encode = self.stores[name].codec.encode
            topic = changelog_topic(self.settings.group_id, name)
            encoded = bodies[name] = {}
            # One batch per changelog partition rather than a send per key: a send costs a
            # metadata check, a partitioner call and a future per record (7 against 2.7 us
            # a record in a probe), and nothing here needs a record's own future.
            batch = producer.create_batch()
            for key, value in changes.items():
                body = None if value is None else encode(value)
                if body is not None:
                    encoded[key] = body
                raw_key = key.encode()
                if batch.append(key=raw_key, value=body, timestamp=None) is None:
                    # Full at the producer's batch size: send it, start the next (a first
                    # record always fits, however large).
                    await producer.send_batch(batch, topic, partition=p)
                    batch = producer.create_batch()
                    batch.append(key=raw_key, value=body, timestamp=None)
            last[name] = (await producer.send_batch(batch, topic, partition=p),
                          batch.record_count())
        if self.offsets:
            await producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(offset, "") for tp, offset in self.offsets.items()},
                group_id)
        await producer.commit_transaction()
        self.in_transaction = False
        for account_id, value in self.pending[Table.WAITING.value].items():
            (self.waiting.discard if value is None else self.waiting.add)(account_id)
        for name, changes in self.pending.items():
            if not changes:
                continue
            done, count = last.get(name, (None, 0))
            # A batch's delivery names its first record's offset.
            next_offset = (done.result().offset + count
                           if done is not None and done.done() else None)
            self.stores[name].write(dict(changes), next_offset, bodies[name])
            changes.clear()
        self.committed.update(self.offsets)
        self.offsets.clear()
        for observe in self._observed:
            observe()
        self._observed.clear()
        if self._decided:
            self.metrics.observe_decisions(self._decided)
            self._decided.clear()

    async def abort(self) -> None:
        """Abort the open transaction (if the producer still can) and forget its writes."""
        for changes in self.pending.values():
            changes.clear()
        self.offsets.clear()
        self._observed.clear()
        self._decided.clear()
        self._later.clear()
        self._flush_failed = None
        if self.in_transaction:
            self.in_transaction = False
            try:
                await self.producer.abort_transaction()
            except Exception as exc:  # fenced or broken: the task is being given up anyway
                log.warning("task %s: abort failed: %r", self.partition, exc)

    # -- the runner: applying what the steps return ------------------------------------------

    async def dead_letter(self, record: InputRecord, reason: str) -> None:
        """Set one input record aside on the dead letter topic, with its reason."""
        settings = self.settings
        letter = dead_letter(record.topic.value, record.partition, record.offset,
                             record.timestamp_ms / 1000.0, record.value, reason,
                             settings.deadletter_payload_bytes)
        log.warning("dead-lettered %s[%s]@%s: %s", record.topic.value, record.partition,
                    record.offset, reason, extra=record_fields(
                        letter.event_id, record.topic.value, record.partition, record.offset))
        await self.send(settings.topic(Topic.DEADLETTER), record.key, dumps(letter))
        self._observed.append(partial(self.metrics.observe_dead_letter, record.topic.value,
                                      reason))

    async def intake(self, record: InputRecord, now_ms: int, sender: Sender) -> None:
        """Run the intake step on one released input record and apply its result."""
        try:
            result = intake(record, self.lookups, self.limits, now_ms)
        except Exception as exc:  # a bug, not the record: set it aside like a bad one
            log.exception("intake failed for %s[%s]@%s", record.topic.value, record.partition,
                          record.offset)
            result = Intake(why="intake failed", rejected=f"intake failed: {type(exc).__name__}: "
                                                          f"{exc}")
        if result.rejected is not None:
            await self.dead_letter(record, result.rejected)
            return
        for write in result.writes:
            self.pending[write.lookup][write.key] = write.value
        topic = self.settings.topic
        for send in result.sends:
            await self.send(topic(send.topic), send.key, send.value)
        for forward in result.forwards:
            await sender.forward(self, forward.account_id, forward.value,
                                 control=record.topic is not Topic.CHAT_MESSAGES,
                                 event=forward.event)

    async def tick(self, now_ms: int) -> None:
        """Write the service's clock into the log of every account with something waiting."""
        self.ticked_ms = now_ms
        at = datetime.fromtimestamp(now_ms / 1000, UTC)
        topic = self.settings.topic(Topic.ACCOUNT_EVENTS)
        for account_id in sorted(self.waiting):
            tick = SequencedTick(source="clock", account_id=account_id,
                                 event_id=f"tick-{account_id}-{now_ms}", at=at)
            await self.send(topic, account_id.encode(), dumps(tick), partition=self.partition)

    async def decide(self, record: InputRecord) -> None:
        """Run the decision step on one account-log record and apply its result."""
        started = time.perf_counter()
        decided = decide(self.engine, self.reader, record.value, self.parsed.take(record.value))
        if decided.rejected is not None:
            if decided.event is not None:
                log.error("decision failed for %s[%s]@%s", record.topic.value, record.partition,
                          record.offset, extra=event_fields(decided.event))
            await self.dead_letter(record, decided.rejected)
            return
        decision, event = decided.decision, decided.event
        assert decision is not None and event is not None
        for write in decision.writes:
            self.pending[write.table][write.key] = write.value
        topic = self.settings.topic
        for emit in decision.emits:
            await self.send(topic(emit.topic), emit.key.encode(), dumps(emit.value))
        self._decided.append((event, decision, time.perf_counter() - started))


class Sender:
    """Sends forwards to the account log in the hold-back's order across tasks.

    Each task writes through its own producer, and two producers' requests to one partition
    may arrive in either order. Chat messages of different conversations may interleave (no
    decision depends on their relative order beyond a round robin's turn), but a record of
    another topic (settings, presence, directory, ...) waits until what went before it to the
    same partition from another task is appended, and every later record from another task
    waits until it is appended, so "settings, then the message" stays so. The barrier is the
    latest such record, not the latest send: a chat its own task sends after it does not lift
    it for the other tasks (a retried produce once put settings behind 13 later chats).

    Chats go into their task's open batch for the partition (`Task.send_later`): one record
    appended to a batch, not a send with its own future. A record of another topic first has
    the open batches of that partition handed to their producers (its own task's, so its
    chats stay ahead of it; the others', to wait for their delivery), then is sent alone, and
    its future is the barrier.
    """

    def __init__(self, topic: str, partitions: int, parsed: Parsed | None = None,
                 local: Collection[int] = ()) -> None:
        self.topic = topic
        self.partitions = partitions
        # Events for the decision step, kept only for the log partitions this worker decides.
        self.parsed = parsed
        self.local = local
        # partition -> task -> its latest send there (a delivery future, or the task itself
        # while that send waits in its open batch); partition -> (task, future) of the latest
        # record of another topic than chat messages sent there.
        self._last: dict[int, dict[int, Any]] = {}
        self._barrier: dict[int, tuple[int, Any]] = {}
        # account -> log partition: the partitioner is murmur2 in Python (2 % of the worker's
        # samples), and a worker sees the same accounts over and over.
        self._partition_of: dict[str, int] = {}

    async def forward(self, task: Task, account_id: str, value: bytes, control: bool,
                      event: Any = None) -> None:
        """Queue one sequenced record in `task`'s transaction, in order; `event` is what
        `value` parses to, if known."""
        partition = self._partition_of.get(account_id)
        if partition is None:
            if len(self._partition_of) >= 100_000:
                self._partition_of.clear()
            partition = self._partition_of[account_id] = partition_for(account_id,
                                                                       self.partitions)
        if event is not None and self.parsed is not None and partition in self.local:
            self.parsed.put(value, event)
        me = task.partition
        sends = self._last.get(partition)
        if sends is None:
            sends = self._last[partition] = {}
        if not control:
            # A send from the same task needs no wait: one producer appends in the order sent.
            barrier = self._barrier.get(partition)
            if barrier is not None and barrier[0] != me:
                with contextlib.suppress(Exception):
                    await barrier[1]
            await task.send_later(self.topic, partition, account_id.encode(), value)
            sends[me] = task
            return
        for other, earlier in list(sends.items()):
            if isinstance(earlier, Task):
                # A failed hand-over fails that task's commit (Task.flush keeps the error);
                # here it only means there is nothing to wait for.
                try:
                    earlier = sends[other] = await earlier.flush(self.topic, partition)
                except Exception:
                    continue
            if other != me and earlier is not None:
                # Should a send waited for fail, its task's transaction fails on its own.
                with contextlib.suppress(Exception):
                    await earlier
        future = await task.send(self.topic, account_id.encode(), value, partition=partition)
        sends[me] = future
        self._barrier[partition] = (me, future)

    def reset(self) -> None:
        """Forget the previous cycle's sends (its transactions are committed)."""
        self._last.clear()
        self._barrier.clear()
