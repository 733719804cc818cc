"""The sentences written for the families behind the second held-out set's misses.

They train the second stage (source ``families-2026-12-02``); here they also check that the
phrase files and the model together keep catching the requests and leave the hard negatives
(the same words said of the past, a third person, other agents) alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.triggers import train_stage2
from handoff.triggers.evaluate import Row, read_sentence_files
from handoff.triggers.human_request import HumanRequestDetector
from handoff.triggers.normalize import normalize

FAMILIES = Path(__file__).resolve().parent / "families"
ALL_LANGUAGES = ("en", "nb", "nn", "sv", "da", "de", "es", "fr", "it", "nl", "pt")


def _rows() -> list[Row]:
    return read_sentence_files(FAMILIES, train_stage2.FAMILIES_SOURCE)


def test_every_language_has_requests_and_hard_negatives() -> None:
    assert train_stage2.FAMILIES == FAMILIES
    rows = _rows()
    for lang in ALL_LANGUAGES:
        labels = [row.label for row in rows if row.lang == lang]
        assert labels.count("human") >= 15, lang
        assert labels.count("other") >= 10, lang
        assert labels.count("borderline") >= 2, lang
    assert len(train_stage2.training_rows(rows)) == len(rows)


@pytest.mark.parametrize("lang", ALL_LANGUAGES)
def test_requests_are_caught_and_negatives_left_alone(
    detector: HumanRequestDetector, lang: str
) -> None:
    rows = [row for row in _rows() if row.lang == lang]
    missed = [row.text for row in rows
              if row.label == "human" and detector.detect(normalize(row.text)) is None]
    fired = [row.text for row in rows
             if row.label != "human" and detector.detect(normalize(row.text)) is not None]
    assert not fired, fired
    humans = sum(row.label == "human" for row in rows)
    # Trained on, so nearly all; a miss or two is left to show the model is not a lookup.
    assert len(missed) <= max(1, humans // 10), missed
