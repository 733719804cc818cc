"""Peak memory of `handoff replay` as the replayed range grows: it should stay flat.

One sequenced log (`handoff.account-events`, one partition) of the largest size is produced
once to a topic prefix of its own: several accounts, settings that change every 20,000 records,
presence that changes every 500, and new conversations all along (about one per four records,
so the number of conversation states grows with the range, as in a day of real traffic). Then
`replay --to-offset N --out /dev/null` runs for each N in its own process, and the process's
peak RSS (`ru_maxrss` from `wait4`) is read. `--stores` compares the bounded store replay uses
(`spill`, handoff/spill.py) with a plain dict (`memory`), which is what grows without it.

    python -m bench.replay_memory [--sizes 10000,50000,100000] [--stores spill,memory]

Broker: KAFKA_BOOTSTRAP_SERVERS, else the local one (`handoff kafka start`, started here if
needed and stopped again). Prints one JSON document; no assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from handoff.config import WorkerSettings, load_settings
from handoff.kafka_clients import client_kwargs
from schemas.topics import Topic

T0 = 1_795_000_000  # seconds; input times only, the log's own timestamps are the wall clock
TEXTS = ["Hi, where is my order 12345?", "Do you ship to Norway?", "What does premium cost?",
         "Kan jeg endre leveringsadressen min?", "Ich habe eine Frage zu meiner Rechnung",
         "The app crashes when I log in", "I want to talk to a human", "refund please",
         "ok thanks, bye", "Jeg vil snakke med et menneske"]
ACCOUNTS = 8
USERS = 6


def _at(step: int) -> str:
    t = time.gmtime(T0 + step)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)


def _envelope(source: str, account: str, offset: int, record: dict[str, Any],
              **extra: Any) -> bytes:
    return orjson.dumps({"source": source, "account_id": account,
                         "origin": {"topic": source, "partition": 0, "offset": offset},
                         **extra, "record": record})


def events(n: int, seed: int = 7, weights: list[float] | None = None
           ) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of n sequenced records, as intake would have forwarded them.

    `weights` (one per account): how often each account gets the next record; even if absent.
    """
    rng = random.Random(seed)
    i = 0
    for a in range(ACCOUNTS):
        acc = f"acct-{a}"
        setup: list[tuple[str, dict[str, Any], str]] = [
            ("directory", {"kind": "inbox", "id": f"{acc}-in", "account_id": acc,
                           "type": "inbox"}, f"inbox:{acc}-in")]
        setup += [("directory", {"kind": "user", "id": f"{acc}-u{u}", "account_id": acc,
                                 "name": f"User {u}", "teams": [f"{acc}-t"],
                                 "permissions": ["customer_agent.edit"]}, f"user:{acc}-u{u}")
                  for u in range(USERS)]
        setup += [("directory", {"kind": "team", "id": f"{acc}-t", "account_id": acc,
                                 "name": "Team", "business_hours": None}, f"team:{acc}-t")]
        for _, record, key in setup:
            yield acc.encode(), _envelope("directory", acc, i, record, key=key,
                                          occurred_at=_at(i))
            i += 1
    open_convs: list[tuple[str, str, int]] = []  # (account, conversation, messages so far)
    conv_seq = 0
    version_phrases = [["refund"], ["invoice", "refund"], ["cancel", "faktura"]]
    settings_due = list(range(ACCOUNTS))  # every account saves settings now, again every 20k
    while i < n:
        # randrange when even: the default log stays the one measured before weights existed.
        acc = (f"acct-{rng.randrange(ACCOUNTS)}" if weights is None
               else f"acct-{rng.choices(range(ACCOUNTS), weights)[0]}")
        if i % 20_000 == 0:
            settings_due = list(range(ACCOUNTS))
        if settings_due:
            acc = f"acct-{settings_due.pop()}"
            phrases = version_phrases[(i // 20_000) % len(version_phrases)]
            yield acc.encode(), _envelope("handoff.config.requests", acc, i, {
                "event_id": f"cfg-{i}", "account_id": acc, "actor": f"{acc}-u0",
                "occurred_at": _at(i), "config": {
                    "custom_triggers": phrases, "process": "live",
                    "routing": {"mode": "direct", "destination": f"{acc}-in",
                                "assignees": [{"type": "team", "id": f"{acc}-t"}]}}})
        elif i % 500 == 0:
            user = f"{acc}-u{rng.randrange(USERS)}"
            yield acc.encode(), _envelope("agent.presence", acc, i, {
                "event_id": f"p-{i}", "user_id": user,
                "status": rng.choice(["available", "available", "away"]),
                "occurred_at": _at(i), "max_open_conversations": 50})
        elif open_convs and (len(open_convs) > 400 or rng.random() < 0.7):
            index = rng.randrange(len(open_convs))
            acc, conv, seen = open_convs[index]
            if seen >= 3:
                open_convs[index] = open_convs[-1]
                open_convs.pop()
                yield acc.encode(), _envelope("conversation.updates", acc, i, {
                    "event_id": f"u-{i}", "conversation_id": conv, "account_id": acc,
                    "action": "close", "occurred_at": _at(i)})
            else:
                open_convs[index] = (acc, conv, seen + 1)
                agent = seen % 2 == 1
                yield acc.encode(), _envelope("chat.messages", acc, i, {
                    "event_id": f"m-{i}", "conversation_id": conv, "account_id": acc,
                    "channel": "chat", "sender": "customer_agent" if agent else "visitor",
                    "text": "Here is what I found." if agent else rng.choice(TEXTS),
                    "sent_at": _at(i), "answered": (rng.random() > 0.05) if agent else None})
        else:
            conv_seq += 1
            conv = f"c-{conv_seq}"
            open_convs.append((acc, conv, 1))
            yield acc.encode(), _envelope("chat.messages", acc, i, {
                "event_id": f"m-{i}", "conversation_id": conv, "account_id": acc,
                "channel": rng.choice(["chat", "email", "whatsapp"]), "sender": "visitor",
                "text": rng.choice(TEXTS), "sent_at": _at(i)})
        i += 1


async def produce(settings: WorkerSettings, n: int,
                  records: Iterable[tuple[bytes, bytes]] | None = None) -> float:
    """Create the one-partition log and produce `records` (default: `events(n)`) to it."""
    topic = settings.topic(Topic.ACCOUNT_EVENTS)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_kwargs(settings), linger_ms=20, acks=1,
                                max_batch_size=256 * 1024)
    await producer.start()
    start = time.perf_counter()
    try:
        pending = []
        for key, value in events(n) if records is None else records:
            pending.append(await producer.send(topic, value=value, key=key, partition=0))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - start


async def delete_topic(settings: WorkerSettings) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(Topic.ACCOUNT_EVENTS)])
    finally:
        await admin.close()


