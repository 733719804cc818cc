"""Part 2, latency: chat messages at a steady rate; time from produce to the handoff record.

One process produces at a fixed rate (paced on the clock, not on acknowledgements) and reads
`handoff.events` as it goes. Every `trigger_every`-th message asks for a human (or carries an
editor's phrase) in a conversation of its own, so it hands off; the rest is ordinary traffic.
The latency of a handoff is the time from just before its message was given to the producer to
the moment its `handoff.events` record was read, on this one clock. The first `warmup` seconds
are sent but not counted.

Run with the default HANDOFF_SEQUENCING_WINDOW_MS and with 0: the hold-back merge (steps/
holdback.py, run by streams/loop.py) waits up to that window for a lagging input partition,
and that wait is on the path of every message. A handoff counts when a read_committed consumer
sees it: after the loop's transaction for that cycle committed (HANDOFF_BATCH_WAIT_MS and
HANDOFF_PRODUCER_LINGER_MS are on that path too), read with a 10 ms fetch wait
(`READER_FETCH_WAIT_MS`). Each run reports how far the sender ever fell behind its schedule.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench import traffic
from bench.harness import CpuMeter, Deployment, Reader
from schemas.topics import Topic

# The reading consumer's fetch wait. aiokafka fetches a partition it just read from again only
# once the fetch in flight for its broker returns, so a partition whose handoff arrives just
# after another's waits out that whole fetch: with 100 ms, up to 100 ms of the figure was the
# reader's own (the worker's loop waits HANDOFF_FETCH_WAIT_MS, 10 ms, for the same reason). An
# inbox service that wants handoffs fast reads them the same way.
READER_FETCH_WAIT_MS = 10


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    rank = max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))
    return values[rank]


async def run(bootstrap: str, workdir: Path, *, rate: float, seconds: float, warmup: float,
              trigger_every: int, window_ms: int | None, accounts: int = 5,
              drain_timeout: float = 60.0) -> dict[str, Any]:
    label = "default" if window_ms is None else str(window_ms)
    dep = Deployment(bootstrap, workdir, window_ms=window_ms,
                     name=f"latency-{rate:.0f}-window-{label}")
    accts = traffic.make_accounts(accounts, seed=5)
    fixture, configs = traffic.setup_fixture(accts, max_open=1_000_000)
    await dep.create_topics()
    worker = dep.worker()
    worker.start()
    await worker.ready()
    await dep.setup_accounts(fixture, configs)
    meter = CpuMeter()
    meter.tracked.add(worker.pid)

    sent: dict[str, float] = {}
    counted: set[str] = set()
    received: dict[str, float] = {}
    # The handoff record's CreateTime: when the worker's producer took it, before the commit.
    sent_by_worker: dict[str, float] = {}
    total = int((seconds + warmup) * rate)
    stream = traffic.latency_messages(accts, trigger_every=trigger_every)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                                enable_idempotence=True)
    await producer.start()
    result: dict[str, Any] = {"window_ms": window_ms if window_ms is not None else "default",
                              "target_rate": rate, "seconds": seconds, "warmup_s": warmup,
                              "trigger_every": trigger_every, "topic_prefix": dep.prefix}
    try:
        async with Reader(bootstrap, [dep.topic(Topic.HANDOFF_EVENTS)], from_end=True,
                          fetch_max_wait_ms=READER_FETCH_WAIT_MS) as reader:
            stop_reading = asyncio.Event()

            async def read() -> None:
                while not stop_reading.is_set():
                    for _, value, created_ms in await reader.poll(timeout_ms=50):
                        now = time.time()
                        event_id = orjson.loads(value)["trigger"]["message_event_id"]
                        received.setdefault(event_id, now)
                        sent_by_worker.setdefault(event_id, created_ms / 1000)

            reading = asyncio.ensure_future(read())
            try:
                meter.start()
                start = time.perf_counter()
                produced = 0
                behind_ms = 0.0
                counted_from = int(warmup * rate)
                while produced < total:
                    elapsed = time.perf_counter() - start
                    # A steady rate is the premise: say how far the sender ever fell behind.
                    behind_ms = max(behind_ms, (elapsed - produced / rate) * 1000)
                    due = min(total, int(elapsed * rate) + 1)
                    while produced < due:
                        event_id, key, value, triggers = next(stream)
                        if triggers:
                            sent[event_id] = time.time()
                            if produced >= counted_from:
                                counted.add(event_id)
                        await producer.send(dep.topic(Topic.CHAT_MESSAGES), key=key,
                                            value=value)
                        produced += 1
                    await asyncio.sleep(0.001)
                elapsed = time.perf_counter() - start
                await producer.flush()
                deadline = time.monotonic() + drain_timeout
                while time.monotonic() < deadline and not counted <= received.keys():
                    if reading.done():
                        reading.result()
                    await asyncio.sleep(0.05)
                result["cpu"] = meter.stop()
            finally:
                stop_reading.set()
                reading.cancel()
    finally:
        await producer.stop()
        worker.stop()
    result["produce_retries"] = worker.produce_retries()
    shutil.rmtree(dep.data_dir, ignore_errors=True)
    latencies = sorted((received[e] - sent[e]) * 1000 for e in counted if e in received)
    result.update({
        "produced": produced, "achieved_rate": round(produced / elapsed, 1),
        "sender_behind_max_ms": round(behind_ms, 1),
        "handoffs_timed": len(latencies), "handoffs_missing": len(counted) - len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1), "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None})
    # Where it went: up to the worker's send of the handoff record (intake's hold and
    # transaction, the decision), and the rest (the decision's commit, the read).
    to_send = sorted((sent_by_worker[e] - sent[e]) * 1000 for e in counted if e in received)
    result.update({"to_send_p50_ms": round(percentile(to_send, 50), 1),
                   "to_send_p99_ms": round(percentile(to_send, 99), 1)})
    return result
