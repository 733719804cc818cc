"""Intake as a pure step: what each input record leads to, and why, without a broker.

Expected forwards are built the way the Faust agent (agents/intake.py) built them: with the
Sequenced* models of schemas/internal.py, around the same origin and times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.codec import dumps
from schemas.inputs import (
    AgentControl,
    ChatMessage,
    ConfigRequest,
    ConversationUpdate,
    DirectoryInbox,
    DirectoryTeam,
    DirectoryUser,
    Presence,
    Workflow,
)
from schemas.internal import (
    Origin,
    PendingPresence,
    SequencedChat,
    SequencedConfigRequest,
    SequencedControl,
    SequencedConversationUpdate,
    SequencedDirectory,
    SequencedPresence,
    SequencedWorkflow,
    UserAccount,
)
from schemas.topics import INPUT_TOPICS, Topic
from steps.decide import parse
from steps.intake import (
    LOOKUP_VALUES,
    Forward,
    InputRecord,
    Intake,
    Lookup,
    LookupWrite,
    Send,
    intake,
)
from steps.validation import ACCOUNT_RECORDS, Limits, envelope
from tests.hostile import T0, Case, cases

LIMITS = Limits()
NOW = 1_795_000_000_000  # 2026-11-17, after every record time below
SENT = NOW - 5_000  # when the records below were produced
AT = datetime.fromtimestamp(SENT / 1000, tz=UTC)


class Lookups:
    """A dict-backed LookupReader that applies an answer's writes, as the loop's store does."""

    def __init__(self, data: dict[tuple[Lookup, str], object] | None = None) -> None:
        self.data: dict[tuple[Lookup, str], object] = dict(data or {})

    def get(self, lookup: Lookup, key: str) -> object | None:
        return self.data.get((lookup, key))

    def apply(self, writes: list[LookupWrite]) -> None:
        for w in writes:
            if w.value is None:
                self.data.pop((w.lookup, w.key), None)
            else:
                self.data[(w.lookup, w.key)] = w.value


def rec(topic: Topic, value: bytes | BaseModel | None, key: bytes | None = None, *,
        offset: int = 7, partition: int = 2, ts: int = SENT) -> InputRecord:
    body = dumps(value) if isinstance(value, BaseModel) else value
    return InputRecord(topic, partition, offset, ts, key, body)


def origin(topic: Topic, offset: int = 7, partition: int = 2) -> Origin:
    return Origin(topic=topic.value, partition=partition, offset=offset)


def only_forward(result: Intake) -> Forward:
    assert result.rejected is None, result.rejected
    assert len(result.forwards) == 1, result
    return result.forwards[0]


CHAT = ChatMessage.model_validate({
    "event_id": "m-1", "conversation_id": "c-1", "account_id": "acct-1", "channel": "chat",
    "sender": "visitor", "text": "hei", "sent_at": T0})
CONTROL = AgentControl.model_validate({"event_id": "k-1", "account_id": "acct-1",
                                       "action": "pause", "occurred_at": T0})
CONFIG = ConfigRequest.model_validate({"event_id": "r-1", "account_id": "acct-1",
                                       "actor": "u-admin", "occurred_at": T0, "config": {}})
UPDATE = ConversationUpdate.model_validate({"event_id": "x-1", "conversation_id": "c-1",
                                            "account_id": "acct-1", "action": "close",
                                            "occurred_at": T0})
USER = DirectoryUser(kind="user", id="u-7", account_id="acct-1", name="Kari", teams=["t-1"])
TEAM = DirectoryTeam(kind="team", id="t-1", account_id="acct-1")
INBOX = DirectoryInbox.model_validate({"kind": "inbox", "id": "i-1", "account_id": "acct-1",
                                       "type": "help_desk"})
WORKFLOW = Workflow.model_validate({"workflow_id": "w-1", "account_id": "acct-1",
                                    "rules": [{"assign": {"user": "u-7"}}]})


def presence(status: str = "available", event_id: str = "p-1") -> Presence:
    return Presence.model_validate({"event_id": event_id, "user_id": "u-7", "status": status,
                                    "occurred_at": T0})


# --- records that carry their account ----------------------------------------------------

@pytest.mark.parametrize("topic, record, sequenced", [
    (Topic.CHAT_MESSAGES, CHAT, SequencedChat),
    (Topic.AGENT_CONTROL, CONTROL, SequencedControl),
    (Topic.CONFIG_REQUESTS, CONFIG, SequencedConfigRequest),
    (Topic.CONVERSATION_UPDATES, UPDATE, SequencedConversationUpdate),
])
def test_a_record_with_its_account_is_forwarded_to_that_accounts_log(
        topic: Topic, record: BaseModel, sequenced: type[BaseModel]) -> None:
    result = intake(rec(topic, record, b"whatever"), Lookups(), LIMITS, NOW)
    expected = dumps(sequenced(source=topic.value, account_id="acct-1", origin=origin(topic),
                               record=record))
    assert only_forward(result) == Forward("acct-1", expected, SENT)
    assert result.sends == [] and result.writes == []
    assert result.why == f"{topic} record forwarded to acct-1's log"


@pytest.mark.parametrize("topic, raw", [
    (Topic.CHAT_MESSAGES, dumps(CHAT)),
    # Unknown fields, escapes, an offset folded to UTC, spacing: the event must still be what
    # parsing the forwarded bytes gives, not what re-encoding the model would give.
    (Topic.CHAT_MESSAGES, b'{ "event_id":"m-2","conversation_id":"c-1","account_id":"acct-1",'
                          b'"channel":"sms","sender":"visitor","text":"caf\\u00e9 \\ud83d\\ude00",'
                          b'"sent_at":"2026-11-26T12:00:00.5+02:00","extra":[1,{"x":null}],'
                          b'"answered":null,"language":"nb"}'),
    (Topic.AGENT_CONTROL, dumps(CONTROL)),
    (Topic.CONFIG_REQUESTS, dumps(CONFIG)),
    (Topic.CONVERSATION_UPDATES, dumps(UPDATE)),
])
def test_the_forwarded_event_is_what_the_decision_step_would_parse(topic: Topic, raw: bytes
                                                                    ) -> None:
    forward = only_forward(intake(rec(topic, raw), Lookups(), LIMITS, NOW))
    assert forward.event is not None
    parsed = parse(forward.value)
    assert forward.event == parsed
    assert type(forward.event) is type(parsed)
    assert dumps(forward.event) == dumps(parsed)


def test_the_original_bytes_are_forwarded_unknown_fields_and_spacing_included() -> None:
    raw = orjson.loads(dumps(CHAT)) | {"shoe_size": 44}
    value = b" " + orjson.dumps(raw) + b"\n"
    forward = only_forward(intake(rec(Topic.CHAT_MESSAGES, value), Lookups(), LIMITS, NOW))
    assert forward.value == (b'{"source":"chat.messages","account_id":"acct-1","origin":'
                             + dumps(origin(Topic.CHAT_MESSAGES)) + b',"record":' + value + b"}")
    assert SequencedChat.model_validate_json(forward.value).record == CHAT


@settings(max_examples=200, deadline=None)
@given(account_id=st.text(max_size=20), topic=st.text(max_size=20),
       partition=st.integers(min_value=0, max_value=2**31 - 1),
       offset=st.integers(min_value=0, max_value=2**63 - 1),
       source=st.sampled_from(sorted(ACCOUNT_RECORDS)))
def test_the_envelope_spells_its_origin_as_the_models_serializer_does(
        account_id: str, topic: str, partition: int, offset: int, source: Topic) -> None:
    # The envelope writes the origin's bytes itself: they must stay the serializer's, escapes
    # of odd topic names and 64-bit offsets included.
    at = Origin(topic=topic, partition=partition, offset=offset)
    assert envelope(source, account_id, at, b"{}") == (
        b'{"source":' + orjson.dumps(source.value) + b',"account_id":'
        + orjson.dumps(account_id) + b',"origin":' + dumps(at) + b',"record":{}}')


# --- refusals ------------------------------------------------------------------------------

def _bad(model: BaseModel, **change: Any) -> bytes:
    return orjson.dumps(orjson.loads(dumps(model)) | change)


@pytest.mark.parametrize("topic, value, field", [
    (Topic.CHAT_MESSAGES, _bad(CHAT, channel="pigeon"), "channel"),
    (Topic.AGENT_CONTROL, _bad(CONTROL, action="stop"), "action"),
    (Topic.CONFIG_REQUESTS, _bad(CONFIG, actor=""), "actor"),
    (Topic.CONVERSATION_UPDATES, _bad(UPDATE, occurred_at="yesterday"), "occurred_at"),
    (Topic.AGENT_PRESENCE, _bad(presence(), status="busy"), "status"),
    (Topic.DIRECTORY, _bad(USER, account_id=7), "account_id"),
    (Topic.WORKFLOWS, _bad(WORKFLOW, workflow_id=""), "workflow_id"),
    (Topic.USER_ACCOUNTS, b'{"account_id":"acct-1"}', "user_id"),
    (Topic.CHAT_MESSAGES, None, "no value"),
    (Topic.AGENT_PRESENCE, None, "no value"),
    (Topic.USER_ACCOUNTS, None, "no value"),
    (Topic.DIRECTORY, b"{not json", "JSON"),
])
def test_an_invalid_record_is_refused_with_its_field_and_nothing_else(
        topic: Topic, value: bytes | None, field: str) -> None:
    known = Lookups({(Lookup.USER_ACCOUNTS, "u-7"): "acct-1"})
    result = intake(rec(topic, value, b"user:u-7"), known, LIMITS, NOW)
    assert result.rejected is not None and field in result.rejected
    assert result.forwards == [] and result.sends == [] and result.writes == []
    assert result.why == f"{topic} record refused: {result.rejected}"


def test_a_record_over_the_size_limit_is_refused_by_size() -> None:
    result = intake(rec(Topic.CHAT_MESSAGES, CHAT), Lookups(), Limits(max_record_bytes=50), NOW)
    assert result.rejected is not None and "HANDOFF_MAX_RECORD_BYTES" in result.rejected
    assert result.forwards == []


def test_a_topic_intake_does_not_read_is_the_callers_mistake() -> None:
    with pytest.raises(ValueError, match=r"handoff\.account-events"):
        intake(rec(Topic.ACCOUNT_EVENTS, b"{}"), Lookups(), LIMITS, NOW)


# --- the directory -------------------------------------------------------------------------

def directory(record: Any, key: str, account: str = "acct-1", **where: Any) -> bytes:
    return dumps(SequencedDirectory(source="directory", account_id=account,
                                    origin=origin(Topic.DIRECTORY, **where), key=key,
                                    record=record, occurred_at=AT))


def test_a_user_entry_is_looked_up_mapped_for_presence_and_forwarded() -> None:
    # The record's own key is not trusted: the entry names itself.
    result = intake(rec(Topic.DIRECTORY, USER, b"stale"), Lookups(), LIMITS, NOW)
    assert result.writes == [LookupWrite(Lookup.DIRECTORY_ACCOUNTS, "user:u-7", "acct-1")]
    assert result.sends == [Send(Topic.USER_ACCOUNTS, b"u-7",
                                 dumps(UserAccount(user_id="u-7", account_id="acct-1")))]
    assert only_forward(result) == Forward("acct-1", directory(USER, "user:u-7"), SENT)
    assert result.why == ("directory user:u-7 forwarded to acct-1's log; "
                          "user u-7's mapping sent to handoff.user-accounts")


@pytest.mark.parametrize("entry, key", [(TEAM, "team:t-1"), (INBOX, "inbox:i-1")])
def test_team_and_inbox_entries_are_looked_up_and_forwarded_without_a_mapping(
        entry: BaseModel, key: str) -> None:
    result = intake(rec(Topic.DIRECTORY, entry, key.encode()), Lookups(), LIMITS, NOW)
    assert result.writes == [LookupWrite(Lookup.DIRECTORY_ACCOUNTS, key, "acct-1")]
    assert result.sends == []
    assert only_forward(result) == Forward("acct-1", directory(entry, key), SENT)
    assert result.why == f"directory {key} forwarded to acct-1's log"


def test_a_user_tombstone_removes_the_entry_and_maps_the_user_to_no_account() -> None:
    known = Lookups({(Lookup.DIRECTORY_ACCOUNTS, "user:u-7"): "acct-1"})
    result = intake(rec(Topic.DIRECTORY, None, b"user:u-7"), known, LIMITS, NOW)
    assert result.writes == [LookupWrite(Lookup.DIRECTORY_ACCOUNTS, "user:u-7", None)]
    assert result.sends == [Send(Topic.USER_ACCOUNTS, b"u-7",
                                 dumps(UserAccount(user_id="u-7", account_id=None)))]
    assert only_forward(result) == Forward("acct-1", directory(None, "user:u-7"), SENT)
    assert result.why.startswith("directory user:u-7 deleted: its removal forwarded to acct-1's")


def test_a_team_tombstone_removes_the_entry_without_a_mapping() -> None:
    known = Lookups({(Lookup.DIRECTORY_ACCOUNTS, "team:t-1"): "acct-2"})
    result = intake(rec(Topic.DIRECTORY, None, b"team:t-1"), known, LIMITS, NOW)
    assert result.writes == [LookupWrite(Lookup.DIRECTORY_ACCOUNTS, "team:t-1", None)]
    assert result.sends == []
    assert only_forward(result) == Forward("acct-2", directory(None, "team:t-1", "acct-2"), SENT)


@pytest.mark.parametrize("topic", [Topic.DIRECTORY, Topic.WORKFLOWS])
@pytest.mark.parametrize("key, why", [
    (b"user:u-404", "key user:u-404, never seen: nothing to remove"),
    (b"", "tombstone without a key: nothing to remove"),
    (None, "tombstone without a key: nothing to remove"),
])
def test_a_tombstone_for_a_key_never_seen_does_nothing(topic: Topic, key: bytes | None,
                                                       why: str) -> None:
    result = intake(rec(topic, None, key), Lookups(), LIMITS, NOW)
    assert result == Intake(why=result.why)
    assert result.why.endswith(why)


# --- workflows -----------------------------------------------------------------------------

def workflow(record: Workflow | None, account: str = "acct-1") -> bytes:
    return dumps(SequencedWorkflow(source="workflows", account_id=account,
                                   origin=origin(Topic.WORKFLOWS), workflow_id="w-1",
                                   record=record, occurred_at=AT))


def test_a_workflow_is_looked_up_and_forwarded() -> None:
    result = intake(rec(Topic.WORKFLOWS, WORKFLOW, b"w-1"), Lookups(), LIMITS, NOW)
    assert result.writes == [LookupWrite(Lookup.WORKFLOW_ACCOUNTS, "w-1", "acct-1")]
    assert result.sends == []
    assert only_forward(result) == Forward("acct-1", workflow(WORKFLOW), SENT)
    assert result.why == "workflow w-1 forwarded to acct-1's log"


def test_a_workflow_tombstone_forwards_its_removal_to_the_account_it_belonged_to() -> None:
    known = Lookups({(Lookup.WORKFLOW_ACCOUNTS, "w-1"): "acct-3"})
    result = intake(rec(Topic.WORKFLOWS, None, b"w-1"), known, LIMITS, NOW)
    assert result.writes == [LookupWrite(Lookup.WORKFLOW_ACCOUNTS, "w-1", None)]
    assert only_forward(result) == Forward("acct-3", workflow(None, "acct-3"), SENT)
    assert result.why == "workflow w-1 deleted: its removal forwarded to acct-3's log"


# --- presence ------------------------------------------------------------------------------

def sequenced_presence(record: Presence, offset: int = 7, account: str = "acct-1") -> bytes:
    return dumps(SequencedPresence(source="agent.presence", account_id=account,
                                   origin=origin(Topic.AGENT_PRESENCE, offset), record=record))


def test_a_known_users_presence_is_forwarded_at_the_time_it_was_produced() -> None:
    known = Lookups({(Lookup.USER_ACCOUNTS, "u-7"): "acct-1"})
    result = intake(rec(Topic.AGENT_PRESENCE, presence(), b"u-7"), known, LIMITS, NOW)
    assert only_forward(result) == Forward("acct-1", sequenced_presence(presence()), SENT)
    assert result.writes == [] and result.sends == []
    assert result.why == "presence of u-7 forwarded to acct-1's log"


def test_an_unknown_users_presence_waits_and_a_later_one_replaces_it() -> None:
    store = Lookups({(Lookup.DIRECTORY_ACCOUNTS, "user:u-7"): "acct-1"})  # not the mapping
    first = intake(rec(Topic.AGENT_PRESENCE, presence("away", "p-1"), offset=10, ts=SENT - 100),
                   store, LIMITS, NOW)
    assert first.forwards == [] and first.sends == []
    assert first.writes == [LookupWrite(Lookup.PENDING_PRESENCE, "u-7", PendingPresence(
        record=presence("away", "p-1"), origin=origin(Topic.AGENT_PRESENCE, 10),
        sent_ms=SENT - 100))]
    assert first.why == "presence of u-7 waits for its directory entry"
    store.apply(first.writes)

    second = intake(rec(Topic.AGENT_PRESENCE, presence("offline", "p-2"), offset=11), store,
                    LIMITS, NOW)
    assert second.forwards == []
    assert second.writes == [LookupWrite(Lookup.PENDING_PRESENCE, "u-7", PendingPresence(
        record=presence("offline", "p-2"), origin=origin(Topic.AGENT_PRESENCE, 11),
        sent_ms=SENT))]
    assert second.why == ("presence of u-7 waits for its directory entry "
                          "(replacing the one that waited)")


# --- the user mapping ----------------------------------------------------------------------

def mapping(account: str | None, offset: int = 30) -> InputRecord:
    return rec(Topic.USER_ACCOUNTS, UserAccount(user_id="u-7", account_id=account), b"u-7",
               offset=offset, ts=NOW - 10)


def test_the_mapping_forwards_the_waiting_presence_with_its_own_origin_and_time() -> None:
    waiting = PendingPresence(record=presence("away"), origin=origin(Topic.AGENT_PRESENCE, 3),
                              sent_ms=SENT - 2_000)
    store = Lookups({(Lookup.PENDING_PRESENCE, "u-7"): waiting})
    result = intake(mapping("acct-1"), store, LIMITS, NOW)
    assert result.writes == [LookupWrite(Lookup.USER_ACCOUNTS, "u-7", "acct-1"),
                             LookupWrite(Lookup.PENDING_PRESENCE, "u-7", None)]
    assert only_forward(result) == Forward(
        "acct-1", sequenced_presence(presence("away"), offset=3), SENT - 2_000)
    assert result.sends == []
    assert result.why == ("user u-7 belongs to acct-1: the presence that waited for it "
                          "forwarded to acct-1's log")


def test_a_waiting_presence_restored_as_a_plain_dict_is_forwarded_alike() -> None:
    waiting = PendingPresence(record=presence(), origin=origin(Topic.AGENT_PRESENCE, 3),
                              sent_ms=SENT)
    restored = orjson.loads(dumps(waiting))  # a changelog round trip
    assert isinstance(restored, dict)
    result = intake(mapping("acct-1"), Lookups({(Lookup.PENDING_PRESENCE, "u-7"): restored}),
                    LIMITS, NOW)
    assert only_forward(result) == Forward("acct-1", sequenced_presence(presence(), 3), SENT)


def test_a_mapping_with_nothing_waiting_only_records_the_account() -> None:
    result = intake(mapping("acct-1"), Lookups(), LIMITS, NOW)
    assert result == Intake(writes=[LookupWrite(Lookup.USER_ACCOUNTS, "u-7", "acct-1")],
                            why="user u-7 belongs to acct-1")


def test_a_mapping_to_no_account_removes_the_user_and_leaves_a_waiting_presence() -> None:
    waiting = PendingPresence(record=presence(), origin=origin(Topic.AGENT_PRESENCE),
                              sent_ms=SENT)
    store = Lookups({(Lookup.USER_ACCOUNTS, "u-7"): "acct-1",
                     (Lookup.PENDING_PRESENCE, "u-7"): waiting})
    result = intake(mapping(None), store, LIMITS, NOW)
    assert result == Intake(writes=[LookupWrite(Lookup.USER_ACCOUNTS, "u-7", None)],
                            why="user u-7 left the directory: removed from user-accounts")

    unknown = intake(mapping(None), Lookups(), LIMITS, NOW)
    assert unknown == Intake(why="user u-7 left the directory but was not mapped: "
                                 "nothing to remove")


def test_presence_before_its_directory_entry_reaches_the_log_once_the_mapping_is_read() -> None:
    """The whole path on one task: presence, directory entry, its mapping read back."""
    store = Lookups()
    steps = [rec(Topic.AGENT_PRESENCE, presence("away"), b"u-7", offset=1, ts=SENT - 50),
             rec(Topic.DIRECTORY, USER, b"user:u-7", offset=2, ts=SENT)]
    answers = []
    for record in steps:
        answers.append(intake(record, store, LIMITS, NOW))
        store.apply(answers[-1].writes)
    (send,) = answers[1].sends
    answers.append(intake(InputRecord(send.topic, 2, 5, SENT + 3, send.key, send.value), store,
                          LIMITS, NOW))
    store.apply(answers[-1].writes)
    forwarded = [f for a in answers for f in a.forwards]
    assert forwarded == [Forward("acct-1", directory(USER, "user:u-7", offset=2), SENT),
                         Forward("acct-1", sequenced_presence(presence("away"), 1), SENT - 50)]
    assert store.data == {(Lookup.DIRECTORY_ACCOUNTS, "user:u-7"): "acct-1",
                          (Lookup.USER_ACCOUNTS, "u-7"): "acct-1"}
    # The next presence goes straight through.
    later = intake(rec(Topic.AGENT_PRESENCE, presence("offline"), offset=9), store, LIMITS, NOW)
    assert only_forward(later).account_id == "acct-1"


# --- time ----------------------------------------------------------------------------------

FUTURE = NOW + 3_600_000


@pytest.mark.parametrize("topic, value", [
    (Topic.CHAT_MESSAGES, CHAT), (Topic.DIRECTORY, TEAM), (Topic.WORKFLOWS, WORKFLOW),
    (Topic.AGENT_PRESENCE, presence())])
def test_a_record_stamped_in_the_future_is_sequenced_now(topic: Topic, value: BaseModel) -> None:
    known = Lookups({(Lookup.USER_ACCOUNTS, "u-7"): "acct-1"})
    assert only_forward(intake(rec(topic, value, ts=FUTURE), known, LIMITS, NOW)).sequence_ms == NOW


def test_the_directory_keeps_the_records_own_time_even_in_the_future() -> None:
    forward = only_forward(intake(rec(Topic.DIRECTORY, TEAM, ts=FUTURE), Lookups(), LIMITS, NOW))
    occurred = SequencedDirectory.model_validate_json(forward.value).occurred_at
    assert occurred == datetime.fromtimestamp(FUTURE / 1000, tz=UTC)


def test_a_waiting_presence_stamped_in_the_future_is_sequenced_when_released() -> None:
    store = Lookups()
    store.apply(intake(rec(Topic.AGENT_PRESENCE, presence(), ts=FUTURE), store, LIMITS, NOW).writes)
    later = NOW + 60_000
    assert only_forward(intake(mapping("acct-1"), store, LIMITS, later)).sequence_ms == later


@pytest.mark.parametrize("ts", [253_402_300_799_000, -62_135_596_800_000, 2**63 - 1, -2**63])
@pytest.mark.parametrize("topic, value", [(Topic.DIRECTORY, TEAM), (Topic.WORKFLOWS, WORKFLOW)])
def test_a_stamp_no_timestamp_can_hold_counts_as_epoch(ts: int, topic: Topic, value: BaseModel
                                                       ) -> None:
    forward = only_forward(intake(rec(topic, value, ts=ts), Lookups(), LIMITS, NOW))
    assert orjson.loads(forward.value)["occurred_at"] == "1970-01-01T00:00:00Z"
    assert forward.sequence_ms == min(ts, NOW)


# --- words and types -----------------------------------------------------------------------

def test_ids_with_control_characters_are_quoted_in_the_reason() -> None:
    sneaky = CHAT.model_copy(update={"account_id": "acct\n-1 forwarded to evil"})
    result = intake(rec(Topic.CHAT_MESSAGES, sneaky), Lookups(), LIMITS, NOW)
    assert "\n" not in result.why
    assert repr("acct\n-1 forwarded to evil") in result.why


def test_every_lookup_has_a_value_type_that_round_trips() -> None:
    assert set(LOOKUP_VALUES) == set(Lookup)
    waiting = PendingPresence(record=presence(), origin=origin(Topic.AGENT_PRESENCE),
                              sent_ms=SENT)
    pending = LOOKUP_VALUES[Lookup.PENDING_PRESENCE]
    assert issubclass(pending, BaseModel)
    assert pending.model_validate_json(dumps(waiting)) == waiting
    assert {LOOKUP_VALUES[lk] for lk in Lookup if lk is not Lookup.PENDING_PRESENCE} == {str}


@given(data=st.data(), raw=st.lists(st.tuples(st.sampled_from([*INPUT_TOPICS,
                                                               Topic.USER_ACCOUNTS]),
                                              st.none() | st.binary(max_size=80),
                                              st.none() | st.binary(max_size=12)), max_size=3),
       ts=st.integers(-2**63, 2**63 - 1))
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_intake_never_raises_and_refuses_exactly_what_validation_refuses(
        data: st.DataObject, raw: list[tuple[Topic, bytes | None, bytes | None]], ts: int) -> None:
    store = Lookups()
    drawn: list[Case] = [data.draw(cases(n, huge=False)) for n in range(4)]
    # (topic, value, key, whether the contract accepts it; None: unknown, random bytes)
    records: list[tuple[Topic, bytes | None, bytes | None, bool | None]] = [
        (c.topic, c.value, c.key, c.valid) for c in drawn]
    records += [(topic, value, key, None) for topic, value, key in raw]
    for n, (topic, value, key, valid) in enumerate(records):
        result = intake(InputRecord(topic, 0, n, ts, key, value), store, LIMITS, NOW)
        assert result.why
        if result.rejected is not None:
            assert valid is not True
            assert result == Intake(rejected=result.rejected, why=result.why)
        else:
            assert valid is not False
            for forward in result.forwards:
                assert forward.sequence_ms <= NOW and orjson.loads(forward.value)
        store.apply(result.writes)
