"""The worker's web server (Faust's own): each feature registers its pages here."""

from __future__ import annotations

from streams.topology import Topology


def register_web(topology: Topology) -> None:
    """Attach every page and endpoint of the service to the topology's app."""
    # Operations (metrics, health) and the settings API register themselves here, one call each.
    from handoff.ops.web import register_ops_pages
    from streams.settings_api import register_settings_api

    register_ops_pages(topology)
    register_settings_api(topology)
