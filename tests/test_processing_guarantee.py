"""HANDOFF_PROCESSING_GUARANTEE reaches Faust: building the topology must not settle it early.

Faust caches `app.in_transaction` (exactly_once *and* running in a worker) the first time it is
read, and the consumer reads it when it is created. A consumer created while the topology is
built, before `faust.Worker` marks the app as in a worker, silently runs at-least-once.
"""

from __future__ import annotations

from handoff.config import WorkerSettings
from streams.app import build


def test_building_the_topology_leaves_the_transaction_mode_to_the_worker() -> None:
    settings = WorkerSettings(processing_guarantee="exactly_once")  # type: ignore[call-arg]
    app = build(settings).app
    assert "in_transaction" not in app.__dict__, "app.in_transaction was read during build"
    app.in_worker = True  # what faust.Worker does
    assert app.in_transaction is True
    assert app.consumer.in_transaction is True
