"""Fault runs: a long input stream through real workers while something fails, then a count.

The reference is the pure core run over the worker's own sequenced log
(`handoff.account-events`, read with read_committed) by `handoff.replay`: whatever order intake
chose, the core must give exactly those outputs. Live outputs (read_committed) are compared with
it by (topic, event_id): a reference record absent live is *missing*, a live copy beyond the first
is *duplicated*, a live record the reference does not have is *extra*, and a live record with the
reference's id but other content is *different* (state that drifted: rotation, capacity).
`deadletter` is compared the same way with the dead letters the run expects (one per poison
record it sent, none otherwise). Valid inputs whose (topic, partition, offset) is the origin of
no log record are *lost_inputs* ("never sequenced"); origins in the log more than once are
*sequenced_twice*.

Exactly-once is the worker's only mode (streams/loop.py): per task p one transaction per cycle
under the transactional id `<group>-task-<p>`. The count checks that those ids exist on the
broker (`__transaction_state`), so a worker that fell back to plain producers cannot pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import TypeAdapter

from handoff.config import WorkerSettings
from handoff.core.engine import derive_id
from handoff.core.state import ConversationState
from handoff.core.store import MemoryStore, Table
from handoff.kafka_clients import client_kwargs
from handoff.publish import record_key
from handoff.replay import run_replay
from schemas.codec import dumps
from schemas.common import Channel
from schemas.internal import AccountEvent
from schemas.topics import INPUT_TOPICS, Topic, partition_for
from steps.decide import build_engine
from streams.state import changelog_topic
from streams.task import store_names
from tests.kafka_support import REPO, Deployment, Worker

_account_event: TypeAdapter[Any] = TypeAdapter(AccountEvent)
OUTPUTS = [Topic.HANDOFF_EVENTS, Topic.TICKETS_CREATED, Topic.ASSIGNMENTS, Topic.CHAT_OUTBOUND,
           Topic.CONVERSATION_STATUS, Topic.CONFIG_CHANGES]
# Every topic the workers write in their transactions, apart from the changelogs.
WRITTEN = [*OUTPUTS, Topic.DEADLETTER, Topic.ACCOUNT_EVENTS, Topic.USER_ACCOUNTS]
T0 = 1_795_000_000.0  # 2026-11-18, a fixed base for sent_at
READY = re.compile(rb"task (\d+) ready: (\d+) state records restored")


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
    seed: int
    inputs: int = 0
    reference: int = 0
    live: int = 0
    missing: int = 0
    duplicated: int = 0
    extra: int = 0
    different: int = 0
    lost_inputs: int = 0
    sequenced_twice: int = 0
    ticks: int = 0  # clock records in the account log (acct-0's queue and pickup timeouts)
    dead_letters: int = 0  # on `deadletter` (read_committed); compared like the outputs
    transactional_ids: int = 0  # `<group>-task-<p>` ids found on the broker, of `partitions`
    partitions: int = 0
    kills_in_transaction: int = 0  # faults after which a transaction of the victim stayed open
    worker_exits: int = 0  # workers that died without being killed by the test
    seconds: float = 0.0
    code: str = ""  # the commit under test, and a digest of uncommitted changes
    failed: list[str] = field(default_factory=list)  # scenario checks that did not hold
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.scenario:<16} seed={self.seed} inputs={self.inputs} "
                f"reference={self.reference} live={self.live} missing={self.missing} "
                f"duplicated={self.duplicated} extra={self.extra} different={self.different} "
                f"lost_inputs={self.lost_inputs} sequenced_twice={self.sequenced_twice} "
                f"dead_letters={self.dead_letters} ticks={self.ticks} "
                f"txn_ids={self.transactional_ids}/{self.partitions} "
                f"kills_in_txn={self.kills_in_transaction} worker_exits={self.worker_exits} "
                f"{self.seconds:.0f}s code={self.code} "
                f"{'FAILED: ' + '; '.join(self.failed) + ' ' if self.failed else ''}"
                f"{'; '.join(self.notes)}")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


Record = tuple[Topic, str | None, bytes]
Origin = tuple[str, int, int]  # contract topic, partition, offset


@dataclass(frozen=True)
class Poison:
    """An invalid record sent right before stream record number `at`; `why` for the notes."""

    at: int
    record: Record
    why: str


# Account acct-0 also has the queue and a pickup timeout (contract v1.1). Nobody in the stream
# accepts, and its sent_at times lie in the past, so each of its assignments times out at the
# next clock tick and moves on, then waits in the queue: the worker writes ticks into acct-0's
# log all run long, and they go through every fault like any other record.
TIMERS = {"pickup_timeout_s": 10, "assign_when_available": True, "queue_update_s": 10,
          "messages": {"queue_position": "You are number {position} in line."}}


def timers(acct: str) -> dict[str, Any]:
    """The queue-and-timer settings of an account (only acct-0 has them)."""
    return TIMERS if acct == "acct-0" else {}


def setup(shape: Shape) -> list[Record]:
    """Per account: an inbox, two users (one may edit settings), both available with capacity,
    and settings that rotate live handoffs between them (acct-0 with queue and timers)."""
    out: list[Record] = []
    for a in range(shape.accounts):
        acct = f"acct-{a}"
        u1, u2 = f"{acct}-u1", f"{acct}-u2"
        entries: list[dict[str, Any]] = [
            {"kind": "inbox", "id": "support", "account_id": acct, "type": "inbox"},
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
            out.append((Topic.AGENT_PRESENCE, f"{acct}-{u}", orjson.dumps(p)))
        cfg = {"event_id": f"cfg-{acct}", "account_id": acct, "actor": f"{acct}-u1",
               "occurred_at": _iso(T0), "config": {
                   "process": "live", "routing": {
                       "mode": "direct", "destination": "support",
                       "assignees": [{"type": "user", "id": f"{acct}-u1"},
                                     {"type": "user", "id": f"{acct}-u2"}]}, **timers(acct)}}
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
                           {"type": "user", "id": f"{editing}-{u}"} for u in order]},
                       **timers(editing)}}
            out.append((Topic.CONFIG_REQUESTS, editing, orjson.dumps(cfg)))
        if c in closes and k == asks_at[c] + 3:
            upd = {"event_id": f"close-{c}", "conversation_id": conv, "account_id": acct,
                   "action": "close", "occurred_at": at, "actor": f"{acct}-u1"}
            out.append((Topic.CONVERSATION_UPDATES, record_key(Topic.CONVERSATION_UPDATES, upd),
                        orjson.dumps(upd)))
    return out


def poisoned(records: list[Record], poisons: Sequence[Poison]) -> tuple[list[Record], set[int]]:
    """`records` with the poison records inserted; also the indexes of the poison records."""
    at = {p.at: p for p in poisons}
    out: list[Record] = []
    bad: set[int] = set()
    for i, r in enumerate(records):
        if i in at:
            bad.add(len(out))
            out.append(at[i].record)
        out.append(r)
    return out, bad


def code_version() -> str:
    """The commit under test, plus a digest of the uncommitted changes to the worker's code."""
    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=False).stdout

    head = git("rev-parse", "--short", "HEAD").decode().strip()
    diff = git("diff", "HEAD", "--", "streams", "steps", "handoff", "schemas")
    return head + (f"+{hashlib.sha1(diff).hexdigest()[:8]}" if diff else "")


