"""Prometheus metrics of one worker, in a registry of its own (several apps may share a process).

The processing loop reports to a `Metrics` object once per committed cycle for its decisions
(`observe_decisions`) and once per dead letter (`observe_dead_letter`, where the runner makes
it); consumer lag and open conversations are computed from the loop when `/metrics` is
scraped. Labels are small fixed sets (trigger kind, process, outcome, contract
topic, partition, reason class): never conversation, user or account ids.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from handoff.core.state import Phase, QueueState
from handoff.core.store import Decision, Table
from handoff.ops.logs import decisions_log, log_decision
from schemas.common import Process, TriggerKind
from schemas.internal import AccountEvent
from schemas.outputs import Assignment, ConfigChange, HandoffEvent, TicketCreated
from schemas.topics import Topic

# No `*_created` series: they double the scrape and no alert here needs them (process-wide).
disable_created_metrics()  # type: ignore[no-untyped-call]

# Dead letter reasons, from the error text the intake and decision steps give.
REASON_CLASSES = ("not_json", "missing_field", "wrong_type", "too_large", "other")
_REASON_MARKERS = (
    ("too_large", ("over the limit", "nested deeper")),
    ("not_json", ("Invalid JSON", "empty record", "JSON input should be")),
    ("missing_field", ("Field required",)),
    ("wrong_type", ("Input should be", "Input is", "should be a valid", "Extra inputs")),
)
_TOPIC_NAMES = frozenset(t.value for t in Topic)
# Seconds from a triggering message's sent_at to its assignment being published.
_ASSIGNMENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                       3600.0)
# Seconds one account event takes in the decision step (decide, queue writes and sends).
# A visitor's wait in a queue: seconds to an hour.
_QUEUE_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
_DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
OPEN_VIEWS = ("assigned", "unassigned")


def _queue_length(value: object) -> int:
    # Restored values are dicts, live ones models.
    if isinstance(value, QueueState):
        return len(value.waiting)
    if isinstance(value, dict):
        return len(value.get("waiting") or ())
    return 0


def classify_error(error: str) -> str:
    """The reason class of a dead letter's error text (one of `REASON_CLASSES`)."""
    for reason, markers in _REASON_MARKERS:
        if any(marker in error for marker in markers):
            return reason
    return "other"


