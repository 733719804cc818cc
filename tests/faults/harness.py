"""Fault runs: a long input stream through real workers while something fails, then a count.

The reference is the pure core run over the worker's own sequenced log
(`handoff.account-events`, read with read_committed) by `handoff.replay`: whatever order intake
chose, the core must give exactly those outputs. Live outputs (read_committed) are compared with
it by (topic, event_id): a reference record absent live is *missing*, a live copy beyond the first
is *duplicated*, a live record the reference does not have is *extra*, and a live record with the
reference's id but other content is *different* (state that drifted: rotation, capacity).
Inputs absent from the log are *lost_inputs*.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import TypeAdapter

from handoff.core.store import MemoryStore
from handoff.kafka_clients import client_kwargs
from handoff.publish import record_key
from handoff.replay import run_replay
from schemas.codec import dumps
from schemas.internal import AccountEvent
from schemas.topics import INPUT_TOPICS, Topic
from steps.decide import build_engine
from tests.kafka_support import Deployment, Worker

_account_event: TypeAdapter[Any] = TypeAdapter(AccountEvent)
OUTPUTS = [Topic.HANDOFF_EVENTS, Topic.TICKETS_CREATED, Topic.ASSIGNMENTS, Topic.CHAT_OUTBOUND,
           Topic.CONVERSATION_STATUS, Topic.CONFIG_CHANGES]
T0 = 1_795_000_000.0  # 2026-11-18, a fixed base for sent_at


@dataclass
class Shape:
    """The stream: how many messages, conversations and accounts, and the seed."""

    messages: int = 20_000
    conversations: int = 2_000
    accounts: int = 20
    seed: int = 1
    rate: float = 700.0  # messages per second sent (the worker should be mid-stream on faults)


@dataclass
class Figures:
    scenario: str
    guarantee: str
    inputs: int = 0
    reference: int = 0
    live: int = 0
    missing: int = 0
    duplicated: int = 0
    extra: int = 0
    different: int = 0
    lost_inputs: int = 0
    worker_exits: int = 0  # workers that died without being killed by the test
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.scenario:<10} {self.guarantee:<14} inputs={self.inputs} "
                f"reference={self.reference} live={self.live} missing={self.missing} "
                f"duplicated={self.duplicated} extra={self.extra} different={self.different} "
                f"lost_inputs={self.lost_inputs} worker_exits={self.worker_exits} "
                f"{self.seconds:.0f}s {'; '.join(self.notes)}")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


Record = tuple[Topic, str | None, bytes]


def setup(shape: Shape) -> list[Record]:
    """Per account: an inbox, two users (one may edit settings), both available with capacity,
    and settings that rotate live handoffs between them."""
    out: list[Record] = []
    for a in range(shape.accounts):
        acct = f"acct-{a}"
        u1, u2 = f"{acct}-u1", f"{acct}-u2"
        entries = [{"kind": "inbox", "id": "support", "account_id": acct, "type": "inbox"},
                   {"kind": "user", "id": u1, "account_id": acct, "name": u1,
                    "permissions": ["customer_agent.edit"]},
                   {"kind": "user", "id": u2, "account_id": acct, "name": u2}]
        out += [(Topic.DIRECTORY, record_key(Topic.DIRECTORY, e), orjson.dumps(e))
                for e in entries]
    for a in range(shape.accounts):
        acct = f"acct-{a}"
        for u in ("u1", "u2"):
            p = {"event_id": f"p-{acct}-{u}", "user_id": f"{acct}-{u}", "status": "available",
                 "occurred_at": _iso(T0), "max_open_conversations": 40}
            out.append((Topic.AGENT_PRESENCE, p["user_id"], orjson.dumps(p)))
        cfg = {"event_id": f"cfg-{acct}", "account_id": acct, "actor": f"{acct}-u1",
               "occurred_at": _iso(T0), "config": {
                   "process": "live", "routing": {
                       "mode": "direct", "destination": "support",
                       "assignees": [{"type": "user", "id": f"{acct}-u1"},
                                     {"type": "user", "id": f"{acct}-u2"}]}}}
        out.append((Topic.CONFIG_REQUESTS, acct, orjson.dumps(cfg)))
    return out


def stream(shape: Shape) -> list[Record]:
    """The messages: every conversation talks, about half ask for a human at some point, and
    some of those are closed by the inbox later (which frees the assignee's capacity); every
    500 messages an editor changes one account's settings (custom phrase, rotation order)."""
    rng = random.Random(shape.seed)
    asks_at = {c: rng.randrange(2, 14) for c in range(shape.conversations) if rng.random() < 0.5}
    closes = {c for c in asks_at if rng.random() < 0.5}
    said: Counter[int] = Counter()
    out: list[Record] = []
    for i in range(shape.messages):
        c = rng.randrange(shape.conversations)
        conv, acct = f"conv-{c}", f"acct-{c % shape.accounts}"
        k = said[c]
        said[c] += 1
        at = _iso(T0 + 1 + i * 0.01)
        agent = k % 3 == 1
        text = ("I want to talk to a human" if asks_at.get(c) == k else
                f"answer {k}" if agent else f"question {k} about my order")
        msg = {"event_id": f"m-{i}", "conversation_id": conv, "account_id": acct,
               "channel": "chat", "sender": "customer_agent" if agent and asks_at.get(c) != k
               else "visitor", "text": text, "sent_at": at,
               "answered": True if agent and asks_at.get(c) != k else None}
        out.append((Topic.CHAT_MESSAGES, conv, orjson.dumps(msg)))
        if i % 500 == 499:  # an editor changes an account's settings now and then
            a = (i // 500) % shape.accounts
            editing = f"acct-{a}"
            order = ["u1", "u2"] if (i // 500) % 2 else ["u2", "u1"]
            cfg = {"event_id": f"cfg-{editing}-{i}", "account_id": editing, "actor": f"{editing}-u1",
                   "occurred_at": at, "config": {
                       "custom_triggers": [f"refund {i % 7}"], "process": "live",
                       "routing": {"mode": "direct", "destination": "support", "assignees": [
                           {"type": "user", "id": f"{editing}-{u}"} for u in order]}}}
            out.append((Topic.CONFIG_REQUESTS, editing, orjson.dumps(cfg)))
        if c in closes and k == asks_at[c] + 3:
            upd = {"event_id": f"close-{c}", "conversation_id": conv, "account_id": acct,
                   "action": "close", "occurred_at": at, "actor": f"{acct}-u1"}
            out.append((Topic.CONVERSATION_UPDATES, record_key(Topic.CONVERSATION_UPDATES, upd),
                        orjson.dumps(upd)))
    return out


class Run:
    """One deployment under test: workers, the input sender, fault hooks and the final count."""

    def __init__(self, dep: Deployment, guarantee: str) -> None:
        self.dep = dep
        self.guarantee = guarantee
        self.workers: list[Worker] = []
        self.killed: set[int] = set()
        self.exits = 0
        self.paused = asyncio.Event()
        self.paused.set()  # set: sending allowed

    def worker(self, name: str) -> Worker:
        w = self.dep.worker(HANDOFF_PROCESSING_GUARANTEE=self.guarantee,
                            HANDOFF_DATA_DIR=str(self.dep.tmp / f"data-{name}"))
        self.workers.append(w)
        return w

    async def start(self, w: Worker) -> None:
        await asyncio.to_thread(w.start, 120.0)

    async def kill(self, w: Worker, sig: int = signal.SIGKILL) -> None:
        self.killed.add(id(w))
        await asyncio.to_thread(w.stop, sig)

    async def babysit(self) -> None:
        """Restart a worker that died on its own (counted: the worker should never stop)."""
        while True:
            await asyncio.sleep(1.0)
            for w in self.workers:
                p = w.process
                if p is not None and p.poll() is not None and id(w) not in self.killed:
                    self.exits += 1
                    await self.start(w)

    async def send(self, records: list[Record], rate: float,
                   progress: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Send at `rate` records/s in chunks; `progress(fraction)` runs between chunks."""
        producer = AIOKafkaProducer(**client_kwargs(self.dep.settings), acks="all",
                                    enable_idempotence=True, linger_ms=5)
        await producer.start()
        chunk = 200
        try:
            started = time.monotonic()
            for n in range(0, len(records), chunk):
                await self.paused.wait()
                futures = [await producer.send(self.dep.settings.topic(t), value=v,
                                               key=k.encode() if k else None)
                           for t, k, v in records[n:n + chunk]]
                await asyncio.gather(*futures)
                if progress is not None:
                    await progress((n + chunk) / len(records))
                ahead = (n + chunk) / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()

    async def lag(self) -> int:
        """Input records the group has not committed yet (intake), summed over partitions."""
        s = self.dep.settings
        admin = AIOKafkaAdminClient(**client_kwargs(s))
        consumer = AIOKafkaConsumer(**client_kwargs(s), group_id=None)
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(s.group_id)
            tps = [TopicPartition(s.topic(t), p) for t in INPUT_TOPICS
                   for p in range(s.partitions)]
            ends = await consumer.end_offsets(tps)
            return sum(max(0, ends[tp] - (committed[tp].offset if tp in committed else 0))
                       for tp in tps)
        finally:
            await consumer.stop()
            await admin.close()

    async def read(self, topics: list[Topic]) -> list[tuple[str, bytes]]:
        """Every record of `topics` so far (read_committed), as (topic, value)."""
        s = self.dep.settings
        names = {s.topic(t): t.value for t in topics}
        consumer = AIOKafkaConsumer(**client_kwargs(s), group_id=None, enable_auto_commit=False,
                                    isolation_level="read_committed",
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [TopicPartition(n, p) for n in names for p in range(s.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            # Up to the last stable offset: what read_committed readers can see now.
            ends = await consumer.end_offsets(tps)
            out: list[tuple[str, bytes]] = []
            empty = 0
            while empty < 3:
                behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
                if not behind:
                    break
                batch = await consumer.getmany(*behind, timeout_ms=500)
                # Only transaction markers or aborted records can be left: a few empty polls.
                empty = 0 if batch else empty + 1
                for tp, messages in batch.items():
                    out += [(names[tp.topic], m.value) for m in messages
                            if m.value is not None and m.offset < ends[tp]]
            return out
        finally:
            await consumer.stop()

    async def settle(self, timeout: float = 240.0) -> None:
        """Wait until intake committed every input and the outputs stopped growing."""
        deadline = time.monotonic() + timeout
        last, quiet = -1, 0
        while time.monotonic() < deadline:
            await asyncio.sleep(2.0)
            count = len(await self.read(OUTPUTS))
            lag = await self.lag()
            quiet = quiet + 1 if count == last and lag == 0 else 0
            last = count
            if quiet >= 3:
                return
        raise TimeoutError(f"outputs still growing or inputs uncommitted after {timeout} s")

    async def count(self, scenario: str, inputs: list[Record], started: float) -> Figures:
        figures = Figures(scenario, self.guarantee, inputs=len(inputs), worker_exits=self.exits)
        log = await self.read([Topic.ACCOUNT_EVENTS])
        # The reference: handoff.replay over the log as recorded (what `handoff replay` and an
        # auditor see). Also the core over the log with every input once (by origin): where the
        # two differ, a re-sequenced input changed a decision (see the README on ordering).
        out = self.dep.tmp / "replay.jsonl"
        await run_replay(self.dep.settings, out=out)
        reference = {(r["topic"], r["value"]["event_id"]): _canonical(r["value"])
                     for r in map(orjson.loads, out.read_bytes().splitlines())}
        once = decide_once(log)
        if once != reference:
            figures.notes.append(f"replay of the log differs from each-input-once on "
                                 f"{len(set(once.items()) ^ set(reference.items()))} records")
        live: Counter[tuple[str, str]] = Counter()
        differs = 0
        for topic, value in await self.read(OUTPUTS):
            v = orjson.loads(value)
            key = (topic, v["event_id"])
            live[key] += 1
            if live[key] == 1 and key in reference and reference[key] != _canonical(v):
                differs += 1
        figures.reference, figures.live = len(reference), sum(live.values())
        figures.missing = sum(1 for k in reference if k not in live)
        figures.duplicated = sum(n - 1 for n in live.values() if n > 1)
        figures.extra = sum(n for k, n in live.items() if k not in reference)
        figures.different = differs
        logged: Counter[tuple[str, Any]] = Counter()
        for _, value in log:
            e = orjson.loads(value)
            record = e.get("record") or {}
            logged[(e["origin"]["topic"], record.get("event_id"))] += 1
        sent_ids = [(t.value, orjson.loads(v).get("event_id")) for t, _, v in inputs
                    if t in (Topic.CHAT_MESSAGES, Topic.CONVERSATION_UPDATES,
                             Topic.CONFIG_REQUESTS)]
        figures.lost_inputs = sum(1 for k in sent_ids if k not in logged)
        dup_log = sum(logged[k] - 1 for k in sent_ids if logged[k] > 1)
        if dup_log:
            figures.notes.append(f"{dup_log} inputs sequenced twice (dropped by event_id)")
        if self.guarantee == "exactly_once":
            logs = b"".join(w.log_path.read_bytes() for w in self.workers if w.log_path.exists())
            if b"transactional producer" not in logs:
                figures.notes.append("EXACTLY_ONCE NOT ACTIVE (no transactional producers)")
        figures.seconds = time.monotonic() - started
        return figures


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def decide_once(log: list[tuple[str, bytes]]) -> dict[tuple[str, str], bytes]:
    """The pure core over the sequenced log, each input once (by its origin), in log order."""
    engine = build_engine()
    store = MemoryStore()
    seen: set[tuple[str, int, int]] = set()
    out: dict[tuple[str, str], bytes] = {}
    for _, value in log:
        event = _account_event.validate_json(value, strict=True)
        origin = (event.origin.topic, event.origin.partition, event.origin.offset)
        if origin in seen:
            continue
        seen.add(origin)
        decision = engine.decide(store, event)
        store.apply(decision.writes)
        for emit in decision.emits:
            v = orjson.loads(dumps(emit.value))
            out[(emit.topic.value, v["event_id"])] = _canonical(v)
    return out


def record(figures: Figures, path: Path) -> None:
    """Append the figures as one JSON line (the report is built from these)."""
    with path.open("a") as f:
        f.write(json.dumps(asdict(figures)) + "\n")
    print("\nFAULT-RUN", figures.line())


@contextlib.asynccontextmanager
async def running(run: Run):  # type: ignore[no-untyped-def]
    sitter = asyncio.ensure_future(run.babysit())
    try:
        yield
    finally:
        sitter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sitter
        for w in run.workers:
            await asyncio.to_thread(w.stop)
