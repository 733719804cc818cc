"""Parser and expander for human-request pattern files.

File format (UTF-8, one pattern per line; the language is the file stem):

    # comment; "#" starts a comment anywhere on a line
    @who = human | person | agent          macro: named list of alternatives
    talk to {a|an|} {@who}                 positive pattern, whole words, anywhere
    talk to [a] real person                "[x]" is shorthand for "{x|}"
    = agent [please]                       "=": must be the whole message
    ! are you {a|an} {@who}                "!": veto, cancels positives it overlaps
    !! phone number                        "!!": veto, cancels the whole message
    {@verb} me to + [a|the] + {@who}       " + ": the next piece must follow directly
    {@someone} from ... call me            " ... ": the next piece follows after at most
                                           GAP_WORDS other words (none is fine too)
    ~ human person someone                 words that also match with one typo
    ~+ to with is                          words people run into a "~" word ("tosomeone")
    ~! humane persona                      real words that are never read as typos

Braces nest, "{@name}" (or an alternative "@name") splices a macro, and an
empty alternative makes a slot optional.  Every expansion is passed through
`normalize`, so case, accents and punctuation in a pattern do not matter.

Slots multiply: "{10 verbs} {10 articles} {100 nouns}" is 10,000 automaton
keys.  " + " splits a line into pieces that are expanded and stored
separately (10 + 10 + 100 keys here) and joined at match time by adjacency,
so it matches exactly the same texts.  A piece that can expand to nothing
("[a|the]") is optional: the chain may skip it.  Not every piece of a line
may be optional.

A veto cancels a positive match whose words it overlaps, unless the positive
is longer and contains the whole veto ("don't want to talk to a bot" is a
positive that contains the veto "don't want to").  Repeating a positive
phrase as a veto therefore switches it off.

" ... " is for the open middle of a request: a department, a time or a reason between
the words that carry it ("someone from [the uni admissions office] pls", "could [a nurse] call
me"), which no list can hold.  A veto anywhere inside a match with a gap cancels it ("someone
from billing already called me"): the gap's words were never checked, so a veto inside them
is not part of a longer, more specific positive.  A veto with a gap guards positives with a gap
and any positive it wholly holds ("! always ... talk to a person" for "my mum always wants to
talk to a person"), but leaves one it only touches alone ("! someone ... already" and "talk to
someone real, the bot keeps repeating itself already"); it does not keep the second stage out.
The pieces on either side of " ... " must not be optional.

Words listed on a "~" line (four letters or more) also match with one typo,
in every pattern of every file.  Four-letter words ("talk", "chat", "mens")
only take two letters swapped after the first ("tlak") or a letter doubled:
their other one-typo neighbours are too often real words.  Longer words: a
letter dropped (the first only in words of six letters or more: "omeone"),
two neighbouring letters swapped ("huamn"),
a letter doubled ("talkking"), a key next to a letter typed beside it
("assistgant") or instead of it ("hunan", "petson"); the first letter is
never replaced.  A "~" word also matches run together with a "~+" word
before it ("tosomeone", "humanagent").  A variant that is a pattern word
itself or a "~!" word is never corrected: "~!" lists real words one typo away
from a "~" word ("humane" from "humans"), and `data/not_typos.txt` lists such
words from the dictionaries of the supported languages.  A match directly followed by such a
near-word is dropped ("talk to a" before "humane society").
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from handoff.triggers.normalize import normalize

__all__ = [
    "GAP_WORDS",
    "MAX_EXPANSIONS_PER_PIECE",
    "MIN_INITIAL_DROP_LEN",
    "MIN_SHORT_TYPO_LEN",
    "MIN_TYPO_LEN",
    "PatternError",
    "PatternKind",
    "PatternLine",
    "expand",
    "macro_definitions",
    "parse_file",
    "parse_lines",
    "typo_variant_kinds",
    "typo_variants",
]

# Guards against an operator line like "{@a} {@b} {@c}" silently producing
# millions of automaton keys and hundreds of MB of memory; " + " is the fix.
MAX_EXPANSIONS_PER_PIECE = 20_000

_MACRO_RE = re.compile(r"^@([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_MACRO_REF_RE = re.compile(r"^@([A-Za-z_][A-Za-z0-9_]*)$")
# A separator between pieces: " + " (adjacent) or " ... " (a gap); captured to tell them apart.
_PIECE_SPLIT_RE = re.compile(r"\s(\+|\.\.\.)\s")
# At most this many words in a " ... " gap: enough for "the uni admissions office", few enough
# that the pieces still belong to one clause.
GAP_WORDS = 5
# Shorter words have too many one-typo neighbours that are real words
# ("talk" -> "tal", "alk"; "with" -> "wit"), so words of MIN_SHORT_TYPO_LEN
# up to MIN_TYPO_LEN take only swapped and doubled letters.
MIN_TYPO_LEN = 5
MIN_SHORT_TYPO_LEN = 4


class PatternError(ValueError):
    """A pattern file line that cannot be parsed or expanded."""

    def __init__(self, source: str, line_no: int, message: str) -> None:
        super().__init__(f"{source}:{line_no}: {message}")
        self.source = source
        self.line_no = line_no


class PatternKind(enum.Enum):
    """What a pattern line does when it matches."""

    POSITIVE = "positive"
    EXACT = "exact"  # positive, but only when it spans the whole message
    VETO = "veto"  # cancels positives it overlaps
    MESSAGE_VETO = "message_veto"  # cancels every positive in the message
    TYPOS = "typos"  # words whose one-typo variants are corrected before matching
    TYPO_GLUE = "typo_glue"  # words that may be run into a typo word before it
    NOT_TYPOS = "not_typos"  # real words never corrected as a typo


@dataclass(frozen=True, slots=True)
class PatternLine:
    """One pattern line: its pieces, each a tuple of normalised phrases (no padding).

    `optional[i]` is true when piece i may be skipped (it can expand to nothing); `gaps[i]` is
    true when piece i+1 may follow piece i after up to `GAP_WORDS` words (" ... ").
    """

    kind: PatternKind
    source: str
    line_no: int
    text: str
    pieces: tuple[tuple[str, ...], ...]
    optional: tuple[bool, ...] = ()
    gaps: tuple[bool, ...] = ()


def _split_top(body: str) -> list[str]:
    """Split a slot body on "|" that are not inside nested braces."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in body:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _closing(text: str, open_at: int) -> int:
    """Index of the bracket closing the one at `open_at`, or -1."""
    depth = 0
    for i in range(open_at, len(text)):
        ch = text[i]
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                expected = "}" if text[open_at] == "{" else "]"
                return i if ch == expected else -1
    return -1


