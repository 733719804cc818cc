"""The intake's validation step as a pure function, over hypothesis-generated hostile input.

No broker: `validate_record` is what the intake agent calls for every input record, and the
core is what the decision agent calls for every accepted one. Together they must never raise,
whatever the bytes, and a dead letter must always fit the broker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter

from schemas.codec import dumps
from schemas.inputs import DirectoryUser, Presence
from schemas.internal import (
    AccountEvent,
    Origin,
    SequencedDirectory,
    SequencedPresence,
    SequencedWorkflow,
)
from schemas.outputs import DeadLetter
from schemas.topics import INPUT_TOPICS, Topic
from steps.deadletter import dead_letter, record_time
from steps.validation import Limits, Rejected, envelope, json_depth_over, validate_record
from streams.task import store_codec
from tests.core.harness import Run
from tests.hostile import (
    HUMAN_REQUEST,
    INVALID_KINDS,
    T0,
    VALID_KINDS,
    Case,
    cases,
    hostile_id,
    invalid_records,
    valid_records,
)

LIMITS = Limits()
_account_event: TypeAdapter[Any] = TypeAdapter(AccountEvent)
ORIGIN = Origin(topic="t", partition=0, offset=0)

fast = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def sequenced(case_topic: Topic, record: Any) -> bytes:
    """What intake forwards to the account log for an accepted record (same construction)."""
    if case_topic is Topic.DIRECTORY:
        return dumps(SequencedDirectory(source="directory", account_id=record.account_id,
                                        origin=ORIGIN, key=f"{record.kind}:{record.id}",
                                        record=record, occurred_at=datetime.now(UTC)))
    if case_topic is Topic.WORKFLOWS:
        return dumps(SequencedWorkflow(source="workflows", account_id=record.account_id,
                                       origin=ORIGIN, workflow_id=record.workflow_id,
                                       record=record, occurred_at=datetime.now(UTC)))
    if case_topic is Topic.AGENT_PRESENCE:
        return dumps(SequencedPresence(source="agent.presence", account_id="acct",
                                       origin=ORIGIN, record=record))
    raise AssertionError(case_topic)


def decide_all(run: Run, body: bytes) -> None:
    """The decision agent's path: parse the log record, decide, serialise every output/write."""
    event = _account_event.validate_json(body, strict=True)
    decision = run.engine.decide(run.store, event)
    ids = [(emit.topic, emit.value.event_id) for emit in decision.emits]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids)), ids  # consumers drop repeats by event_id
    for emit in decision.emits:
        # Every output is JSON any reader can load.
        run.log.append((str(emit.topic), emit.key, orjson.loads(dumps(emit.value))))
    for write in decision.writes:
        if write.value is None:
            continue
        # The store codec round trip: what a restarted worker restores from the changelog.
        codec = store_codec(write.table.value)
        assert codec.decode(codec.encode(write.value)) == write.value
    run.store.apply(decision.writes)


@given(topic=st.sampled_from(INPUT_TOPICS), value=st.one_of(st.none(), st.binary(max_size=300)))
@fast
def test_any_bytes_give_a_record_or_a_reason(topic: Topic, value: bytes | None) -> None:
    result = validate_record(topic, value, LIMITS)
    if isinstance(result, Rejected):
        assert str(result)
    else:  # random bytes almost never form a record; when they do it is a model
        assert isinstance(result, BaseModel)


@pytest.mark.parametrize("kind", INVALID_KINDS)
@given(data=st.data())
@settings(fast, max_examples=25)
def test_every_kind_of_invalid_record_is_refused_with_a_reason(kind: str, data: st.DataObject
                                                               ) -> None:
    case: Case = data.draw(invalid_records(0, kind))
    result = validate_record(case.topic, case.value, LIMITS)
    assert isinstance(result, Rejected), (case.kind, case.value)
    assert str(result).strip(), case.kind


@pytest.mark.parametrize("kind", VALID_KINDS)
@given(data=st.data())
@settings(fast, max_examples=25)
def test_every_kind_of_valid_record_is_accepted(kind: str, data: st.DataObject) -> None:
    case: Case = data.draw(valid_records(0, kind))
    result = validate_record(case.topic, case.value, LIMITS)
    assert not isinstance(result, Rejected), (case.kind, str(result), case.value)


@given(data=st.data())
@settings(fast, max_examples=300)
def test_accepted_records_go_through_the_core_and_back_out(data: st.DataObject) -> None:
    """Whatever intake accepts, the core decides without raising, and every output and table
    write serialises and restores (no integer too large, no unencodable text)."""
    run = Run()
    for n in range(3):
        case: Case = data.draw(cases(n, huge=False))
        record = validate_record(case.topic, case.value, LIMITS)
        if isinstance(record, Rejected):
            continue
        if case.topic in (Topic.DIRECTORY, Topic.WORKFLOWS, Topic.AGENT_PRESENCE):
            decide_all(run, sequenced(case.topic, record))
        else:
            assert case.value is not None
            decide_all(run, envelope(case.topic, record.account_id, ORIGIN, case.value))
        if case.handoff is not None:
            handoffs = run.topic("handoff.events")
            assert handoffs[-1]["conversation_id"] == case.handoff[0]
            assert handoffs[-1]["trigger"]["message_event_id"] == case.handoff[1]


