"""The contract's models: committed JSON Schemas, round trips, and what is refused."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from schemas.generate import SCHEMA_DIR, drift, rendered
from schemas.inputs import ChatMessage
from schemas.topics import SPECS


def test_committed_json_schemas_match_the_models() -> None:
    assert drift() == [], "run `handoff schemas` and commit schemas/json"


def test_every_contract_topic_has_a_schema_file() -> None:
    names = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert {f"{t}.schema.json" for t in SPECS} == names == set(rendered())


def test_chat_message_from_the_contract_parses_and_unknown_fields_are_ignored() -> None:
    raw = {"event_id": "m-1001", "conversation_id": "c-42", "account_id": "acme",
           "channel": "chat", "inbox_id": "support", "sender": "visitor",
           "text": "Kan jeg snakke med et menneske?", "sent_at": "2026-11-26T11:00:00+01:00",
           "answered": None, "language": None, "contact_id": None, "shoe_size": 44}
    message = ChatMessage.model_validate_json(orjson.dumps(raw), strict=True)
    assert message.sent_at.isoformat() == "2026-11-26T10:00:00+00:00"
    assert message.model_dump(mode="json")["sent_at"] == "2026-11-26T10:00:00Z"


@pytest.mark.parametrize("change, where", [
    ({"conversation_id": None}, "conversation_id"),
    ({"channel": "pigeon"}, "channel"),
    ({"answered": "false"}, "answered"),
    ({"sent_at": "2026-11-26T10:00:00"}, "sent_at"),  # no offset: not RFC 3339
    ({"event_id": ""}, "event_id"),
])
def test_wrong_types_and_values_are_refused_with_the_field_named(change: dict[str, object],
                                                                  where: str) -> None:
    raw = {"event_id": "m-1", "conversation_id": "c", "account_id": "a", "channel": "chat",
           "sender": "visitor", "text": "x", "sent_at": "2026-11-26T10:00:00Z", **change}
    with pytest.raises(ValidationError) as err:
        ChatMessage.model_validate_json(orjson.dumps(raw), strict=True)
    assert err.value.errors()[0]["loc"][0] == where
