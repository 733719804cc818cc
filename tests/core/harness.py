"""Runs the pure core over a list of events with a dict store, as replay does."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from handoff.core.engine import Engine
from handoff.core.store import MemoryStore, Table
from handoff.core.triggers import Matchers
from handoff.triggers.human_request import HumanRequestDetector


@lru_cache(maxsize=1)
def detector() -> HumanRequestDetector:
    return HumanRequestDetector.load()


def assert_valid(value: BaseModel) -> None:
    """`value` equals the model validated from its own JSON, and serialises the same."""
    raw = value.__pydantic_serializer__.to_json(value)
    again = type(value).model_validate_json(raw)
    assert again == value, f"{type(value).__name__} is not what its JSON validates to"
    assert again.__pydantic_serializer__.to_json(again) == raw


class Run:
    """An engine and its state; `feed` returns what each event emitted, as JSON dicts."""

    def __init__(self) -> None:
        self.engine = Engine(Matchers(detector()))
        self.store = MemoryStore()
        self.log: list[tuple[str, str, dict[str, Any]]] = []

    def feed(self, *events: Any) -> list[tuple[str, str, dict[str, Any]]]:
        out: list[tuple[str, str, dict[str, Any]]] = []
        for event in events:
            decision = self.engine.decide(self.store, event)
            # The core builds its records without validation (`state.build`, `evolve`): each
            # one must be what validating its own JSON gives, byte for byte.
            for value in [e.value for e in decision.emits] + [w.value for w in decision.writes]:
                if isinstance(value, BaseModel):
                    assert_valid(value)
            self.store.apply(decision.writes)
            out += [(str(e.topic), e.key, e.value.model_dump(mode="json")) for e in decision.emits]
        self.log += out
        return out

    def topic(self, name: str, out: list[tuple[str, str, dict[str, Any]]] | None = None
              ) -> list[dict[str, Any]]:
        return [v for t, _, v in (self.log if out is None else out) if t == name]

    def state(self, table: Table, key: str) -> Any:
        return self.store.get(table, key)
