"""Liveness and readiness of one worker, from Faust's own state.

Ready means: not in a rebalance, table recovery finished for the partitions this worker holds,
and at least one partition of the topics the agents read is assigned. Until then the worker
must not be sent HTTP traffic that reads tables, and a rolling upgrade must wait for it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def not_ready_reason(app: Any, source_topics: Collection[str]) -> str | None:
    """`None` when the worker is ready; otherwise why it is not, in words."""
    if getattr(app, "rebalancing", False):
        return "rebalancing: partitions are being reassigned"
    tables = app.tables
    recovery = tables.recovery
    if recovery.in_recovery or not recovery.completed.is_set() or not tables.actives_ready:
        return "table recovery in progress"
    try:
        assignment = app.consumer.assignment()
    except Exception:  # the consumer is not started yet (or is stopping)
        return "consumer not started"
    if not any(tp.topic in source_topics for tp in assignment):
        return "no partitions assigned to this worker"
    return None
