"""Models of the output topics: what inbox services, connectors and auditors read."""

from __future__ import annotations

from typing import Literal

from schemas.common import Channel, Process, Record, Timestamp, TriggerKind
from schemas.settings import Assignee


class Trigger(Record):
    kind: TriggerKind
    phrase: str | None = None
    message_event_id: str
    # Extension: the language the human-request phrase was written in, for audits.
    language: str | None = None


class HandoffEvent(Record):
    """`handoff.events`: a trigger fired; `handed_off` says whether a human takes over."""

    event_id: str
    conversation_id: str
    account_id: str
    channel: Channel
    trigger: Trigger
    process: Process
    handed_off: bool
    config_version: int
    occurred_at: Timestamp


class TicketCreated(Record):
    """`tickets.created`: a ticket made from the conversation, in a help desk."""

    event_id: str
    ticket_id: str
    conversation_id: str
    account_id: str
    help_desk_id: str
    workflow_id: str
    channel: Channel
    subject: str
    trigger: Trigger
    config_version: int
    occurred_at: Timestamp


AssignmentReason = Literal["handoff", "queue", "pickup_timeout", "agent_unavailable", "released"]


class Assignment(Record):
    """`assignments`: where a handed-off conversation lands; `assignee: null` is unassigned."""

    event_id: str
    conversation_id: str
    ticket_id: str | None
    account_id: str
    inbox_id: str | None
    mode: Literal["live", "async"]
    assignee: Assignee | None
    rule: str
    config_version: int
    occurred_at: Timestamp
    # Extension: who was considered and why each was passed over, for audits.
    candidates: list[str] = []
    # v1.1: why this assignment was made: the first one ("handoff"), from the queue, or a
    # re-route after a pickup timeout, the user going away or releasing the conversation.
    reason: AssignmentReason = "handoff"
    # Extension: seconds the visitor waited in the queue, on an assignment from the queue.
    waited_s: float | None = None


class OutboundKind:
    AVAILABLE = "handoff_available"
    UNAVAILABLE = "handoff_unavailable"
    UNASSIGNED = "handoff_unassigned"
    QUEUE_POSITION = "handoff_queue_position"


class ChatOutbound(Record):
    """`chat.outbound`: the handoff message for the channel connector to deliver."""

    event_id: str
    conversation_id: str
    channel: Channel
    kind: Literal["handoff_available", "handoff_unavailable", "handoff_unassigned",
                  "handoff_queue_position"]
    text: str
    occurred_at: Timestamp


class ConversationStatus(Record):
    """`conversation.status`: who owns the conversation now; the customer agent reads it."""

    event_id: str
    conversation_id: str
    status: Literal["open", "closed"]
    view: Literal["bot", "assigned", "unassigned"]
    occurred_at: Timestamp
    account_id: str | None = None


class ConfigChange(Record):
    """`handoff.config.changes`: the outcome of one config request."""

    event_id: str
    account_id: str
    actor: str
    accepted: bool
    reason: str | None
    version: int | None
    occurred_at: Timestamp


class DeadLetter(Record):
    """`deadletter`: a record that could not be read, with why, so nothing is lost."""

    event_id: str
    source_topic: str
    partition: int
    offset: int
    error: str
    payload: str
    occurred_at: Timestamp
    # Extension: "base64" when the payload was not UTF-8.
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    # Extension: the payload holds only the first bytes of a large record (the original is
    # still at source_topic/partition/offset while the topic's retention keeps it).
    payload_truncated: bool = False
    # Extension: the original record's size in bytes.
    payload_bytes: int | None = None
