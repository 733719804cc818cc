"""Intake: validate every input record and sequence it into its account's decision log.

A record that cannot be read goes to `deadletter` with the reason, and the partition moves on.
A valid one is forwarded, keyed by account, to `handoff.account-events`: one ordered log per
account is what lets rotations, capacity and settings be decided in one place, and replayed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from faust.types import EventT

from handoff.ops.logs import record_fields
from schemas.inputs import Presence, Workflow
from schemas.internal import (
    Origin,
    SequencedDirectory,
    SequencedPresence,
    SequencedWorkflow,
    UserAccount,
)
from schemas.topics import Topic
from steps.deadletter import dead_letter, record_time
from steps.holdback import Held, HoldBack
from steps.validation import ACCOUNT_RECORDS, Limits, Rejected, envelope, validate_record
from streams.app import Topology
from streams.codecs import dumps

log = logging.getLogger(__name__)
Event = EventT[Any]

__all__ = ["Rejected", "envelope", "register"]


def _time(event: Event) -> datetime:
    return record_time(event.message.timestamp)


def _sequence_ms(at: float) -> int:
    """A record's time for the hold-back merge. A stamp in the future (a producer's clock
    ahead, or any 64-bit number a producer chose) counts as now: it would otherwise hold its
    partition until that time comes."""
    return int(min(at, time.time()) * 1000)


def _origin(topic: Topic, event: Event) -> Origin:
    return Origin(topic=topic.value, partition=event.message.partition,
                  offset=event.message.offset)


def _key(event: Event) -> str | None:
    key = event.key
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def register(t: Topology) -> None:
    """Attach one intake agent per input topic."""
    settings = t.settings
    limits = Limits.of(settings)
    account_events = t.topics[Topic.ACCOUNT_EVENTS]
    deadletter = t.topics[Topic.DEADLETTER]

    holdback = HoldBack(settings.sequencing_window_ms, settings.sequencing_hold_ms)
    forwarded: set[int] = set()  # ids of events whose acknowledgement waits for a release

    def forward(event: Event, account_id: str, body: bytes, timestamp: float | None = None
                ) -> None:
        """Queue a sequenced record; it is sent, and `event` acknowledged, when released."""
        message = event.message
        at = timestamp if timestamp is not None else (message.timestamp or 0.0)
        holdback.push(message.tp, Held(_sequence_ms(at), key=account_id.encode(), value=body,
                                       event=event))
        forwarded.add(id(event))

    async def reject(topic: Topic, event: Event, reason: str) -> None:
        message = event.message
        record = dead_letter(topic.value, message.partition, message.offset, message.timestamp,
                             event.value, reason, settings.deadletter_payload_bytes)
        log.warning("dead-lettered %s[%s]@%s: %s", topic.value, message.partition,
                    message.offset, reason, extra=record_fields(
                        record.event_id, topic.value, message.partition, message.offset))
        await deadletter.send(key=event.key, value=dumps(record))

    def parse(topic: Topic, value: bytes | None) -> Any:
        # validate_record never raises: it returns the record or why it is refused.
        record = validate_record(topic, value, limits)
        if isinstance(record, Rejected):
            raise record
        return record

    handlers: dict[str, tuple[Topic, Callable[[Event], Awaitable[None]]]] = {}

    def intake(topic: Topic, handle: Callable[[Event], Awaitable[None]]) -> None:
        handlers[settings.topic(topic)] = (topic, handle)

    for topic in ACCOUNT_RECORDS:
        def handler(topic: Topic = topic) -> Callable[[Event], Awaitable[None]]:
            async def handle(event: Event) -> None:
                value = event.value
                record = parse(topic, value)
                account_id: str = record.account_id
                forward(event, account_id, envelope(topic, account_id, _origin(topic, event), value))
            return handle

        intake(topic, handler())

    directory_accounts = t.lookups["directory-accounts"]
    # The mapping topic takes a produce-and-fetch round trip; a presence record sent right after
    # its user's directory entry would otherwise wait for it and be sequenced late.
    local_user_accounts: dict[str, str] = {}
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
            entry = parse(Topic.DIRECTORY, event.value)
            key = f"{entry.kind}:{entry.id}"
            account_id = entry.account_id
            directory_accounts[key] = account_id
        assert key is not None
        kind, _, ident = key.partition(":")
        if kind == "user":
            # Known at once on this worker; other workers learn it from the mapping topic.
            if entry is None:
                local_user_accounts.pop(ident, None)
            else:
                local_user_accounts[ident] = account_id
                release_pending_presence(ident, account_id)
            mapping = UserAccount(user_id=ident, account_id=account_id if entry else None)
            await user_accounts_topic.send(key=ident.encode(), value=dumps(mapping))
        forward(event, account_id, dumps(SequencedDirectory(
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
            workflow = parse(Topic.WORKFLOWS, event.value)
            key, account_id = workflow.workflow_id, workflow.account_id
            workflow_accounts[key] = account_id
        assert key is not None
        forward(event, account_id, dumps(SequencedWorkflow(
            source="workflows", account_id=account_id, origin=_origin(Topic.WORKFLOWS, event),
            workflow_id=key, record=workflow, occurred_at=_time(event))))

    intake(Topic.WORKFLOWS, on_workflow)

    # Presence carries no account. The directory's user records are re-keyed by user id onto
    # a topic co-partitioned with agent.presence, so the same partition sees both.
    user_accounts = t.lookups["user-accounts"]
    pending = t.lookups["pending-presence"]
    def send_presence(event: Event, account_id: str, presence: Presence, origin: Origin,
                      sent: float | None) -> None:
        # Sequenced at the time the presence record was produced (not its payload time, which
        # could lie in the future), so it sorts before messages produced after it.
        forward(event, account_id, dumps(SequencedPresence(
            source="agent.presence", account_id=account_id, origin=origin, record=presence)),
            timestamp=sent)

    # Presence that waits for its user, forwarded by this worker as soon as the user's directory
    # entry is read: user id -> origin offset. The pending record itself is removed only when
    # the mapping arrives on the presence partition, so a crash in between loses nothing.
    released_early: dict[str, int] = {}

    def release_pending_presence(user_id: str, account_id: str) -> None:
        waiting = pending.get(user_id)
        if waiting is None:
            return
        origin = Origin.model_validate(waiting["origin"])
        body = dumps(SequencedPresence(source="agent.presence", account_id=account_id,
                                       origin=origin,
                                       record=Presence.model_validate(waiting["record"])))
        holdback.push(("pending-presence", user_id),
                      Held(_sequence_ms(waiting.get("sent") or 0.0), key=account_id.encode(),
                           value=body))
        released_early[user_id] = origin.offset

    async def on_presence(event: Event) -> None:
        if event.message.topic == settings.topic(Topic.USER_ACCOUNTS):
            mapping = parse(Topic.USER_ACCOUNTS, event.value)
            if mapping.account_id is None:
                user_accounts.pop(mapping.user_id, None)
                return
            user_accounts[mapping.user_id] = mapping.account_id
            waiting = pending.get(mapping.user_id)
            if waiting is not None:
                del pending[mapping.user_id]
                early = released_early.pop(mapping.user_id, None)
                if early == Origin.model_validate(waiting["origin"]).offset:
                    return
                send_presence(event, mapping.account_id, Presence.model_validate(waiting["record"]),
                              Origin.model_validate(waiting["origin"]), waiting.get("sent"))
            return
        presence = parse(Topic.AGENT_PRESENCE, event.value)
        origin = _origin(Topic.AGENT_PRESENCE, event)
        account_id = user_accounts.get(presence.user_id) or local_user_accounts.get(presence.user_id)
        if account_id is None:
            # Not in the directory yet: keep the latest status until the user appears.
            pending[presence.user_id] = {"record": presence, "origin": origin,
                                         "sent": event.message.timestamp}
            return
        send_presence(event, account_id, presence, origin, None)

    intake(Topic.AGENT_PRESENCE, on_presence)
    intake(Topic.USER_ACCOUNTS, on_presence)

    received: dict[Any, int] = {}  # source partition -> next offset this agent has not seen

    def lagging() -> list[Any]:
        """Intake partitions not yet read up to their high watermark (as last fetched)."""
        # Looked up when running, never while the topology is built: creating the consumer
        # before faust.Worker sets `app.in_worker` fixes `app.in_transaction` to False, which
        # silently turns HANDOFF_PROCESSING_GUARANTEE=exactly_once off.
        consumer = t.app.consumer
        behind = []
        for tp in consumer.assignment():
            if tp.topic not in handlers:
                continue
            # Faust's committed offset counts what earlier runs read (Kafka's "next to read").
            committed = consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
            seen = max(received.get(tp, 0), committed or 0)
            highwater = consumer.highwater(tp)
            if highwater is None or seen < highwater:
                behind.append(tp)
        return behind

    async def release(stream: Any) -> None:
        # The only sender to the account log, so records leave in the order `due` gives.
        while True:
            for held in holdback.due(int(time.time() * 1000), lagging()):
                await account_events.send(key=held.key, value=held.value)
                if held.event is not None:
                    forwarded.discard(id(held.event))
                    await stream.ack(held.event)
            await asyncio.sleep(0.002)

    # One agent over every input topic. Faust co-partitions the topics of one agent, which puts
    # a user's presence and directory entry on one worker; the hold-back merge (holdback.py)
    # forwards them in timestamp order. Acknowledgement is manual: an input is acknowledged
    # only once what it forwards is sent, so a crash never loses a held record.
    async def run(stream: Any) -> AsyncIterator[None]:
        manual = stream.noack()
        releaser = asyncio.ensure_future(release(manual))
        try:
            async for event in manual.events():
                if releaser.done():
                    releaser.result()  # re-raise what stopped it: never sequence silently stuck
                topic, handle = handlers[event.message.topic]
                received[event.message.tp] = event.message.offset + 1
                try:
                    await handle(event)
                except Rejected as exc:
                    await reject(topic, event, str(exc))
                if id(event) not in forwarded:
                    await manual.ack(event)
                yield None
        finally:
            releaser.cancel()

    channel = t.app.topic(*handlers, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")
    t.app.agent(channel, name="intake")(run)
