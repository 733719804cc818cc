"""Write check.csv from the <lang>.txt files beside this script (see README.md)."""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = {"H": "human", "B": "borderline", "O": "other"}
SOURCE = "check-2026-12-02"


def rows() -> list[tuple[str, str, str, str]]:
    """(text, label, lang, source) for every sentence line, files in name order."""
    out: list[tuple[str, str, str, str]] = []
    for path in sorted(HERE.glob("*.txt")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            mark, text = raw.split(" ", 1)
            out.append((text.strip(), LABELS[mark], path.stem, SOURCE))
    return out


def main() -> None:
    with open(HERE / "check.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("text", "label", "lang", "source"))
        writer.writerows(rows())


if __name__ == "__main__":
    main()
