"""The processing loop: batches from Kafka, pure steps, one transaction per task and cycle.

Faust's per-record stream path caps any agent at a fraction of a plain aiokafka loop, and its
transactions follow the destination partition, so they cannot give exactly-once (README,
"Why our own loop"). This loop is aiokafka only. Each cycle it reads a batch for the tasks
this worker holds, holds input records back so they leave in time order (steps/holdback.py),
runs the intake step on the released ones and the decision step on the account log, and
commits, per task, every record produced with the changelogs and the input offsets.

aiokafka's `send_offsets_to_transaction` carries no group generation (no KIP-447), so a
zombie is fenced by its transactional id alone: one id per task, `<group>-task-<p>`, the
scheme Kafka Streams used before exactly_once_v2. A new owner starts its producer (which
fences the old one and ends its open transaction), then restores the stores, then reads the
committed offsets afresh and only then fetches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from aiokafka.producer import sender as aiokafka_sender
from mode import Service

from handoff.config import WorkerSettings
from handoff.core.store import StateReader, Table
from handoff.kafka_clients import client_kwargs
from handoff.ops.gc import freeze_survivors, tune_gc
from handoff.ops.metrics import Metrics
from schemas.topics import INPUT_TOPICS, Topic
from steps.decide import Parsed, build_engine
from steps.holdback import Held, HoldBack
from steps.intake import InputRecord, sequence_ms
from steps.validation import Limits
from streams.assignor import TaskAssignor
from streams.state import Store, changelog_topic, open_store, restore
from streams.task import Sender, Task, store_codec, store_names

log = logging.getLogger(__name__)

# Every topic a task reads: the inputs, intake's user mapping, and the account log.
INTAKE_TOPICS = (*INPUT_TOPICS, Topic.USER_ACCOUNTS)


def tune_transaction_retry(ms: int) -> None:
    """Retry AddPartitionsToTxn after `ms` when the previous transaction is still completing.

    The broker answers CONCURRENT_TRANSACTIONS until it has written the last transaction's
    markers, a few milliseconds; aiokafka then waits a fixed 20 ms (its `BACKOFF_OVERRIDE`,
    after KAFKA-5477), and a cycle that begins right after the previous commit, as every
    busy cycle does, pays it in full when the broker is slow to finish. The constant is
    module state: every producer of the worker process shares it, which the worker wants.
    """
    if hasattr(aiokafka_sender, "BACKOFF_OVERRIDE"):
        aiokafka_sender.BACKOFF_OVERRIDE = ms / 1000
    else:  # a later aiokafka: nothing to tune, or renamed (the pin says which version)
        log.warning("aiokafka has no BACKOFF_OVERRIDE; HANDOFF_TRANSACTION_RETRY_MS ignored")


def transactional_id(group_id: str, partition: int) -> str:
    """The producer id of task `partition`: stable across restarts and workers, so a new owner
    fences the old one."""
    return f"{group_id}-task-{partition}"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ProcessingLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.loop.on_assigned(assigned)


class ProcessingLoop(Service):
    """The worker's hot path, hosted by the Faust app as a service."""

    def __init__(self, settings: WorkerSettings, metrics: Metrics, url: str,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self.assignor = TaskAssignor(url=url)
        self.engine = build_engine(settings.human_request_dirs)
        self.limits = Limits.of(settings)
        self.holdback = HoldBack(settings.sequencing_window_ms, settings.sequencing_hold_ms)
        self.parsed = Parsed()
        self.tasks: dict[int, Task] = {}
        self.restoring: dict[int, asyncio.Task[None]] = {}
        self.kept: dict[int, dict[str, Store]] = {}  # stores of tasks revoked, kept for reuse
        self.lock = asyncio.Lock()
        self.rebalancing = True
        self.running = False
        self.intake_names = {settings.topic(t): t for t in INTAKE_TOPICS}
        self.log_name = settings.topic(Topic.ACCOUNT_EVENTS)
        self.sender = Sender(self.log_name, settings.partitions, self.parsed, self.tasks.keys())
        self.consumer: AIOKafkaConsumer | None = None
        self.restored_records = 0
        self.opened = 0  # tasks opened so far; a batch fetched before an opening is stale

    # -- lifecycle ---------------------------------------------------------------------------

    async def on_start(self) -> None:
        s = self.settings
        tune_gc(s.gc_threshold)
        tune_transaction_retry(s.transaction_retry_ms)
        session_ms = int(s.session_timeout_s * 1000)
        self.consumer = AIOKafkaConsumer(
            **client_kwargs(s), group_id=s.group_id, isolation_level="read_committed",
            enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(self.assignor,), session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(1000, min(3000, session_ms // 3)),
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_wait_ms=s.fetch_wait_ms)
        await self.consumer.start()
        self.consumer.subscribe(topics=[*self.intake_names, self.log_name],
                                listener=_Listener(self))
        self.add_future(self._run())
        self.running = True

    async def on_stop(self) -> None:
        async with self.lock:
            for p in list(self.tasks) + list(self.restoring):
                await self._close(p)
            for stores in self.kept.values():
                for store in stores.values():
                    store.close()
            self.kept.clear()
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()

    async def _run(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        s = self.settings
        while not self.should_stop:
            try:
                # Records held: come back soon to release them (not while a task restores,
                # when nothing is released and a 5 ms spin would only slow the restore).
                wait = (5 if len(self.holdback) and not self.restoring
                        else min(s.batch_wait_ms, self._until_tick()))
                batch, mark = await self._fetch(consumer, wait)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("fetch failed, retrying: %r", exc)
                await asyncio.sleep(1.0)
                continue
            async with self.lock:
                await self._cycle(batch, fetched_after=mark)

    async def _fetch(self, consumer: AIOKafkaConsumer, wait_ms: int
                     ) -> tuple[dict[TopicPartition, list[Any]], int]:
        """One cycle's records, the account log's first, and the count of task openings
        they are current for.

        aiokafka hands out a partition's fetched records until they run out (up to 4 MiB of
        a chat partition's backlog) before another partition's, so intake used to run tens of
        thousands of records ahead of the decisions on them (and the decision step parsed
        them again: the events intake built no longer fit `Parsed`). Taking what was
        forwarded first keeps the two in step: input is read only as fast as it is decided.

        A task opened after a fetch returned seeks to its committed offsets, so that fetch's
        records of it are stale (one opened during a fetch was seeked before it returned, and
        aiokafka drops data fetched for an old position): each fetch's records are kept only
        for tasks opened before it returned.
        """
        most = self.settings.batch_max_records
        logs = [TopicPartition(self.log_name, p) for p in self.tasks]
        first = (await consumer.getmany(*logs, timeout_ms=0, max_records=most)
                 if logs else {})
        first_mark = self.opened
        left = most - sum(len(messages) for messages in first.values())
        if left <= 0:
            return first, first_mark
        batch = await consumer.getmany(timeout_ms=0 if first else wait_ms, max_records=left)
        mark = self.opened
        for tp, messages in first.items():
            task = self.tasks.get(tp.partition)
            if first_mark != mark and (task is None or task.opened > first_mark):
                continue  # stale, and read again from the committed offsets
            later = batch.get(tp)
            batch[tp] = messages + later if later else messages
        return batch, mark

    # -- one cycle ---------------------------------------------------------------------------

    def _until_tick(self) -> int:
        """Milliseconds until some task with something waiting is due to tick."""
        interval = self.settings.tick_interval_ms
        now_ms = int(time.time() * 1000)
        due = [task.ticked_ms + interval - now_ms for task in self.tasks.values() if task.waiting]
        return max(1, min(due)) if due else interval

    def _record(self, topic: Topic, message: Any) -> InputRecord:
        return InputRecord(topic, message.partition, message.offset,
                           int(message.timestamp or 0), message.key, message.value)

    async def _lagging(self) -> list[TopicPartition]:
        """Intake partitions not yet read up to their high watermark (as last fetched)."""
        consumer = self.consumer
        assert consumer is not None
        behind = []
        for task in self.tasks.values():
            if not task.ready:
                continue
            for tp in self._intake_tps(task.partition):
                highwater = consumer.highwater(tp)
                try:
                    position = await consumer.position(tp)
                except KafkaError:
                    continue
                if highwater is None or position < highwater:
                    behind.append(tp)
        return behind

    def _intake_tps(self, partition: int) -> list[TopicPartition]:
        return [TopicPartition(name, partition) for name in self.intake_names]

    def _task_tps(self, partition: int) -> list[TopicPartition]:
        return [*self._intake_tps(partition), TopicPartition(self.log_name, partition)]

    async def _cycle(self, batch: dict[TopicPartition, list[Any]], fetched_after: int) -> None:
        now_ms = int(time.time() * 1000)
        decisions: dict[int, list[InputRecord]] = {}
        for tp, messages in batch.items():
            task = self.tasks.get(tp.partition)
            if task is None or task.opened > fetched_after or not messages:
                # Fetched for a task given up, or returned before the task was opened again
                # (which seeks to the committed offsets): read again from there.
                continue
            if tp.topic == self.log_name:
                decisions.setdefault(tp.partition, []).extend(
                    self._record(Topic.ACCOUNT_EVENTS, m) for m in messages)
                continue
            topic = self.intake_names[tp.topic]
            for m in messages:
                record = self._record(topic, m)
                self.holdback.push(tp, Held(sequence_ms(record.timestamp_ms, now_ms),
                                            event=record, read_ms=now_ms))
        # While a task of this worker opens, its input partitions may hold records older than
        # those held (a directory entry for settings already read): forward nothing until it
        # is open, however old the records are (readiness says which tasks are restoring).
        released = (self.holdback.due(now_ms, await self._lagging())
                    if len(self.holdback) and not self.restoring else [])
        ticking = {p for p, task in self.tasks.items()
                   if task.ready and task.waiting and task.opened <= fetched_after
                   and now_ms - task.ticked_ms >= self.settings.tick_interval_ms}
        busy = sorted(set(decisions) | {h.event.partition for h in released} | ticking)
        if not busy:
            return
        tasks = [self.tasks[p] for p in busy]
        failed: dict[int, BaseException] = {}
        for task in tasks:
            try:
                await task.begin()
            except Exception as exc:
                failed[task.partition] = exc
        self.sender.reset()
        for p in sorted(ticking):
            if p not in failed:
                try:
                    await self.tasks[p].tick(now_ms)
                except Exception as exc:
                    failed[p] = exc
        for held in released:
            task = self.tasks[held.event.partition]
            if task.partition not in failed:
                try:
                    await task.intake(held.event, now_ms, self.sender)
                except Exception as exc:
                    failed[task.partition] = exc
        for p, records in decisions.items():
            task = self.tasks[p]
            for record in records:
                if p in failed:
                    break
                try:
                    await task.decide(record)
                except Exception as exc:
                    failed[p] = exc
        for task in tasks:
            if task.partition not in failed:
                await self._advance(task)
        commits = [task for task in tasks if task.partition not in failed]
        results = await asyncio.gather(*(t.commit(self.settings.group_id) for t in commits),
                                       return_exceptions=True)
        for task, result in zip(commits, results, strict=True):
            if isinstance(result, BaseException):
                failed[task.partition] = result
        for p, error in failed.items():
            await self._recover(self.tasks[p], error)

    async def _advance(self, task: Task) -> None:
        """Set the offsets this cycle commits: the oldest record still held, else the position.

        The position, not the last record + 1: it has moved past transaction markers, so a
        caught-up task commits its high watermark and shows no lag.
        """
        consumer = self.consumer
        assert consumer is not None
        for tp in self._task_tps(task.partition):
            head = self.holdback.head(tp)
            if head is not None:
                offset = head.event.offset
            else:
                try:
                    offset = await consumer.position(tp)
                except KafkaError:
                    continue
            if offset != task.committed.get(tp):
                task.offsets[tp] = offset

    async def _recover(self, task: Task, exc: BaseException) -> None:
        """A task's transaction failed: abort it, close it and open it again.

        Opening again starts a new producer (a failed one may be unusable), restores only the
        changelogs' tail and reads the committed offsets afresh, so the records of the aborted
        cycle are read again. Fenced means another worker may own the task now: wait a session
        timeout first, and the group revokes it meanwhile if it moved (opening it fences in
        turn, so a zombie must not do it at once).
        """
        p = task.partition
        consumer = self.consumer
        assert consumer is not None
        with contextlib.suppress(Exception):
            consumer.pause(*self._task_tps(p))
        # A fenced producer often surfaces as IllegalOperation from its next call: its state
        # went fatal when a send came back ProducerFenced. Either way, wait before reopening.
        fenced = isinstance(exc, ProducerFenced | IllegalOperation)
        if fenced:
            log.warning("task %s: fenced by a newer owner, or its producer failed for good; "
                        "leaving it for a session timeout (%r)", p, exc)
        else:
            log.warning("task %s: transaction aborted, opening the task again: %r", p, exc)
        await self._close(p)
        self.parsed.clear()  # events of the aborted cycle: never read back, or parsed anew
        self.restoring[p] = asyncio.ensure_future(
            self._open(p, delay=self.settings.session_timeout_s if fenced else 0.5))

    # -- rebalancing -------------------------------------------------------------------------

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Finish the cycle in flight (it commits or aborts), then give the tasks up."""
        self.rebalancing = True
        async with self.lock:
            for p in sorted({tp.partition for tp in revoked}):
                await self._close(p)
            self.parsed.clear()
        self.assignor.held = sorted(self.kept)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Pause the new tasks' partitions, and open each task (fence, restore, position)."""
        consumer = self.consumer
        assert consumer is not None
        consumer.pause(*assigned)
        partitions = sorted({tp.partition for tp in assigned})
        for p in list(self.kept):
            if p not in partitions:  # moved to another worker: its data here goes stale
                for store in self.kept.pop(p).values():
                    store.close()
        for p in partitions:
            self.restoring[p] = asyncio.ensure_future(self._open(p))
        self.assignor.held = partitions
        self.rebalancing = False

    async def _open(self, p: int, delay: float = 0.0) -> None:
        """Open task `p` (fence, restore, position), retrying until it opens or is revoked."""
        await asyncio.sleep(delay)
        attempt = 0
        while True:
            try:
                await self._open_once(p)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                attempt += 1
                log.exception("task %s: could not be opened (attempt %d); retrying", p, attempt)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** attempt))

    async def _open_once(self, p: int) -> None:
        s = self.settings
        consumer = self.consumer
        assert consumer is not None
        started = time.monotonic()
        producer = AIOKafkaProducer(
            **client_kwargs(s), transactional_id=transactional_id(s.group_id, p),
            enable_idempotence=True, acks="all", linger_ms=s.producer_linger_ms,
            max_request_size=2 * 1024 * 1024, max_batch_size=s.producer_batch_bytes,
            # Kafka 4 answers a transactional produce NOT_ENOUGH_REPLICAS while it verifies
            # the partition joined the transaction; aiokafka's 100 ms default backoff then
            # puts 100 ms on the message's latency for a check that takes a millisecond.
            retry_backoff_ms=s.producer_retry_backoff_ms)
        stores: dict[str, Store] | None = None
        try:
            await producer.start()  # InitProducerId: fences the old owner, ends its transaction
            stores = self.kept.pop(p, None) or {
                name: open_store(s.store, s.data_dir, s.group_id, name, p, store_codec(name))
                for name in store_names()}
            reader = AIOKafkaConsumer(**client_kwargs(s), group_id=None,
                                      isolation_level="read_committed",
                                      enable_auto_commit=False)
            await reader.start()
            try:
                counts = await restore(reader, {
                    TopicPartition(changelog_topic(s.group_id, name), p): store
                    for name, store in stores.items()})
            finally:
                await reader.stop()
            task = Task(partition=p, settings=s, producer=producer, stores=stores,
                        engine=self.engine, metrics=self.metrics, limits=self.limits,
                        parsed=self.parsed)
            # Read afresh now that the old owner's last transaction has ended: an offset
            # fetched at assignment could predate it.
            tps = self._task_tps(p)
            beginnings = await consumer.beginning_offsets(tps)
            for tp in tps:
                offset = await consumer.committed(tp)
                if offset is None:
                    offset = beginnings[tp]
                consumer.seek(tp, offset)
                task.committed[tp] = offset
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            if stores is not None:
                self.kept[p] = stores  # a RocksDB store stays open (and locked) for the retry
            raise
        restored = sum(counts.values())
        self.restored_records += restored
        self.opened += 1
        task.opened = self.opened
        task.ready = True
        self.tasks[p] = task
        self.restoring.pop(p, None)
        consumer.resume(*tps)
        log.info("task %s ready: %d state records restored in %.1f s", p, restored,
                 time.monotonic() - started)
        if not self.restoring and not self.rebalancing:
            if self.settings.gc_threshold > 0:
                # What was restored lives as long as the task: no collection need walk it.
                freeze_survivors()
            # The line operators (and the benchmarks) wait for: every task held is processing.
            log.info("Worker ready: tasks %s, %d state records restored since start",
                     sorted(self.tasks), self.restored_records)

    async def _close(self, p: int) -> None:
        opening = self.restoring.pop(p, None)
        if opening is not None:
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
        task = self.tasks.pop(p, None)
        for tp in self._intake_tps(p):
            self.holdback.drop(tp)
        if task is None:
            return
        await task.abort()
        with contextlib.suppress(Exception):
            await task.producer.stop()
        self.kept[p] = task.stores

    # -- what the web pages and metrics read -------------------------------------------------

    def not_ready_reason(self) -> str | None:
        """`None` when the worker is ready; otherwise why not, in words."""
        if not self.running:
            return "the processing loop is starting"
        if self.rebalancing:
            return "rebalancing: partitions are being reassigned"
        if self.restoring:
            return f"restoring state for tasks {sorted(self.restoring)}"
        if not self.tasks:
            return "no partitions assigned to this worker"
        return None

    def owner(self, partition: int) -> str | None:
        """The web address of the worker holding task `partition`, as of the last assignment."""
        return self.assignor.owners.get(partition)

    def reader(self, partition: int) -> StateReader | None:
        """Committed state of task `partition` when this worker holds it, ready; else None."""
        task = self.tasks.get(partition)
        if task is None or not task.ready:
            return None
        return _Committed(task.stores)

    def conversations(self) -> Iterator[tuple[str, object]]:
        """Every conversation state on this worker's tasks."""
        for task in list(self.tasks.values()):
            yield from task.stores[Table.CONVERSATIONS.value].scan()

    def queues(self) -> Iterator[tuple[str, object]]:
        """Every destination queue on this worker's tasks."""
        for task in list(self.tasks.values()):
            yield from task.stores[Table.QUEUES.value].scan()

    def lag(self) -> Iterator[tuple[str, int, int]]:
        """(contract topic, partition, records behind the high watermark) per task input."""
        consumer = self.consumer
        if consumer is None:
            return
        names = {**{k: v.value for k, v in self.intake_names.items()},
                 self.log_name: Topic.ACCOUNT_EVENTS.value}
        for task in list(self.tasks.values()):
            for tp in self._task_tps(task.partition):
                try:
                    highwater = consumer.highwater(tp)
                except Exception:
                    continue
                position = task.committed.get(tp)
                if highwater is None or position is None:
                    continue
                yield names[tp.topic], tp.partition, max(0, highwater - position)

    @property
    def generation(self) -> int:
        return self.assignor.generation


class _Committed:
    """The core's reader over a task's stores as committed (what the settings API reads)."""

    __slots__ = ("_stores",)

    def __init__(self, stores: dict[str, Store]) -> None:
        self._stores = stores

    def get(self, table: Table, key: str) -> object | None:
        return self._stores[table.value].get(key)
