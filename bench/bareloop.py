"""The throughput baseline: a plain aiokafka consume-and-produce loop, in its own process.

It moves every record of the input topic, key and value untouched, to an output topic, and
commits like the worker does (every 1,000 records or every second, after the records it
produced were acknowledged: at-least-once). No parsing, no state: what the broker and the
client library cost on this machine, and so the ceiling for any Python stream processor.

    python -m bench.bareloop BOOTSTRAP INPUT OUTPUT GROUP [--parse]

`--parse` also decodes each value with orjson and validates it as a ChatMessage (pydantic),
the cheapest useful work, as a second reference point. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

COMMIT_EVERY = 1000
COMMIT_INTERVAL_S = 1.0


async def run(bootstrap: str, source: str, target: str, group: str, parse: bool) -> None:
    validate = None
    if parse:
        from schemas.inputs import ChatMessage

        def validate(value: bytes) -> None:
            ChatMessage.model_validate_json(value, strict=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    # The worker's producer settings (Faust: acks=all, linger 1 ms).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bootstrap")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("group")
    parser.add_argument("--parse", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.source, args.target, args.group, args.parse))


if __name__ == "__main__":
    main()
