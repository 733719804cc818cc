"""The in-memory store: a dict of decoded values, rebuilt from the changelog on every start."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from streams.state.base import Codec


class MemoryStore:
    """Values kept decoded, so a read costs a dict lookup; nothing survives the process."""

    def __init__(self, name: str, partition: int, codec: Codec) -> None:
        self.name = name
        self.partition = partition
        self.codec = codec
        self._data: dict[str, object] = {}
        # Kept so a store that outlives a rebalance (same process) restores only the tail;
        # starting earlier than needed is harmless, replaying a suffix gives the same state.
        self._next_offset = 0

    def get(self, key: str) -> object | None:
        """The stored object, or None."""
        return self._data.get(key)

    def write(self, changes: Mapping[str, object | None], next_offset: int | None,
              encoded: Mapping[str, bytes] | None = None) -> None:
        """Apply a committed batch; None deletes (`encoded` is not needed here)."""
        data = self._data
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        if next_offset is not None:
            self._next_offset = next_offset

    def items(self) -> Iterator[tuple[str, object]]:
        """A snapshot of the entries, so writes while iterating do not break the iteration."""
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

    def restore_from(self) -> int:
        """0 for a new store, else the last offset `write` was given."""
        return self._next_offset

    def close(self) -> None:
        """Free the memory: the data is the changelog's to give back."""
        self._data = {}
        self._next_offset = 0

    def drop(self) -> None:
        """Forget every entry and the resume offset."""
        self._data = {}
        self._next_offset = 0

    def __repr__(self) -> str:
        return f"MemoryStore({self.name!r}, partition={self.partition}, keys={len(self._data)})"
