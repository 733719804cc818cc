"""Editor-defined trigger phrases ("refund", "oppsigelse", "cancel my subscription").

Whole-word semantics: a phrase matches only as complete words, so "refund"
matches "I want a refund!" but not "refunded" or "refunds" (add those forms
as phrases of their own if wanted).  Case, diacritics and punctuation are
ignored because phrases and messages share `normalize`.
"""

from __future__ import annotations

from collections.abc import Iterable

from handoff.triggers._automaton import Automaton
from handoff.triggers.normalize import normalize

__all__ = ["CustomPhraseMatcher", "normalize_phrase"]


def normalize_phrase(phrase: str) -> str:
    """Return the comparable form of an editor phrase ("" if it has no words).

    Two phrases with equal normalised forms match exactly the same messages.
    """
    return normalize(phrase).strip(" ")


class CustomPhraseMatcher:
    """Finds the first editor phrase occurring as whole words in a normalised message."""

    __slots__ = ("_automaton", "_max_len", "phrases")

    def __init__(self, phrases: Iterable[str]) -> None:
        kept: dict[str, str] = {}
        for phrase in phrases:
            key = normalize_phrase(phrase)
            # First spelling wins so the reported phrase is stable when an
            # editor list carries variants like "Refund" and "refund".
            if key and key not in kept:
                kept[key] = phrase
        self.phrases: tuple[str, ...] = tuple(kept.values())
        # Keys carry the padding spaces of normalised text, which is what
        # makes a substring hit a whole-word hit.
        self._automaton: Automaton[tuple[int, str]] = Automaton(
            (f" {key} ", (len(key) + 2, original)) for key, original in kept.items()
        )
        self._max_len = max((len(key) + 2 for key in kept), default=0)

    def __len__(self) -> int:
        return len(self.phrases)

    def match(self, normalized_text: str) -> str | None:
        """Return the editor's phrase found earliest in the text (longest on ties), else None.

        `normalized_text` must come from `normalize`.
        """
        best_start = len(normalized_text)
        best_len = 0
        best: str | None = None
        for end, (length, original) in self._automaton.iter(normalized_text):
            # Hits arrive in end order, so once no key could start before the
            # current best, later hits cannot win.
            if end - self._max_len + 1 > best_start:
                break
            start = end - length + 1
            if start < best_start or (start == best_start and length > best_len):
                best_start, best_len, best = start, length, original
        return best

    def match_text(self, text: str) -> str | None:
        """Normalise raw text and return `match` on it."""
        return self.match(normalize(text))
