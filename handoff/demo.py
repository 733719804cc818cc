"""The demo: a local broker, a worker, sample traffic, and the handoffs it leads to, printed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaConsumer

from handoff.config import WorkerSettings, load_settings
from handoff.kafka_clients import client_kwargs
from handoff.publish import publish_fixture
from schemas.topics import Topic
from streams.admin import ensure_topics

DEMO_DIR = Path(__file__).resolve().parent.parent / "deploy" / "demo"
SHOWN = (Topic.HANDOFF_EVENTS, Topic.TICKETS_CREATED, Topic.ASSIGNMENTS, Topic.CHAT_OUTBOUND,
         Topic.CONVERSATION_STATUS, Topic.CONFIG_CHANGES, Topic.DEADLETTER)


def describe(topic: str, v: dict[str, Any]) -> str:
    """One line a person reads for one output record."""
    conv = v.get("conversation_id", "")
    if topic == Topic.HANDOFF_EVENTS:
        t = v["trigger"]
        why = t["kind"] + (f" '{t['phrase']}'" if t.get("phrase") else "")
        if t.get("language"):
            why += f" ({t['language']})"
        verb = "HANDOFF" if v["handed_off"] else "trigger (process none, bot keeps it)"
        return (f"{conv:<6} [{v['channel']}] {verb}: {why}, message {t['message_event_id']}, "
                f"process {v['process']}, settings v{v['config_version']}")
    if topic == Topic.TICKETS_CREATED:
        return f"{conv:<6}   ticket {v['ticket_id']} in {v['help_desk_id']}: {v['subject']}"
    if topic == Topic.ASSIGNMENTS:
        who = (f"{v['assignee']['type']} {v['assignee']['id']}" if v["assignee"]
               else "UNASSIGNED")
        reason = v.get("reason", "handoff")
        how = v["mode"] if reason == "handoff" else f"{v['mode']}, {reason.replace('_', ' ')}"
        return f"{conv:<6}   -> {who} in {v['inbox_id']} ({how}): {v['rule']}"
    if topic == Topic.CHAT_OUTBOUND:
        return f"{conv:<6}   visitor sees ({v['kind']}): \"{v['text']}\""
    if topic == Topic.CONVERSATION_STATUS:
        return f"{conv:<6}   status {v['status']}, view {v['view']}"
    if topic == Topic.CONFIG_CHANGES:
        verdict = f"accepted as v{v['version']}" if v["accepted"] else f"REFUSED: {v['reason']}"
        return f"settings change by {v['actor']} for {v['account_id']}: {verdict}"
    return f"dead letter from {v.get('source_topic')}: {v.get('error')}"


class Watcher:
    """Prints each new output record once, a decision's records together in contract order."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.names = {settings.topic(t): t.value for t in SHOWN}
        self.consumer = AIOKafkaConsumer(*self.names,
                                         **client_kwargs(settings),
                                         auto_offset_reset="earliest", group_id=None,
                                         # as every consumer of the outputs should
                                         isolation_level="read_committed")
        self.seen = 0

    async def watch(self, seconds: float, quiet_after: float) -> int:
        """Print records until none came for `quiet_after` seconds (or `seconds` passed)."""
        rank = {t.value: i for i, t in enumerate(SHOWN)}
        shown = 0
        deadline = time.monotonic() + seconds
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < quiet_after:
            batch = await self.consumer.getmany(timeout_ms=250)
            records = [(m.timestamp, self.names[tp.topic], orjson.loads(m.value))
                       for tp, ms in batch.items() for m in ms]
            first: dict[str, int] = {}
            for stamp, _, value in sorted(records, key=lambda r: r[0]):
                first.setdefault(value.get("conversation_id", ""), stamp)
            records.sort(key=lambda r: (first[r[2].get("conversation_id", "")],
                                        r[2].get("conversation_id", ""), rank[r[1]]))
            for _, topic, value in records:
                print(describe(topic, value), flush=True)
                shown += 1
                last = time.monotonic()
        self.seen += shown
        return shown


