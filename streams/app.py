"""The Faust app for one set of settings: its topics and tables, with agents wired in.

Built by a factory rather than at import, so tests and several workers can each have their
own topic prefix and port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import ProcessingGuarantee

from handoff.config import WorkerSettings
from handoff.core.store import Table
from handoff.kafka_clients import broker_credentials
from handoff.ops.metrics import Metrics
from schemas.topics import INPUT_TOPICS, INTERNAL_TOPICS, OUTPUT_TOPICS, Topic
from streams.codecs import CODEC_NAME


@dataclass
class Topology:
    """Everything agents need: the app, the topic for each contract name, and the tables."""

    settings: WorkerSettings
    app: faust.App
    topics: dict[Topic, faust.TopicT] = field(default_factory=dict)
    tables: dict[Table, Any] = field(default_factory=dict)
    # Tables the sequencers keep to resolve an account for records that do not carry one.
    lookups: dict[str, Any] = field(default_factory=dict)
    # What the agents report to (one call per decision, one per dead letter); see handoff/ops.
    metrics: Metrics = field(default_factory=Metrics)


def create_app(settings: WorkerSettings) -> faust.App:
    """A Faust app configured from the settings (broker, guarantee, store, web server)."""
    return faust.App(
        settings.group_id,
        broker=[f"kafka://{hp}" for hp in settings.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings),  # TLS / SASL, see kafka_clients.py
        store=settings.store,
        datadir=str(settings.data_dir),
        processing_guarantee=ProcessingGuarantee(settings.processing_guarantee),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        web_port=settings.web_port or 6066,  # Faust refuses 0 even when the web is off
        web_bind=settings.web_host,
        web_enabled=settings.web_port != 0,
        web_tables_enabled=False,  # /table/<name>/<key> would serve the tables without a token
        autodiscover=False,
        # Decisions are small and many: commit often enough that a restart redoes little.
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        stream_wait_empty=False,
        producer_linger_ms=1,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=3600.0,
    )


def _table(app: faust.App, name: str, partitions: int) -> Any:
    table: Any = app.Table(name, default=None, partitions=partitions)
    # Faust picks serializers from key/value types only; ours are pydantic models, so set the
    # codec directly (before the store and changelog topic are made, which happens lazily).
    # orjson keys too: raw keys would come back from the changelog as bytes.
    table.key_serializer = CODEC_NAME
    table.value_serializer = CODEC_NAME
    return table


def build(settings: WorkerSettings, *, agents: bool = True) -> Topology:
    """Create the app, declare every contract topic and table, and register the agents."""
    app = create_app(settings)
    topology = Topology(settings=settings, app=app)
    for name in (*INPUT_TOPICS, *OUTPUT_TOPICS, *INTERNAL_TOPICS):
        topology.topics[name] = app.topic(
            settings.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            internal=name in INTERNAL_TOPICS,
        )
    for table in Table:
        topology.tables[table] = _table(app, table.value, settings.partitions)
    for lookup in ("directory-accounts", "workflow-accounts", "user-accounts", "pending-presence"):
        topology.lookups[lookup] = _table(app, lookup, settings.partitions)
    if agents:
        from agents import register
        from streams.web import register_web

        register(topology)
        register_web(topology)
    return topology
