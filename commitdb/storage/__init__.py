"""The storage layer: a transactional, ordered key-value API with named tables.

Two implementations share one contract (:mod:`commitdb.storage.base`):
:class:`LmdbStorage`, on disk, and :class:`MemoryStorage`, its in-memory twin.
"""

from __future__ import annotations

from commitdb.storage.base import ReadTxn, Storage, WriteTxn
from commitdb.storage.lmdb_storage import LmdbStorage
from commitdb.storage.memory import MemoryStorage

__all__ = ("LmdbStorage", "MemoryStorage", "ReadTxn", "Storage", "WriteTxn")
