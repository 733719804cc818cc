"""Evaluate a human-request detector on labelled rows (text, label, lang).

Labels: ``human`` (asks for a human), ``borderline`` (contact details, opening
hours, "are you a bot?": must not trigger) and ``other``.  A row is predicted
positive when the detector matches.  Metrics:

* precision: human rows predicted positive / all rows predicted positive
  (a positive borderline row counts against precision);
* recall: human rows predicted positive / human rows;
* false_positive_rate: ``other`` rows predicted positive / ``other`` rows.

A metric whose denominator is zero is None (JSON null), not 0 or 1.

Every row also has a *source* (the ``source`` column, else the file's stem);
`source_group` folds a dataset's files into one name ("github:owner/repo@c:f"
-> "owner/repo"), and the report counts per source group as well as per
language.  `leave_one_source_out` builds a detector without each source in
turn and scores it on that source only: the figure for data the detector was
not fitted on.

Built for ``handoff eval-triggers FILE.csv... [--json] [--predictions OUT.csv]
[--leave-one-source-out]``.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from handoff.triggers.human_request import HumanRequestMatch
from handoff.triggers.normalize import normalize

__all__ = [
    "LABELS",
    "PREDICTION_COLUMNS",
    "Counts",
    "Detector",
    "EvalReport",
    "Prediction",
    "Row",
    "RowLike",
    "check_overlap_main",
    "evaluate",
    "format_held_out",
    "held_out_compared_files",
    "leave_one_source_out",
    "predict",
    "read_csv",
    "read_rows",
    "read_sentence_files",
    "sentence_collisions",
    "source_group",
    "write_predictions",
    "write_rows",
]

LABELS = ("human", "borderline", "other")
PREDICTION_COLUMNS = ("text", "label", "lang", "source", "predicted", "phrase")
_UNKNOWN_LANG = "und"  # ISO 639 "undetermined", for rows with an empty lang


class Detector(Protocol):
    """Anything with `HumanRequestDetector.detect`'s signature."""

    def detect(self, normalized_text: str) -> HumanRequestMatch | None: ...


class Row(NamedTuple):
    """One labelled row; `source` is the dataset it came from ("" if unknown)."""

    text: str
    label: str
    lang: str
    source: str = ""


# Rows may be plain (text, label, lang) triples or `Row`s with a source.
RowLike = tuple[str, str, str] | Row


class Prediction(NamedTuple):
    """One evaluated row."""

    text: str
    label: str
    lang: str
    predicted: bool
    phrase: str | None
    source: str = ""


