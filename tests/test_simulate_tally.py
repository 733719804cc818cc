"""The what-if's counts with queues and timers: a handoff counts once, where it was first
routed; what moved it later is counted apart, by reason."""

from __future__ import annotations

from handoff.core.store import Overlay
from handoff.simulate import Tally
from tests import builders as b
from tests.core.test_queues_and_timers import live
from tests.core.test_triggers_and_process import configured


def test_a_queued_handoff_counts_once_and_its_later_assignment_apart() -> None:
    run = configured(live(("u-1",), assign_when_available=True), b.user("u-1"),
                     b.presence("u-1", "offline"))
    tally = Tally()
    for event in (b.chat("m-0", "refund", conversation="c-0"),
                  b.presence("u-1", at=b.at(30))):  # u-1 comes back: c-0 from the queue
        decision = run.engine.decide(run.store, event)
        run.store.apply(decision.writes)
        tally.add(decision, Overlay(run.store), "acme")
    report = tally.to_json()
    assert (report["handoffs"], report["unassigned"]) == (1, 1)
    assert report["by_assignee"] == {"(unassigned)": 1}
    assert report["later_assignments"] == {"queue": 1}
