"""Evaluation: metric definitions, CSV in and out, and the goals on the dev set."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from handoff.triggers.evaluate import (
    Counts,
    EvalReport,
    Row,
    RowLike,
    evaluate,
    format_held_out,
    leave_one_source_out,
    read_csv,
    read_rows,
    source_group,
    write_predictions,
)
from handoff.triggers.human_request import HumanRequestDetector, HumanRequestMatch
from handoff.triggers.normalize import normalize
from handoff.triggers.proxy import _pooled

REPO = Path(__file__).resolve().parents[2]


class KeywordDetector:
    """Matches when the normalised text contains " yes "."""

    def detect(self, normalized_text: str) -> HumanRequestMatch | None:
        at = normalized_text.find(" yes ")
        if at < 0:
            return None
        return HumanRequestMatch("xx", "yes", "yes", "t:1", at + 1, at + 4)


ROWS = [
    ("yes", "human", "en"),        # TP
    ("yes please", "human", "en"),  # TP
    ("no", "human", "en"),         # FN
    ("yes", "borderline", "en"),   # positive borderline: hurts precision only
    ("no", "borderline", "en"),
    ("yes", "other", "nb"),        # FP
    ("no", "other", "nb"),
    ("no", "other", "nb"),
    ("no", "other", "nb"),
]


def test_metric_definitions() -> None:
    report = evaluate(ROWS, KeywordDetector())
    assert report.precision == pytest.approx(2 / 4)
    assert report.recall == pytest.approx(2 / 3)
    assert report.false_positive_rate == pytest.approx(1 / 4)
    en, nb = report.by_lang["en"], report.by_lang["nb"]
    assert (en.rows, en.human, en.borderline, en.other) == (5, 3, 2, 0)
    assert en.precision == pytest.approx(2 / 3)
    assert en.false_positive_rate is None  # no "other" rows: undefined, not 0
    assert nb.recall is None
    assert nb.precision == 0.0


def test_to_json_shape() -> None:
    data = evaluate(ROWS, KeywordDetector()).to_json()
    assert list(data) == ["precision", "recall", "false_positive_rate", "by_lang", "by_source"]
    by_lang = data["by_lang"]
    assert isinstance(by_lang, dict)
    assert list(by_lang) == ["en", "nb"]
    en = by_lang["en"]
    assert {"precision", "recall", "false_positive_rate", "rows", "human", "borderline",
            "other", "true_positives", "borderline_positives", "other_positives"} == set(en)


def test_format_table_lists_every_language_and_a_total() -> None:
    table = evaluate(ROWS, KeywordDetector()).format_table()
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["lang", "rows"]
    assert [line.split()[0] for line in lines if line[:1].isalpha()][1:] == ["en", "nb", "all"]
    assert "66.67%" in table and "25.00%" in table
    assert "-" in lines[2]  # undefined metrics print as "-"


def test_empty_report() -> None:
    report = EvalReport()
    assert report.to_json() == {
        "precision": None, "recall": None, "false_positive_rate": None, "by_lang": {},
        "by_source": {},
    }
    assert "all" in report.format_table()


def test_read_csv_ignores_extra_columns_and_checks_labels(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        "\ufeffid,text,label,intent,lang\n"
        '1,"Hello, a human please",human,x,EN\n'
        "2,what time do you open,Borderline,y,\n",
        encoding="utf-8",
    )
    assert list(read_csv(path)) == [
        ("Hello, a human please", "human", "en"),
        ("what time do you open", "borderline", "und"),
    ]
    path.write_text("text,label,lang\nhi,maybe,en\n", encoding="utf-8")
    with pytest.raises(ValueError, match="maybe"):
        list(read_csv(path))
    path.write_text("text,lang\nhi,en\n", encoding="utf-8")
    with pytest.raises(ValueError, match="label"):
        list(read_csv(path))


def test_write_predictions(tmp_path: Path) -> None:
    out = tmp_path / "predictions.csv"
    report = write_predictions(out, iter(ROWS), KeywordDetector())
    assert report.to_json() == evaluate(ROWS, KeywordDetector()).to_json()
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["text", "label", "lang", "source", "predicted", "phrase"]
    assert rows[1] == ["yes", "human", "en", "", "1", "yes"]
    assert rows[3] == ["no", "human", "en", "", "0", ""]
    assert len(rows) == len(ROWS) + 1


def test_report_counts_per_source_group() -> None:
    rows = [
        Row("yes", "human", "en", "github:a/one@c1:x.csv"),
        Row("no", "human", "en", "github:a/one@c1:y.csv"),  # same dataset, other file
        Row("yes", "other", "nb", "handwritten-nb"),
    ]
    report = evaluate(rows, KeywordDetector())
    assert sorted(report.by_source) == ["a/one", "handwritten-nb"]
    assert report.by_source["a/one"].recall == pytest.approx(0.5)
    assert report.by_source["handwritten-nb"].false_positive_rate == 1.0
    assert "handwritten-nb" in report.format_table(by_source=True)
    assert source_group("github:o/r@abc:data/f.csv") == "o/r"


def test_read_rows_defaults_the_source_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("text,label,lang\nhi,other,en\n", encoding="utf-8")
    assert list(read_rows(path)) == [Row("hi", "other", "en", "mine")]


class _MemorisingDetector:
    """Matches exactly the human texts it was built from: useless on unseen rows."""

    def __init__(self, training: list[RowLike]) -> None:
        self.known = {normalize(row[0]) for row in training if row[1] == "human"}

    def detect(self, normalized_text: str) -> HumanRequestMatch | None:
        if normalized_text in self.known:
            return HumanRequestMatch("xx", "", "", "t:1", 0, 0)
        return None


def test_leave_one_source_out_never_scores_a_source_it_was_built_from() -> None:
    rows: list[RowLike] = [
        Row("agent please", "human", "en", "s1"),
        Row("agent please", "human", "en", "s2"),
        Row("a person now", "human", "en", "s2"),
        Row("refund", "other", "en", "s1"),
    ]
    built_from: list[set[str]] = []

    def build(training: list[RowLike]) -> _MemorisingDetector:
        built_from.append({row[3] for row in training if len(row) > 3})
        return _MemorisingDetector(training)

    folds = leave_one_source_out(rows, build)
    assert built_from == [{"s2"}, {"s1"}]
    # Memorised on the whole set, recall would be 1.0; held out, the unseen
    # "a person now" is missed.
    assert folds["s1"].recall == 1.0
    assert folds["s2"].recall == pytest.approx(0.5)
    assert evaluate(rows, _MemorisingDetector(rows)).recall == 1.0
    assert "s2" in format_held_out(folds)


def _dev_csv() -> Path | None:
    candidates = [
        os.environ.get("HANDOFF_DEV_CSV"),
        # CI clones the repo with ../shared beside it.
        str(REPO.parent / "shared" / "data" / "human-request" / "dev.csv"),
        "/work/shared/data/human-request/dev.csv",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def test_goals_on_dev_set(detector: HumanRequestDetector) -> None:
    """Recall >= 95% and false positives <= 0.5% on dev, overall and per language.

    HINT3 rows are left out of the recall goal: the data's README calls their
    labels noisy, and most of its "chat with an agent" rows are complaints
    ("Give me bonus", "My balance is wrong") that no phrase list should
    match.  They still count for the false-positive goal, and recall with
    them is held to a looser floor so a regression there shows too.
    """
    path = _dev_csv()
    if path is None:
        pytest.skip("dev.csv not found (set HANDOFF_DEV_CSV)")
    with open(path, encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    rows = [(r["text"], r["label"], r["lang"]) for r in records]
    clean = [(r["text"], r["label"], r["lang"]) for r in records if "HINT3" not in r["source"]]

    everything = evaluate(rows, detector)
    without_hint3 = evaluate(clean, detector)

    fpr = everything.false_positive_rate
    assert fpr is not None and fpr <= 0.005
    for lang, counts in everything.by_lang.items():
        if counts.other:
            assert counts.false_positive_rate is not None
            assert counts.false_positive_rate <= 0.005, lang

    recall = without_hint3.recall
    assert recall is not None and recall >= 0.95
    for lang, counts in without_hint3.by_lang.items():
        if counts.human:
            assert counts.recall is not None
            assert counts.recall >= 0.95, (lang, counts.recall)

    raw_recall = everything.recall
    assert raw_recall is not None and raw_recall >= 0.88
    precision = everything.precision
    assert precision is not None and precision >= 0.95


def test_proxy_pools_each_language_and_the_whole_over_the_sets() -> None:
    first, second = EvalReport(), EvalReport()
    for report, rows in ((first, [("human", True, "en"), ("other", True, "nb")]),
                         (second, [("human", False, "en"), ("borderline", False, "en")])):
        for label, predicted, lang in rows:
            report.by_lang.setdefault(lang, Counts()).add(label, predicted)
            report.overall.add(label, predicted)
    pooled = _pooled({"a": first, "b": second})
    assert pooled.by_lang["en"] == Counts(rows=3, human=2, borderline=1, true_positives=1)
    assert pooled.by_lang["nb"] == Counts(rows=1, other=1, other_positives=1)
    assert pooled.overall == Counts(rows=4, human=2, borderline=1, other=1, true_positives=1,
                                    other_positives=1)
