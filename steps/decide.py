"""The decision step: one record of the account log and the task's state, to the core's answer.

It parses the sequenced record once and asks `Engine.decide`; nothing else. A record that cannot
be parsed (only a producer other than intake could write one) or that the core fails on comes
back `rejected` with the reason, for the runner to dead-letter: one poison record must not stop
every account behind it, and replay skips it the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from handoff.core.engine import Engine
from handoff.core.store import Decision, StateReader
from handoff.core.triggers import Matchers
from handoff.triggers.saved import load_detector
from schemas.internal import AccountEvent
from steps.deadletter import describe

log = logging.getLogger(__name__)

_account_event: TypeAdapter[Any] = TypeAdapter(AccountEvent)


def build_engine(extra_dirs: list[Path] | None = None) -> Engine:
    """The engine with the shipped human-request phrases plus any operator folders, read back
    from the detector's pickled copy when one was built from the same files (a restart)."""
    return Engine(Matchers(load_detector(list(extra_dirs or []))))


@dataclass(slots=True)
class Decided:
    """The outcome of one account-log record: the parsed event and the core's decision, or why
    it was set aside."""

    event: Any | None = None  # an AccountEvent
    decision: Decision | None = None
    rejected: str | None = None


def parse(value: bytes | None) -> Any:
    """The sequenced event in a record of the account log; raises ValidationError."""
    return _account_event.validate_json(value or b"", strict=True)


class Parsed:
    """Account events intake built on this worker, by their exact bytes, each taken once.

    Parsing is a function of the bytes, so handing the decision step the event built from the
    same parts is the parse without its cost. Full, it takes no more (the oldest are the next
    to be decided, so evicting them would waste the rest); the loop remembers only events of
    account-log partitions it holds and forgets them all when tasks move.
    """

    __slots__ = ("_events", "limit")

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._events: dict[bytes, Any] = {}

    def __len__(self) -> int:
        return len(self._events)

    def put(self, value: bytes, event: Any) -> None:
        """Remember the event `value` parses to, if there is room."""
        if len(self._events) < self.limit:
            self._events[value] = event

    def take(self, value: bytes | None) -> Any | None:
        """The event remembered for `value` (forgotten then), or None."""
        if value is None or not self._events:
            return None
        return self._events.pop(value, None)

    def clear(self) -> None:
        """Forget every event (their records may now be decided by another worker)."""
        self._events.clear()


def decide(engine: Engine, reader: StateReader, value: bytes | None, known: Any = None
           ) -> Decided:
    """Decide one account-log record over `reader`; `known` is its parsed event, if at hand."""
    if known is not None:
        event = known
    else:
        try:
            event = parse(value)
        except ValidationError as exc:
            return Decided(rejected=describe(exc))
    try:
        return Decided(event=event, decision=engine.decide(reader, event))
    except Exception as exc:
        # A bug, not the broker: logged with its stack, then set aside like a bad record.
        log.exception("decision failed for %s", getattr(event, "source", "?"))
        return Decided(event=event, rejected=f"decision failed: {type(exc).__name__}: {exc}")
