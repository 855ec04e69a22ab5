"""An in-memory :class:`~commitdb.storage.base.Storage`, the twin of the LMDB one.

Each table is a ``dict`` plus a sorted list of its keys (kept sorted with :mod:`bisect`).

* Write transactions never touch the committed tables while they run: their writes go to a
  per-table :class:`~commitdb.storage.base.TableOverlay` (new values, ``None`` marking a
  deletion), and reads inside the transaction merge the overlay over the committed tables. Commit applies the overlay in one step under a lock; an abort simply
  drops it, so an exception inside ``with storage.write()`` leaves nothing behind.
* One writer at a time: a :class:`threading.Lock` is held for the whole write transaction.
* Readers see the last committed snapshot. Snapshots are copy-on-write: a commit mutates the
  committed tables in place when no read transaction holds them, and otherwise builds new
  tables for the ones it changes, leaving readers their unchanged snapshot.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from commitdb.errors import DatabaseClosedError, StorageError
from commitdb.storage.base import (
    ReadTxn,
    Storage,
    TableOverlay,
    WriteTxn,
    check_key,
    check_tables,
    check_value,
    iteration_start,
    step_sorted,
)

__all__ = ("MemoryStorage",)

# Above this many changes to one table, a commit rebuilds the sorted key list by merging
# instead of inserting and removing keys one at a time.
_MERGE_THRESHOLD = 16


class _Table:
    """One committed table: its mapping and the sorted list of its keys."""

    __slots__ = ("data", "keys")

    def __init__(self, data: dict[bytes, bytes] | None = None, keys: list[bytes] | None = None):
        self.data: dict[bytes, bytes] = {} if data is None else data
        self.keys: list[bytes] = [] if keys is None else keys

    def copy(self) -> _Table:
        return _Table(dict(self.data), list(self.keys))

    def apply(self, overlay: TableOverlay) -> None:
        """Apply a write transaction's changes to this table in place."""
        if overlay.cleared:
            self.data = {}
            self.keys = []
        data, changes = self.data, overlay.values
        if len(changes) <= _MERGE_THRESHOLD:
            for key, value in changes.items():
                if value is None:
                    if data.pop(key, None) is not None:
                        del self.keys[bisect_left(self.keys, key)]
                else:
                    if key not in data:
                        insort(self.keys, key)
                    data[key] = value
            return
        added = sorted(k for k, v in changes.items() if v is not None and k not in data)
        removed = {k for k, v in changes.items() if v is None and k in data}
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        kept: Iterable[bytes] = self.keys
        if removed:
            kept = (k for k in self.keys if k not in removed)
        self.keys = list(heapq.merge(kept, added))


class _Snapshot:
    """The committed state: every table, and how many read transactions hold it."""

    __slots__ = ("readers", "tables")

    def __init__(self, tables: dict[str, _Table]):
        self.tables = tables
        self.readers = 0


