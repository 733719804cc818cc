"""The operations pages on the worker's web server: `/metrics`, `/health/live`, `/health/ready`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust import web

from handoff.ops.health import not_ready_reason

if TYPE_CHECKING:
    from streams.topology import Topology


def register_ops_pages(topology: Topology) -> None:
    """Bind the metrics to the app and attach the three pages."""
    app = topology.app
    metrics = topology.metrics
    loop = topology.loop
    metrics.bind(loop)

    @app.page("/metrics", name="ops-metrics")
    async def scrape(self: web.View, request: web.Request) -> web.Response:
        body, content_type = metrics.exposition(_header(request, "Accept"))
        return self.bytes(body, headers={"Content-Type": content_type})

    @app.page("/health/live", name="ops-live")
    async def live(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "live"})

    @app.page("/health/ready", name="ops-ready")
    async def ready(self: web.View, request: web.Request) -> web.Response:
        reason = not_ready_reason(loop)
        if reason is None:
            return self.json({"status": "ready"})
        return self.json({"status": "not ready", "reason": reason}, status=503)


def _header(request: web.Request, name: str) -> str | None:
    headers: Any = getattr(request, "headers", None)
    value = headers.get(name) if headers is not None else None
    return str(value) if value is not None else None
