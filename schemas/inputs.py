"""Models of the input topics: what channel connectors, presence and directory services send."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.common import Channel, Record, Sender, Timestamp, TriggerKind

# Ids are opaque strings; an empty one can never be looked up again, so it is refused.
Id = Annotated[str, Field(min_length=1, max_length=256)]
# The longest refusal reason a config request may carry (the API shortens longer ones).
MAX_REFUSAL_LENGTH = 20_000


class ChatMessage(Record):
    """`chat.messages`: one message of any channel, from the visitor or an agent."""

    event_id: Id
    conversation_id: Id
    account_id: Id
    channel: Channel
    sender: Sender
    text: str
    sent_at: Timestamp
    inbox_id: Id | None = None
    answered: bool | None = None
    language: str | None = None
    contact_id: str | None = None


class ControlAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"


class AgentControl(Record):
    """`agent.control`: pause or resume an account's customer agent."""

    event_id: Id
    account_id: Id
    action: ControlAction
    occurred_at: Timestamp
    actor: str | None = None


class PresenceStatus(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


class Presence(Record):
    """`agent.presence`: a human agent's availability and capacity."""

    event_id: Id
    user_id: Id
    status: PresenceStatus
    occurred_at: Timestamp
    # Bounded so that it fits every JSON reader (64-bit integers) and table codec.
    max_open_conversations: Annotated[int, Field(ge=0, le=1_000_000)] | None = None


class DirectoryUser(Record):
    kind: Literal["user"]
    id: Id
    account_id: Id
    name: str = ""
    teams: list[Id] = []
    permissions: list[str] = []
    # v1.1: ISO 639-1 codes the user answers in, for language routing.
    languages: list[Annotated[str, Field(min_length=2, max_length=35)]] = []


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]


class BusinessHours(Record):
    days: list[Weekday]
    start: ClockTime
    end: ClockTime


class DirectoryTeam(Record):
    kind: Literal["team"]
    id: Id
    account_id: Id
    name: str = ""
    timezone: str = "UTC"
    business_hours: list[BusinessHours] | None = None
    # Extension: dates (YYYY-MM-DD, in the team's time zone) on which the team is closed.
    holidays: list[Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]] = []


class InboxType(StrEnum):
    INBOX = "inbox"
    HELP_DESK = "help_desk"


class DirectoryInbox(Record):
    kind: Literal["inbox"]
    id: Id
    account_id: Id
    type: InboxType
    name: str = ""


DirectoryEntry = Annotated[
    DirectoryUser | DirectoryTeam | DirectoryInbox, Field(discriminator="kind")
]


class WorkflowCondition(Record):
    """A rule's `when`: each key a list of accepted values; absent keys accept anything."""

    channel: list[Channel] | None = None
    trigger: list[TriggerKind] | None = None
    language: list[str] | None = None
    inbox_id: list[str] | None = None
    phrase: list[str] | None = None


class AssignRotate(Record):
    rotate: Annotated[list[Id], Field(min_length=1)]


class AssignTeam(Record):
    team: Id


class AssignUser(Record):
    user: Id


class WorkflowRule(Record):
    when: WorkflowCondition = WorkflowCondition()
    assign: AssignRotate | AssignTeam | AssignUser


class Workflow(Record):
    """`workflows`: a ticket-based workflow whose first matching rule assigns the ticket."""

    workflow_id: Id
    account_id: Id
    name: str = ""
    rules: list[WorkflowRule] = []


class ConversationAction(StrEnum):
    CLOSE = "close"
    HAND_BACK = "hand_back"
    # v1.1: the assigned user picked the conversation up (stops its pickup timer) ...
    ACCEPT = "accept"
    # ... or gives it back to be routed again.
    RELEASE = "release"


class ConversationUpdate(Record):
    """`conversation.updates` (extension): the inbox closed a conversation, handed it back,
    or its user accepted or released it.

    This is what frees a human's capacity and returns a conversation to the customer agent.
    """

    event_id: Id
    conversation_id: Id
    account_id: Id
    action: ConversationAction
    occurred_at: Timestamp
    actor: str | None = None


class ConfigRequest(Record):
    """`handoff.config.requests`: replace an account's settings, on behalf of `actor`.

    `config` stays a plain object here: a bad config is refused on `handoff.config.changes`
    with a reason for the editor, not set aside as a malformed record.
    """

    event_id: Id
    account_id: Id
    actor: Id
    occurred_at: Timestamp
    config: dict[str, Any]
    # Extension (v1.1): the HTTP API refused this request itself (403, 412, 422) and says why.
    # The stream records the refusal on `handoff.config.changes` like its own and changes
    # nothing, so every refused change is audited once, by the one place that decides.
    refused: Annotated[str, Field(min_length=1, max_length=MAX_REFUSAL_LENGTH)] | None = None
    # Extension (v1.1): accept only if the account's settings are still at this version (the
    # `If-Match` of a PUT); otherwise the request is refused as stale.
    if_version: Annotated[int, Field(ge=0)] | None = None
