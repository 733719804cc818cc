"""Builders of sequenced account events for tests of the core and of the running worker."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any

from pydantic import TypeAdapter

from schemas.internal import AccountEvent

_offsets = count()
_adapter: TypeAdapter[Any] = TypeAdapter(AccountEvent)

T0 = "2026-11-26T10:00:00Z"  # a Thursday, 11:00 in Oslo


def origin(topic: str) -> dict[str, Any]:
    return {"topic": topic, "partition": 0, "offset": next(_offsets)}


def seq(source: str, account_id: str, record: dict[str, Any] | None, **extra: Any) -> Any:
    """One sequenced event, validated exactly as the decision agent validates it."""
    body = {"source": source, "account_id": account_id, "origin": origin(source),
            "record": record, **extra}
    return _adapter.validate_python(body)


def message(event_id: str, text: str = "hello", *, conversation: str = "c-1",
            account: str = "acme", sender: str = "visitor", channel: str = "chat",
            at: str = T0, answered: bool | None = None, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "conversation_id": conversation, "account_id": account,
            "channel": channel, "sender": sender, "text": text, "sent_at": at,
            "answered": answered, **extra}


def chat(event_id: str, text: str = "hello", **kw: Any) -> Any:
    record = message(event_id, text, **kw)
    return seq("chat.messages", record["account_id"], record)


def control(event_id: str, action: str, account: str = "acme", at: str = T0) -> Any:
    return seq("agent.control", account, {"event_id": event_id, "account_id": account,
                                          "action": action, "occurred_at": at, "actor": "u-9"})


def presence(user: str, status: str = "available", account: str = "acme", at: str = T0,
             max_open: int | None = None) -> Any:
    return seq("agent.presence", account, {"event_id": f"p-{user}-{next(_offsets)}",
                                           "user_id": user, "status": status, "occurred_at": at,
                                           "max_open_conversations": max_open})


def user(ident: str, account: str = "acme", teams: tuple[str, ...] = (),
         permissions: tuple[str, ...] = (), name: str = "", languages: tuple[str, ...] = ()
         ) -> Any:
    record = {"kind": "user", "id": ident, "account_id": account, "name": name or ident,
              "teams": list(teams), "permissions": list(permissions),
              "languages": list(languages)}
    return seq("directory", account, record, key=f"user:{ident}", occurred_at=T0)


def team(ident: str, account: str = "acme", hours: list[dict[str, Any]] | None = None,
         timezone: str = "Europe/Oslo") -> Any:
    record = {"kind": "team", "id": ident, "account_id": account, "name": ident,
              "timezone": timezone, "business_hours": hours}
    return seq("directory", account, record, key=f"team:{ident}", occurred_at=T0)


def inbox(ident: str, kind: str = "inbox", account: str = "acme") -> Any:
    record = {"kind": "inbox", "id": ident, "account_id": account, "type": kind}
    return seq("directory", account, record, key=f"inbox:{ident}", occurred_at=T0)


def removed(key: str, account: str = "acme") -> Any:
    return seq("directory", account, None, key=key, occurred_at=T0)


def workflow(ident: str, rules: list[dict[str, Any]], account: str = "acme") -> Any:
    record = {"workflow_id": ident, "account_id": account, "name": ident, "rules": rules}
    return seq("workflows", account, record, workflow_id=ident, occurred_at=T0)


def config(event_id: str, cfg: dict[str, Any], actor: str = "u-admin",
           account: str = "acme") -> Any:
    return seq("handoff.config.requests", account, {
        "event_id": event_id, "account_id": account, "actor": actor, "occurred_at": T0,
        "config": cfg})


def update(event_id: str, action: str, conversation: str = "c-1", account: str = "acme",
           at: str = T0, actor: str | None = None) -> Any:
    return seq("conversation.updates", account, {
        "event_id": event_id, "conversation_id": conversation, "account_id": account,
        "action": action, "occurred_at": at, "actor": actor})


def tick(at: str, account: str = "acme") -> Any:
    """The service's clock in the account's log, as the loop writes it."""
    return _adapter.validate_python({"source": "clock", "account_id": account,
                                     "event_id": f"tick-{account}-{at}", "at": at})


def at(seconds: float, start: str = T0) -> str:
    """`start` plus `seconds`, as an RFC 3339 time."""
    moment = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")
