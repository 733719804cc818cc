"""`state.build` makes the record validation would make, without validating."""

from __future__ import annotations

from datetime import UTC, datetime

from handoff.core.state import AccountState, ConversationState, build
from schemas.common import Channel, TriggerKind
from schemas.outputs import Assignment, Trigger
from schemas.settings import Assignee
from tests.core.harness import assert_valid

AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_build_equals_validated_construction_byte_for_byte() -> None:
    trigger = {"kind": TriggerKind.CUSTOM_PHRASE, "phrase": "refund", "message_event_id": "m-1"}
    values = {"event_id": "assignment-1", "conversation_id": "c-1", "ticket_id": None,
              "account_id": "acme", "inbox_id": "support", "mode": "live",
              "assignee": Assignee(type="user", id="u-1"), "rule": "why", "config_version": 3,
              "occurred_at": AT}
    # Given in another order than the fields: the JSON still follows the model's order.
    fast = build(Assignment, dict(reversed(values.items())))
    slow = Assignment(**values)
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert build(Trigger, trigger) == Trigger(**trigger)
    assert_valid(fast)


def test_build_gives_each_record_its_own_mutable_defaults() -> None:
    one, two = build(AccountState, {"account_id": "a"}), build(AccountState, {"account_id": "b"})
    assert one.users == {} and one.users is not two.users
    first = build(Assignment, {"event_id": "e", "conversation_id": "c", "ticket_id": None,
                               "account_id": "a", "inbox_id": None, "mode": "live",
                               "assignee": None, "rule": "r", "config_version": 0,
                               "occurred_at": AT})
    assert first.candidates == [] and first.reason == "handoff" and first.waited_s is None
    conv = build(ConversationState, {"conversation_id": "c", "account_id": "a",
                                     "channel": Channel.CHAT})
    assert conv == ConversationState(conversation_id="c", account_id="a", channel=Channel.CHAT)
