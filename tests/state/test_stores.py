"""The store contract, the same tests over the memory and the RocksDB store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import BaseModel

from streams.state import (
    Codec,
    MemoryStore,
    RocksDBStore,
    Store,
    changelog_topic,
    int_codec,
    json_codec,
    model_codec,
    open_store,
)


class Conversation(BaseModel):
    conversation_id: str
    turns: int
    opened_at: datetime
    tags: list[str] = []


def conv(cid: str, turns: int = 1) -> Conversation:
    return Conversation(conversation_id=cid, turns=turns,
                        opened_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC), tags=["a", "ø"])


class Counting:
    """Wraps a codec and counts decode calls."""

    def __init__(self, inner: Codec) -> None:
        self.decodes = 0
        self.inner = inner
        self.codec = Codec(inner.encode, self._decode)

    def _decode(self, raw: bytes) -> object:
        self.decodes += 1
        return self.inner.decode(raw)


Opener = Callable[[Codec], Store]


@pytest.fixture(params=["memory", "rocksdb"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(kind: str, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store of this kind (the same data dir each time), closing what it opened."""
    opened: list[Store] = []

    def open_(codec: Codec) -> Store:
        store = open_store(f"{kind}://", tmp_path, "t1.handoff", "conversations", 3, codec)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def rocksdb_opener(tmp_path: Path) -> Iterator[Opener]:
    """Opens the RocksDB store of one data dir, closing what it opened."""
    opened: list[Store] = []

    def open_(codec: Codec) -> Store:
        store = open_store("rocksdb://", tmp_path, "t1.handoff", "conversations", 3, codec)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def test_get_write_and_delete(opener: Opener) -> None:
    store = opener(json_codec())
    assert store.get("a") is None
    store.write({"a": {"x": 1}, "b": "text", "c": 7}, None)
    assert (store.get("a"), store.get("b"), store.get("c")) == ({"x": 1}, "text", 7)
    store.write({"a": None, "b": "other", "missing": None}, None)
    assert store.get("a") is None
    assert store.get("b") == "other"
    assert sorted(store.items()) == [("b", "other"), ("c", 7)]


def test_len_counts_keys(opener: Opener, kind: str) -> None:
    store = opener(int_codec())
    assert len(store) == 0
    store.write({f"k{i}": i for i in range(10)}, None)
    assert len(store) == 10
    store.write({"k0": None, "k1": None}, None)
    if kind == "memory":
        assert len(store) == 8
    else:  # RocksDB only estimates once keys are deleted
        assert 0 < len(store) <= 10


def test_a_read_value_is_decoded_once_and_served_as_the_same_object(opener: Opener) -> None:
    counting = Counting(model_codec(Conversation))
    store = opener(counting.codec)
    store.write({"c-1": conv("c-1")}, None)
    first = store.get("c-1")
    second = store.get("c-1")
    assert isinstance(first, Conversation) and first == conv("c-1")
    assert second is first
    assert counting.decodes <= 1


def test_a_write_replaces_the_cached_value_without_decoding(opener: Opener) -> None:
    counting = Counting(model_codec(Conversation))
    store = opener(counting.codec)
    store.write({"c-1": conv("c-1", 1)}, None)
    store.get("c-1")
    decodes = counting.decodes
    newer = conv("c-1", 2)
    store.write({"c-1": newer}, None)
    assert store.get("c-1") is newer
    store.write({"c-1": None}, None)
    assert store.get("c-1") is None
    assert counting.decodes == decodes


def test_a_rocksdb_batch_that_fails_to_encode_changes_nothing(rocksdb_opener: Opener) -> None:
    store = rocksdb_opener(model_codec(Conversation))
    store.write({"c-1": conv("c-1", 1)}, 1)
    store.get("c-1")
    with pytest.raises(TypeError):
        store.write({"c-1": conv("c-1", 2), "c-2": {"not": "a model"}}, 2)
    value = store.get("c-1")
    assert isinstance(value, Conversation) and value.turns == 1
    assert (store.get("c-2"), store.restore_from()) == (None, 1)


def test_items_gives_decoded_values(opener: Opener) -> None:
    store = opener(model_codec(Conversation))
    store.write({"c-1": conv("c-1", 1), "c-2": conv("c-2", 2)}, None)
    assert sorted((k, v.turns) for k, v in store.items() if isinstance(v, Conversation)) == [
        ("c-1", 1), ("c-2", 2)]


def test_restored_bytes_are_decoded_on_first_read_and_writes_replace_them(
        opener: Opener) -> None:
    counting = Counting(model_codec(Conversation))
    store = opener(counting.codec)
    store.write_encoded({"c-1": model_codec(Conversation).encode(conv("c-1", 1)),
                         "c-2": model_codec(Conversation).encode(conv("c-2", 2)),
                         "c-3": b"{not json"}, 5)
    assert (counting.decodes, store.restore_from()) == (0, 5)
    scanned = dict(store.scan())
    assert sorted(scanned) == ["c-1", "c-2"] and scanned["c-2"]["turns"] == 2  # plain data
    assert counting.decodes == 0
    first = store.get("c-1")
    assert isinstance(first, Conversation) and first.turns == 1 and store.get("c-1") is first
    assert counting.decodes == 1
    newer = conv("c-2", 3)
    store.write({"c-2": newer}, 6)  # a committed write wins over the restored bytes
    assert store.get("c-2") == newer
    assert store.get("c-3") is None  # undecodable: skipped
    store.write_encoded({"c-1": None}, 7)
    assert store.get("c-1") is None


