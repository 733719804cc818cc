"""A state store for long replays: a bounded in-memory cache over a temporary SQLite file.

Replaying a day of traffic touches one conversation state per conversation; kept in a dict they
would grow with the replayed range. `SpillStore` keeps the most recently used `cache_entries`
values as they are and writes the others, as JSON, to a throw-away SQLite file, so memory stays
flat however long the range. A value read back is a plain dict, exactly as a Faust table
restored from its changelog gives it, and the core reads both alike (`store._typed`), so the
decisions and their bytes do not change (tested against `MemoryStore`).
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import OrderedDict
from pathlib import Path

import orjson
from pydantic import BaseModel

from handoff.core.store import Table, Write

# About 1.5 KiB a conversation state in memory: 50,000 are some 75 MiB, and hold every
# conversation of a 100,000-record preview (one new conversation per four records), whose
# spilled states would be encoded, read back and validated again (a tenth of its CPU).
DEFAULT_CACHE_ENTRIES = 50_000
_FLUSH_EVERY = 2_000
_MISSING = object()
# Most reads that miss the cache are of keys never written (a new conversation): a filter of
# the keys on disk answers them without SQLite. 2**23 bits (1 MiB) with two bits per key:
# at 1,000,000 spilled keys about 5% of such reads still ask SQLite (and find nothing).
_FILTER_BITS = 1 << 23
_FILTER_MASK = _FILTER_BITS - 1


def _encode(value: object) -> bytes:
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value)
    return orjson.dumps(value)


class SpillStore:
    """`MemoryStore`'s interface (`get`, `apply`) with at most `cache_entries` values in memory."""

    def __init__(self, cache_entries: int = DEFAULT_CACHE_ENTRIES, directory: Path | None = None
                 ) -> None:
        if cache_entries < 1:
            raise ValueError("cache_entries must be at least 1")
        self.cache_entries = cache_entries
        self._cache: OrderedDict[tuple[Table, str], object] = OrderedDict()
        self._evicted: dict[tuple[Table, str], bytes] = {}  # written out at the next flush
        self._tmp = tempfile.TemporaryDirectory(prefix="handoff-spill-", dir=directory)
        self._db = sqlite3.connect(Path(self._tmp.name) / "state.sqlite3")
        self._db.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -4096;
            CREATE TABLE state (t TEXT NOT NULL, k TEXT NOT NULL, v BLOB NOT NULL,
                                PRIMARY KEY (t, k)) WITHOUT ROWID;
        """)
        self.spilled = 0  # values ever written to disk, for the figures
        self._on_disk = bytearray(_FILTER_BITS // 8)

    def _maybe_on_disk(self, slot: tuple[Table, str]) -> bool:
        if not self.spilled:  # nothing on disk yet: the common case of a short range
            return False
        h = hash(slot)
        a, b = h & _FILTER_MASK, (h >> 32) & _FILTER_MASK
        bits = self._on_disk
        return bool(bits[a >> 3] & (1 << (a & 7))) and bool(bits[b >> 3] & (1 << (b & 7)))

    def _mark_on_disk(self, slot: tuple[Table, str]) -> None:
        h = hash(slot)
        a, b = h & _FILTER_MASK, (h >> 32) & _FILTER_MASK
        self._on_disk[a >> 3] |= 1 << (a & 7)
        self._on_disk[b >> 3] |= 1 << (b & 7)

    def get(self, table: Table, key: str) -> object | None:
        slot = (table, key)
        hit = self._cache.get(slot, _MISSING)
        if hit is not _MISSING:
            self._cache.move_to_end(slot)
            return hit
        raw = self._evicted.pop(slot, None)
        if raw is None:
            if not self._maybe_on_disk(slot):
                return None
            row = self._db.execute("SELECT v FROM state WHERE t = ? AND k = ?",
                                   (table.value, key)).fetchone()
            if row is None:
                return None
            raw = row[0]
        value: object = orjson.loads(raw)
        self._remember(slot, value)
        return value

    def apply(self, writes: list[Write]) -> None:
        """Apply a decision's writes in order."""
        cache, evicted = self._cache, self._evicted
        for w in writes:
            slot = (w.table, w.key)
            evicted.pop(slot, None)
            if w.value is None:
                cache.pop(slot, None)
                if self._maybe_on_disk(slot):
                    self._db.execute("DELETE FROM state WHERE t = ? AND k = ?",
                                     (w.table.value, w.key))
            elif slot in cache:
                # Most writes replace a value just read: it only becomes the newest.
                cache[slot] = w.value
                cache.move_to_end(slot)
            else:
                self._remember(slot, w.value)

    def _remember(self, slot: tuple[Table, str], value: object) -> None:
        self._cache[slot] = value
        while len(self._cache) > self.cache_entries:
            old, old_value = self._cache.popitem(last=False)
            self._evicted[old] = _encode(old_value)
        if len(self._evicted) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        for slot in self._evicted:
            self._mark_on_disk(slot)
        rows = [(t.value, k, v) for (t, k), v in self._evicted.items()]
        self._db.executemany("INSERT OR REPLACE INTO state (t, k, v) VALUES (?, ?, ?)", rows)
        self._db.commit()
        self.spilled += len(rows)
        self._evicted.clear()

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    def __enter__(self) -> SpillStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