class Run:
    """One deployment under test: workers, the input sender, fault hooks and the final count."""

    def __init__(self, dep: Deployment, scenario: str, seed: int) -> None:
        self.dep = dep
        self.scenario = scenario
        self.seed = seed
        self.workers: list[Worker] = []
        self.started_at: dict[int, int] = {}  # id(worker) -> its log's size at its last start
        self.killed: set[int] = set()  # pids of worker processes the test stopped
        self.exits = 0
        self.kills_in_transaction = 0
        self.paused = asyncio.Event()
        self.paused.set()  # set: sending allowed
        self.idle = asyncio.Event()  # set while the sender waits for `paused` (or is done)
        self.done = 0.0  # fraction of the stream acknowledged by the broker
        self.sent: list[tuple[Record, Origin]] = []  # every input, as the broker stored it
        self.expected_dead: set[Origin] = set()
        self.failed: list[str] = []
        self.notes: list[str] = []

    # -- workers -------------------------------------------------------------------------

    def worker(self, name: str) -> Worker:
        w = self.dep.worker(HANDOFF_DATA_DIR=str(self.dep.tmp / f"data-{name}"))
        self.workers.append(w)
        return w

    async def start(self, w: Worker) -> None:
        self.started_at[id(w)] = w.log_path.stat().st_size if w.log_path.exists() else 0
        await asyncio.to_thread(w.start, 120.0)

    async def kill(self, w: Worker, sig: int = signal.SIGKILL) -> None:
        if w.process is not None:
            self.killed.add(w.process.pid)
        await asyncio.to_thread(w.stop, sig)

    def signal(self, w: Worker, sig: int) -> None:
        assert w.process is not None
        os.killpg(w.process.pid, sig)

    def log_since_start(self, w: Worker) -> bytes:
        with w.log_path.open("rb") as f:
            f.seek(self.started_at.get(id(w), 0))
            return f.read()

    def ready_tasks(self, w: Worker, since: int | None = None) -> list[int]:
        """Tasks the worker reported ready since its last start (or since log offset `since`)."""
        with w.log_path.open("rb") as f:
            f.seek(self.started_at.get(id(w), 0) if since is None else since)
            return [int(m.group(1)) for m in READY.finditer(f.read())]

    async def until_ready(self, w: Worker, timeout: float = 90.0, since: int | None = None
                          ) -> list[int]:
        """Wait until the worker reports a task ready (since its last start, or `since`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.ready_tasks(w, since)
            if tasks:
                return tasks
            await asyncio.sleep(0.1)
        raise TimeoutError(f"worker {w.log_path.name} got no task in {timeout} s")

    async def babysit(self) -> None:
        """Restart a worker that died on its own (counted: the worker should never stop)."""
        while True:
            await asyncio.sleep(1.0)
            for w in self.workers:
                p = w.process
                if p is not None and p.poll() is not None and p.pid not in self.killed:
                    self.killed.add(p.pid)  # counted once
                    self.exits += 1
                    self.notes.append(f"{w.log_path.name} exited {p.returncode} on its own")
                    await self.start(w)

    # -- inputs --------------------------------------------------------------------------

    async def send(self, records: list[Record], rate: float, bad: Collection[int] = (),
                   track: bool = False) -> None:
        """Send at `rate` records/s in chunks, noting where each landed; `track`: this is the
        stream the faults follow (`self.done`). Records at indexes `bad` are poison: their dead
        letters are expected."""
        producer = AIOKafkaProducer(**client_kwargs(self.dep.settings), acks="all",
                                    enable_idempotence=True, linger_ms=5)
        await producer.start()
        chunk = 200
        try:
            started = time.monotonic()
            for n in range(0, len(records), chunk):
                if not self.paused.is_set():
                    self.idle.set()
                    await self.paused.wait()
                    self.idle.clear()
                part = records[n:n + chunk]
                futures = [await producer.send(self.dep.settings.topic(t), value=v,
                                               key=k.encode() if k else None)
                           for t, k, v in part]
                for i, (r, meta) in enumerate(zip(part, await asyncio.gather(*futures),
                                                  strict=True)):
                    origin = (r[0].value, meta.partition, meta.offset)
                    self.sent.append((r, origin))
                    if n + i in bad:
                        self.expected_dead.add(origin)
                if track:
                    self.done = min(1.0, (n + chunk) / len(records))
                ahead = (n + chunk) / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            self.idle.set()
            await producer.stop()

    async def reached(self, fraction: float) -> None:
        while self.done < fraction:
            await asyncio.sleep(0.05)

    async def pause_sending(self) -> None:
        """Stop the sender between chunks (everything sent so far is acknowledged)."""
        self.idle.clear()
        self.paused.clear()
        await self.idle.wait()

    def resume_sending(self) -> None:
        self.paused.set()

    # -- the broker, read from outside -----------------------------------------------------

    def _consumer(self, isolation: str = "read_committed") -> AIOKafkaConsumer:
        return AIOKafkaConsumer(**client_kwargs(self.dep.settings), group_id=None,
                                enable_auto_commit=False, isolation_level=isolation,
                                auto_offset_reset="earliest")

    def written_tps(self) -> list[TopicPartition]:
        """Every partition the workers write transactionally (outputs, log, changelogs)."""
        s = self.dep.settings
        names = [s.topic(t) for t in WRITTEN] + [changelog_topic(s.group_id, n)
                                                 for n in store_names()]
        return [TopicPartition(n, p) for n in names for p in range(s.partitions)]

    async def open_transactions(self) -> dict[TopicPartition, int]:
        """Partitions whose last stable offset is behind their high watermark (an open
        transaction holds them), with the last stable offset."""
        tps = self.written_tps()
        committed, uncommitted = self._consumer(), self._consumer("read_uncommitted")
        await committed.start()
        await uncommitted.start()
        try:
            stable = await committed.end_offsets(tps)
            high = await uncommitted.end_offsets(tps)
        finally:
            await committed.stop()
            await uncommitted.stop()
        return {tp: stable[tp] for tp in tps if stable[tp] < high[tp]}

    async def kill_noting_transaction(self, w: Worker) -> dict[TopicPartition, int]:
        """SIGKILL `w`, then look for transactions it left open (the kill landed between a
        produce and its commit); counted in `kills_in_transaction`."""
        await self.kill(w, signal.SIGKILL)
        left = await self.open_transactions()
        if left:
            self.kills_in_transaction += 1
        return left

    async def tail_uncommitted(self, topics: list[Topic], timeout: float = 30.0,
                               names: Sequence[str] = (), partitions: Sequence[int] = ()
                               ) -> bool:
        """Return as soon as a record not yet committed shows on `topics` (read_uncommitted,
        from the current end): a task of some worker is between produce and commit. `names`:
        more topics by name; `partitions`: only these (default all)."""
        s = self.dep.settings
        consumer = self._consumer("read_uncommitted")
        await consumer.start()
        try:
            tps = [TopicPartition(name, p) for name in [*(s.topic(t) for t in topics), *names]
                   for p in (partitions or range(s.partitions))]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=50)
                if any(batch.values()):
                    return True
            return False
        finally:
            await consumer.stop()

    async def lag(self) -> int:
        """Input records the group has not committed yet (intake), summed over partitions."""
        s = self.dep.settings
        admin = AIOKafkaAdminClient(**client_kwargs(s))
        consumer = self._consumer()
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

    async def read(self, topics: list[Topic]) -> list[tuple[str, int, int, bytes]]:
        """Every record of `topics` so far (read_committed), as (topic, partition, offset,
        value)."""
        s = self.dep.settings
        names = {s.topic(t): t.value for t in topics}
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(n, p) for n in names for p in range(s.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            # Up to the last stable offset: what read_committed readers can see now.
            ends = await consumer.end_offsets(tps)
            out: list[tuple[str, int, int, bytes]] = []
            empty = 0
            while empty < 3:
                behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
                if not behind:
                    break
                batch = await consumer.getmany(*behind, timeout_ms=500)
                # Only transaction markers or aborted records can be left: a few empty polls.
                empty = 0 if batch else empty + 1
                for tp, messages in batch.items():
                    out += [(names[tp.topic], tp.partition, m.offset, m.value) for m in messages
                            if m.value is not None and m.offset < ends[tp]]
            return out
        finally:
            await consumer.stop()

    async def transactional_ids(self) -> set[str]:
        """The transactional ids the broker's transaction log knows."""
        consumer = self._consumer("read_uncommitted")
        await consumer.start()
        try:
            tp = TopicPartition("__transaction_state", 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            found: set[str] = set()
            while await consumer.position(tp) < end:
                for m in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    key = m.key or b""
                    # TransactionLogKey: int16 version, then the id as int16 length + UTF-8.
                    if len(key) >= 4:
                        size = int.from_bytes(key[2:4], "big")
                        found.add(key[4:4 + size].decode("utf-8", "replace"))
            return found
        finally:
            await consumer.stop()

    async def settle(self, timeout: float = 300.0) -> None:
        """Wait until intake committed every input and the log and outputs stopped growing."""
        deadline = time.monotonic() + timeout
        last, quiet = (-1, -1), 0
        while time.monotonic() < deadline:
            await asyncio.sleep(2.0)
            # Clock ticks keep coming while acct-0's queue holds visitors nobody may take;
            # they decide nothing new then, so only the other records must stop growing.
            count = (len(await self.read([*OUTPUTS, Topic.DEADLETTER])),
                     sum(1 for *_, v in await self.read([Topic.ACCOUNT_EVENTS])
                         if b'"source":"clock"' not in v))
            lag = await self.lag()
            quiet = quiet + 1 if count == last and lag == 0 else 0
            last = count
            if quiet >= 3:
                return
        raise TimeoutError(f"outputs still growing or inputs uncommitted after {timeout} s "
                           f"(outputs, log: {last}; input lag {await self.lag()})")

    # -- the count -----------------------------------------------------------------------

    async def count(self, started: float) -> Figures:
        s = self.dep.settings
        figures = Figures(self.scenario, self.seed, inputs=len(self.sent),
                          worker_exits=self.exits, partitions=s.partitions,
                          kills_in_transaction=self.kills_in_transaction, code=code_version())
        log = await self.read([Topic.ACCOUNT_EVENTS])
        # The reference: handoff.replay over the log as recorded (what `handoff replay` and an
        # auditor see). Also the core over the log with every input once (by origin): where the
        # two differ, a re-sequenced input changed a decision.
        out = self.dep.tmp / "replay.jsonl"
        await run_replay(s, out=out)
        reference = {(r["topic"], r["value"]["event_id"]): _canonical(r["value"])
                     for r in map(orjson.loads, out.read_bytes().splitlines())}
        once, made_by = decide_once(log)
        if once != reference:
            figures.notes.append(f"replay of the log differs from each-input-once on "
                                 f"{len(set(once.items()) ^ set(reference.items()))} records")
        # Dead letters: exactly one per poison record sent, with its coordinates.
        by_origin = {o: r for r, o in self.sent}
        for origin in self.expected_dead:
            key = (Topic.DEADLETTER.value, derive_id("deadletter", origin[0], str(origin[1]),
                                                    str(origin[2])))
            reference[key] = _canonical({"source_topic": origin[0], "partition": origin[1],
                                         "offset": origin[2]})
            made_by[key] = origin
        live: Counter[tuple[str, str]] = Counter()
        where: dict[tuple[str, str], list[tuple[int, int]]] = {}
        differs: list[tuple[str, str]] = []
        for topic, partition, offset, value in await self.read([*OUTPUTS, Topic.DEADLETTER]):
            v = orjson.loads(value)
            key = (topic, v["event_id"])
            live[key] += 1
            where.setdefault(key, []).append((partition, offset))
            if topic == Topic.DEADLETTER.value:
                v = {k: v[k] for k in ("source_topic", "partition", "offset")}
                figures.dead_letters += 1
            if live[key] == 1 and key in reference and reference[key] != _canonical(v):
                differs.append(key)
        figures.reference, figures.live = len(reference), sum(live.values())
        missing = [k for k in reference if k not in live]
        duplicated = [k for k, n in live.items() if n > 1]
        extra = [k for k in live if k not in reference]
        figures.missing = len(missing)
        figures.duplicated = sum(live[k] - 1 for k in duplicated)
        figures.extra = sum(live[k] for k in extra)
        figures.different = len(differs)
        logged: Counter[Origin] = Counter()
        ticks: Counter[str] = Counter()
        for _, _, _, value in log:
            entry = orjson.loads(value)
            if entry["source"] == "clock":
                ticks[entry["event_id"]] += 1
                continue
            o = entry["origin"]
            logged[(o["topic"], o["partition"], o["offset"])] += 1
        figures.ticks = sum(ticks.values())
        if any(n > 1 for n in ticks.values()):
            figures.failed.append("a clock tick is in the log twice")
        valid = [o for _, o in self.sent if o not in self.expected_dead]
        lost = [o for o in valid if o not in logged]
        figures.lost_inputs = len(lost)
        figures.sequenced_twice = sum(n - 1 for o, n in logged.items() if n > 1)
        # The worker's log names each task's transactional id (aiokafka, finding its
        # transaction coordinator); the broker's transaction log must know each of them too.
        logs = b"".join(w.log_path.read_bytes() for w in self.workers if w.log_path.exists())
        unnamed = [p for p in range(s.partitions)
                   if f"transactional id {s.group_id}-task-{p}".encode() not in logs]
        if unnamed:
            figures.failed.append(f"no worker log names the transactional id of tasks {unnamed}")
        ids = await self.transactional_ids()
        figures.transactional_ids = sum(
            1 for p in range(s.partitions) if f"{s.group_id}-task-{p}" in ids)
        figures.seconds = time.monotonic() - started
        figures.failed += self.failed
        figures.notes += self.notes
        if missing or duplicated or extra or differs or lost or figures.sequenced_twice:
            evidence = {
                "missing": [(k, made_by.get(k), _input(by_origin, made_by.get(k)))
                            for k in missing[:200]],
                "duplicated": [(k, where[k], made_by.get(k)) for k in duplicated[:200]],
                "extra": [(k, where[k]) for k in extra[:200]],
                "different": [(k, made_by.get(k)) for k in differs[:200]],
                "lost_inputs": [(o, _input(by_origin, o)) for o in lost[:200]],
                "sequenced_twice": [o for o, n in logged.items() if n > 1][:200],
            }
            path = self.dep.tmp / "evidence.json"
            path.write_text(json.dumps(evidence, indent=1, default=str))
            figures.notes.append(f"evidence in {path}")
        return figures


def _input(by_origin: dict[Origin, Record], origin: Origin | None) -> Any:
    if origin is None or origin not in by_origin:
        return None
    topic, key, value = by_origin[origin]
    return {"topic": topic.value, "key": key, "value": value.decode("utf-8", "replace")[:300]}


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def decide_once(log: list[tuple[str, int, int, bytes]]
                ) -> tuple[dict[tuple[str, str], bytes], dict[tuple[str, str], Origin]]:
    """The pure core over the sequenced log, each input once (by its origin), in log order;
    also the origin of the input each output came from."""
    engine = build_engine()
    store = MemoryStore()
    seen: set[Origin] = set()
    out: dict[tuple[str, str], bytes] = {}
    made_by: dict[tuple[str, str], Origin] = {}
    for _, _, _, value in log:
        event = _account_event.validate_json(value, strict=True)
        # A clock tick has no input: it is its own origin (committed once, by one task).
        origin = (("clock", 0, hash(event.event_id)) if event.source == "clock" else
                  (event.origin.topic, event.origin.partition, event.origin.offset))
        if origin in seen:
            continue
        seen.add(origin)
        decision = engine.decide(store, event)
        store.apply(decision.writes)
        for emit in decision.emits:
            v = orjson.loads(dumps(emit.value))
            key = (emit.topic.value, v["event_id"])
            out[key] = _canonical(v)
            made_by[key] = origin
    return out, made_by


async def write_conversations(settings: WorkerSettings, count: int, accounts: int = 1_000
                              ) -> float:
    """Write `count` conversation states of accounts outside the stream (`acct-restore-N`)
    straight to the conversations changelog, each on its account's partition (the task whose
    store holds it); creates the topic (compacted) when missing. Returns the seconds taken."""
    started = time.monotonic()
    topic = changelog_topic(settings.group_id, Table.CONVERSATIONS.value)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, num_partitions=settings.partitions,
                                                replication_factor=settings.replication_factor,
                                                topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", linger_ms=50,
                                max_batch_size=1024 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        homes = [partition_for(f"acct-restore-{a}", settings.partitions) for a in range(accounts)]
        batches = {p: producer.create_batch() for p in range(settings.partitions)}
        pending: list[asyncio.Future[Any]] = []

        async def flush(p: int) -> None:
            batch = batches[p]
            batch.close()
            pending.append(await producer.send_batch(batch, topic, partition=p))
            batches[p] = producer.create_batch()
            if len(pending) >= 64:
                await asyncio.gather(*pending)
                pending.clear()

        for n in range(count):
            a = n % accounts
            state = ConversationState(conversation_id=f"conv-restore-{n}",
                                      account_id=f"acct-restore-{a}", channel=Channel.CHAT)
            key, value = state.conversation_id.encode(), dumps(state)
            p = homes[a]
            if batches[p].append(key=key, value=value, timestamp=None) is None:
                await flush(p)
                batches[p].append(key=key, value=value, timestamp=None)
        for p in list(batches):
            if batches[p].record_count():
                await flush(p)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


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
            if w.process is not None and w.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.process.pid, signal.SIGCONT)  # a stopped one must see the TERM
            await asyncio.to_thread(w.stop)
