"""The worker's parts for one set of settings: the Faust app around the processing loop.

Faust runs the worker's lifecycle, web server (settings API and page, metrics, health) and
timers; it reads no topic itself. The hot path is `streams/loop.py`, hosted as a service.
Built by a factory rather than at import, so tests and several workers can each have their
own topic prefix and port. Web pages are attached afterwards by `streams/web.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import faust
from faust.app.base import BootStrategy

from handoff.config import WorkerSettings
from handoff.ops.metrics import Metrics
from streams.loop import ProcessingLoop


@dataclass
class Topology:
    """Everything the web pages need: the settings, the Faust app, the loop and the metrics."""

    settings: WorkerSettings
    app: faust.App
    loop: ProcessingLoop
    metrics: Metrics


class _WebOnly(BootStrategy):
    """Faust without its Kafka consumer and producer: the loop owns every Kafka client."""

    enable_kafka = False


def canonical_url(settings: WorkerSettings) -> str:
    """Where other workers reach this one: NODE_CANONICAL_URL, else the bound host and port."""
    explicit = os.environ.get("NODE_CANONICAL_URL")
    if explicit:
        return explicit.rstrip("/")
    host = settings.web_host
    if host in ("0.0.0.0", "::", ""):
        import socket

        host = socket.gethostname()
    return f"http://{host}:{settings.web_port}"


def create_app(settings: WorkerSettings) -> faust.App:
    """A Faust app for the web server and lifecycle only."""
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{hp}" for hp in settings.bootstrap_servers.split(",")],
        datadir=str(settings.data_dir),
        web_port=settings.web_port or 6066,  # Faust refuses 0 even when the web is off
        web_bind=settings.web_host,
        web_enabled=settings.web_port != 0,
        web_tables_enabled=False,
        canonical_url=canonical_url(settings),
        autodiscover=False,
    )
    app.boot_strategy = _WebOnly(app, enable_web=settings.web_port != 0)
    return app


def build(settings: WorkerSettings) -> Topology:
    """The app with the processing loop registered as one of its services."""
    app = create_app(settings)
    metrics = Metrics()
    loop = ProcessingLoop(settings, metrics, canonical_url(settings))

    @app.service
    class Hosted(faust.Service):
        """Starts and stops the loop with the worker."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.add_dependency(loop)

    del Hosted
    return Topology(settings=settings, app=app, loop=loop, metrics=metrics)
