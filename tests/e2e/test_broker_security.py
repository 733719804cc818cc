"""The worker and the project's clients against a broker that demands SASL.

A local broker of its own (handoff.localkafka with `sasl_users`): its client listener is
SASL_PLAINTEXT and takes PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 logins.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from handoff import localkafka
from schemas.topics import Topic
from streams.admin import ensure_topics
from tests.builders import message
from tests.kafka_support import REPO, Deployment

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(shutil.which("java") is None or shutil.which("mvn") is None,
                       reason="the local Kafka broker needs java and mvn on PATH"),
]

USER, PASSWORD = "handoff-svc", "pw-Zq81.Xv7_secret"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("kafka-sasl")
    address = localkafka.start(data_dir=state, sasl_users={USER: PASSWORD})
    try:
        yield address
    finally:
        localkafka.stop(data_dir=state)


def sasl_env(mechanism: str = "PLAIN", password: str = PASSWORD) -> dict[str, str]:
    return {"HANDOFF_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "HANDOFF_SASL_MECHANISM": mechanism,
            "HANDOFF_SASL_USERNAME": USER, "HANDOFF_SASL_PASSWORD": password}


def test_a_worker_over_sasl_plain_hands_off_and_never_logs_the_password(
        sasl_broker: str, tmp_path: Path) -> None:
    dep = Deployment(sasl_broker, tmp_path, env=sasl_env("PLAIN"))
    worker = dep.worker()
    worker.start()
    try:
        dep.send(Topic.CHAT_MESSAGES, message("sasl-1", "I want to talk to a human",
                                              account="acct-sasl", conversation="c-sasl"))
        out = dep.read([Topic.HANDOFF_EVENTS], lambda r: len(r) >= 1, timeout=30)
    finally:
        worker.stop()
    assert [(t, v["conversation_id"]) for t, v in out] == [("handoff.events", "c-sasl")]
    assert PASSWORD not in worker.log_path.read_text(errors="replace")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_projects_clients_log_in_with_scram(sasl_broker: str, tmp_path: Path,
                                                 mechanism: str) -> None:
    """Publisher, topic admin and reader: all through handoff/kafka_clients.py."""
    dep = Deployment(sasl_broker, tmp_path, env=sasl_env(mechanism))
    created = asyncio.run(ensure_topics(dep.settings))
    assert dep.settings.topic(Topic.CHAT_MESSAGES) in created
    dep.send(Topic.CHAT_MESSAGES, message("scram-1", account="a", conversation="c"))
    got = dep.read([Topic.CHAT_MESSAGES], lambda r: len(r) >= 1, timeout=20)
    assert got[0][1]["event_id"] == "scram-1"


def test_a_wrong_password_stops_the_worker_with_the_reason(sasl_broker: str,
                                                           tmp_path: Path) -> None:
    wrong = "not-the-Password-42"
    dep = Deployment(sasl_broker, tmp_path, env=sasl_env("PLAIN", password=wrong))
    proc = subprocess.run([sys.executable, "-m", "handoff.cli", "worker"], cwd=REPO,
                          env=dep.env, capture_output=True, text=True, timeout=60, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "SaslAuthenticationFailed" in output
    assert "HANDOFF_SASL_PASSWORD" in output and repr(USER) in output
    assert wrong not in output


def test_sasl_without_a_password_is_refused_by_the_settings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_SASL")}
    env.update(sasl_env(), PYTHONPATH=str(REPO))
    del env["HANDOFF_SASL_PASSWORD"]
    proc = subprocess.run([sys.executable, "-m", "handoff.cli", "worker"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "HANDOFF_SASL_PASSWORD" in proc.stderr + proc.stdout
