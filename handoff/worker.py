"""Starting the Faust worker for a set of settings."""

from __future__ import annotations

import asyncio

import faust

from handoff.config import WorkerSettings
from streams.admin import ensure_topics
from streams.app import build


def run_worker(settings: WorkerSettings) -> None:
    """Create missing topics if asked, then run the worker until it is stopped."""
    if settings.create_topics:
        asyncio.run(ensure_topics(settings))
    asyncio.set_event_loop(asyncio.new_event_loop())
    topology = build(settings)
    faust.Worker(topology.app, loglevel=settings.log_level.upper()).execute_from_commandline()
