"""Fault runs through a real broker (marker `fault`: `pytest -m fault`, or `make test-all`).

Each run sends >= 20,000 chat messages over 2,000 conversations and 20 accounts while a fault
happens, then counts the live outputs (read_committed) against the core replayed over the
worker's own log (see harness.py). The figures go to $HANDOFF_FAULT_RESULTS (default
fault-results.jsonl in the test's tmp dir) and to stdout (`-s`); `HANDOFF_FAULT_SEED` picks
where the faults land.

The worker's one mode is exactly-once (README "Guarantees"): for a read_committed reader every
output exactly once, whatever fails. So every run must end with nothing missing, duplicated,
extra or different, every valid input sequenced exactly once, each poison record dead-lettered
exactly once, and every task's transactional id on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition

from handoff import localkafka
from handoff.core.store import Table
from schemas.topics import Topic
from streams.state import changelog_topic
from tests.faults.harness import (
    OUTPUTS,
    READY,
    Figures,
    Poison,
    Run,
    Shape,
    poisoned,
    record,
    running,
    setup,
    stream,
    write_conversations,
)
from tests.kafka_support import Deployment

pytestmark = [
    pytest.mark.fault,
    pytest.mark.kafka,
    pytest.mark.skipif(shutil.which("java") is None or shutil.which("mvn") is None,
                       reason="the fault runs start and kill their own local broker (java, mvn)"),
]

SEED = int(os.environ.get("HANDOFF_FAULT_SEED", "7"))
SHAPE = Shape(messages=int(os.environ.get("HANDOFF_FAULT_MESSAGES", "20000")), seed=SEED)
# The deployment's session timeout: a worker that stops heartbeating loses its tasks after it.
SESSION_TIMEOUT_S = 10
PARTITIONS = 4
RESTORE_CONVERSATIONS = int(os.environ.get("HANDOFF_FAULT_RESTORE", "1000000"))


@pytest.fixture
def broker_state(tmp_path: Path) -> Iterator[Path]:
    """A broker of this test's own: the broker test kills it, and one test's data (a million
    changelog records) or wreckage never reaches the next."""
    state = tmp_path / "kafka"
    localkafka.start(data_dir=state, partitions=PARTITIONS)
    try:
        yield state
    finally:
        localkafka.stop(data_dir=state)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return Path(os.environ.get("HANDOFF_FAULT_RESULTS", str(tmp_path / "fault-results.jsonl")))


Action = Callable[[Run], Awaitable[None]]


@dataclass
class Fault:
    """What a test injects. `actions` run one after another, each once the stream is sent up
    to its fraction, while the stream goes on; `before` runs before the first worker starts;
    `poison` records are mixed into the stream. `restoring`: the stream starts as soon as the
    worker is up, without waiting for the accounts' settings (they wait behind a restore)."""

    note: str
    actions: list[tuple[float, Action]] = field(default_factory=list)
    before: Action | None = None
    poison: list[Poison] = field(default_factory=list)
    restoring: bool = False


