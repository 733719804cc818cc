"""Metrics and readiness without a broker: the pure core's decisions, fake Faust state."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from handoff.config import WorkerSettings
from handoff.core.state import ConversationState, Phase
from handoff.ops.health import not_ready_reason
from handoff.ops.logs import JsonFormatter, log_decision
from handoff.ops.metrics import Metrics, classify_error
from schemas.inputs import ChatMessage
from steps.deadletter import describe
from streams.loop import ProcessingLoop
from streams.state import MemoryStore, json_codec
from tests.builders import chat, config, inbox, presence, tick, update, user
from tests.core.harness import Run

HUMAN = "I want to talk to a human"
DIRECT = {"process": "live",
          "routing": {"mode": "direct", "destination": "support",
                      "assignees": [{"type": "user", "id": "u-1"}]}}


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def run_observed(metrics: Metrics, *events: Any
                 ) -> list[tuple[str, dict[str, Any]]]:
    """Decide each event as the agent does, reporting each decision; return the emits."""
    run = Run()
    out: list[tuple[str, dict[str, Any]]] = []
    for event in events:
        decision = run.engine.decide(run.store, event)
        run.store.apply(decision.writes)
        metrics.observe_decision(event, decision, 0.0)
        out += [(str(e.topic), e.value.model_dump(mode="json")) for e in decision.emits]
    return out


def test_counters_match_what_the_decisions_published() -> None:
    metrics = Metrics()
    events = [
        inbox("support"), user("u-1"), presence("u-1"),
        user("ed", permissions=("customer_agent.edit",)),
        config("cfg-0", DIRECT, actor="u-1"),  # refused: no permission
        config("cfg-1", DIRECT, actor="ed"),
        chat("m-1", HUMAN, conversation="c-1"),            # assigned to u-1
        # u-1 had not accepted c-1: it is routed again (v1.1), to nobody: unassigned.
        presence("u-1", "offline", at="2026-11-26T10:00:01Z"),
        chat("m-2", HUMAN, conversation="c-2"),            # nobody available: unassigned
        chat("m-3", "hello", conversation="c-3"),          # no trigger
        update("up-1", "close", conversation="c-1"),
    ]
    out = run_observed(metrics, *events)

    handoffs = Counter((v["trigger"]["kind"], v["process"]) for t, v in out if t == "handoff.events")
    assert handoffs == {("human_requested", "live"): 2}
    assert value(metrics, "handoff_handoffs_total", trigger="human_requested", process="live") == 2
    assert value(metrics, "handoff_handoffs_total", trigger="no_answer", process="live") == 0
    outcomes = Counter("assigned" if v["assignee"] else "unassigned"
                       for t, v in out if t == "assignments")
    assert outcomes == {"assigned": 1, "unassigned": 2}
    for outcome, count in outcomes.items():
        assert value(metrics, "handoff_assignments_total", outcome=outcome, mode="live") == count
        assert value(metrics, "handoff_time_to_assignment_seconds_count",
                     outcome=outcome) == count
    assert value(metrics, "handoff_config_changes_total", outcome="accepted") == 1
    assert value(metrics, "handoff_config_changes_total", outcome="refused") == 1
    assert value(metrics, "handoff_tickets_created_total") == 0
    # c-1 was closed; c-2 waits unassigned.
    assert metrics.open_conversations() == {"assigned": 0, "unassigned": 1}
    assert sum(value(metrics, "handoff_decision_seconds_count", source=s)
               for s in ("directory", "agent.presence", "handoff.config.requests",
                         "chat.messages", "conversation.updates")) == len(events)
    assert value(metrics, "handoff_open_conversations", view="unassigned") == 1


def test_time_to_assignment_is_measured_from_the_message_sent_at() -> None:
    metrics = Metrics()
    run_observed(metrics, inbox("support"), chat("m-1", HUMAN, at="2020-01-01T00:00:00Z"))
    seconds = value(metrics, "handoff_time_to_assignment_seconds_sum", outcome="unassigned")
    assert seconds > 3 * 365 * 24 * 3600
    assert value(metrics, "handoff_time_to_assignment_seconds_bucket", outcome="unassigned",
                 le="3600.0") == 0


def _state(cid: str, phase: Phase, view: str) -> dict[str, Any]:
    return ConversationState(conversation_id=cid, account_id="acme", channel="chat",
                             phase=phase, view=view).model_dump(mode="json")


class FakeConsumer:
    def __init__(self, highwaters: dict[Any, int | None]) -> None:
        self.highwaters = highwaters

    def highwater(self, tp: Any) -> int | None:
        return self.highwaters.get(tp)


def a_loop() -> ProcessingLoop:
    settings = WorkerSettings(topic_prefix="p.", partitions=2)  # type: ignore[call-arg]
    return ProcessingLoop(settings, Metrics(), "http://worker-a:6066")


def held_task(partition: int, committed: dict[TopicPartition, int] | None = None,
              conversations: dict[str, Any] | None = None) -> Any:
    """What the loop reads of a task it holds (no producer or broker needed)."""
    store = MemoryStore("conversations", partition, json_codec())
    store.write(conversations or {}, None)
    return SimpleNamespace(partition=partition, ready=True, committed=dict(committed or {}),
                           stores={"conversations": store,
                                   "queues": MemoryStore("queues", partition, json_codec())})


def test_readiness_says_why_the_loop_is_not_ready() -> None:
    loop = a_loop()
    assert loop.not_ready_reason() == "the processing loop is starting"
    loop.running = True
    assert loop.not_ready_reason() == "rebalancing: partitions are being reassigned"
    loop.rebalancing = False
    assert loop.not_ready_reason() == "no partitions assigned to this worker"
    loop.restoring[1] = SimpleNamespace()  # type: ignore[assignment]
    assert loop.not_ready_reason() == "restoring state for tasks [1]"
    loop.restoring.clear()
    loop.tasks[0] = held_task(0)
    assert not_ready_reason(loop) is None


def test_consumer_lag_per_task_input_from_the_committed_offsets() -> None:
    loop = a_loop()
    chat0, log0 = TopicPartition("p.chat.messages", 0), TopicPartition("p.handoff.account-events", 0)
    loop.consumer = FakeConsumer({chat0: 10, log0: 4})  # type: ignore[assignment]
    loop.tasks[0] = held_task(0, committed={chat0: 7, log0: 4})
    metrics = loop.metrics
    metrics.bind(loop)
    assert sorted(metrics.consumer_lag()) == [("chat.messages", 0, 3),
                                              ("handoff.account-events", 0, 0)]
    assert value(metrics, "handoff_consumer_lag", topic="chat.messages", partition="0") == 3


def test_open_conversations_are_recounted_from_the_stores_after_a_rebalance() -> None:
    loop = a_loop()
    loop.running, loop.rebalancing = True, False
    conversations = {"c-1": _state("c-1", Phase.HANDED_OFF, "assigned"),
                     "c-2": _state("c-2", Phase.HANDED_OFF, "unassigned"),
                     "c-3": _state("c-3", Phase.CLOSED, "unassigned"),
                     "c-4": _state("c-4", Phase.BOT, "bot")}
    metrics = loop.metrics
    metrics.bind(loop)
    loop.restoring[0] = SimpleNamespace()  # type: ignore[assignment]
    loop.tasks[0] = held_task(0, conversations=conversations)
    assert metrics.open_conversations() == {"assigned": 0, "unassigned": 0}  # not ready: wait
    loop.restoring.clear()
    assert metrics.open_conversations() == {"assigned": 1, "unassigned": 1}
    loop.tasks[1] = held_task(1, conversations={"c-5": _state("c-5", Phase.HANDED_OFF,
                                                              "assigned")})
    assert metrics.open_conversations() == {"assigned": 1, "unassigned": 1}  # same generation
    loop.assignor.generation += 1
    assert metrics.open_conversations() == {"assigned": 2, "unassigned": 1}


def _error(raw: bytes) -> str:
    try:
        ChatMessage.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        return describe(exc)
    raise AssertionError("valid")


def test_dead_letter_reasons_fall_in_a_small_fixed_set() -> None:
    ok = orjson.loads(orjson.dumps(chat("m-1").record.model_dump(mode="json")))
    assert classify_error(_error(b"\xff not json")) == "not_json"
    assert classify_error(_error(b"[1, 2")) == "not_json"
    assert classify_error(_error(orjson.dumps({k: v for k, v in ok.items()
                                               if k != "conversation_id"}))) == "missing_field"
    assert classify_error(_error(orjson.dumps({**ok, "text": 5}))) == "wrong_type"
    assert classify_error(_error(orjson.dumps({**ok, "channel": "pigeon"}))) == "wrong_type"
    assert classify_error("record is 300000 bytes, over the limit of 262144 "
                          "(HANDOFF_MAX_RECORD_BYTES)") == "too_large"
    assert classify_error("empty record (no value)") == "not_json"
    assert classify_error("decision failed: KeyError: 'x'") == "other"


def test_scrape_is_prometheus_text_without_ids_in_labels() -> None:
    metrics = Metrics()
    run_observed(metrics, inbox("support"), chat("m-1", HUMAN, conversation="c-secret-42"))
    body, content_type = metrics.exposition(None)
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert 'handoff_handoffs_total{process="live",trigger="human_requested"} 1.0' in text
    assert "c-secret-42" not in text and "acme" not in text
    assert "handoff_handoffs_created" not in text  # no *_created series
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_one_debug_line_per_decision_with_the_event_id_and_no_text(
        caplog: pytest.LogCaptureFixture) -> None:
    run = Run()
    event = chat("m-77", "my card number is 4111 and I want a human", conversation="c-1")
    run.feed(inbox("support"))
    decision = run.engine.decide(run.store, event)
    with caplog.at_level(logging.INFO, logger="handoff.decisions"):
        log_decision(event, decision, 0.001)
    assert not caplog.records
    with caplog.at_level(logging.DEBUG, logger="handoff.decisions"):
        log_decision(event, decision, 0.001)
    [record] = caplog.records
    line = orjson.loads(JsonFormatter().format(record))
    assert line["level"] == "debug" and line["event_id"] == "m-77"
    assert (line["topic"], line["partition"]) == ("chat.messages", 0)
    assert line["emitted"]["handoff.events"] == 1
    assert "4111" not in orjson.dumps(line).decode()


def test_json_formatter_writes_one_object_per_line_with_extra_fields() -> None:
    record = logging.LogRecord("agents.intake", logging.WARNING, __file__, 1,
                               "dead-lettered %s", ("chat.messages[0]@3",), None)
    record.event_id = "deadletter-1"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text  # one line, even with a traceback
    line = orjson.loads(text)
    assert line["message"] == "dead-lettered chat.messages[0]@3"
    assert line["event_id"] == "deadletter-1" and line["level"] == "warning"
    assert "ValueError: boom" in line["exception"]
    assert line["ts"].endswith("Z")


def test_queue_length_wait_and_reroutes_follow_the_decisions() -> None:
    metrics = Metrics()
    queued = {**DIRECT, "assign_when_available": True, "pickup_timeout_s": 30,
              "routing": {**DIRECT["routing"],
                          "assignees": [{"type": "user", "id": "u-1"},
                                        {"type": "user", "id": "u-2"}]}}
    run_observed(metrics, inbox("support"), user("u-1"), user("u-2"),
                 user("ed", permissions=("customer_agent.edit",)),
                 config("cfg-1", queued, actor="ed"),
                 chat("m-1", HUMAN, conversation="c-1"), chat("m-2", HUMAN, conversation="c-2"),
                 presence("u-1", at="2026-11-26T10:00:20Z", max_open=1),  # takes c-1
                 # u-1 lets c-1 time out: it goes back to the queue, u-1 takes c-2 instead.
                 tick("2026-11-26T10:01:00Z"))
    assert value(metrics, "handoff_queue_assignments_total", destination="support") == 2
    assert value(metrics, "handoff_queue_wait_seconds_count", destination="support") == 2
    assert value(metrics, "handoff_queue_wait_seconds_sum", destination="support") == 20 + 60
    assert value(metrics, "handoff_reroutes_total", reason="pickup_timeout") == 1
    assert value(metrics, "handoff_reroutes_total", reason="released") == 0
    assert metrics.queue_lengths() == {"support": 1}
    body, _ = metrics.exposition(None)
    assert 'handoff_queue_length{destination="support"} 1.0' in body.decode()


def _exposition(metrics: Metrics) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    # Time to assignment reads the wall clock at report time: the one series left out.
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                  for family in metrics.registry.collect() for s in family.samples
                  if not s.name.startswith("handoff_time_to_assignment"))


def test_a_cycles_decisions_reported_at_once_count_as_one_report_each() -> None:
    # The loop reports a committed cycle's decisions in one call: every series (the decision
    # timer's buckets and sum included) must read as if each had been reported alone.
    events = [inbox("support"), user("u-1"), presence("u-1"), config("cfg-1", DIRECT),
              chat("m-1", HUMAN, conversation="c-1"), chat("m-2", "hello", conversation="c-2"),
              chat("m-3", HUMAN, conversation="c-3"), update("up-1", "close", conversation="c-1")]
    # Dyadic durations add up exactly in any order; 0.0005 and 5.0 sit on and past bounds.
    seconds = [0.0005, 0.0009765625, 0.25, 5.0, 0.0, 0.5, 0.001953125, 2.5]
    run = Run()
    decided = []
    for event in events:
        decision = run.engine.decide(run.store, event)
        run.store.apply(decision.writes)
        decided.append((event, decision))
    one_by_one, at_once = Metrics(), Metrics()
    for (event, decision), took in zip(decided, seconds, strict=True):
        one_by_one.observe_decision(event, decision, took)
    at_once.observe_decisions([(e, d, s) for (e, d), s in zip(decided, seconds, strict=True)])
    assert _exposition(at_once) == _exposition(one_by_one)
    assert value(at_once, "handoff_decision_seconds_count", source="chat.messages") == 3
    assert value(at_once, "handoff_decision_seconds_bucket", source="chat.messages",
                 le="0.001") == 1
    assert at_once.open_conversations() == one_by_one.open_conversations()


def test_observing_in_bulk_fills_the_buckets_as_observing_each_value() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from handoff.ops.metrics import observe_all
    registry = CollectorRegistry()
    each = Histogram("each", "", buckets=(0.001, 0.01, 1.0), registry=registry)
    bulk = Histogram("bulk", "", buckets=(0.001, 0.01, 1.0), registry=registry)
    values = [0.0, 0.001, 0.0015, 0.01, 0.5, 1.0, 1.5, 1e9, -1.0, 0.001]
    for v in values:
        each.observe(v)
    observe_all(bulk, values)
    observe_all(bulk, [])
    def samples(name: str) -> dict[tuple[str, str], float]:
        return {(s.name.removeprefix(name), s.labels.get("le", "")): s.value
                for family in registry.collect() if family.name == name
                for s in family.samples}

    assert samples("bulk") == samples("each")
    assert samples("bulk")[("_bucket", "0.001")] == 4  # -1, 0, and 0.001 twice (le is <=)