@given(user=hostile_id, status=st.sampled_from(["available", "away", "offline"]),
       cap=st.none() | st.integers(0, 1_000_000))
@fast
def test_a_known_users_presence_with_awkward_ids_is_decided(user: str, status: str,
                                                            cap: int | None) -> None:
    run = Run()
    entry = DirectoryUser(kind="user", id=user, account_id="acct")
    decide_all(run, sequenced(Topic.DIRECTORY, entry))
    presence = validate_record(Topic.AGENT_PRESENCE, orjson.dumps(
        {"event_id": "p", "user_id": user, "status": status, "occurred_at": T0,
         "max_open_conversations": cap}), LIMITS)
    assert isinstance(presence, Presence)
    decide_all(run, sequenced(Topic.AGENT_PRESENCE, presence))


@given(data=st.data(), payload=st.integers(256, 4096))
@fast
def test_a_dead_letter_always_fits_and_says_when_it_was_cut(data: st.DataObject,
                                                            payload: int) -> None:
    case: Case = data.draw(invalid_records(n=0))
    reason = validate_record(case.topic, case.value, LIMITS)
    assert isinstance(reason, Rejected)
    letter = dead_letter(case.topic.value, 1, 2, 0.0, case.value, str(reason), payload)
    encoded = dumps(letter)
    # At most 6 bytes of JSON per byte kept (\u0000), plus the error (capped) and the fields.
    assert len(encoded) <= 6 * payload + 2 * 2_000 * 6 + 1_000
    back = DeadLetter.model_validate_json(encoded)
    size = len(case.value or b"")
    assert back.payload_bytes == size
    assert back.payload_truncated == (size > payload)
    if back.payload_encoding == "utf-8" and not back.payload_truncated:
        assert back.payload.encode() == (case.value or b"")


def test_a_megabyte_record_is_refused_by_size_and_its_dead_letter_stays_small() -> None:
    text = "\x00" * 1_000_000  # 6 MB once escaped in JSON
    value = orjson.dumps({"event_id": "e", "conversation_id": "c", "account_id": "a",
                          "channel": "chat", "sender": "visitor", "text": text, "sent_at": T0})
    reason = validate_record(Topic.CHAT_MESSAGES, value, LIMITS)
    assert isinstance(reason, Rejected) and "HANDOFF_MAX_RECORD_BYTES" in str(reason)
    letter = dumps(dead_letter("chat.messages", 0, 7, None, value, str(reason)))
    assert len(letter) < 1_000_000 // 2
    assert orjson.loads(letter)["payload_truncated"] is True


@pytest.mark.parametrize("value, over", [
    (b'{"a":[[[[1]]]]}', False),
    (b'{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', False),  # inside a string
    (b'{"a":"\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', False),  # escaped quote
    (b"[" * 40 + b"]" * 40, True),
    (b"[]" * 100, False),  # wide, not deep
])
def test_json_depth(value: bytes, over: bool) -> None:
    assert json_depth_over(value, 32) is over


@pytest.mark.parametrize("limits, value, why", [
    (Limits(max_text_chars=10), {"text": "x" * 11}, "HANDOFF_MAX_TEXT_CHARS"),
    (Limits(max_json_depth=4), {"extra": [[[[1]]]]}, "HANDOFF_MAX_JSON_DEPTH"),
    (Limits(max_record_bytes=1_024), {"text": "x" * 2_000}, "HANDOFF_MAX_RECORD_BYTES"),
])
def test_limits_are_settings_named_in_the_reason(limits: Limits, value: dict[str, Any],
                                                 why: str) -> None:
    record = {"event_id": "e", "conversation_id": "c", "account_id": "a", "channel": "chat",
              "sender": "visitor", "text": HUMAN_REQUEST, "sent_at": T0, **value}
    reason = validate_record(Topic.CHAT_MESSAGES, orjson.dumps(record), limits)
    assert isinstance(reason, Rejected) and why in str(reason)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                   "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_timestamps_at_the_calendars_ends_are_refused_not_raised(stamp: str) -> None:
    record = {"event_id": "e", "conversation_id": "c", "account_id": "a", "channel": "chat",
              "sender": "visitor", "text": "hi", "sent_at": stamp}
    reason = validate_record(Topic.CHAT_MESSAGES, orjson.dumps(record), LIMITS)
    assert isinstance(reason, Rejected) and "sent_at" in str(reason)


@pytest.mark.parametrize("stamp", [None, 0.0, -1.0, 2.0**62, -(2.0**62)])
def test_any_kafka_timestamp_is_a_time(stamp: float | None) -> None:
    assert record_time(stamp).tzinfo is UTC
