"""What the decision core remembers between events, per conversation, account and agent.

See docs/state-model.md for the conversation's phases and the transitions between them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from schemas.common import Channel, Process, Timestamp
from schemas.inputs import DirectoryInbox, DirectoryTeam, DirectoryUser, PresenceStatus, Workflow
from schemas.outputs import Trigger
from schemas.settings import Assignee, HandoffConfig

# How many input event ids a conversation remembers to drop redelivered duplicates. Connectors
# retry recent sends; older duplicates than this are not expected on an ordered partition.
RECENT_EVENT_IDS = 64


M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__
# Per model: every field's default in field order (required ones unset), and the fields whose
# default is mutable (a fresh copy each time, as pydantic gives it).
_TEMPLATES: dict[type[BaseModel], tuple[dict[str, Any], tuple[str, ...]]] = {}


def _template(model: type[BaseModel]) -> tuple[dict[str, Any], tuple[str, ...]]:
    defaults: dict[str, Any] = {}
    mutable: list[str] = []
    for name, info in model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        defaults[name] = default
        if isinstance(default, (list, dict, set)):
            mutable.append(name)
    found = _TEMPLATES[model] = (defaults, tuple(mutable))
    return found


def build(model: type[M], values: dict[str, Any]) -> M:
    """An instance of `model` from values the core already holds validated, as
    `model_construct` makes it (no validation) at a fraction of its cost; the core builds
    several records per event. Every required field must be in `values`."""
    defaults, mutable = _TEMPLATES.get(model) or _template(model)
    # The serializer writes fields in `__dict__` order: the template's copy keeps field order.
    data = defaults.copy()
    data.update(values)
    for name in mutable:
        if name not in values:
            data[name] = defaults[name].copy()
    new = model.__new__(model)
    _set(new, "__dict__", data)
    _set(new, "__pydantic_fields_set__", set(values))
    _set(new, "__pydantic_extra__", None)
    _set(new, "__pydantic_private__", None)
    return new


def build_whole(model: type[M], values: dict[str, Any]) -> M:
    """`build` for values naming every field of `model`, in field order (the serializer's
    order): no template of defaults to copy, as every value replaces one."""
    new = model.__new__(model)
    _set(new, "__dict__", values)
    _set(new, "__pydantic_fields_set__", set(values))
    _set(new, "__pydantic_extra__", None)
    _set(new, "__pydantic_private__", None)
    return new


class State(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def evolve(self, update: dict[str, Any]) -> Self:
        """A copy with `update` applied, as `model_copy(update=...)` makes it (values are not
        validated), at half its cost: the core makes one or more per event."""
        new = self.__class__.__new__(self.__class__)
        values = self.__dict__.copy()
        values.update(update)
        _set(new, "__dict__", values)
        # Most updates set fields set before: the (never changed) set is then shared.
        fields = self.__pydantic_fields_set__
        _set(new, "__pydantic_fields_set__",
             fields if fields.issuperset(update) else fields.union(update))
        _set(new, "__pydantic_extra__", None)
        _set(new, "__pydantic_private__", None)
        return new


class Phase(StrEnum):
    """Who owns the conversation: the customer agent, a human, or nobody (closed)."""

    BOT = "bot"
    HANDED_OFF = "handed_off"
    CLOSED = "closed"


class ConversationState(State):
    conversation_id: str
    account_id: str
    channel: Channel
    inbox_id: str | None = None
    language: str | None = None
    contact_id: str | None = None
    phase: Phase = Phase.BOT
    view: Literal["bot", "assigned", "unassigned"] = "bot"
    trigger: Trigger | None = None
    process: Process | None = None
    handoff_event_id: str | None = None
    handoff_inbox_id: str | None = None
    ticket_id: str | None = None
    assignee: Assignee | None = None
    config_version: int | None = None
    handoffs: int = 0
    last_visitor_text: str = ""
    last_message_at: Timestamp | None = None
    recent_event_ids: tuple[str, ...] = ()
    # Queues and timers (v1.1). When the handoff happened: a visitor's place in the queue
    # and the language fallback count from here.
    handed_off_at: Timestamp | None = None
    # The current assignment: when it was made, and whether its user accepted it.
    assigned_at: Timestamp | None = None
    accepted: bool = False
    # In its destination's queue since (None: not waiting there).
    queued_at: Timestamp | None = None
    # The last place in line told to the visitor, and when.
    position_told: int | None = None
    position_told_at: Timestamp | None = None
    # Users who let this conversation time out or released it: not offered it again.
    declined: tuple[str, ...] = ()
    # Assignment records made for this handoff so far (part of each one's id).
    assignments: int = 0


class AccountSettings(State):
    """An accepted version of an account's handoff settings (version 0: the defaults)."""

    account_id: str
    version: int = 0
    config: HandoffConfig = HandoffConfig()
    actor: str | None = None
    event_id: str | None = None
    occurred_at: Timestamp | None = None
    # The last config requests decided (accepted or not): a request sequenced twice (intake
    # re-forwards after a crash) must not become a new version.
    recent_request_ids: tuple[str, ...] = ()


class AccountState(State):
    """Account-wide facts: whether the customer agent is paused, and the directory."""

    account_id: str
    paused: bool = False
    users: dict[str, DirectoryUser] = {}
    teams: dict[str, DirectoryTeam] = {}
    # Insertion order is kept: the default destination is the account's first inbox.
    inboxes: dict[str, DirectoryInbox] = {}
    workflows: dict[str, Workflow] = {}


class AgentState(State):
    """A human agent's presence and the conversations this service assigned to them."""

    user_id: str
    status: PresenceStatus = PresenceStatus.OFFLINE
    max_open_conversations: int | None = None
    presence_at: Timestamp | None = None
    open_conversations: tuple[str, ...] = ()

    @property
    def at_capacity(self) -> bool:
        limit = self.max_open_conversations
        return limit is not None and len(self.open_conversations) >= limit


class QueueState(State):
    """The visitors waiting in one destination (inbox or help desk), oldest handoff first,
    and when the last few were taken from it (the wait estimate's data)."""

    account_id: str
    inbox_id: str
    waiting: tuple[str, ...] = ()
    # Times of the last assignments from this queue, oldest first.
    pickups: tuple[Timestamp, ...] = ()


class WaitingState(State):
    """What an account has waiting on time: its non-empty queues and the live assignments
    whose pickup timer runs. The loop writes clock ticks into the log of such accounts only."""

    account_id: str
    queues: tuple[str, ...] = ()  # inbox ids, in the order they first had someone waiting
    pickups: tuple[str, ...] = ()  # conversation ids

    @property
    def empty(self) -> bool:
        return not self.queues and not self.pickups
