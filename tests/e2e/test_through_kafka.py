"""End to end through a real broker: records in on the input topics, decisions out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from handoff.replay import run_replay
from schemas.topics import Topic
from tests.builders import message
from tests.kafka_support import Deployment

pytestmark = pytest.mark.kafka

T = "2026-11-26T10:00:00Z"


def of(records: list[tuple[str, Any]], topic: Topic, **match: Any) -> list[Any]:
    return [v for t, v in records if t == topic.value
            and all(v.get(k) == want for k, want in match.items())]


def test_custom_phrase_hands_off_through_the_broker(deployment: Deployment) -> None:
    account = "acct-phrase"
    deployment.send(Topic.DIRECTORY,
                    {"kind": "inbox", "id": "support", "account_id": account, "type": "inbox"},
                    {"kind": "user", "id": "ed-1", "account_id": account, "name": "Editor",
                     "teams": [], "permissions": ["customer_agent.edit"]})
    deployment.send(Topic.CONFIG_REQUESTS, {
        "event_id": "cfg-1", "account_id": account, "actor": "ed-1", "occurred_at": T,
        "config": {"custom_triggers": ["refund", "oppsigelse"], "process": "live"}})
    changes = deployment.read([Topic.CONFIG_CHANGES],
                              lambda r: bool(of(r, Topic.CONFIG_CHANGES, account_id=account)))
    assert of(changes, Topic.CONFIG_CHANGES, account_id=account)[0]["accepted"] is True

    deployment.send(Topic.CHAT_MESSAGES,
                    message("e2e-1", "Hello, what do you sell?", account=account,
                            conversation="c-e2e-1"),
                    message("e2e-2", "Jeg vil ha OPPSIGELSE nå", account=account,
                            conversation="c-e2e-1", channel="whatsapp"))
    out = deployment.read([Topic.HANDOFF_EVENTS, Topic.CONVERSATION_STATUS],
                          lambda r: len(of(r, Topic.CONVERSATION_STATUS,
                                           conversation_id="c-e2e-1")) >= 1)
    handoffs = of(out, Topic.HANDOFF_EVENTS, conversation_id="c-e2e-1")
    assert len(handoffs) == 1
    assert handoffs[0]["trigger"] == {"kind": "custom_phrase", "phrase": "oppsigelse",
                                      "message_event_id": "e2e-2", "language": None}
    assert (handoffs[0]["config_version"], handoffs[0]["handed_off"]) == (1, True)
    assert handoffs[0]["occurred_at"] == T


def test_a_bad_record_goes_to_deadletter_and_the_next_one_is_processed(
        deployment: Deployment) -> None:
    account = "acct-dlq"
    bad = message("dlq-1", "I want to talk to a human", account=account)
    del bad["conversation_id"]
    deployment.send(Topic.CHAT_MESSAGES, bad, key="c-dlq-1")
    deployment.send(Topic.CHAT_MESSAGES, b"\xff not json", key="c-dlq-1")
    deployment.send(Topic.CHAT_MESSAGES, message("dlq-2", "I want to talk to a human",
                                                 account=account, conversation="c-dlq-1"))
    out = deployment.read(
        [Topic.DEADLETTER, Topic.HANDOFF_EVENTS],
        lambda r: len(of(r, Topic.DEADLETTER)) >= 2
        and bool(of(r, Topic.HANDOFF_EVENTS, conversation_id="c-dlq-1")))
    letters = of(out, Topic.DEADLETTER)
    missing = [d for d in letters if "conversation_id" in d["error"]]
    assert missing and "Field required" in missing[0]["error"]
    assert missing[0]["source_topic"] == "chat.messages"
    assert '"event_id":"dlq-1"' in missing[0]["payload"]
    assert any(d["payload_encoding"] == "base64" for d in letters)
    handoffs = of(out, Topic.HANDOFF_EVENTS, conversation_id="c-dlq-1")
    assert [h["trigger"]["kind"] for h in handoffs] == ["human_requested"]


def test_replay_reproduces_the_live_outputs(deployment: Deployment, tmp_path: Path) -> None:
    """Replay of the recorded log equals what the live worker published, record for record."""
    account = "acct-replay"
    deployment.send(Topic.CHAT_MESSAGES, *[
        message(f"rp-{i}", text, account=account, conversation=f"c-rp-{i % 3}")
        for i, text in enumerate(["hello", "I want to talk to a human", "refund?",
                                  "menneske takk", "agent please", "ok"])])
    deployment.read([Topic.HANDOFF_EVENTS],
                    lambda r: len(of(r, Topic.HANDOFF_EVENTS, account_id=account)) >= 2)
    out = tmp_path / "replay.jsonl"
    asyncio.run(run_replay(deployment.settings, out=out))
    replayed = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    topics = [Topic.HANDOFF_EVENTS, Topic.ASSIGNMENTS, Topic.CHAT_OUTBOUND,
              Topic.CONVERSATION_STATUS, Topic.TICKETS_CREATED, Topic.CONFIG_CHANGES]
    live = deployment.read(topics, lambda r: len(r) >= len(replayed), timeout=20)
    assert sorted(orjson_key(t, v) for t, v in live) == sorted(
        orjson_key(r["topic"], r["value"]) for r in replayed)
    assert any(r["value"].get("account_id") == account for r in replayed)


def orjson_key(topic: str, value: Any) -> bytes:
    return topic.encode() + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def test_directory_load_publishes_the_sample_team_and_settings(deployment: Deployment) -> None:
    """`handoff directory load` with the demo's file: the editor's settings are accepted."""
    from click.testing import CliRunner

    from handoff.cli import main

    result = CliRunner().invoke(main, ["directory", "load", "deploy/demo/setup.yaml"],
                                env={"KAFKA_BOOTSTRAP_SERVERS": deployment.settings.bootstrap_servers,
                                     "HANDOFF_TOPIC_PREFIX": deployment.prefix})
    assert result.exit_code == 0, result.output
    assert "9 records -> directory" in result.output
    changes = deployment.read([Topic.CONFIG_CHANGES],
                              lambda r: len(of(r, Topic.CONFIG_CHANGES, account_id="acme")) >= 2)
    outcome = {c["event_id"]: c for c in of(changes, Topic.CONFIG_CHANGES, account_id="acme")}
    by_actor = {c["actor"]: (c["accepted"], c["reason"]) for c in outcome.values()}
    assert by_actor["u-lars"] == (False, "user u-lars lacks the customer_agent.edit permission")
    assert by_actor["u-editor"] == (True, None)


def test_records_sent_while_the_worker_starts_are_all_decided(kafka_bootstrap: str,
                                                              tmp_path: Path) -> None:
    """Records already waiting, and records arriving while the tasks open, are read once each:
    none is skipped by a task opening mid-fetch (the demo once lost its directory that way)."""
    dep = Deployment(kafka_bootstrap, tmp_path, partitions=4)
    account = "acct-early"
    dep.send(Topic.DIRECTORY,
             {"kind": "inbox", "id": "support", "account_id": account, "type": "inbox"},
             {"kind": "user", "id": "ed-1", "account_id": account, "name": "Editor",
              "teams": [], "permissions": ["customer_agent.edit"]})
    worker = dep.worker()
    worker.start()
    try:
        # Right after "Ready", while the tasks may still be opening.
        dep.send(Topic.CONFIG_REQUESTS, {
            "event_id": "cfg-early", "account_id": account, "actor": "ed-1", "occurred_at": T,
            "config": {"custom_triggers": ["refund"], "process": "live"}})
        dep.send(Topic.CHAT_MESSAGES, *(message(f"m-early-{i}", "a refund please",
                                                conversation=f"c-early-{i}", account=account)
                                        for i in range(20)))
        out = dep.read([Topic.CONFIG_CHANGES, Topic.HANDOFF_EVENTS],
                       lambda r: len(of(r, Topic.HANDOFF_EVENTS)) >= 20)
        (change,) = of(out, Topic.CONFIG_CHANGES, account_id=account)
        assert change["accepted"] is True, change
        assert sorted(v["conversation_id"] for v in of(out, Topic.HANDOFF_EVENTS)) == sorted(
            f"c-early-{i}" for i in range(20))
    finally:
        worker.stop()
