"""What-if: recorded traffic decided again with proposed settings, against what happened.

One pass over the account's records on `handoff.account-events` feeds two engines, each with
its own store: the recorded run (the settings as they were; replay equals the live outputs, see
`handoff/replay.py`) and the what-if run, in which the account's settings read as the proposal
from the start of the range on. Recorded config requests of the account inside the range are
still checked and versioned as they were (their outcome records do not change), but their
settings are not applied: the proposal stays in force throughout, as if it had been saved just
before the range and never changed. Everything before the range only rebuilds state, in both
runs alike.

The records are streamed; what is kept is two bounded stores (`handoff/spill.py`), the
counters and one short outcome line per conversation that has a handoff in either run. Unless
the cores are busy, the what-if run is decided by a forked child process over the same planned
offsets while this process decides the recorded run (the two runs share nothing but the log;
for 100,000 records a quarter less wait than one pass on a quiet machine, see README);
otherwise both runs share one pass and each record is parsed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from handoff.config import WorkerSettings
from handoff.core.engine import Engine
from handoff.core.settings import check_config
from handoff.core.state import AccountSettings
from handoff.core.store import Decision, Overlay, Table, Write
from handoff.core.triggers import HumanDetector, Matchers
from handoff.history import (
    LogRange,
    Progress,
    Span,
    open_consumer,
    parse_event,
    partitions_of,
    plan,
    read_spans,
)
from handoff.ops.gc import freeze_survivors, tune_gc
from handoff.replay import decide
from handoff.spill import SpillStore
from handoff.triggers.custom import normalize_phrase
from handoff.triggers.human_request import HumanRequestDetector, HumanRequestMatch
from handoff.triggers.saved import load_detector
from schemas.internal import SequencedChat
from schemas.settings import DirectRouting, HandoffConfig
from schemas.topics import Topic, partition_for

log = logging.getLogger(__name__)


def load_proposal(path: Path, account: str | None) -> tuple[str, dict[str, Any]]:
    """The account and the raw proposed config from a YAML/JSON file.

    The file is a `config` object as in a config request, or `{account_id, config}`.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a config object (custom_triggers, process, "
                         "routing, messages, unassigned_chat)")
    named = data.get("account_id")
    raw = data["config"] if isinstance(data.get("config"), dict) else {
        k: v for k, v in data.items() if k != "account_id"}
    if account and named and account != named:
        raise ValueError(f"{path} is for account {named}, --account says {account}")
    account_id = account or named
    if not isinstance(account_id, str) or not account_id:
        raise ValueError("say which account the settings are for: --account A, or account_id "
                         "in the file")
    try:
        HandoffConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ValueError(f"{path}: not valid handoff settings: {problems}") from None
    return account_id, raw


class WhatIf:
    """The what-if run's store: the account's settings read as the proposal once active."""

    def __init__(self, base: SpillStore, account_id: str, config: HandoffConfig) -> None:
        self.base = base
        self.account_id = account_id
        self.config = config
        self.active = False
        self._cached: tuple[object, AccountSettings] | None = None

    def get(self, table: Table, key: str) -> object | None:
        value = self.base.get(table, key)
        if table is not Table.SETTINGS or key != self.account_id or not self.active:
            return value
        if self._cached is not None and self._cached[0] is value:
            return self._cached[1]
        current = Overlay(self.base).settings(key)
        proposed = current.model_copy(update={"config": self.config})
        self._cached = (value, proposed)
        return proposed

    def apply(self, writes: list[Write]) -> None:
        self.base.apply(writes)


