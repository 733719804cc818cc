"""Intake as a pure step: one input record in, what should happen to it out, and why.

The processing loop reads a record of one task (partition p of every input topic), calls
`intake` with that task's lookups and the time, and then does what the answer says: forward to
`handoff.account-events`, send the user mapping, write the lookups, or dead-letter the record.
Nothing here does I/O or reads a clock, so a test, a replay and the loop all decide alike, and
`Intake.why` tells an audit the reason without re-deriving it.

The behaviour is the former Faust intake's minus its cross-worker shortcut: a
presence whose user is not known yet waits until the user's mapping arrives on
`handoff.user-accounts`, which is co-partitioned with `agent.presence` and so read by the same
task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol, get_args

from pydantic import TypeAdapter, ValidationError

from handoff.core.state import build_whole
from schemas.codec import dumps
from schemas.common import Timestamp
from schemas.inputs import DirectoryEntry, Presence, Workflow
from schemas.internal import (
    AccountEvent,
    Origin,
    PendingPresence,
    SequencedDirectory,
    SequencedPresence,
    SequencedWorkflow,
    UserAccount,
)
from schemas.topics import Topic
from steps.deadletter import record_time
from steps.validation import ACCOUNT_RECORDS, Limits, Rejected, envelope, validate_record

__all__ = [
    "LOOKUP_VALUES",
    "Forward",
    "InputRecord",
    "Intake",
    "Lookup",
    "LookupReader",
    "LookupWrite",
    "Send",
    "intake",
    "sequence_ms",
]


class InputRecord(NamedTuple):
    """One Kafka record as read; `topic` is the contract's name, not the prefixed one."""

    # A named tuple, not a frozen dataclass: the loop makes two a message, and a frozen
    # dataclass sets each field through object.__setattr__ (three times the cost).
    topic: Topic
    partition: int
    offset: int
    timestamp_ms: int  # the record's Kafka timestamp
    key: bytes | None
    value: bytes | None


class Lookup(StrEnum):
    DIRECTORY_ACCOUNTS = "directory-accounts"  # "<kind>:<id>" -> account_id
    WORKFLOW_ACCOUNTS = "workflow-accounts"  # workflow_id -> account_id
    USER_ACCOUNTS = "user-accounts"  # user_id -> account_id
    PENDING_PRESENCE = "pending-presence"  # user_id -> PendingPresence


# The type of each lookup's values, for the loop's store codecs.
LOOKUP_VALUES: dict[Lookup, type[str] | type[PendingPresence]] = {
    Lookup.DIRECTORY_ACCOUNTS: str,
    Lookup.WORKFLOW_ACCOUNTS: str,
    Lookup.USER_ACCOUNTS: str,
    Lookup.PENDING_PRESENCE: PendingPresence,
}


class LookupReader(Protocol):
    """Read access to one task's lookups; `None` when the key was never written (or deleted)."""

    def get(self, lookup: Lookup, key: str) -> object | None: ...


# Not frozen: intake makes one a message, and a frozen dataclass sets each field through
# object.__setattr__; nothing keeps or hashes it after the runner applied it.
@dataclass(slots=True)
class Forward:
    """One record for the account log, keyed by `account_id`."""

    account_id: str
    value: bytes  # the sequenced envelope
    sequence_ms: int  # its time for the hold-back merge
    # The account event `value` parses to, when intake already holds its parts: the decision
    # step takes it instead of parsing the same bytes again (None: it parses them).
    event: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Send:
    """Any other record intake publishes (the user-accounts mapping)."""

    topic: Topic
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class LookupWrite:
    lookup: Lookup
    key: str
    value: str | PendingPresence | None  # None deletes the key


@dataclass(slots=True, kw_only=True)
class Intake:
    """What one input record leads to. `rejected` set means: dead-letter it, nothing else."""

    why: str
    forwards: list[Forward] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    writes: list[LookupWrite] = field(default_factory=list)
    rejected: str | None = None


