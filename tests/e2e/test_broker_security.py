"""The worker and the project's clients against a broker that demands SASL, or TLS.

A local broker of its own (handoff.localkafka with `sasl_users`): its client listener is
SASL_PLAINTEXT and takes PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 logins. Another one (with
`ssl`) has an SSL listener whose certificate is signed by a CA made with keytool at test time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from handoff import localkafka
from handoff.config import WorkerSettings
from handoff.kafka_clients import BrokerUnreachable, check_connection, client_kwargs
from schemas.topics import Topic
from streams.admin import ensure_topics
from tests.builders import message
from tests.kafka_support import REPO, Deployment, topic_names

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


# -- TLS --------------------------------------------------------------------------------------

STORE_PASSWORD = "store-Pw.7731"


@dataclass(frozen=True)
class SslBroker:
    address: str
    ca_pem: Path


def keytool(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["keytool", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, f"keytool {' '.join(args)}:\n{proc.stdout}{proc.stderr}"


def make_broker_keystore(folder: Path) -> tuple[Path, Path]:
    """A CA and a broker keystore whose certificate (for localhost) it signed: (keystore, CA PEM)."""
    store = ("-storetype", "PKCS12", "-storepass", STORE_PASSWORD)
    keytool("-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
            "-dname", "CN=handoff test CA", "-ext", "bc:c", "-validity", "2",
            "-keystore", "ca.p12", *store, cwd=folder)
    keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", "ca.p12", *store,
            "-file", "ca.pem", cwd=folder)
    keytool("-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
            "-dname", "CN=localhost", "-validity", "2", "-keystore", "broker.p12", *store,
            cwd=folder)
    keytool("-certreq", "-alias", "broker", "-keystore", "broker.p12", *store,
            "-file", "broker.csr", cwd=folder)
    # Python checks the name against the subject alternative names, not the CN.
    keytool("-gencert", "-alias", "ca", "-keystore", "ca.p12", *store, "-infile", "broker.csr",
            "-outfile", "broker.pem", "-rfc", "-validity", "2",
            "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-ext", "EKU=serverAuth", cwd=folder)
    # The signed certificate replaces the self-signed one only once its issuer is known.
    keytool("-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
            "-keystore", "broker.p12", *store, cwd=folder)
    keytool("-importcert", "-alias", "broker", "-file", "broker.pem",
            "-keystore", "broker.p12", *store, cwd=folder)
    return folder / "broker.p12", folder / "ca.pem"


@pytest.fixture(scope="module")
def ssl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SslBroker]:
    if shutil.which("keytool") is None:
        pytest.skip("the TLS test makes its certificates with the JDK's keytool")
    keystore, ca_pem = make_broker_keystore(tmp_path_factory.mktemp("tls"))
    state = tmp_path_factory.mktemp("kafka-ssl")
    address = localkafka.start(data_dir=state,
                               ssl=localkafka.SslKeystore(keystore, STORE_PASSWORD))
    try:
        yield SslBroker(address, ca_pem)
    finally:
        localkafka.stop(data_dir=state)


def ssl_env(broker: SslBroker) -> dict[str, str]:
    return {"HANDOFF_SECURITY_PROTOCOL": "SSL", "HANDOFF_SSL_CAFILE": str(broker.ca_pem)}


def test_the_projects_clients_produce_and_consume_over_tls(ssl_broker: SslBroker,
                                                           tmp_path: Path) -> None:
    dep = Deployment(ssl_broker.address, tmp_path, env=ssl_env(ssl_broker))
    assert client_kwargs(dep.settings)["security_protocol"] == "SSL"
    asyncio.run(check_connection(dep.settings))
    created = asyncio.run(ensure_topics(dep.settings))
    assert dep.settings.topic(Topic.CHAT_MESSAGES) in created
    dep.send(Topic.CHAT_MESSAGES, message("tls-1", account="a", conversation="c"))
    got = dep.read([Topic.CHAT_MESSAGES], lambda r: len(r) >= 1, timeout=20)
    assert [v["event_id"] for _, v in got] == ["tls-1"]


def test_a_client_without_the_ca_is_refused_with_the_reason(ssl_broker: SslBroker) -> None:
    # The system CAs do not know the test CA.
    settings = WorkerSettings(bootstrap_servers=ssl_broker.address,  # type: ignore[call-arg]
                              security_protocol="SSL")
    with pytest.raises(BrokerUnreachable) as refused:
        asyncio.run(check_connection(settings, timeout_s=10))
    text = str(refused.value)
    assert "CERTIFICATE_VERIFY_FAILED" in text, text
    assert "HANDOFF_SSL_" in text and ssl_broker.address in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _live(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False



def test_a_worker_over_tls_starts_and_answers_health(ssl_broker: SslBroker,
                                                     tmp_path: Path) -> None:
    """Only up to /health/live: the processing loop is being rewritten."""
    dep = Deployment(ssl_broker.address, tmp_path, env=ssl_env(ssl_broker))
    port = _free_port()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "handoff.cli", "worker"], cwd=REPO,
                                env={**dep.env, "HANDOFF_WEB_PORT": str(port)}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not _live(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        log_text = log_path.read_text(errors="replace")
        assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log_text[-3000:]}"
        assert _live(port), "no /health/live in time:\n" + log_text[-3000:]
        # It passed the connection check and created its topics through the TLS listener.
        assert dep.settings.topic(Topic.CHAT_MESSAGES) in asyncio.run(topic_names(dep.settings))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
