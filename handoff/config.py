"""The worker's own settings, from the environment (and an optional .env file), checked at start.

pydantic-settings does the reading and type checks, so a bad value is refused with the
variable's name and what is allowed instead of failing later inside a stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    """Everything the worker and the command line read from the environment."""

    model_config = SettingsConfigDict(env_prefix="HANDOFF_", env_file=None, extra="ignore",
                                      populate_by_name=True)

    bootstrap_servers: str = Field(
        "localhost:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "HANDOFF_BOOTSTRAP_SERVERS"),
        pattern=r"^[^\s,]+:\d+(,[^\s,]+:\d+)*$",
        description="Kafka brokers, host:port[,host:port]",
    )
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$",
                              description="prefix for every topic name")
    app_id: str = Field("handoff", pattern=r"^[A-Za-z0-9._-]+$",
                        description="consumer group and state id (prefixed with topic_prefix)")
    partitions: int = Field(4, ge=1, le=1024,
                            description="partitions of topics this service creates")
    replication_factor: int = Field(1, ge=1, le=16)
    create_topics: bool = Field(True, description="create missing contract topics at start")
    # at_least_once until the exactly-once work (issue 7) proves Faust's transactions here;
    # decisions already drop redelivered inputs by event_id.
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "at_least_once"
    store: str = Field("memory://", pattern=r"^(memory://|rocksdb://|rocksdict://).*$")
    data_dir: Path = Path(".handoff-data")
    web_port: int = Field(6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    sequencing_window_ms: int = Field(
        1_000, ge=0, le=60_000,
        description="longest intake waits for a lagging input partition before forwarding "
                    "younger records (the cross-topic ordering bound)")
    sequencing_hold_ms: int = Field(
        20, ge=0, le=10_000,
        description="shortest time intake holds a record, so records sent together without "
                    "waiting for acknowledgements are still forwarded in timestamp order")
    max_record_bytes: int = Field(262_144, ge=1_024, le=16 * 1024 * 1024,
                                  description="larger input records go to the dead letter topic")
    human_request_dirs: list[Path] = Field(
        default_factory=list, description="extra folders of human-request phrase files")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def topic(self, name: str) -> str:
        """The full topic name of a contract topic under this prefix."""
        return f"{self.topic_prefix}{name}"

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}{self.app_id}"


class SettingsError(SystemExit):
    """A bad setting: says which variable and what is allowed, and stops the program."""


def load_settings(**overrides: object) -> WorkerSettings:
    """Read the settings, turning validation errors into one readable message."""
    try:
        return WorkerSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            env = name if name.isupper() else f"HANDOFF_{name.upper()}"
            lines.append(f"  {env}={err.get('input')!r}: {err['msg']}")
        raise SettingsError("invalid settings, fix these and start again:\n" + "\n".join(lines)) from None
