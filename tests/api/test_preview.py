"""The impact preview's jobs and its answer, without a broker (the simulation is stubbed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handoff.api import preview
from handoff.api.preview import PreviewError, Previews, default_range, summary
from schemas.api import PreviewBody

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
END = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

SIMULATED: dict[str, Any] = {  # the shape of `handoff simulate --json`
    "records": {"in_range": 40, "before_range": 3},
    "recorded": {"handoffs": 5, "recorded_only": 0, "unassigned": 2, "tickets": 0,
                 "by_trigger_kind": {"human_requested": 4, "custom_phrase": 1},
                 "by_assignee": {"user u-1": 2, "team t-1": 1, "(unassigned)": 2}},
    "what_if": {"handoffs": 7, "recorded_only": 0, "unassigned": 1, "tickets": 7,
                "by_trigger_kind": {"human_requested": 4, "custom_phrase": 3},
                "by_assignee": {"user u-1": 6, "(unassigned)": 1}},
    "changed": {"count": 3, "by_change": {"new handoff": 2, "different route": 1}},
    "warnings": [],
}


def test_the_answer_is_the_simulation_in_the_contracts_words() -> None:
    body = summary(SIMULATED, "acme", START, END)
    assert body == {
        "account_id": "acme",
        "range": {"from": "2026-11-24T10:00:00Z", "to": "2026-12-01T10:00:00Z", "records": 40},
        "recorded": {"handoffs": 5, "unassigned": 2, "tickets": 0,
                     "by_trigger": {"human_requested": 4, "custom_phrase": 1},
                     "by_assignee": {"u-1": 2, "t-1": 1}},
        "proposed": {"handoffs": 7, "unassigned": 1, "tickets": 7,
                     "by_trigger": {"human_requested": 4, "custom_phrase": 3},
                     "by_assignee": {"u-1": 6}},
        "changed_conversations": 3, "warnings": []}
    dumped = PreviewBody.model_validate(body).model_dump(mode="json", by_alias=True)
    assert dumped["range"] == body["range"]


def test_the_default_range_is_the_last_seven_days() -> None:
    assert default_range(END, None, None) == (END - timedelta(days=7), END)
    assert default_range(END, START, None) == (START, END)
    with pytest.raises(PreviewError) as wrong:
        default_range(END, END, START)
    assert wrong.value.status == 422


def test_a_long_preview_answers_later_and_the_worker_runs_only_a_few(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()

    async def slow(account_id: str, config: dict[str, Any], start: datetime, end: datetime
                   ) -> dict[str, Any]:
        await release.wait()
        return SIMULATED

    monkeypatch.setattr(preview, "simulate", slow)

    async def scenario() -> None:
        jobs = Previews()
        first = jobs.start("acme", {}, START, END)
        assert await jobs.wait(first, 0.05) is None  # 202: still running
        jobs.start("acme", {}, START, END)
        with pytest.raises(PreviewError) as busy:
            jobs.start("acme", {}, START, END)
        assert busy.value.status == 429
        assert jobs.get("other", first.job_id) is None  # another account's id finds nothing
        release.set()
        result = await jobs.wait(first, 1.0)
        assert result is not None and result["changed_conversations"] == 3
        assert jobs.get("acme", first.job_id) is first  # kept for the poll

    asyncio.run(scenario())


def test_a_failed_simulation_is_answered_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(*args: Any) -> dict[str, Any]:
        raise PreviewError(500, "the simulation failed: Kafka: no broker")

    monkeypatch.setattr(preview, "simulate", failing)

    async def scenario() -> None:
        jobs = Previews()
        job = jobs.start("acme", {}, START, END)
        with pytest.raises(PreviewError) as failed:
            await jobs.wait(job, 1.0)
        assert (failed.value.status, str(failed.value)) == (
            500, "the simulation failed: Kafka: no broker")

    asyncio.run(scenario())