def child(prefix: str, upto: int, store: str) -> None:
    """One replay of [0, upto) in this process; prints its own figures as JSON."""
    from handoff.core.store import MemoryStore
    from handoff.history import LogRange
    from handoff.replay import run_replay
    from handoff.spill import SpillStore

    settings = load_settings(topic_prefix=prefix)
    chosen: Any = MemoryStore() if store == "memory" else SpillStore()
    start = time.perf_counter()
    outputs = asyncio.run(run_replay(settings, out=Path(os.devnull), store=chosen,
                                     log_range=LogRange(to_offsets={0: upto})))
    elapsed = time.perf_counter() - start
    print(json.dumps({"outputs": outputs, "seconds": round(elapsed, 2),
                      "states": len(chosen.data) if store == "memory" else None,
                      "spilled": getattr(chosen, "spilled", None)}))


def measure(prefix: str, upto: int, store: str) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.replay_memory", "--child", prefix, str(upto), store],
        stdout=subprocess.PIPE, env={**os.environ, "HANDOFF_TOPIC_PREFIX": prefix})
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"replay of {upto} records failed ({process.returncode})")
    figures = json.loads(out)
    return {"records": upto, "store": store, "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            **figures, "records_per_second": round(upto / max(figures["seconds"], 1e-9))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,100000,200000")
    parser.add_argument("--stores", default="spill,memory")
    parser.add_argument("--child", nargs=3, metavar=("PREFIX", "UPTO", "STORE"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    started = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        from handoff import localkafka

        bootstrap = localkafka.status()
        if bootstrap is None:
            bootstrap = started = localkafka.start()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    prefix = f"bench-replay-{uuid.uuid4().hex[:8]}."
    settings = load_settings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    try:
        produced = asyncio.run(produce(settings, max(sizes)))
        runs = [measure(prefix, 0, stores[0])]  # the process with nothing to replay
        runs += [measure(prefix, n, store) for store in stores for n in sizes]
        print(json.dumps({"broker": bootstrap, "log_records": max(sizes),
                          "produce_seconds": round(produced, 1), "runs": runs}, indent=2))
    finally:
        asyncio.run(delete_topic(settings))
        if started:
            from handoff import localkafka

            localkafka.stop()


if __name__ == "__main__":
    main()
