"""Write handwritten.csv from the sentence lists below (run once after editing them).

Sentences written for this project, in languages that have no labelled public
data (nb, nn, sv, da, nl, pt) and hard cases in the others.  Lines starting
"H " are human requests, "B " borderline (are you a bot, contact details,
opening hours: must not trigger), "O " other (hard negatives: agents in other
senses, people mentioned in passing, near-words).

Every third row of a language is put in source ``handwritten-holdout`` before
the detector is ever run on it; the phrase files are tuned on
``handwritten-tune`` only, so the holdout figure is the honest one.
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = {"H": "human", "B": "borderline", "O": "other"}


def rows() -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for path in sorted(HERE.glob("sentences_*.txt")):
        lang = path.stem.split("_", 1)[1]
        index = 0
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            mark, text = raw.split(" ", 1)
            source = "handwritten-holdout" if index % 3 == 2 else "handwritten-tune"
            out.append((text.strip(), LABELS[mark], lang, source))
            index += 1
    return out


def main() -> None:
    with open(HERE / "handwritten.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("text", "label", "lang", "source"))
        writer.writerows(rows())


if __name__ == "__main__":
    main()
