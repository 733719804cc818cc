"""Train the second stage (`handoff.triggers.stage2`) and write its model file.

    python -m handoff.triggers.train_stage2 [--dev ../shared/data/human-request/dev.csv] [--out FILE]

Needs the training extra (``pip install -c requirements.lock -e '.[train]'``: scikit-learn);
the worker does not.  Inputs, all labelled ``text,label,lang[,source]``:

* the public dev set (``../shared/data/human-request/dev.csv``) without HINT3, whose labels
  are noisy (its "human" intent holds complaints and deposit questions; see that folder's
  README);
* the sentences written for this project (``tests/triggers/data/handwritten.csv``) and the
  ones written for this stage (``tests/triggers/stage2_train/<lang>.txt``);
* the first to eighteenth held-out sets (``tests/triggers/heldout/``, source
  ``heldout-2026-12-01``; ``tests/triggers/heldout2/`` to ``heldout18/``, sources
  ``heldout2-2026-12-02`` to ``heldout18-2026-12-02``) and the check set of 2026-12-02
  (``tests/triggers/check/``): each scored once and reported, so they are seen data now and
  train like the others;
* the sentences written for the families behind the second held-out set's misses
  (``tests/triggers/families/``, source ``families-2026-12-02``).

Never a later held-out set: `training_rows` drops every other ``heldout`` source (a set
being written, or written and not yet scored), whoever passes it in, and a test checks the
inputs.  Human
rows are positives; borderline rows (are you a bot, opening hours, contact details) and other
rows are negatives.

Logistic regression on feature counts (liblinear, fixed seed, so the same inputs write the
same file).  The threshold is chosen on out-of-fold probabilities (folds by whole source,
never splitting a hand-written set) of the rows the patterns neither match nor veto, since
those are the only ones the stage sees: the lowest one that keeps those folds' false
positives at or under `TARGET_FPR` on all negatives and under `TARGET_HARD_FPR` on the
hand-written ones, and never below `MIN_THRESHOLD`.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from handoff.triggers.evaluate import Row, RowLike, read_rows, source_group
from handoff.triggers.evaluate import read_sentence_files as sentence_files
from handoff.triggers.human_request import HumanRequestDetector
from handoff.triggers.normalize import normalize
from handoff.triggers.patterns import macro_definitions
from handoff.triggers.stage2 import MODEL_FILE, Stage2Model, features

__all__ = ["as_rows", "choose_threshold", "default_rows", "fit", "main", "read_sentence_files",
           "training_rows", "word_classes"]

REPO = Path(__file__).resolve().parents[2]
DEV_CSV = REPO.parent / "shared" / "data" / "human-request" / "dev.csv"
HANDWRITTEN = REPO / "tests" / "triggers" / "data" / "handwritten.csv"
STAGE2_SENTENCES = REPO / "tests" / "triggers" / "stage2_train"
SEEN_HELDOUT = REPO / "tests" / "triggers" / "heldout" / "heldout.csv"
SEEN_HELDOUT2 = REPO / "tests" / "triggers" / "heldout2" / "heldout.csv"
SEEN_HELDOUT3 = REPO / "tests" / "triggers" / "heldout3" / "heldout.csv"
SEEN_HELDOUT4 = REPO / "tests" / "triggers" / "heldout4" / "heldout.csv"
SEEN_LATER = tuple(REPO / "tests" / "triggers" / name / "heldout.csv"
                   for name in ("heldout5", "heldout6", "heldout7", "heldout8", "heldout9",
                                "heldout10", "heldout11", "heldout12", "heldout13", "heldout14",
                                "heldout15", "heldout16", "heldout17", "heldout18"))
# The held-out sources that may train, each scored once and reported (see the module docstring).
SEEN_HELDOUT_SOURCE = "heldout-2026-12-01"
SEEN_HELDOUT2_SOURCE = "heldout2-2026-12-02"
SEEN_HELDOUT3_SOURCE = "heldout3-2026-12-02"
# Scored once on 2026-12-02 (05:57, recall 78.5 %), then analysed and trained on from 13:00.
SEEN_HELDOUT4_SOURCE = "heldout4-2026-12-02"
# The fifth to seventh scored once on 2026-12-02 (13:28, 15:09 and 15:30: recall 60.3, 76.0 and
# 79.0 %), their families written as phrase lines, then trained on from 16:00; the eighth to
# tenth scored once at 16:00, 16:17 and 16:30 (92.3, 85.8 and 61.7 %), trained on from 17:50;
# the eleventh and twelfth scored once at 18:08 (82.3 and 80.0 %), trained on from 18:20; the
# thirteenth and fourteenth at 18:32 and 18:33 (77.5 and 86.8 %), trained on from 18:55.
SEEN_LATER_SOURCES = tuple(f"{path.parent.name}-2026-12-02" for path in SEEN_LATER)
SEEN_HELDOUT_SOURCES = (SEEN_HELDOUT_SOURCE, SEEN_HELDOUT2_SOURCE, SEEN_HELDOUT3_SOURCE,
                        SEEN_HELDOUT4_SOURCE, *SEEN_LATER_SOURCES)
CHECK = REPO / "tests" / "triggers" / "check" / "check.csv"
FAMILIES = REPO / "tests" / "triggers" / "families"
FAMILIES_SOURCE = "families-2026-12-02"

SEED = 14
# Inverse L2 strength: 0.25 to 4 rescued 38-42 of 61 out of fold at the same false positives
# (under the 0.1 % target alone, before the hand-written one was added); the middle was kept.
C = 1.0
FOLDS = 5
TARGET_FPR = 0.001  # out-of-fold, on the negatives the stage sees
# ... and on the hand-written ones among them: hard negatives by design (other agents,
# people in passing, bookings), a few hundred against the public sets' tens of thousands,
# and what the per-language goal is measured on.
TARGET_HARD_FPR = 0.0025
# Row folds share each set's authors and habits between train and test, so they flatter the
# false positives: holding out whole hand-written sets (check, both held-out sets, families) on
# 2026-12-02, a model at the folds' 0.949 let 6 of their 1,614 `other` rows through, at 0.97 2,
# with the same 24 requests rescued. The threshold is never below this.
MIN_THRESHOLD = 0.97
_HARD_PREFIXES = ("handwritten", "stage2", *SEEN_HELDOUT_SOURCES, "check", "families")
MIN_WEIGHT = 0.02  # smaller weights are left out of the file to keep it small
# Sources never trained on: noisy labels, and every held-out set not yet scored and reported.
_EXCLUDED_GROUPS = ("hellohaptik/HINT3",)
_EXCLUDED_PREFIX = "heldout"


PHRASE_DIR = Path(__file__).resolve().parent / "data" / "human_request"
# The phrase files' vocabularies whose one-word entries become a class feature shared by every
# language (`stage2.word_features`): the words for a member of staff and for a department.
# Listed first wins, so a word in both is staff.
CLASS_VOCABULARIES = (("@staff", ("@noun", "@staff", "@core", "@more", "@someone")),
                      ("@dept", ("@dept",)))


# Words for any human being stay out of the staff class: they have their own features, and
# as a class they would tie "pessoa fisica" (a private person, the legal term) and
# "mennesker med nedsatt syn" to the words for an employee.
_NOT_STAFF = frozenset(normalize(
    "human humans person persons people persona personas pessoa pessoas personne personnes"
    " persoon personen mens mensen mensch menschen menneske mennesker menneska personar"
    " människa människor humano humanos humain humains umano umani humana humanas").split())


def word_classes(directory: Path = PHRASE_DIR) -> dict[str, str]:
    """Word -> class feature, from the one-word entries of the phrase files' vocabularies
    (`CLASS_VOCABULARIES`), normalised as messages are."""
    classes: dict[str, str] = {}
    definitions = [(f"@{macro}", body) for path in sorted(directory.glob("*.txt"))
                   for macro, body in macro_definitions(
                       path.read_text(encoding="utf-8").splitlines())]
    for name, vocabularies in CLASS_VOCABULARIES:
        for head, body in definitions:
            if head not in vocabularies:
                continue
            for entry in body.split("|"):
                words = normalize(entry).split()
                if (len(words) == 1 and not entry.strip().startswith("@")
                        and words[0] not in _NOT_STAFF):
                    classes.setdefault(words[0], name)
    return classes


def read_sentence_files(directory: Path = STAGE2_SENTENCES) -> list[Row]:
    """Rows of ``<lang>.txt`` files ("H ", "B ", "O " lines), source ``stage2-train``."""
    return sentence_files(directory, "stage2-train")


def default_rows(dev: Path = DEV_CSV) -> list[Row]:
    """Every input row before `training_rows` filters them: dev set, hand-written, stage 2's
    own, the seven scored held-out sets, the check set and the families' sentences."""
    seen = [row for path in (SEEN_HELDOUT, SEEN_HELDOUT2, SEEN_HELDOUT3, SEEN_HELDOUT4,
                             *SEEN_LATER)
            for row in read_rows(path) if row.source in SEEN_HELDOUT_SOURCES]
    return [*read_rows(dev), *read_rows(HANDWRITTEN), *read_sentence_files(), *seen,
            *read_rows(CHECK), *sentence_files(FAMILIES, FAMILIES_SOURCE)]


