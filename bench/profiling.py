"""Sampling the running worker with py-spy, and reading its stacks into top costs.

py-spy (pinned in bench/requirements.txt) samples the worker process from outside, without
changing it; `--format raw` writes one line per distinct stack with its sample count. py-spy
leaves out most idle samples, but not all: a sample caught in the event loop's `select` (the
loop waiting for the broker) is idle time too. Those are counted apart, and every share is of
the worker's busy time (the other samples).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# py-spy names a frame's file relative to its sys.path entry ("aiokafka/consumer/fetcher.py"),
# or by its full path: the layer is the first prefix matching the path shortened by `_short`.
LAYERS = (
    ("steps/", "project: steps (intake, decide, holdback, validation)"),
    ("streams/loop.py", "project: loop (streams/loop.py)"),
    ("streams/task.py", "project: task runner (streams/task.py)"),
    ("streams/state/", "project: state stores (streams/state/)"),
    ("streams/", "project: streams, other"),
    ("handoff/core/", "project: core (handoff/core/)"),
    ("handoff/triggers/", "project: triggers"),
    ("schemas/", "project: schemas"),
    ("handoff/", "project: handoff, other"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "aiokafka"),  # aiokafka's vendored kafka-python parts, if any
    ("faust/", "faust (lifecycle, web)"),
    ("mode/", "mode"),
    ("rocksdict", "rocksdict"),
    ("pydantic_core", "pydantic"),
    ("pydantic", "pydantic"),
    ("orjson", "orjson"),
    ("prometheus_client/", "prometheus_client"),
    ("asyncio/", "asyncio"),
    ("selectors.py", "asyncio"),
    ("threading.py", "threads"),
)


def pyspy_path() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class PySpy:
    """`py-spy record` attached to a process until stopped."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self, rate: float = 100.0) -> None:
        exe = pyspy_path()
        if exe is None:
            self.error = "py-spy is not installed (pip install -r bench/requirements.txt)"
            return
        self.log = self.out.with_suffix(".log").open("wb")
        # --nonblocking: never pause the worker to read it (slightly torn stacks, no slowdown).
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--rate", str(int(rate)), "--format", "raw",
             "--output", str(self.out), "--nonblocking", "--threads"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> dict[str, Any]:
        if self.proc is None:
            return {"error": self.error or "not started"}
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if not self.out.exists():
            log = self.out.with_suffix(".log")
            return {"error": "py-spy wrote nothing: " + log.read_text(errors="replace")[-500:]}
        summary = summarize(self.out.read_text(errors="replace"))
        summary["raw"] = str(self.out)
        return summary


def _layer(path: str) -> str:
    short = _short(path)
    for prefix, name in LAYERS:
        if short.startswith(prefix):
            return name
    return "other"


_REPO = str(Path(__file__).resolve().parent.parent) + "/"
_STDLIB = re.compile(r"^.*/lib/python3\.\d+/")


def _short(path: str) -> str:
    """The path from its package on ("aiokafka/producer/producer.py", "streams/loop.py")."""
    for marker in ("site-packages/", _REPO):
        if marker in path:
            return path.split(marker, 1)[1]
    return _STDLIB.sub("", path)


# Leaf frames that are waiting, not working: the event loop's poll, a thread's wait.
IDLE_LEAVES = ("selectors.py:EpollSelector.select", "selectors.py:PollSelector.select",
               "selectors.py:SelectSelector.select", "threading.py:Condition.wait",
               "threading.py:Thread._wait_for_tstate_lock", "queue.py:Queue.get")


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    """Top functions by own time and by inclusive time, and time by layer (leaf frame), as
    shares of the busy samples (those whose leaf is not an idle wait)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        if not frames:
            continue
        names = []
        for frame in frames:
            m = _FRAME.match(frame)
            if m is None:
                names.append((frame, "other"))
                continue
            names.append((f"{_short(m['file'])}:{m['func']}", _layer(m["file"])))
        if names[-1][0] in IDLE_LEAVES:
            idle += count
            continue
        total += count
        threads[thread] += count
        own[names[-1][0]] += count
        layers[names[-1][1]] += count
        # Inclusive: each function once per stack; the first project/library frame is what a
        # developer can change, so attribute to every distinct function in it.
        for name in {n for n, _ in names}:
            inclusive[name] += count

    def share(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [{"function": name, "pct": round(100 * c / max(total, 1), 1)}
                for name, c in counter.most_common(limit)]

    # Leave out the event loop and the frames every stack shares (runpy, click, the command).
    shared = ("asyncio/", "threading", "mode/", "<", "runpy", "click/", "handoff/cli.py",
              "handoff/worker.py", "selectors.py")
    interesting = Counter({k: v for k, v in inclusive.items() if not k.startswith(shared)})
    return {"samples": total, "idle_samples": idle,
            "threads": share(threads, 5),
            "by_layer": share(layers, 15),
            "top_own": share(own, top),
            "top_inclusive": share(interesting, top)}


def format_summary(summary: dict[str, Any], top: int = 15) -> str:
    if "error" in summary:
        return f"profile: {summary['error']}"
    idle = summary.get("idle_samples")
    lines = [f"py-spy samples: {summary['samples']} busy"
             + (f" (and {idle} idle in select/wait, left out)" if idle is not None else ""),
             "", "by layer (own time, % of busy samples):"]
    lines += [f"  {r['pct']:5.1f}%  {r['function']}" for r in summary["by_layer"]]
    lines += ["", "top functions, own time:"]
    lines += [f"  {r['pct']:5.1f}%  {r['function']}" for r in summary["top_own"][:top]]
    lines += ["", "top functions, inclusive time (without the event loop and command frames):"]
    lines += [f"  {r['pct']:5.1f}%  {r['function']}" for r in summary["top_inclusive"][:top + 10]]
    return "\n".join(lines)
