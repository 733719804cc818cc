"""Checking a config request: who may change handoff settings, and whether they make sense.

Every refusal says what to fix, in the editor's terms, because it is shown next to the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from handoff.core.state import AccountState
from handoff.triggers.custom import normalize_phrase
from schemas.inputs import ConfigRequest, InboxType
from schemas.settings import (
    Assignee,
    DirectRouting,
    HandoffConfig,
    HandoffMessages,
    LanguageRouting,
    WorkflowRouting,
)

EDIT_PERMISSION = "customer_agent.edit"
_QUEUE_PLACEHOLDERS = {"position", "wait_minutes"}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def check_permission(request: ConfigRequest, account: AccountState) -> str | None:
    """Why the actor may not edit this account's settings, or None when they may."""
    user = account.users.get(request.actor)
    if user is None:
        return f"user {request.actor} is not a user of account {request.account_id}"
    if EDIT_PERMISSION not in user.permissions:
        return f"user {request.actor} lacks the {EDIT_PERMISSION} permission"
    return None


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        # Pydantic names the union member it tried ("direct"); the editor knows no such field.
        if part in ("direct", "workflow", "function-after[_to_utc(), datetime]"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_fields(raw: dict[str, object]) -> list[FieldError]:
    """Keys the config model does not know (a typo would otherwise be dropped silently).

    The stream ignores unknown fields, as the contract says of every input; the HTTP API
    refuses them so that an editor learns of the typo instead of saving the defaults.
    """
    errors: list[FieldError] = []

    def walk(value: object, model: type[BaseModel], path: str) -> None:
        if not isinstance(value, dict):
            return
        for key in value:
            if key not in model.model_fields:
                known = ", ".join(model.model_fields)
                errors.append(FieldError(f"{path}{key}", f"unknown setting; known here: {known}"))

    walk(raw, HandoffConfig, "")
    routing = raw.get("routing")
    if isinstance(routing, dict):
        mode = {"direct": DirectRouting, "workflow": WorkflowRouting}.get(str(routing.get("mode")))
        if mode is not None:
            walk(routing, mode, "routing.")
        assignees = routing.get("assignees")
        if mode is DirectRouting and isinstance(assignees, list):
            for index, entry in enumerate(assignees):
                walk(entry, Assignee, f"routing.assignees[{index}].")
    walk(raw.get("messages"), HandoffMessages, "messages.")
    walk(raw.get("language_routing"), LanguageRouting, "language_routing.")
    return errors


def help_desks(account: AccountState) -> list[str]:
    """The account's help desks in directory order, as the editor knows them."""
    return [i.id for i in account.inboxes.values() if i.type is InboxType.HELP_DESK]


def only_help_desk(account: AccountState) -> tuple[str | None, str]:
    """The account's one help desk, or None and why a workflow without a destination cannot be
    saved (naming the help desks to choose from)."""
    found = [i for i in account.inboxes.values() if i.type is InboxType.HELP_DESK]
    if len(found) == 1:
        return found[0].id, ""
    if not found:
        return None, (f"account {account.account_id} has no help desk, and ticket-based "
                      "workflows need one: add a help desk to the account's directory")
    names = ", ".join(f"{i.name} ({i.id})" if i.name and i.name != i.id else i.id
                      for i in found)
    return None, (f"account {account.account_id} has {len(found)} help desks; choose the one "
                  f"for the tickets: {names}")


def check_config(raw: dict[str, object], account: AccountState
                 ) -> tuple[HandoffConfig | None, list[FieldError]]:
    """Validate a config against the contract and the account's directory."""
    try:
        config = HandoffConfig.model_validate(raw)
    except ValidationError as exc:
        return None, [FieldError(_location(e["loc"]), e["msg"]) for e in exc.errors()]
    errors: list[FieldError] = []
    phrases: dict[str, str] = {}
    for index, phrase in enumerate(config.custom_triggers):
        key = normalize_phrase(phrase)
        if not key:
            errors.append(FieldError(f"custom_triggers[{index}]",
                                     f"'{phrase}' has no letters or digits to match"))
        phrases.setdefault(key, phrase)
    for name, text in config.messages:
        if text is not None and not text.strip():
            errors.append(FieldError(f"messages.{name}",
                                     "is blank; write the message the visitor should see"))
    queue_text = config.messages.queue_position
    if queue_text is not None:
        unknown = sorted(set(re.findall(r"\{([^{}]*)\}", queue_text)) - _QUEUE_PLACEHOLDERS)
        if "{position}" not in queue_text:
            errors.append(FieldError("messages.queue_position",
                                     "must contain {position}, the visitor's place in line"))
        if unknown:
            errors.append(FieldError("messages.queue_position", "unknown placeholder "
                                     + ", ".join("{" + u + "}" for u in unknown)
                                     + "; use {position} and optionally {wait_minutes}"))
    routing = config.routing
    if isinstance(routing, WorkflowRouting) and routing.destination is None:
        help_desk, why = only_help_desk(account)
        if help_desk is None:
            errors.append(FieldError("routing.destination", why))
        else:
            # Accepted as "the account's help desk" and saved naming it: the tickets of this
            # version go there even if the directory gains a second help desk later.
            routing = routing.model_copy(update={"destination": help_desk})
            config = config.model_copy(update={"routing": routing})
    elif routing.destination is not None:
        inbox = account.inboxes.get(routing.destination)
        if inbox is None:
            errors.append(FieldError("routing.destination",
                                     f"inbox or help desk {routing.destination} does not exist "
                                     f"in account {account.account_id}"))
        elif isinstance(routing, WorkflowRouting) and inbox.type is not InboxType.HELP_DESK:
            errors.append(FieldError("routing.destination",
                                     f"{routing.destination} is an inbox; ticket-based workflows "
                                     "need a help desk"))
    if isinstance(routing, WorkflowRouting) and routing.workflow_id not in account.workflows:
        errors.append(FieldError("routing.workflow_id",
                                 f"workflow {routing.workflow_id} does not exist in account "
                                 f"{account.account_id}"))
    if isinstance(routing, DirectRouting):
        listed: set[tuple[str, str]] = set()
        for index, entry in enumerate(routing.assignees):
            known = account.users if entry.type == "user" else account.teams
            if entry.id not in known:
                errors.append(FieldError(f"routing.assignees[{index}]",
                                         f"{entry.type} {entry.id} does not exist in account "
                                         f"{account.account_id}"))
            elif (entry.type, entry.id) in listed:
                errors.append(FieldError(f"routing.assignees[{index}]",
                                         f"{entry.type} {entry.id} is listed twice; remove one"))
            listed.add((entry.type, entry.id))
    if errors:
        return None, errors
    # Duplicates after normalisation match the same messages: keep the first spelling only.
    return config.model_copy(update={"custom_triggers": list(phrases.values())}), []
