"""Types shared by every topic model: timestamps, enums and the base model."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, PlainSerializer

# Times a day away from the calendar's ends: any time zone or a day's arithmetic on them stays
# inside what `datetime` can hold, so a hostile timestamp cannot overflow in the core.
_EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
_LATEST = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        raise ValueError("timestamp outside the years 0002-9998")
    return utc


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, to the microsecond only when there is one."""
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


# Offsets are required (RFC 3339) and folded to UTC so that replay prints the same bytes.
Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]


class Record(BaseModel):
    """Base of every wire model: unknown input fields are ignored, as the contract says."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class Channel(StrEnum):
    CHAT = "chat"
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    MESSENGER = "messenger"
    INSTAGRAM = "instagram"
    SMS = "sms"
    VOICE = "voice"
    FORM = "form"
    OTHER = "other"


class Sender(StrEnum):
    VISITOR = "visitor"
    CUSTOMER_AGENT = "customer_agent"
    HUMAN_AGENT = "human_agent"


class TriggerKind(StrEnum):
    NO_ANSWER = "no_answer"
    HUMAN_REQUESTED = "human_requested"
    AGENT_PAUSED = "agent_paused"
    CUSTOM_PHRASE = "custom_phrase"


class Process(StrEnum):
    LIVE = "live"
    ASYNC = "async"
    NONE = "none"


class UnassignedChat(StrEnum):
    KEEP_OPEN = "keep_open"
    CLOSE = "close"
