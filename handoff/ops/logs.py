"""Logs: plain text by default, one JSON object per line with `HANDOFF_LOG_FORMAT=json`.

Rules the loop follows: one line per decision, at DEBUG only; nothing at INFO or above carries
message text or secrets; every line about a record carries its `event_id` (and where it was
read: topic, partition, offset) as fields, passed with `extra=record_fields(...)`.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson

from handoff.config import WorkerSettings
from handoff.core.store import Decision
from schemas.internal import AccountEvent, SequencedTick
from schemas.topics import Topic

decisions_log = logging.getLogger("handoff.decisions")

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def record_fields(event_id: str | None, topic: str, partition: int, offset: int
                  ) -> dict[str, Any]:
    """The `extra=` of a log line about one record."""
    return {"event_id": event_id, "topic": topic, "partition": partition, "offset": offset}


def event_fields(event: AccountEvent) -> dict[str, Any]:
    """`record_fields` of a sequenced account event (its input's id and origin)."""
    if isinstance(event, SequencedTick):  # the clock has no input record
        return record_fields(event.event_id, Topic.ACCOUNT_EVENTS.value, -1, -1)
    origin = event.origin
    return record_fields(getattr(event.record, "event_id", None), origin.topic,
                         origin.partition, origin.offset)


def log_decision(event: AccountEvent, decision: Decision, seconds: float) -> None:
    """The one DEBUG line per decision: what came in and what went out, never any text."""
    if not decisions_log.isEnabledFor(logging.DEBUG):
        return
    emitted = Counter(str(e.topic) for e in decision.emits)
    decisions_log.debug(
        "decided %s event: %d records out, %d writes, %.2f ms", event.source,
        len(decision.emits), len(decision.writes), seconds * 1000,
        extra={**event_fields(event), "account_id": event.account_id,
               "emitted": dict(emitted), "duration_ms": round(seconds * 1000, 3)})


def logging_config(settings: WorkerSettings) -> dict[str, Any] | None:
    """A `logging.config.dictConfig` for the worker: `None` keeps Faust's own text format."""
    if settings.log_format != "json":
        return None
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": sys.stdout, "level": level}},
        "root": {"level": level, "handlers": ["default"]},
    }


def configure_logging(settings: WorkerSettings) -> None:
    """JSON logs from the first line on when asked (Faust re-applies the same config later);
    Python warnings go through logging too, so every line is JSON."""
    config = logging_config(settings)
    if config is not None:
        logging.config.dictConfig(config)
        logging.captureWarnings(True)


def worker_options(settings: WorkerSettings) -> dict[str, Any]:
    """Keyword arguments for `faust.Worker`: JSON logs (and no banner) when asked."""
    config = logging_config(settings)
    if config is None:
        return {"loglevel": settings.log_level.upper()}
    return {"loglevel": settings.log_level.upper(), "logging_config": config, "quiet": True}