def source_group(source: str) -> str:
    """The dataset a source names: "github:owner/repo@commit:path" -> "owner/repo"."""
    if source.startswith("github:"):
        return source[len("github:") :].split("@", 1)[0].split(":", 1)[0]
    return source


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(slots=True)
class Counts:
    """Confusion counts for one language (or all of them)."""

    rows: int = 0
    human: int = 0
    borderline: int = 0
    other: int = 0
    true_positives: int = 0  # human rows predicted positive
    borderline_positives: int = 0
    other_positives: int = 0

    def add(self, label: str, predicted: bool) -> None:
        """Count one row."""
        self.rows += 1
        if label == "human":
            self.human += 1
            self.true_positives += predicted
        elif label == "borderline":
            self.borderline += 1
            self.borderline_positives += predicted
        else:
            self.other += 1
            self.other_positives += predicted

    def include(self, other: Counts) -> None:
        """Add another tally's counts to this one (pooling sets or folds)."""
        self.rows += other.rows
        self.human += other.human
        self.borderline += other.borderline
        self.other += other.other
        self.true_positives += other.true_positives
        self.borderline_positives += other.borderline_positives
        self.other_positives += other.other_positives

    @property
    def predicted_positive(self) -> int:
        """Rows predicted positive, whatever their label."""
        return self.true_positives + self.borderline_positives + self.other_positives

    @property
    def precision(self) -> float | None:
        """True positives over predicted positives; None when nothing was predicted."""
        return _ratio(self.true_positives, self.predicted_positive)

    @property
    def recall(self) -> float | None:
        """True positives over human rows; None without human rows."""
        return _ratio(self.true_positives, self.human)

    @property
    def false_positive_rate(self) -> float | None:
        """Positive `other` rows over `other` rows; None without `other` rows."""
        return _ratio(self.other_positives, self.other)

    def to_json(self) -> dict[str, float | int | None]:
        """The three metrics plus the raw counts."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "false_positive_rate": self.false_positive_rate,
            "rows": self.rows,
            "human": self.human,
            "borderline": self.borderline,
            "other": self.other,
            "true_positives": self.true_positives,
            "borderline_positives": self.borderline_positives,
            "other_positives": self.other_positives,
        }


@dataclass(slots=True)
class EvalReport:
    """Overall, per-language and per-source results."""

    overall: Counts = field(default_factory=Counts)
    by_lang: dict[str, Counts] = field(default_factory=dict)
    by_source: dict[str, Counts] = field(default_factory=dict)

    @classmethod
    def from_predictions(cls, predictions: Iterable[Prediction]) -> EvalReport:
        """Aggregate predictions into a report."""
        report = cls()
        for prediction in predictions:
            report.add(prediction)
        return report

    def add(self, prediction: Prediction) -> None:
        """Count one prediction overall, under its language and under its source group."""
        self.overall.add(prediction.label, prediction.predicted)
        lang_counts = self.by_lang.get(prediction.lang)
        if lang_counts is None:
            lang_counts = self.by_lang[prediction.lang] = Counts()
        lang_counts.add(prediction.label, prediction.predicted)
        group = source_group(prediction.source) or _UNKNOWN_SOURCE
        source_counts = self.by_source.get(group)
        if source_counts is None:
            source_counts = self.by_source[group] = Counts()
        source_counts.add(prediction.label, prediction.predicted)

    @property
    def precision(self) -> float | None:
        """Overall precision."""
        return self.overall.precision

    @property
    def recall(self) -> float | None:
        """Overall recall."""
        return self.overall.recall

    @property
    def false_positive_rate(self) -> float | None:
        """Overall false-positive rate on `other` rows."""
        return self.overall.false_positive_rate

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict: precision, recall, false_positive_rate, by_lang, by_source."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "false_positive_rate": self.false_positive_rate,
            "by_lang": {lang: self.by_lang[lang].to_json() for lang in sorted(self.by_lang)},
            "by_source": {
                name: self.by_source[name].to_json() for name in sorted(self.by_source)
            },
        }

    def format_table(self, by_source: bool = False) -> str:
        """Fixed-width table, one line per language and a total line.

        With `by_source`, a second table gives one line per source group.
        """
        table = _table("lang", self.by_lang, self.overall)
        if by_source:
            table += "\n\n" + _table("source", self.by_source, self.overall)
        return table


_UNKNOWN_SOURCE = "unknown"


def _table(title: str, groups: dict[str, Counts], overall: Counts) -> str:
    header = (title, "rows", "human", "border", "other", "TP", "B+", "O+",
              "precision", "recall", "FPR")
    width = max([_WIDTHS[0], *(len(name) + 1 for name in groups)])
    lines = [_row(header, width)]
    for name in sorted(groups):
        lines.append(_row(_cells(name, groups[name]), width))
    lines.append(_row(_cells("all", overall), width))
    rule = "-" * len(lines[0])
    return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])


def format_held_out(results: dict[str, Counts]) -> str:
    """Table of `leave_one_source_out` results, with the pooled held-out total."""
    pooled = Counts()
    for counts in results.values():
        pooled.include(counts)
    return _table("held out", results, pooled)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _cells(name: str, counts: Counts) -> tuple[str, ...]:
    return (
        name, str(counts.rows), str(counts.human), str(counts.borderline), str(counts.other),
        str(counts.true_positives), str(counts.borderline_positives),
        str(counts.other_positives), _percent(counts.precision), _percent(counts.recall),
        _percent(counts.false_positive_rate),
    )


_WIDTHS = (6, 7, 6, 7, 7, 6, 5, 5, 10, 8, 7)


def _row(cells: tuple[str, ...], first_width: int = _WIDTHS[0]) -> str:
    first, *rest = cells
    return first.ljust(first_width) + "".join(
        cell.rjust(width) for cell, width in zip(rest, _WIDTHS[1:], strict=True)
    )


def read_csv(path: Path | str) -> Iterator[tuple[str, str, str]]:
    """Yield (text, label, lang) from a CSV with a header; other columns are ignored.

    Raises ValueError for missing columns or a label outside LABELS.
    """
    for row in read_rows(path):
        yield row.text, row.label, row.lang


def read_rows(path: Path | str) -> Iterator[Row]:
    """Like `read_csv`, with each row's ``source`` column (the file's stem if none)."""
    default_source = Path(path).stem
    # utf-8-sig: spreadsheets often prepend a BOM, which would rename "text".
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label", "lang"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            label = (row["label"] or "").strip().lower()
            if label not in LABELS:
                raise ValueError(
                    f"{path}:{reader.line_num}: label {row['label']!r} is not one of {LABELS}"
                )
            lang = (row["lang"] or "").strip().lower() or _UNKNOWN_LANG
            source = (row.get("source") or "").strip() or default_source
            yield Row(row["text"] or "", label, lang, source)


# The marks of a sentence file's lines: "H <text>", "B <text>", "O <text>".
_MARKS = {"H": "human", "B": "borderline", "O": "other"}


def read_sentence_files(directory: Path, source: str) -> list[Row]:
    """Rows of the ``<lang>.txt`` sentence files in `directory`, files in name order; blank
    lines and ``#`` comments skipped."""
    rows: list[Row] = []
    for path in sorted(directory.glob("*.txt")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            mark, text = raw.split(" ", 1)
            rows.append(Row(text.strip(), _MARKS[mark], path.stem, source))
    return rows


_MARK_PREFIX = re.compile(r"^[HOB] ")


def _same_text_key(text: str) -> str:
    """Case-folded, spaces collapsed, end punctuation dropped: what counts as the same text."""
    return re.sub(r"\s+", " ", text.casefold()).strip().rstrip(".!?,;: ")


def _units(path: Path) -> Iterator[str]:
    """Each line of a file and, for CSV files, each cell; a sentence file's mark is dropped."""
    content = path.read_text(encoding="utf-8", errors="ignore")
    for line in content.splitlines():
        yield _MARK_PREFIX.sub("", line)
    if path.suffix == ".csv":
        for row in csv.reader(io.StringIO(content)):
            yield from row


def sentence_collisions(directory: Path, files: Iterable[Path]) -> tuple[list[str], int]:
    """The sentence lines of `directory`'s ``<lang>.txt`` files whose text is also a line or
    CSV cell of one of `files`, as "lang: line", sorted; and how many sentence lines there are.

    Only the directory's own lines are returned, never a line of `files`, so a held-out set's
    author can run it without seeing what the detector was built from.
    """
    # A list per text: the same short text in two languages (nb and nn "hei") is reported twice.
    mine: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if _MARK_PREFIX.match(line):
                mine.setdefault(_same_text_key(line[2:]), []).append(f"{path.stem}: {line}")
    seen: set[str] = set()
    for path in files:
        seen.update(k for k in map(_same_text_key, _units(path)) if k in mine)
    return sorted(line for text in seen for line in mine[text]), sum(map(len, mine.values()))


# The folders beside the held-out sets that trained or tuned the detector (tests/triggers/).
_TRAINING_FOLDERS = ("data", "stage2_train", "check", "families")


def held_out_compared_files(here: Path, earlier_sets: Sequence[str], public: Path
                            ) -> Iterator[Path]:
    """Every file a sentence of the held-out set in `here` must not repeat: the detector's
    folder, its training and hand-written sets, the `earlier_sets` and the public data (skipped
    when absent: it lives outside the repository)."""
    triggers_tests = here.parent
    detector = Path(__file__).resolve().parent
    for folder in (detector, *(triggers_tests / name for name in _TRAINING_FOLDERS)):
        yield from (path for path in sorted(folder.rglob("*")) if path.is_file())
    for name in earlier_sets:
        for pattern in ("*.txt", "*.csv"):
            yield from sorted((triggers_tests / name).glob(pattern))
    if public.is_dir():
        yield from sorted(public.glob("*.csv"))


def check_overlap_main(here: Path, earlier_sets: Sequence[str], public: Path) -> int:
    """Print the held-out set's lines that repeat a compared file, and a count; 1 if any."""
    found, total = sentence_collisions(here, held_out_compared_files(here, earlier_sets, public))
    for line in found:
        print(line)
    print(f"{len(found)} of {total} sentences of this set appear elsewhere", file=sys.stderr)
    return 1 if found else 0


def write_rows(path: Path, rows: Iterable[RowLike]) -> None:
    """Write labelled rows as a CSV with the columns `read_rows` reads."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("text", "label", "lang", "source"))
        writer.writerows(Row(*row) if not isinstance(row, Row) else row for row in rows)


def _source_of(row: RowLike) -> str:
    return row[3] if len(row) > 3 else ""


def predict(rows: Iterable[RowLike], detector: Detector) -> Iterator[Prediction]:
    """Run the detector on each row's normalised text."""
    for row in rows:
        text, label, lang = row[0], row[1], row[2]
        match = detector.detect(normalize(text))
        yield Prediction(
            text, label, lang, match is not None, None if match is None else match.phrase,
            _source_of(row),
        )


def evaluate(rows: Iterable[RowLike], detector: Detector) -> EvalReport:
    """Evaluate `detector` on (text, label, lang[, source]) rows."""
    return EvalReport.from_predictions(predict(rows, detector))


def leave_one_source_out(
    rows: Sequence[RowLike], build: Callable[[list[RowLike]], Detector]
) -> dict[str, Counts]:
    """For each source group: ``build`` a detector from the other rows, score it on this one.

    `build` receives the training rows; a detector with nothing fitted to data
    may ignore them, and then each figure is simply its score on that source.
    """
    groups: dict[str, list[RowLike]] = {}
    for row in rows:
        groups.setdefault(source_group(_source_of(row)) or _UNKNOWN_SOURCE, []).append(row)
    results: dict[str, Counts] = {}
    for name in sorted(groups):
        held_out = groups[name]
        training = [row for other, part in groups.items() if other != name for row in part]
        results[name] = evaluate(held_out, build(training)).overall
    return results


def write_predictions(
    path: Path | str, rows: Iterable[RowLike], detector: Detector
) -> EvalReport:
    """Write text,label,lang,source,predicted (1/0),phrase per row; return the report too.

    Returning the report lets a caller consume a one-shot row iterator once.
    """
    report = EvalReport()
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for prediction in predict(rows, detector):
            report.add(prediction)
            writer.writerow((
                prediction.text, prediction.label, prediction.lang, prediction.source,
                1 if prediction.predicted else 0, prediction.phrase or "",
            ))
    return report