class _MemoryReadTxn(ReadTxn):
    """A read transaction on one snapshot (and, for writers, an overlay over it)."""

    def __init__(self, storage: MemoryStorage, snapshot: _Snapshot) -> None:
        self._storage = storage
        self._snapshot = snapshot
        self._overlays: dict[str, TableOverlay] = {}
        self._done = False

    def _check_live(self) -> None:
        if self._storage.closed:
            raise DatabaseClosedError("the storage was closed")
        if self._done:
            raise StorageError("the transaction is finished")

    def _table(self, table: str) -> _Table:
        self._check_live()
        try:
            return self._snapshot.tables[table]
        except KeyError:
            raise self._storage._unknown_table(table) from None

    def get(self, table: str, key: bytes) -> bytes | None:
        """Return the value under ``key`` in ``table``, or ``None``; see :class:`ReadTxn`."""
        check_key(key)
        base = self._table(table)
        overlay = self._overlays.get(table)
        if overlay is not None:
            if key in overlay.values:
                return overlay.values[key]
            if overlay.cleared:
                return None
        return base.data.get(key)

    def has(self, table: str, key: bytes) -> bool:
        """Tell whether ``key`` is in ``table``; see :class:`ReadTxn`."""
        return self.get(table, key) is not None

    def items(
        self,
        table: str,
        prefix: bytes = b"",
        start: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Iterate over ``(key, value)`` pairs in key order; see :class:`ReadTxn`."""
        self._table(table)
        return self._iterate(table, prefix, start, reverse)

    def _iterate(
        self, table: str, prefix: bytes, start: bytes | None, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        bound, inclusive = iteration_start(prefix, start, reverse)
        while True:
            base = self._table(table)
            overlay = self._overlays.get(table)
            if overlay is None:
                key = step_sorted(base.keys, bound, inclusive, reverse)
            else:
                key = None
                if not overlay.cleared:
                    key = step_sorted(base.keys, bound, inclusive, reverse, overlay.values)
                other = step_sorted(overlay.live_keys(), bound, inclusive, reverse)
                if other is not None and (key is None or (other > key if reverse else other < key)):
                    key = other
            if key is None or not key.startswith(prefix):
                return
            value = overlay.values.get(key) if overlay is not None else None
            if value is None:
                value = base.data[key]
            yield key, value
            bound, inclusive = key, False

    def keys(self, table: str, prefix: bytes = b"") -> Iterator[bytes]:
        """Iterate over the keys starting with ``prefix``; see :class:`ReadTxn`."""
        return (key for key, _ in self.items(table, prefix))

    def count(self, table: str) -> int:
        """Return the number of keys in ``table``; see :class:`ReadTxn`."""
        base = self._table(table)
        overlay = self._overlays.get(table)
        if overlay is not None and overlay.cleared:
            return len(overlay.live_keys())
        total = len(base.data)
        if overlay is not None:
            for key, value in overlay.values.items():
                if value is None:
                    total -= key in base.data
                else:
                    total += key not in base.data
        return total


class _MemoryWriteTxn(_MemoryReadTxn, WriteTxn):
    """The write transaction: writes go to per-table overlays until commit."""

    def _overlay(self, table: str) -> TableOverlay:
        self._table(table)
        overlay = self._overlays.get(table)
        if overlay is None:
            overlay = self._overlays[table] = TableOverlay()
        return overlay

    def put(self, table: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``; see :class:`WriteTxn`."""
        check_key(key)
        check_value(value)
        self._overlay(table).put(key, value)

    def put_if_absent(self, table: str, key: bytes, value: bytes) -> bool:
        """Store ``value`` under ``key`` unless present; see :class:`WriteTxn`."""
        check_value(value)
        if self.get(table, key) is not None:
            return False
        self._overlay(table).put(key, value)
        return True

    def delete(self, table: str, key: bytes) -> bool:
        """Remove ``key``; see :class:`WriteTxn`."""
        if self.get(table, key) is None:
            return False
        self._overlay(table).delete(key)
        return True

    def delete_prefix(self, table: str, prefix: bytes) -> int:
        """Remove every key starting with ``prefix``; see :class:`WriteTxn`."""
        if not prefix:
            count = self.count(table)
            self._overlay(table).clear()
            return count
        doomed = list(self.keys(table, prefix))
        overlay = self._overlay(table)
        for key in doomed:
            overlay.delete(key)
        return len(doomed)


class MemoryStorage(Storage):
    """A :class:`~commitdb.storage.base.Storage` kept in this process's memory.

    Args:
        tables: The table names, declared once for the storage's lifetime.

    Example:
        >>> storage = MemoryStorage(("blobs",))
        >>> with storage.write() as txn:
        ...     txn.put("blobs", b"k", b"v")
        >>> with storage.read() as txn:
        ...     txn.get("blobs", b"k")
        b'v'
    """

    def __init__(self, tables: Iterable[str]) -> None:
        self._tables = check_tables(tables)
        self._current = _Snapshot({name: _Table() for name in self._tables})
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: int | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"MemoryStorage(tables={self._tables!r}, {state})"

    def __enter__(self) -> MemoryStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def readonly(self) -> bool:
        """Always False: an in-memory storage is always writable."""
        return False

    @property
    def path(self) -> str:
        """Always ``"InMemory"``."""
        return "InMemory"

    @property
    def in_memory(self) -> bool:
        """Always True."""
        return True

    @property
    def tables(self) -> tuple[str, ...]:
        """The declared table names."""
        return self._tables

    def _unknown_table(self, table: object) -> StorageError:
        return StorageError(f"unknown table {table!r}; declared tables: {', '.join(self._tables)}")

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError("the in-memory storage was closed")

    @contextmanager
    def read(self) -> Iterator[ReadTxn]:
        """Open a read transaction on the last committed snapshot; see :class:`Storage`."""
        self._check_open()
        with self._state_lock:
            snapshot = self._current
            snapshot.readers += 1
        txn = _MemoryReadTxn(self, snapshot)
        try:
            yield txn
        finally:
            txn._done = True
            with self._state_lock:
                snapshot.readers -= 1

    def get(self, table: str, key: bytes) -> bytes | None:
        """Read one value of the last committed snapshot; see :class:`Storage`."""
        check_key(key)
        self._check_open()
        try:
            base = self._current.tables[table]
        except KeyError:
            raise self._unknown_table(table) from None
        return base.data.get(key)

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """Open the write transaction; see :class:`Storage`."""
        self._check_open()
        me = threading.get_ident()
        if self._writer == me:
            raise StorageError("a write transaction is already open in this thread")
        with self._write_lock:
            self._writer = me
            try:
                txn = _MemoryWriteTxn(self, self._current)
                try:
                    yield txn
                    txn._check_live()
                    self._commit(txn._overlays)
                finally:
                    txn._done = True
            finally:
                self._writer = None

    def _commit(self, overlays: dict[str, TableOverlay]) -> None:
        changed = {
            name: overlay for name, overlay in overlays.items() if overlay.values or overlay.cleared
        }
        if not changed:
            return
        with self._state_lock:
            current = self._current
            if current.readers:
                tables = dict(current.tables)
                for name in changed:
                    tables[name] = tables[name].copy()
                current = _Snapshot(tables)
            for name, overlay in changed.items():
                current.tables[name].apply(overlay)
            self._current = current

    def close(self) -> None:
        """Close the storage; idempotent."""
        self._closed = True
