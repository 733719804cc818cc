"""Rebuilding stores from their changelogs: committed records only, from each store's resume offset."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.state.base import Store

log = logging.getLogger(__name__)

CHUNK_RECORDS = 10_000


async def restore(consumer: AIOKafkaConsumer, stores: Mapping[TopicPartition, Store],
                  max_records: int = CHUNK_RECORDS) -> dict[TopicPartition, int]:
    """Bring each store up to its changelog partition's end; returns the records applied per partition.

    `consumer`: started, with group_id=None, isolation_level="read_committed",
    enable_auto_commit=False and no deserializers (keys and values as bytes). Its partitions
    are left assigned and paused (a later `assign` replaces them). Fence the changelog's
    transactional producer first (init_transactions): an open transaction holds the last
    stable offset back, and the restore stops there.
    """
    applied = {tp: 0 for tp in stores}
    if not stores:
        return applied
    tps = list(stores)
    consumer.assign(tps)
    try:
        # With read_committed, aiokafka's ListOffsets carries the consumer's isolation level,
        # so these are the last stable offsets: an open transaction cannot keep us waiting.
        beginning = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        pending: set[TopicPartition] = set()
        for tp, store in stores.items():
            start = store.restore_from()
            if start > end[tp] or start < beginning[tp]:
                # Beyond the end: the changelog was recreated, so the local data belongs to an
                # old one. Before the beginning: records we never saw were deleted. Either way
                # the local data cannot be trusted; rebuild from what the changelog holds.
                log.warning("store %s[%d] resumes at %d, changelog %s holds %d..%d: rebuilding it",
                            store.name, store.partition, start, tp, beginning[tp], end[tp])
                store.drop()
                start = beginning[tp]
            # Seek even a partition with nothing to read: an assigned partition without a
            # position would be reset by the consumer's auto_offset_reset policy.
            consumer.seek(tp, start)
            if start >= end[tp]:
                consumer.pause(tp)
                continue
            pending.add(tp)
            log.info("restoring %s from %d to %d", tp, start, end[tp])
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=max_records)
            for tp, records in batch.items():
                if tp in pending:
                    applied[tp] += _apply(stores[tp], tp, records, await consumer.position(tp))
            # Check positions, not record offsets: the commit marker after a transaction and
            # aborted records are never returned, but the position moves past them.
            for tp in list(pending):
                position = await consumer.position(tp)
                if position >= end[tp]:
                    if tp not in batch:
                        # Only markers or aborted records since the last chunk: save the offset
                        # so the next restore does not read them again.
                        stores[tp].write({}, position)
                    consumer.pause(tp)
                    pending.discard(tp)
    finally:
        # Not assign([]): after an offsets lookup, aiokafka 0.14's consumer.stop() then hangs
        # (measured: 15 s and counting), which would stall every task opening.
        consumer.pause(*tps)
    return applied


def _apply(store: Store, tp: TopicPartition, records: Sequence[ConsumerRecord],
           next_offset: int) -> int:
    """Write one chunk to the store as bytes (decoded when read); returns the records applied."""
    changes: dict[str, bytes | None] = {}
    count = 0
    for record in records:
        raw_key: bytes | None = record.key
        try:
            if raw_key is None:
                raise ValueError("record has no key")
            key = raw_key.decode()
        except ValueError as exc:
            # One bad record must not keep the worker from starting: skip it, as if it were
            # never written (a value that cannot be decoded is skipped when first read).
            log.warning("skipping changelog record %s[%d]@%d: %s",
                        tp.topic, tp.partition, record.offset, exc)
            continue
        changes[key] = record.value
        count += 1
    store.write_encoded(changes, next_offset)
    return count
