"""Publishing records to the contract's topics: fixtures from YAML, or lists in tests and demos."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaProducer

from handoff.config import WorkerSettings
from handoff.kafka_clients import client_kwargs
from schemas.topics import SPECS, Topic

# The YAML sections a fixture file may have, and the topic each goes to.
SECTIONS: dict[str, Topic] = {
    "directory": Topic.DIRECTORY,
    "workflows": Topic.WORKFLOWS,
    "presence": Topic.AGENT_PRESENCE,
    "config_requests": Topic.CONFIG_REQUESTS,
    "control": Topic.AGENT_CONTROL,
    "messages": Topic.CHAT_MESSAGES,
    "updates": Topic.CONVERSATION_UPDATES,
}


def record_key(topic: Topic, value: Mapping[str, Any]) -> str:
    """The key the contract says a record of this topic is sent under."""
    if topic is Topic.DIRECTORY:
        return f"{value['kind']}:{value['id']}"
    return str(value[SPECS[topic].key])


def load_yaml_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Read a fixture file; refuse sections the tool does not know, naming them."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections {sorted(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}; known: {sorted(SECTIONS)}")
    return data


async def send_records(settings: WorkerSettings,
                       records: Iterable[tuple[Topic, str | None, bytes | None]]) -> int:
    """Send (topic, key, value) records in order and wait until all are acknowledged."""
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    count = 0
    try:
        for topic, key, value in records:
            await producer.send(settings.topic(topic), value=value,
                                key=key.encode() if key is not None else None)
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


async def publish_fixture(settings: WorkerSettings,
                          data: Mapping[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Publish each section of a fixture to its topic, sections in the file's order."""
    counts: dict[str, int] = {}
    for section, values in data.items():
        # One section at a time, each acknowledged before the next: Kafka orders nothing
        # across partitions, and settings must not overtake the directory they name.
        topic = SECTIONS[section]
        await send_records(settings, [(topic, record_key(topic, value), orjson.dumps(value))
                                      for value in values or []])
        counts[topic.value] = len(values or [])
    return counts
