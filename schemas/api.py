"""Models of the settings API: its token records on Kafka and the bodies of its HTTP answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import Record, Timestamp
from schemas.inputs import InboxType
from schemas.settings import HandoffConfig

TokenId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class ApiToken(Record):
    """`handoff.api-tokens` (compacted, key `token_id`): who a bearer token stands for.

    Only the token's SHA-256 is stored; a revoked token's key gets a tombstone (null value).
    """

    token_id: TokenId
    user_id: Annotated[str, Field(min_length=1, max_length=256)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_at: Timestamp
    note: str = ""


class FieldErrorBody(Record):
    """One thing to fix: `field` is a path into the config (`routing.destination`,
    `custom_triggers[2]`), empty when the error is not about one field."""

    field: str
    message: str


class ErrorBody(Record):
    """What every refusal (401, 403, 404, 422, 503, 504) answers."""

    error: str
    errors: list[FieldErrorBody] = []


class ConflictBody(ErrorBody):
    """412: the `If-Match` of a PUT named a version that is no longer the current one; the
    current version, who saved it and when (extension, contract v1.1)."""

    version: int
    actor: str | None = None
    updated_at: Timestamp | None = None


class SettingsBody(Record):
    """An account's settings as accepted (version 0: the defaults, never saved)."""

    account_id: str
    version: int
    config: HandoffConfig
    actor: str | None = None
    event_id: str | None = None
    updated_at: Timestamp | None = None


class HistoryBody(Record):
    account_id: str
    versions: list[SettingsBody]


class ValidationBody(Record):
    valid: Literal[True]
    config: HandoffConfig


class OptionUser(Record):
    id: str
    name: str
    # Users only (v1.1): the languages the directory lists, for language routing.
    languages: list[str] = []


class OptionInbox(Record):
    id: str
    name: str
    type: InboxType


class OptionWorkflow(Record):
    workflow_id: str
    name: str


class OptionsBody(Record):
    """What the account's directory offers the settings page's drop-downs."""

    account_id: str
    inboxes: list[OptionInbox]
    users: list[OptionUser]
    teams: list[OptionUser]
    workflows: list[OptionWorkflow]


class PreviewTally(Record):
    """What one run decided in the range: as recorded, or with the proposed settings."""

    handoffs: int
    unassigned: int
    tickets: int
    by_trigger: dict[str, int]
    by_assignee: dict[str, int]


class PreviewRange(Record):
    from_: Annotated[str, Field(alias="from", serialization_alias="from")]
    to: str
    records: int  # the account's records in the range, each decided twice


class PreviewBody(Record):
    """`POST .../handoff-settings/preview` (contract v1.1): the what-if of `handoff simulate`
    for the proposed settings over the account's recorded traffic."""

    account_id: str
    range: PreviewRange
    recorded: PreviewTally
    proposed: PreviewTally
    changed_conversations: int
    warnings: list[str] = []


class PreviewPending(Record):
    """202: the preview is still running; GET `poll` until it answers 200."""

    status: Literal["running"]
    poll: str
    started_at: Timestamp
