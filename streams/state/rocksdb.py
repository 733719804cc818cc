"""The RocksDB store: values on disk as bytes, the resume offset beside them, hot keys decoded once."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

import orjson

from streams.state.base import Codec, decode_restored

if TYPE_CHECKING:
    from rocksdict import ColumnFamily, Options, Rdict

META_CF = "meta"
NEXT_OFFSET_KEY = b"next_offset"
DEFAULT_CACHE_SIZE = 100_000
# Entries read per iterator in items(): no RocksDB iterator stays alive while the caller
# holds the generator, because a live iterator keeps the DB (and its LOCK) open after close().
_ITEMS_CHUNK = 1_000


def _options() -> Options:
    from rocksdict import Options

    # Raw mode: keys and values are our bytes, not rocksdict's pickled Python objects.
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    return options


class RocksDBStore:
    """One RocksDB per (store, partition) under `<path>`; the data outlives the process."""

    def __init__(self, path: Path, name: str, partition: int, codec: Codec,
                 cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        try:
            import rocksdict  # noqa: F401
        except ImportError as exc:  # pragma: no cover - rocksdict is in requirements.lock
            raise RuntimeError("the rocksdb:// store needs the rocksdict package") from exc
        self.path = path
        self.name = name
        self.partition = partition
        self.codec = codec
        self._cache_size = cache_size
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._db: Rdict | None = None
        self._meta: ColumnFamily | None = None
        self._next_offset = 0
        self._open()

    def _open(self) -> None:
        from rocksdict import Options, Rdict

        self.path.mkdir(parents=True, exist_ok=True)
        db = Rdict(str(self.path), _options(), column_families={META_CF: Options(raw_mode=True)})
        meta = db.get_column_family(META_CF)
        raw = meta.get(NEXT_OFFSET_KEY)
        del meta  # a column-family view holds the DB open; keep only the handle
        self._next_offset = int.from_bytes(raw, "big") if raw is not None else 0
        self._meta = db.get_column_family_handle(META_CF)
        self._db = db

    @property
    def _rdict(self) -> Rdict:
        if self._db is None:
            raise RuntimeError(f"store {self.name}-{self.partition} is closed")
        return self._db

    def get(self, key: str) -> object | None:
        """The decoded value, decoded once while it stays among the cached entries."""
        cache = self._cache
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        raw = self._rdict.get(key.encode())
        if raw is None:
            return None
        value = decode_restored(self.codec, self.name, self.partition, key, raw)
        if value is None:
            return None
        cache[key] = value
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return value

    def write(self, changes: Mapping[str, object | None], next_offset: int | None,
              encoded: Mapping[str, bytes] | None = None) -> None:
        """Apply a committed batch and the resume offset in one atomic WriteBatch.

        `encoded`: bytes already made for some values (by the changelog send or the restore).
        """
        from rocksdict import WriteBatch

        db = self._rdict
        batch = WriteBatch(raw_mode=True)
        encode = self.codec.encode
        given = encoded or {}
        cache = self._cache
        for key, value in changes.items():
            if value is None:
                batch.delete(key.encode())
            else:
                raw = given.get(key)
                batch.put(key.encode(), raw if raw is not None else encode(value))
        if next_offset is not None:
            batch.put(NEXT_OFFSET_KEY, next_offset.to_bytes(8, "big"), self._meta)
        if not batch.is_empty():
            db.write(batch)
        # Only once the batch is on disk, so a value that fails to encode leaves both unchanged.
        for key, value in changes.items():
            if value is None:
                cache.pop(key, None)
            elif key in cache:
                # Refresh a cached key, but do not insert: a restore writes every key once and
                # would push the hot ones out; a key read by the loop is cached by that read.
                cache[key] = value
        if next_offset is not None:
            self._next_offset = next_offset

    def write_encoded(self, changes: Mapping[str, bytes | None], next_offset: int | None
                      ) -> None:
        """Apply restored changelog records as they are, with the resume offset, atomically."""
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key.encode())
            else:
                batch.put(key.encode(), value)
        if next_offset is not None:
            batch.put(NEXT_OFFSET_KEY, next_offset.to_bytes(8, "big"), self._meta)
        if not batch.is_empty():
            self._rdict.write(batch)
        for key in changes:
            self._cache.pop(key, None)
        if next_offset is not None:
            self._next_offset = next_offset

    def items(self) -> Iterator[tuple[str, object]]:
        """Every entry decoded, in key order; writes made while iterating may or may not be
        seen; an undecodable value is skipped."""
        for key, value in self._entries(decode=True):
            if value is not None:
                yield key, value

    def scan(self) -> Iterator[tuple[str, object]]:
        """Every entry: cached ones decoded, the others as plain JSON data."""
        return self._entries(decode=False)

    def _entries(self, decode: bool) -> Iterator[tuple[str, object]]:
        start: bytes | None = None
        while True:
            chunk: list[tuple[bytes, bytes]] = []
            it = self._rdict.items(from_key=start)
            for raw_key, raw_value in it:
                if raw_key == start:
                    continue
                # Raw mode: keys and values are always bytes (the stubs cover every mode).
                chunk.append((cast(bytes, raw_key), cast(bytes, raw_value)))
                if len(chunk) >= _ITEMS_CHUNK:
                    break
            del it
            for raw_key, raw_value in chunk:
                key = raw_key.decode()
                cached = self._cache.get(key)
                if cached is not None:
                    yield key, cached
                elif decode:
                    yield key, decode_restored(self.codec, self.name, self.partition, key,
                                               raw_value)
                else:
                    try:
                        yield key, orjson.loads(raw_value)
                    except orjson.JSONDecodeError:
                        continue
            if len(chunk) < _ITEMS_CHUNK:
                return
            start = chunk[-1][0]

    def __len__(self) -> int:
        """RocksDB's estimate of the key count (deletes and overwrites make it inexact)."""
        return self._rdict.property_int_value("rocksdb.estimate-num-keys") or 0

    def restore_from(self) -> int:
        """The offset persisted with the last batch that carried one, else 0."""
        return self._next_offset

    def close(self) -> None:
        """Close the DB and release its lock; a closed store refuses reads and writes."""
        db, self._db, self._meta = self._db, None, None
        self._cache.clear()
        if db is not None:
            db.close()

    def drop(self) -> None:
        """Delete the DB's files and reopen it empty, resuming from offset 0."""
        from rocksdict import Rdict

        self.close()
        Rdict.destroy(str(self.path), _options())
        # destroy leaves the directory (and any stray files) behind; start from nothing.
        shutil.rmtree(self.path, ignore_errors=True)
        self._open()

    def __repr__(self) -> str:
        return f"RocksDBStore({self.name!r}, partition={self.partition}, path={str(self.path)!r})"
