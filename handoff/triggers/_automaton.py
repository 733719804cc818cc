"""Typed wrapper around pyahocorasick, which ships no type stubs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar, cast

import ahocorasick  # type: ignore[import-not-found, unused-ignore]

V = TypeVar("V")
V_co = TypeVar("V_co", covariant=True)


class _RawAutomaton(Protocol[V_co]):
    def iter(self, string: str) -> Iterator[tuple[int, V_co]]: ...


class Automaton(Generic[V]):
    """Aho-Corasick automaton over string keys; empty key sets never match."""

    __slots__ = ("_raw", "_size")

    def __init__(self, items: Iterable[tuple[str, V]]) -> None:
        raw = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        size = 0
        for key, value in items:
            # add_word returns False when it overwrote an existing key.
            if raw.add_word(key, value):
                size += 1
        self._size = size
        # pyahocorasick refuses to build or search an empty trie, so an empty
        # matcher keeps no automaton at all.
        if size:
            raw.make_automaton()
            self._raw: _RawAutomaton[V] | None = cast("_RawAutomaton[V]", raw)
        else:
            self._raw = None

    def __len__(self) -> int:
        return self._size

    def iter(self, text: str) -> Iterator[tuple[int, V]]:
        """Yield ``(end_index, value)`` for every key occurrence, by end index."""
        if self._raw is None:
            return iter(())
        return self._raw.iter(text)
