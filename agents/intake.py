"""Intake: validate every input record and sequence it into its account's decision log.

A record that cannot be read goes to `deadletter` with the reason, and the partition moves on.
A valid one is forwarded, keyed by account, to `handoff.account-events`: one ordered log per
account is what lets rotations, capacity and settings be decided in one place, and replayed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from faust.types import EventT
from pydantic import BaseModel, TypeAdapter, ValidationError

from agents.deadletter import dead_letter, describe
from schemas.inputs import (
    AgentControl,
    ChatMessage,
    ConfigRequest,
    ConversationUpdate,
    DirectoryEntry,
    Presence,
    Workflow,
)
from schemas.internal import (
    Origin,
    SequencedDirectory,
    SequencedPresence,
    SequencedWorkflow,
    UserAccount,
)
from schemas.topics import Topic
from streams.app import Topology
from streams.codecs import dumps

log = logging.getLogger(__name__)
Event = EventT[Any]
M = TypeVar("M")

_directory_entry: TypeAdapter[Any] = TypeAdapter(DirectoryEntry)

# Records that carry their account: validated, then forwarded with the original bytes.
_ACCOUNT_RECORDS: dict[Topic, type[BaseModel]] = {
    Topic.CHAT_MESSAGES: ChatMessage,
    Topic.CONVERSATION_UPDATES: ConversationUpdate,
    Topic.AGENT_CONTROL: AgentControl,
    Topic.CONFIG_REQUESTS: ConfigRequest,
}


class Rejected(Exception):
    """A record that goes to the dead letter topic; the message is the reason."""


def _time(event: Event) -> datetime:
    return datetime.fromtimestamp(event.message.timestamp or 0.0, tz=UTC)


def _origin(topic: Topic, event: Event) -> Origin:
    return Origin(topic=topic.value, partition=event.message.partition,
                  offset=event.message.offset)


def _key(event: Event) -> str | None:
    key = event.key
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def envelope(source: Topic, account_id: str, origin: Origin, record: bytes) -> bytes:
    """The sequenced record, built around the validated original bytes (no re-encoding)."""
    return b"".join((
        b'{"source":', orjson.dumps(source.value), b',"account_id":', orjson.dumps(account_id),
        b',"origin":', dumps(origin), b',"record":', record, b"}"))


def register(t: Topology) -> None:
    """Attach one intake agent per input topic."""
    settings = t.settings
    limit = settings.max_record_bytes
    account_events = t.topics[Topic.ACCOUNT_EVENTS]
    deadletter = t.topics[Topic.DEADLETTER]

    async def forward(account_id: str, body: bytes) -> None:
        await account_events.send(key=account_id.encode(), value=body)

    async def reject(topic: Topic, event: Event, reason: str) -> None:
        message = event.message
        log.warning("dead-lettered %s[%s]@%s: %s", topic.value, message.partition,
                    message.offset, reason)
        record = dead_letter(topic.value, message.partition, message.offset, message.timestamp,
                             event.value, reason)
        await deadletter.send(key=event.key, value=dumps(record))

    def parse(topic: Topic, value: bytes | None, read: Callable[[bytes], M]) -> M:
        if value is None:
            raise Rejected("empty record (no value)")
        if len(value) > limit:
            raise Rejected(f"record is {len(value)} bytes, over the limit of {limit} "
                           "(HANDOFF_MAX_RECORD_BYTES)")
        try:
            return read(value)
        except ValidationError as exc:
            raise Rejected(describe(exc)) from None

    handlers: dict[str, tuple[Topic, Callable[[Event], Awaitable[None]]]] = {}

    def intake(topic: Topic, handle: Callable[[Event], Awaitable[None]]) -> None:
        handlers[settings.topic(topic)] = (topic, handle)

    for topic, model in _ACCOUNT_RECORDS.items():
        def handler(topic: Topic = topic, model: type[BaseModel] = model
                    ) -> Callable[[Event], Awaitable[None]]:
            async def handle(event: Event) -> None:
                value = event.value
                record = parse(topic, value, lambda v: model.model_validate_json(v, strict=True))
                account_id: str = record.account_id  # type: ignore[attr-defined]
                await forward(account_id, envelope(topic, account_id, _origin(topic, event), value))
            return handle

        intake(topic, handler())

    directory_accounts = t.lookups["directory-accounts"]
    user_accounts_topic = t.topics[Topic.USER_ACCOUNTS]

    async def on_directory(event: Event) -> None:
        key = _key(event)
        if event.value is None:  # a tombstone: the entry was deleted
            account_id = directory_accounts.get(key) if key else None
            if account_id is None:
                return  # nothing was ever known under this key, so nothing to remove
            del directory_accounts[key]
            entry = None
        else:
            entry = parse(Topic.DIRECTORY, event.value,
                          lambda v: _directory_entry.validate_json(v, strict=True))
            key = f"{entry.kind}:{entry.id}"
            account_id = entry.account_id
            directory_accounts[key] = account_id
        assert key is not None
        kind, _, ident = key.partition(":")
        if kind == "user":
            mapping = UserAccount(user_id=ident, account_id=account_id if entry else None)
            await user_accounts_topic.send(key=ident.encode(), value=dumps(mapping))
        await forward(account_id, dumps(SequencedDirectory(
            source="directory", account_id=account_id, origin=_origin(Topic.DIRECTORY, event),
            key=key, record=entry, occurred_at=_time(event))))

    intake(Topic.DIRECTORY, on_directory)

    workflow_accounts = t.lookups["workflow-accounts"]

    async def on_workflow(event: Event) -> None:
        key = _key(event)
        workflow: Workflow | None = None
        if event.value is None:
            account_id = workflow_accounts.get(key) if key else None
            if account_id is None:
                return
            del workflow_accounts[key]
        else:
            workflow = parse(Topic.WORKFLOWS, event.value,
                             lambda v: Workflow.model_validate_json(v, strict=True))
            key, account_id = workflow.workflow_id, workflow.account_id
            workflow_accounts[key] = account_id
        assert key is not None
        await forward(account_id, dumps(SequencedWorkflow(
            source="workflows", account_id=account_id, origin=_origin(Topic.WORKFLOWS, event),
            workflow_id=key, record=workflow, occurred_at=_time(event))))

    intake(Topic.WORKFLOWS, on_workflow)

    # Presence carries no account. The directory's user records are re-keyed by user id onto
    # a topic co-partitioned with agent.presence, so the same partition sees both.
    user_accounts = t.lookups["user-accounts"]
    pending = t.lookups["pending-presence"]
    async def send_presence(account_id: str, presence: Presence, origin: Origin) -> None:
        await forward(account_id, dumps(SequencedPresence(
            source="agent.presence", account_id=account_id, origin=origin, record=presence)))

    async def on_presence(event: Event) -> None:
        if event.message.topic == settings.topic(Topic.USER_ACCOUNTS):
            mapping = UserAccount.model_validate_json(event.value)
            if mapping.account_id is None:
                user_accounts.pop(mapping.user_id, None)
                return
            user_accounts[mapping.user_id] = mapping.account_id
            waiting = pending.get(mapping.user_id)
            if waiting is not None:
                del pending[mapping.user_id]
                await send_presence(mapping.account_id, Presence.model_validate(waiting["record"]),
                                    Origin.model_validate(waiting["origin"]))
            return
        presence = parse(Topic.AGENT_PRESENCE, event.value,
                         lambda v: Presence.model_validate_json(v, strict=True))
        origin = _origin(Topic.AGENT_PRESENCE, event)
        account_id = user_accounts.get(presence.user_id)
        if account_id is None:
            # Not in the directory yet: keep the latest status until the user appears.
            pending[presence.user_id] = {"record": presence, "origin": origin}
            return
        await send_presence(account_id, presence, origin)

    intake(Topic.AGENT_PRESENCE, on_presence)
    intake(Topic.USER_ACCOUNTS, on_presence)

    # One agent over every input topic: records are sequenced in the order the consumer
    # delivers them, so a record sent after another was acknowledged (say a config request
    # after the directory it names) is decided after it, across topics. Faust co-partitions
    # the topics of one agent, which also puts a user's presence and directory on one worker.
    async def run(stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            topic, handle = handlers[event.message.topic]
            try:
                await handle(event)
            except Rejected as exc:
                await reject(topic, event, str(exc))
            yield None

    channel = t.app.topic(*handlers, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")
    t.app.agent(channel, name="intake")(run)
