"""Faust agents: thin loops that feed records to the decision core and publish its results."""

from __future__ import annotations

from streams.app import Topology


def register(topology: Topology) -> None:
    """Attach every agent of the service to the topology's app."""
    from agents import decisions, intake

    intake.register(topology)
    decisions.register(topology)
