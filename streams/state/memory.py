"""The in-memory store: a dict of values, rebuilt from the changelog on every start."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import orjson

from streams.state.base import Codec, decode_restored


class MemoryStore:
    """Values kept decoded, so a read costs a dict lookup; nothing survives the process.

    Restored values stay bytes until first read: decoding a million conversations took three
    times as long as reading them (README, "Performance"), and most are never read again.
    """

    def __init__(self, name: str, partition: int, codec: Codec) -> None:
        self.name = name
        self.partition = partition
        self.codec = codec
        self._data: dict[str, object] = {}
        self._raw: dict[str, bytes] = {}  # restored, not read yet; keys not in _data
        # Kept so a store that outlives a rebalance (same process) restores only the tail;
        # starting earlier than needed is harmless, replaying a suffix gives the same state.
        self._next_offset = 0

    def get(self, key: str) -> object | None:
        """The stored object (decoded on its first read after a restore), or None."""
        value = self._data.get(key)
        if value is None and self._raw:
            raw = self._raw.pop(key, None)
            if raw is not None:
                value = decode_restored(self.codec, self.name, self.partition, key, raw)
                if value is not None:
                    self._data[key] = value
        return value

    def write(self, changes: Mapping[str, object | None], next_offset: int | None,
              encoded: Mapping[str, bytes] | None = None) -> None:
        """Apply a committed batch; None deletes (`encoded` is not needed here)."""
        data, raw = self._data, self._raw
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
            if raw:
                raw.pop(key, None)
        if next_offset is not None:
            self._next_offset = next_offset

    def write_encoded(self, changes: Mapping[str, bytes | None], next_offset: int | None
                      ) -> None:
        """Apply restored changelog records, kept as bytes until read."""
        data, raw = self._data, self._raw
        for key, value in changes.items():
            data.pop(key, None)
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value
        if next_offset is not None:
            self._next_offset = next_offset

    def items(self) -> Iterator[tuple[str, object]]:
        """A snapshot of the entries, decoded, so writes while iterating do not break it."""
        for key in list(self._raw):
            self.get(key)
        return iter(list(self._data.items()))

    def scan(self) -> Iterator[tuple[str, object]]:
        """The decoded entries, then the restored ones as plain JSON data (not kept)."""
        decoded = list(self._data.items())
        restored = list(self._raw.items())
        yield from decoded
        for key, raw in restored:
            try:
                yield key, orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # get() reports it, when the loop reads the key

    def __len__(self) -> int:
        return len(self._data) + len(self._raw)

    def restore_from(self) -> int:
        """0 for a new store, else the last offset `write` was given."""
        return self._next_offset

    def close(self) -> None:
        """Free the memory: the data is the changelog's to give back."""
        self.drop()

    def drop(self) -> None:
        """Forget every entry and the resume offset."""
        self._data = {}
        self._raw = {}
        self._next_offset = 0

    def __repr__(self) -> str:
        return f"MemoryStore({self.name!r}, partition={self.partition}, keys={len(self)})"
