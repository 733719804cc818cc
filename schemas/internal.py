"""Models of the project's own topics: the per-account sequence every decision is made from.

Every input that can change a decision is forwarded, validated, into one log keyed by
`account_id`. Its order is the order decisions are made in, so replaying it reproduces them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import Record, Timestamp
from schemas.inputs import (
    AgentControl,
    ChatMessage,
    ConfigRequest,
    ConversationUpdate,
    DirectoryEntry,
    Presence,
    Workflow,
)


class Origin(Record):
    """Where a sequenced record was read, so an audit can point at the original."""

    topic: str
    partition: int
    offset: int


class SequencedChat(Record):
    source: Literal["chat.messages"]
    account_id: str
    origin: Origin
    record: ChatMessage


class SequencedControl(Record):
    source: Literal["agent.control"]
    account_id: str
    origin: Origin
    record: AgentControl


class SequencedPresence(Record):
    source: Literal["agent.presence"]
    account_id: str
    origin: Origin
    record: Presence


class SequencedDirectory(Record):
    """A directory entry, or its removal (`record: null`) when the compacted key was deleted."""

    source: Literal["directory"]
    account_id: str
    origin: Origin
    key: str
    record: DirectoryEntry | None
    occurred_at: Timestamp


class SequencedWorkflow(Record):
    source: Literal["workflows"]
    account_id: str
    origin: Origin
    workflow_id: str
    record: Workflow | None
    occurred_at: Timestamp


class SequencedConfigRequest(Record):
    source: Literal["handoff.config.requests"]
    account_id: str
    origin: Origin
    record: ConfigRequest


class SequencedConversationUpdate(Record):
    source: Literal["conversation.updates"]
    account_id: str
    origin: Origin
    record: ConversationUpdate


class SequencedTick(Record):
    """The service's clock, written into an account's log while it has something waiting
    (a queue, an assignment not yet accepted), so timeouts are decided from the log and
    `handoff replay` reproduces them. Not read from any input topic: it has no origin."""

    source: Literal["clock"]
    account_id: str
    event_id: str
    at: Timestamp


AccountEvent = Annotated[
    SequencedChat
    | SequencedConversationUpdate
    | SequencedControl
    | SequencedPresence
    | SequencedDirectory
    | SequencedWorkflow
    | SequencedConfigRequest
    | SequencedTick,
    Field(discriminator="source"),
]


class UserAccount(Record):
    """`handoff.user-accounts`: which account a user belongs to, keyed like `agent.presence`."""

    user_id: str
    account_id: str | None


class PendingPresence(Record):
    """Intake's `pending-presence` lookup: a user's latest presence, waiting for its account."""

    record: Presence
    origin: Origin
    # The presence record's Kafka timestamp: it is sequenced at that time once released.
    sent_ms: int
