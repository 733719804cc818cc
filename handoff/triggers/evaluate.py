"""Evaluate a human-request detector on labelled rows (text, label, lang).

Labels: ``human`` (asks for a human), ``borderline`` (contact details, opening
hours, "are you a bot?": must not trigger) and ``other``.  A row is predicted
positive when the detector matches.  Metrics:

* precision: human rows predicted positive / all rows predicted positive
  (a positive borderline row counts against precision);
* recall: human rows predicted positive / human rows;
* false_positive_rate: ``other`` rows predicted positive / ``other`` rows.

A metric whose denominator is zero is None (JSON null), not 0 or 1.
Built for ``handoff eval-triggers FILE.csv [--json] [--predictions OUT.csv]``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
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
    "evaluate",
    "predict",
    "read_csv",
    "write_predictions",
]

LABELS = ("human", "borderline", "other")
PREDICTION_COLUMNS = ("text", "label", "lang", "predicted", "phrase")
_UNKNOWN_LANG = "und"  # ISO 639 "undetermined", for rows with an empty lang


class Detector(Protocol):
    """Anything with `HumanRequestDetector.detect`'s signature."""

    def detect(self, normalized_text: str) -> HumanRequestMatch | None: ...


class Prediction(NamedTuple):
    """One evaluated row."""

    text: str
    label: str
    lang: str
    predicted: bool
    phrase: str | None


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
    """Overall and per-language results."""

    overall: Counts = field(default_factory=Counts)
    by_lang: dict[str, Counts] = field(default_factory=dict)

    @classmethod
    def from_predictions(cls, predictions: Iterable[Prediction]) -> EvalReport:
        """Aggregate predictions into a report."""
        report = cls()
        for prediction in predictions:
            report.add(prediction)
        return report

    def add(self, prediction: Prediction) -> None:
        """Count one prediction overall and under its language."""
        self.overall.add(prediction.label, prediction.predicted)
        lang_counts = self.by_lang.get(prediction.lang)
        if lang_counts is None:
            lang_counts = self.by_lang[prediction.lang] = Counts()
        lang_counts.add(prediction.label, prediction.predicted)

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
        """JSON-ready dict: precision, recall, false_positive_rate, by_lang."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "false_positive_rate": self.false_positive_rate,
            "by_lang": {lang: self.by_lang[lang].to_json() for lang in sorted(self.by_lang)},
        }

    def format_table(self) -> str:
        """Fixed-width table, one line per language and a total line."""
        header = ("lang", "rows", "human", "border", "other", "TP", "B+", "O+",
                  "precision", "recall", "FPR")
        lines = [_row(header)]
        for lang in sorted(self.by_lang):
            lines.append(_row(_cells(lang, self.by_lang[lang])))
        lines.append(_row(_cells("all", self.overall)))
        rule = "-" * len(lines[0])
        return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])


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


def _row(cells: tuple[str, ...]) -> str:
    first, *rest = cells
    return first.ljust(_WIDTHS[0]) + "".join(
        cell.rjust(width) for cell, width in zip(rest, _WIDTHS[1:], strict=True)
    )


def read_csv(path: Path | str) -> Iterator[tuple[str, str, str]]:
    """Yield (text, label, lang) from a CSV with a header; other columns are ignored.

    Raises ValueError for missing columns or a label outside LABELS.
    """
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
            yield row["text"] or "", label, lang


def predict(rows: Iterable[tuple[str, str, str]], detector: Detector) -> Iterator[Prediction]:
    """Run the detector on each row's normalised text."""
    for text, label, lang in rows:
        match = detector.detect(normalize(text))
        yield Prediction(text, label, lang, match is not None, None if match is None else match.phrase)


def evaluate(rows: Iterable[tuple[str, str, str]], detector: Detector) -> EvalReport:
    """Evaluate `detector` on (text, label, lang) rows."""
    return EvalReport.from_predictions(predict(rows, detector))


def write_predictions(
    path: Path | str, rows: Iterable[tuple[str, str, str]], detector: Detector
) -> EvalReport:
    """Write text,label,lang,predicted (1/0),phrase per row; return the report too.

    Returning the report lets a caller consume a one-shot row iterator once.
    """
    report = EvalReport()
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for prediction in predict(rows, detector):
            report.add(prediction)
            writer.writerow((
                prediction.text, prediction.label, prediction.lang,
                1 if prediction.predicted else 0, prediction.phrase or "",
            ))
    return report
