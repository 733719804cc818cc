"""Replay, audit and what-if without a broker: the bounded store, range parsing, the proposal."""

from __future__ import annotations

from typing import Any

import pytest

from handoff.core.state import AccountSettings
from handoff.core.store import MemoryStore, Table, Write
from handoff.history import ALL, LogRange, parse_offsets, parse_time
from handoff.replay import decide
from handoff.simulate import WhatIf
from handoff.spill import SpillStore
from schemas.codec import dumps
from schemas.settings import HandoffConfig
from tests import builders as b
from tests.core.harness import Run

WF = [{"when": {"channel": ["email"]}, "assign": {"rotate": ["u-1", "u-2"]}},
      {"when": {"trigger": ["custom_phrase"]}, "assign": {"team": "t-1"}},
      {"when": {}, "assign": {"user": "u-3"}}]


def mixed() -> list[Any]:
    """Directory, workflow, settings changed midway, presence changes, pause, updates."""
    return [
        b.inbox("support"), b.inbox("desk", "help_desk"), b.team("t-1"),
        b.user("u-1", teams=("t-1",)), b.user("u-2", teams=("t-1",)), b.user("u-3"),
        b.user("u-ed", permissions=("customer_agent.edit",)), b.workflow("wf", WF),
        b.presence("u-1"), b.presence("u-2"), b.presence("u-3"),
        b.config("cfg-1", {"custom_triggers": ["refund"], "routing": {
            "mode": "direct", "destination": "support",
            "assignees": [{"type": "team", "id": "t-1"}]}}, actor="u-ed"),
        *[b.chat(f"m-{i}", text, conversation=f"c-{i % 4}", channel=ch)
          for i, (text, ch) in enumerate([("hi", "chat"), ("refund", "chat"),
                                          ("talk to a human", "email"), ("ok", "sms")])],
        b.presence("u-1", "away"),
        b.config("cfg-2", {"custom_triggers": ["invoice"], "process": "live", "routing": {
            "mode": "workflow", "workflow_id": "wf", "destination": "desk"}}, actor="u-ed"),
        b.chat("m-10", "my invoice", conversation="c-10"),
        b.chat("m-11", "human please", conversation="c-11", channel="email"),
        b.update("u-close", "close", conversation="c-1"),
        b.chat("m-12", "refund again", conversation="c-1"),
        b.control("ctl-1", "pause"),
        b.chat("m-13", "anyone?", conversation="c-13"),
        b.update("u-back", "hand_back", conversation="c-11"),
    ]


def emitted(store: Any, events: list[Any]) -> list[bytes]:
    run = Run()
    out = []
    for event in events:
        decision = decide(run.engine, store, event)
        assert decision is not None
        out += [e.topic.value.encode() + b" " + dumps(e.value) for e in decision.emits]
    return out


def test_the_bounded_store_decides_byte_for_byte_like_the_dict_store() -> None:
    events = mixed()  # once: the builders number presence events, and ids reach outputs
    expected = emitted(MemoryStore(), events)
    with SpillStore(cache_entries=1) as spill:
        # One value in memory: nearly every read comes back from disk as a plain dict.
        assert emitted(spill, events) == expected
        assert spill.spilled > 0 or len(spill._evicted) > 0
    assert len(expected) > 20


def test_ranges_parse_and_refuse_what_makes_no_sense() -> None:
    assert parse_offsets(["0:10", "1:0"]) == {0: 10, 1: 0}
    assert parse_offsets(["42"]) == {ALL: 42}
    assert parse_time("2026-11-26T11:00:00+01:00").isoformat() == "2026-11-26T10:00:00+00:00"
    for bad in (["x"], ["0:-1"], ["a:1"]):
        with pytest.raises(ValueError):
            parse_offsets(bad)
    with pytest.raises(ValueError, match="UTC offset"):
        parse_time("2026-11-26T10:00:00")
    with pytest.raises(ValueError, match="not both"):
        LogRange(from_offsets={0: 1}, from_time=parse_time("2026-11-26T10:00:00Z"))
    with pytest.raises(ValueError, match="before the start"):
        LogRange(from_time=parse_time("2026-11-26T11:00:00Z"),
                 to_time=parse_time("2026-11-26T10:00:00Z"))
    assert LogRange().whole and LogRange().describe() == "the whole log"


def test_the_proposal_stays_in_force_over_recorded_config_requests() -> None:
    run = Run()
    with SpillStore() as base:
        proposal = HandoffConfig(custom_triggers=["zebra"])
        store = WhatIf(base, "acme", proposal)
        store.active = True
        for event in (b.user("u-ed", permissions=("customer_agent.edit",)),
                      b.config("cfg-1", {"custom_triggers": ["refund"]}, actor="u-ed")):
            decision = decide(run.engine, store, event)
            assert decision is not None
        recorded = base.get(Table.SETTINGS, "acme")
        assert isinstance(recorded, AccountSettings) and recorded.version == 1
        seen = store.get(Table.SETTINGS, "acme")
        assert isinstance(seen, AccountSettings)
        assert (seen.version, seen.config.custom_triggers) == (1, ["zebra"])
        refund = decide(run.engine, store, b.chat("m-1", "refund", conversation="c-1"))
        zebra = decide(run.engine, store, b.chat("m-2", "a zebra", conversation="c-2"))
        assert refund is not None and zebra is not None
        assert not refund.emits
        assert zebra.emits[0].topic.value == "handoff.events"


class _CountingDb:
    """Stands in for the spill store's SQLite connection and counts the statements."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.statements: list[str] = []

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql.split()[0])
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_the_bounded_store_asks_its_file_only_for_keys_it_wrote_there() -> None:
    with SpillStore(cache_entries=2) as spill:
        counting = _CountingDb(spill._db)
        spill._db = counting  # type: ignore[assignment]
        assert spill.get(Table.CONVERSATIONS, "never-written") is None
        assert counting.statements == []  # a new key: no lookup on disk
        spill.apply([Write(Table.ROTATIONS, f"r-{i}", i) for i in range(2_100)])
        assert spill.spilled > 0  # the first ones went to disk
        assert spill.get(Table.ROTATIONS, "r-0") == 0  # and come back from there
        assert counting.statements == ["SELECT"]
        spill.apply([Write(Table.ROTATIONS, "r-1", None)])
        assert spill.get(Table.ROTATIONS, "r-1") is None  # deleted on disk too
        assert counting.statements.count("DELETE") == 1