class _Expander:
    def __init__(self, macros: dict[str, str], limit: int) -> None:
        self.macros = macros
        self.limit = limit
        self._active: set[str] = set()

    def expand(self, text: str) -> list[str]:
        start = -1
        for i, ch in enumerate(text):
            if ch in "{[":
                start = i
                break
            if ch in "}]|@":
                # A bare "@name" would silently become the word "name".
                raise ValueError(f"unexpected {ch!r} outside a slot (macros are written {{@name}})")
        if start < 0:
            return [text]
        end = _closing(text, start)
        if end < 0:
            raise ValueError("unbalanced brackets")
        body = text[start + 1 : end]
        alternatives: list[str] = []
        for alt in _split_top(body):
            alternatives.extend(self._alternative(alt.strip()))
        if text[start] == "[":
            alternatives.append("")
        heads = alternatives
        tails = self.expand(text[end + 1 :])
        if len(heads) * len(tails) > self.limit:
            raise ValueError(f"expands to more than {self.limit} phrases")
        prefix = text[:start]
        return [f"{prefix} {h} {t}" for h in heads for t in tails]

    def _alternative(self, alt: str) -> list[str]:
        ref = _MACRO_REF_RE.match(alt)
        if ref is None:
            return self.expand(alt)
        name = ref.group(1)
        if name not in self.macros:
            raise ValueError(f"unknown macro @{name}")
        if name in self._active:
            raise ValueError(f"macro @{name} refers to itself")
        self._active.add(name)
        try:
            return [
                expanded
                for part in _split_top(self.macros[name])
                for expanded in self._alternative(part.strip())
            ]
        finally:
            self._active.discard(name)


