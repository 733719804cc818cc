"""Reading the recorded per-account log (`handoff.account-events`) for replay, audit and what-if.

The log holds every input in the order the live worker decided it, one ordered partition per
group of accounts (an account never spans partitions). Whatever range is asked for, state must
be as it was at each point, so a partition is always read from its first record: records before
the range only rebuild state ("warm-up"), records inside it are the ones whose outputs count.

Records are streamed partition by partition with a bounded fetch buffer; nothing is loaded
whole. A range is half-open, `[from, to)`, by offset per partition or by record timestamp
(resolved to offsets with the broker's time index, so a time range is also a contiguous run of
the log and replays deterministically).
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import TypeAdapter, ValidationError

from handoff.config import WorkerSettings
from handoff.kafka_clients import client_kwargs
from schemas.internal import AccountEvent

ALL = -1  # an offset bound given without a partition applies to every partition

_account_event: TypeAdapter[Any] = TypeAdapter(AccountEvent)


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp with its offset (`2026-11-26T10:00:00Z`), as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not an RFC 3339 timestamp (like 2026-11-26T10:00:00Z)"
                         ) from None
    if value.tzinfo is None:
        raise ValueError(f"'{text}' has no UTC offset; add Z or +01:00")
    return value.astimezone(UTC)


def parse_offsets(values: Iterable[str]) -> dict[int, int]:
    """`PARTITION:OFFSET` bounds (or a bare `OFFSET` for every partition)."""
    out: dict[int, int] = {}
    for text in values:
        part, sep, off = text.strip().rpartition(":")
        try:
            partition = int(part) if sep else ALL
            offset = int(off)
        except ValueError:
            raise ValueError(f"'{text}' is not PARTITION:OFFSET or OFFSET") from None
        if offset < 0 or (sep and partition < 0):
            raise ValueError(f"'{text}': partitions and offsets are not negative")
        out[partition] = offset
    return out


@dataclass(frozen=True)
class LogRange:
    """The part of the log whose outputs count; everything before it only rebuilds state.

    Offsets are per partition (`ALL` for every partition not named); times are record
    timestamps of the sequenced log. The start is included, the end is not.
    """

    from_offsets: Mapping[int, int] = field(default_factory=dict)
    to_offsets: Mapping[int, int] = field(default_factory=dict)
    from_time: datetime | None = None
    to_time: datetime | None = None

    def __post_init__(self) -> None:
        if self.from_offsets and self.from_time is not None:
            raise ValueError("give the start as offsets or as a time, not both")
        if self.to_offsets and self.to_time is not None:
            raise ValueError("give the end as offsets or as a time, not both")
        if (self.from_time is not None and self.to_time is not None
                and self.to_time < self.from_time):
            raise ValueError("the end time is before the start time")

    @property
    def whole(self) -> bool:
        return not (self.from_offsets or self.to_offsets or self.from_time or self.to_time)

    def describe(self) -> str:
        if self.whole:
            return "the whole log"

        def bound(offsets: Mapping[int, int], at: datetime | None, default: str) -> str:
            if at is not None:
                return at.isoformat().replace("+00:00", "Z")
            if offsets:
                return ", ".join(f"{'*' if p == ALL else p}:{o}" for p, o in sorted(offsets.items()))
            return default

        return (f"from {bound(self.from_offsets, self.from_time, 'the beginning')} "
                f"to {bound(self.to_offsets, self.to_time, 'the end')}")


@dataclass(frozen=True, slots=True)
class Span:
    """One partition's plan: read [begin, stop), count outputs of [start, stop)."""

    partition: int
    begin: int
    start: int
    stop: int

    @property
    def records(self) -> int:
        return max(0, self.stop - self.begin)


class LogRecord(NamedTuple):  # one per record read: a named tuple is quick to make
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    in_range: bool


def parse_event(value: bytes | None) -> Any | None:
    """The sequenced event, or None for a record the live worker dead-lettered too."""
    if value is None:
        return None
    try:
        return _account_event.validate_json(value, strict=True)
    except ValidationError:
        return None


