"""A deployment the worker cannot run is refused at start with the fix, not crash-looped.

The case met in practice: records produced before the first worker start made the broker
auto-create 1-partition input topics, and Faust then logged `PartitionsMismatch` forever.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from handoff import localkafka
from handoff.config import SettingsError, WorkerSettings
from handoff.kafka_clients import client_kwargs
from schemas.topics import INPUT_TOPICS, INTERNAL_TOPICS, Topic
from streams.admin import (
    CO_PARTITIONED_TOPICS,
    check_partitions,
    co_partitioned_names,
    ensure_topics,
    partition_counts,
    partitions_message,
)
from tests.kafka_support import REPO, Deployment, topic_names

needs_local_broker = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("mvn") is None,
    reason="the local Kafka broker needs java and mvn on PATH")


# -- the message, without a broker ------------------------------------------------------------

def test_the_checked_topics_are_the_read_ones_except_the_tokens() -> None:
    assert set(CO_PARTITIONED_TOPICS) == {*INPUT_TOPICS, *INTERNAL_TOPICS} - {Topic.API_TOKENS}


def test_no_message_when_every_topic_has_the_expected_count() -> None:
    assert partitions_message({"p.chat.messages": 4, "p.directory": 4}, 4) is None


def test_the_message_names_each_wrong_topic_its_count_and_both_fixes() -> None:
    text = partitions_message({"p.chat.messages": 1, "p.directory": 1,
                               "p.handoff.account-events": 4}, 4)
    assert text is not None
    assert "p.chat.messages: 1 partition, expected 4" in text
    assert "p.directory: 1 partition, expected 4" in text
    assert "p.handoff.account-events" not in text
    assert "`handoff topics create --partitions 4`" in text and "delet" in text
    # Not all topics agree (1 and 4), so changing the setting alone would not help.
    assert "HANDOFF_PARTITIONS=1" not in text


def test_when_all_topics_agree_the_message_offers_that_count_as_the_setting() -> None:
    text = partitions_message({"p.chat.messages": 8, "p.directory": 8}, 4)
    assert text is not None
    assert "p.chat.messages: 8 partitions, expected 4" in text
    assert "HANDOFF_PARTITIONS=8" in text


def test_missing_topics_are_named_with_topics_create_as_the_fix() -> None:
    text = partitions_message({"p.chat.messages": 4, "p.directory": None}, 4)
    assert text is not None
    assert "p.directory: missing" in text
    assert "p.chat.messages" not in text
    assert "`handoff topics create --partitions 4`" in text


# -- through the broker -----------------------------------------------------------------------

async def _create(settings: WorkerSettings, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1)])
    finally:
        await admin.close()



@pytest.mark.kafka
def test_a_worker_on_a_1_partition_input_topic_stops_with_the_fix(kafka_bootstrap: str,
                                                                  tmp_path: Path) -> None:
    dep = Deployment(kafka_bootstrap, tmp_path, partitions=4)
    wrong = dep.settings.topic(Topic.CHAT_MESSAGES)
    asyncio.run(_create(dep.settings, wrong, 1))
    proc = subprocess.run([sys.executable, "-m", "handoff.cli", "worker"], cwd=REPO,
                          env={**dep.env, "HANDOFF_WEB_PORT": "0"}, capture_output=True,
                          text=True, timeout=90, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert f"{wrong}: 1 partition, expected 4" in output, output[-3000:]
    assert "handoff topics create --partitions 4" in output
    # The other topics were created by this start with 4 partitions: only the wrong one is named.
    assert output.count(", expected 4") == 1 and ": missing" not in output


@pytest.mark.kafka
def test_missing_topics_are_refused_and_not_auto_created_by_the_check(kafka_bootstrap: str,
                                                                      tmp_path: Path) -> None:
    dep = Deployment(kafka_bootstrap, tmp_path, partitions=2)
    names = co_partitioned_names(dep.settings)
    assert any(name.endswith("-conversations-changelog") for name in names)
    with pytest.raises(SettingsError) as refused:
        asyncio.run(check_partitions(dep.settings))
    assert all(f"{name}: missing" in str(refused.value) for name in names)
    # Describing a missing topic would make an auto-creating broker create it with its default.
    assert not set(names) & asyncio.run(topic_names(dep.settings))

    asyncio.run(ensure_topics(dep.settings))
    assert asyncio.run(partition_counts(dep.settings)) == dict.fromkeys(names, 2)
    asyncio.run(check_partitions(dep.settings))  # the created topics pass


# -- the local broker's auto-created topics ---------------------------------------------------

def test_the_local_brokers_partition_count_defaults_to_the_workers_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_PARTITIONS", raising=False)
    assert localkafka._requested_partitions(None) == WorkerSettings.model_fields["partitions"].default == 4
    monkeypatch.setenv("HANDOFF_PARTITIONS", "6")
    assert localkafka._requested_partitions(None) == 6
    assert localkafka._requested_partitions(3) == 3
    monkeypatch.setenv("HANDOFF_PARTITIONS", "six")
    with pytest.raises(localkafka.KafkaError, match="HANDOFF_PARTITIONS"):
        localkafka._requested_partitions(None)


async def _produce_and_count(bootstrap: str, topic: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before the first worker start")
        return len(await producer.partitions_for(topic))
    finally:
        await producer.stop()


@pytest.mark.kafka
@needs_local_broker
def test_the_local_broker_auto_creates_topics_with_the_asked_partitions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_PARTITIONS", "3")
    address = localkafka.start(data_dir=tmp_path)
    try:
        assert "num.partitions=3\n" in (tmp_path / "server.properties").read_text()
        topic = f"auto-{uuid.uuid4().hex[:8]}"
        assert asyncio.run(_produce_and_count(address, topic)) == 3
    finally:
        localkafka.stop(data_dir=tmp_path)
