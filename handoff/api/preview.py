"""Impact preview (contract v1.1): `handoff simulate` for proposed settings, from the API.

The what-if runs as `handoff simulate --json` in a child process of the worker, so that its
counts are the command's own, its CPU and memory are not the worker's (the simulation keeps
two bounded stores, `handoff/spill.py`, and decides its two runs in two processes unless the
cores are busy), and it can be stopped, with its process group, when it takes too long. The
API waits for it up to `SYNC_WAIT_S`; a longer run is answered 202 with a link to poll, and
is killed after `MAX_RUN_S`. A worker runs at most `MAX_RUNNING` previews at once and keeps
finished ones `KEEP_S` seconds for the poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

SYNC_WAIT_S = 9.0
MAX_RUN_S = 300.0
MAX_RUNNING = 2
KEEP_S = 600.0
DEFAULT_DAYS = 7
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


class PreviewError(Exception):
    """The simulation could not run: the status to answer (422, 429, 500, 504) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def summary(report: dict[str, Any], account_id: str, start: datetime, end: datetime
            ) -> dict[str, Any]:
    """The contract's answer from the JSON of `handoff simulate --json`."""

    def tally(side: dict[str, Any]) -> dict[str, Any]:
        by_assignee: dict[str, int] = {}
        for label, count in side.get("by_assignee", {}).items():
            if label == "(unassigned)":
                continue  # counted in `unassigned`
            _, _, ident = label.partition(" ")  # "user u-1" -> "u-1"
            by_assignee[ident or label] = by_assignee.get(ident or label, 0) + int(count)
        return {"handoffs": side["handoffs"], "unassigned": side["unassigned"],
                "tickets": side["tickets"], "by_trigger": dict(side.get("by_trigger_kind", {})),
                "by_assignee": by_assignee}

    return {
        "account_id": account_id,
        "range": {"from": iso(start), "to": iso(end),
                  "records": report["records"]["in_range"]},
        "recorded": tally(report["recorded"]),
        "proposed": tally(report["what_if"]),
        "changed_conversations": report["changed"]["count"],
        "warnings": report.get("warnings", []),
    }


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def default_range(now: datetime, start: datetime | None, end: datetime | None
                  ) -> tuple[datetime, datetime]:
    """`from`/`to` as given; absent ones make the last 7 days (to now)."""
    end = end or now
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if end < start:
        raise PreviewError(422, "`to` is before `from`")
    return start, end


async def simulate(account_id: str, config: dict[str, Any], start: datetime, end: datetime,
                   max_run_s: float = MAX_RUN_S) -> dict[str, Any]:
    """Run `handoff simulate --json` for the range [start, end) and return its report."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="handoff-preview-",
                                     delete=False, encoding="utf-8") as file:
        json.dump({"account_id": account_id, "config": config}, file)
        path = file.name
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; from handoff.cli import main; sys.exit(main())",
            "simulate", "--json", "--quiet", "--config", path, "--account", account_id,
            "--from-time", iso(start), "--to-time", iso(end),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ), limit=MAX_OUTPUT_BYTES,
            # Its own process group: the what-if run's child process is stopped with it.
            start_new_session=True)
        try:
            out, err = await asyncio.wait_for(process.communicate(), max_run_s)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        if process.returncode != 0:
            text = err.decode("utf-8", "replace").strip().splitlines()
            reason = text[-1] if text else f"exit status {process.returncode}"
            if "has no records" in reason:
                raise PreviewError(404, reason.removeprefix("Error: "))
            raise PreviewError(500, f"the simulation failed: {reason}")
        report: dict[str, Any] = json.loads(out)
        return report
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


@dataclass
class Job:
    job_id: str
    account_id: str
    task: asyncio.Task[dict[str, Any]]
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None


@dataclass
class Previews:
    """The previews one worker runs, and the finished ones kept for a poll."""

    jobs: dict[str, Job] = field(default_factory=dict)

    def running(self) -> int:
        return sum(1 for j in self.jobs.values() if not j.task.done())

    def _expire(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self.jobs.items()):
            if job.task.done() and job.finished is not None and now - job.finished > KEEP_S:
                self.jobs.pop(job_id, None)

    def start(self, account_id: str, config: dict[str, Any], start: datetime,
              end: datetime) -> Job:
        self._expire()
        if self.running() >= MAX_RUNNING:
            raise PreviewError(429, f"{MAX_RUNNING} previews are running on this worker; "
                                    "try again when one has finished")
        job_id = uuid.uuid4().hex

        async def run() -> dict[str, Any]:
            try:
                report = await simulate(account_id, config, start, end)
                return summary(report, account_id, start, end)
            except TimeoutError:
                raise PreviewError(504, f"the preview took longer than {MAX_RUN_S:.0f} s and "
                                        "was stopped; choose a shorter range") from None
            finally:
                self.jobs[job_id].finished = time.monotonic()

        task = asyncio.get_running_loop().create_task(run())
        # Read the outcome even if nobody polls (no "exception never retrieved").
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
        job = Job(job_id, account_id, task)
        self.jobs[job_id] = job
        return job

    def get(self, account_id: str, job_id: str) -> Job | None:
        self._expire()
        job = self.jobs.get(job_id)
        return job if job is not None and job.account_id == account_id else None

    async def wait(self, job: Job, timeout: float) -> dict[str, Any] | None:
        """The answer, or None if it is not ready within `timeout` (it keeps running)."""
        done, _ = await asyncio.wait({job.task}, timeout=timeout)
        if not done:
            return None
        return job.task.result()  # raises PreviewError as the run did
