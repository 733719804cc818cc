"""What every broker benchmark needs: a broker, a topic prefix of its own, workers as processes,
fast bulk production, and the offsets and timestamps that tell when a run is done.

Figures come from the broker where they can: the first and last record a run produced (their
CreateTime, set by the producing process) bound its busy time, and committed offsets (what the
consumer group acknowledged) say when it is done.

The worker writes every record in a transaction, so its topics hold commit markers beside the
records: a marker takes an offset but is never delivered. Counts and lags here are therefore of
records read with read_committed, not differences of offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from handoff.config import WorkerSettings
from handoff.publish import publish_fixture
from schemas.topics import Topic, partition_for
from streams.admin import ensure_topics
from streams.state import changelog_topic

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def broker() -> Iterator[tuple[str, str, int | None]]:
    """(bootstrap, what it is, broker pid if local): KAFKA_BOOTSTRAP_SERVERS if set, else the
    local broker (started and stopped here unless one already runs from
    HANDOFF_KAFKA_STATE_DIR)."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given, "KAFKA_BOOTSTRAP_SERVERS", None
        return
    from handoff import localkafka

    already = localkafka.status()
    address = already or localkafka.start()
    pid = localkafka._read_pid(localkafka.state_dir())
    try:
        yield (address, f"local Kafka {localkafka.kafka_version()} (1 node, KRaft, "
                        f"{' '.join(localkafka.JVM_HEAP)})", pid)
    finally:
        if already is None:
            localkafka.stop()


def rss_kib(pid: int) -> dict[str, int]:
    """Resident and peak resident memory of a process, KiB."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    return out


# ---------------------------------------------------------------------------------- workers

_LOG_TIME = re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
# streams/loop.py logs one line per task once it is restored and processing, then this one
# when every task the worker holds is: the worker is ready.
_READY = re.compile(rb"Worker ready: tasks \[([\d, ]*)\], (\d+) state records restored")
_TASK_READY = re.compile(rb"task (\d+) ready: (\d+) state records restored in ([\d.]+) s")


class Worker:
    """`handoff worker` in its own process, as an operator runs it; log lines are timed."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.marks: dict[str, float] = {}  # "Worker ready", "task P ready" -> epoch seconds
        self.tasks: list[int] = []  # the tasks "Worker ready" named
        self.restored = 0  # state records restored, as "Worker ready" counted them
        self.task_restore: dict[int, dict[str, float]] = {}  # per task: records, seconds
        self._offset = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.marks = {}
        self.tasks, self.restored, self.task_restore = [], 0, {}
        with self.log_path.open("ab") as log:
            self.started = time.time()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "handoff.cli", "worker"], cwd=REPO, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _scan(self) -> None:
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            text = f.read()
        for line in text.splitlines():
            task = _TASK_READY.search(line)
            ready = _READY.search(line) if task is None else None
            if task is None and ready is None:
                continue
            name = f"task {int(task[1])} ready" if task is not None else "Worker ready"
            if name in self.marks:
                continue  # the first time counts (a later rebalance logs it again)
            found = _LOG_TIME.match(line)
            at = time.time()
            if found:
                at = datetime.strptime(found.group(1).decode(),
                                       "%Y-%m-%d %H:%M:%S,%f").timestamp()
            self.marks[name] = at
            if task is not None:
                self.task_restore[int(task[1])] = {"records": int(task[2]),
                                                   "seconds": float(task[3])}
            elif ready is not None:
                self.tasks = [int(x) for x in ready[1].split(b",") if x.strip()]
                self.restored = int(ready[2])

    async def ready(self, timeout: float = 900.0) -> float:
        """Wait until the loop logs "Worker ready: tasks [...]" (every task it holds restored and
        processing); return when it was logged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._scan()
            if "Worker ready" in self.marks:
                return self.marks["Worker ready"]
            self.check()
            await asyncio.sleep(0.05)
        raise RuntimeError(f"worker not ready in {timeout:.0f} s; log {self.log_path}:\n"
                           + self.tail())

    def count(self, text: bytes) -> int:
        """Lines of this start's log that contain `text`."""
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            return sum(1 for line in f if text in line)

    def produce_retries(self) -> int:
        """Produce requests aiokafka retried (logged as warnings). Against Kafka 4 a
        transactional producer gets NOT_ENOUGH_REPLICAS while the broker cannot yet verify
        that a partition is in the transaction (KIP-890: the previous transaction still
        completing, among others); each retry waits retry_backoff_ms (100 ms by default)."""
        return self.count(b"Got error produce response")

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"worker exited {self.process.returncode}; log {self.log_path}:\n"
                               + self.tail())

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