def consumer_for(settings: WorkerSettings) -> AIOKafkaConsumer:
    """A group-less, manually assigned consumer that never commits."""
    return AIOKafkaConsumer(**client_kwargs(settings), group_id=None,
                            enable_auto_commit=False, isolation_level="read_committed",
                            max_partition_fetch_bytes=1024 * 1024,
                            # Short long-polls: a read ends at a known offset, and lookups on
                            # the next partition would queue behind a 500 ms poll of the last.
                            fetch_max_wait_ms=50)


@asynccontextmanager
async def open_consumer(settings: WorkerSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """`consumer_for`, started, and stopped however the block ends (even if start failed)."""
    consumer = consumer_for(settings)
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """The topic's partitions; an error naming the topic when it does not exist."""
    found = consumer.partitions_for_topic(topic)
    if not found:
        # A manually assigned consumer only tracks the metadata of the topics it was given.
        client = consumer._client
        await client.set_topics([*client._topics, topic])
        found = consumer.partitions_for_topic(topic)
    if not found:
        raise LookupError(f"topic {topic} does not exist on {consumer._client._bootstrap_servers}")
    return sorted(found)


async def plan(consumer: AIOKafkaConsumer, topic: str, log_range: LogRange,
               only: Iterable[int] | None = None) -> list[Span]:
    """Resolve the range to offsets, per partition, against the log as it is now."""
    numbers = await partitions_of(consumer, topic)
    if only is not None:
        wanted = set(only)
        numbers = [p for p in numbers if p in wanted]
    tps = [TopicPartition(topic, p) for p in numbers]
    if not tps:
        return []
    begins = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)

    async def at_time(when: datetime | None) -> dict[TopicPartition, int | None]:
        if when is None:
            return dict.fromkeys(tps)
        found = await consumer.offsets_for_times(
            dict.fromkeys(tps, int(when.timestamp() * 1000)))
        # No record at or after that time: the bound is the end of the partition.
        return {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}

    starts_at, stops_at = await at_time(log_range.from_time), await at_time(log_range.to_time)
    spans = []
    for tp in tps:
        p = tp.partition
        start = starts_at[tp]
        if start is None:
            start = log_range.from_offsets.get(p, log_range.from_offsets.get(ALL, begins[tp]))
        stop = stops_at[tp]
        if stop is None:
            stop = log_range.to_offsets.get(p, log_range.to_offsets.get(ALL, ends[tp]))
        stop = min(stop, ends[tp])
        start = max(start, begins[tp])
        spans.append(Span(p, begins[tp], start, stop))
    return spans


async def read_spans(consumer: AIOKafkaConsumer, topic: str, spans: list[Span],
                     keys: set[bytes] | None = None,
                     progress: Progress | None = None) -> AsyncIterator[LogRecord]:
    """Stream each partition's records of its span, in log order, partition after partition.

    `keys`: only records under these keys are yielded (others are skipped undecoded). A span
    with nothing in range is not read at all: its state could not change any counted output.
    """
    for span in spans:
        if span.start >= span.stop:
            continue
        tp = TopicPartition(topic, span.partition)
        consumer.assign([tp])
        consumer.seek(tp, span.begin)
        while await consumer.position(tp) < span.stop:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
            records = batch.get(tp, [])
            for m in records:
                if m.offset >= span.stop:
                    break
                if progress is not None:
                    progress.advance()
                if keys is not None and m.key not in keys:
                    continue
                yield LogRecord(span.partition, m.offset, m.timestamp, m.key, m.value,
                                m.offset >= span.start)
            if records and records[-1].offset >= span.stop - 1:
                break


class Progress:
    """A record counter on stderr for long runs: a line that rewrites itself on a terminal,
    one line every ten seconds otherwise. Nothing at all for short runs."""

    def __init__(self, label: str, total: int, stream: IO[str] | None = None,
                 enabled: bool = True, min_total: int = 20_000) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total >= min_total
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._shown = self._started

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and self.done % 1000 == 0:
            now = time.monotonic()
            if now - self._shown >= (0.5 if self.tty else 10.0):
                self._shown = now
                self._write()

    def _write(self, end: str = "") -> None:
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        line = f"{self.label}: {self.done:,} / {self.total:,} records{share}, {rate:,.0f}/s"
        self.stream.write(("\r" + line + end) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._write("\n" if self.tty else "")
