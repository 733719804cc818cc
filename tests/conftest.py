"""Session fixtures: one real broker for the run, and a deployment of our own per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_support import Deployment, broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with broker() as address:
        yield address


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Deployment]:
    """A unique topic prefix with one running worker, shared by the tests of a module."""
    dep = Deployment(kafka_bootstrap, Path(tmp_path_factory.mktemp("deployment")))
    dep.worker().start()
    try:
        yield dep
    finally:
        for worker in dep.workers:
            worker.stop()