def _phase_view(value: object) -> tuple[str | None, str | None]:
    """Phase and view of a conversation state, live (a model) or restored (a dict)."""
    if isinstance(value, Mapping):
        phase, view = value.get("phase"), value.get("view")
    else:
        phase, view = getattr(value, "phase", None), getattr(value, "view", None)
    return (str(phase) if phase is not None else None, str(view) if view is not None else None)


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe` of each value, with one add per bucket hit and one to the sum.

    Reaches into the client's `_sum` and `_buckets` (prometheus_client is pinned; a test
    compares the exposition with per-value observes): its `observe` takes two locks and walks
    the bounds per value, once a decision on the hot path.
    """
    if not values:
        return
    bounds = histogram._upper_bounds
    hits: dict[int, int] = {}
    for value in values:
        # The first bound at or above the value, as `observe`'s `amount <= bound` walk finds.
        i = bisect_left(bounds, value)
        hits[i] = hits.get(i, 0) + 1
    histogram._sum.inc(sum(values))
    buckets = histogram._buckets
    for i, count in hits.items():
        buckets[i].inc(count)


class StateSource(Protocol):
    """What the scrape reads from the processing loop."""

    @property
    def generation(self) -> int: ...

    def not_ready_reason(self) -> str | None: ...

    def conversations(self) -> Iterator[tuple[str, object]]: ...

    def queues(self) -> Iterator[tuple[str, object]]: ...

    def lag(self) -> Iterator[tuple[str, int, int]]: ...


class Metrics:
    """Every metric the service exports, and the hooks the loop calls."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.handoffs = Counter(
            "handoff_handoffs", "Triggers fired (handoff.events records), by trigger kind and "
            "process; process none means recorded but not handed off.",
            ["trigger", "process"], registry=r)
        self.tickets = Counter("handoff_tickets_created",
                               "Tickets created (tickets.created records).", registry=r)
        self.assignments = Counter(
            "handoff_assignments", "Assignments published, by outcome (assigned or "
            "unassigned) and mode (live or async).", ["outcome", "mode"], registry=r)
        self.time_to_assignment = Histogram(
            "handoff_time_to_assignment_seconds", "Wall-clock seconds from the triggering "
            "message's sent_at to its assignment being published.", ["outcome"],
            buckets=_ASSIGNMENT_BUCKETS, registry=r)
        self.config_changes = Counter(
            "handoff_config_changes", "Handoff settings requests decided, by outcome.",
            ["outcome"], registry=r)
        self.dead_letters = Counter(
            "handoff_dead_letters", "Records set aside on the deadletter topic, by source "
            "topic and reason class.", ["source_topic", "reason"], registry=r)
        self.decision_seconds = Histogram(
            "handoff_decision_seconds", "Seconds the decision step takes on one account "
            "event (decide, queue its writes and sends), by the event's source topic.", ["source"],
            buckets=_DECISION_BUCKETS, registry=r)
        self.reroutes = Counter(
            "handoff_reroutes", "Live conversations routed again, by reason (pickup_timeout, "
            "agent_unavailable, released).", ["reason"], registry=r)
        self.queue_assignments = Counter(
            "handoff_queue_assignments", "Visitors assigned from a destination's queue (inbox "
            "or help desk id: few per deployment, unlike conversation ids).", ["destination"],
            registry=r)
        self.queue_wait = Histogram(
            "handoff_queue_wait_seconds", "Seconds a visitor waited in a destination's queue "
            "before being assigned (event time, as decided).", ["destination"],
            buckets=_QUEUE_BUCKETS, registry=r)
        for reason in ("pickup_timeout", "agent_unavailable", "released"):
            self.reroutes.labels(reason)
        for kind in TriggerKind:
            for process in Process:
                self.handoffs.labels(kind.value, process.value)
        for outcome in ("assigned", "unassigned"):
            self.time_to_assignment.labels(outcome)
            for mode in ("live", "async"):
                self.assignments.labels(outcome, mode)
        for outcome in ("accepted", "refused"):
            self.config_changes.labels(outcome)

        # The decision timer per source: `labels()` takes a lock and builds a key per call,
        # and it ran once per decision.
        self._decision_timers: dict[str, Histogram] = {}
        # Visitors waiting per destination queue (`account|inbox` -> count) on this worker.
        self._queued: dict[str, int] = {}
        # Conversations handed off and still open on this worker's partitions: id -> view.
        # Only human-owned conversations are held, so this is as big as the humans' queue.
        self._open: dict[str, str] = {}
        self._source: StateSource | None = None
        self._seeded_at: int | None = None
        r.register(_Scraped(self))

    # -- hooks for the loop -----------------------------------------------------------------

    def observe_decision(self, event: AccountEvent, decision: Decision, seconds: float) -> None:
        """Count what one decision published; `seconds`: the time it took to decide and send."""
        self.observe_decisions(((event, decision, seconds),))

    def observe_decisions(self, decided: Iterable[tuple[AccountEvent, Decision, float]]
                          ) -> None:
        """Count what a committed cycle's decisions published, as `observe_decision` of each
        would: the loop reports once a transaction, not once a message."""
        now = 0.0
        seconds_by_source: dict[str, list[float]] = {}
        logged = decisions_log.isEnabledFor(logging.DEBUG)
        for event, decision, seconds in decided:
            if decision.emits:
                # Published at the commit: one clock reading serves the whole cycle.
                now = now or time.time()
                self._count_emits(decision, now)
            for write in decision.writes:
                if write.table is Table.QUEUES:
                    self._queued[write.key] = _queue_length(write.value)
                elif write.table is Table.CONVERSATIONS:
                    phase, view = _phase_view(write.value)
                    if phase == Phase.HANDED_OFF and view in OPEN_VIEWS:
                        self._open[write.key] = view
                    else:
                        self._open.pop(write.key, None)
            found = seconds_by_source.get(event.source)
            if found is None:
                seconds_by_source[event.source] = [seconds]
            else:
                found.append(seconds)
            if logged:
                log_decision(event, decision, seconds)
        for source, values in seconds_by_source.items():
            timer = self._decision_timers.get(source)
            if timer is None:
                timer = self._decision_timers[source] = self.decision_seconds.labels(source)
            observe_all(timer, values)

    def _count_emits(self, decision: Decision, now: float) -> None:
        for emit in decision.emits:
            value = emit.value
            if isinstance(value, HandoffEvent):
                self.handoffs.labels(value.trigger.kind.value, value.process.value).inc()
            elif isinstance(value, Assignment):
                outcome = "assigned" if value.assignee is not None else "unassigned"
                self.assignments.labels(outcome, value.mode).inc()
                if value.reason == "queue":
                    destination = value.inbox_id or ""
                    self.queue_assignments.labels(destination).inc()
                    self.queue_wait.labels(destination).observe(value.waited_s or 0.0)
                elif value.reason != "handoff":
                    self.reroutes.labels(value.reason).inc()
                self.time_to_assignment.labels(outcome).observe(
                    max(0.0, now - value.occurred_at.timestamp()))
            elif isinstance(value, TicketCreated):
                self.tickets.inc()
            elif isinstance(value, ConfigChange):
                self.config_changes.labels("accepted" if value.accepted else "refused").inc()

    def observe_dead_letter(self, source_topic: str, error: str) -> None:
        """Count one record set aside on the dead letter topic."""
        source = source_topic if source_topic in _TOPIC_NAMES else "other"
        self.dead_letters.labels(source, classify_error(error)).inc()

    # -- wiring -----------------------------------------------------------------------------

    def bind(self, source: StateSource) -> None:
        """Give the scrape-time metrics the loop whose state and lag they report."""
        self._source = source

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape body and its content type, in the format the scraper asked for."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    # -- computed on scrape -----------------------------------------------------------------

    def open_conversations(self) -> dict[str, int]:
        """Open handed-off conversations on this worker's partitions, by view."""
        self._maybe_reseed()
        counts = dict.fromkeys(OPEN_VIEWS, 0)
        for view in self._open.values():
            counts[view] += 1
        return counts

    def _maybe_reseed(self) -> None:
        # After each rebalance (and at start) the stores hold the truth for the tasks this
        # worker now owns: count from them once, then follow the decisions.
        source = self._source
        if source is None:
            return
        generation = source.generation
        if generation == self._seeded_at or source.not_ready_reason() is not None:
            return
        fresh: dict[str, str] = {}
        for key, value in source.conversations():
            phase, view = _phase_view(value)
            if phase == Phase.HANDED_OFF and view in OPEN_VIEWS:
                fresh[str(key)] = view
        self._open = fresh
        self._queued = {str(key): _queue_length(value) for key, value in source.queues()}
        self._seeded_at = generation

    def queue_lengths(self) -> dict[str, int]:
        """Visitors waiting per destination (inbox or help desk id) on this worker's
        partitions; no account ids in labels, so destinations of two accounts add up."""
        self._maybe_reseed()
        totals: dict[str, int] = {}
        for key, count in self._queued.items():
            destination = key.partition("|")[2]
            totals[destination] = totals.get(destination, 0) + count
        return totals

    def consumer_lag(self) -> Iterator[tuple[str, int, int]]:
        """(contract topic, partition, lag) for each partition the loop reads."""
        if self._source is not None:
            yield from self._source.lag()


class _Scraped(Collector):
    """The gauges computed from the app's state when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return [
            GaugeMetricFamily("handoff_open_conversations", "", labels=["view"]),
            GaugeMetricFamily("handoff_consumer_lag", "", labels=["topic", "partition"]),
            GaugeMetricFamily("handoff_queue_length", "", labels=["destination"]),
        ]

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        open_family = GaugeMetricFamily(
            "handoff_open_conversations", "Conversations handed off to humans and still open, "
            "on the partitions this worker holds, by view.", labels=["view"])
        for view, count in m.open_conversations().items():
            open_family.add_metric([view], count)
        lag = GaugeMetricFamily(
            "handoff_consumer_lag", "Records not yet committed behind the high watermark, per "
            "partition of the topics the loop reads.", labels=["topic", "partition"])
        for topic, partition, behind in m.consumer_lag():
            lag.add_metric([topic, str(partition)], behind)
        queued = GaugeMetricFamily(
            "handoff_queue_length", "Visitors waiting in each destination's queue (inbox or "
            "help desk), on the partitions this worker holds.", labels=["destination"])
        for destination, count in sorted(m.queue_lengths().items()):
            queued.add_metric([destination], count)
        return [open_family, lag, queued]
