"""The handoff settings an editor saves: triggers, process, routing, messages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import Process, Record, UnassignedChat

MAX_CUSTOM_TRIGGERS = 10_000
MAX_PHRASE_LENGTH = 200
MAX_MESSAGE_LENGTH = 1_000

Phrase = Annotated[str, Field(min_length=1, max_length=MAX_PHRASE_LENGTH)]
MessageText = Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_LENGTH)]


class Assignee(Record):
    type: Literal["user", "team"]
    id: Annotated[str, Field(min_length=1)]


class DirectRouting(Record):
    """Same users or teams for every issue: one inbox or help desk and its assignees."""

    mode: Literal["direct"]
    destination: Annotated[str, Field(min_length=1)] | None = None
    assignees: list[Assignee] = []


class WorkflowRouting(Record):
    """Ticket-based workflow: a ticket in a help desk, assigned by the workflow's rules.

    Without `destination` (contract v1.1) the ticket goes to the account's help desk when it
    has exactly one; the accepted settings name it (see `handoff/core/settings.py`).
    """

    mode: Literal["workflow"]
    workflow_id: Annotated[str, Field(min_length=1)]
    destination: Annotated[str, Field(min_length=1)] | None = None


Routing = Annotated[DirectRouting | WorkflowRouting, Field(discriminator="mode")]

DEFAULT_MESSAGES = {
    "available": "Connecting you with a member of our team now.",
    "unavailable": "Our team is not available right now. We will follow up as soon as we can.",
    "unassigned": "Thanks! Your request is in our queue and a member of our team will pick it up.",
}


class HandoffMessages(Record):
    available: MessageText = DEFAULT_MESSAGES["available"]
    unavailable: MessageText = DEFAULT_MESSAGES["unavailable"]
    unassigned: MessageText = DEFAULT_MESSAGES["unassigned"]
    # v1.1: told to a visitor waiting in the queue; `{position}` and optionally
    # `{wait_minutes}` (its clause is left out when there is no estimate). None: not sent.
    queue_position: MessageText | None = None


class LanguageRouting(Record):
    """v1.1: prefer assignees who speak the conversation's language; after `fallback_after_s`
    in the queue anyone available may take it."""

    prefer: bool = False
    fallback_after_s: Annotated[int, Field(ge=0, le=86_400)] = 60


class HandoffConfig(Record):
    """The `config` object of a config request, as accepted."""

    custom_triggers: Annotated[list[Phrase], Field(max_length=MAX_CUSTOM_TRIGGERS)] = []
    process: Process = Process.LIVE
    routing: Routing = DirectRouting(mode="direct")
    messages: HandoffMessages = HandoffMessages()
    unassigned_chat: UnassignedChat = UnassignedChat.KEEP_OPEN
    # v1.1 queues and timers; absent means the behaviour before them.
    pickup_timeout_s: Annotated[int, Field(ge=10, le=86_400)] | None = None
    assign_when_available: bool = False
    queue_update_s: Annotated[int, Field(ge=10, le=86_400)] = 120
    language_routing: LanguageRouting | None = None
