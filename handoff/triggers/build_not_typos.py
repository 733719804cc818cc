"""Write ``data/not_typos.txt``: real words one typo away from a shipped "~" word.

The detector corrects one-typo variants of "~" words ("hunan" -> "human") and
splits them from a word run into them ("tosomeone").  A variant that is a
real word in a supported language ("humane", "parson", Norwegian "personen")
must stay itself, so this script looks every variant up in the system word
lists and writes the hits as "~!" lines.  Run it after changing a "~" line:

    apt-get install wamerican wbritish wnorwegian wswedish wdanish wngerman \\
        wspanish wfrench witalian wdutch wportuguese
    python -m handoff.triggers.build_not_typos

Dictionary entries with a capital letter (names) are skipped: "Hyman" is a
name, "hyman" in a chat is a typo.  The output is sorted, so a rebuild with the
same word lists gives the same file.  Nothing here runs at match time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from handoff.triggers.human_request import DATA_DIR, NOT_TYPOS_FILE
from handoff.triggers.normalize import normalize
from handoff.triggers.patterns import PatternKind, parse_file, typo_variant_kinds

__all__ = ["WORD_LISTS", "build", "main"]

DICT_DIR = Path("/usr/share/dict")
# (file, encoding) per pattern-file language; Debian's w* packages.  A "~"
# word is checked against the word lists of the languages whose files list
# it: "snake" is English but no typo of Norwegian "snakke" could mean it in
# a Norwegian request, so it stays a correction.
WORD_LISTS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (("american-english", "utf-8"), ("british-english", "utf-8")),
    "nb": (("bokmaal", "latin-1"),),
    "nn": (("nynorsk", "latin-1"),),
    "sv": (("swedish", "latin-1"),),
    "da": (("danish", "utf-8"),),
    "de": (("ngerman", "utf-8"),),
    "es": (("spanish", "utf-8"),),
    "fr": (("french", "utf-8"),),
    "it": (("italian", "utf-8"),),
    "nl": (("dutch", "utf-8"),),
    "pt": (("portuguese", "utf-8"), ("brazilian", "utf-8")),
}


def _dictionary_words(directory: Path) -> dict[str, set[str]]:
    by_language: dict[str, set[str]] = {}
    for language, lists in WORD_LISTS.items():
        words = by_language[language] = set()
        for name, encoding in lists:
            path = directory / name
            if not path.is_file():
                raise FileNotFoundError(f"word list missing: {path} (see this module's docstring)")
            for raw in path.read_text(encoding=encoding, errors="replace").splitlines():
                entry = raw.strip()
                if not entry or not entry[0].islower():
                    continue
                folded = normalize(entry).strip()
                if folded and " " not in folded:
                    words.add(folded)
    return by_language


def _shipped_words() -> tuple[dict[str, set[str]], set[str], set[str], set[str]]:
    """(languages listing each ~ word, ~ words, ~+ words, every pattern word)."""
    languages: dict[str, set[str]] = {}
    glue: set[str] = set()
    vocabulary: set[str] = set()
    for path in sorted(DATA_DIR.glob("*.txt")):
        for line in parse_file(path):
            if line.kind is PatternKind.TYPOS:
                for word in line.pieces[0]:
                    languages.setdefault(word, set()).add(path.stem)
            elif line.kind is PatternKind.TYPO_GLUE:
                glue.update(line.pieces[0])
            elif line.kind is not PatternKind.NOT_TYPOS:
                for piece in line.pieces:
                    for phrase in piece:
                        vocabulary.update(phrase.split(" "))
    return languages, set(languages), glue, vocabulary


def build(dictionaries: dict[str, set[str]]) -> list[str]:
    """Sorted variants (and run-together pairs) of shipped "~" words that are real words.

    Dropped or swapped letters and run-together pairs are looked up in the
    word lists of the languages listing the "~" word (all lists for a
    language without one); near-key slips in every list.
    """
    languages, typos, glue, vocabulary = _shipped_words()
    everything: set[str] = set().union(*dictionaries.values()) if dictionaries else set()
    found: set[str] = set()
    for word in sorted(typos):
        candidates, near_keys = typo_variant_kinds(word)
        candidates.update(first + word for first in glue)
        langs = [lang for lang in languages[word] if lang in dictionaries]
        dictionary = set().union(*(dictionaries[lang] for lang in langs)) if langs else everything
        found.update(candidates & dictionary)
        # Near-key slips reach into other languages' words ("perdon" is one
        # from "person"): they are checked against every word list.
        found.update(near_keys & everything)
    return sorted(found - vocabulary)


def _lines(words: Iterable[str], width: int = 96) -> list[str]:
    lines: list[str] = []
    current = "~!"
    for word in words:
        if len(current) + 1 + len(word) > width:
            lines.append(current)
            current = "~!"
        current += " " + word
    if current != "~!":
        lines.append(current)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Rebuild `NOT_TYPOS_FILE` from the word lists in /usr/share/dict (or argv[0])."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else DICT_DIR
    words = build(_dictionary_words(directory))
    header = [
        "# Real words one typo away from a shipped \"~\" word: never corrected.",
        "# Generated by `python -m handoff.triggers.build_not_typos`; do not edit by hand",
        "# (add hand-picked words as \"~!\" lines in a language file instead).",
    ]
    NOT_TYPOS_FILE.write_text("\n".join([*header, *_lines(words)]) + "\n", encoding="utf-8")
    print(f"{len(words)} words written to {NOT_TYPOS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