# ------------------------------------------------------------------------------ deployment


@dataclass
class Deployment:
    """A unique topic prefix on the broker, its worker settings and its helpers."""

    bootstrap: str
    workdir: Path
    partitions: int = 4
    store: str = "memory://"
    window_ms: int | None = None  # None: the worker's default HANDOFF_SEQUENCING_WINDOW_MS
    name: str = "run"
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}.")
    workers: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = WorkerSettings(bootstrap_servers=self.bootstrap,
                                       topic_prefix=self.prefix, partitions=self.partitions)
        self.data_dir = self.workdir / f"{self.name}-data"

    @property
    def group(self) -> str:
        return self.settings.group_id

    def topic(self, topic: Topic | str) -> str:
        return self.settings.topic(topic)

    def changelog(self, store: str) -> str:
        """The changelog topic of one of the loop's stores: `<group>-<store>-changelog`."""
        return changelog_topic(self.group, store)

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               "HANDOFF_TOPIC_PREFIX": self.prefix, "HANDOFF_PARTITIONS": str(self.partitions),
               "HANDOFF_WEB_PORT": "0", "HANDOFF_DATA_DIR": str(self.data_dir),
               "HANDOFF_STORE": self.store, "PYTHONPATH": str(REPO), **extra}
        if self.window_ms is not None:
            env["HANDOFF_SEQUENCING_WINDOW_MS"] = str(self.window_ms)
        return env

    def worker(self, **extra_env: str) -> Worker:
        worker = Worker(self.env(**extra_env),
                        self.workdir / f"{self.name}-worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for w in self.workers:
            w.stop()

    async def create_topics(self, extra: Iterable[str] = (), compacted: Iterable[str] = ()
                            ) -> None:
        # The contract's topics and the stores' changelogs (compacted, one partition per task).
        created = set(await ensure_topics(self.settings))
        wanted = [NewTopic(name, num_partitions=self.partitions, replication_factor=1)
                  for name in extra if name not in created]
        wanted += [NewTopic(name, num_partitions=self.partitions, replication_factor=1,
                            topic_configs={"cleanup.policy": "compact"})
                   for name in compacted if name not in created]
        if wanted:
            async with admin(self.bootstrap) as client:
                await client.create_topics(wanted)

    async def setup_accounts(self, fixture: dict[str, list[dict[str, Any]]],
                             configs: list[dict[str, Any]], timeout: float = 120.0) -> float:
        """Publish directory, workflows and presence, then the settings; wait until every
        account's settings are accepted (re-sent if one was decided before its directory)."""
        start = time.monotonic()
        await publish_fixture(self.settings, fixture)
        await asyncio.sleep(1.0)
        pending = {c["account_id"]: c for c in configs}
        attempt = 0
        async with Reader(self.bootstrap, [self.topic(Topic.CONFIG_CHANGES)]) as reader:
            while pending:
                if time.monotonic() - start > timeout:
                    raise RuntimeError(f"settings of {sorted(pending)} not accepted in time")
                await publish_fixture(self.settings, {"config_requests": [
                    {**c, "event_id": f"{c['event_id']}-{attempt}"} for c in pending.values()]})
                deadline = time.monotonic() + 20.0
                while pending and time.monotonic() < deadline:
                    for _, value, _ in await reader.poll():
                        change = orjson.loads(value)
                        if change["accepted"] and change["event_id"]:
                            pending.pop(change["account_id"], None)
                    await asyncio.sleep(0.05)
                attempt += 1
        return time.monotonic() - start


@contextlib.asynccontextmanager
async def admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


class Reader:
    """A group-less consumer of some topics from the beginning (or the end).

    read_committed unless told otherwise: the worker's outputs count once their transaction
    commits, as for any consumer downstream."""

    def __init__(self, bootstrap: str, topics: list[str], *, from_end: bool = False,
                 **config: Any) -> None:
        config.setdefault("isolation_level", "read_committed")
        self.consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False,
                                         auto_offset_reset="latest" if from_end else "earliest",
                                         **config)

    async def __aenter__(self) -> Reader:
        await self.consumer.start()
        # Make sure partitions are assigned and positions fixed before anything is produced.
        while not self.consumer.assignment():
            await asyncio.sleep(0.01)
        for tp in self.consumer.assignment():
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def poll(self, timeout_ms: int = 100) -> list[tuple[str, bytes, int]]:
        """(topic, value, CreateTime ms) of what arrived."""
        batch = await self.consumer.getmany(timeout_ms=timeout_ms)
        return [(tp.topic, m.value, m.timestamp) for tp, ms in batch.items() for m in ms]


