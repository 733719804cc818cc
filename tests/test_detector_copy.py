"""The human-request detector read back from its pickled copy detects like a new one (the worker
and the what-if both start through `handoff.triggers.saved.load_detector`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handoff.triggers import saved
from handoff.triggers.human_request import HumanRequestDetector

TEXTS = ["I want to talk to a human", "Jeg vil snakke med et menneske", "talk to a humna please",
         "hablar con un agente", "where is my order?", "no human needed, thanks",
         "kundenservice bitte", "connect me to someone"]


def test_the_copy_detects_as_the_built_detector_and_follows_the_pattern_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(saved.DETECTOR_CACHE_ENV, str(tmp_path / "copies"))
    extra = tmp_path / "patterns"
    extra.mkdir()
    built: list[Any] = []
    load = HumanRequestDetector.load

    def counting(dirs: Any = ()) -> HumanRequestDetector:
        built.append(list(dirs))
        return load(dirs)

    monkeypatch.setattr(HumanRequestDetector, "load", staticmethod(counting))
    fresh = saved.load_detector([extra])
    copy = saved.load_detector([extra])
    assert len(built) == 1 and copy is not fresh  # the second one is read back
    assert [copy.detect_text(t) for t in TEXTS] == [fresh.detect_text(t) for t in TEXTS]
    assert sum(fresh.detect_text(t) is not None for t in TEXTS) >= 3

    (extra / "en.txt").write_text("zebra crossing\n", encoding="utf-8")
    changed = saved.load_detector([extra])
    assert len(built) == 2  # an operator's new phrase builds it again
    assert changed.detect_text("a zebra crossing") is not None
    for path in (tmp_path / "copies").glob("*.pickle"):
        path.write_bytes(b"not a pickle")
    assert saved.load_detector([extra]).detect_text("a zebra crossing") is not None
    assert len(built) == 3  # a damaged copy is built again, not trusted
