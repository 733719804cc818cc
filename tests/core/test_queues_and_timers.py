"""Queues and timers in the core (contract v1.1): the queue, pickup timeouts, users going
away, releases, place-in-line messages and language routing, all decided from the log."""

from __future__ import annotations

from typing import Any

from handoff.core.state import AgentState, ConversationState, QueueState, WaitingState
from handoff.core.store import Table, queue_key
from tests import builders as b
from tests.core.harness import Run
from tests.core.test_routing import OFFICE, who
from tests.core.test_triggers_and_process import ADMIN, configured


def live(users: tuple[str, ...] = ("u-1", "u-2"), **extra: Any) -> dict[str, Any]:
    assignees = [{"type": "user", "id": u} for u in users]
    return {"process": "live", "custom_triggers": ["refund"],
            "routing": {"mode": "direct", "destination": "support", "assignees": assignees},
            **extra}


def ask(run: Run, n: int, start: int = 0, seconds: float = 0.0) -> list[dict[str, Any]]:
    """`n` visitors ask for a refund, one second apart from `seconds` on."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(start, start + n):
        out += run.feed(b.chat(f"m-{i}", "refund", conversation=f"c-{i}",
                               at=b.at(seconds + i - start)))
    return run.topic("assignments", out)


def conv(run: Run, cid: str) -> ConversationState:
    state = run.state(Table.CONVERSATIONS, cid)
    assert isinstance(state, ConversationState)
    return state


def queued(run: Run, inbox: str = "support") -> tuple[str, ...]:
    state = run.state(Table.QUEUES, queue_key("acme", inbox))
    return state.waiting if isinstance(state, QueueState) else ()


def waiting(run: Run) -> WaitingState | None:
    state = run.state(Table.WAITING, "acme")
    assert state is None or isinstance(state, WaitingState)
    return state


def test_a_queued_visitor_is_assigned_when_a_user_comes_back() -> None:
    run = configured(live(assign_when_available=True), b.user("u-1"), b.user("u-2"),
                     b.presence("u-1", "offline"), b.presence("u-2", "offline"))
    assert who(ask(run, 2)) == [None, None]
    assert queued(run) == ("c-0", "c-1")
    out = run.feed(b.presence("u-2", at=b.at(30), max_open=1))
    got = run.topic("assignments", out)
    assert who(got) == ["u-2"]  # the oldest first; u-2 is then full
    assert got[0]["conversation_id"] == "c-0" and got[0]["reason"] == "queue"
    assert got[0]["waited_s"] == 30.0 and got[0]["rule"].startswith("From the queue: 30 s")
    assert [(s["conversation_id"], s["view"]) for s in run.topic("conversation.status", out)] \
        == [("c-0", "assigned")]
    assert [m["kind"] for m in run.topic("chat.outbound", out)] == ["handoff_available"]
    assert queued(run) == ("c-1",)
    # A close frees u-2's capacity: the next in line gets it at once.
    got = run.topic("assignments", run.feed(b.update("x-0", "close", conversation="c-0",
                                                     at=b.at(50))))
    assert [(a["conversation_id"], a["reason"], a["waited_s"]) for a in got] \
        == [("c-1", "queue", 49.0)]
    assert queued(run) == () and waiting(run) is None  # nothing waits: no ticks for acme


def test_without_assign_when_available_nothing_waits() -> None:
    run = configured(live(("u-1",)), b.user("u-1"), b.presence("u-1", "offline"))
    assert who(ask(run, 1)) == [None]
    assert queued(run) == () and waiting(run) is None
    assert run.topic("assignments", run.feed(b.presence("u-1", at=b.at(5)))) == []


def test_the_queue_is_served_in_handoff_order() -> None:
    run = configured(live(("u-1",), assign_when_available=True), b.user("u-1"),
                     b.presence("u-1", "offline"))
    ask(run, 4)
    run.feed(b.presence("u-1", at=b.at(10), max_open=1))
    order = [conv(run, f"c-{i}").assignee for i in range(4)]
    assert [a.id if a else None for a in order] == ["u-1", None, None, None]
    for i in range(3):
        run.feed(b.update(f"x-{i}", "close", conversation=f"c-{i}", at=b.at(20 + i)))
        assert conv(run, f"c-{i + 1}").assignee is not None
        assert queued(run) == tuple(f"c-{j}" for j in range(i + 2, 4))


def test_business_hours_opening_assigns_on_the_next_tick() -> None:
    # 06:30 in Oslo: the team is closed until 08:00 (07:00 UTC).
    early = "2026-11-26T05:30:00Z"
    run = configured({**live(assign_when_available=True),
                      "routing": {"mode": "direct", "destination": "support",
                                  "assignees": [{"type": "team", "id": "t-1"}]}},
                     b.team("t-1", hours=OFFICE), b.user("u-1", teams=("t-1",)),
                     b.presence("u-1"))
    run.feed(b.chat("m-0", "refund", conversation="c-0", at=early))
    assert queued(run) == ("c-0",)
    assert run.topic("assignments", run.feed(b.tick("2026-11-26T06:59:59Z"))) == []
    got = run.topic("assignments", run.feed(b.tick("2026-11-26T07:00:01Z")))
    assert who(got) == ["u-1"] and got[0]["reason"] == "queue"


def test_a_pickup_timeout_moves_the_conversation_and_frees_capacity() -> None:
    run = configured(live(pickup_timeout_s=30), b.user("u-1"), b.user("u-2"),
                     b.presence("u-1", max_open=1), b.presence("u-2"))
    assert who(ask(run, 1)) == ["u-1"]
    pickups = waiting(run)
    assert pickups is not None and pickups.pickups == ("c-0",)
    assert run.topic("assignments", run.feed(b.tick(b.at(29)))) == []
    got = run.topic("assignments", run.feed(b.tick(b.at(30))))
    assert who(got) == ["u-2"] and got[0]["reason"] == "pickup_timeout"
    assert "did not accept it within 30 s" in got[0]["rule"]
    agent = run.state(Table.AGENTS, "u-1")
    assert isinstance(agent, AgentState) and agent.open_conversations == ()
    # u-2 accepts: the timer stops, and later ticks move nothing.
    run.feed(b.update("acc-1", "accept", conversation="c-0", at=b.at(40), actor="u-2"))
    assert waiting(run) is None
    assert run.topic("assignments", run.feed(b.tick(b.at(100)))) == []


def test_a_timed_out_conversation_goes_to_the_queue_when_nobody_else_is_free() -> None:
    run = configured(live(pickup_timeout_s=30, assign_when_available=True), b.user("u-1"),
                     b.user("u-2"), b.presence("u-1"))
    ask(run, 1)
    out = run.feed(b.tick(b.at(31)))
    got = run.topic("assignments", out)
    # u-1 let it time out, so it is not offered to u-1 again: unassigned, in the queue.
    assert who(got) == [None] and got[0]["reason"] == "pickup_timeout"
    assert "u-1: declined this conversation" in " ".join(got[0]["candidates"])
    assert [s["view"] for s in run.topic("conversation.status", out)] == ["unassigned"]
    assert queued(run) == ("c-0",)
    run.feed(b.user("u-2"), b.presence("u-2", at=b.at(40)))
    assert conv(run, "c-0").assignee is not None and queued(run) == ()


def test_accept_from_another_user_does_not_stop_the_timer() -> None:
    run = configured(live(pickup_timeout_s=30), b.user("u-1"), b.user("u-2"),
                     b.presence("u-1"), b.presence("u-2"))
    ask(run, 1)
    run.feed(b.update("acc-x", "accept", conversation="c-0", at=b.at(5), actor="u-2"))
    assert not conv(run, "c-0").accepted
    assert who(run.topic("assignments", run.feed(b.tick(b.at(30))))) == ["u-2"]


def test_release_routes_again_at_once() -> None:
    run = configured(live(), b.user("u-1"), b.user("u-2"), b.presence("u-1"), b.presence("u-2"))
    ask(run, 1)
    got = run.topic("assignments", run.feed(
        b.update("rel-1", "release", conversation="c-0", at=b.at(3), actor="u-1")))
    assert who(got) == ["u-2"] and got[0]["reason"] == "released"
    assert conv(run, "c-0").declined == ("u-1",)


def test_going_away_reroutes_only_conversations_not_yet_accepted() -> None:
    run = configured(live(), b.user("u-1"), b.user("u-2"), b.presence("u-1"),
                     b.presence("u-2", "offline"))
    ask(run, 2)
    run.feed(b.update("acc-0", "accept", conversation="c-0", at=b.at(2), actor="u-1"))
    run.feed(b.presence("u-2", at=b.at(3)))
    got = run.topic("assignments", run.feed(b.presence("u-1", "away", at=b.at(4))))
    assert [(a["conversation_id"], a["reason"]) for a in got] == [("c-1", "agent_unavailable")]
    assert who(got) == ["u-2"] and "went away before accepting it" in got[0]["rule"]
    assert conv(run, "c-0").assignee is not None and conv(run, "c-0").assignee.id == "u-1"


def test_queue_position_is_told_on_entry_and_when_it_changes_without_a_made_up_wait() -> None:
    text = "You are number {position} in line, about {wait_minutes} minutes to wait."
    run = configured(live(("u-1",), assign_when_available=True, queue_update_s=60,
                          messages={"queue_position": text}),
                     b.user("u-1"), b.presence("u-1", "offline"))
    ask(run, 3)
    told = [(m["conversation_id"], m["text"]) for m in run.topic("chat.outbound")
            if m["kind"] == "handoff_queue_position"]
    assert told == [(f"c-{i}", f"You are number {i + 1} in line.") for i in range(3)]
    run.feed(b.presence("u-1", at=b.at(30), max_open=1))  # c-0 is taken
    # 30 s after they were told: too soon (queue_update_s 60) to tell them again.
    assert run.topic("chat.outbound", run.feed(b.tick(b.at(31)))) == []
    out = run.feed(b.tick(b.at(62)))
    # One pickup so far: no estimate yet, so the wait clause is left out.
    assert [(m["conversation_id"], m["text"]) for m in run.topic("chat.outbound", out)] == [
        ("c-1", "You are number 1 in line."), ("c-2", "You are number 2 in line.")]
    run.feed(b.update("x-0", "close", conversation="c-0", at=b.at(90)))  # c-1 taken at 90
    run.feed(b.update("x-1", "close", conversation="c-1", at=b.at(150)))  # c-2 taken
    ask(run, 1, start=3, seconds=160)
    entry = [m["text"] for m in run.topic("chat.outbound") if m["conversation_id"] == "c-3"]
    # Pickups at 30, 90 and 150 s: one every minute, so the one in line waits about 1 minute.
    assert entry[-1] == "You are number 1 in line, about 1 minutes to wait."


def test_a_norwegian_conversation_goes_to_the_norwegian_speaking_user_first() -> None:
    routing = {"prefer": True, "fallback_after_s": 60}
    run = configured(live(language_routing=routing, assign_when_available=True),
                     b.user("u-1", languages=("en",)), b.user("u-2", languages=("no", "en")),
                     b.presence("u-1"), b.presence("u-2"))
    out = run.feed(b.chat("m-0", "refund", conversation="c-0", language="nb"))
    got = run.topic("assignments", out)
    assert who(got) == ["u-2"] and "speaks Norwegian" in got[0]["rule"]
    # With the speaker away the next one waits for them, then anyone after the fallback.
    run.feed(b.update("acc-0", "accept", conversation="c-0", actor="u-2"))
    run.feed(b.presence("u-2", "away", at=b.at(1)))
    run.feed(b.chat("m-1", "refund", conversation="c-1", language="nb-NO", at=b.at(2)))
    assert queued(run) == ("c-1",)
    assert run.topic("assignments", run.feed(b.tick(b.at(61)))) == []
    got = run.topic("assignments", run.feed(b.tick(b.at(62))))
    assert who(got) == ["u-1"] and "nobody speaking Norwegian is available" in got[0]["rule"]


def test_language_preference_without_a_queue_takes_anyone_available() -> None:
    run = configured(live(language_routing={"prefer": True}), b.user("u-1", languages=("en",)),
                     b.user("u-2", languages=("sv",)), b.presence("u-1"),
                     b.presence("u-2", "offline"))
    got = run.topic("assignments", run.feed(b.chat("m-0", "refund", language="sv")))
    assert who(got) == ["u-1"]


def test_queue_settings_are_checked() -> None:
    run = Run()
    run.feed(b.inbox("support"), ADMIN)
    bad = [
        {"pickup_timeout_s": 5},
        {"queue_update_s": 1},
        {"messages": {"queue_position": "Please wait."}},
        {"messages": {"queue_position": "You are {position} ({eta})."}},
    ]
    for i, cfg in enumerate(bad):
        change = run.topic("handoff.config.changes", run.feed(b.config(f"bad-{i}", cfg)))
        assert change[0]["accepted"] is False, cfg
    assert "{position}" in run.topic("handoff.config.changes")[2]["reason"]
    assert "{eta}" in run.topic("handoff.config.changes")[3]["reason"]
    good = run.feed(b.config("ok", {"pickup_timeout_s": 10, "assign_when_available": True,
                                    "messages": {"queue_position": "Number {position}."}}))
    assert run.topic("handoff.config.changes", good)[0]["accepted"] is True
