"""Print the sentences of this set that also appear in a seen or training file (see README.md).

Only this set's own sentences are printed, never a line of the other files, so running it does
not show the author what the detector was built from (`sentence_collisions`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from handoff.triggers.evaluate import sentence_collisions

HERE = Path(__file__).resolve().parent
TRIGGERS_TESTS = HERE.parent
REPO = TRIGGERS_TESTS.parent.parent
# The public data lives outside the repository on the team's machine; a missing folder is skipped.
DEFAULT_PUBLIC = Path("/work/shared/data/human-request")
EARLIER_SETS = ("heldout", "heldout2", "heldout3", "heldout4")


def compared_files(public: Path = DEFAULT_PUBLIC) -> Iterator[Path]:
    """Every file a sentence of this set must not repeat: detector, training and seen sets."""
    folders = [REPO / "handoff" / "triggers", TRIGGERS_TESTS / "data",
               TRIGGERS_TESTS / "stage2_train", TRIGGERS_TESTS / "check",
               TRIGGERS_TESTS / "families"]
    for folder in folders:
        yield from (path for path in sorted(folder.rglob("*")) if path.is_file())
    for name in EARLIER_SETS:
        for pattern in ("*.txt", "*.csv"):
            yield from sorted((TRIGGERS_TESTS / name).glob(pattern))
    if public.is_dir():
        yield from sorted(public.glob("*.csv"))


def collisions(public: Path = DEFAULT_PUBLIC) -> list[str]:
    """This set's lines whose text is also in one of `compared_files`, sorted."""
    return sentence_collisions(HERE, compared_files(public))[0]


def main(argv: list[str]) -> int:
    found, total = sentence_collisions(
        HERE, compared_files(Path(argv[1]) if len(argv) > 1 else DEFAULT_PUBLIC))
    for line in found:
        print(line)
    print(f"{len(found)} of {total} sentences of this set appear elsewhere", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
