"""The run store (SQLite, WAL) and its exports (JSONL, Parquet)."""

from selfplay.store.runstore import RunStore

__all__ = ["RunStore"]
