"""Real Kafka for tests: a broker chosen in the contract's order, and workers as processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from handoff.config import WorkerSettings
from handoff.kafka_clients import client_kwargs
from handoff.publish import record_key, send_records
from schemas.topics import Topic

REPO = Path(__file__).resolve().parent.parent


def docker_answers() -> bool:
    """Whether a Docker daemon answers (the client alone is not enough)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextmanager
def broker() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set; else testcontainers with Docker; else the local broker."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        container = (KafkaContainer("apache/kafka:4.1.2").with_kraft()
                     .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
                     .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
                     .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"))
        with container:
            yield container.get_bootstrap_server()
        return
    from handoff import localkafka

    already = localkafka.status()
    address = already or localkafka.start()
    try:
        yield address
    finally:
        if already is None:
            localkafka.stop()


class Worker:
    """`handoff worker` in its own process, as an operator runs it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 90.0) -> None:
        """Start the worker and wait until Faust reports it ready."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handoff.cli", "worker"], cwd=REPO, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read()
            if b"Ready" in text:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited {self.process.returncode}:\n{text.decode()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError("worker not ready in time:\n" + self.log_path.read_text()[-3000:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class Deployment:
    """A topic prefix of our own on the broker, with helpers to send inputs and read outputs."""

    def __init__(self, bootstrap: str, tmp: Path, partitions: int = 2,
                 env: dict[str, str] | None = None) -> None:
        """`env`: extra HANDOFF_* settings for the workers and this side's clients alike
        (security, processing guarantee, ...)."""
        self.prefix = f"t{uuid.uuid4().hex[:10]}."
        extra = dict(env or {})
        own = {k.removeprefix("HANDOFF_").lower(): v for k, v in extra.items()
               if k.startswith("HANDOFF_")}
        self.settings = WorkerSettings(bootstrap_servers=bootstrap, topic_prefix=self.prefix,
                                       partitions=partitions, **own)  # type: ignore[call-arg]
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "HANDOFF_TOPIC_PREFIX": self.prefix, "HANDOFF_PARTITIONS": str(partitions),
                    "HANDOFF_WEB_PORT": "0", "HANDOFF_DATA_DIR": str(tmp / "data"),
                    "PYTHONPATH": str(REPO), **extra}
        self.tmp = tmp
        self.workers: list[Worker] = []

    def worker(self, **env: str) -> Worker:
        """A worker process (not started); `env` overrides this deployment's environment."""
        worker = Worker({**self.env, **env}, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def send(self, topic: Topic, *values: dict[str, Any] | bytes | None,
             key: str | None = None) -> None:
        """Send records in order; dicts are JSON with the contract's key."""
        records = []
        for value in values:
            if isinstance(value, dict):
                records.append((topic, key or record_key(topic, value), orjson.dumps(value)))
            else:
                records.append((topic, key, value))
        asyncio.run(send_records(self.settings, records))

    def read(self, topics: list[Topic], until: Callable[[list[tuple[str, Any]]], bool],
             timeout: float = 60.0) -> list[tuple[str, Any]]:
        """Read output records from the beginning until `until` holds (or time runs out)."""
        return asyncio.run(self._read(topics, until, timeout))

    async def _read(self, topics: list[Topic], until: Callable[[list[tuple[str, Any]]], bool],
                    timeout: float) -> list[tuple[str, Any]]:
        names = {self.settings.topic(t): t.value for t in topics}
        consumer = AIOKafkaConsumer(*names, **client_kwargs(self.settings),
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    isolation_level="read_committed", group_id=None)
        await consumer.start()
        seen: list[tuple[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(seen):
                batch = await consumer.getmany(timeout_ms=200)
                for tp, messages in batch.items():
                    seen += [(names[tp.topic], orjson.loads(m.value)) for m in messages]
        finally:
            await consumer.stop()
        return seen


async def topic_names(settings: WorkerSettings) -> set[str]:
    """Every topic the broker lists (listing creates nothing, unlike describing a missing one)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()
