"""What the processing loop needs of a state store, and how values become bytes and back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Codec:
    """Bytes for the changelog and the disk, and back; `decode` is the only place values are validated."""

    encode: Callable[[object], bytes]
    decode: Callable[[bytes], object]


def model_codec(model: type[M]) -> Codec:
    """A codec for one pydantic model: JSON as `model_dump(mode="json")` spells it, validated on decode."""

    def encode(value: object) -> bytes:
        if not isinstance(value, model):
            raise TypeError(f"expected {model.__name__}, got {type(value).__name__}")
        # pydantic's own serializer writes the same JSON as orjson over model_dump(mode="json"),
        # without building the intermediate dict (the faster path, as streams/codecs.py found).
        return value.__pydantic_serializer__.to_json(value)

    def decode(raw: bytes) -> object:
        return model.model_validate_json(raw)

    return Codec(encode, decode)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def json_codec() -> Codec:
    """Plain JSON values (str, int, dict, list); models nested in them are written as their JSON."""

    def encode(value: object) -> bytes:
        return orjson.dumps(value, default=_default)

    def decode(raw: bytes) -> object:
        value: object = orjson.loads(raw)
        return value

    return Codec(encode, decode)


def int_codec() -> Codec:
    """Integers as JSON numbers; anything else is refused both ways."""

    def encode(value: object) -> bytes:
        # bool is an int subclass; a counter that turns into True is a bug worth seeing.
        if type(value) is not int:
            raise TypeError(f"expected int, got {type(value).__name__}")
        return orjson.dumps(value)

    def decode(raw: bytes) -> object:
        value: object = orjson.loads(raw)
        if type(value) is not int:
            raise ValueError(f"expected an integer, got {raw[:40]!r}")
        return value

    return Codec(encode, decode)


class Store(Protocol):
    """One partition of one table, written only with committed batches and rebuilt from its changelog."""

    name: str
    partition: int
    codec: Codec

    def get(self, key: str) -> object | None:
        """The decoded value, or None; the same object while it stays cached (do not mutate it)."""
        ...

    def write(self, changes: Mapping[str, object | None], next_offset: int | None,
              encoded: Mapping[str, bytes] | None = None) -> None:
        """Apply a committed batch (None deletes); `next_offset`: the changelog offset to resume at.

        `encoded`: bytes the caller already has for some values (their changelog records), so a
        store that keeps bytes does not encode them again.
        """
        ...

    def write_encoded(self, changes: Mapping[str, bytes | None], next_offset: int | None
                      ) -> None:
        """Apply committed changelog records as they are (None deletes), as a restore does;
        each value is decoded when first read, and one that cannot be is skipped then."""
        ...

    def items(self) -> Iterator[tuple[str, object]]:
        """Every key and decoded value, in no promised order."""
        ...

    def scan(self) -> Iterator[tuple[str, object]]:
        """Every key and its value without decoding what was restored: the model if the store
        holds it decoded, else its JSON as plain data (for scans reading a field or two)."""
        ...

    def __len__(self) -> int:
        """The number of keys (an estimate for RocksDB)."""
        ...

    def restore_from(self) -> int:
        """The changelog offset the next restore starts at."""
        ...

    def close(self) -> None:
        """Release the store's resources; the data stays (for RocksDB)."""
        ...

    def drop(self) -> None:
        """Delete the local data and resume offset; the store stays open and empty."""
        ...


def decode_restored(codec: Codec, name: str, partition: int, key: str, raw: bytes
                    ) -> object | None:
    """Decode a restored value on its first read; an undecodable one is skipped (None), as if
    its changelog record had never been written, so one bad record cannot stop a task."""
    try:
        return codec.decode(raw)
    except Exception as exc:
        log.warning("skipping undecodable restored value %s[%d] key %r: %s", name, partition,
                    key, exc)
        return None


def changelog_topic(group_id: str, store_name: str) -> str:
    """The changelog topic of a store; `group_id` already carries the topic prefix."""
    return f"{group_id}-{store_name}-changelog"
