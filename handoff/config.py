"""The worker's own settings, from the environment (and an optional .env file), checked at start.

pydantic-settings does the reading and type checks, so a bad value is refused with the
variable's name and what is allowed instead of failing later inside a stream.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
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
    # Broker security: every Kafka client of the project takes these through
    # handoff/kafka_clients.py (the Faust app, publishers, admin, replay, tests).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how to reach the brokers; SASL_* need a user and password")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(
        None, validate_default=True,
        description="never printed or logged (a SecretStr); required with SASL_*")
    ssl_cafile: FilePath | None = Field(
        None, description="CA bundle to check the brokers' certificates (default: system CAs)")
    ssl_certfile: FilePath | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: FilePath | None = Field(None, description="client certificate's private key")
    ssl_key_password: SecretStr | None = None
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$",
                              description="prefix for every topic name")
    app_id: str = Field("handoff", pattern=r"^[A-Za-z0-9._-]+$",
                        description="consumer group and state id (prefixed with topic_prefix)")
    partitions: int = Field(4, ge=1, le=1024,
                            description="partitions of topics this service creates")
    replication_factor: int = Field(1, ge=1, le=16)
    create_topics: bool = Field(True, description="create missing contract topics at start")
    # Every cycle's outputs, changelogs and input offsets go out in one transaction per task
    # (streams/loop.py): one path, so at_least_once (the Faust-era default) is refused.
    processing_guarantee: Literal["exactly_once"] = "exactly_once"
    batch_max_records: int = Field(
        2_000, ge=1, le=100_000,
        description="most records the loop reads in one cycle (one transaction per task)")
    batch_wait_ms: int = Field(
        100, ge=1, le=10_000,
        description="longest the loop waits for records before a cycle with none; a cycle "
                    "starts as soon as any record is there")
    fetch_wait_ms: int = Field(
        10, ge=1, le=500,
        description="longest the broker holds the loop's fetch open waiting for data: "
                    "aiokafka fetches a partition whose records were just read only once the "
                    "fetch in flight returns, so a long wait (its default is 500 ms) stalls "
                    "busy partitions behind idle ones")
    tick_interval_ms: int = Field(
        1_000, ge=10, le=60_000,
        description="how often the loop writes the clock into the log of each account with "
                    "something waiting (a queue, a pickup timer); timeouts fire at this grain")
    producer_linger_ms: int = Field(
        2, ge=0, le=1_000,
        description="how long the transactional producers wait to fill a request")
    producer_batch_bytes: int = Field(
        524_288, ge=16_384, le=1_000_000,
        description="largest batch the transactional producers send to one partition: "
                    "aiokafka keeps one batch per partition in flight, and a send to a full "
                    "one waits for a round trip (its default is 16 KiB, a few dozen records "
                    "of a cycle's thousands); below the broker's message.max.bytes (1 MiB)")
    producer_retry_backoff_ms: int = Field(
        5, ge=1, le=10_000,
        description="how long the transactional producers wait before retrying a request")
    transaction_retry_ms: int = Field(
        2, ge=1, le=1_000,
        description="how soon the transactional producers ask again to add a partition while "
                    "the broker still writes the previous transaction's markers (aiokafka "
                    "waits 20 ms; a probe met that wait on every transaction while the broker "
                    "was busy)")
    gc_threshold: int = Field(
        50_000, ge=0, le=10_000_000,
        description="allocations between the worker's young-generation garbage collections "
                    "(Python's default is 700; 0 keeps Python's settings)")
    session_timeout_s: float = Field(
        60.0, ge=6.0, le=1_800.0,
        description="how long the group waits for a worker that stopped heartbeating (a crash) "
                    "before its partitions move; also how long a restarted worker may wait")
    store: str = Field("memory://", pattern=r"^(memory://|rocksdb://).*$",
                       description="table store; rocksdb:// needs the rocksdict package")
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
    max_text_chars: int = Field(100_000, ge=1, le=16 * 1024 * 1024,
                                description="chat messages with a longer text go to the dead "
                                            "letter topic")
    max_json_depth: int = Field(32, ge=4, le=512,
                                description="input records whose arrays/objects nest deeper go "
                                            "to the dead letter topic")
    deadletter_payload_bytes: int = Field(
        65_536, ge=256, le=512 * 1024,
        description="a dead letter keeps at most this many bytes of the original record "
                    "(then payload_truncated is true), so it always fits the broker's "
                    "message.max.bytes")
    human_request_dirs: list[Path] = Field(
        default_factory=list, description="extra folders of human-request phrase files")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="worker logs: Faust's text, or one JSON object per line")

    @field_validator("sasl_password")
    @classmethod
    def _sasl_needs_credentials(cls, value: SecretStr | None, info: ValidationInfo
                                ) -> SecretStr | None:
        protocol = info.data.get("security_protocol", "PLAINTEXT")
        if protocol.startswith("SASL_") and (value is None or not info.data.get("sasl_username")):
            raise ValueError(f"HANDOFF_SECURITY_PROTOCOL={protocol} needs HANDOFF_SASL_USERNAME "
                             "and HANDOFF_SASL_PASSWORD")
        return value

    def topic(self, name: str) -> str:
        """The full topic name of a contract topic under this prefix."""
        return f"{self.topic_prefix}{name}"

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}{self.app_id}"


class SettingsError(SystemExit):
    """A bad setting: says which variable and what is allowed, and stops the program."""


def is_secret(name: str) -> bool:
    """Whether a setting holds a secret: its value is never printed."""
    return any(word in name.lower() for word in ("password", "secret", "token"))


def load_settings(**overrides: object) -> WorkerSettings:
    """Read the settings, turning validation errors into one readable message.

    `HANDOFF_ENV_FILE` names an optional file of `NAME=value` lines; the environment wins.
    """
    env_file = os.environ.get("HANDOFF_ENV_FILE") or None
    if env_file is not None and not Path(env_file).is_file():
        raise SettingsError(f"invalid settings: HANDOFF_ENV_FILE={env_file!r} is not a file")
    try:
        return WorkerSettings(_env_file=env_file, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            env = name if name.isupper() else f"HANDOFF_{name.upper()}"
            shown = "'********'" if is_secret(name) else repr(err.get("input"))
            lines.append(f"  {env}={shown}: {err['msg']}")
        raise SettingsError("invalid settings, fix these and start again:\n" + "\n".join(lines)) from None
