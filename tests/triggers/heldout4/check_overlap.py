"""Print the sentences of this set that also appear in a seen or training file (see README.md).

Only this set's own sentences are printed, never a line of the other files, so running it does
not show the author what the detector was built from.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRIGGERS_TESTS = HERE.parent
REPO = TRIGGERS_TESTS.parent.parent
# The public data lives outside the repository on the team's machine; a missing folder is skipped.
DEFAULT_PUBLIC = Path("/work/shared/data/human-request")
LABEL_PREFIX = re.compile(r"^[HOB] ")


def compared_files(public: Path = DEFAULT_PUBLIC) -> Iterator[Path]:
    """Every file a sentence of this set must not repeat: detector, training and seen sets."""
    folders = [REPO / "handoff" / "triggers", TRIGGERS_TESTS / "data",
               TRIGGERS_TESTS / "stage2_train", TRIGGERS_TESTS / "check",
               TRIGGERS_TESTS / "families"]
    for folder in folders:
        yield from (path for path in sorted(folder.rglob("*")) if path.is_file())
    for name in ("heldout", "heldout2", "heldout3"):
        for pattern in ("*.txt", "*.csv"):
            yield from sorted((TRIGGERS_TESTS / name).glob(pattern))
    if public.is_dir():
        yield from sorted(public.glob("*.csv"))


def key(text: str) -> str:
    """Case-folded, spaces collapsed, end punctuation dropped: what counts as the same text."""
    return re.sub(r"\s+", " ", text.casefold()).strip().rstrip(".!?,;: ")


def units(path: Path) -> Iterable[str]:
    """Each line of a file and, for CSV files, each cell; a sentence file's label is dropped."""
    content = path.read_text(encoding="utf-8", errors="ignore")
    for line in content.splitlines():
        yield LABEL_PREFIX.sub("", line)
    if path.suffix == ".csv":
        for row in csv.reader(io.StringIO(content)):
            yield from row


def own_sentences() -> dict[str, list[str]]:
    """This set's sentence lines, keyed by `key`, each as "lang: line"."""
    # A list per key: the same short text in two languages (nb and nn "hei") must both be
    # reported, not the first one only.
    mine: dict[str, list[str]] = {}
    for path in sorted(HERE.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if LABEL_PREFIX.match(line):
                mine.setdefault(key(line[2:]), []).append(f"{path.stem}: {line}")
    return mine


def collisions(public: Path = DEFAULT_PUBLIC) -> list[str]:
    """This set's lines whose text is also in one of `compared_files`, sorted."""
    mine = own_sentences()
    seen: set[str] = set()
    for path in compared_files(public):
        seen.update(key(unit) for unit in units(path) if key(unit) in mine)
    return sorted(line for text in seen for line in mine[text])


def main(argv: list[str]) -> int:
    found = collisions(Path(argv[1]) if len(argv) > 1 else DEFAULT_PUBLIC)
    for line in found:
        print(line)
    print(f"{len(found)} of {sum(map(len, own_sentences().values()))} sentences of this set appear elsewhere",
          file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
