"""Every output record has its own event_id: consumers drop repeats by it."""

from __future__ import annotations

from handoff.core.state import ConversationState
from schemas.common import Channel
from tests.builders import chat, inbox, seq, user
from tests.core.harness import Run


def test_reopening_and_handing_off_with_one_message_gives_two_status_ids() -> None:
    run = Run()
    run.feed(chat("m1", "I want to talk to a human", conversation="c"))
    run.feed(seq("conversation.updates", "acme", {
        "event_id": "close-1", "conversation_id": "c", "account_id": "acme", "action": "close",
        "occurred_at": "2026-11-26T10:00:00Z"}))
    out = run.feed(chat("m2", "I want to talk to a human", conversation="c"))
    statuses = [v for t, _, v in out if t == "conversation.status"]
    assert [(s["status"], s["view"]) for s in statuses] == [("open", "bot"),
                                                           ("open", "unassigned")]
    assert len({s["event_id"] for s in statuses}) == 2
    ids = [(t, v["event_id"]) for t, _, v in run.log]
    assert len(ids) == len(set(ids))


def test_config_requests_sequenced_twice_make_no_new_versions() -> None:
    """Intake re-forwards what it had not committed when it crashed: A, B, then A, B again."""
    run = Run()
    run.feed(inbox("support"), user("ed", permissions=("customer_agent.edit",)))

    def request(event_id: str, phrase: str) -> object:
        return seq("handoff.config.requests", "acme", {
            "event_id": event_id, "account_id": "acme", "actor": "ed",
            "occurred_at": "2026-11-26T10:00:00Z", "config": {"custom_triggers": [phrase]}})

    first = run.feed(request("cfg-a", "refund"), request("cfg-b", "invoice"))
    again = run.feed(request("cfg-a", "refund"), request("cfg-b", "invoice"))
    assert [v["version"] for _, _, v in first] == [1, 2]
    assert again == []
    refused = run.feed(seq("handoff.config.requests", "acme", {
        "event_id": "cfg-x", "account_id": "acme", "actor": "nobody",
        "occurred_at": "2026-11-26T10:00:00Z", "config": {}}))
    assert [v["accepted"] for _, _, v in refused] == [False]
    assert run.feed(request("cfg-a", "refund")) == []
    out = run.feed(chat("m1", "I need an invoice", conversation="c-inv"))
    assert [v["config_version"] for t, _, v in out if t == "handoff.events"] == [2]


def test_evolve_copies_a_state_exactly_as_model_copy_does() -> None:
    before = ConversationState(conversation_id="c-1", account_id="acme", channel=Channel.CHAT,
                               recent_event_ids=("m-1",))
    update = {"language": "nb", "recent_event_ids": ("m-1", "m-2"), "handoffs": 2}
    fast, slow = before.evolve(update), before.model_copy(update=update)
    assert fast == slow and fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert before.language is None and before.recent_event_ids == ("m-1",)  # untouched
