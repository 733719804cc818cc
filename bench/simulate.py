"""The impact preview's cost: `handoff simulate --json` over 100,000 records of one account.

One sequenced log (`handoff.account-events`, one partition) is produced once to a topic prefix
of its own, from `bench/replay_memory.py`'s traffic weighted so that one account (`acct-0`) has
`records` records and the seven others share about a tenth as many on the same partition (they
must be skipped). Then, in this order and in the same run:

- bare read: a plain consumer reads the whole partition and does nothing with the records (the
  floor any reader of the log pays);
- read + parse: the same, parsing the account's records as the simulation does (`parse_event`);
- simulate: `handoff simulate --json --quiet` as the preview runs it (a child process, so its
  start-up counts too), with the range the preview gives by default (the last 7 days): the
  what-if run in a second process when two cores are there, and again with both runs in one
  process (`HANDOFF_SIMULATE_PARALLEL=0`); the two must report the same.

    python -m bench.simulate [--records 100000] [--compare-with DIR]

Broker: KAFKA_BOOTSTRAP_SERVERS, else the local one (started here if needed and stopped again).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from bench.harness import broker
from bench.replay_memory import ACCOUNTS, delete_topic, events, produce
from handoff.config import WorkerSettings, load_settings
from handoff.history import consumer_for, parse_event
from handoff.simulate import PARALLEL_ENV
from schemas.topics import Topic

ACCOUNT = "acct-0"
SHARE = 0.9  # of the records that go to ACCOUNT; the other accounts share the rest
SYNC_GOAL_S = 10.0  # contract v1.1: a progress-free answer within 10 s for 100,000 records

PROPOSAL = {  # what an editor might try: more phrases, the same routing as recorded
    "custom_triggers": ["refund", "invoice", "opening hours", "crashes", "premium"],
    "process": "live",
    "routing": {"mode": "direct", "destination": f"{ACCOUNT}-in",
                "assignees": [{"type": "team", "id": f"{ACCOUNT}-t"}]},
}


def account_log(records: int) -> Iterator[tuple[bytes, bytes]]:
    """The weighted traffic, cut once ACCOUNT has `records` records."""
    rest = (1 - SHARE) / (ACCOUNTS - 1)
    weights = [SHARE] + [rest] * (ACCOUNTS - 1)
    mine = ACCOUNT.encode()
    seen = 0
    for key, value in events(records * 2, weights=weights):
        yield key, value
        seen += key == mine
        if seen >= records:
            return


async def read(settings: WorkerSettings, parse: bool) -> dict[str, Any]:
    """Read the whole partition with the reader's consumer settings; optionally parse."""
    topic = settings.topic(Topic.ACCOUNT_EVENTS)
    tp = TopicPartition(topic, 0)
    consumer = consumer_for(settings)
    mine = ACCOUNT.encode()
    read_n = parsed = 0
    try:
        await consumer.start()
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, (await consumer.beginning_offsets([tp]))[tp])
        start = time.perf_counter()
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
            for m in batch.get(tp, []):
                read_n += 1
                if parse and m.key == mine and parse_event(m.value) is not None:
                    parsed += 1
        seconds = time.perf_counter() - start
    finally:
        await consumer.stop()
    return {"seconds": round(seconds, 2), "records_read": read_n, "parsed": parsed,
            "records_per_second": round(read_n / max(seconds, 1e-9))}


def simulate_cli(prefix: str, now: datetime, parallel: bool = True,
                 code: Path | None = None) -> dict[str, Any]:
    """`handoff simulate --json --quiet` as the preview starts it, timed from outside; with
    `parallel` False both runs in one process (`HANDOFF_SIMULATE_PARALLEL=0`); `code`: the
    checkout to run it from (default this one)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump({"account_id": ACCOUNT, "config": PROPOSAL}, file)
    try:
        with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
            start = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; from handoff.cli import main; sys.exit(main())",
                 "simulate", "--json", "--quiet", "--config", file.name,
                 "--from-time", (now - timedelta(days=7)).isoformat().replace("+00:00", "Z"),
                 "--to-time", (now + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")],
                stdout=out_file, stderr=err_file, cwd=code,
                env={**os.environ, "HANDOFF_TOPIC_PREFIX": prefix,
                     PARALLEL_ENV: "1" if parallel else "0",
                     **({"PYTHONPATH": str(code)} if code is not None else {})})
            # wait4's usage counts the process and the child it waited for (the what-if run).
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            out_file.seek(0)
            err_file.seek(0)
            out, err = out_file.read(), err_file.read()
    finally:
        os.unlink(file.name)
    if process.returncode:
        raise RuntimeError(f"simulate failed: {err.decode()[-2000:]}")
    report = json.loads(out)
    in_range = report["records"]["in_range"] + report["records"]["before_range"]
    return {"seconds": round(seconds, 2), "records": in_range,
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "records_per_second": round(in_range / max(seconds, 1e-9)),
            "recorded_handoffs": report["recorded"]["handoffs"],
            "what_if_handoffs": report["what_if"]["handoffs"],
            "changed": report["changed"]["count"], "report": report,
            "goal_s": SYNC_GOAL_S, "met": seconds < SYNC_GOAL_S}


def run(bootstrap: str, records: int = 100_000, prefix: str | None = None,
        keep: bool = False, compare_with: Path | None = None) -> dict[str, Any]:
    """Produce the log (unless `prefix` names one produced before), measure the baselines and
    the simulation, delete the log unless `keep`; `compare_with`: another checkout's simulate
    over the same log too (an earlier commit, e.g. `git archive COMMIT | tar -x -C DIR`)."""
    given = prefix is not None
    prefix = prefix or f"bench-simulate-{uuid.uuid4().hex[:8]}."
    settings = load_settings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    try:
        result: dict[str, Any] = {"prefix": prefix}
        if not given:
            log = list(account_log(records))
            seconds = asyncio.run(produce(settings, 0, log))
            result.update({"log_records": len(log), "account_records": records,
                           "produce_seconds": round(seconds, 1)})
        result["bare_read"] = asyncio.run(read(settings, parse=False))
        result["read_parse"] = asyncio.run(read(settings, parse=True))
        now = datetime.now(UTC)  # one range for both, so that their reports compare
        result["simulate"] = simulate_cli(prefix, now)
        result["simulate_one_process"] = simulate_cli(prefix, now, parallel=False)
        # The two ways must report the same; the figures only need the counts.
        one, two = (result[k].pop("report") for k in ("simulate_one_process", "simulate"))
        result["same_report"] = one == two
        if compare_with is not None:
            result["other_code"] = other = simulate_cli(prefix, now, code=compare_with)
            result["other_code"]["code"] = str(compare_with)
            result["same_report_as_other_code"] = other.pop("report") == two
        return result
    finally:
        if not keep:
            asyncio.run(delete_topic(settings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000,
                        help="records of the simulated account")
    parser.add_argument("--prefix", help="measure a log produced before (with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the log, to measure again")
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="also time the simulate of the checkout in DIR over the same log")
    args = parser.parse_args()
    with broker() as (bootstrap, _, _):
        # The simulate processes this starts find the broker the same way.
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        result = run(bootstrap, args.records, args.prefix, args.keep, args.compare_with)
        print(json.dumps({"broker": bootstrap, **result}, indent=2))


if __name__ == "__main__":
    main()