class Offsets:
    """End offsets, committed offsets, record counts and first/last record timestamps of topics.

    Ends are high watermarks; what lies between two offsets is counted by reading it with
    read_committed (commit markers and aborted records take offsets but are not records)."""

    # A group that commits the offset after the last record it read, not its position past
    # the commit marker that follows, stays one short of a transactional topic's end: a gap
    # this small is read to tell markers (and aborted records) from records.
    READ_GAP = 1_000

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False)
        self.reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                       enable_auto_commit=False,
                                       isolation_level="read_committed")
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> Offsets:
        await self.consumer.start()
        await self.reader.start()
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.reader.stop()
        await self.admin.close()

    def tps(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.partitions)]

    async def end(self, topic: str) -> dict[TopicPartition, int]:
        result: dict[TopicPartition, int] = await self.consumer.end_offsets(self.tps(topic))
        return result

    async def total(self, topic: str) -> int:
        """Offsets used (records and, on a transactional topic, markers too)."""
        return sum((await self.end(topic)).values())

    async def lag(self, group: str, topics: list[str]) -> int:
        """Records of `topics` the group has not committed yet (0: it is done with them)."""
        committed = await self.admin.list_consumer_group_offsets(group)
        lag = 0
        for topic in topics:
            for tp, end in (await self.end(topic)).items():
                done = committed.get(tp)
                start = done.offset if done is not None and done.offset >= 0 else 0
                gap = end - start
                if 0 < gap <= self.READ_GAP:
                    gap = await self._records_between(tp, start, end)
                lag += gap
        return lag

    async def _records_between(self, tp: TopicPartition, start: int, end: int,
                               timeout: float = 5.0) -> int:
        """Committed records at offsets start..end-1; offsets not readable yet (an open
        transaction) count as records, so an unfinished run never looks done."""
        count, position = 0, start
        self.reader.assign([tp])
        self.reader.seek(tp, start)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await self.reader.getmany(tp, timeout_ms=200)
            count += sum(1 for m in batch.get(tp, []) if m.offset < end)
            position = await self.reader.position(tp)
            if position >= end:
                return count
        return count + max(0, end - position)

    async def records(self, topic: str, since: dict[TopicPartition, int] | None = None) -> int:
        """Committed records of `topic` after `since` (default: all), read one by one."""
        ends = await self.end(topic)
        return sum([await self._records_between(tp, (since or {}).get(tp, 0), end, 60.0)
                    for tp, end in ends.items() if end > (since or {}).get(tp, 0)])

    async def timestamps(self, topic: str, since: dict[TopicPartition, int] | None = None
                         ) -> tuple[int | None, int | None]:
        """CreateTime (ms) of the first committed record at or after `since`, and of the last."""
        ends = await self.end(topic)
        firsts, lasts = [], []
        for tp, end in ends.items():
            start = (since or {}).get(tp, 0)
            if end <= start:
                continue
            firsts.append(await self._first_timestamp(tp, start))
            lasts.append(await self._last_timestamp(tp, start, end))
        found_first = [t for t in firsts if t is not None]
        found_last = [t for t in lasts if t is not None]
        return (min(found_first) if found_first else None,
                max(found_last) if found_last else None)

    async def _first_timestamp(self, tp: TopicPartition, offset: int) -> int | None:
        self.reader.assign([tp])
        self.reader.seek(tp, offset)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = await self.reader.getmany(tp, timeout_ms=500, max_records=1)
            for message in batch.get(tp, []):
                return int(message.timestamp)
        return None

    async def _last_timestamp(self, tp: TopicPartition, start: int, end: int,
                              window: int = 2_000) -> int | None:
        """The latest CreateTime among the last committed records before `end` (the very last
        offset is a commit marker on a transactional topic, so a window is read)."""
        self.reader.assign([tp])
        self.reader.seek(tp, max(start, end - window))
        latest: int | None = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = await self.reader.getmany(tp, timeout_ms=200)
            for message in batch.get(tp, []):
                if message.offset < end:
                    latest = max(latest or 0, int(message.timestamp))
            if await self.reader.position(tp) >= end:
                break
        if latest is None and end - window > start:
            return await self._last_timestamp(tp, start, end - window, window * 4)
        return latest


