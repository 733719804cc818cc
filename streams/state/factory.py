"""Opening a store from the HANDOFF_STORE URL."""

from __future__ import annotations

from pathlib import Path

from streams.state.base import Codec, Store
from streams.state.memory import MemoryStore


def store_path(data_dir: Path, group_id: str, name: str, partition: int) -> Path:
    """Where a persistent store keeps one partition: `<data_dir>/<group_id>/<name>-<partition>`."""
    return data_dir / group_id / f"{name}-{partition}"


def open_store(url: str, data_dir: Path, group_id: str, name: str, partition: int,
               codec: Codec) -> Store:
    """A store of the kind `url` names ("memory://" or "rocksdb://"), open and ready to restore."""
    if url.startswith("memory://"):
        return MemoryStore(name, partition, codec)
    if url.startswith("rocksdb://"):
        # Imported here so the memory store works where rocksdict is not installed.
        from streams.state.rocksdb import RocksDBStore

        return RocksDBStore(store_path(data_dir, group_id, name, partition), name, partition, codec)
    raise ValueError(f"unknown store URL {url!r}: expected memory:// or rocksdb://")