@dataclass
class Tally:
    """What one run decided inside the range."""

    handoffs: int = 0
    recorded_only: int = 0  # process none: a trigger without a handoff
    unassigned: int = 0
    tickets: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_phrase: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    by_team: Counter[str] = field(default_factory=Counter)
    by_assignee: Counter[str] = field(default_factory=Counter)
    # Later assignments of a handoff (contract v1.1), by reason: from the queue, re-routes.
    moves: Counter[str] = field(default_factory=Counter)

    def add(self, decision: Decision, store: Overlay, account_id: str) -> list[str]:
        """Count a decision's records; returns its outcome lines (one per handoff event)."""
        outcomes: list[str] = []
        handoff: Any = None
        for emit in decision.emits:
            v: Any = emit.value
            if emit.topic is Topic.HANDOFF_EVENTS:
                handoff = v
                kind = v.trigger.kind.value
                if not v.handed_off:
                    self.recorded_only += 1
                    outcomes.append(f"{_trigger(v)} recorded only (process none)")
                    continue
                self.handoffs += 1
                self.by_kind[kind] += 1
                self.by_channel[v.channel.value] += 1
                if v.trigger.phrase:
                    self.by_phrase[f"{kind} '{v.trigger.phrase}'"] += 1
            elif emit.topic is Topic.TICKETS_CREATED:
                self.tickets += 1
            elif emit.topic is Topic.ASSIGNMENTS and v.reason != "handoff":
                # A handoff is counted once, where it was first routed; what moved it later
                # (the queue, a pickup timeout, ...) is counted apart.
                self.moves[v.reason] += 1
            elif emit.topic is Topic.ASSIGNMENTS:
                who = v.assignee
                if who is None:
                    self.unassigned += 1
                    self.by_assignee["(unassigned)"] += 1
                    target = "unassigned"
                else:
                    self.by_assignee[f"{who.type} {who.id}"] += 1
                    self.by_team[_team(store, account_id, who.type, who.id)] += 1
                    target = f"{who.type} {who.id}"
                outcomes.append(f"{_trigger(handoff)} -> {target} in {v.inbox_id} ({v.mode})")
        return outcomes

    def to_json(self) -> dict[str, Any]:
        return {"handoffs": self.handoffs, "recorded_only": self.recorded_only,
                "unassigned": self.unassigned, "tickets": self.tickets,
                "by_trigger_kind": dict(self.by_kind), "by_phrase": dict(self.by_phrase),
                "by_channel": dict(self.by_channel), "by_team": dict(self.by_team),
                "by_assignee": dict(self.by_assignee), "later_assignments": dict(self.moves)}


def _trigger(handoff: Any) -> str:
    if handoff is None:
        return "?"
    t = handoff.trigger
    phrase = f" '{t.phrase}'" if t.phrase else ""
    return f"{t.kind.value}{phrase} at {t.message_event_id}"


def _team(store: Overlay, account_id: str, kind: str, ident: str) -> str:
    """A team assignee, or a user's first team in the directory."""
    if kind == "team":
        return ident
    user = store.account(account_id).users.get(ident)
    return user.teams[0] if user is not None and user.teams else "(no team)"


@dataclass
class Changed:
    conversation_id: str
    kind: str  # new handoff | no handoff any more | different trigger | different route
    recorded: list[str]
    what_if: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "change": self.kind,
                "recorded": self.recorded, "what_if": self.what_if}


