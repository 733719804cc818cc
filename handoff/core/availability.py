"""Who can take a conversation now: presence, capacity and team business hours.

"Now" is always the triggering event's time, never the clock, so replay answers the same.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handoff.core.state import AgentState
from schemas.inputs import DirectoryTeam, PresenceStatus

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _clock(text: str) -> time:
    # "24:00" closes a window at midnight.
    return time.max if text == "24:00" else time.fromisoformat(text)


def team_open(team: DirectoryTeam, at: datetime) -> bool:
    """Whether the team is inside its business hours (and not on a holiday) at `at`."""
    zone = _zone(team.timezone)
    local = at.astimezone(zone) if zone is not None else at
    if local.date().isoformat() in team.holidays:
        return False
    if team.business_hours is None:
        return True
    day = _WEEKDAYS[local.weekday()]
    yesterday = _WEEKDAYS[(local - timedelta(days=1)).weekday()]
    now = local.time().replace(tzinfo=None)
    for window in team.business_hours:
        start, end = _clock(window.start), _clock(window.end)
        if start < end:
            if day in window.days and start <= now < end:
                return True
        # A window that ends before it starts runs past midnight into the next day.
        elif (day in window.days and now >= start) or (yesterday in window.days and now < end):
            return True
    return False


def agent_unavailable_reason(agent: AgentState) -> str | None:
    """Why a user cannot take a live conversation now, or None when they can."""
    if agent.status is not PresenceStatus.AVAILABLE:
        return agent.status.value if agent.presence_at is not None else "no presence"
    if agent.at_capacity:
        return f"at capacity {len(agent.open_conversations)}/{agent.max_open_conversations}"
    return None