def as_rows(rows: Iterable[RowLike]) -> list[Row]:
    """`Row`s from rows that may be plain (text, label, lang) triples."""
    return [row if isinstance(row, Row) else Row(*row) for row in rows]


def training_rows(rows: Iterable[Row]) -> list[Row]:
    """The rows a model may learn from: no HINT3, no held-out set but the seven already scored."""
    out: list[Row] = []
    for row in rows:
        group = source_group(row.source)
        if group in _EXCLUDED_GROUPS or (group.startswith(_EXCLUDED_PREFIX)
                                         and group not in SEEN_HELDOUT_SOURCES):
            continue
        out.append(row)
    return out


class _Analyzer:
    """A message's `features` with the given word classes (a class, so it pickles)."""

    def __init__(self, classes: dict[str, str]) -> None:
        self.classes = classes

    def __call__(self, text: str) -> list[str]:
        return list(features(normalize(text), self.classes))


def _fit_arrays(texts: Sequence[str], labels: Sequence[int], c: float,
                classes: dict[str, str]) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(analyzer=_Analyzer(classes), lowercase=False)
    matrix = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=c, solver="liblinear", random_state=SEED, max_iter=1000)
    model.fit(matrix, labels)
    return vectorizer, model


def _to_model(vectorizer: Any, model: Any, threshold: float, description: str,
              classes: dict[str, str]) -> Stage2Model:
    names = vectorizer.get_feature_names_out()
    coefficients = model.coef_[0]
    weights = {
        str(name): round(float(w), 4)
        for name, w in zip(names, coefficients, strict=True)
        if abs(w) >= MIN_WEIGHT
    }
    # Only the classes the model has a weight for are worth carrying.
    kept = {word: name for word, name in classes.items() if name in weights}
    return Stage2Model(weights, float(model.intercept_[0]), threshold, description, kept)


