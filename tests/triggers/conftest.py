"""One shipped detector per test session: loading expands ~60k phrases."""

from __future__ import annotations

import pytest

from handoff.triggers.human_request import HumanRequestDetector


@pytest.fixture(scope="session")
def detector() -> HumanRequestDetector:
    return HumanRequestDetector.load()
