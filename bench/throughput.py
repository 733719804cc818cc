"""Part 1, throughput: one worker over a pre-produced stream, beside bare aiokafka loops.

Per store: a fresh topic prefix; a first worker takes the accounts' directory and settings and
stops; the messages are then produced to `chat.messages` before anything reads them; the
baselines move them all to topics of their own (each its own consumer group): the bare loop
(bench/bareloop.py, at-least-once, the README's baseline) and the transactional batch loop
(`bareloop.py --transactional`: the worker's producer settings and batch size, two records per
message, offsets in the transaction); then a fresh worker decides them all. Done means every
expected `handoff.events` record is committed and the group has committed everything on
`chat.messages` and `handoff.account-events` (lag 0).

Rates are records over busy time, both from broker timestamps: for a loop, its first to its
last output record; for the worker, its first forwarded record on `handoff.account-events` to
its last write to the conversations changelog (each transaction writes a changed conversation
once, so the last one is written by the last cycle that decided a chat message). Wall-clock
rates, from "ready" to "lag 0 seen", are kept beside them in the JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from bench import traffic
from bench.harness import (
    REPO,
    CpuMeter,
    Deployment,
    Offsets,
    RecordCount,
    proc_cpu_s,
    produce_bulk,
    rss_kib,
    wait_until,
)
from bench.profiling import PySpy
from schemas.topics import Topic


@dataclass(frozen=True)
class Marks:
    """The ends of a worker's topics before a run: what is written after them is the run's."""

    events: dict[TopicPartition, int]
    changelog: dict[TopicPartition, int]
    handoffs: dict[TopicPartition, int]


async def mark(offsets: Offsets, dep: Deployment) -> Marks:
    """Where the run's records will start on the account log, the conversations changelog
    and `handoff.events`."""
    return Marks(await offsets.end(dep.topic(Topic.ACCOUNT_EVENTS)),
                 await offsets.end(dep.changelog("conversations")),
                 await offsets.end(dep.topic(Topic.HANDOFF_EVENTS)))


async def busy_span(offsets: Offsets, dep: Deployment, since: Marks
                    ) -> tuple[int | None, int | None, float]:
    """The run's first record forwarded to the account log and its last write to the
    conversations changelog (broker ms; each transaction writes a changed conversation once,
    so the last is the last cycle that decided a chat message), and the seconds between."""
    first, _ = await offsets.timestamps(dep.topic(Topic.ACCOUNT_EVENTS), since.events)
    _, last = await offsets.timestamps(dep.changelog("conversations"), since.changelog)
    return first, last, max(((last or 0) - (first or 0)) / 1000, 1e-3)


BARE_OUT = "bench.bare-out"
PARSE_OUT = "bench.bare-parse-out"
TXN_OUT = "bench.txn-out"
TXN_STATE = "bench.txn-state"


async def _bare_loop(dep: Deployment, offsets: Offsets, n: int, target: str, group: str,
                     parse: bool, meter: CpuMeter, transactional: bool = False
                     ) -> dict[str, Any]:
    """Run a baseline loop process until it moved and committed all `n` records."""
    cmd = [sys.executable, "-m", "bench.bareloop", dep.bootstrap,
           dep.topic(Topic.CHAT_MESSAGES), dep.topic(target), group]
    if parse:
        cmd.append("--parse")
    if transactional:
        s = dep.settings  # the worker's settings (HANDOFF_* from the environment, or defaults)
        cmd += ["--transactional", "--state-topic", dep.topic(TXN_STATE),
                "--max-records", str(s.batch_max_records), "--wait-ms", str(s.batch_wait_ms),
                "--linger-ms", str(s.producer_linger_ms)]
    log = (dep.workdir / f"{dep.name}-{group.rsplit('.', 1)[-1]}.log").open("wb")
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    meter.tracked.add(proc.pid)

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"bare loop exited {proc.returncode}: see {log.name}")

    cpu_at_first: list[float] = []

    async def done() -> bool:
        moved = await offsets.total(dep.topic(target))
        if moved and not cpu_at_first:
            cpu_at_first.append(proc_cpu_s(proc.pid))  # start-up (imports) not counted
        # Both loops commit an input offset only once what it produced is acknowledged (or
        # committed, in the transaction): lag 0 means everything was moved.
        return bool(moved) and await offsets.lag(group, [dep.topic(Topic.CHAT_MESSAGES)]) == 0

    try:
        finished = await wait_until(done, timeout=max(300.0, n / 200), interval=0.25, alive=alive)
        cpu = proc_cpu_s(proc.pid) - (cpu_at_first[0] if cpu_at_first else 0.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    first, last = await offsets.timestamps(dep.topic(target))
    assert first is not None and last is not None
    busy = max((last - first) / 1000, 1e-3)
    moved = await offsets.records(dep.topic(target))
    return {"messages": n, "records_out": moved, "busy_s": round(busy, 2),
            "per_second": round(n / busy),
            "cpu_ms_per_message": round(cpu / n * 1000, 4),
            "wall_s": round(finished - started, 2),
            "wall_per_second": round(n / max(finished - started, 1e-3))}


async def run(bootstrap: str, workdir: Path, *, n: int, accounts: int, store: str,
              baselines: bool = True, parse_baseline: bool = False, txn_baseline: bool = True,
              profile: float = 0.0,
              meter: CpuMeter | None = None, label: str = "") -> dict[str, Any]:
    """One store's throughput run (and the bare loops beside it)."""
    meter = meter or CpuMeter()
    accts = traffic.make_accounts(accounts)
    fixture, configs = traffic.setup_fixture(accts)
    generated = traffic.generate(accts, n)
    dep = Deployment(bootstrap, workdir, store=store, name=f"throughput-{label or 'run'}")
    result: dict[str, Any] = {
        "store": store, "messages": n, "accounts": accounts,
        "conversations": generated.conversations, "partitions": dep.partitions,
        "expected_handoffs": generated.expected_handoffs, "handoffs_by_kind": generated.kinds,
        "triggering_messages_pct": round(100 * generated.fired_messages / n, 2),
        "topic_prefix": dep.prefix}
    await dep.create_topics(extra=[dep.topic(BARE_OUT), dep.topic(PARSE_OUT), dep.topic(TXN_OUT)],
                            compacted=[dep.topic(TXN_STATE)])

    setup = dep.worker()
    setup.start()
    meter.tracked.add(setup.pid)
    await setup.ready()
    result["setup_s"] = round(await dep.setup_accounts(fixture, configs), 1)
    setup.stop()

    async with Offsets(bootstrap, dep.partitions) as offsets:
        chat = dep.topic(Topic.CHAT_MESSAGES)
        account_events = dep.topic(Topic.ACCOUNT_EVENTS)
        changelog = dep.changelog("conversations")
        since = await mark(offsets, dep)
        count, seconds = await produce_bulk(bootstrap, chat, generated.records, dep.partitions)
        result["produce"] = {"messages": count, "seconds": round(seconds, 2),
                             "per_second": round(count / seconds)}
        meter.start()
        if baselines:
            result["bare_loop"] = await _bare_loop(dep, offsets, n, BARE_OUT,
                                                   f"{dep.prefix}bench-bare", False, meter)
            if parse_baseline:
                result["bare_loop_parse"] = await _bare_loop(
                    dep, offsets, n, PARSE_OUT, f"{dep.prefix}bench-bare-parse", True, meter)
            if txn_baseline:
                result["txn_loop"] = await _bare_loop(
                    dep, offsets, n, TXN_OUT, f"{dep.prefix}bench-txn", False, meter,
                    transactional=True)

        worker = dep.worker()
        worker.start()
        meter.tracked.add(worker.pid)
        ready = await worker.ready()
        cpu_ready = proc_cpu_s(worker.pid)
        spy = PySpy(worker.pid, dep.workdir / f"{dep.name}.pyspy.txt") if profile else None
        if spy is not None:
            spy.start(rate=profile)
        expected = generated.expected_handoffs

        async with RecordCount(bootstrap, dep.topic(Topic.HANDOFF_EVENTS),
                               since.handoffs) as published:

            async def done() -> bool:
                return (await published.read() >= expected
                        and await offsets.lag(dep.group, [chat, account_events]) == 0)

            try:
                finished = await wait_until(done, timeout=max(600.0, n / 50), interval=0.25,
                                            alive=worker.check)
            except TimeoutError:
                result["error"] = (f"worker did not finish in time: {published.count} of "
                                   f"{expected} handoffs; log {worker.log_path}")
                finished = time.time()
        if spy is not None:
            result["profile"] = spy.stop()
        worker_cpu = proc_cpu_s(worker.pid) - cpu_ready
        result["rss_kib"] = rss_kib(worker.pid)
        worker.stop()
        retries = worker.produce_retries()
        result["cpu"] = meter.stop()
        first, last, busy = await busy_span(offsets, dep, since)
        handoffs = await offsets.records(dep.topic(Topic.HANDOFF_EVENTS), since.handoffs)
        result["changelog_topic"] = changelog
    result["worker"] = {
        "messages": n, "busy_s": round(busy, 2), "per_second": round(n / busy),
        "startup_s": round(ready - worker.started, 2),
        # CPU time the worker process used per message: steadier than msgs/s on a busy machine.
        "cpu_ms_per_message": round(worker_cpu / n * 1000, 4),
        "wall_s": round(finished - ready, 2), "wall_per_second": round(n / max(finished - ready, 1e-3)),
        # Where wall time beyond busy time went: before the first forward, or after the last
        # decision until the group's commits caught up.
        "first_forward_after_ready_s": round((first or 0) / 1000 - ready, 2),
        "lag_zero_after_last_decision_s": round(finished - (last or 0) / 1000, 2),
        "handoffs": handoffs, "produce_retries": retries}
    if handoffs != expected:
        result["worker"]["handoffs_note"] = (
            f"{handoffs} handoff.events records for {expected} expected"
            + (" (duplicates: exactly-once broken?)" if handoffs > expected else ""))
    if baselines:
        result["ratio"] = round(result["worker"]["per_second"]
                                / result["bare_loop"]["per_second"], 3)
        result["cpu_ratio"] = round(result["bare_loop"]["cpu_ms_per_message"]
                                    / max(result["worker"]["cpu_ms_per_message"], 1e-9), 3)
        if "txn_loop" in result:
            result["txn_ratio"] = round(result["worker"]["per_second"]
                                        / result["txn_loop"]["per_second"], 3)
            result["txn_cpu_ratio"] = round(
                result["txn_loop"]["cpu_ms_per_message"]
                / max(result["worker"]["cpu_ms_per_message"], 1e-9), 3)
    dep.stop_workers()
    shutil.rmtree(dep.data_dir, ignore_errors=True)  # the workers' state dirs; logs are kept
    return result


async def run_profile(bootstrap: str, workdir: Path, *, n: int, accounts: int,
                      rate: float = 100.0) -> dict[str, Any]:
    """The worker's throughput run again, smaller, with py-spy sampling it from ready to done."""
    result = await run(bootstrap, workdir, n=n, accounts=accounts, store="memory://",
                       baselines=False, profile=rate, label="profile")
    return result


if __name__ == "__main__":  # a quick manual run: python -m bench.throughput BOOTSTRAP [N]
    out = asyncio.run(run(sys.argv[1], Path("/tmp/bench-throughput"),
                          n=int(sys.argv[2]) if len(sys.argv) > 2 else 20_000, accounts=10,
                          store="memory://"))
    print(out)
