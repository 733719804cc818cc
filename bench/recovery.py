"""Part 4, state size and recovery: what one conversation costs in a store, and how long a
fresh worker takes to restore N conversations from the changelog.

Sizes: the encoded size of a `ConversationState` (what the changelog and RocksDB hold), its
pickled size, and the Python heap it takes as a model (what the memory store keeps, after a
restore too: the store's codec validates every value it reads back) and as a plain dict.

Recovery: the `conversations` store's changelog (`streams.state.changelog_topic`:
`<prefix>handoff-conversations-changelog`, compacted, one partition per task) is produced
directly in the worker's own format (`streams.task.store_codec`: key the conversation id as
UTF-8, value the ConversationState's JSON), N records, each in the partition of the task that
decides its account. Each worker start is timed from process start to the loop's "Worker
ready: tasks [...]" (logged once every task it holds is restored and processing; its count of
restored records is kept), and a probe proves the state is there: a `conversation.updates`
close for a restored, handed-off conversation, sent just before the start, yields a
`conversation.status` "closed" record only if that conversation was restored (a close for an
unknown conversation is ignored). Baselines in the same run: the same worker starting over an
empty changelog, and a bare aiokafka consumer reading the whole changelog (decoding it with
orjson, and once more with the store's codec, the least a restore must do).
"""

from __future__ import annotations

import asyncio
import gc
import pickle
import shutil
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.harness import CpuMeter, Deployment, Reader, produce_bulk, rss_kib
from handoff.core.state import ConversationState
from handoff.publish import send_records
from schemas.topics import Topic
from streams.state import Codec
from streams.task import store_codec

STORE = "conversations"  # the store (and its changelog) of ConversationState, keyed by id

T = "2026-11-26T10:00:00Z"


def _template(i: int, accounts: int) -> dict[str, Any]:
    """A realistic conversation: most still with the customer agent, every 7th handed off."""
    account = f"acct-{i % accounts:03d}"
    cid = f"r-{i:07d}"
    recent = [f"{cid}-m{j}" for j in range(3 + i % 10)]
    state: dict[str, Any] = {
        "conversation_id": cid, "account_id": account,
        "channel": ("chat", "whatsapp", "email", "messenger", "sms")[i % 5],
        "inbox_id": f"{account}-support", "language": ("en", "nb", "de", "es", "fr")[i % 5],
        "contact_id": f"ct-{i * 7919 % 10**9}", "phase": "bot", "view": "bot", "trigger": None,
        "process": None, "handoff_event_id": None, "handoff_inbox_id": None, "ticket_id": None,
        "assignee": None, "config_version": None, "handoffs": 0,
        "last_visitor_text": "Can I change the delivery address on my order 4471-2281?",
        "last_message_at": T, "recent_event_ids": recent}
    if i % 7 == 0:
        state.update({
            "phase": "handed_off", "view": "assigned", "process": "live",
            "trigger": {"kind": "human_requested", "phrase": "talk to a human",
                        "message_event_id": recent[-1], "language": "en"},
            "handoff_event_id": f"handoff-{i:020x}", "handoff_inbox_id": f"{account}-support",
            "assignee": {"type": "user", "id": f"{account}-u{i % 3}"}, "config_version": 1,
            "handoffs": 1, "last_visitor_text": "I want to talk to a human"})
    return state