@dataclass
class Report:
    account_id: str
    range: str
    proposal: HandoffConfig
    records_in_range: int = 0
    records_before: int = 0
    versions_replaced: list[int] = field(default_factory=list)  # recorded in force: first, last
    compared_with: int | None = None  # the recorded version the phrase changes are against
    phrases_added: list[str] = field(default_factory=list)
    phrases_removed: list[str] = field(default_factory=list)
    recorded: Tally = field(default_factory=Tally)
    what_if: Tally = field(default_factory=Tally)
    changed: list[Changed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def extra_handoffs(self) -> int:
        return self.what_if.handoffs - self.recorded.handoffs

    def changed_counts(self) -> dict[str, int]:
        return dict(Counter(c.kind for c in self.changed))

    def to_json(self, list_changed: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "account_id": self.account_id, "range": self.range,
            "records": {"in_range": self.records_in_range, "before_range": self.records_before},
            "proposal": {"config": self.proposal.model_dump(mode="json"),
                         "replaces_versions": self.versions_replaced,
                         "compared_with_version": self.compared_with,
                         "phrases_added": self.phrases_added,
                         "phrases_removed": self.phrases_removed},
            "recorded": self.recorded.to_json(), "what_if": self.what_if.to_json(),
            "extra_handoffs": self.extra_handoffs,
            "changed": {"count": len(self.changed), "by_change": self.changed_counts()},
            "warnings": self.warnings}
        if list_changed:
            out["changed"]["conversations"] = [c.to_json() for c in self.changed]
        return out


def _classify(recorded: list[str], what_if: list[str]) -> str:
    handed_before = any(" -> " in o for o in recorded)
    handed_after = any(" -> " in o for o in what_if)
    if handed_after and not handed_before:
        return "new handoff"
    if handed_before and not handed_after:
        return "no handoff any more"
    if [o.split(" -> ")[0] for o in recorded] != [o.split(" -> ")[0] for o in what_if]:
        return "different trigger"
    return "different route"


@dataclass
class Side:
    """What one of the two runs gives back: its counts and outcome lines per conversation."""

    tally: Tally = field(default_factory=Tally)
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    records_in_range: int = 0
    records_before: int = 0
    replaced: int | None = None  # what-if: the recorded version in force where the range starts
    final: AccountSettings | None = None  # recorded: the settings at the end of the range
    errors: list[str] = field(default_factory=list)  # recorded: the proposal against the end


class _LastDetection:
    """The detector, remembering its last answer: the two runs of one pass ask about the same
    message one after the other, and a detection depends on the text alone."""

    __slots__ = ("_detector", "_match", "_text")

    def __init__(self, detector: HumanDetector) -> None:
        self._detector = detector
        self._text: str | None = None
        self._match: HumanRequestMatch | None = None

    def detect(self, normalized_text: str) -> HumanRequestMatch | None:
        if normalized_text != self._text:
            self._match = self._detector.detect(normalized_text)
            self._text = normalized_text
        return self._match


class _Run:
    """One engine and its bounded store over the account's records: the recorded run
    (`proposal` None) or the what-if run."""

    def __init__(self, account_id: str, detector: HumanDetector, store: SpillStore,
                 proposal: HandoffConfig | None) -> None:
        self.account_id = account_id
        self.engine = Engine(Matchers(detector))
        self.base = store
        self.what_if = WhatIf(store, account_id, proposal) if proposal is not None else None
        self.store: SpillStore | WhatIf = self.what_if or store
        self.side = Side()

    def feed(self, event: Any, in_range: bool) -> None:
        """Decide one of the account's events; count it if it is inside the range."""
        side = self.side
        if not in_range:
            side.records_before += 1
            decide(self.engine, self.store, event)
            return
        side.records_in_range += 1
        if self.what_if is not None and not self.what_if.active:
            # Before the range both runs decided alike, so this store's settings are the
            # recorded ones here.
            side.replaced = Overlay(self.base).settings(self.account_id).version
            self.what_if.active = True
        decision = decide(self.engine, self.store, event)
        if decision is None or not isinstance(event, SequencedChat):
            return
        lines = side.tally.add(decision, Overlay(self.base), self.account_id)
        if lines:
            side.outcomes.setdefault(event.record.conversation_id, []).extend(lines)

    def finish(self, raw: dict[str, Any]) -> Side:
        """The side; the recorded run adds the settings at the end and the proposal's check."""
        if self.what_if is None:
            recorded = Overlay(self.base)
            self.side.final = recorded.settings(self.account_id)
            _, errors = check_config(raw, recorded.account(self.account_id))
            self.side.errors = [str(e) for e in errors]
        return self.side


def proposal_in_force(proposal: HandoffConfig) -> HandoffConfig:
    """The proposal as saving would keep it: phrases that normalise alike kept once."""
    phrases: dict[str, str] = {}
    for phrase in proposal.custom_triggers:
        phrases.setdefault(normalize_phrase(phrase), phrase)
    return proposal.model_copy(update={"custom_triggers": list(phrases.values())})


async def _feed(consumer: AIOKafkaConsumer, source: str, spans: list[Span], account_id: str,
                runs: list[_Run], progress: Progress) -> None:
    """One pass over the spans: each of the account's events parsed once, decided by each run."""
    async for record in read_spans(consumer, source, spans, keys={account_id.encode()},
                                   progress=progress):
        event = parse_event(record.value)
        if event is None or event.account_id != account_id:
            continue
        for run in runs:
            run.feed(event, record.in_range)


PARALLEL_ENV = "HANDOFF_SIMULATE_PARALLEL"  # "1": two processes, "0": one; unset: as below


def _parallel() -> bool:
    """Two processes unless the load average fills the cores: each parses the records, so on
    a busy machine they cost more than one pass (`python -m bench --parts simulate`)."""
    chosen = os.environ.get(PARALLEL_ENV)
    if chosen in ("0", "1"):
        return chosen == "1"
    cores = len(os.sched_getaffinity(0))
    # Measured on 2 shared cores: two processes were quicker at load averages 1.4 and 3.0,
    # one pass at 3.7 to 6.5.
    return cores >= 2 and os.getloadavg()[0] < cores


async def run_simulation(settings: WorkerSettings, account_id: str, raw: dict[str, Any],
                         log_range: LogRange | None = None, progress: bool = False,
                         parallel: bool | None = None) -> Report:
    """Decide the account's recorded traffic twice, as recorded and with the proposal.

    `parallel` (default: unless the cores are busy): the what-if run in a child process, over
    the same planned offsets, while this one decides the recorded run.
    """
    log_range = log_range or LogRange()
    # Left so after the run: this process is `handoff simulate`'s own, or a test's.
    tune_gc(WHAT_IF_GC_THRESHOLD)
    proposal = HandoffConfig.model_validate(raw)
    in_force = proposal_in_force(proposal)
    # Without fork (not POSIX) both runs share one pass.
    parallel = (_parallel() if parallel is None else parallel) and hasattr(os, "fork")
    detector: HumanRequestDetector | None = None
    report = Report(account_id, log_range.describe(), proposal)
    source = settings.topic(Topic.ACCOUNT_EVENTS)
    recorded = what_if = Side()
    async with open_consumer(settings) as consumer:
        numbers = await partitions_of(consumer, source)
        home = partition_for(account_id, len(numbers))
        for only in ([home], [p for p in numbers if p != home]):
            spans = await plan(consumer, source, log_range, only)
            counter = Progress("simulate", sum(s.records for s in spans), enabled=progress)
            if detector is None:
                detector = load_detector(settings.human_request_dirs)
                # Out of the collector's way for the run, and shared with a forked child
                # page for page instead of copied by the collector's writes.
                freeze_survivors()
            child = (_start_child(settings, account_id, in_force, source, spans, detector)
                     if parallel and any(s.start < s.stop for s in spans) else None)
            try:
                with SpillStore() as recorded_store, SpillStore() as what_if_store:
                    shared = detector if child is not None else _LastDetection(detector)
                    runs = [_Run(account_id, shared, recorded_store, None)]
                    if child is None:
                        runs.append(_Run(account_id, shared, what_if_store, in_force))
                    await _feed(consumer, source, spans, account_id, runs, counter)
                    recorded = runs[0].finish(raw)
                    what_if = runs[1].finish(raw) if child is None else Side()
                if child is not None:
                    try:
                        what_if = await _child_side(child)
                    except RuntimeError as exc:
                        # The child could not run (started badly, killed): one more pass here
                        # gives the same what-if, only later.
                        log.warning("%s; deciding the what-if run in this process", exc)
                        with SpillStore() as what_if_store:
                            again = _Run(account_id, detector, what_if_store, in_force)
                            await _feed(consumer, source, spans, account_id, [again],
                                        Progress("what-if", 0, enabled=False))
                            what_if = again.finish(raw)
                    child = None
            finally:
                if child is not None:
                    _stop_child(child)
            counter.close()
            if recorded.records_in_range or recorded.records_before:
                break  # found on its own partition: the others hold other accounts
        if not (recorded.records_in_range or recorded.records_before):
            raise LookupError(f"account {account_id} has no records on {source}")
    report.records_in_range, report.records_before = (recorded.records_in_range,
                                                      recorded.records_before)
    report.recorded, report.what_if = recorded.tally, what_if.tally
    if what_if.replaced is not None:
        report.proposal = in_force
        report.versions_replaced.append(what_if.replaced)
    assert recorded.final is not None
    _finish(report, recorded.final, recorded.errors)
    report.changed = []
    for conv in sorted(recorded.outcomes.keys() | what_if.outcomes.keys()):
        a, b = recorded.outcomes.get(conv, []), what_if.outcomes.get(conv, [])
        if a != b:
            report.changed.append(Changed(conv, _classify(a, b), a, b))
    return report


# -- the what-if run in a child process -------------------------------------------------------

# As the worker's default (HANDOFF_GC_THRESHOLD): a run allocates several objects per record,
# and a fifth of a what-if process's CPU went to collecting them at Python's 700.
WHAT_IF_GC_THRESHOLD = 50_000


@dataclass
class _Child:
    pid: int
    answer: int  # the read end of the pipe the child writes its pickled answer to


def _start_child(settings: WorkerSettings, account_id: str, proposal: HandoffConfig,
                 source: str, spans: list[Span], detector: HumanRequestDetector) -> _Child:
    """Fork the what-if run over exactly these spans (planned once, so both runs read the same
    records however the log grows meanwhile). A fork inherits the imports and the detector a
    fresh interpreter spent a second on before deciding its first record."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return _Child(pid, read_end)
    # The child: it never returns into the caller's event loop, and leaves by `os._exit` so
    # that nothing of the parent's (buffers, sockets, atexit) is flushed or closed from here.
    code = 1
    try:
        os.close(read_end)
        try:
            answer: Side | str = _child_run(settings, account_id, proposal, source, spans,
                                            detector)
            code = 0
        except BaseException as exc:  # every failure is the parent's to report
            answer = f"{type(exc).__name__}: {exc}"
        with os.fdopen(write_end, "wb") as out:
            pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        os._exit(code)


def _child_run(settings: WorkerSettings, account_id: str, proposal: HandoffConfig, source: str,
               spans: list[Span], detector: HumanRequestDetector) -> Side:
    """The forked child's what-if run, on an event loop of its own (the parent's, running on
    the stack below, belongs to the parent's process: asyncio sees it as not running here)."""
    parent = os.getppid()

    async def orphaned() -> None:
        # A parent killed outright (a preview stopped at its time limit) cannot stop us.
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        os._exit(1)

    async def run() -> Side:
        watch = asyncio.get_running_loop().create_task(orphaned())
        async with open_consumer(settings) as consumer:
            await partitions_of(consumer, source)
            with SpillStore() as store:
                what_if = _Run(account_id, detector, store, proposal)
                await _feed(consumer, source, spans, account_id, [what_if],
                            Progress("what-if", 0, enabled=False))
                watch.cancel()
                return what_if.finish({})

    return asyncio.run(run())


async def _child_side(child: _Child) -> Side:
    """The child's answer, once it has exited."""

    def collect() -> tuple[bytes, int]:
        with os.fdopen(child.answer, "rb") as answer:
            out = answer.read()
        _, status = os.waitpid(child.pid, 0)
        return out, os.waitstatus_to_exitcode(status)

    out, code = await asyncio.to_thread(collect)
    try:
        answer = pickle.loads(out)  # our own child's answer, over a pipe only we hold
    except Exception:  # killed mid-write, or nothing written
        answer = None
    if isinstance(answer, str):
        raise RuntimeError(f"the what-if run failed: {answer}")
    if code != 0 or not isinstance(answer, Side):
        raise RuntimeError(f"the what-if run failed: exit status {code}")
    return answer


def _stop_child(child: _Child) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child.pid, 0)
    with contextlib.suppress(OSError):
        os.close(child.answer)


