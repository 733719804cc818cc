"""`python -m bench`: every benchmark of issue 8 against a real broker, each figure beside a
baseline measured in the same run; prints a table and writes it as JSON to bench/results/.

    python -m bench            # the full run (200,000 messages, 30 s latency, 1,000,000 states)
    python -m bench --quick    # the same parts, small (a few minutes)
    python -m bench --parts throughput,latency --messages 50000

Parts: core (pure-core decisions/s), matchers (phrase-count scaling), throughput (one worker vs
a bare aiokafka loop and a transactional batch loop), latency (produce to handoff record, with
the default sequencing window and with 0), state (store memory and changelog recovery, memory
vs RocksDB store), profile (py-spy over the worker, run when the worker is under half the bare
loop, or --profile), simulate (the impact preview's `handoff simulate --json` over 100,000
records of one account beside a bare read of the same records; `bench/simulate.py`), scaling
(one worker against two over 8 partitions, and two workers with all the traffic on one
account; `bench/scaling.py`).

The broker: KAFKA_BOOTSTRAP_SERVERS if set, else the local one (`handoff kafka start`, state
in HANDOFF_KAFKA_STATE_DIR), started and stopped by this command unless it already runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import logging
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import core, harness, latency, recovery, scaling, simulate, throughput
from bench.profiling import format_summary

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("core", "matchers", "throughput", "latency", "state", "profile", "simulate",
         "scaling")

GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0
GOAL_MATCHER_RATIO = 1.5
GOAL_DETECTOR_US = 20.0  # issue 14: the human-request detector per typical message


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench",
                                description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--messages", type=int, help="throughput messages (200000; quick 20000)")
    p.add_argument("--accounts", type=int, default=20, help="accounts in the traffic")
    p.add_argument("--latency-rate", type=float, default=1000.0, help="messages per second")
    p.add_argument("--latency-rates",
                   help="comma-separated rates to run instead of --latency-rate and "
                        "--latency-low-rate, e.g. 1000,2000,100")
    p.add_argument("--latency-seconds", type=float, help="timed seconds per run (30; quick 5)")
    p.add_argument("--latency-low-rate", type=float, default=100.0,
                   help="a second, lighter rate, under one worker's capacity (0: skip)")
    p.add_argument("--trigger-every", type=int, default=10,
                   help="every Nth latency message hands off (1: all)")
    p.add_argument("--conversations", type=int,
                   help="conversations to restore (1000000; quick 100000)")
    p.add_argument("--stores", default="memory,rocksdb",
                   help="state stores to compare: memory (HANDOFF_STORE=memory://), rocksdb "
                        "(rocksdb://)")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="py-spy the worker: when under the throughput goal (auto), always, never")
    p.add_argument("--profile-messages", type=int, help="messages of the profiled run")
    p.add_argument("--simulate-records", type=int,
                   help="records of the simulated account (100000; quick 20000)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where JSON and logs go")
    args = p.parse_args(argv)
    quick = args.quick
    args.messages = args.messages or (20_000 if quick else 200_000)
    args.latency_seconds = args.latency_seconds or (5.0 if quick else 30.0)
    args.conversations = args.conversations or (100_000 if quick else 1_000_000)
    args.profile_messages = args.profile_messages or (10_000 if quick else 30_000)
    args.simulate_records = args.simulate_records or (20_000 if quick else 100_000)
    if args.latency_rates:
        args.latency_rates = [float(x) for x in args.latency_rates.split(",") if x.strip()]
    else:
        args.latency_rates = [args.latency_rate] + (
            [args.latency_low_rate] if args.latency_low_rate else [])
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    return args


def _stores(names: str) -> tuple[list[str], dict[str, str]]:
    stores, skipped = [], {}
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        if name == "memory":
            stores.append("memory://")
        elif name == "rocksdb":
            # streams/state/rocksdb.py; rocksdict is a dependency (requirements.lock).
            if importlib.util.find_spec("rocksdict") is None:
                skipped[name] = "rocksdict is missing from the venv (make setup)"
            else:
                stores.append("rocksdb://")
        else:
            skipped[name] = "unknown store"
    return stores, skipped


def _store_name(url: str) -> str:
    return url.split(":")[0]


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:  # NaN
        return "-"
    if isinstance(value, int | float) and abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    if isinstance(value, float):
        return f"{value:.3g}{unit}" if abs(value) < 10 else f"{value:.1f}{unit}"
    return f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


async def _run_parts(args: argparse.Namespace, report: dict[str, Any], workdir: Path,
                     bootstrap: str) -> None:
    results = report["results"]
    stores, skipped = _stores(args.stores)
    report["stores_skipped"] = skipped

    def note(part: str, exc: BaseException) -> None:
        results.setdefault(part, {})["error"] = f"{type(exc).__name__}: {exc}"
        report["errors"].append(f"{part}: {type(exc).__name__}: {exc}")
        traceback.print_exc()

    def failed(part: str, result: dict[str, Any]) -> None:
        """A run that finished but not as it should (a worker that did not finish, handoffs
        missing): an error of the bench, not only a note in the JSON."""
        if "error" in result:
            report["errors"].append(f"{part}: {result['error']}")
        note_ = result.get("worker", {}).get("handoffs_note")
        if note_:
            report["errors"].append(f"{part}: {note_}")

    if "throughput" in args.parts:
        out: dict[str, Any] = {}
        results["throughput"] = out
        for i, store in enumerate(stores):
            print(f"[throughput] {args.messages:,} messages, store {store} ...", flush=True)
            try:
                out[_store_name(store)] = await throughput.run(
                    bootstrap, workdir, n=args.messages, accounts=args.accounts, store=store,
                    parse_baseline=i == 0, label=_store_name(store))
                failed(f"throughput-{_store_name(store)}", out[_store_name(store)])
            except Exception as exc:
                note(f"throughput-{_store_name(store)}", exc)
    ratio = results.get("throughput", {}).get("memory", {}).get("ratio")
    want_profile = "profile" in args.parts and (
        args.profile == "always" or (args.profile == "auto" and ratio is not None
                                     and ratio < GOAL_RATIO))
    if want_profile:
        print(f"[profile] py-spy over the worker, {args.profile_messages:,} messages ...",
              flush=True)
        try:
            prof = await throughput.run_profile(bootstrap, workdir, n=args.profile_messages,
                                                accounts=args.accounts)
            results["profile"] = prof
            failed("profile", prof)
            if "profile" in prof:
                text = format_summary(prof["profile"], 25)
                path = workdir / "profile.txt"
                path.write_text(text + "\n")
                prof["profile"]["summary_file"] = str(path)
        except Exception as exc:
            note("profile", exc)

    if "latency" in args.parts:
        runs = []
        for rate in args.latency_rates:
            for window in (None, 0):
                label = "default" if window is None else window
                print(f"[latency] {rate:.0f} msg/s for {args.latency_seconds:.0f} s, "
                      f"sequencing window {label} ...", flush=True)
                try:
                    runs.append(await latency.run(
                        bootstrap, workdir, rate=rate, seconds=args.latency_seconds,
                        warmup=1.0 if args.quick else 2.0, trigger_every=args.trigger_every,
                        window_ms=window, drain_timeout=60.0 if args.quick else 180.0))
                    if runs[-1]["handoffs_missing"]:
                        report["errors"].append(
                            f"latency-{rate:.0f}-{label}: {runs[-1]['handoffs_missing']} "
                            f"handoffs not seen within the drain timeout")
                except Exception as exc:
                    note(f"latency-{rate:.0f}-{label}", exc)
        results["latency"] = runs

    if "state" in args.parts:
        print("[state] store memory per conversation ...", flush=True)
        results["state_size"] = recovery.state_sizes()
        print(f"[state] restore {args.conversations:,} conversations from the changelog, "
              f"stores {', '.join(stores)} ...", flush=True)
        try:
            results["recovery"] = await recovery.run(bootstrap, workdir, n=args.conversations,
                                                     stores=stores)
        except Exception as exc:
            note("recovery", exc)

    if "scaling" in args.parts:
        print(f"[scaling] {args.messages:,} messages over {scaling.PARTITIONS} partitions: one "
              "worker, two workers, two workers with one account ...", flush=True)
        try:
            results["scaling"] = await scaling.run(bootstrap, workdir, n=args.messages,
                                                   accounts=args.accounts)
            for key in ("one_worker", "two_workers", "one_account_two_workers"):
                failed(f"scaling-{key}", results["scaling"][key])
        except Exception as exc:
            note("scaling", exc)


def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    mode = "quick" if args.quick else "full"
    workdir = args.out / f"run-{mode}-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "mode": mode, "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "machine": {**harness.machine(), "platform": platform.platform()},
        "code": harness.code_version(),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": {}, "errors": [], "workdir": str(workdir)}
    started = time.monotonic()
    results = report["results"]
    if "core" in args.parts:
        print("[core] pure-core decisions per second ...", flush=True)
        results["core"] = core.core_throughput(10_000 if args.quick else 50_000)
    if "matchers" in args.parts:
        print("[matchers] custom phrases 10 / 1,000 / 10,000 and the human-request detector ...",
              flush=True)
        results["matchers"] = core.matcher_scaling(20_000)
    broker_parts = {"throughput", "latency", "state", "profile", "simulate",
                    "scaling"} & set(args.parts)
    if broker_parts:
        with harness.broker() as (bootstrap, what, pid):
            report["broker"] = what
            if pid is not None:
                harness.ALWAYS_TRACKED.add(pid)
            print(f"broker {bootstrap}: {what}", flush=True)
            asyncio.run(_run_parts(args, report, workdir, bootstrap))
            if "simulate" in args.parts:
                print(f"[simulate] handoff simulate over {args.simulate_records:,} records of "
                      "one account ...", flush=True)
                try:
                    results["simulate"] = simulate.run(bootstrap, args.simulate_records)
                    if not results["simulate"]["same_report"]:
                        report["errors"].append("simulate: one process and two processes "
                                                "reported differently")
                except Exception as exc:
                    results["simulate"] = {"error": f"{type(exc).__name__}: {exc}"}
                    report["errors"].append(f"simulate: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"]["load_average_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    path = args.out / f"bench-{mode}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    report["json"] = str(path)
    return report


def table(report: dict[str, Any]) -> str:
    """The figures, each beside its same-run baseline and the issue's goal."""
    r = report["results"]
    rows: list[tuple[str, str, str, str, str]] = []

    def row(part: str, figure: str, value: str, baseline: str = "", goal: str = "") -> None:
        rows.append((part, figure, value, baseline, goal))

    for store, t in r.get("throughput", {}).items():
        if "worker" not in t:
            row("1 throughput", f"worker, {store} store", "ERROR", "", t.get("error", ""))
            continue
        w, b = t["worker"], t.get("bare_loop", {})
        ratio = t.get("ratio")
        row("1 throughput", f"worker msgs/s, {store} store ({t['messages']:,} msgs)",
            _fmt(w["per_second"]), f"bare aiokafka loop {_fmt(b.get('per_second'))}",
            f"{ratio:.2f}x (goal >= {GOAL_RATIO}x) {_verdict(ratio >= GOAL_RATIO)}"
            if ratio is not None else "")
        x = t.get("txn_loop", {})
        if x:
            row("", "  transactional batch loop msgs/s", _fmt(x["per_second"]),
                "bareloop.py --transactional", f"worker {t['txn_ratio']:.2f}x of it"
                if t.get("txn_ratio") is not None else "")
        if "bare_loop_parse" in t:
            row("", "  bare loop + validate (pydantic)", _fmt(t["bare_loop_parse"]["per_second"]),
                "", "")
        if "cpu_ms_per_message" in w and "cpu_ms_per_message" in b:
            txn_cpu = (f"; txn loop {_fmt(x['cpu_ms_per_message'])}"
                       if "cpu_ms_per_message" in x else "")
            row("", "  CPU ms per message (steadier when shared)",
                _fmt(w["cpu_ms_per_message"]),
                f"bare loop {_fmt(b['cpu_ms_per_message'])}{txn_cpu}",
                (f"worker uses {1 / t['cpu_ratio']:.0f}x the bare loop's CPU"
                 + (f", {1 / t['txn_cpu_ratio']:.1f}x the txn loop's"
                    if t.get("txn_cpu_ratio") else "")) if t["cpu_ratio"] else "")
        handoffs = f"{w['handoffs']:,} of {t['expected_handoffs']:,} expected"
        retries = (f"; worker's produce retries {w['produce_retries']}"
                   if "produce_retries" in w else "")
        row("", "  handoffs published", handoffs,
            f"{t['triggering_messages_pct']}% of msgs fire{retries}",
            "ok" if w["handoffs"] == t["expected_handoffs"] else "MISMATCH")
        cpu = t.get("cpu", {})
        row("", "  machine cores busy: bench / others", f"{_fmt(cpu.get('bench_cores'))} / "
            f"{_fmt(cpu.get('other_cores'))}", "", "")
    if "core" in r:
        row("1 throughput", "pure core decisions/s (no Kafka)", _fmt(r["core"]["per_second"]),
            "", f"the ceiling; {r['core'].get('us_per_decision', '?')} us a decision")
    prof = r.get("profile", {}).get("profile")
    if prof and "top_own" in prof:
        top = ", ".join(f"{x['function'].split(':')[-1]} {x['pct']}%" for x in prof["top_own"][:3])
        row("  profile", "top own time (py-spy)", top, "", prof.get("summary_file", ""))
    for lat in r.get("latency", []):
        window = lat["window_ms"]
        value = f"{_fmt(lat['p50_ms'])} / {_fmt(lat['p99_ms'])} / {_fmt(lat['max_ms'])}"
        ok = lat["p99_ms"] < GOAL_P99_MS if lat["handoffs_timed"] else False
        row("2 latency", f"p50/p99/max ms @ {lat['target_rate']:.0f}/s, window {window}", value,
            f"{lat['handoffs_timed']:,} handoffs timed, {lat['handoffs_missing']} missing"
            + (f"; {lat['produce_retries']} produce retries" if "produce_retries" in lat else "")
            + (f"; sender at most {lat['sender_behind_max_ms']:.0f} ms behind"
               if "sender_behind_max_ms" in lat else "")
            + (f"; to the worker's send p50/p99 {lat['to_send_p50_ms']:,} / "
               f"{lat['to_send_p99_ms']:,} ms" if "to_send_p50_ms" in lat else ""),
            f"goal p99 < {GOAL_P99_MS:.0f} ms {_verdict(ok)}")
    m = r.get("matchers")
    if m:
        ratio = m["ratio_10000_to_10"]
        row("3 matchers", "custom 10,000 phrases, us/msg", _fmt(m["custom_10000_us"]),
            f"10 phrases {_fmt(m['custom_10_us'])}",
            f"{ratio:.2f}x (goal <= {GOAL_MATCHER_RATIO}x) {_verdict(ratio <= GOAL_MATCHER_RATIO)}")
        row("", "custom 1,000 phrases, us/msg", _fmt(m["custom_1000_us"]), "", "")
        row("", "human-request detector, us/msg", _fmt(m["human_request_us"]),
            f"phrase files alone {_fmt(m.get('human_request_rules_us'))}; "
            f"normalize alone {_fmt(m.get('normalize_us'))}",
            f"goal <= {GOAL_DETECTOR_US:.0f} us "
            f"{_verdict(m['human_request_us'] <= GOAL_DETECTOR_US)}")
    s = r.get("state_size")
    if s:
        row("4 state", "conversation: JSON / pickle bytes", f"{s['json_bytes']} / "
            f"{s['pickle_bytes_model']}", "", "changelog + RocksDB hold the JSON")
        row("", "conversation: Python heap bytes", f"model {s['heap_bytes_model']:,}, "
            f"dict {s['heap_bytes_dict']:,}", "", "memory store: models, also after restore")
    rec = r.get("recovery", {})
    if "empty" in rec:
        n = rec["conversations"]
        empty = rec["empty"]
        bare = rec.get("bare_read", {})
        bare_codec = rec.get("bare_read_codec", {})
        for key in ("memory_fresh", "rocksdb_fresh", "rocksdb_restart"):
            if key not in rec:
                continue
            x = rec[key]
            label = {"memory_fresh": "memory store, fresh worker",
                     "rocksdb_fresh": "rocksdb store, fresh worker (empty dir)",
                     "rocksdb_restart": "rocksdb store, restart (local state kept)"}[key]
            fate = rec.get("pre_start_probes", {}).get(key, {})
            probe = "" if x.get("probe_ok") else (
                "; record sent before start NOT decided in 45 s"
                + (" (never decided: skipped)" if fate and not fate.get("decided_at_all")
                   else " (decided by a later worker)" if fate else "")
                + "; one sent after ready: "
                + ("decided" if x.get("late_probe_ok") else "not decided either"))
            restored = x.get("restored_records")
            # A fresh worker restores the whole changelog; a restart only its tail.
            count = "" if restored is None else (
                f"; {restored:,} records restored" + (
                    " (the tail)" if key == "rocksdb_restart"
                    else "" if restored >= n else " (SHORT)"))
            row("4 recovery", f"{label}: s to ready ({n:,} convs)", _fmt(x["ready_s"]),
                f"empty changelog {_fmt(empty['ready_s'])} s; bare read "
                f"{_fmt(bare.get('seconds'))} s (+ codec {_fmt(bare_codec.get('seconds'))} s)",
                f"first decision at {_fmt(x.get('first_decision_s'))} s{count}{probe}")
            row("", "  RSS MiB once ready (peak)", f"{_fmt(x.get('rss_mib'))} "
                f"({_fmt(x.get('rss_peak_mib'))})", f"empty worker {_fmt(empty.get('rss_mib'))}",
                "")
        if "memory_rss_mib_per_100k" in rec:
            row("4 state", "worker RSS MiB per 100k convs, memory",
                _fmt(rec["memory_rss_mib_per_100k"]),
                f"empty worker {_fmt(empty['rss_mib'])} MiB", "")
        if "rocksdb_fresh_rss_mib_per_100k" in rec:
            row("", "worker RSS MiB per 100k convs, rocksdb",
                _fmt(rec["rocksdb_fresh_rss_mib_per_100k"]),
                f"on disk {_fmt(rec.get('rocksdb_disk_mib'))} MiB in all", "")
    sim = r.get("simulate", {})
    if "simulate" in sim:
        bare, parse = sim["bare_read"], sim["read_parse"]
        for key, how in (("simulate", "two processes"), ("simulate_one_process", "one process")):
            x = sim[key]
            row("5 preview" if key == "simulate" else "",
                f"simulate --json s, {x['records']:,} records, {how}", _fmt(x["seconds"]),
                f"bare read {_fmt(bare['seconds'])} s ({_fmt(bare['records_per_second'])}/s); "
                f"read + parse {_fmt(parse['seconds'])} s",
                f"{_fmt(x['records_per_second'])} records/s, CPU {_fmt(x['cpu_seconds'])} s; "
                f"goal < {x['goal_s']:.0f} s {_verdict(x['met'])}")
        row("", "  same report both ways", "yes" if sim["same_report"] else "NO", "", "")
    sc = r.get("scaling", {})
    if "two_workers" in sc:
        one, two, busy = sc["one_worker"], sc["two_workers"], sc["one_account_two_workers"]
        row("6 scaling", f"msgs/s, 2 workers, {two['partitions']} partitions",
            _fmt(two["per_second"]), f"1 worker {_fmt(one['per_second'])}",
            f"{sc['speedup']}x; CPU {_fmt(two['cpu_ms_per_message'])} vs "
            f"{_fmt(one['cpu_ms_per_message'])} ms/msg")
        row("", "  msgs/s, 2 workers, all on 1 account", _fmt(busy["per_second"]),
            f"1 worker, {one['accounts']} accounts {_fmt(one['per_second'])}",
            "one account: one log partition, one task")
    widths = [max(len(x[i]) for x in [*rows, ("part", "figure", "value", "baseline (same run)",
                                                "vs baseline / goal")]) for i in range(5)]
    head = ("part", "figure", "value", "baseline (same run)", "vs baseline / goal")
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(head)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row_)).rstrip() for row_ in rows]
    mach = report["machine"]
    lines.insert(0, f"mode {report['mode']}; {mach.get('cores')} cores, "
                    f"{mach.get('memory_gib')} GiB, {mach.get('cpu', '?')}; Python "
                    f"{mach.get('python')}; {report.get('broker', 'no broker')}; load average "
                    f"{mach.get('load_average')} at start, {mach.get('load_average_end')} at end")
    code = report.get("code", {})
    if code:
        lines.insert(1, f"code {code.get('commit', '?')}"
                        + (f", uncommitted changes in {', '.join(code['dirty'])}"
                           if code.get("dirty") else ", clean"))
    lines.insert(len(lines) - len(rows) - 2, "")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    # aiokafka logs retries (a new topic's leader not known yet) that the bench rides out.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    report = run(args)
    print()
    print(table(report))
    prof = report["results"].get("profile", {}).get("profile")
    if prof and "top_own" in prof:
        print()
        print(format_summary(prof, 12))
    print()
    for err in report["errors"]:
        print(f"error: {err}")
    print(f"JSON: {report['json']}  (logs: {report['workdir']})")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
