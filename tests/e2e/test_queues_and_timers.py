"""Queues and timers through a real broker (contract v1.1): the worker's clock re-routes an
assignment nobody accepted, a queued visitor is assigned when a user comes back, and replay of
the account log reproduces every record, the timeout's included, byte for byte."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from handoff.cli import main
from schemas.topics import Topic
from tests.e2e.test_replay_audit import OUTPUTS, _raw, by_key
from tests.e2e.test_scenarios import HUMAN, Account, editor
from tests.kafka_support import Deployment

pytestmark = pytest.mark.kafka

QUEUE_TEXT = "You are number {position} in line, about {wait_minutes} minutes to wait."


def now(seconds: float = 0.0) -> str:
    """Wall-clock time: pickup timeouts are measured against the worker's clock."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def presence(a: Account, user: str, status: str) -> None:
    a.send(Topic.AGENT_PRESENCE, {"event_id": a(f"p-{user}-{status}-{a.sent.total()}"),
                                  "user_id": a(user), "status": status, "occurred_at": now(),
                                  "max_open_conversations": None})


def assignments(a: Account, want: int) -> list[dict[str, Any]]:
    """This account's assignments once at least `want` are out (the clock may be needed)."""
    def mine(records: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        return [v for _, v in records if v["account_id"] == a.id]

    got = a.dep.read([Topic.ASSIGNMENTS], until=lambda r: len(mine(r)) >= want, timeout=60)
    return mine(got)


def test_timeout_queue_and_pickup_decided_from_the_clock_and_replayed(
        deployment: Deployment) -> None:
    a = Account(deployment, "queues")
    users = [{**a.user("u1", "Ada"), "languages": ["en"]},
             {**a.user("u2", "Bo"), "languages": ["nb", "en"]}]
    a.directory(a.inbox("support"), *users, editor(a))
    presence(a, "u1", "available")
    presence(a, "u2", "offline")
    a.configure("cfg-1", a("editor"), {
        "process": "live", "pickup_timeout_s": 10, "assign_when_available": True,
        "queue_update_s": 10, "messages": {"queue_position": QUEUE_TEXT},
        "routing": {"mode": "direct", "destination": a("support"),
                    "assignees": [{"type": "user", "id": a("u1")}, {"type": "user", "id": a("u2")}]}})
    a.chat(a.msg("m-1", HUMAN, "c1", at=now()))
    first = assignments(a, 1)
    assert [x["assignee"]["id"] for x in first] == [a("u1")]
    # Ada never accepts: within about 10 s and one tick the worker's clock moves it on, and
    # with Bo offline (and Ada declined) the visitor waits in the queue.
    timed_out = assignments(a, 2)[1]
    assert timed_out["reason"] == "pickup_timeout" and timed_out["assignee"] is None
    assert "did not accept it within 10 s" in timed_out["rule"]
    presence(a, "u2", "available")
    taken = assignments(a, 3)[2]
    assert taken["reason"] == "queue" and taken["assignee"] == {"type": "user", "id": a("u2")}
    assert taken["waited_s"] is not None and taken["waited_s"] >= 0
    a.send(Topic.CONVERSATION_UPDATES, {
        "event_id": a("acc-1"), "conversation_id": a("c1"), "account_id": a.id,
        "action": "accept", "occurred_at": now(), "actor": a("u2")})

    out = a.outputs()
    assert [x["reason"] for x in out["assignments"]] == ["handoff", "pickup_timeout", "queue"]
    assert [m["kind"] for m in out["chat.outbound"]] == [
        "handoff_available", "handoff_queue_position", "handoff_available"]
    # No pickup has been seen in this queue before: the wait clause is left out.
    assert out["chat.outbound"][1]["text"] == "You are number 1 in line."
    assert [s["view"] for s in out["conversation.status"]] == ["assigned", "unassigned",
                                                              "assigned"]

    env = {"KAFKA_BOOTSTRAP_SERVERS": deployment.settings.bootstrap_servers,
           "HANDOFF_TOPIC_PREFIX": deployment.prefix,
           "HANDOFF_PARTITIONS": str(deployment.settings.partitions)}
    prefix = deployment.prefix + "replay."
    result = CliRunner().invoke(main, ["replay", "--to-prefix", prefix], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    live = asyncio.run(_raw(deployment.settings, {deployment.settings.topic(t): t.value
                                                  for t in OUTPUTS}))
    replayed = asyncio.run(_raw(deployment.settings, {f"{prefix}{t.value}": t.value
                                                      for t in OUTPUTS}))
    assert by_key(replayed) == by_key(live)
    assert any(b'"reason":"pickup_timeout"' in v for _, _, v in replayed)