def expand(
    pattern: str,
    macros: dict[str, str] | None = None,
    limit: int = MAX_EXPANSIONS_PER_PIECE,
) -> list[str]:
    """Expand slots and macros of one pattern into distinct normalised phrases.

    Raises ValueError on bad syntax or when more than `limit` phrases result.
    """
    return _normalised(_Expander(macros or {}, limit).expand(pattern))


# Typed without the letter, German and Nordic writers spell ä, ö, ü, å, ø as ae, oe, ue, aa, oe
# ("zurueckrufen", "faa snakke"); `normalize` folds the letter itself to a, o, u, so a phrase
# holding one also gets its two-letter spelling. Only phrases written with such a letter do:
# "queue" or "maar" in a message are never read as anything else.
_DIGRAPHS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "å": "aa", "ø": "oe",
                           "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "Å": "Aa", "Ø": "Oe"})


def _normalised(raw: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for phrase in raw:
        normalised = normalize(phrase).strip(" ")
        if normalised:
            seen[normalised] = None
            spelt = phrase.translate(_DIGRAPHS)
            if spelt != phrase:
                seen.setdefault(normalize(spelt).strip(" "), None)
    return list(seen)


_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Keys touching each letter on a QWERTY keyboard (rows are staggered)."""
    where = {ch: (r, i) for r, row in enumerate(_KEYBOARD_ROWS) for i, ch in enumerate(row)}
    near: dict[str, str] = {}
    for ch, (r, i) in where.items():
        spots = [(r, i - 1), (r, i + 1), (r - 1, i), (r - 1, i + 1), (r + 1, i - 1), (r + 1, i)]
        near[ch] = "".join(
            _KEYBOARD_ROWS[row][col]
            for row, col in spots
            if 0 <= row < len(_KEYBOARD_ROWS) and 0 <= col < len(_KEYBOARD_ROWS[row])
        )
    return near


_NEAR = _keyboard_neighbours()
# Words this long may lose their first letter too ("omeone"); shorter ones
# would collide with real words ("agent" -> "gent").
MIN_INITIAL_DROP_LEN = 6


def typo_variants(word: str) -> set[str]:
    """One-typo forms of `word` (see the module docstring); the first letter stays typed."""
    dropped_or_swapped, near_keys = typo_variant_kinds(word)
    return dropped_or_swapped | near_keys


def typo_variant_kinds(word: str) -> tuple[set[str], set[str]]:
    """`typo_variants` split in two: (dropped or swapped letters, doubled or near keys).

    The second kind is larger and reaches further into other languages'
    words ("perdon" is a near-key slip of "person"), so the not-typos builder
    checks it against every language's word list.
    """
    size = len(word)
    near: set[str] = set()
    if size < MIN_TYPO_LEN:
        short = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(1, size - 1)}
        near.update(word[:i] + word[i - 1] + word[i:] for i in range(1, size + 1))
        short.discard(word)
        near.discard(word)
        return short, near - short
    variants = {word[:i] + word[i + 1 :] for i in range(1, size)}
    if size >= MIN_INITIAL_DROP_LEN:
        variants.add(word[1:])
    variants.update(
        word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(size - 1)
    )
    for i in range(1, size + 1):
        # Inserted after letter i-1: itself again, or a key next to it or to
        # the letter that follows.
        extra = set(word[i - 1] + _NEAR.get(word[i - 1], ""))
        if i < size:
            extra.update(_NEAR.get(word[i], ""))
        near.update(word[:i] + ch + word[i:] for ch in extra)
    for i in range(1, size):
        near.update(word[:i] + ch + word[i + 1 :] for ch in _NEAR.get(word[i], ""))
    variants.discard(word)
    near.discard(word)
    return variants, near - variants


def _has_empty(raw: list[str]) -> bool:
    return any(not normalize(phrase).strip(" ") for phrase in raw)


def _strip_comment(line: str) -> str:
    hash_at = line.find("#")
    return (line if hash_at < 0 else line[:hash_at]).strip()


def macro_definitions(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(name, body) of each vocabulary line ("@name = a | b"), in file order, comments cut."""
    for raw_line in lines:
        macro = _MACRO_RE.match(_strip_comment(raw_line))
        if macro is not None:
            yield macro.group(1), macro.group(2)


def parse_lines(lines: list[str], source: str) -> Iterator[PatternLine]:
    """Parse pattern-file lines (see module docstring); `source` names them in errors."""
    macros: dict[str, str] = {}
    for line_no, raw_line in enumerate(lines, start=1):
        line = _strip_comment(raw_line)
        if not line:
            continue
        if line.startswith(("~+", "~!")):
            kind = PatternKind.TYPO_GLUE if line[1] == "+" else PatternKind.NOT_TYPOS
            words = tuple(normalize(line[2:]).split())
            if words:
                yield PatternLine(kind, source, line_no, line, (words,))
            continue
        if line.startswith("~"):
            words = tuple(
                w for w in normalize(line[1:]).split() if len(w) >= MIN_SHORT_TYPO_LEN
            )
            if words:
                yield PatternLine(PatternKind.TYPOS, source, line_no, line, (words,))
            continue
        macro = _MACRO_RE.match(line)
        if macro is not None:
            # Macros are resolved lazily, so a later redefinition applies only
            # to lines after it; the lines before already expanded.
            macros[macro.group(1)] = macro.group(2)
            continue
        if line.startswith("!!"):
            kind, body = PatternKind.MESSAGE_VETO, line[2:]
        elif line.startswith("!"):
            kind, body = PatternKind.VETO, line[1:]
        elif line.startswith("="):
            kind, body = PatternKind.EXACT, line[1:]
        else:
            kind, body = PatternKind.POSITIVE, line
        body = body.strip()
        split = _PIECE_SPLIT_RE.split(body)
        texts = split[0::2]
        gaps = tuple(separator == "..." for separator in split[1::2])
        pieces: list[tuple[str, ...]] = []
        optional: list[bool] = []
        for piece in texts:
            try:
                raw = _Expander(macros, MAX_EXPANSIONS_PER_PIECE).expand(piece)
            except ValueError as exc:
                hint = " (split it with ' + ')" if "expands to more" in str(exc) else ""
                raise PatternError(source, line_no, f"{exc}{hint}") from None
            phrases = _normalised(raw)
            pieces.append(tuple(phrases))
            # A single-piece line simply loses its empty expansion.
            optional.append(len(texts) > 1 and (not phrases or _has_empty(raw)))
        if all(optional) or not all(pieces[i] for i, opt in enumerate(optional) if not opt):
            raise PatternError(source, line_no, "pattern can match no words")
        if any(gap and (optional[i] or optional[i + 1]) for i, gap in enumerate(gaps)):
            raise PatternError(source, line_no, "a piece beside ' ... ' may not be optional")
        yield PatternLine(kind, source, line_no, body, tuple(pieces), tuple(optional),
                          gaps if any(gaps) else ())


def parse_file(path: Path) -> list[PatternLine]:
    """Parse one pattern file."""
    return list(parse_lines(path.read_text(encoding="utf-8").splitlines(), str(path)))