def _finish(report: Report, current: AccountSettings, errors: list[str]) -> None:
    """Compare with the settings recorded at the end; check against the directory there."""
    if current.version not in report.versions_replaced:
        report.versions_replaced.append(current.version)
    old, new = set(current.config.custom_triggers), set(report.proposal.custom_triggers)
    report.compared_with = current.version
    report.phrases_added = [p for p in report.proposal.custom_triggers if p not in old]
    report.phrases_removed = [p for p in current.config.custom_triggers if p not in new]
    report.warnings += [f"{e} (in the directory at the end of the range; simulated anyway)"
                        for e in errors]


# -- text ------------------------------------------------------------------------------------


def _describe(config: HandoffConfig) -> str:
    routing = config.routing
    if isinstance(routing, DirectRouting):
        who = ", ".join(f"{a.type} {a.id}" for a in routing.assignees) or "nobody"
        route = f"direct to {routing.destination or 'the first inbox'} [{who}]"
    else:
        route = f"workflow {routing.workflow_id} in {routing.destination}"
    return (f"process {config.process.value}, {route}, {len(config.custom_triggers)} custom "
            f"phrases, unassigned chats {config.unassigned_chat.value}")


def format_report(report: Report, list_changed: bool = False) -> str:
    r, w = report.recorded, report.what_if
    lines = [f"What-if for account {report.account_id} over {report.range}: "
             f"{report.records_in_range:,} records of the account decided twice "
             f"({report.records_before:,} before the range only rebuilt state).",
             "Proposed settings, in force for the whole range instead of recorded "
             + " to ".join(f"v{v}" for v in report.versions_replaced)
             + f" (recorded config requests are versioned but not applied): "
             f"{_describe(report.proposal)}."]
    if report.phrases_added or report.phrases_removed:
        added = ", ".join(f"'{p}'" for p in report.phrases_added) or "none"
        removed = ", ".join(f"'{p}'" for p in report.phrases_removed) or "none"
        lines.append(f"Custom phrases against recorded v{report.compared_with}: added {added}; "
                     f"removed {removed}.")
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    labels = [k for a, b in ((r.by_kind, w.by_kind), (r.by_phrase, w.by_phrase),
                             (r.by_channel, w.by_channel), (r.by_team, w.by_team),
                             (r.by_assignee, w.by_assignee)) for k in (*a, *b)]
    width = max([40, *(len(k) + 4 for k in labels)])
    lines += ["", f"{'':<{width}}{'recorded':>10}{'what-if':>10}{'change':>10}"]

    def row(label: str, a: int, b: int, indent: str = "") -> None:
        change = f"{b - a:+d}" if b != a else "0"
        lines.append(f"{indent + label:<{width}}{a:>10,}{b:>10,}{change:>10}")

    row("handoffs", r.handoffs, w.handoffs)
    row("triggers recorded only (process none)", r.recorded_only, w.recorded_only)
    row("left unassigned", r.unassigned, w.unassigned)
    row("tickets created", r.tickets, w.tickets)
    for title, a, b in (("by trigger kind", r.by_kind, w.by_kind),
                        ("by phrase", r.by_phrase, w.by_phrase),
                        ("by channel", r.by_channel, w.by_channel),
                        ("by team", r.by_team, w.by_team),
                        ("by assignee", r.by_assignee, w.by_assignee)):
        keys = sorted(set(a) | set(b), key=lambda k: (-max(a[k], b[k]), k))
        if not keys:
            continue
        lines.append(title)
        for k in keys:
            row(k, a[k], b[k], "  ")
    counts = report.changed_counts()
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    lines += ["", f"Conversations whose outcome changes: {len(report.changed)}"
              + (f" ({summary})" if summary else "")
              + ("" if list_changed or not report.changed else "; --list-changed lists them")]
    if list_changed:
        for c in report.changed:
            lines.append(f"  {c.conversation_id}: {c.kind}")
            lines.append(f"      recorded: {'; '.join(c.recorded) or 'no handoff'}")
            lines.append(f"      what-if:  {'; '.join(c.what_if) or 'no handoff'}")
    return "\n".join(lines)

