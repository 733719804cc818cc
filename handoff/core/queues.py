"""The queue's arithmetic: a visitor's wait estimate and the place-in-line message.

Both are pure functions of the queue's recorded pickups and the event's time, so replay and
what-if tell the visitor the same sentence.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

# Pickups older than this say nothing about how fast the queue moves now.
ESTIMATE_WINDOW = timedelta(hours=1)
# How many recent pickups a queue remembers for the estimate.
RECENT_PICKUPS = 10

_CLAUSE_SEPARATORS = ",;—–"
# A full stop ends a sentence only before the end or a capital ("ca. 5 min" does not).
_SENTENCE_END = re.compile(r"[.!?](?=\s*$|\s+[^\W\d_a-z])")


def wait_minutes(pickups: tuple[datetime, ...], at: datetime, position: int) -> int | None:
    """Minutes the visitor at `position` may wait, or None without enough recent data.

    The queue's pace is the mean time between its recent pickups (at least two within the last
    hour); the visitor waits about `position` such intervals (Little's law for a queue served in
    order), rounded up to whole minutes and never shown as 0.
    """
    recent = [t for t in pickups if at - ESTIMATE_WINDOW <= t <= at]
    if len(recent) < 2:
        return None
    interval = (recent[-1] - recent[0]).total_seconds() / (len(recent) - 1)
    return max(1, math.ceil(position * interval / 60))


def queue_message(template: str, position: int, minutes: int | None) -> str:
    """The place-in-line sentence: `{position}` filled in; `{wait_minutes}` filled in, or its
    clause left out when there is no estimate (never a made-up number)."""
    text = template
    if "{wait_minutes}" in text:
        text = (text.replace("{wait_minutes}", str(minutes)) if minutes is not None
                else _without_wait_clause(text))
    return text.replace("{position}", str(position))


def _without_wait_clause(text: str) -> str:
    """`text` without the part that holds `{wait_minutes}`: its parenthesis, else its clause
    within the sentence, else the whole sentence."""
    while (i := text.find("{wait_minutes}")) >= 0:
        end_of_placeholder = i + len("{wait_minutes}")
        opened, closed = text.rfind("(", 0, i), text.find(")", end_of_placeholder)
        if opened >= 0 and ")" not in text[opened:i] and closed >= 0:
            text = text[:opened].rstrip() + text[closed + 1:]
            continue
        marks = [m.start() for m in _SENTENCE_END.finditer(text)]
        start = max((j for j in marks if j < i), default=-1) + 1
        end = min((j for j in marks if j >= end_of_placeholder), default=len(text))
        before = max((text.rfind(c, start, i) for c in _CLAUSE_SEPARATORS), default=-1)
        after = [j for j in (text.find(c, end_of_placeholder, end)
                             for c in _CLAUSE_SEPARATORS) if j >= 0]
        if before >= 0:  # ", about {wait_minutes} minutes" up to the next separator or the end
            text = text[:before] + text[min(after) if after else end:]
        elif after:  # the sentence's first clause: drop it and its separator
            rest = text[min(after) + 1:].lstrip()
            text = text[:start] + (" " if start else "") + rest[:1].upper() + rest[1:]
        else:  # the sentence is about the wait only
            text = text[:start] + text[end + 1:]
    return re.sub(r"\s{2,}", " ", text).strip()
