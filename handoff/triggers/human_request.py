"""Detects a visitor asking to talk to a human, from per-language pattern files.

Patterns live in ``data/human_request/<lang>.txt`` (format: see
`handoff.triggers.patterns`).  All files are expanded at load time into one
Aho-Corasick automaton, so a message costs one linear scan however many
patterns are loaded; only the few keys found are then looked at in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from handoff.triggers._automaton import Automaton
from handoff.triggers.normalize import normalize
from handoff.triggers.patterns import PatternKind, PatternLine, parse_file, typo_variants

__all__ = ["DATA_DIR", "LANGUAGE_ORDER", "HumanRequestDetector", "HumanRequestMatch"]

DATA_DIR = Path(__file__).resolve().parent / "data" / "human_request"

# Related languages share phrases ("menneske" is bokmål, nynorsk and Danish);
# a shared phrase reports the first of its languages in this order, and all
# of them in `HumanRequestMatch.languages`.  Unlisted files follow by name.
LANGUAGE_ORDER = ("en", "nb", "nn", "sv", "da", "de", "es", "fr", "it")


@dataclass(frozen=True, slots=True)
class HumanRequestMatch:
    """A positive detection: which language file and which pattern fired."""

    language: str  # pattern file stem; first by LANGUAGE_ORDER on shared phrases
    phrase: str  # the expanded, normalised phrase found in the message
    pattern: str  # the pattern line as written, slots included
    source: str  # "<file>:<line>" of that pattern
    start: int  # span of `phrase` in the normalised message, padding spaces excluded
    end: int
    languages: tuple[str, ...] = ()  # every language with a pattern for this span


class _Rule:
    """One pattern line after expansion; its pieces are joined by adjacency."""

    __slots__ = ("kind", "language", "order", "pattern", "roles", "source")

    def __init__(self, kind: PatternKind, language: str, line: PatternLine, order: int) -> None:
        self.kind = kind
        self.order = order  # load order, to prefer the first language on ties
        self.language = language
        self.pattern = line.text
        self.source = f"{Path(line.source).name}:{line.line_no}"
        count = len(line.pieces)
        optional = line.optional or (False,) * count
        self.roles = tuple(
            _Role(self, i, can_end=all(optional[i + 1 :]), more=i < count - 1)
            for i in range(count)
        )
        for i, role in enumerate(self.roles):
            # The next piece may follow, and the ones after it while the
            # pieces in between are optional.
            followers: list[_Role] = []
            for j in range(i + 1, count):
                followers.append(self.roles[j])
                if not optional[j]:
                    break
            role.followers = tuple(followers)


class _Role:
    """Piece `index` of `rule`; one object per piece, shared by all its phrases.

    Plain identity hashing keeps the set and dict look-ups per hit cheap.
    """

    __slots__ = ("can_end", "followers", "index", "more", "rule")

    def __init__(self, rule: _Rule, index: int, can_end: bool, more: bool) -> None:
        self.rule = rule
        self.index = index
        self.can_end = can_end  # every later piece is optional
        self.more = more  # later pieces exist
        self.followers: tuple[_Role, ...] = ()


@dataclass(frozen=True, slots=True)
class _KeyInfo:
    """What one automaton key means.

    `starts`: roles that may open a chain here; `first_starts`: those that
    may only open one at the start of the message (whole-message patterns);
    `continues`: roles that only extend a chain ending right before the key;
    `fix`: corrected word when the key is a typo variant.
    """

    length: int
    starts: tuple[_Role, ...]
    first_starts: tuple[_Role, ...]
    continues: frozenset[_Role] | None
    fix: str | None


class HumanRequestDetector:
    """Matches normalised messages against expanded human-request patterns."""

    __slots__ = ("_automaton", "languages", "rules")

    def __init__(self, lines: Iterable[tuple[str, PatternLine]]) -> None:
        """Build from ``(language, parsed line)`` pairs; on equal matches earlier pairs win."""
        starts: dict[str, list[_Role]] = {}
        continues: dict[str, list[_Role]] = {}
        rules: list[_Rule] = []
        languages: dict[str, None] = {}
        typo_words: list[str] = []
        vocabulary: set[str] = set()
        for language, line in lines:
            languages[language] = None
            if line.kind is PatternKind.TYPOS:
                typo_words.extend(line.pieces[0])
                continue
            rule = _Rule(line.kind, language, line, len(rules))
            rules.append(rule)
            optional = line.optional or (False,) * len(line.pieces)
            for index, piece in enumerate(line.pieces):
                role = rule.roles[index]
                # A piece opens a chain if every piece before it is optional;
                # later pieces may still continue one (and keep its start).
                if all(optional[:index]):
                    for phrase in piece:
                        starts.setdefault(f" {phrase} ", []).append(role)
                if index:
                    for phrase in piece:
                        continues.setdefault(f" {phrase} ", []).append(role)
                for phrase in piece:
                    vocabulary.update(phrase.split(" "))
        # A variant that is itself a pattern word ("agent" is a variant of
        # "agents") keeps its own meaning, so it is never "corrected".
        corrections: dict[str, str] = {}
        for word in typo_words:
            for variant in sorted(typo_variants(word)):
                if variant not in vocabulary:
                    corrections.setdefault(variant, word)
        self.languages: tuple[str, ...] = tuple(languages)
        self.rules: tuple[_Rule, ...] = tuple(rules)
        # Keys of one piece share role collections; interning them keeps tens
        # of thousands of keys from each holding a copy.
        shared_starts: dict[tuple[_Role, ...], tuple[_Role, ...]] = {}
        shared_conts: dict[frozenset[_Role], frozenset[_Role]] = {}
        shared_infos: dict[_KeyInfo, _KeyInfo] = {}
        values: dict[str, _KeyInfo] = {}
        for key in {**dict.fromkeys(starts), **dict.fromkeys(continues)}:
            key_starts = starts.get(key, [])
            anywhere = tuple(r for r in key_starts if r.rule.kind is not PatternKind.EXACT)
            first = tuple(r for r in key_starts if r.rule.kind is PatternKind.EXACT)
            key_conts = frozenset(continues.get(key, ()))
            info = _KeyInfo(
                len(key),
                shared_starts.setdefault(anywhere, anywhere),
                shared_starts.setdefault(first, first),
                shared_conts.setdefault(key_conts, key_conts) if key_conts else None,
                None,
            )
            values[key] = shared_infos.setdefault(info, info)
        for variant, word in corrections.items():
            values[f" {variant} "] = _KeyInfo(len(variant) + 2, (), (), None, word)
        self._automaton: Automaton[_KeyInfo] = Automaton(values.items())

    @classmethod
    def load(cls, extra_dirs: Iterable[Path] = ()) -> HumanRequestDetector:
        """Load the shipped pattern files plus ``*.txt`` files from `extra_dirs`.

        Operator files extend the shipped ones; a file named like a shipped
        language adds to that language.
        """
        directories = [DATA_DIR, *(Path(d) for d in extra_dirs)]
        # Check every directory before the slow part, so a typo fails fast.
        for directory in directories:
            if not directory.is_dir():
                raise FileNotFoundError(f"pattern directory not found: {directory}")
        pairs: list[tuple[str, PatternLine]] = []
        for directory in directories:
            for path in sorted(directory.glob("*.txt"), key=_file_order):
                pairs.extend((path.stem, line) for line in parse_file(path))
        return cls(pairs)

    def __len__(self) -> int:
        """Number of distinct automaton keys (expanded pieces and typo variants)."""
        return len(self._automaton)

    def detect(self, normalized_text: str) -> HumanRequestMatch | None:
        """Return the earliest non-vetoed match in a `normalize`d message, else None.

        Typos of "~" words are corrected first; `phrase`, `start` and `end` then
        refer to the corrected text.
        """
        return self._detect(normalized_text, correct=True)

    def detect_text(self, text: str) -> HumanRequestMatch | None:
        """Normalise raw text and return `detect` on it."""
        return self._detect(normalize(text), correct=True)

    def _detect(self, text: str, correct: bool) -> HumanRequestMatch | None:
        positives: list[tuple[int, int, _Rule]] = []
        vetoes: list[tuple[int, int]] = []
        fixes: list[tuple[int, int, str]] = []
        # end position -> {role that may come next: start of the chain so far}
        partial: dict[int, dict[_Role, int]] = {}
        last_index = len(text) - 1
        for end, info in self._automaton.iter(text):
            start = end - info.length + 1
            if info.fix is not None:
                fixes.append((start, end, info.fix))
                continue
            ready = [(role, start) for role in info.starts]
            if start == 0 and info.first_starts:
                ready.extend((role, 0) for role in info.first_starts)
            if info.continues is not None:
                # Pieces share the padding space: a continuation must start
                # exactly where an open chain ended.
                waiting = partial.get(start)
                if waiting is not None:
                    continues = info.continues
                    ready.extend(item for item in waiting.items() if item[0] in continues)
            for role, chain_start in ready:
                if role.more:
                    opened = partial.get(end)
                    if opened is None:
                        opened = partial[end] = {}
                    for follower in role.followers:
                        opened.setdefault(follower, chain_start)
                    if not role.can_end:
                        continue
                rule = role.rule
                kind = rule.kind
                if kind is PatternKind.POSITIVE:
                    positives.append((chain_start, end, rule))
                elif kind is PatternKind.VETO:
                    vetoes.append((chain_start, end))
                elif kind is PatternKind.EXACT:
                    if chain_start == 0 and end == last_index:
                        positives.append((chain_start, end, rule))
                else:
                    return None  # message-level veto
        if fixes and correct:
            # Typos are rare, so the common path pays nothing for them: only a
            # message containing one is rebuilt and scanned a second time.
            return self._detect(_apply_fixes(text, fixes), correct=False)
        if not positives:
            return None
        # Earliest first, longest first on ties (like the custom matcher),
        # then load order so shared phrases report the preferred language.
        positives.sort(key=lambda hit: (hit[0], hit[0] - hit[1], hit[2].order))
        for start, end, rule in positives:
            if vetoes and _vetoed(start, end, vetoes):
                continue
            languages = tuple(
                dict.fromkeys(r.language for s, e, r in positives if s == start and e == end)
            )
            return HumanRequestMatch(
                rule.language, text[start + 1 : end], rule.pattern, rule.source,
                start + 1, end, languages,
            )
        return None


def _file_order(path: Path) -> tuple[int, str]:
    stem = path.stem
    rank = LANGUAGE_ORDER.index(stem) if stem in LANGUAGE_ORDER else len(LANGUAGE_ORDER)
    return rank, stem


def _apply_fixes(text: str, fixes: list[tuple[int, int, str]]) -> str:
    parts: list[str] = []
    done = 0
    for start, end, word in fixes:
        # Spans include the padding spaces; replace only the word between them.
        parts.append(text[done : start + 1])
        parts.append(word)
        done = end
    parts.append(text[done:])
    return "".join(parts)


def _vetoed(start: int, end: int, vetoes: list[tuple[int, int]]) -> bool:
    for v_start, v_end in vetoes:
        # Keys share their padding space with a neighbouring word, so touching
        # at one space is adjacency, not overlap.
        if v_start < end and start < v_end:
            # A longer positive that contains the whole veto is the more
            # specific reading ("I don't want to talk to a bot" beats "don't
            # want to").
            if start <= v_start and v_end <= end and end - start > v_end - v_start:
                continue
            return True
    return False
