"""Hold-back sequencing: forward records across topics in timestamp order, not arrival order.

Kafka orders records within a partition only. A directory entry and the settings naming it,
or a presence change and the next message, sit on different partitions and reach the consumer
in whatever order fetches return them. Like Kafka Streams' timestamp synchronisation, the
intake keeps a FIFO per source partition and releases the oldest head first, but only while
no other partition may still deliver something older: every partition with nothing queued
must have been read up to its high watermark, and the head must be a few milliseconds old
(HANDOFF_SEQUENCING_HOLD_MS). A partition that stays behind longer than the maximum wait
(HANDOFF_SEQUENCING_WINDOW_MS) is not waited for any more, so nothing stalls. The wait counts
from when a record was both stamped and read: a backlog read at start (every stamp older than
the window) still waits for the partitions not fetched yet, instead of leaving in fetch order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

_sequence = count()


@dataclass(order=True, slots=True)
class Held:
    timestamp_ms: int
    seq: int = field(default_factory=_sequence.__next__)
    key: bytes = field(default=b"", compare=False)
    value: bytes = field(default=b"", compare=False)
    # The input record itself, applied when released (None: nothing more to do).
    event: Any = field(default=None, compare=False)
    # When it was read (ms); -1: unknown, the stamp alone counts for the maximum wait.
    read_ms: int = field(default=-1, compare=False)


class HoldBack:
    """Per-source FIFO queues, released oldest head first when nothing older can still come."""

    def __init__(self, window_ms: int, min_hold_ms: int = 0) -> None:
        self.window_ms = window_ms
        # Records sent together without waiting for acknowledgements can be appended in
        # another order than they were stamped; a short hold lets the stamps decide.
        self.min_hold_ms = min(min_hold_ms, window_ms)
        self._queues: dict[Hashable, deque[Held]] = {}
        # The head of every non-empty queue as (timestamp_ms, seq, source), oldest on top:
        # finding the oldest head by scanning every queue cost a pass over all of a worker's
        # input partitions per record released.
        self._heads: list[tuple[int, int, Hashable]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, source: Hashable, held: Held) -> None:
        """Queue a record behind the earlier records of the same source partition."""
        queue = self._queues.get(source)
        if queue is None:
            queue = self._queues[source] = deque()
        if not queue:
            heapq.heappush(self._heads, (held.timestamp_ms, held.seq, source))
        queue.append(held)
        self._count += 1

    def due(self, now_ms: int, lagging: Iterable[Hashable] = ()) -> list[Held]:
        """Records to forward now, oldest head first.

        `lagging` are the sources not yet read up to their high watermark: while one of them has
        nothing queued it may still deliver an older record, so heads younger than the maximum
        wait are held back.
        """
        out: list[Held] = []
        limit = now_ms - self.window_ms
        held_until = now_ms - self.min_hold_ms
        queues, heads = self._queues, self._heads
        behind = set(lagging)
        # Only a release can empty a queue, so this is checked once and then per emptied queue.
        starved = any(not queues.get(s) for s in behind)
        while heads:
            queue = queues[heads[0][2]]
            head = queue[0]
            if max(head.timestamp_ms, head.read_ms) > limit and (
                    head.timestamp_ms > held_until or starved):
                break
            _, _, source = heapq.heappop(heads)
            out.append(queue.popleft())
            if queue:
                following = queue[0]
                heapq.heappush(heads, (following.timestamp_ms, following.seq, source))
            elif source in behind:
                starved = True
        self._count -= len(out)
        return out

    def head(self, source: Hashable) -> Held | None:
        """The oldest record still held for a source, or None."""
        queue = self._queues.get(source)
        return queue[0] if queue else None

    def drop(self, source: Hashable) -> list[Held]:
        """Forget a source's held records (its partition was revoked); returns them."""
        dropped = list(self._queues.pop(source, ()))
        if dropped:
            self._count -= len(dropped)
            self._heads = [entry for entry in self._heads if entry[2] != source]
            heapq.heapify(self._heads)
        return dropped
