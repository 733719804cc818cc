"""Replay, audit and what-if through a real broker, on one mixed stream the live worker decided.

The stream: four accounts; direct routing over a team with a presence change, settings changed
midway (new phrase, new messages), a ticket-based workflow with a pause, the defaults, closes,
a hand-back and a reopen. It is sent in three phases whose input times are 10:xx, 12:xx and
13:xx, with a wall-clock cut between phases: every output carries its input's time, so the live
outputs caused by a phase are known without knowing the log's offsets.

Each `send` waits until what it sent is on the account log (see test_scenarios.py for why), so
the order of decisions, and with it every rotation, is fixed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from click.testing import CliRunner

from handoff.cli import main
from handoff.config import WorkerSettings
from handoff.history import consumer_for, partitions_of
from handoff.kafka_clients import client_kwargs
from schemas.topics import Topic
from tests.builders import message
from tests.kafka_support import Deployment

pytestmark = pytest.mark.kafka

OUTPUTS = (Topic.HANDOFF_EVENTS, Topic.TICKETS_CREATED, Topic.ASSIGNMENTS, Topic.CHAT_OUTBOUND,
           Topic.CONVERSATION_STATUS, Topic.CONFIG_CHANGES)
EDIT = ("customer_agent.edit",)
A, B, C = "2026-11-26T10:00:00Z", "2026-11-26T12:00:00Z", "2026-11-26T13:00:00Z"
NORTH_ROUTING = {"mode": "direct", "destination": "n-support",
                 "assignees": [{"type": "team", "id": "n-team"}]}
WEST_V1 = {"custom_triggers": ["refund"], "process": "live",
           "routing": {"mode": "direct", "destination": "w-inbox",
                       "assignees": [{"type": "user", "id": "w-una"}]}}


def _sent_identity(topic: Topic, value: dict[str, Any]) -> tuple[str, str]:
    if topic is Topic.DIRECTORY:
        return topic.value, f"{value['kind']}:{value['id']}"
    if topic is Topic.WORKFLOWS:
        return topic.value, value["workflow_id"]
    return topic.value, value["event_id"]


def _log_identity(entry: dict[str, Any]) -> tuple[str, str]:
    source = entry["source"]
    if source == "directory":
        return source, entry["key"]
    if source == "workflows":
        return source, entry["workflow_id"]
    return source, entry["record"]["event_id"]


def send(dep: Deployment, *records: tuple[Topic, dict[str, Any]]) -> None:
    """Send in order, then wait until every record is on the account log."""
    for topic, value in records:
        dep.send(topic, value)
    want = {_sent_identity(t, v) for t, v in records}
    log = dep.read([Topic.ACCOUNT_EVENTS], timeout=30,
                   until=lambda r: want <= {_log_identity(v) for _, v in r})
    assert want <= {_log_identity(v) for _, v in log}, "not sequenced in time"


def user(uid: str, account: str, teams: tuple[str, ...] = (), perms: tuple[str, ...] = ()
         ) -> tuple[Topic, dict[str, Any]]:
    return Topic.DIRECTORY, {"kind": "user", "id": uid, "account_id": account, "name": uid.title(),
                             "teams": list(teams), "permissions": list(perms)}


def inbox(iid: str, account: str, kind: str = "inbox") -> tuple[Topic, dict[str, Any]]:
    return Topic.DIRECTORY, {"kind": "inbox", "id": iid, "account_id": account, "type": kind}


def team(tid: str, account: str) -> tuple[Topic, dict[str, Any]]:
    return Topic.DIRECTORY, {"kind": "team", "id": tid, "account_id": account, "name": tid,
                             "timezone": "Europe/Oslo", "business_hours": None}


def presence(uid: str, status: str, n: int) -> tuple[Topic, dict[str, Any]]:
    return Topic.AGENT_PRESENCE, {"event_id": f"p-{uid}-{n}", "user_id": uid, "status": status,
                                  "occurred_at": A, "max_open_conversations": None}


def config(event: str, account: str, actor: str, cfg: dict[str, Any], at: str
           ) -> tuple[Topic, dict[str, Any]]:
    return Topic.CONFIG_REQUESTS, {"event_id": event, "account_id": account, "actor": actor,
                                   "occurred_at": at, "config": cfg}


def chat(event: str, text: str, conv: str, account: str, at: str, **kw: Any
         ) -> tuple[Topic, dict[str, Any]]:
    return Topic.CHAT_MESSAGES, message(event, text, conversation=conv, account=account, at=at,
                                        **kw)


def update(event: str, conv: str, account: str, action: str, at: str
           ) -> tuple[Topic, dict[str, Any]]:
    return Topic.CONVERSATION_UPDATES, {"event_id": event, "conversation_id": conv,
                                        "account_id": account, "action": action,
                                        "occurred_at": at, "actor": "inbox"}


def control(event: str, account: str, action: str, at: str) -> tuple[Topic, dict[str, Any]]:
    return Topic.AGENT_CONTROL, {"event_id": event, "account_id": account, "action": action,
                                 "occurred_at": at, "actor": "s-ed"}


@dataclass
class Recorded:
    dep: Deployment
    cuts: list[datetime]  # between phases A|B and B|C
    cut_offsets: list[dict[int, int]]  # the account log's end offsets at each cut
    env: dict[str, str]


async def _log_ends(dep: Deployment) -> dict[int, int]:
    topic = dep.settings.topic(Topic.ACCOUNT_EVENTS)
    consumer = consumer_for(dep.settings)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return {tp.partition: off for tp, off in ends.items()}


def _cut(dep: Deployment) -> tuple[datetime, dict[int, int]]:
    time.sleep(0.05)
    at = datetime.now(UTC)
    ends = asyncio.run(_log_ends(dep))
    time.sleep(0.05)
    return at, ends


@pytest.fixture(scope="module")
def recorded(deployment: Deployment) -> Recorded:
    dep = deployment
    # -- phase A (10:xx) ---------------------------------------------------------------------
    send(dep, inbox("n-support", "north"), team("n-team", "north"),
         user("n-ana", "north", ("n-team",)), user("n-bo", "north", ("n-team",)),
         user("n-ed", "north", perms=EDIT),
         inbox("s-inbox", "south"), inbox("s-desk", "south", "help_desk"),
         team("s-billing", "south"), user("s-cy", "south", ("s-billing",)),
         user("s-dan", "south"), user("s-ed", "south", perms=EDIT),
         inbox("e-inbox", "east"),
         inbox("w-inbox", "west"), user("w-una", "west"), user("w-ed", "west", perms=EDIT),
         (Topic.WORKFLOWS, {"workflow_id": "wf-s", "account_id": "south", "name": "South flow",
                            "rules": [
                                {"when": {"channel": ["email"]}, "assign": {"rotate": ["s-dan"]}},
                                {"when": {"trigger": ["custom_phrase"], "phrase": ["faktura"]},
                                 "assign": {"team": "s-billing"}},
                                {"when": {}, "assign": {"user": "s-dan"}}]}))
    send(dep, presence("n-ana", "available", 1), presence("n-bo", "available", 1),
         presence("s-cy", "available", 1), presence("s-dan", "available", 1),
         presence("w-una", "available", 1))
    send(dep, config("n-cfg-1", "north", "n-ed", {"custom_triggers": ["refund"],
                                                  "routing": NORTH_ROUTING}, A),
         config("s-cfg-1", "south", "s-ed", {
             "custom_triggers": ["faktura"], "unassigned_chat": "close",
             "routing": {"mode": "workflow", "workflow_id": "wf-s", "destination": "s-desk"}}, A),
         config("w-cfg-1", "west", "w-ed", WEST_V1, A))
    send(dep, chat("n-1", "hello there", "c-n1", "north", A),
         chat("n-2", "Glad to help!", "c-n1", "north", A, sender="customer_agent", answered=True),
         chat("n-3", "I want a refund", "c-n1", "north", A))
    send(dep, chat("n-4", "I want to talk to a human", "c-n2", "north", A),
         chat("s-1", "I want to talk to a human", "c-s1", "south", A, channel="email"),
         chat("s-2", "Jeg har et spørsmål om faktura 5531", "c-s2", "south", A,
              channel="whatsapp", language="nb"),
         chat("e-1", "Where is my parcel?", "c-e1", "east", A),
         chat("e-2", "I am not sure.", "c-e1", "east", A, sender="customer_agent",
              answered=False),
         chat("w-1", "refund now", "c-w1", "west", A),
         chat("w-2", "my parcel zebra is late", "c-w2", "west", A, channel="sms"),
         chat("w-3", "zebra stripes?", "c-w3", "west", A),
         chat("w-4", "I want to talk to a human about my zebra", "c-w4", "west", A),
         chat("w-5", "hello", "c-w5", "west", A))
    send(dep, chat("w-6", "zebra", "c-w1", "west", A), control("s-ctl-1", "south", "pause", A))
    send(dep, chat("s-3", "Do you ship to Iceland?", "c-s3", "south", A, channel="instagram"),
         presence("n-ana", "away", 2))
    send(dep, config("n-cfg-2", "north", "n-ed", {
        "custom_triggers": ["invoice"], "routing": NORTH_ROUTING,
        "messages": {"available": "An agent is on the way."}}, A))
    cut_ab, offsets_ab = _cut(dep)
    # -- phase B (12:xx): decided with the settings, presence and rotations of phase A -------
    send(dep, chat("n-5", "A question about my invoice", "c-n3", "north", B))
    send(dep, update("n-close-1", "c-n1", "north", "close", B),
         update("n-back-2", "c-n2", "north", "hand_back", B),
         control("s-ctl-2", "south", "resume", B))
    cut_bc, offsets_bc = _cut(dep)
    # -- phase C (13:xx) ---------------------------------------------------------------------
    send(dep, chat("n-6", "refund please", "c-n1", "north", C),
         chat("s-4", "faktura igjen", "c-s4", "south", C),
         # Refused probes (unknown actor), one per account, close the stream.
         *[config(f"probe-{a}", a, "nobody", {}, C) for a in ("north", "south", "east", "west")])
    # A probe's outcome is out once every earlier decision of its account's partition is.
    probes = dep.read([Topic.CONFIG_CHANGES], timeout=30, until=lambda r: sum(
        1 for _, v in r if v["event_id"] and v["actor"] == "nobody") >= 4)
    assert sum(1 for _, v in probes if v["actor"] == "nobody") == 4
    env = {"KAFKA_BOOTSTRAP_SERVERS": dep.settings.bootstrap_servers,
           "HANDOFF_TOPIC_PREFIX": dep.prefix, "HANDOFF_PARTITIONS": "2"}
    return Recorded(dep, [cut_ab, cut_bc], [offsets_ab, offsets_bc], env)


# -- reading raw records -----------------------------------------------------------------------


async def _raw(settings: WorkerSettings, names: dict[str, str]) -> list[tuple[str, bytes, bytes]]:
    """(contract topic, key, value) of every record up to the end offsets, in partition order."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    out: list[tuple[str, bytes, bytes]] = []
    try:
        await consumer._client.force_metadata_update()
        parts = [TopicPartition(n, p) for n in names
                 for p in sorted(consumer.partitions_for_topic(n) or [])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if r.offset < ends[tp]:
                        out.append((names[tp.topic], r.key or b"", r.value or b""))
    finally:
        await consumer.stop()
    return out


def by_key(records: list[tuple[str, bytes, bytes]]) -> dict[tuple[str, bytes], list[bytes]]:
    """Values per (topic, key), in the order they were published (one key, one partition)."""
    out: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for topic, key, value in records:
        out[(topic, key)].append(value)
    return dict(out)


def live_outputs(rec: Recorded, want: int) -> list[tuple[str, bytes, bytes]]:
    """The worker's outputs, once at least `want` are out (it may still be publishing)."""
    names = {rec.dep.settings.topic(t): t.value for t in OUTPUTS}
    deadline = time.monotonic() + 30
    while True:
        records = asyncio.run(_raw(rec.dep.settings, names))
        if len(records) >= want or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def cli(rec: Recorded, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=rec.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


# -- replay ----------------------------------------------------------------------------------


def test_replay_publishes_byte_for_byte_what_the_live_worker_published(recorded: Recorded
                                                                       ) -> None:
    prefix = recorded.dep.prefix + "replay."
    out = cli(recorded, "replay", "--to-prefix", prefix)
    count = int(out.strip().splitlines()[-1].split()[0])
    replayed = asyncio.run(_raw(recorded.dep.settings,
                                {f"{prefix}{t.value}": t.value for t in OUTPUTS}))
    assert len(replayed) == count
    live = live_outputs(recorded, count)
    assert by_key(replayed) == by_key(live)
    # The stream is what the docstring says: every trigger kind, tickets, a settings change.
    values = [orjson.loads(v) for t, _, v in live if t == Topic.HANDOFF_EVENTS.value]
    assert {v["trigger"]["kind"] for v in values} == {
        "custom_phrase", "human_requested", "no_answer", "agent_paused"}
    assert {v["config_version"] for v in values if v["account_id"] == "north"} == {1, 2}
    assert any(t == Topic.TICKETS_CREATED.value for t, _, _ in live)


def test_a_range_replays_only_its_outputs_with_the_state_before_it(recorded: Recorded,
                                                                   tmp_path: Path) -> None:
    live = live_outputs(recorded, 1)
    expected = sorted((t, v) for t, _, v in live
                      if B <= orjson.loads(v)["occurred_at"] < C)
    # c-n3 in range needs settings v2 (its phrase), n-ana away and the rotation from before.
    assert any(b'"phrase":"invoice"' in v for _, v in expected)

    def replayed(*bounds: str) -> list[tuple[str, bytes]]:
        out = tmp_path / "range.jsonl"
        cli(recorded, "replay", "--out", str(out), *bounds)
        lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        # --out keeps the JSON of the value; re-encode it as the worker does (field order kept).
        return sorted((r["topic"], orjson.dumps(r["value"])) for r in lines)

    (t1, t2), (o1, o2) = recorded.cuts, recorded.cut_offsets
    assert replayed("--from-time", t1.isoformat(), "--to-time", t2.isoformat()) == expected
    assert replayed(*[f"--from-offset={p}:{o}" for p, o in o1.items()],
                    *[f"--to-offset={p}:{o}" for p, o in o2.items()]) == expected


# -- audit -----------------------------------------------------------------------------------


def test_audit_names_trigger_phrase_version_and_assignee(recorded: Recorded) -> None:
    live_outputs(recorded, 1)
    steps = json.loads(cli(recorded, "audit", "c-n3", "--json"))
    message_steps = [s for s in steps if s["kind"] == "message"]
    assert [s["event_id"] for s in message_steps] == ["n-5"]
    step = message_steps[0]
    assert step["text"] == "A question about my invoice"
    assert step["trigger"]["kind"] == "custom_phrase"
    assert step["trigger"]["phrase"] == "invoice"
    assert step["settings"]["version"] == 2
    assert step["settings"]["saved_by"] == "n-ed"
    assert step["settings"]["config_request"] == "n-cfg-2"
    assignment = step["assignment"]
    # n-bo took c-n2, so the rotation starts at n-ana, who went away: n-bo wins.
    assert assignment["assignee"] == {"type": "user", "id": "n-bo"}
    assert assignment["candidates"] == ["n-ana: away", "n-bo: chosen"]
    assert "passed over n-ana: away" in assignment["rule"]
    sent = [o["value"] for o in step["outputs"] if o["topic"] == "chat.outbound"]
    assert [s["text"] for s in sent] == ["An agent is on the way."]
    check = steps[-1]
    assert check["kind"] == "cross_check"
    assert (check["checked"], check["mismatches"], check["same"]) == (True, 0, 4)


def test_audit_text_tells_the_whole_story_of_a_conversation(recorded: Recorded) -> None:
    live_outputs(recorded, 1)
    text = cli(recorded, "audit", "c-n1")
    assert "account north" in text
    assert '"I want a refund"' in text
    assert "trigger: custom_phrase 'refund'" in text
    assert "settings: v1, saved by n-ed" in text
    assert "assigned to: user n-ana" in text
    assert "status: closed, view assigned" in text  # the inbox closed it
    assert "reopens to the customer agent" in text  # the visitor wrote again
    assert "no handoff: no trigger" in text  # "refund" is no phrase of v2
    # n-ana went away before accepting it (contract v1.1): the trail shows the re-route.
    assert "user n-ana is now away" in text
    assert "assigned to: user n-bo in n-support (live, agent unavailable)" in text
    assert "0 differ, 0 missing live, 0 only live." in text
    workflow = json.loads(cli(recorded, "audit", "c-s2", "--json"))[0]
    assert workflow["trigger"]["phrase"] == "faktura"
    assert workflow["ticket"]["workflow_id"] == "wf-s"
    assert workflow["assignment"]["assignee"]["id"] == "s-cy"
    assert "rule 2" in workflow["assignment"]["rule"]


# -- what-if ---------------------------------------------------------------------------------


def test_what_if_one_more_phrase_reports_exactly_the_extra_handoffs(recorded: Recorded,
                                                                   tmp_path: Path) -> None:
    proposal = tmp_path / "west.yaml"
    proposal.write_text(yaml.safe_dump({**WEST_V1, "custom_triggers": ["refund", "zebra"]}))
    report = json.loads(cli(recorded, "simulate", "--config", str(proposal), "--account",
                            "west", "--json", "--list-changed"))
    assert report["proposal"]["phrases_added"] == ["zebra"]
    recorded_run, what_if = report["recorded"], report["what_if"]
    assert (recorded_run["handoffs"], what_if["handoffs"], report["extra_handoffs"]) == (2, 4, 2)
    assert recorded_run["by_phrase"].get("custom_phrase 'zebra'") is None
    assert what_if["by_phrase"]["custom_phrase 'zebra'"] == 3
    assert what_if["by_trigger_kind"] == {"custom_phrase": 4}
    assert what_if["by_channel"] == {"chat": 3, "sms": 1}
    assert what_if["by_assignee"] == {"user w-una": 4}
    changed = {c["conversation_id"]: c["change"] for c in report["changed"]["conversations"]}
    assert changed == {"c-w2": "new handoff", "c-w3": "new handoff",
                       "c-w4": "different trigger"}
    text = cli(recorded, "simulate", "--config", str(proposal), "--account", "west")
    assert "custom_phrase 'zebra'" in text and "+2" in text
