"""API tokens: made by `handoff token create`, kept only as a hash on `handoff.api-tokens`.

A token reads `hnd_<token id>_<secret>`. The id (16 hex digits) is the record's key, so a worker
finds the record without scanning; the SHA-256 of the whole token is compared in constant time
(`hmac.compare_digest`). The secret carries 256 random bits, so a fast hash is enough: there
is nothing to guess. Revoking publishes a tombstone for the id; compaction then forgets it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from handoff.config import WorkerSettings
from handoff.kafka_clients import client_kwargs
from handoff.publish import send_records
from schemas.api import ApiToken
from schemas.topics import Topic

_TOKEN = re.compile(r"^hnd_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NO_RECORD = hashlib.sha256(b"no such token").hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (token id, token)."""
    token_id = secrets.token_hex(8)
    return token_id, f"hnd_{token_id}_{secrets.token_urlsafe(32)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def token_id_of(token_or_id: str) -> str | None:
    """The id of a token, or the argument itself when it already is an id; None otherwise."""
    text = token_or_id.strip()
    if re.fullmatch(r"[0-9a-f]{16}", text):
        return text
    match = _TOKEN.match(text)
    return match.group(1) if match else None


class TokenStore:
    """The tokens a worker knows, as read from the compacted topic: id -> record."""

    def __init__(self) -> None:
        self.records: dict[str, ApiToken] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Take one record of `handoff.api-tokens` (a tombstone removes the id)."""
        if value is None:
            if key is not None:
                self.records.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            record = ApiToken.model_validate_json(value)
        except ValidationError:
            return  # not written by `handoff token`: never a way in
        self.records[record.token_id] = record

    def user_for(self, token: str) -> str | None:
        """The directory user a presented token stands for, or None (unknown, forged, revoked)."""
        match = _TOKEN.match(token)
        record = self.records.get(match.group(1)) if match else None
        # Hash and compare even when there is no record, so timing says little about ids.
        expected = record.sha256 if record is not None else _NO_RECORD
        if hmac.compare_digest(digest(token), expected) and record is not None:
            return record.user_id
        return None


async def publish_token(settings: WorkerSettings, user_id: str, note: str = "") -> tuple[str, ApiToken]:
    """Make a token for a user and publish its hash; return (token, record)."""
    token_id, token = new_token()
    record = ApiToken(token_id=token_id, user_id=user_id, sha256=digest(token),
                      created_at=datetime.now(UTC), note=note)
    await send_records(settings, [(Topic.API_TOKENS, token_id, record.model_dump_json().encode())])
    return token, record


async def revoke_tokens(settings: WorkerSettings, token_ids: list[str]) -> int:
    """Publish a tombstone for each id."""
    return await send_records(settings, [(Topic.API_TOKENS, i, None) for i in token_ids])


async def topic_partitions(consumer: AIOKafkaConsumer, names: list[str]) -> dict[str, set[int]]:
    """The partitions of each topic (empty when it does not exist), fresh from the cluster."""
    # The consumer's own view only covers assigned topics; ask for every topic's metadata.
    cluster = await consumer._client.fetch_all_metadata()
    return {name: set(cluster.partitions_for_topic(name) or ()) for name in names}


async def read_tokens(settings: WorkerSettings, timeout: float = 30.0) -> dict[str, ApiToken]:
    """Every live token record, read from the beginning to the current end of the topic."""
    store = TokenStore()
    name = settings.topic(Topic.API_TOKENS)
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = (await topic_partitions(consumer, [name]))[name]
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {name} to its end in {timeout:.0f} s")
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for m in messages:
                    store.apply(m.key, m.value)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return store.records
