"""Text normalisation shared by every trigger matcher.

Phrases and visitor messages go through the same `normalize`, so whatever it
folds (case, diacritics, Nordic letters, punctuation) folds identically on
both sides and a whole-word match becomes a plain substring search for
``" phrase "``.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["normalize"]

# Letters that NFKD leaves alone but that people routinely type without the
# stroke or ligature ("oppsigelse"/"øppsigelse", "aerlig"/"ærlig").  Folding
# them loses the å/a and ø/o distinction, which is acceptable because phrase
# files are folded the same way and no trigger depends on that contrast.
_LETTER_FOLDS: Final[dict[str, str]] = {
    "ø": "o",
    "æ": "ae",
    "œ": "oe",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ł": "l",
    "ħ": "h",
    "ı": "i",
    "ŀ": "l",
    "ŧ": "t",
}

# Categories that separate words.  Symbols and emoji act as separators so
# "human!!🙏" still contains the word "human".
_SPACE_CATEGORIES: Final[frozenset[str]] = frozenset(
    {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So",
     "Zs", "Zl", "Zp", "Cc", "Cs", "Co", "Cn"}
)
# Format characters (bidi marks, zero-width joiners, soft hyphens) and
# non-spacing/enclosing marks are deleted rather than spaced: they sit inside
# words, and spacing them would split one word into two.
_DROP_CATEGORIES: Final[frozenset[str]] = frozenset({"Mn", "Me", "Cf"})


# Zero-width space is a format character but separates words (Thai, Khmer,
# and pasted web text), unlike the joiners that sit inside a word.
_ZERO_WIDTH_SPACE = "\u200b"


def _fold_char(ch: str) -> str | None:
    """Return the replacement for one (already casefolded, NFKD) character."""
    folded = _LETTER_FOLDS.get(ch)
    if folded is not None:
        return folded
    if ch == _ZERO_WIDTH_SPACE:
        return " "
    category = unicodedata.category(ch)
    if category in _DROP_CATEGORIES:
        return None
    if category in _SPACE_CATEGORIES:
        return " "
    return ch


_FOLD_CACHE_LIMIT = 65_536


class _FoldTable(dict[int, "str | None"]):
    """Lazily filled `str.translate` table.

    Precomputing all 1.1M code points would cost a second at import; filling
    on first sight keeps `str.translate` in C for every character seen before.
    """

    def __missing__(self, codepoint: int) -> str | None:
        value = _fold_char(chr(codepoint))
        # Identity entries are stored too, so the miss path runs once per
        # char; the cap keeps hostile input (every code point) from growing
        # the table without bound, at the price of slower rare characters.
        if len(self) < _FOLD_CACHE_LIMIT:
            self[codepoint] = value
        return value


_ASCII_TABLE: Final[dict[int, str]] = {
    cp: (" " if _fold_char(chr(cp)) == " " else chr(cp).lower()) for cp in range(128)
}
_FOLD_TABLE: Final[_FoldTable] = _FoldTable(_ASCII_TABLE)


def normalize(text: str) -> str:
    """Casefold, strip diacritics, turn punctuation into spaces, pad with one space.

    The result is ``" word word "`` (or ``" "`` for text with no words).
    """
    if text.isascii():
        # Most traffic is ASCII: skip casefold/NFKD, which would be no-ops.
        folded = text.translate(_ASCII_TABLE)
    else:
        # casefold before NFKD: casefold can emit decomposable characters
        # (e.g. "İ" -> "i̇"), and NFKD then exposes their marks for dropping.
        folded = unicodedata.normalize("NFKD", text.casefold()).translate(_FOLD_TABLE)
    words = folded.split()
    if not words:
        return " "
    return " " + " ".join(words) + " "