def test_drop_clears_data_and_resume_offset_and_the_store_stays_usable(opener: Opener) -> None:
    store = opener(json_codec())
    store.write({"a": 1, "b": 2}, 7)
    store.get("a")
    store.drop()
    assert (store.get("a"), store.get("b"), len(store), list(store.items())) == (None, None, 0, [])
    assert store.restore_from() == 0
    store.write({"c": 3}, 2)
    assert (store.get("c"), store.restore_from()) == (3, 2)


def test_resume_offset_follows_the_batches_that_carry_one(opener: Opener) -> None:
    store = opener(json_codec())
    assert store.restore_from() == 0
    store.write({"a": 1}, 5)
    store.write({"b": 2}, None)
    assert store.restore_from() == 5
    store.write({}, 9)
    assert store.restore_from() == 9


def test_rocksdb_reopen_keeps_data_and_resume_offset(rocksdb_opener: Opener) -> None:
    opener = rocksdb_opener
    store = opener(model_codec(Conversation))
    store.write({"c-1": conv("c-1", 4), "c-2": conv("c-2"), "gone": conv("gone")}, 41)
    store.write({"gone": None}, 42)
    store.close()
    counting = Counting(model_codec(Conversation))
    again = opener(counting.codec)
    assert again.restore_from() == 42
    value = again.get("c-1")
    assert isinstance(value, Conversation) and value == conv("c-1", 4)
    assert again.get("gone") is None
    assert sorted(k for k, _ in again.items()) == ["c-1", "c-2"]


def test_rocksdb_drop_survives_a_reopen(rocksdb_opener: Opener) -> None:
    opener = rocksdb_opener
    store = opener(json_codec())
    store.write({"a": 1}, 3)
    store.drop()
    store.close()
    again = opener(json_codec())
    assert (again.get("a"), again.restore_from()) == (None, 0)


def test_rocksdb_cache_is_bounded(tmp_path: Path) -> None:
    counting = Counting(json_codec())
    store = RocksDBStore(tmp_path / "s", "s", 0, counting.codec, cache_size=2)
    try:
        store.write({"a": 1, "b": 2, "c": 3}, None)
        for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" comes in
            store.get(key)
        assert counting.decodes == 3
        store.get("a")
        assert counting.decodes == 3
        store.get("b")
        assert counting.decodes == 4
    finally:
        store.close()


def test_rocksdb_items_across_chunks_and_a_closed_store_can_reopen(tmp_path: Path) -> None:
    store = RocksDBStore(tmp_path / "s", "s", 0, int_codec())
    keys = {f"k{i:05d}": i for i in range(2_500)}
    store.write(keys, 1)
    assert dict(store.items()) == keys
    partial = store.items()
    next(partial)
    # An abandoned iteration must not keep the DB's lock: the next owner opens the same path.
    store.close()
    again = RocksDBStore(tmp_path / "s", "s", 0, int_codec())
    try:
        assert again.get("k02499") == 2_499
    finally:
        again.close()
    del partial


def test_a_closed_rocksdb_store_refuses_reads(tmp_path: Path) -> None:
    store = RocksDBStore(tmp_path / "s", "s", 0, int_codec())
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.get("a")


def test_open_store_places_rocksdb_under_group_and_partition(tmp_path: Path) -> None:
    memory = open_store("memory://", tmp_path, "g", "convs", 1, json_codec())
    assert isinstance(memory, MemoryStore)
    store = open_store("rocksdb://", tmp_path, "t1.handoff", "convs", 1, json_codec())
    try:
        assert isinstance(store, RocksDBStore)
        assert store.path == tmp_path / "t1.handoff" / "convs-1"
        assert (store.path / "CURRENT").exists()
    finally:
        store.close()
    with pytest.raises(ValueError, match="unknown store URL"):
        open_store("rocksdict://", tmp_path, "g", "convs", 1, json_codec())


def test_changelog_topic_name() -> None:
    assert changelog_topic("t1.handoff", "conversations") == "t1.handoff-conversations-changelog"


def test_model_codec_writes_model_dump_json_and_refuses_other_types() -> None:
    codec = model_codec(Conversation)
    value = conv("c-1", 3)
    assert codec.encode(value) == orjson.dumps(value.model_dump(mode="json"))
    assert codec.decode(codec.encode(value)) == value
    with pytest.raises(TypeError):
        codec.encode({"conversation_id": "c-1"})
    with pytest.raises(ValueError):
        codec.decode(b'{"conversation_id": "c-1"}')


def test_json_codec_writes_nested_models_as_json() -> None:
    codec = json_codec()
    raw = codec.encode({"conv": conv("c-1"), "n": 1})
    assert codec.decode(raw) == {"conv": conv("c-1").model_dump(mode="json"), "n": 1}


def test_int_codec_refuses_what_is_not_an_int() -> None:
    codec = int_codec()
    assert codec.decode(codec.encode(12)) == 12
    with pytest.raises(TypeError):
        codec.encode(True)
    with pytest.raises(ValueError):
        codec.decode(b'"12"')


def test_rocksdb_keeps_given_bytes_instead_of_encoding(tmp_path: Path) -> None:
    encodes: list[object] = []
    inner = json_codec()

    def encode(value: object) -> bytes:
        encodes.append(value)
        return inner.encode(value)

    codec = Codec(encode, inner.decode)
    store = RocksDBStore(tmp_path / "s", "s", 0, codec)
    try:
        store.write({"a": {"n": 1}, "b": {"n": 2}}, None, encoded={"a": b'{"n":1}'})
        assert encodes == [{"n": 2}]
    finally:
        store.close()
    again = RocksDBStore(tmp_path / "s", "s", 0, codec)
    try:
        assert (again.get("a"), again.get("b")) == ({"n": 1}, {"n": 2})
    finally:
        again.close()