class RecordCount:
    """A running count of committed records appended to a topic after a point (read as they
    come: cheap to ask every fraction of a second)."""

    def __init__(self, bootstrap: str, topic: str, since: dict[TopicPartition, int]) -> None:
        self.since = since
        self.count = 0
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False,
                                         isolation_level="read_committed")

    async def __aenter__(self) -> RecordCount:
        await self.consumer.start()
        self.consumer.assign(list(self.since))
        for tp, offset in self.since.items():
            self.consumer.seek(tp, offset)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def read(self) -> int:
        """Read what arrived; the count so far."""
        while True:
            batch = await self.consumer.getmany(timeout_ms=50, max_records=10_000)
            got = sum(len(ms) for ms in batch.values())
            self.count += got
            if not got:
                return self.count


async def produce_bulk(bootstrap: str, topic: str, records: Iterable[tuple[bytes, ...]],
                       partitions: int) -> tuple[int, float]:
    """Send (key, value[, routing]) records fast, in order per partition, filling batches
    ourselves. The partition is the default partitioner's for `routing` (default: the key, as
    any keyed producer does). Returns (count, seconds)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50,
                                max_batch_size=512 * 1024, max_request_size=2 * 1024 * 1024)
    await producer.start()
    start = time.perf_counter()
    cache: dict[bytes, int] = {}
    batches: dict[int, Any] = {}
    futures = []
    count = 0
    try:
        for record in records:
            key, value = record[0], record[1]
            hashed = record[2] if len(record) > 2 else key
            p = cache.get(hashed)
            if p is None:
                p = cache[hashed] = partition_for(hashed, partitions)
            batch = batches.get(p)
            if batch is None:
                batch = batches[p] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=p))
                batch = batches[p] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            count += 1
            if count % 20_000 == 0:
                await asyncio.sleep(0)
        for p, batch in batches.items():
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count, time.perf_counter() - start


async def wait_until(check: Any, timeout: float, interval: float = 0.25,
                     alive: Any = None) -> float:
    """Poll `await check()` until true; returns the epoch time it was first seen true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return time.time()
        if alive is not None:
            alive()
        await asyncio.sleep(interval)
    raise TimeoutError(f"not done within {timeout:.0f} s")


def code_version() -> dict[str, Any]:
    """The commit the workers ran, and which paths of the tree differed from it at the start
    (the loop may be changing while the bench runs)."""
    out: dict[str, Any] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                       capture_output=True, text=True, timeout=10
                                       ).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--", "handoff", "schemas",
                                 "steps", "streams", "bench"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout
        out["dirty"] = sorted({line[3:].strip() for line in status.splitlines() if line[3:]})
    return out


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


# ------------------------------------------------------------------------- machine load

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Processes of ours that every meter counts (the local broker).
ALWAYS_TRACKED: set[int] = set()


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _machine_busy_s() -> tuple[float, float]:
    """(busy CPU seconds, wall CPU seconds) of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


class CpuMeter:
    """How many cores this benchmark and everything else on the machine used over a span.

    Ours: this process, its finished children (workers, loops) and the live ones it tracks
    (workers, the broker). The rest of the machine's busy time is other people's work, which
    skews the figures on a shared machine."""

    def __init__(self) -> None:
        self.tracked: set[int] = set()
        self._start: tuple[float, float, float, float] | None = None

    def _own(self) -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system + sum(
            proc_cpu_s(pid) for pid in self.tracked | ALWAYS_TRACKED)

    def start(self) -> None:
        busy, total = _machine_busy_s()
        self._start = (time.monotonic(), busy, total, self._own())

    def stop(self) -> dict[str, float]:
        assert self._start is not None
        wall0, busy0, _, own0 = self._start
        busy, _ = _machine_busy_s()
        wall = max(time.monotonic() - wall0, 1e-6)
        own = self._own() - own0
        machine_cores = (busy - busy0) / wall
        return {"seconds": round(wall, 1), "machine_cores_busy": round(machine_cores, 2),
                "bench_cores": round(own / wall, 2),
                "other_cores": round(max(0.0, machine_cores - own / wall), 2)}
