"""The leave-one-set-out proxy for unseen data: retrain the second stage without each
hand-written set in turn and score that set, overall and per language.

    python -m handoff.triggers.proxy [--sets heldout2,heldout3,heldout7,families] [--json]

Each hand-written set was written by one author in one sitting, so rows of one set share
habits; holding out a whole set (not rows) is the nearest thing to a set nobody has seen.
The phrase files are the same in every fold and were tuned on heldout2, heldout3 and the
families, so for those sets the figure holds out the model only; a set the phrase files
were not tuned on (heldout4 until it was analysed) holds out both.  The threshold is the
shipped one unless ``--choose-threshold`` (slower: it reruns the out-of-fold choice).
Only scored sets are named here; a set not yet scored is never read.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from handoff.triggers import train_stage2
from handoff.triggers.evaluate import Counts, EvalReport, Row, evaluate, read_rows, source_group
from handoff.triggers.evaluate import read_sentence_files as sentence_files
from handoff.triggers.human_request import HumanRequestDetector

__all__ = ["SETS", "main", "proxy", "set_rows"]

_TESTS = train_stage2.REPO / "tests" / "triggers"
# The sets a fold holds out, each already scored once and reported.
SETS = ("heldout2", "heldout3", "heldout4", *(path.parent.name for path in train_stage2.SEEN_LATER),
        "families")


def set_rows(name: str) -> list[Row]:
    """The rows of one scored hand-written set."""
    if name == "families":
        return sentence_files(train_stage2.FAMILIES, train_stage2.FAMILIES_SOURCE)
    if name not in SETS:
        raise ValueError(f"{name!r} is not a scored set ({', '.join(SETS)})")
    return list(read_rows(_TESTS / name / "heldout.csv"))


def proxy(names: Sequence[str], detector: HumanRequestDetector,
          choose_threshold: bool = False, classes: dict[str, str] | None = None,
          threshold: float | None = None) -> dict[str, EvalReport]:
    """Per set: a second stage trained on every input but that set, scored on that set."""
    sets = {name: set_rows(name) for name in names}
    inputs = [*train_stage2.default_rows(), *(row for rows in sets.values() for row in rows)]
    rules = detector.with_stage2(None)
    assert detector.stage2 is not None
    if threshold is None and not choose_threshold:
        threshold = detector.stage2.threshold
    reports: dict[str, EvalReport] = {}
    for name, held in sets.items():
        groups = {source_group(row.source) for row in held}
        fold = [row for row in dict.fromkeys(inputs) if source_group(row.source) not in groups]
        model = train_stage2.fit(fold, rules, threshold=threshold, classes=classes)
        reports[name] = evaluate(held, detector.with_stage2(model))
    return reports


def _pooled(reports: dict[str, EvalReport]) -> EvalReport:
    pooled = EvalReport()
    for report in reports.values():
        for lang, counts in report.by_lang.items():
            pooled.by_lang.setdefault(lang, Counts()).include(counts)
            pooled.overall.include(counts)
    return pooled


def main(argv: Sequence[str] | None = None) -> None:
    """Run the proxy and print a table per set and pooled (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--choose-threshold", action="store_true")
    parser.add_argument("--threshold", type=float, default=None,
                        help="this threshold instead of the shipped model's")
    parser.add_argument("--no-classes", action="store_true",
                        help="train without the word-class features (to compare)")
    parser.add_argument("--no-stage2-too", action="store_true",
                        help="also print the phrase files alone on each set")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    detector = HumanRequestDetector.load()
    reports = proxy(args.sets.split(","), detector, args.choose_threshold,
                    {} if args.no_classes else None, args.threshold)
    reports["pooled"] = _pooled(reports)
    data = {name: report.to_json() for name, report in reports.items()}
    if args.out is not None:
        args.out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(data, indent=1))
        return
    for name, report in reports.items():
        print(f"\n== {name} (second stage trained without it)")
        print(report.format_table())
        if args.no_stage2_too and name != "pooled":
            alone = evaluate(set_rows(name), detector.with_stage2(None))
            print(f"   phrase files alone: recall {alone.overall.recall:.2%}, "
                  f"FPR {alone.overall.false_positive_rate:.2%}")


if __name__ == "__main__":
    main()