async def settings_accepted(run: Run, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(await run.read([Topic.CONFIG_CHANGES])) >= SHAPE.accounts:
            return
        await asyncio.sleep(1)
    raise TimeoutError("account settings were not accepted")


async def drive(run: Run, actions: list[tuple[float, Action]]) -> None:
    for fraction, action in sorted(actions, key=lambda a: a[0]):
        await run.reached(fraction)
        await action(run)


def judge(figures: Figures) -> None:
    assert figures.worker_exits == 0, figures.line()
    assert figures.failed == [], figures.line()
    assert (figures.missing, figures.duplicated, figures.extra, figures.different,
            figures.lost_inputs, figures.sequenced_twice) == (0, 0, 0, 0, 0, 0), figures.line()
    assert figures.transactional_ids == figures.partitions, figures.line()
    # acct-0's queue and pickup timeouts ran on the clock through the fault (harness.TIMERS).
    assert figures.ticks > 0, figures.line()


def run_scenario(name: str, fault: Fault, broker_state: Path, tmp_path: Path,
                 results: Path) -> None:
    """Stream the inputs through a worker while `fault` acts, then count and judge."""
    async def scenario() -> Figures:
        address = localkafka.status(data_dir=broker_state)
        assert address is not None
        dep = Deployment(address, tmp_path, partitions=PARTITIONS,
                         env={"HANDOFF_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)})
        run = Run(dep, name, SEED)
        started = time.monotonic()
        inputs, bad = poisoned(stream(SHAPE), fault.poison)
        async with running(run):
            if fault.before is not None:
                await fault.before(run)
            await run.start(run.worker("a"))
            await run.send(setup(SHAPE), rate=10_000)
            if not fault.restoring:
                await settings_accepted(run)
            driver = asyncio.ensure_future(drive(run, fault.actions))
            try:
                await run.send(inputs, SHAPE.rate, bad, track=True)
                await asyncio.wait_for(asyncio.shield(driver), 600)
            finally:
                if not driver.done():
                    driver.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await driver
            try:
                await run.settle()
            except TimeoutError as exc:  # count anyway: the figures say what is missing
                run.failed.append(str(exc))
            figures = await run.count(started)
        figures.notes.insert(0, fault.note)
        return figures

    figures = asyncio.run(scenario())
    record(figures, results)
    judge(figures)


# -- (a) SIGKILL --------------------------------------------------------------------------------


def _kills(count: int, kill: Callable[[Run, random.Random], Awaitable[str]]
           ) -> list[tuple[float, Action]]:
    rng = random.Random(SEED)
    at = sorted(rng.uniform(0.05, 0.85) for _ in range(count))

    async def once(run: Run) -> None:
        w = run.workers[0]
        # Kill a worker that is processing: a restarted one waits for the session timeout
        # of the one it replaces before it gets tasks.
        await run.until_ready(w)
        run.notes.append(await kill(run, rng))
        await run.start(w)

    return [(f, once) for f in at]


def test_sigkill_at_random_points(broker_state: Path, tmp_path: Path, results: Path) -> None:
    async def kill(run: Run, rng: random.Random) -> str:
        delay = rng.uniform(0.0, 4.0)
        await asyncio.sleep(delay)
        left = await run.kill_noting_transaction(run.workers[0])
        return f"kill {delay:.1f} s after ready: {len(left)} partitions left in a transaction"

    run_scenario("sigkill-random", Fault("5 SIGKILLs at random points", _kills(5, kill)),
                 broker_state, tmp_path, results)


def test_sigkill_while_outputs_appear(broker_state: Path, tmp_path: Path, results: Path
                                      ) -> None:
    async def kill(run: Run, rng: random.Random) -> str:
        await asyncio.sleep(rng.uniform(0.0, 2.0))
        seen = await run.tail_uncommitted([*OUTPUTS, Topic.ACCOUNT_EVENTS])
        left = await run.kill_noting_transaction(run.workers[0])
        return (f"kill {'on' if seen else 'without'} uncommitted records: {len(left)} "
                "partitions left in a transaction")

    async def landed(run: Run) -> None:
        if run.kills_in_transaction == 0:
            run.failed.append("no kill left a transaction open")

    run_scenario("sigkill-in-txn",
                 Fault("5 SIGKILLs as soon as uncommitted records show (read_uncommitted)",
                       [*_kills(5, kill), (1.0, landed)]),
                 broker_state, tmp_path, results)


# -- (b) the broker killed -9 -------------------------------------------------------------------


def test_broker_killed_and_restarted(broker_state: Path, tmp_path: Path, results: Path) -> None:
    async def crash(run: Run) -> None:
        await run.until_ready(run.workers[0])
        run.notes.append(f"{len(await run.open_transactions())} partitions in a transaction "
                         "when the broker was killed")
        await run.pause_sending()  # connectors would buffer and retry; this sender waits
        pid = int((broker_state / "kafka.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # localkafka started it from this process: reap it
        await asyncio.sleep(5)
        address = await asyncio.to_thread(localkafka.start, None, None, broker_state,
                                          keep_data=True)
        assert address == run.dep.settings.bootstrap_servers
        run.resume_sending()

    run_scenario("broker-kill9", Fault("broker killed -9 at 40%, back with its data after 5 s",
                                       [(0.4, crash)]),
                 broker_state, tmp_path, results)


# -- (c) a second worker joins, then leaves ------------------------------------------------------


@pytest.mark.parametrize("leave", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_second_worker_joins_and_leaves(leave: signal.Signals, broker_state: Path,
                                        tmp_path: Path, results: Path) -> None:
    async def join(run: Run) -> None:
        second = run.worker("b")
        await run.start(second)
        tasks = await run.until_ready(second)
        run.notes.append(f"worker b took tasks {sorted(set(tasks))}")

    async def go(run: Run) -> None:
        await run.kill(run.workers[1], leave)

    run_scenario(f"rebalance-{leave.name.lower()}",
                 Fault(f"worker b joined at 25%, left ({leave.name}) at 65%",
                       [(0.25, join), (0.65, go)]),
                 broker_state, tmp_path, results)


# -- (d) a zombie ------------------------------------------------------------------------------


def test_zombie_stopped_past_session_timeout(broker_state: Path, tmp_path: Path,
                                             results: Path) -> None:
    rng = random.Random(SEED)

    async def join(run: Run) -> None:
        second = run.worker("b")
        await run.start(second)
        await run.until_ready(second)

    async def freeze(run: Run) -> None:
        a, b = run.workers
        # Stop b with a transaction open: after the stop, partitions whose last stable offset
        # does not move for a second (a commits every cycle) are held by b's transaction.
        held: dict[TopicPartition, int] = {}
        attempts = 0
        # Only b's tasks write their partitions of the conversations changelog: wait until
        # one of those shows a record not yet committed, then stop b at once (a random stop
        # rarely lands inside one of its short transactions).
        changelog = changelog_topic(run.dep.settings.group_id, Table.CONVERSATIONS.value)
        while not held and attempts < 30:
            attempts += 1
            await run.tail_uncommitted([], timeout=5.0, names=[changelog],
                                       partitions=sorted(set(run.ready_tasks(b))))
            run.signal(b, signal.SIGSTOP)
            await asyncio.sleep(0.5)
            first = await run.open_transactions()
            await asyncio.sleep(1.0)
            held = {tp: lso for tp, lso in (await run.open_transactions()).items()
                    if first.get(tp) == lso}
            if not held:
                run.signal(b, signal.SIGCONT)
                await asyncio.sleep(rng.uniform(0.2, 1.5))
        run.notes.append(f"b stopped (attempt {attempts}) holding {len(held)} partitions in "
                         f"an open transaction")
        if not held:
            run.failed.append("b was never stopped inside a transaction")
        mark = a.log_path.stat().st_size
        await asyncio.sleep(20)
        moved = sorted(set(run.ready_tasks(a, since=mark)))
        run.notes.append(f"while b was stopped, a took tasks {moved}")
        if not moved:
            run.failed.append("b's tasks did not move to a while b was stopped")
        still = {tp: lso for tp, lso in (await run.open_transactions()).items()
                 if held.get(tp) == lso}
        if still:
            run.failed.append(f"b's transaction still held {len(still)} partitions after 20 s")
        since = {id(w): w.log_path.stat().st_size for w in (a, b)}
        run.signal(b, signal.SIGCONT)
        await asyncio.sleep(SESSION_TIMEOUT_S + 5)
        for name, w in (("a", a), ("b", b)):
            with w.log_path.open("rb") as f:
                f.seek(since[id(w)])
                after = f.read()
            run.notes.append(f"{name} in the {SESSION_TIMEOUT_S + 5} s after SIGCONT: "
                             f"{after.count(b'fenced by')} 'fenced by' log lines, "
                             f"{after.count(b'transaction aborted')} 'transaction aborted'")

    run_scenario("zombie",
                 Fault("worker b joined at 10%, SIGSTOPped in a transaction at 35% for 20 s "
                       f"(session timeout {SESSION_TIMEOUT_S} s), then SIGCONT",
                       [(0.10, join), (0.35, freeze)]),
                 broker_state, tmp_path, results)


# -- (e) inputs while a fresh worker restores a million conversations ---------------------------


def test_inputs_during_restore_of_a_million_conversations(broker_state: Path, tmp_path: Path,
                                                          results: Path) -> None:
    restoring: dict[str, object] = {}

    async def before(run: Run) -> None:
        seconds = await write_conversations(run.dep.settings, RESTORE_CONVERSATIONS)
        run.notes.append(f"{RESTORE_CONVERSATIONS} conversation states written to the "
                         f"changelog in {seconds:.1f} s")

    async def at_start(run: Run) -> None:
        restoring["ready_at_stream_start"] = sorted(set(run.ready_tasks(run.workers[0])))

    async def at_end(run: Run) -> None:
        w = run.workers[0]
        ready_at_start = restoring["ready_at_stream_start"]
        assert isinstance(ready_at_start, list)
        deadline = time.monotonic() + 300
        while len(set(run.ready_tasks(w))) < PARTITIONS and time.monotonic() < deadline:
            await asyncio.sleep(1)
        restored = sum(int(m.group(2)) for m in _ready_lines(run.log_since_start(w)))
        run.notes.append(f"tasks ready when the stream started: {ready_at_start}; "
                         f"{restored} state records restored")
        if len(ready_at_start) == PARTITIONS:
            run.failed.append("every task was restored before the stream started")
        if restored < RESTORE_CONVERSATIONS:
            run.failed.append(f"only {restored} state records restored")

    run_scenario("restore-1m",
                 Fault(f"stream sent while a fresh worker restores {RESTORE_CONVERSATIONS} "
                       "conversations", [(0.0, at_start), (1.0, at_end)], before=before,
                       restoring=True),
                 broker_state, tmp_path, results)


def _ready_lines(log: bytes) -> Iterator[re.Match[bytes]]:
    return READY.finditer(log)


# -- (f) poison records, dead-lettered exactly once ---------------------------------------------


def _poison(shape: Shape) -> list[Poison]:
    def chat(i: int, **change: object) -> bytes:
        c = i % shape.conversations
        msg: dict[str, object] = {
            "event_id": f"poison-{i}", "conversation_id": f"conv-{c}",
            "account_id": f"acct-{c % shape.accounts}", "channel": "chat", "sender": "visitor",
            "text": "hello", "sent_at": "2026-11-18T10:00:00.000Z", **change}
        return orjson.dumps(msg)

    n = shape.messages
    at = [n * k // 8 for k in range(1, 8)]
    return [
        Poison(at[0], (Topic.CHAT_MESSAGES, "conv-11", b"{not json at all"), "not JSON"),
        Poison(at[1], (Topic.CHAT_MESSAGES, "conv-12", chat(12, text=12345)), "text: int"),
        Poison(at[2], (Topic.CHAT_MESSAGES, "conv-13", chat(13, channel="carrier-pigeon")),
               "unknown channel"),
        Poison(at[3], (Topic.CHAT_MESSAGES, "conv-14", b"\xff\xfe\x00 binary"), "not UTF-8"),
        Poison(at[4], (Topic.CONVERSATION_UPDATES, "conv-15", orjson.dumps({
            "event_id": "poison-upd", "conversation_id": "conv-15", "account_id": "acct-15",
            "action": "explode", "occurred_at": "2026-11-18T10:00:00.000Z"})), "unknown action"),
        Poison(at[5], (Topic.CONFIG_REQUESTS, "acct-3", orjson.dumps({
            "event_id": "poison-cfg", "account_id": "acct-3", "actor": "acct-3-u1",
            "occurred_at": "2026-11-18T10:00:00.000Z", "config": "not an object"})),
               "config: str"),
        Poison(at[6], (Topic.CHAT_MESSAGES, "conv-16", chat(16, sender="robot")),
               "unknown sender"),
    ]


def test_poison_records_dead_lettered_once(broker_state: Path, tmp_path: Path, results: Path
                                           ) -> None:
    poison = _poison(SHAPE)
    rng = random.Random(SEED)
    # A SIGKILL shortly after three of the poison records were sent: their dead letters are
    # then in flight, in a transaction, or just committed.
    victims = sorted(rng.sample(range(len(poison)), 3))
    inputs, bad = poisoned(stream(SHAPE), poison)
    where = sorted(bad)

    def kill_after(k: int) -> tuple[float, Action]:
        p = poison[k]

        async def kill(run: Run) -> None:
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            left = await run.kill_noting_transaction(run.workers[0])
            run.notes.append(f"kill after {p.why}: {len(left)} partitions left in a transaction")
            await run.start(run.workers[0])
            await run.until_ready(run.workers[0])
        return ((where[k] + 1) / len(inputs), kill)

    run_scenario("poison",
                 Fault(f"{len(poison)} poison records ({', '.join(p.why for p in poison)}); "
                       f"SIGKILL after {', '.join(poison[v].why for v in victims)}",
                       [kill_after(v) for v in victims], poison=poison),
                 broker_state, tmp_path, results)