def _labels(rows: Sequence[Row]) -> list[int]:
    return [1 if row.label == "human" else 0 for row in rows]


def _rule_state(rows: Sequence[Row], rules: HumanRequestDetector) -> list[bool]:
    """Per row: would the stage see it (the patterns neither matched nor vetoed)?"""
    seen: list[bool] = []
    for row in rows:
        match, vetoed = rules.scan(normalize(row.text))
        seen.append(match is None and not vetoed)
    return seen


def choose_threshold(rows: Sequence[Row], rules: HumanRequestDetector, c: float = C,
                     folds: int = FOLDS, target_fpr: float = TARGET_FPR,
                     classes: dict[str, str] | None = None) -> tuple[float, str]:
    """The out-of-fold threshold (see the module docstring), and a line saying what it gives."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = _labels(rows)
    texts = [row.text for row in rows]
    seen = _rule_state(rows, rules)
    probabilities = [0.0] * len(rows)
    # Folds by whole source (one hand-written set, one public dataset): rows of one set share
    # their author's habits, so row folds let a set's twins into training and flatter the
    # false positives (module docstring).
    groups = [source_group(row.source) for row in rows]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for train_index, test_index in splitter.split(texts, labels, groups):
        vectorizer, model = _fit_arrays([texts[i] for i in train_index],
                                        [labels[i] for i in train_index], c, classes or {})
        predicted = model.predict_proba(vectorizer.transform([texts[i] for i in test_index]))[:, 1]
        for i, p in zip(test_index, predicted, strict=True):
            probabilities[i] = float(p)
    negatives = [probabilities[i] for i in range(len(rows)) if seen[i] and not labels[i]]
    hard = [probabilities[i] for i in range(len(rows)) if seen[i] and not labels[i]
            and rows[i].source.startswith(_HARD_PREFIXES)]
    threshold = max(MIN_THRESHOLD, _above(negatives, target_fpr), _above(hard, TARGET_HARD_FPR))
    threshold = min(threshold, 0.999)
    rescued = sum(1 for i in range(len(rows)) if seen[i] and labels[i] and probabilities[i] >= threshold)
    missed = sum(1 for i in range(len(rows)) if seen[i] and labels[i])
    note = (f"out of fold: rescues {rescued} of the {missed} requests the patterns miss; "
            f"{sum(p >= threshold for p in negatives)} of {len(negatives)} negatives they leave "
            f"pass, {sum(p >= threshold for p in hard)} of {len(hard)} hand-written ones")
    return threshold, note


def _above(negatives: Sequence[float], rate: float) -> float:
    """Just above the (k+1)-th highest score, k = rate * count: at most k negatives pass."""
    if not negatives:
        return 0.0
    ranked = sorted(negatives, reverse=True)
    allowed = int(rate * len(ranked))
    return ranked[min(allowed, len(ranked) - 1)] + 1e-4


def fit(rows: Sequence[Row], rules: HumanRequestDetector | None = None, c: float = C,
        threshold: float | None = None, classes: dict[str, str] | None = None) -> Stage2Model:
    """Train on `training_rows(rows)`; the threshold comes from cross-validation unless given;
    `classes` defaults to the phrase files' `word_classes` (pass {} for none)."""
    rows = training_rows(rows)
    if classes is None:
        classes = word_classes()
    if rules is None:
        rules = HumanRequestDetector.load(stage2=False)
    note = f"threshold given: {threshold}"
    if threshold is None:
        threshold, note = choose_threshold(rows, rules, c, classes=classes)
    vectorizer, model = _fit_arrays([row.text for row in rows], _labels(rows), c, classes)
    sources = sorted({source_group(row.source) for row in rows})
    digest = hashlib.sha256("\n".join(f"{r.text}\t{r.label}" for r in rows).encode()).hexdigest()
    description = "\n".join([
        "Second-stage human-request model: written by python -m handoff.triggers.train_stage2",
        f"rows {len(rows)} (human {sum(_labels(rows))}), sha256 of text+label {digest[:16]}",
        f"sources: {', '.join(sources)}",
        f"C {c}, seed {SEED}, liblinear, {len(classes)} class words; {note}",
    ])
    return _to_model(vectorizer, model, threshold, description, classes)


def main(argv: Sequence[str] | None = None) -> None:
    """Read the inputs, train, write the model file and say what it holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEV_CSV)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--c", type=float, default=C)
    args = parser.parse_args(argv)
    rows = default_rows(args.dev)
    model = fit(rows, c=args.c)
    model.dump(args.out)
    print(model.description)
    print(f"{len(model)} weights, threshold {model.threshold:.4f}, "
          f"{args.out.stat().st_size:,} bytes -> {args.out}")


if __name__ == "__main__":
    main()
