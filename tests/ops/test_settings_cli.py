"""Settings from the environment or a file, `handoff config-check`, and a bad setting at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import Field, SecretStr

from handoff import config
from handoff.cli import main
from handoff.config import WorkerSettings
from handoff.ops import cli as ops_cli
from handoff.ops.logs import logging_config, worker_options

REPO = Path(__file__).resolve().parents[2]


class WithSecrets(WorkerSettings):
    """The settings once the security work adds credentials (names only matter here)."""

    sasl_password: str = Field("", min_length=8)
    api_token: str = ""
    ssl_key_secret: SecretStr | None = None


def test_config_check_prints_the_effective_settings() -> None:
    result = CliRunner().invoke(main, ["config-check"], env={
        "HANDOFF_PARTITIONS": "12", "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "HANDOFF_LOG_FORMAT": "json"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "HANDOFF_PARTITIONS=12" in lines
    assert "KAFKA_BOOTSTRAP_SERVERS=k1:9092,k2:9092" in lines
    assert "HANDOFF_LOG_FORMAT=json" in lines
    assert "HANDOFF_WEB_PORT=6066  # default" in lines


def test_config_check_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_SASL_PASSWORD", "hunter2-hunter2")
    monkeypatch.setenv("HANDOFF_API_TOKEN", "tok-123456")
    monkeypatch.setenv("HANDOFF_SSL_KEY_SECRET", "s3cr3t-value")
    monkeypatch.setattr(ops_cli, "load_settings", lambda: WithSecrets())
    for args in (["config-check"], ["config-check", "--json"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        for secret in ("hunter2-hunter2", "tok-123456", "s3cr3t-value"):
            assert secret not in result.output
    shown = json.loads(result.output)
    assert shown["HANDOFF_SASL_PASSWORD"] == "********"
    assert shown["HANDOFF_API_TOKEN"] == "********"
    assert shown["HANDOFF_SSL_KEY_SECRET"] == "********"
    assert shown["HANDOFF_TOPIC_PREFIX"] == ""  # an empty value is shown as empty


def test_a_refused_secret_is_named_but_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "WorkerSettings", WithSecrets)
    monkeypatch.setenv("HANDOFF_SASL_PASSWORD", "short")
    with pytest.raises(SystemExit) as stop:
        config.load_settings()
    assert "HANDOFF_SASL_PASSWORD='********'" in str(stop.value)
    assert "'short'" not in str(stop.value)


def test_config_check_refuses_a_bad_value_naming_the_variable() -> None:
    result = CliRunner().invoke(main, ["config-check"], env={"HANDOFF_LOG_FORMAT": "xml",
                                                             "HANDOFF_WEB_PORT": "70000"})
    assert result.exit_code != 0
    message = str(result.exception)
    assert "HANDOFF_LOG_FORMAT='xml'" in message and "'text' or 'json'" in message
    assert "HANDOFF_WEB_PORT='70000'" in message


def test_settings_file_is_read_and_the_environment_wins(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "handoff.env"
    env_file.write_text("HANDOFF_PARTITIONS=8\nHANDOFF_TOPIC_PREFIX=from-file.\n")
    monkeypatch.setenv("HANDOFF_ENV_FILE", str(env_file))
    monkeypatch.setenv("HANDOFF_TOPIC_PREFIX", "from-env.")
    settings = config.load_settings()
    assert (settings.partitions, settings.topic_prefix) == (8, "from-env.")
    monkeypatch.setenv("HANDOFF_ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(SystemExit, match="HANDOFF_ENV_FILE"):
        config.load_settings()


def test_a_wrong_setting_stops_the_worker_at_start_naming_the_variable() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HANDOFF_PARTITIONS": "0",
           "HANDOFF_PROCESSING_GUARANTEE": "maybe_once",
           # Nowhere to connect to: the worker must stop before it tries.
           "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "handoff.cli", "worker"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "HANDOFF_PARTITIONS='0': Input should be greater than or equal to 1" in done.stderr
    assert "HANDOFF_PROCESSING_GUARANTEE='maybe_once'" in done.stderr
    assert "Input should be 'exactly_once'" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30


def test_json_logs_are_asked_for_by_setting() -> None:
    text = WorkerSettings()  # type: ignore[call-arg]
    assert logging_config(text) is None
    assert worker_options(text) == {"loglevel": "INFO"}
    as_json = WorkerSettings(log_format="json", log_level="debug")  # type: ignore[call-arg]
    options = worker_options(as_json)
    assert options["quiet"] is True and options["loglevel"] == "DEBUG"
    assert options["logging_config"]["handlers"]["default"]["formatter"] == "json"


def test_production_topics_are_compacted_where_the_contract_says_and_keep_two_in_sync() -> None:
    from schemas.topics import Topic
    from streams.admin import topic_configs

    assert topic_configs(Topic.DIRECTORY, 3) == {"cleanup.policy": "compact",
                                                  "min.insync.replicas": "2"}
    assert topic_configs(Topic.WORKFLOWS, 3)["cleanup.policy"] == "compact"
    assert topic_configs(Topic.CHAT_MESSAGES, 3) == {"cleanup.policy": "delete",
                                                      "min.insync.replicas": "2"}
    assert "min.insync.replicas" not in topic_configs(Topic.DIRECTORY, 1)
