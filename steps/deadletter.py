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


# The default of HANDOFF_DEADLETTER_PAYLOAD_BYTES: even escaped 6x in JSON ("\u0000") or
# base64-encoded, a dead letter stays well under the broker's default 1 MiB message.max.bytes.
PAYLOAD_BYTES = 65_536
_MAX_ERROR_CHARS = 2_000


def record_time(timestamp: float | None) -> datetime:
    """A Kafka record's timestamp as a time; one no calendar can hold counts as none (epoch)."""
    try:
        return datetime.fromtimestamp(timestamp or 0.0, tz=UTC)
    except (OverflowError, OSError, ValueError):  # a producer may stamp any 64-bit number
        return datetime.fromtimestamp(0.0, tz=UTC)


def dead_letter(source_topic: str, partition: int, offset: int, timestamp: float | None,
                value: bytes | None, error: str, max_payload_bytes: int = PAYLOAD_BYTES
                ) -> DeadLetter:
    """The dead letter record for one input record; its time is the record's, not the clock's.

    A record larger than `max_payload_bytes` keeps only its first bytes (`payload_truncated`),
    so the dead letter itself can always be produced.
    """
    raw = value or b""
    kept = raw[:max_payload_bytes]
    try:
        raw.decode("utf-8")
        # Cut on a character boundary: only the last character can be incomplete.
        payload, encoding = kept.decode("utf-8", "ignore"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    return DeadLetter(
        event_id=derive_id("deadletter", source_topic, str(partition), str(offset)),
        source_topic=source_topic, partition=partition, offset=offset,
        error=error[:_MAX_ERROR_CHARS], payload=payload, payload_encoding=encoding,
        occurred_at=record_time(timestamp), payload_truncated=len(kept) < len(raw), payload_bytes=len(raw))
