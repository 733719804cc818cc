"""Write heldout.csv from the <lang>.txt files beside this script (see README.md)."""

from __future__ import annotations

from pathlib import Path

from handoff.triggers.evaluate import Row, read_sentence_files, write_rows

HERE = Path(__file__).resolve().parent
SOURCE = "heldout17-2026-12-02"


def rows() -> list[Row]:
    """(text, label, lang, source) for every sentence line, files in name order."""
    return read_sentence_files(HERE, SOURCE)


def main() -> None:
    write_rows(HERE / "heldout.csv", rows())


if __name__ == "__main__":
    main()