def changelog_records(n: int, accounts: int) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(key, value, partition routing) as a task writes the conversations changelog: the store
    key (the conversation id) as UTF-8, the value as the store's codec encodes the model, in
    the partition of the task that decided it (its account's partition of the account log)."""
    codec: Codec = store_codec(STORE)
    for i in range(n):
        state = _template(i, accounts)
        model = ConversationState.model_validate(state)
        yield (model.conversation_id.encode(), codec.encode(model),
               model.account_id.encode())


def state_sizes(samples: int = 20_000) -> dict[str, Any]:
    """Bytes per conversation: encoded, pickled, and on the Python heap as model and as dict."""
    states = [_template(i, 20) for i in range(samples)]
    codec = store_codec(STORE)
    encoded = [codec.encode(ConversationState.model_validate(s)) for s in states]
    models = [ConversationState.model_validate_json(e) for e in encoded[:200]]
    out: dict[str, Any] = {
        "json_bytes": round(sum(map(len, encoded)) / samples),
        "json_bytes_handed_off": len(encoded[0]), "json_bytes_bot": len(encoded[1]),
        "pickle_bytes_model": round(sum(len(pickle.dumps(m)) for m in models) / len(models)),
        "pickle_bytes_dict": round(sum(len(pickle.dumps(s)) for s in states[:200]) / 200)}
    for kind, build in (("model", codec.decode), ("dict", orjson.loads)):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = {f"k{i}": build(e) for i, e in enumerate(encoded)}
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out[f"heap_bytes_{kind}"] = round((after - before) / samples)
        del kept
    return out


async def _start_timed(dep: Deployment, meter: CpuMeter, probe: str | None, accounts: int,
                       **env: str) -> dict[str, Any]:
    """Start a worker; time "Worker ready" and the probe's answer; RSS once ready."""
    worker = dep.worker(**env)
    result: dict[str, Any] = {"probe": probe} if probe is not None else {}
    async with Reader(dep.bootstrap, [dep.topic(Topic.CONVERSATION_STATUS)],
                      from_end=True) as reader:
        if probe is not None:
            await _send_probe(dep, probe, accounts)
        worker.start()
        meter.tracked.add(worker.pid)
        ready = await worker.ready(timeout=1800)
        result["ready_s"] = round(ready - worker.started, 2)
        result["rss_mib"] = round(rss_kib(worker.pid).get("VmRSS", 0) / 1024, 1)
        # What the loop says it restored ("Worker ready: tasks [...], N state records ..."),
        # and per task how many and how long ("task P ready: ...").
        result["tasks"] = worker.tasks
        result["restored_records"] = worker.restored
        result["task_restore"] = worker.task_restore
        if probe is not None:
            answered = await _await_closed(reader, worker, probe, 45.0)
            result["probe_ok"] = answered is not None
            if answered is not None:
                result["first_decision_s"] = round(answered - worker.started, 2)
            else:
                # Tell "skipped what was sent before the start" from "decides nothing at all":
                # a second probe, sent now that the worker is ready.
                late = f"r-{int(probe.split('-')[1]) + 350:07d}"  # another handed-off one
                await _send_probe(dep, late, accounts)
                again = await _await_closed(reader, worker, late, 45.0)
                result["late_probe_ok"] = again is not None
    result["rss_peak_mib"] = round(rss_kib(worker.pid).get("VmHWM", 0) / 1024, 1)
    worker.stop()
    return result


async def _probes_decided(dep: Deployment, result: dict[str, Any]) -> dict[str, Any]:
    """After every run: was each probe sent before a start ever decided, by any later worker?

    A probe not answered by the worker it was sent for, but by the next one, was delayed; one
    never answered while later records of its partition were decided was skipped for good."""
    wanted = {run["probe"]: name for name, run in result.items()
              if isinstance(run, dict) and "probe" in run}
    closed: set[str] = set()
    async with Reader(dep.bootstrap, [dep.topic(Topic.CONVERSATION_STATUS)]) as reader:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            for _, value, _ in await reader.poll(timeout_ms=300):
                status = orjson.loads(value)
                if status["status"] == "closed":
                    closed.add(status["conversation_id"])
    return {name: {"conversation": conv, "decided_by_then": result[name].get("probe_ok"),
                   "decided_at_all": conv in closed} for conv, name in wanted.items()}


async def _send_probe(dep: Deployment, conversation: str, accounts: int) -> None:
    index = int(conversation.split("-")[1])
    update = {"event_id": f"probe-{conversation}-{time.time_ns()}",
              "conversation_id": conversation, "account_id": f"acct-{index % accounts:03d}",
              "action": "close", "occurred_at": T}
    await send_records(dep.settings, [(Topic.CONVERSATION_UPDATES, conversation,
                                       orjson.dumps(update))])


async def _await_closed(reader: Reader, worker: Any, conversation: str, timeout: float
                        ) -> float | None:
    """When a `conversation.status` "closed" record for the conversation was read, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, value, _ in await reader.poll(timeout_ms=100):
            status = orjson.loads(value)
            if status["conversation_id"] == conversation and status["status"] == "closed":
                return time.time()
        worker.check()
    return None


async def _bare_read(bootstrap: str, topic: str, n: int, decode: Any = orjson.loads
                     ) -> dict[str, Any]:
    """A plain consumer reading and decoding the whole changelog (the floor for a restore)."""
    start = time.perf_counter()
    seen = 0
    async with Reader(bootstrap, [topic], max_partition_fetch_bytes=4 * 1024 * 1024) as reader:
        while seen < n and time.perf_counter() - start < 900:
            for _, value, _ in await reader.poll(timeout_ms=500):
                decode(value)
                seen += 1
    seconds = time.perf_counter() - start
    return {"records": seen, "seconds": round(seconds, 2), "per_second": round(seen / seconds)}


async def run(bootstrap: str, workdir: Path, *, n: int, stores: list[str],
              accounts: int = 20) -> dict[str, Any]:
    dep = Deployment(bootstrap, workdir, name="recovery")
    changelog = dep.changelog(STORE)
    await dep.create_topics(compacted=[changelog])  # the worker's own ensure_topics makes it
    meter = CpuMeter()
    meter.start()
    result: dict[str, Any] = {"conversations": n, "changelog_topic": changelog,
                              "partitions": dep.partitions, "topic_prefix": dep.prefix}
    result["empty"] = await _start_timed(dep, meter, None, accounts, HANDOFF_STORE="memory://",
                                         HANDOFF_DATA_DIR=str(workdir / "recovery-empty"))
    count, seconds = await produce_bulk(bootstrap, changelog, changelog_records(n, accounts),
                                        dep.partitions)
    result["produce"] = {"records": count, "seconds": round(seconds, 2),
                         "per_second": round(count / seconds)}
    result["bare_read"] = await _bare_read(bootstrap, changelog, n)
    result["bare_read_codec"] = await _bare_read(bootstrap, changelog, n,
                                                 store_codec(STORE).decode)
    probe = 0
    for store in stores:
        name = store.split(":")[0]
        data = workdir / f"recovery-{name}"
        shutil.rmtree(data, ignore_errors=True)
        runs = [("fresh", data)]
        if name != "memory":
            runs.append(("restart", data))  # local state kept: only the changelog's tail
        for kind, folder in runs:
            probe += 7  # every 7th conversation is handed off, so a close changes it
            started = await _start_timed(dep, meter, f"r-{probe:07d}", accounts,
                                         HANDOFF_STORE=store, HANDOFF_DATA_DIR=str(folder))
            started["restore_per_second"] = round(n / max(started["ready_s"]
                                                          - result["empty"]["ready_s"], 1e-3))
            result[f"{name}_{kind}"] = started
    result["cpu"] = meter.stop()
    result["pre_start_probes"] = await _probes_decided(dep, result)
    if "memory_fresh" in result:
        grown = result["memory_fresh"]["rss_mib"] - result["empty"]["rss_mib"]
        result["memory_rss_mib_per_100k"] = round(grown / n * 100_000, 1)
    for key in ("rocksdb_fresh", "rocksdb_restart"):
        if key in result:
            grown = result[key]["rss_mib"] - result["empty"]["rss_mib"]
            result[f"{key}_rss_mib_per_100k"] = round(grown / n * 100_000, 1)
    if (workdir / "recovery-rocksdb").exists():
        result["rocksdb_disk_mib"] = round(sum(
            f.stat().st_size for f in (workdir / "recovery-rocksdb").rglob("*") if f.is_file())
            / 1024 / 1024, 1)
    dep.stop_workers()
    for state in ("recovery-empty", "recovery-memory", "recovery-rocksdb", "recovery-data"):
        shutil.rmtree(workdir / state, ignore_errors=True)  # state dirs: logs are kept
    return result


if __name__ == "__main__":  # python -m bench.recovery BOOTSTRAP [N]
    import sys

    print(state_sizes())
    print(asyncio.run(run(sys.argv[1], Path("/tmp/bench-recovery"),
                          n=int(sys.argv[2]) if len(sys.argv) > 2 else 100_000,
                          stores=["memory://", "rocksdb://"])))
