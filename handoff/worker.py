"""Starting the worker for a set of settings: checks first, then the app with its loop."""

from __future__ import annotations

import asyncio

import faust

from handoff.config import WorkerSettings
from handoff.kafka_clients import check_connection
from handoff.ops.logs import configure_logging, worker_options
from streams.admin import check_partitions, ensure_topics
from streams.topology import build
from streams.web import register_web


def run_worker(settings: WorkerSettings) -> None:
    """Create missing topics if asked, then run the worker until it is stopped."""
    configure_logging(settings)
    # A wrong password or address stops here with the broker's reason, not deep inside Faust.
    asyncio.run(check_connection(settings))
    if settings.create_topics:
        asyncio.run(ensure_topics(settings))
    asyncio.run(check_partitions(settings))
    asyncio.set_event_loop(asyncio.new_event_loop())
    topology = build(settings)
    register_web(topology)
    faust.Worker(topology.app, **worker_options(settings)).execute_from_commandline()
