"""Setting a bad record aside on the dead letter topic, with its reason and coordinates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import ValidationError

from handoff.core.engine import derive_id
from schemas.outputs import DeadLetter

_MAX_ERRORS = 5


def describe(exc: ValidationError) -> str:
    """A validation error as one line: where each problem is and what it is."""
    parts = []
    for err in exc.errors(include_url=False)[:_MAX_ERRORS]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - _MAX_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def dead_letter(source_topic: str, partition: int, offset: int, timestamp: float | None,
                value: bytes | None, error: str) -> DeadLetter:
    """The dead letter record for one input record; its time is the record's, not the clock's."""
    raw = value or b""
    try:
        payload, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    at = datetime.fromtimestamp(timestamp or 0.0, tz=UTC)
    return DeadLetter(
        event_id=derive_id("deadletter", source_topic, str(partition), str(offset)),
        source_topic=source_topic, partition=partition, offset=offset, error=error,
        payload=payload, payload_encoding=encoding,
        occurred_at=at)
