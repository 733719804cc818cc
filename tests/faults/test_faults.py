"""Fault runs through a real broker (marker `fault`: `pytest -m fault`, or `make test-all`).

Each run sends >= 20,000 chat messages over 2,000 conversations and 20 accounts while a fault
happens, then counts the live outputs against the core replayed over the worker's own log (see
harness.py). The figures go to $HANDOFF_FAULT_RESULTS (default fault-results.jsonl in the
test's tmp dir) and to stdout (`-s`).

What each guarantee is held to here is what the README's "Guarantees" section promises:
- at_least_once: nothing missing, nothing extra, no drifted state; duplicates (same event_id,
  same content) allowed.
- exactly_once: the same, and no duplicates for read_committed readers.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from handoff import localkafka
from schemas.topics import Topic
from tests.faults.harness import Figures, Run, Shape, record, running, setup, stream
from tests.kafka_support import Deployment

pytestmark = [
    pytest.mark.fault,
    pytest.mark.kafka,
    pytest.mark.skipif(shutil.which("java") is None or shutil.which("mvn") is None,
                       reason="the fault runs restart their own local broker (java, mvn)"),
]

SEED = int(os.environ.get("HANDOFF_FAULT_SEED", "7"))
SHAPE = Shape(messages=int(os.environ.get("HANDOFF_FAULT_MESSAGES", "20000")), seed=SEED)
# exactly_once is measured but not promised (README "Guarantees"): Faust writes the output
# topics outside its transactions, and with two workers intake's sends to the account log fail.
_EOS = pytest.param("exactly_once", marks=pytest.mark.xfail(
    reason="Faust's exactly_once: outputs outside transactions (README: Guarantees)",
    strict=False))
GUARANTEES = [g if g != "exactly_once" else _EOS for g in os.environ.get(
    "HANDOFF_FAULT_GUARANTEES", "at_least_once,exactly_once").split(",")]


@pytest.fixture(scope="module")
def broker_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A broker of this module's own: the broker-restart run stops and starts it."""
    state = tmp_path_factory.mktemp("fault-kafka")
    localkafka.start(data_dir=state)
    try:
        yield state
    finally:
        localkafka.stop(data_dir=state)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return Path(os.environ.get("HANDOFF_FAULT_RESULTS", str(tmp_path / "fault-results.jsonl")))


def deployment(broker_state: Path, tmp_path: Path) -> Deployment:
    # Running, or brought back as it was (a run that failed mid-restart must not fail the rest).
    address = localkafka.status(data_dir=broker_state) or localkafka.start(
        data_dir=broker_state, keep_data=True)
    # A killed worker's partitions move after the session timeout (default 60 s); 10 s keeps
    # the runs short without changing what is measured.
    return Deployment(address, tmp_path, partitions=4, env={"HANDOFF_SESSION_TIMEOUT_S": "10"})


async def prepare(run: Run) -> None:
    """Start the first worker and settle the accounts' setup before the stream starts."""
    w = run.worker("a")
    await run.start(w)
    await run.send(setup(SHAPE), rate=10_000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        changes = await run.read([Topic.CONFIG_CHANGES])
        if len(changes) >= SHAPE.accounts:
            return
        await asyncio.sleep(1)
    raise TimeoutError("account settings were not accepted")


def judge(figures: Figures) -> None:
    assert figures.worker_exits == 0, figures.line()
    assert (figures.missing, figures.extra, figures.different, figures.lost_inputs) == (
        0, 0, 0, 0), figures.line()
    if figures.guarantee == "exactly_once":
        assert figures.duplicated == 0, figures.line()


Fault = Callable[[Run], Callable[[float], Awaitable[None]]]


def run_scenario(name: str, note: str, fault: Fault, guarantee: str, broker_state: Path,
                 tmp_path: Path, results: Path) -> None:
    """Stream the inputs through a worker while `fault` acts on progress, then count and judge."""
    async def scenario() -> Figures:
        run = Run(deployment(broker_state, tmp_path), guarantee)
        started = time.monotonic()
        inputs = stream(SHAPE)
        async with running(run):
            await prepare(run)
            await run.send(inputs, SHAPE.rate, fault(run))
            await run.settle()
            figures = await run.count(name, inputs, started)
        figures.notes.append(note)
        return figures

    figures = asyncio.run(scenario())
    record(figures, results)
    judge(figures)


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_sigkill_at_random_points(guarantee: str, broker_state: Path, tmp_path: Path,
                                  results: Path) -> None:
    rng = random.Random(SEED)
    kills = sorted(rng.uniform(0.1, 0.9) for _ in range(4))

    def fault(run: Run) -> Callable[[float], Awaitable[None]]:
        w = run.workers[0]
        pending = list(kills)

        async def progress(done: float) -> None:
            while pending and done >= pending[0]:
                pending.pop(0)
                await asyncio.sleep(rng.uniform(0, 1.5))  # not on a chunk boundary
                await run.kill(w, signal.SIGKILL)
                run.killed.discard(id(w))
                await run.start(w)
        return progress

    run_scenario("sigkill", f"{len(kills)} SIGKILLs", fault, guarantee, broker_state, tmp_path,
                 results)


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_broker_stop_and_restart(guarantee: str, broker_state: Path, tmp_path: Path,
                                 results: Path) -> None:
    def fault(run: Run) -> Callable[[float], Awaitable[None]]:
        restarted = False

        async def progress(done: float) -> None:
            nonlocal restarted
            if restarted or done < 0.4:
                return
            restarted = True
            run.paused.clear()  # connectors would buffer and retry; this sender waits
            await asyncio.to_thread(localkafka.stop, broker_state)
            await asyncio.sleep(5)
            address = await asyncio.to_thread(localkafka.start, None, None, broker_state,
                                              keep_data=True)
            assert address == run.dep.settings.bootstrap_servers
            run.paused.set()
        return progress

    run_scenario("broker", "broker stopped ~5 s at 40%", fault, guarantee, broker_state,
                 tmp_path, results)


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_second_worker_joins_and_leaves(guarantee: str, broker_state: Path, tmp_path: Path,
                                        results: Path) -> None:
    def fault(run: Run) -> Callable[[float], Awaitable[None]]:
        second = run.worker("b")
        steps = {"join": 0.25, "leave": 0.65}

        async def progress(done: float) -> None:
            if "join" in steps and done >= steps["join"]:
                del steps["join"]
                await run.start(second)
            elif "leave" in steps and done >= steps["leave"]:
                del steps["leave"]
                await run.kill(second, signal.SIGTERM)
        return progress

    run_scenario("rebalance", "worker b joined at 25%, left (SIGTERM) at 65%", fault, guarantee,
                 broker_state, tmp_path, results)