_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)
# The account event model of each `source` whose envelope is `envelope`'s four fields, read off
# the union: a kind added to schemas/internal.py is covered, or (another shape) simply parsed.
_ENVELOPE_FIELDS = {"source", "account_id", "origin", "record"}
_SEQUENCED: dict[str, Any] = {
    get_args(model.model_fields["source"].annotation)[0]: model
    for model in get_args(get_args(AccountEvent)[0])
    if set(model.model_fields) == _ENVELOPE_FIELDS}
_EPOCH = datetime.fromtimestamp(0.0, tz=UTC)


def intake(record: InputRecord, lookups: LookupReader, limits: Limits, now_ms: int) -> Intake:
    """What to do with one input record of a task, given the task's lookups and the time."""
    topic = record.topic
    if topic in ACCOUNT_RECORDS:
        return _account_record(record, limits, now_ms)
    if topic is Topic.DIRECTORY:
        return _directory(record, lookups, limits, now_ms)
    if topic is Topic.WORKFLOWS:
        return _workflow(record, lookups, limits, now_ms)
    if topic is Topic.AGENT_PRESENCE:
        return _presence(record, lookups, limits, now_ms)
    if topic is Topic.USER_ACCOUNTS:
        return _user_account(record, lookups, limits, now_ms)
    # The loop subscribed to a topic intake does not read: its bug, not the record's.
    raise ValueError(f"intake does not read {topic}")


def sequence_ms(timestamp_ms: int, now_ms: int) -> int:
    """A record's time for the hold-back merge. A stamp in the future (a producer's clock
    ahead, or any 64-bit number a producer chose) counts as now: it would otherwise hold its
    partition until that time comes."""
    return min(timestamp_ms, now_ms)


def _account_record(record: InputRecord, limits: Limits, now_ms: int) -> Intake:
    parsed = validate_record(record.topic, record.value, limits)
    if isinstance(parsed, Rejected):
        return _refused(record, parsed)
    assert record.value is not None  # validate_record refuses a missing value
    account_id: str = parsed.account_id
    topic = record.topic
    origin = _origin(record)
    # The original bytes are forwarded inside the envelope, so nothing is re-encoded.
    body = envelope(topic, account_id, origin, record.value)
    return Intake(forwards=[Forward(account_id, body, sequence_ms(record.timestamp_ms, now_ms),
                                    _event(topic, account_id, origin, parsed))],
                  why=f"{topic} record forwarded to {_q(account_id)}'s log")


def _directory(record: InputRecord, lookups: LookupReader, limits: Limits, now_ms: int
               ) -> Intake:
    entry: DirectoryEntry | None = None
    writes: list[LookupWrite] = []
    if record.value is None:  # a tombstone: the entry was deleted
        key = _key(record)
        known = _account(lookups, Lookup.DIRECTORY_ACCOUNTS, key) if key else None
        if key is None or known is None:
            return Intake(why=_nothing_to_remove("directory", key))
        account_id = known
        writes.append(LookupWrite(Lookup.DIRECTORY_ACCOUNTS, key, None))
        why = f"directory {_q(key)} deleted: its removal forwarded to {_q(account_id)}'s log"
    else:
        parsed = validate_record(Topic.DIRECTORY, record.value, limits)
        if isinstance(parsed, Rejected):
            return _refused(record, parsed)
        entry = parsed
        # The entry names itself; the record's key is not trusted to match it.
        key = f"{parsed.kind}:{parsed.id}"
        account_id = parsed.account_id
        writes.append(LookupWrite(Lookup.DIRECTORY_ACCOUNTS, key, account_id))
        why = f"directory {_q(key)} forwarded to {_q(account_id)}'s log"
    sends: list[Send] = []
    kind, _, ident = key.partition(":")
    if kind == "user":
        # Presence carries no account: the mapping, keyed by user id, reaches the task that
        # reads the user's presence partition (also on a removal, so that task forgets it).
        mapping = UserAccount(user_id=ident, account_id=account_id if entry is not None else None)
        sends.append(Send(Topic.USER_ACCOUNTS, ident.encode(), dumps(mapping)))
        why += f"; user {_q(ident)}'s mapping sent to {Topic.USER_ACCOUNTS}"
    body = dumps(SequencedDirectory(
        source="directory", account_id=account_id, origin=_origin(record), key=key, record=entry,
        occurred_at=_occurred_at(record.timestamp_ms)))
    return Intake(forwards=[Forward(account_id, body, sequence_ms(record.timestamp_ms, now_ms))],
                  sends=sends, writes=writes, why=why)


