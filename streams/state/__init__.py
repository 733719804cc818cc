"""State stores owned by the processing loop: memory or RocksDB, rebuilt from changelogs."""

from streams.state.base import Codec, Store, changelog_topic, int_codec, json_codec, model_codec
from streams.state.factory import open_store, store_path
from streams.state.memory import MemoryStore
from streams.state.restore import restore
from streams.state.rocksdb import RocksDBStore

__all__ = [
    "Codec",
    "MemoryStore",
    "RocksDBStore",
    "Store",
    "changelog_topic",
    "int_codec",
    "json_codec",
    "model_codec",
    "open_store",
    "restore",
    "store_path",
]
