"""The throughput baselines: plain aiokafka consume-and-produce loops, in their own process.

The bare loop (the README's baseline) moves every record of the input topic, key and value
untouched, to an output topic, and commits every 1,000 records or every second, after the
records it produced were acknowledged (at-least-once). No parsing, no state: what the broker
and the client library cost on this machine, and so the ceiling for any Python stream
processor.

`--transactional` is the same work done the way the worker commits (exactly-once): batches of
up to `--max-records` read with read_committed (waiting up to `--wait-ms`), one transactional
producer per input partition (the worker has one per task), and per batch and partition one
transaction holding two records per input (the output, and a write to `--state-topic` in the
input's partition, as the worker writes a forward and a changelog record) and the input
offsets. The floor of the worker's own commit protocol, without its steps.

    python -m bench.bareloop BOOTSTRAP INPUT OUTPUT GROUP [--parse]
    python -m bench.bareloop BOOTSTRAP INPUT OUTPUT GROUP --transactional --state-topic T

`--parse` also decodes each value with orjson and validates it as a ChatMessage (pydantic),
the cheapest useful work, as a further reference point. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

COMMIT_EVERY = 1000
COMMIT_INTERVAL_S = 1.0


def _validator(parse: bool) -> Callable[[bytes], None] | None:
    if not parse:
        return None
    from schemas.inputs import ChatMessage

    def validate(value: bytes) -> None:
        ChatMessage.model_validate_json(value, strict=True)

    return validate


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    return stop


async def run(bootstrap: str, source: str, target: str, group: str, parse: bool) -> None:
    validate = _validator(parse)
    stop = _stop_event()
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    # The worker's producers are transactional (one per task), acks=all, linger
    # HANDOFF_PRODUCER_LINGER_MS (default 2 ms): `--transactional` has those. This baseline
    # stays the plain at-least-once producer it was measured with: acks=all, linger 1 ms.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    pending = 0
    last_commit = time.monotonic()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=1000)
            for messages in batch.values():
                for m in messages:
                    if validate is not None:
                        validate(m.value)
                    await producer.send(target, key=m.key, value=m.value)
                    pending += 1
            if pending and (pending >= COMMIT_EVERY
                            or time.monotonic() - last_commit >= COMMIT_INTERVAL_S):
                await producer.flush()
                await consumer.commit()
                pending = 0
                last_commit = time.monotonic()
        if pending:
            await producer.flush()
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


async def run_transactional(bootstrap: str, source: str, target: str, group: str,
                            state_topic: str, *, parse: bool, max_records: int, wait_ms: int,
                            linger_ms: int) -> None:
    """The worker's commit protocol over the same records: see the module's doc."""
    validate = _validator(parse)
    stop = _stop_event()
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    producers: dict[int, AIOKafkaProducer] = {}

    async def producer_of(partition: int) -> AIOKafkaProducer:
        producer = producers.get(partition)
        if producer is None:
            # The worker's producers (streams/loop.py): transactional, acks=all, idempotent,
            # linger HANDOFF_PRODUCER_LINGER_MS.
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, transactional_id=f"{group}-txn-{partition}",
                enable_idempotence=True, acks="all", linger_ms=linger_ms,
                max_request_size=2 * 1024 * 1024)
            await producer.start()
            producers[partition] = producer
        return producer

    async def commit(producer: AIOKafkaProducer, offsets: dict[TopicPartition, int]) -> None:
        await producer.send_offsets_to_transaction(
            {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}, group)
        await producer.commit_transaction()

    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=max_records)
            batch = {tp: ms for tp, ms in batch.items() if ms}
            if not batch:
                continue
            # As a cycle of the loop: open every partition's transaction, send, then commit
            # them all at once.
            open_: list[tuple[AIOKafkaProducer, dict[TopicPartition, int]]] = []
            for tp, messages in batch.items():
                producer = await producer_of(tp.partition)
                await producer.begin_transaction()
                for m in messages:
                    if validate is not None:
                        validate(m.value)
                    await producer.send(target, key=m.key, value=m.value)
                    await producer.send(state_topic, key=m.key, value=m.value,
                                        partition=tp.partition)
                open_.append((producer, {tp: messages[-1].offset + 1}))
            await asyncio.gather(*(commit(p, offsets) for p, offsets in open_))
    finally:
        for producer in producers.values():
            await producer.stop()
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bootstrap")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("group")
    parser.add_argument("--parse", action="store_true")
    parser.add_argument("--transactional", action="store_true",
                        help="the worker's commit protocol (needs --state-topic)")
    parser.add_argument("--state-topic", help="where the transactional loop's second record goes")
    parser.add_argument("--max-records", type=int, default=2000,
                        help="batch size (HANDOFF_BATCH_MAX_RECORDS)")
    parser.add_argument("--wait-ms", type=int, default=100, help="HANDOFF_BATCH_WAIT_MS")
    parser.add_argument("--linger-ms", type=int, default=2, help="HANDOFF_PRODUCER_LINGER_MS")
    args = parser.parse_args()
    if args.transactional:
        if not args.state_topic:
            parser.error("--transactional needs --state-topic")
        asyncio.run(run_transactional(args.bootstrap, args.source, args.target, args.group,
                                      args.state_topic, parse=args.parse,
                                      max_records=args.max_records, wait_ms=args.wait_ms,
                                      linger_ms=args.linger_ms))
    else:
        asyncio.run(run(args.bootstrap, args.source, args.target, args.group, args.parse))


if __name__ == "__main__":
    main()
