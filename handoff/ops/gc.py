"""Garbage collection for long passes over many records: rarer, and never over what lives on.

Python collects its young generation every 700 allocations and, every so often, walks every
object the process holds. A worker holding state, or a what-if run holding the human-request
detector (tens of megabytes of automaton), spent a fifth to a third of its CPU there
(README, "Performance"), on objects that live until the process ends.
"""

from __future__ import annotations

import gc


def tune_gc(threshold: int) -> None:
    """Collect young objects every `threshold` allocations instead of 700 (0 keeps Python's)."""
    if threshold > 0:
        gc.set_threshold(threshold, 20, 100)


def freeze_survivors() -> None:
    """Move every object alive now out of collection for good: what a long run loaded before
    its pass (the detector, restored state) lives as long as the process."""
    gc.freeze()
