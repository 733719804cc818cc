"""Creating the contract's topics with the asked partitions, replication and compaction,
and refusing to run on topics whose partition counts the worker cannot co-partition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from handoff.config import SettingsError, WorkerSettings
from handoff.kafka_clients import client_kwargs
from schemas.topics import INPUT_TOPICS, INTERNAL_TOPICS, OUTPUT_TOPICS, SPECS, Topic
from streams.state import changelog_topic
from streams.task import store_names


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
        # The loop's stores: compacted, one partition per task (streams/state).
        compacted = {"cleanup.policy": "compact",
                     **({"min.insync.replicas": "2"} if replication >= 3 else {})}
        wanted += [NewTopic(name, num_partitions=partitions, replication_factor=replication,
                            topic_configs=compacted)
                   for name in (changelog_topic(settings.group_id, s) for s in store_names())
                   if name not in existing]
        if wanted:
            await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()


# Read whole by every worker (a global table), so its partition count does not matter.
_NOT_CO_PARTITIONED = frozenset({Topic.API_TOKENS})
CO_PARTITIONED_TOPICS: tuple[Topic, ...] = tuple(
    t for t in (*INPUT_TOPICS, *INTERNAL_TOPICS) if t not in _NOT_CO_PARTITIONED)
# Right after creating topics a broker may not list them yet, or answer LEADER_NOT_AVAILABLE.
_DESCRIBE_TIMEOUT_S = 10.0


def partitions_message(counts: Mapping[str, int | None], expected: int) -> str | None:
    """Why the worker refuses these topics ({name: partitions, None when missing}), or None."""
    wrong = {name: n for name, n in counts.items() if n is not None and n != expected}
    missing = [name for name, n in counts.items() if n is None]
    if not wrong and not missing:
        return None
    lines = [f"the worker co-partitions its input and internal topics, so each needs "
             f"HANDOFF_PARTITIONS={expected} partitions; these do not have them:"]
    lines += [f"  {name}: {n} partition{'s' if n != 1 else ''}, expected {expected}"
              for name, n in sorted(wrong.items())]
    lines += [f"  {name}: missing" for name in sorted(missing)]
    lines.append("fix:")
    if wrong:
        lines.append(f"  recreate each wrong topic with `handoff topics create --partitions "
                     f"{expected}` after deleting it, if it holds nothing you need (a topic "
                     "the broker auto-created because records were produced before the first "
                     "worker start holds only those records)"
                     + ("; the same command creates the missing ones" if missing else ""))
        existing = {n for n in counts.values() if n is not None}
        if len(existing) == 1:
            # The operator may have meant that count: then only the setting is wrong.
            (count,) = existing
            lines.append(f"  or set HANDOFF_PARTITIONS={count}, the count all of them have"
                         + (f", and create the missing ones with `handoff topics create "
                            f"--partitions {count}`" if missing else ""))
    else:
        lines.append(f"  create the missing topics with `handoff topics create --partitions "
                     f"{expected}` (or start the worker with HANDOFF_CREATE_TOPICS=true)")
    return "\n".join(lines)


def co_partitioned_names(settings: WorkerSettings) -> list[str]:
    """Every topic a task reads a partition of: the inputs, the internal logs, the changelogs."""
    return [*(settings.topic(t) for t in CO_PARTITIONED_TOPICS),
            *(changelog_topic(settings.group_id, name) for name in store_names())]


async def partition_counts(settings: WorkerSettings, topics: Iterable[Topic] | None = None,
                           timeout_s: float = _DESCRIBE_TIMEOUT_S) -> dict[str, int | None]:
    """Partitions of each topic (default: every co-partitioned one, changelogs included)
    under the settings' prefix; None for a topic that is missing."""
    names = ([settings.topic(t) for t in topics] if topics is not None
             else co_partitioned_names(settings))
    counts: dict[str, int | None] = dict.fromkeys(names)
    errors: dict[str, int] = {}
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            # A broker lists a topic created a moment ago only once its metadata caught up, so
            # a missing topic is only taken as missing when it stays so until the deadline.
            existing = set(await admin.list_topics())
            # Only listed ones are described: describing a missing one would auto-create it.
            pending = [n for n in names if counts[n] is None and n in existing]
            described = await admin.describe_topics(pending) if pending else []
            for topic in described:
                if topic["topic"] not in counts:
                    continue
                if topic["error_code"] == 0 and topic["partitions"]:
                    counts[topic["topic"]] = len(topic["partitions"])
                    errors.pop(topic["topic"], None)
                else:
                    errors[topic["topic"]] = topic["error_code"]
            if all(n is not None for n in counts.values()) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    if errors:
        raise SettingsError(f"cannot describe topics at {settings.bootstrap_servers}, "
                            f"Kafka error codes: {errors}")
    return counts


async def check_partitions(settings: WorkerSettings) -> None:
    """Raise `SettingsError` (the worker stops with the fix) unless every topic the worker
    co-partitions exists with `settings.partitions` partitions."""
    message = partitions_message(await partition_counts(settings), settings.partitions)
    if message is not None:
        raise SettingsError(message)
