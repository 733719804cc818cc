"""Routing in the core: rotation, presence, capacity, business hours and workflows."""

from __future__ import annotations

from typing import Any

from handoff.core.state import AgentState
from handoff.core.store import Table
from tests import builders as b
from tests.core.harness import Run
from tests.core.test_triggers_and_process import configured

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
OFFICE = [{"days": WEEKDAYS, "start": "08:00", "end": "16:00"}]


def direct(process: str, assignees: list[dict[str, str]], destination: str = "support"
           ) -> dict[str, Any]:
    return {"process": process, "custom_triggers": ["refund"],
            "routing": {"mode": "direct", "destination": destination, "assignees": assignees}}


def handoffs(run: Run, n: int, start: int = 0, **kw: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        out += run.feed(b.chat(f"m-{i}", "refund", conversation=f"c-{i}", **kw))
    return run.topic("assignments", out)


def who(assignments: list[dict[str, Any]]) -> list[str | None]:
    return [a["assignee"]["id"] if a["assignee"] else None for a in assignments]


def test_live_rotation_skips_away_and_full_agents() -> None:
    run = configured(direct("live", [{"type": "user", "id": u} for u in ("u-1", "u-2", "u-3")]),
                     b.user("u-1"), b.user("u-2"), b.user("u-3"),
                     b.presence("u-1"), b.presence("u-2", "away"), b.presence("u-3", max_open=1))
    got = handoffs(run, 4)
    # u-2 is away; u-3 takes one and is then full, so u-1 takes the rest.
    assert who(got) == ["u-1", "u-3", "u-1", "u-1"]
    assert "u-2: away" in got[1]["candidates"]
    assert "passed over" in got[3]["rule"] and "capacity 1/1" in got[3]["rule"]
    assert run.topic("chat.outbound")[0]["kind"] == "handoff_available"
    state = run.state(Table.AGENTS, "u-3")
    assert isinstance(state, AgentState) and state.open_conversations == ("c-1",)


def test_closing_a_conversation_frees_capacity() -> None:
    run = configured(direct("live", [{"type": "user", "id": "u-1"}]), b.user("u-1"),
                     b.presence("u-1", max_open=1))
    assert who(handoffs(run, 2)) == ["u-1", None]
    run.feed(b.update("close-0", "close", conversation="c-0"))
    assert who(handoffs(run, 1, start=2)) == ["u-1"]


def test_live_with_nobody_available_is_unassigned_with_the_unavailable_message() -> None:
    run = configured(direct("live", [{"type": "user", "id": "u-1"}]), b.user("u-1"),
                     b.presence("u-1", "offline"))
    out = run.feed(b.chat("m-1", "refund"))
    assert run.topic("assignments", out)[0]["assignee"] is None
    assert run.topic("chat.outbound", out)[0]["kind"] == "handoff_unavailable"
    status = run.topic("conversation.status", out)[0]
    assert (status["status"], status["view"]) == ("open", "unassigned")


def test_team_members_rotate_only_inside_business_hours() -> None:
    run = configured(direct("live", [{"type": "team", "id": "t-1"}]),
                     b.team("t-1", hours=OFFICE), b.user("u-1", teams=("t-1",)),
                     b.user("u-2", teams=("t-1",)), b.presence("u-1"), b.presence("u-2"))
    # 10:00Z on a Thursday is 11:00 in Oslo: open.
    assert who(handoffs(run, 3)) == ["u-1", "u-2", "u-1"]
    # 15:30Z is 16:30 in Oslo: closed, and so unassigned.
    late = handoffs(run, 1, start=3, at="2026-11-26T15:30:00Z")
    assert who(late) == [None]
    assert "outside business hours" in " ".join(late[0]["candidates"])
    # Saturday: closed.
    assert who(handoffs(run, 1, start=4, at="2026-11-28T10:00:00Z")) == [None]


def test_async_rotates_configured_assignees_regardless_of_presence() -> None:
    run = configured(direct("async", [{"type": "user", "id": "u-1"},
                                      {"type": "team", "id": "t-1"}]),
                     b.team("t-1", hours=None), b.user("u-1"), b.user("u-2", teams=("t-1",)),
                     b.presence("u-1", "offline"), b.presence("u-2", "offline"))
    got = handoffs(run, 3)
    assert [(a["assignee"]["type"], a["assignee"]["id"]) for a in got] == [
        ("user", "u-1"), ("team", "t-1"), ("user", "u-1")]
    assert {a["mode"] for a in got} == {"async"}
    # Nobody is available, so the visitor is told the team is away.
    assert {m["kind"] for m in run.topic("chat.outbound")} == {"handoff_unavailable"}
    run.feed(b.presence("u-2", "available", at="2026-11-26T10:01:00Z"))
    handoffs(run, 1, start=3)
    assert run.topic("chat.outbound")[-1]["kind"] == "handoff_available"


def workflow_config(process: str = "live") -> dict[str, Any]:
    return {"process": process, "custom_triggers": ["refund", "invoice"],
            "routing": {"mode": "workflow", "workflow_id": "wf-reassign",
                        "destination": "helpdesk"}}


RULES = [
    {"when": {"channel": ["email"]}, "assign": {"rotate": ["u-1", "u-2"]}},
    {"when": {"channel": ["chat", "whatsapp"], "trigger": ["custom_phrase"],
              "phrase": ["Invoice"]}, "assign": {"team": "t-billing"}},
    {"when": {"trigger": ["human_requested"], "language": ["nb"]}, "assign": {"user": "u-4"}},
]


def workflow_run() -> Run:
    return configured(workflow_config(), b.workflow("wf-reassign", RULES),
                      b.team("t-billing"), b.user("u-1"), b.user("u-2"),
                      b.user("u-3", teams=("t-billing",)), b.user("u-4"), b.presence("u-3"))


def test_workflow_creates_a_ticket_and_the_first_matching_rule_assigns() -> None:
    run = workflow_run()
    out = run.feed(b.chat("m-1", "refund", channel="email", conversation="c-1"),
                   b.chat("m-2", "refund", channel="email", conversation="c-2"),
                   b.chat("m-3", "refund", channel="email", conversation="c-3"),
                   b.chat("m-4", "my invoice is wrong", conversation="c-4"),
                   b.chat("m-5", "kan jeg snakke med et menneske", language="nb",
                          conversation="c-5"))
    tickets = run.topic("tickets.created", out)
    assignments = run.topic("assignments", out)
    assert len(tickets) == 5 and {t["help_desk_id"] for t in tickets} == {"helpdesk"}
    assert [a["ticket_id"] for a in assignments] == [t["ticket_id"] for t in tickets]
    assert who(assignments) == ["u-1", "u-2", "u-1", "u-3", "u-4"]
    assert "rule 2" in assignments[3]["rule"] and "t-billing" in assignments[3]["rule"]
    assert {m["kind"] for m in run.topic("chat.outbound", out)} == {"handoff_available"}


def test_workflow_with_no_matching_rule_leaves_the_ticket_unassigned() -> None:
    run = workflow_run()
    out = run.feed(b.chat("m-1", "refund", channel="sms"))
    assignment = run.topic("assignments", out)[0]
    assert assignment["assignee"] is None and "no rule matched" in assignment["rule"]
    assert run.topic("chat.outbound", out)[0]["kind"] == "handoff_unassigned"


def test_workflow_team_rule_with_nobody_available_is_unassigned() -> None:
    run = workflow_run()
    run.feed(b.presence("u-3", "away", at="2026-11-26T10:05:00Z"))
    out = run.feed(b.chat("m-1", "invoice"))
    assert run.topic("assignments", out)[0]["assignee"] is None


def test_ticket_ids_are_deterministic_and_distinct() -> None:
    def tickets() -> list[str]:
        run = workflow_run()
        out = run.feed(b.chat("m-1", "refund", channel="email", conversation="c-1"),
                       b.chat("m-1", "refund", channel="email", conversation="c-2"))
        return [t["ticket_id"] for t in run.topic("tickets.created", out)]

    first = tickets()
    assert first == tickets() and len(set(first)) == 2


def test_default_destination_is_the_first_inbox_and_directory_removal_is_seen() -> None:
    run = Run()
    run.feed(b.inbox("first"), b.inbox("second"), b.removed("inbox:first"))
    out = run.feed(b.chat("m-1", "human please"))
    assert run.topic("assignments", out)[0]["inbox_id"] == "second"


def test_a_team_member_added_or_renamed_later_is_in_the_next_handoffs_pool() -> None:
    """Routing keeps pools per directory state: a directory change must give a new pool."""
    run = configured(direct("live", [{"type": "team", "id": "t-1"}]), b.team("t-1"),
                     b.user("u-1", teams=("t-1",)), b.presence("u-1", max_open=1))
    assert who(handoffs(run, 2)) == ["u-1", None]
    run.feed(b.user("u-2", teams=("t-1",), name="Kari"), b.presence("u-2"))
    later = handoffs(run, 1, start=2)
    assert who(later) == ["u-2"] and "Kari (u-2)" in later[0]["rule"]
    run.feed(b.user("u-2", teams=("t-1",), name="Kari N."))
    assert "Kari N. (u-2)" in handoffs(run, 1, start=3)[0]["rule"]
    run.feed(b.removed("user:u-2"))
    assert who(handoffs(run, 1, start=4)) == [None]
