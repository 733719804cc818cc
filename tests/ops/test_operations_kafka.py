"""Operations through a real broker: topic creation, and a worker's health, metrics and logs.

One worker with its web server on, fed the demo traffic plus bad records; its `/metrics` must
agree with the records on the output topics, and `/health/ready` must answer 200 only once
the loop says every task is restored ("Worker ready"), also after a restart that restores
the stores.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from handoff.cli import main
from handoff.publish import publish_fixture
from schemas.topics import INPUT_TOPICS, INTERNAL_TOPICS, OUTPUT_TOPICS, SPECS, Topic
from streams.state import changelog_topic
from streams.task import store_names
from tests.builders import message
from tests.kafka_support import Deployment, Worker

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "demo"
# The topics intake and the decision agent read (lag is shown per partition of each).
SOURCES = (*INPUT_TOPICS, Topic.ACCOUNT_EVENTS, Topic.USER_ACCOUNTS)
RECORD_LIMIT = 4096  # HANDOFF_MAX_RECORD_BYTES of the worker under test


# -- topic creation --------------------------------------------------------------------------

async def _describe(bootstrap: str, names: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics(names)
        partitions = {t["topic"]: len(t["partitions"]) for t in topics if not t["error_code"]}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        policy: dict[str, str] = {}
        for response in responses:
            for resource in response.resources:
                name, entries = resource[3], resource[4]
                policy[name] = next(e[1] for e in entries if e[0] == "cleanup.policy")
        return partitions, policy
    finally:
        await admin.close()


def test_topics_create_makes_the_contract_topics_as_asked(kafka_bootstrap: str) -> None:
    prefix = f"tc{time.monotonic_ns() % 10**9}."
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "HANDOFF_TOPIC_PREFIX": prefix}
    args = ["topics", "create", "--partitions", "3", "--replication-factor", "1"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    contract = [*INPUT_TOPICS, *OUTPUT_TOPICS, *INTERNAL_TOPICS]
    changelogs = [changelog_topic(f"{prefix}handoff", name) for name in store_names()]
    assert f"{len(contract) + len(changelogs)} topics created" in result.output
    names = [prefix + t.value for t in contract] + changelogs
    partitions, policy = asyncio.run(_describe(kafka_bootstrap, names))
    assert partitions == dict.fromkeys(names, 3)
    compacted = {prefix + t.value for t in contract if SPECS[t].compacted} | set(changelogs)
    assert {prefix + "directory", prefix + "workflows"} <= compacted
    assert {n for n, p in policy.items() if p == "compact"} == compacted
    assert all(policy[n] == "delete" for n in names if n not in compacted)
    again = CliRunner().invoke(main, args, env=env)
    assert again.exit_code == 0 and "0 topics created" in again.output


# -- a worker with its web server --------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, body = get(port, "/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


@dataclass
class Polls:
    """What /health/ready and /health/live answered while a worker started."""

    ready: list[tuple[int, dict[str, Any], bool]] = field(default_factory=list)
    live: list[int] = field(default_factory=list)


def start_polled(worker: Worker, port: int) -> Polls:
    """Start the worker while polling its health pages; each 200 notes whether the loop had
    already logged "Worker ready" (every task restored) when it was answered."""
    polls = Polls()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                status, body = get(port, "/health/ready")
            except OSError:  # the web server is not listening yet
                time.sleep(0.005)
                continue
            recovered = b"Worker ready" in worker.log_path.read_bytes()
            polls.ready.append((status, orjson.loads(body), recovered))
            polls.live.append(get(port, "/health/live")[0])
            # A restart with little state is ready some 50 ms after the web server listens
            # (the detector now loads from its pickled copy): poll often enough to see it.
            time.sleep(0.005)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while not any(s == 200 for s, _, _ in polls.ready) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    return polls


def assert_flipped_after_recovery(polls: Polls) -> None:
    statuses = [s for s, _, _ in polls.ready]
    assert 200 in statuses, polls.ready
    first_ok = statuses.index(200)
    assert first_ok > 0, "never seen not ready during startup"
    assert all(s == 503 and body["reason"] for s, body, _ in polls.ready[:first_ok])
    assert all(recovered for s, _, recovered in polls.ready if s == 200)
    assert set(polls.live) == {200}


@dataclass
class Ops:
    deployment: Deployment
    port: int
    worker: Worker
    first_start: Polls


@pytest.fixture(scope="module")
def ops(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    dep = Deployment(kafka_bootstrap, Path(tmp_path_factory.mktemp("ops")))
    port = free_port()
    dep.env.update({"HANDOFF_WEB_PORT": str(port), "HANDOFF_LOG_FORMAT": "json",
                    "HANDOFF_MAX_RECORD_BYTES": str(RECORD_LIMIT)})
    worker = dep.worker()
    try:
        polls = start_polled(worker, port)
        yield Ops(dep, port, worker, polls)
    finally:
        for w in dep.workers:
            w.stop()


def test_readiness_flips_only_after_startup(ops: Ops) -> None:
    assert_flipped_after_recovery(ops.first_start)
    reasons = {body["reason"] for s, body, _ in ops.first_start.ready if s == 503}
    assert reasons, "never seen not ready during startup"
    assert all(r in ("the processing loop is starting",
                     "rebalancing: partitions are being reassigned",
                     "no partitions assigned to this worker")
               or r.startswith("restoring state for tasks [") for r in reasons), reasons


OUTPUTS = [Topic.HANDOFF_EVENTS, Topic.TICKETS_CREATED, Topic.ASSIGNMENTS,
           Topic.CONVERSATION_STATUS, Topic.CONFIG_CHANGES, Topic.DEADLETTER,
           Topic.ACCOUNT_EVENTS]
BAD_RECORDS = {  # what is sent to chat.messages -> the reason class it must be counted under
    "not_json": b"\xff not json",
    "missing_field": {k: v for k, v in message("bad-1", "hi").items() if k != "conversation_id"},
    "wrong_type": {**message("bad-2", "hi"), "text": 42},
    "too_large": message("bad-3", "x" * RECORD_LIMIT),
}


def of(records: list[tuple[str, Any]], topic: Topic) -> list[Any]:
    return [v for t, v in records if t == topic.value]


@pytest.fixture(scope="module")
def fed(ops: Ops) -> tuple[list[tuple[str, Any]], dict[Any, float]]:
    """The demo traffic and the bad records, sent and decided; (outputs, scraped metrics)."""
    dep = ops.deployment
    setup = yaml.safe_load((DEMO / "setup.yaml").read_text(encoding="utf-8"))
    traffic = yaml.safe_load((DEMO / "traffic.yaml").read_text(encoding="utf-8"))
    asyncio.run(publish_fixture(dep.settings, {k: v for k, v in setup.items()
                                               if k != "config_requests"}))
    time.sleep(1.0)  # the settings name the directory's help desk: let it be sequenced first
    asyncio.run(publish_fixture(dep.settings, {"config_requests": setup["config_requests"]}))
    dep.read([Topic.CONFIG_CHANGES], lambda r: len(r) >= 2)
    asyncio.run(publish_fixture(dep.settings, {"messages": traffic["messages"],
                                               "control": traffic["control"]}))
    time.sleep(1.0)
    asyncio.run(publish_fixture(dep.settings, {"messages": traffic["while_paused"]}))
    for bad in BAD_RECORDS.values():
        dep.send(Topic.CHAT_MESSAGES, bad, key="c-bad")

    # Caught up: every sequenced event decided, every bad record set aside, nothing behind.
    deadline = time.monotonic() + 60
    while True:
        outputs = dep.read(OUTPUTS, lambda r: False, timeout=1.5)
        samples = scrape(ops.port)
        decided = total(samples, "handoff_decision_seconds_count")
        lag = [v for (n, _), v in samples.items() if n == "handoff_consumer_lag"]
        if (decided == len(of(outputs, Topic.ACCOUNT_EVENTS))
                and len(of(outputs, Topic.DEADLETTER)) == len(BAD_RECORDS)
                and len(of(outputs, Topic.HANDOFF_EVENTS)) >= 8 and lag and not any(lag)):
            return outputs, samples
        if time.monotonic() > deadline:
            raise AssertionError(f"not caught up: {decided} decided, lag {lag}")
        time.sleep(0.5)


def open_by_view(outputs: list[tuple[str, Any]]) -> dict[str, int]:
    last: dict[str, Any] = {}
    for status in of(outputs, Topic.CONVERSATION_STATUS):
        last[status["conversation_id"]] = status
    counts = Counter(s["view"] for s in last.values() if s["status"] == "open")
    return {"assigned": counts["assigned"], "unassigned": counts["unassigned"]}


def test_metrics_match_the_records_on_the_output_topics(
        ops: Ops, fed: tuple[list[tuple[str, Any]], dict[Any, float]]) -> None:
    outputs, samples = fed
    handoffs = of(outputs, Topic.HANDOFF_EVENTS)
    for kind in ("no_answer", "human_requested", "agent_paused", "custom_phrase"):
        expected = sum(1 for h in handoffs if h["trigger"]["kind"] == kind)
        assert total(samples, "handoff_handoffs_total", trigger=kind) == expected, kind
    assert {h["trigger"]["kind"] for h in handoffs} >= {"no_answer", "human_requested",
                                                        "agent_paused", "custom_phrase"}
    for process in ("live", "async", "none"):
        assert total(samples, "handoff_handoffs_total", process=process) == sum(
            1 for h in handoffs if h["process"] == process)
    assert total(samples, "handoff_tickets_created_total") == len(
        of(outputs, Topic.TICKETS_CREATED)) > 0

    assignments = of(outputs, Topic.ASSIGNMENTS)
    for outcome, expected in (("assigned", sum(1 for a in assignments if a["assignee"])),
                              ("unassigned", sum(1 for a in assignments if not a["assignee"]))):
        assert expected > 0
        assert total(samples, "handoff_assignments_total", outcome=outcome) == expected
        assert total(samples, "handoff_time_to_assignment_seconds_count",
                     outcome=outcome) == expected

    changes = of(outputs, Topic.CONFIG_CHANGES)
    assert total(samples, "handoff_config_changes_total", outcome="accepted") == sum(
        1 for c in changes if c["accepted"]) == 1
    assert total(samples, "handoff_config_changes_total", outcome="refused") == sum(
        1 for c in changes if not c["accepted"]) == 1

    letters = of(outputs, Topic.DEADLETTER)
    assert total(samples, "handoff_dead_letters_total") == len(letters)
    for reason in BAD_RECORDS:
        assert total(samples, "handoff_dead_letters_total", source_topic="chat.messages",
                     reason=reason) == 1, reason

    views = open_by_view(outputs)
    assert views["assigned"] + views["unassigned"] > 0
    for view, count in views.items():
        assert total(samples, "handoff_open_conversations", view=view) == count

    lag_partitions = {(dict(ls)["topic"], dict(ls)["partition"])
                      for (n, ls) in samples if n == "handoff_consumer_lag"}
    assert lag_partitions == {(t.value, str(p)) for t in SOURCES for p in range(2)}
    assert total(samples, "handoff_decision_seconds_count") == len(
        of(outputs, Topic.ACCOUNT_EVENTS))
    labels = {v for (n, ls) in samples for _, v in ls}
    assert not labels & {"acme", "c-101", "u-ingrid", "m-1"}  # no ids as label values


def test_json_logs_carry_event_ids_and_no_message_text(
        ops: Ops, fed: tuple[list[tuple[str, Any]], dict[Any, float]]) -> None:
    raw = [line for line in ops.worker.log_path.read_bytes().splitlines() if line.strip()]
    assert [line for line in raw if not line.startswith(b"{")] == []
    lines = [orjson.loads(line) for line in raw]
    assert any(line["message"].startswith("Worker ready") for line in lines)
    dead = [line for line in lines if line["message"].startswith("dead-lettered")]
    assert len(dead) == len(BAD_RECORDS)
    assert all(line["event_id"] and line["topic"] == "chat.messages" for line in dead)
    text = ops.worker.log_path.read_text()
    for said in ("menneske", "refund for order", "Quiero hablar", "Do you ship"):
        assert said not in text


def test_a_restart_is_ready_only_after_recovery_and_recounts_open_conversations(
        ops: Ops, fed: tuple[list[tuple[str, Any]], dict[Any, float]]) -> None:
    outputs, _ = fed
    ops.worker.stop()
    again = ops.deployment.worker()
    polls = start_polled(again, ops.port)
    assert_flipped_after_recovery(polls)
    samples = scrape(ops.port)
    for view, count in open_by_view(outputs).items():
        assert total(samples, "handoff_open_conversations", view=view) == count
    assert total(samples, "handoff_handoffs_total") == 0  # counters are per process
