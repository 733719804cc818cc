"""Creating the contract's topics with the asked partitions, replication and compaction."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from handoff.config import WorkerSettings
from handoff.kafka_clients import client_kwargs
from schemas.topics import INPUT_TOPICS, INTERNAL_TOPICS, OUTPUT_TOPICS, SPECS, Topic


def topic_configs(topic: Topic, replication_factor: int) -> dict[str, str]:
    """Broker settings for one topic: compaction where the contract says, safe ISR."""
    configs = {"cleanup.policy": "compact" if SPECS[topic].compacted else "delete"}
    if replication_factor >= 3:
        configs["min.insync.replicas"] = "2"
    return configs


async def ensure_topics(settings: WorkerSettings, partitions: int | None = None,
                        replication_factor: int | None = None) -> list[str]:
    """Create every missing contract topic; return the names created (existing ones are kept)."""
    partitions = partitions or settings.partitions
    replication = replication_factor or settings.replication_factor
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.topic(t), num_partitions=partitions, replication_factor=replication,
                     topic_configs=topic_configs(t, replication))
            for t in (*INPUT_TOPICS, *OUTPUT_TOPICS, *INTERNAL_TOPICS)
            if settings.topic(t) not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()
