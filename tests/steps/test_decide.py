"""The decision step's parse cache: an event built at intake stands in for parsing its bytes."""

from __future__ import annotations

from schemas.codec import dumps
from schemas.topics import Topic
from steps.decide import Parsed, build_engine, decide, parse
from steps.intake import InputRecord, intake
from steps.validation import Limits
from tests.steps.test_intake import CHAT, NOW, SENT, Lookups


class Empty:
    def get(self, table: object, key: str) -> object | None:
        return None


def forwarded() -> tuple[bytes, object]:
    record = InputRecord(Topic.CHAT_MESSAGES, 0, 3, SENT, b"c-1", dumps(CHAT))
    forward = intake(record, Lookups(), Limits(), NOW).forwards[0]
    return forward.value, forward.event


def test_an_event_is_taken_once_by_its_exact_bytes() -> None:
    value, event = forwarded()
    parsed = Parsed()
    parsed.put(value, event)
    assert parsed.take(bytes(bytearray(value))) is event  # equal bytes, another object
    assert parsed.take(value) is None
    assert parsed.take(None) is None


def test_a_full_cache_keeps_the_oldest_events_and_takes_no_more() -> None:
    parsed = Parsed(limit=2)
    for n in range(3):
        parsed.put(b"%d" % n, n + 1)
    assert len(parsed) == 2
    assert parsed.take(b"2") is None
    assert parsed.take(b"0") == 1
    parsed.clear()
    assert parsed.take(b"1") is None


def test_deciding_a_known_event_is_deciding_its_parsed_bytes() -> None:
    value, event = forwarded()
    engine = build_engine()
    known = decide(engine, Empty(), value, event)
    read = decide(engine, Empty(), value)
    assert known.rejected is None and read.rejected is None
    assert known.event == read.event == parse(value)
    assert known.decision == read.decision