async def _run_traffic(settings: WorkerSettings, seconds: float) -> int:
    setup = yaml.safe_load((DEMO_DIR / "setup.yaml").read_text(encoding="utf-8"))
    traffic = yaml.safe_load((DEMO_DIR / "traffic.yaml").read_text(encoding="utf-8"))
    watcher = Watcher(settings)
    await watcher.consumer.start()
    try:
        print("worker ready; sending the sample directory, workflow and presence...", flush=True)
        await publish_fixture(settings, {k: v for k, v in setup.items() if k != "config_requests"})
        # Records on different partitions have no order between them in Kafka: give the
        # directory a moment to be read before the settings that refer to it.
        await asyncio.sleep(1.0)
        print("an editor without permission, then one with it, save handoff settings...",
              flush=True)
        await publish_fixture(settings, {"config_requests": setup["config_requests"]})
        await watcher.watch(15.0, quiet_after=1.5)
        print("\nsending sample traffic (chat, email, WhatsApp, SMS, Messenger, form)...",
              flush=True)
        await publish_fixture(settings, {"messages": traffic["messages"]})
        await watcher.watch(seconds, quiet_after=3.0)
        print("\npausing the customer agent, then one more visitor message...", flush=True)
        await publish_fixture(settings, {"control": traffic["control"]})
        await asyncio.sleep(1.0)
        await publish_fixture(settings, {"messages": traffic["while_paused"]})
        await watcher.watch(seconds, quiet_after=3.0)
        await _queues_act(settings, watcher, seconds)
    finally:
        await watcher.consumer.stop()
    return watcher.seen


def _now(data: Any) -> Any:
    """The fixture with every "{now}" replaced by the current time."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.loads(orjson.dumps(data).replace(b'"{now}"', f'"{stamp}"'.encode()))


async def _queues_act(settings: WorkerSettings, watcher: Watcher, seconds: float) -> None:
    """A second account with a queue, language routing and a pickup timeout."""
    act = yaml.safe_load((DEMO_DIR / "queues.yaml").read_text(encoding="utf-8"))
    setup = act["setup"]
    print("\nqueues and timers, account nordic: Kari (Norwegian) is offline, Tom (English) "
          "is available; the queue, language routing and a 10 s pickup timeout are on...",
          flush=True)
    await publish_fixture(settings, _now({k: v for k, v in setup.items()
                                          if k != "config_requests"}))
    await asyncio.sleep(1.0)
    await publish_fixture(settings, _now({"config_requests": setup["config_requests"]}))
    await watcher.watch(10.0, quiet_after=1.5)
    print("\na Norwegian and an English visitor ask for a human (the Norwegian one waits for "
          "Kari)...", flush=True)
    await publish_fixture(settings, _now({"messages": act["visitors"]}))
    await watcher.watch(seconds, quiet_after=2.0)
    print("\nKari comes online: the queue gives her the Norwegian visitor...", flush=True)
    await publish_fixture(settings, _now({"presence": act["kari_online"]}))
    await watcher.watch(seconds, quiet_after=2.0)
    await publish_fixture(settings, _now({"updates": act["kari_accepts"]}))  # picked up
    print("\nTom does not accept his conversation: after 10 s the worker's clock moves it on...",
          flush=True)
    await watcher.watch(max(seconds, 20.0), quiet_after=14.0)


def _wait_ready(process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"Ready" in log.read_bytes():
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not start; its log ({log}):\n{log.read_text()[-3000:]}")


def run_demo(seconds: float = 20.0, keep_kafka: bool = False) -> int:
    """Run the whole demo; returns the exit code (0 when handoffs were seen)."""
    from handoff import localkafka

    started_kafka = False
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("starting a local Apache Kafka (the first start downloads it from Maven Central)...",
              flush=True)
        already = localkafka.status()
        bootstrap = already or localkafka.start()
        started_kafka = already is None
    prefix = f"demo{int(time.time())}."
    settings = load_settings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    asyncio.run(ensure_topics(settings))
    log = Path(settings.data_dir) / f"{prefix}worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "HANDOFF_TOPIC_PREFIX": prefix,
           "HANDOFF_WEB_PORT": "0"}
    print(f"broker {bootstrap}, topic prefix '{prefix}', worker log {log}", flush=True)
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "handoff.cli", "worker"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(worker, log)
        seen = asyncio.run(_run_traffic(settings, seconds))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        if started_kafka and not keep_kafka:
            localkafka.stop()
    return 0 if seen else 1