def _workflow(record: InputRecord, lookups: LookupReader, limits: Limits, now_ms: int
              ) -> Intake:
    workflow: Workflow | None = None
    if record.value is None:
        key = _key(record)
        known = _account(lookups, Lookup.WORKFLOW_ACCOUNTS, key) if key else None
        if key is None or known is None:
            return Intake(why=_nothing_to_remove("workflow", key))
        workflow_id, account_id = key, known
        write = LookupWrite(Lookup.WORKFLOW_ACCOUNTS, workflow_id, None)
        why = f"workflow {_q(workflow_id)} deleted: its removal forwarded to {_q(account_id)}'s log"
    else:
        parsed = validate_record(Topic.WORKFLOWS, record.value, limits)
        if isinstance(parsed, Rejected):
            return _refused(record, parsed)
        workflow = parsed
        workflow_id, account_id = parsed.workflow_id, parsed.account_id
        write = LookupWrite(Lookup.WORKFLOW_ACCOUNTS, workflow_id, account_id)
        why = f"workflow {_q(workflow_id)} forwarded to {_q(account_id)}'s log"
    body = dumps(SequencedWorkflow(
        source="workflows", account_id=account_id, origin=_origin(record),
        workflow_id=workflow_id, record=workflow, occurred_at=_occurred_at(record.timestamp_ms)))
    return Intake(forwards=[Forward(account_id, body, sequence_ms(record.timestamp_ms, now_ms))],
                  writes=[write], why=why)


def _presence(record: InputRecord, lookups: LookupReader, limits: Limits, now_ms: int
              ) -> Intake:
    parsed = validate_record(Topic.AGENT_PRESENCE, record.value, limits)
    if isinstance(parsed, Rejected):
        return _refused(record, parsed)
    presence: Presence = parsed
    user = presence.user_id
    origin = _origin(record)
    # Falsy, not only None, as the old agent had it: an empty account is no account.
    account_id = _account(lookups, Lookup.USER_ACCOUNTS, user)
    if not account_id:
        # Not in the directory yet: keep the latest status until the user's mapping arrives.
        replaced = _pending(lookups, user) is not None
        waiting = PendingPresence(record=presence, origin=origin, sent_ms=record.timestamp_ms)
        return Intake(writes=[LookupWrite(Lookup.PENDING_PRESENCE, user, waiting)],
                      why=f"presence of {_q(user)} waits for its directory entry"
                          + (" (replacing the one that waited)" if replaced else ""))
    return Intake(forwards=[_presence_forward(account_id, presence, origin, record.timestamp_ms,
                                              now_ms)],
                  why=f"presence of {_q(user)} forwarded to {_q(account_id)}'s log")


