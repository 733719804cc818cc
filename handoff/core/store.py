"""The core's view of state: typed reads, and the writes a decision asks the shell to make.

The core never writes itself. It returns `Write`s; the Faust shell applies them to tables and
the replay and test shells to dicts, which is why all of them decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol, TypeVar, cast

from pydantic import BaseModel

from handoff.core.state import (
    AccountSettings,
    AccountState,
    AgentState,
    ConversationState,
    QueueState,
    WaitingState,
    build,
)
from schemas.topics import Topic


class Table(StrEnum):
    CONVERSATIONS = "conversations"
    SETTINGS = "settings"
    SETTINGS_HISTORY = "settings-history"
    ACCOUNTS = "accounts"
    AGENTS = "agents"
    ROTATIONS = "rotations"
    QUEUES = "queues"
    WAITING = "waiting"


TABLE_MODELS: dict[Table, type[BaseModel] | type[int]] = {
    Table.CONVERSATIONS: ConversationState,
    Table.SETTINGS: AccountSettings,
    Table.SETTINGS_HISTORY: AccountSettings,
    Table.ACCOUNTS: AccountState,
    Table.AGENTS: AgentState,
    Table.ROTATIONS: int,
    Table.QUEUES: QueueState,
    Table.WAITING: WaitingState,
}


class StateReader(Protocol):
    """Read access to the tables; `None` when the key was never written."""

    def get(self, table: Table, key: str) -> object | None: ...


# Named tuples, not frozen dataclasses: as immutable, and made three times as fast (a frozen
# dataclass sets each field through `object.__setattr__`); a decision makes several of each.


class Write(NamedTuple):
    table: Table
    key: str
    value: BaseModel | int | None  # None deletes the key


class Emit(NamedTuple):
    topic: Topic
    key: str
    value: BaseModel


@dataclass(slots=True)
class Decision:
    """What one input event leads to: records to publish, in order, and state to keep."""

    emits: list[Emit] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


class Overlay:
    """A reader that sees a decision's own pending writes first, so later steps read them."""

    __slots__ = ("_base", "_pending")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._pending: dict[tuple[Table, str], BaseModel | int | None] = {}

    def get(self, table: Table, key: str) -> object | None:
        if self._pending:  # most reads come before the decision's first write
            hit = self._pending.get((table, key), _MISSING)
            if hit is not _MISSING:
                return hit
        return self._base.get(table, key)

    def put(self, decision: Decision, table: Table, key: str, value: BaseModel | int | None) -> None:
        self._pending[(table, key)] = value
        decision.writes.append(Write(table, key, value))

    def conversation(self, key: str) -> ConversationState | None:
        return _typed(self.get(Table.CONVERSATIONS, key), ConversationState)

    # The defaults of a key never written (`_default`): an account without directory or
    # settings would otherwise pay for them on every message.

    def settings(self, account_id: str) -> AccountSettings:
        found = _typed(self.get(Table.SETTINGS, account_id), AccountSettings)
        return found if found is not None else _default(AccountSettings, "account_id", account_id)

    def account(self, account_id: str) -> AccountState:
        found = _typed(self.get(Table.ACCOUNTS, account_id), AccountState)
        return found if found is not None else _default(AccountState, "account_id", account_id)

    def agent(self, user_id: str) -> AgentState:
        found = _typed(self.get(Table.AGENTS, user_id), AgentState)
        return found if found is not None else _default(AgentState, "user_id", user_id)

    def rotation(self, key: str) -> int:
        found = self.get(Table.ROTATIONS, key)
        return found if isinstance(found, int) else 0

    def queue(self, account_id: str, inbox_id: str) -> QueueState:
        found = _typed(self.get(Table.QUEUES, queue_key(account_id, inbox_id)), QueueState)
        return found if found is not None else build(QueueState, {"account_id": account_id,
                                                                  "inbox_id": inbox_id})

    def waiting(self, account_id: str) -> WaitingState:
        found = _typed(self.get(Table.WAITING, account_id), WaitingState)
        return found if found is not None else build(WaitingState, {"account_id": account_id})

    def waiting_if_any(self, account_id: str) -> WaitingState | None:
        """The account's waiting state, or None when nothing waits (the key is then absent):
        most events of most accounts find nothing waiting, and need no default built."""
        return _typed(self.get(Table.WAITING, account_id), WaitingState)


def queue_key(account_id: str, inbox_id: str) -> str:
    """The `queues` table's key of one destination: the one home of this formula."""
    return f"{account_id}|{inbox_id}"


_MISSING = object()

# One default state per key, built without validation and shared: states are frozen and the
# core replaces them (never changes them, nor their dicts) when it writes, so a shared default
# is as good as a new one, and routing's per-object memos find the same object again.
_DEFAULTS: dict[tuple[type[BaseModel], str], BaseModel] = {}
_DEFAULTS_KEPT = 4096
D = TypeVar("D", bound=BaseModel)


def _default(model: type[D], field: str, key: str) -> D:
    found = _DEFAULTS.get((model, key))
    if found is None:
        if len(_DEFAULTS) >= _DEFAULTS_KEPT:
            _DEFAULTS.pop(next(iter(_DEFAULTS)))
        found = _DEFAULTS[(model, key)] = build(model, {field: key})
    return cast(D, found)


M = TypeVar("M", bound=BaseModel)


def _typed(value: object | None, model: type[M]) -> M | None:
    # Values restored from a changelog arrive as plain dicts; live ones are already models.
    if value is None or isinstance(value, model):
        return value
    return model.model_validate(value)


class MemoryStore:
    """A dict-backed store for unit tests, replay and what-if runs."""

    def __init__(self) -> None:
        self.data: dict[tuple[Table, str], object] = {}

    def get(self, table: Table, key: str) -> object | None:
        return self.data.get((table, key))

    def apply(self, writes: list[Write]) -> None:
        """Apply a decision's writes in order."""
        for w in writes:
            if w.value is None:
                self.data.pop((w.table, w.key), None)
            else:
                self.data[(w.table, w.key)] = w.value
