"""Liveness and readiness of one worker, from the processing loop's own state.

Ready means: not in a rebalance, every task this worker holds restored, and at least one task
held. Until then the worker must not be sent HTTP traffic that reads state, and a rolling
upgrade must wait for it. The loop says why in words (`ProcessingLoop.not_ready_reason`).
"""

from __future__ import annotations

from typing import Protocol


class Readiness(Protocol):
    def not_ready_reason(self) -> str | None: ...


def not_ready_reason(loop: Readiness) -> str | None:
    """`None` when the worker is ready; otherwise why it is not, in words."""
    return loop.not_ready_reason()
