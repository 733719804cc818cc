"""Part 6, scaling: the same stream through one worker and through two, over 8 partitions.

For each worker count: a fresh topic prefix with 8 partitions; a first worker takes the
accounts' directory and settings and stops; then the workers start, and only once the group
has settled (the tasks each last reported ready add up to the 8 partitions, none twice) are
the messages produced, so no rebalance falls inside the measured span. Rate is messages over
busy time from broker timestamps, as in part 1: the first record forwarded to
`handoff.account-events` to the last write to the conversations changelog; CPU is the sum
over the workers. The producer outpaces the workers many times over, so producing while they
run adds nothing to the span that a pre-produced backlog would not.

One very busy account is bounded by one task: its log partition is one task's, so its
decisions are made one after another by one worker whatever the worker count. The "one
account" run sends the same number of messages for a single account through two workers.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from bench import traffic
from bench.harness import (
    Deployment,
    Offsets,
    RecordCount,
    Worker,
    proc_cpu_s,
    produce_bulk,
    wait_until,
)
from bench.throughput import busy_span, mark
from schemas.topics import Topic

PARTITIONS = 8
_READY = re.compile(rb"Worker ready: tasks \[([\d, ]*)\]")


def _tasks_now(worker: Worker) -> list[int]:
    """The tasks of the worker's latest "Worker ready" line (each rebalance logs it again)."""
    found: list[int] = []
    with worker.log_path.open("rb") as f:
        for line in f:
            match = _READY.search(line)
            if match:
                found = [int(x) for x in match[1].split(b",") if x.strip()]
    return found


async def _settled(workers: list[Worker], partitions: int, timeout: float = 300.0) -> None:
    """Wait until the workers' latest ready lines cover every task exactly once, each worker
    holding some (a worker that joined last may first report none)."""

    async def covered() -> bool:
        for worker in workers:
            worker.check()
        tasks = [_tasks_now(worker) for worker in workers]
        held = [task for found in tasks for task in found]
        return all(tasks) and sorted(held) == list(range(partitions))

    await wait_until(covered, timeout=timeout, interval=0.25)
    await asyncio.sleep(2.0)  # a ready line is logged before the next fetch: let them fetch


async def run_one(bootstrap: str, workdir: Path, *, n: int, accounts: int, workers: int,
                  label: str) -> dict[str, Any]:
    """`n` messages of `accounts` accounts through `workers` workers over 8 partitions."""
    accts = traffic.make_accounts(accounts)
    fixture, configs = traffic.setup_fixture(accts)
    generated = traffic.generate(accts, n, prefix=f"s{label}")
    dep = Deployment(bootstrap, workdir, partitions=PARTITIONS, name=f"scaling-{label}")
    await dep.create_topics()
    setup = dep.worker()
    setup.start()
    await setup.ready()
    await dep.setup_accounts(fixture, configs)
    setup.stop()
    result: dict[str, Any] = {"workers": workers, "accounts": accounts, "messages": n,
                              "partitions": PARTITIONS,
                              "expected_handoffs": generated.expected_handoffs,
                              "topic_prefix": dep.prefix}
    running = [dep.worker() for _ in range(workers)]
    for worker in running:
        worker.start()
    await _settled(running, PARTITIONS)
    result["tasks"] = {f"worker-{i}": _tasks_now(w) for i, w in enumerate(running)}
    cpu_before = {w.pid: proc_cpu_s(w.pid) for w in running}
    async with Offsets(bootstrap, PARTITIONS) as offsets:
        chat = dep.topic(Topic.CHAT_MESSAGES)
        account_events = dep.topic(Topic.ACCOUNT_EVENTS)
        since = await mark(offsets, dep)
        expected = generated.expected_handoffs
        async with RecordCount(bootstrap, dep.topic(Topic.HANDOFF_EVENTS),
                               since.handoffs) as published:
            await produce_bulk(bootstrap, chat, generated.records, PARTITIONS)

            async def done() -> bool:
                return (await published.read() >= expected
                        and await offsets.lag(dep.group, [chat, account_events]) == 0)

            def alive() -> None:
                for worker in running:
                    worker.check()

            try:
                await wait_until(done, timeout=max(600.0, n / 50), interval=0.25, alive=alive)
            except TimeoutError:
                result["error"] = (f"workers did not finish in time: {published.count} of "
                                   f"{expected} handoffs")
        cpu = sum(proc_cpu_s(w.pid) - cpu_before[w.pid] for w in running)
        _, _, busy = await busy_span(offsets, dep, since)
        result["handoffs"] = await offsets.records(dep.topic(Topic.HANDOFF_EVENTS),
                                                   since.handoffs)
    dep.stop_workers()
    result.update({"busy_s": round(busy, 2), "per_second": round(n / busy),
                   "cpu_ms_per_message": round(cpu / n * 1000, 4)})
    return result


async def run(bootstrap: str, workdir: Path, *, n: int, accounts: int) -> dict[str, Any]:
    """One worker, two workers, and two workers with all the traffic on one account."""
    started = time.time()
    one = await run_one(bootstrap, workdir, n=n, accounts=accounts, workers=1, label="1")
    two = await run_one(bootstrap, workdir, n=n, accounts=accounts, workers=2, label="2")
    busy_account = await run_one(bootstrap, workdir, n=n, accounts=1, workers=2,
                                 label="2-one-account")
    return {"one_worker": one, "two_workers": two, "one_account_two_workers": busy_account,
            "speedup": round(two["per_second"] / max(one["per_second"], 1), 2),
            "seconds": round(time.time() - started, 1)}