def _user_account(record: InputRecord, lookups: LookupReader, limits: Limits, now_ms: int
                  ) -> Intake:
    parsed = validate_record(Topic.USER_ACCOUNTS, record.value, limits)
    if isinstance(parsed, Rejected):
        return _refused(record, parsed)
    mapping: UserAccount = parsed
    user, account_id = mapping.user_id, mapping.account_id
    if account_id is None:
        # The user left the directory. A presence still waiting keeps waiting (as before):
        # the user may come back, and then its latest status is the one to use.
        if _account(lookups, Lookup.USER_ACCOUNTS, user) is None:
            return Intake(why=f"user {_q(user)} left the directory but was not mapped: "
                              "nothing to remove")
        return Intake(writes=[LookupWrite(Lookup.USER_ACCOUNTS, user, None)],
                      why=f"user {_q(user)} left the directory: removed from {Lookup.USER_ACCOUNTS}")
    writes = [LookupWrite(Lookup.USER_ACCOUNTS, user, account_id)]
    why = f"user {_q(user)} belongs to {_q(account_id)}"
    waiting = _pending(lookups, user)
    if waiting is None:
        return Intake(writes=writes, why=why)
    writes.append(LookupWrite(Lookup.PENDING_PRESENCE, user, None))
    # Where and when the presence was produced, not this mapping: an audit points at the
    # presence, and it sorts before messages produced after it.
    forward = _presence_forward(account_id, waiting.record, waiting.origin, waiting.sent_ms,
                                now_ms)
    return Intake(forwards=[forward], writes=writes,
                  why=f"{why}: the presence that waited for it forwarded to {_q(account_id)}'s log")


def _presence_forward(account_id: str, presence: Presence, origin: Origin, sent_ms: int,
                      now_ms: int) -> Forward:
    # Sequenced at the time the presence record was produced (not its payload time, which
    # could lie in the future), so it sorts before messages produced after it.
    body = dumps(SequencedPresence(source="agent.presence", account_id=account_id, origin=origin,
                                   record=presence))
    return Forward(account_id, body, sequence_ms(sent_ms, now_ms))


def _event(source: Topic, account_id: str, origin: Origin, record: Any) -> Any:
    """The account event an envelope of these parts parses to: the inner record is the model
    validated from the very bytes the envelope carries, so nothing differs from a parse."""
    model = _SEQUENCED.get(source.value)
    if model is None:
        return None
    # Every part is already checked (the record validated, the origin Kafka's own numbers):
    # building skips a second validation on the hot path.
    return build_whole(model, {"source": source.value, "account_id": account_id,
                               "origin": origin, "record": record})


def _refused(record: InputRecord, rejected: Rejected) -> Intake:
    reason = str(rejected)
    return Intake(rejected=reason, why=f"{record.topic} record refused: {reason}")


def _nothing_to_remove(what: str, key: str | None) -> str:
    if key is None:
        return f"{what} tombstone without a key: nothing to remove"
    return f"tombstone for {what} key {_q(key)}, never seen: nothing to remove"


def _origin(record: InputRecord) -> Origin:
    # Kafka's own topic name and numbers: nothing to validate.
    return build_whole(Origin, {"topic": record.topic.value, "partition": record.partition,
                                "offset": record.offset})


def _key(record: InputRecord) -> str | None:
    # An empty key can name nothing that was stored; it is a key never seen.
    if not record.key:
        return None
    return record.key.decode("utf-8", "replace")


def _occurred_at(timestamp_ms: int) -> datetime:
    """The record's Kafka timestamp as the sequenced record's time; one outside the years a
    `Timestamp` holds counts as none (epoch), as an unrepresentable one already does."""
    at = record_time(timestamp_ms / 1000.0)
    try:
        return _TIMESTAMP.validate_python(at)
    except ValidationError:  # a producer may stamp year 9999: the record is still good
        return _EPOCH


def _account(lookups: LookupReader, lookup: Lookup, key: str) -> str | None:
    value = lookups.get(lookup, key)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{lookup}[{key!r}] holds a {type(value).__name__}, not an account id")


def _pending(lookups: LookupReader, user: str) -> PendingPresence | None:
    value = lookups.get(Lookup.PENDING_PRESENCE, user)
    # A value restored from a changelog may arrive as a plain dict; a live one is the model.
    if value is None or isinstance(value, PendingPresence):
        return value
    return PendingPresence.model_validate(value)


def _q(text: str) -> str:
    # Ids come from producers: quote one with control or invisible characters, so an audit
    # line cannot be forged or garbled by it.
    return text if text.isprintable() else repr(text)
