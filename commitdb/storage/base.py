"""The storage contract: a tiny transactional, ordered key-value API with named tables.

A :class:`Storage` holds a fixed set of *tables* declared when it is created or opened. Each
table maps byte-string keys to byte-string values and iterates in unsigned byte order of the
keys. All access goes through transactions:

* ``with storage.read() as txn:`` gives a :class:`ReadTxn` that sees one consistent committed
  snapshot for its whole lifetime; ``storage.get(table, key)`` (:class:`OneShotReads`, which
  both implementations have) is the cheap form of a read transaction that reads one key;
* ``with storage.write() as txn:`` gives a :class:`WriteTxn`; it commits when the block exits
  normally and aborts, leaving nothing behind, when the block raises. Reads inside a write
  transaction see that transaction's own writes. One write transaction runs at a time.

Transactions, and iterators obtained from them, are only valid inside their ``with`` block:
using them afterwards raises :class:`~commitdb.errors.StorageError`. A transaction belongs to
the thread that opened it.

Keys are ``bytes`` of 1 to :data:`MAX_KEY_SIZE` bytes (the LMDB limit, enforced by every
implementation so that they behave alike); values are ``bytes`` of any length.

Iteration (:meth:`ReadTxn.items`) takes three optional arguments:

* ``prefix``: only keys starting with it;
* ``start``: forward, begin at the first key ``>= start``; reverse, begin at the last key
  ``<= start``;
* ``reverse``: iterate in descending key order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from itertools import islice
from typing import Protocol, runtime_checkable

from commitdb.errors import StorageError

__all__ = (
    "MAX_KEY_SIZE",
    "OneShotReads",
    "ReadTxn",
    "Storage",
    "TableOverlay",
    "WriteTxn",
    "check_key",
    "check_tables",
    "check_value",
    "getter",
    "iteration_start",
    "prefix_items",
    "prefix_successor",
    "step_sorted",
)

MAX_KEY_SIZE = 511
"""The largest key, in bytes, that any storage accepts (LMDB's compiled-in limit)."""


@runtime_checkable
class ReadTxn(Protocol):
    """A read transaction: a consistent view of the committed state of every table."""

    def get(self, table: str, key: bytes) -> bytes | None:
        """Return the value stored under ``key``.

        Args:
            table: A declared table name.
            key: The key to look up.

        Returns:
            The value, or ``None`` when the key is absent.

        Raises:
            StorageError: Unknown table, finished transaction, or a storage failure.
        """

    def has(self, table: str, key: bytes) -> bool:
        """Tell whether ``key`` is present in ``table``.

        Args:
            table: A declared table name.
            key: The key to look up.

        Returns:
            True when the key is present.
        """

    def items(
        self,
        table: str,
        prefix: bytes = b"",
        start: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Iterate over ``(key, value)`` pairs in key byte order.

        Args:
            table: A declared table name.
            prefix: Only keys starting with this prefix are produced.
            start: Forward, begin at the first key ``>= start``; reverse, begin at the last
                key ``<= start``. ``None`` begins at the first (last) key of the prefix.
            reverse: Produce keys in descending order.

        Returns:
            A lazy iterator, valid only while the transaction is open.
        """

    def keys(self, table: str, prefix: bytes = b"") -> Iterator[bytes]:
        """Iterate over the keys of ``table`` that start with ``prefix``, in byte order.

        Args:
            table: A declared table name.
            prefix: Only keys starting with this prefix are produced.

        Returns:
            A lazy iterator, valid only while the transaction is open.
        """

    def count(self, table: str) -> int:
        """Return the number of keys in ``table``.

        Args:
            table: A declared table name.

        Returns:
            The number of entries.
        """


@runtime_checkable
class WriteTxn(ReadTxn, Protocol):
    """A write transaction; its reads see its own uncommitted writes."""

    def put(self, table: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value.

        Args:
            table: A declared table name.
            key: 1 to :data:`MAX_KEY_SIZE` bytes.
            value: Any bytes.
        """

    def put_if_absent(self, table: str, key: bytes, value: bytes) -> bool:
        """Store ``value`` under ``key`` only if the key is absent.

        Args:
            table: A declared table name.
            key: 1 to :data:`MAX_KEY_SIZE` bytes.
            value: Any bytes.

        Returns:
            True if the value was written, False if the key already existed.
        """

    def delete(self, table: str, key: bytes) -> bool:
        """Remove ``key`` from ``table``.

        Args:
            table: A declared table name.
            key: The key to remove.

        Returns:
            True if the key existed.
        """

    def delete_prefix(self, table: str, prefix: bytes) -> int:
        """Remove every key of ``table`` that starts with ``prefix`` (all keys for ``b""``).

        Args:
            table: A declared table name.
            prefix: The prefix to remove.

        Returns:
            The number of keys removed.
        """


@runtime_checkable
class Storage(Protocol):
    """A transactional ordered key-value store with a fixed set of named tables."""

    def read(self) -> AbstractContextManager[ReadTxn]:
        """Open a read transaction on the last committed state.

        Returns:
            A context manager yielding a :class:`ReadTxn`.

        Raises:
            DatabaseClosedError: The storage is closed.
        """

    def write(self) -> AbstractContextManager[WriteTxn]:
        """Open the write transaction; commit on normal exit, abort on exception.

        Returns:
            A context manager yielding a :class:`WriteTxn`.

        Raises:
            DatabaseClosedError: The storage is closed.
            ReadOnlyError: The storage was opened read-only.
        """

    def close(self) -> None:
        """Close the storage; idempotent. Transactions still open fail at their next use."""

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""

    @property
    def readonly(self) -> bool:
        """Whether the storage refuses write transactions."""

    @property
    def path(self) -> str:
        """Where the data lives: a directory, or ``"InMemory"``."""

    @property
    def in_memory(self) -> bool:
        """Whether the data lives only in this process's memory."""

    @property
    def tables(self) -> tuple[str, ...]:
        """The declared table names, in declaration order."""


@runtime_checkable
class OneShotReads(Protocol):
    """An optional extension of :class:`Storage`: one-key reads without a ``with`` block.

    Both implementations have it; code taking any Storage goes through :func:`getter`.
    """

    def get(self, table: str, key: bytes) -> bytes | None:
        """Read one value of the last committed state, in a transaction of its own.

        The same as ``with storage.read() as txn: return txn.get(table, key)``, only
        cheaper: the hot path of one-key reads.

        Args:
            table: A declared table name.
            key: The key to look up.

        Returns:
            The value, or ``None`` when the key is absent.

        Raises:
            DatabaseClosedError: The storage is closed.
            StorageError: Unknown table, or a storage failure.
        """


def getter(storage: Storage) -> Callable[[str, bytes], bytes | None]:
    """The one-key read of a storage: its :meth:`OneShotReads.get` when it has one, else
    a read transaction per call.

    Args:
        storage: Any storage.

    Returns:
        ``get(table, key)``, the value or ``None``.
    """
    if isinstance(storage, OneShotReads):
        return storage.get

    def get(table: str, key: bytes) -> bytes | None:
        with storage.read() as txn:
            return txn.get(table, key)

    return get


def prefix_items(
    txn: ReadTxn, table: str, prefix: bytes, start: bytes | None = None, limit: int | None = None
) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` pairs of ``table`` whose key starts with ``prefix``, in key
    order, from the first key ``>= start``, at most `limit` of them.

    ``list(islice(txn.items(table, prefix, start), limit))``, through the transaction's own
    bulk read when it has one (``prefix_list``: the LMDB read transactions).

    Args:
        txn: An open transaction.
        table: A declared table name.
        prefix: The key prefix (may be empty).
        start: Where to begin (as for :meth:`ReadTxn.items`).
        limit: The most pairs to return (None: all).

    Returns:
        A new list.
    """
    bulk = getattr(txn, "prefix_list", None)
    if bulk is not None:
        found: list[tuple[bytes, bytes]] = bulk(table, prefix, start, limit)
        return found
    pairs = txn.items(table, prefix, start)
    return list(pairs if limit is None else islice(pairs, limit))


def check_tables(tables: Iterable[str], reserved: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Validate a declaration of table names.

    Args:
        tables: The names to declare (not a single string): non-empty strings, no duplicates.
        reserved: Names an implementation keeps for itself.

    Returns:
        The names as a tuple.

    Raises:
        StorageError: A name is not a non-empty string, is duplicated or is reserved.
    """
    if isinstance(tables, str):
        raise StorageError(f"tables must be a tuple of names, not the string {tables!r}")
    result = tuple(tables)
    seen: set[str] = set()
    for name in result:
        if not isinstance(name, str) or not name:
            raise StorageError(f"table names must be non-empty strings, got {name!r}")
        if name in reserved:
            raise StorageError(f"table name {name!r} is reserved")
        if name in seen:
            raise StorageError(f"table {name!r} is declared twice")
        seen.add(name)
    return result


def check_key(key: bytes) -> None:
    """Check that ``key`` is a valid key.

    Args:
        key: The candidate key.

    Raises:
        TypeError: ``key`` is not ``bytes``.
        StorageError: ``key`` is empty or longer than :data:`MAX_KEY_SIZE`.
    """
    if not isinstance(key, bytes):
        raise TypeError(f"keys must be bytes, got {type(key).__name__}")
    if not 0 < len(key) <= MAX_KEY_SIZE:
        raise StorageError(f"keys must be 1 to {MAX_KEY_SIZE} bytes long, got {len(key)}")


def check_value(value: bytes) -> None:
    """Check that ``value`` is a valid value.

    Args:
        value: The candidate value.

    Raises:
        TypeError: ``value`` is not ``bytes``.
    """
    if not isinstance(value, bytes):
        raise TypeError(f"values must be bytes, got {type(value).__name__}")


def prefix_successor(prefix: bytes) -> bytes | None:
    """Return the smallest byte string greater than every string starting with ``prefix``.

    Args:
        prefix: A key prefix.

    Returns:
        The exclusive upper bound of the prefix range, or ``None`` when there is none
        (``prefix`` is empty or made only of ``0xff`` bytes).
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def iteration_start(prefix: bytes, start: bytes | None, reverse: bool) -> tuple[bytes | None, bool]:
    """Compute where an iteration with these arguments begins.

    Args:
        prefix: The key prefix of the iteration.
        start: The ``start`` argument of :meth:`ReadTxn.items`.
        reverse: Whether the iteration runs in descending order.

    Returns:
        ``(bound, inclusive)``: the iteration begins at the first key ``>= bound`` (``> bound``
        when not inclusive), or in reverse at the last key ``<= bound`` (``< bound``);
        ``bound=None`` means the very first (last) key of the table.
    """
    if reverse:
        upper = prefix_successor(prefix)
        if start is not None and (upper is None or start < upper):
            return start, True
        return upper, False
    if start is None or start < prefix:
        return prefix, True
    return start, True


def step_sorted(
    keys: list[bytes],
    bound: bytes | None,
    inclusive: bool,
    reverse: bool,
    masked: dict[bytes, bytes | None] | None = None,
) -> bytes | None:
    """Return the first key of a sorted list past ``bound`` in the direction of travel.

    Args:
        keys: Keys in ascending order.
        bound: Forward, the result is ``>= bound`` (``> bound`` when not inclusive); reverse,
            ``<= bound`` (``< bound``). ``None`` means the first (last) key.
        inclusive: Whether ``bound`` itself qualifies.
        reverse: Travel towards smaller keys.
        masked: Keys to skip.

    Returns:
        The key found, or ``None``.
    """
    if reverse:
        if bound is None:
            i = len(keys) - 1
        else:
            i = (bisect_right(keys, bound) if inclusive else bisect_left(keys, bound)) - 1
        if masked:
            while i >= 0 and keys[i] in masked:
                i -= 1
        return keys[i] if i >= 0 else None
    if bound is None:
        i = 0
    else:
        i = bisect_left(keys, bound) if inclusive else bisect_right(keys, bound)
    if masked:
        while i < len(keys) and keys[i] in masked:
            i += 1
    return keys[i] if i < len(keys) else None


class TableOverlay:
    """The uncommitted changes of one table in a write transaction.

    ``values`` maps each changed key to its new value, or to ``None`` when it is deleted;
    ``cleared`` means every key the table had before the transaction is deleted. The sorted
    list of the live (not deleted) keys is built only when an iteration asks for it, then
    kept up to date while it stays small, so bulk loads stay cheap.
    """

    __slots__ = ("_sorted", "cleared", "values")

    _SORTED_LIMIT = 4096

    def __init__(self) -> None:
        self.values: dict[bytes, bytes | None] = {}
        self.cleared = False
        self._sorted: list[bytes] | None = None

    def put(self, key: bytes, value: bytes) -> None:
        """Record a new value for ``key``.

        Args:
            key: The key.
            value: Its new value.
        """
        if self._sorted is not None and self.values.get(key) is None:
            if len(self._sorted) < self._SORTED_LIMIT:
                insort(self._sorted, key)
            else:
                self._sorted = None
        self.values[key] = value

    def delete(self, key: bytes) -> None:
        """Record the deletion of ``key``.

        Args:
            key: The key.
        """
        if self._sorted is not None and self.values.get(key) is not None:
            if len(self._sorted) < self._SORTED_LIMIT:
                del self._sorted[bisect_left(self._sorted, key)]
            else:
                self._sorted = None
        self.values[key] = None

    def clear(self) -> None:
        """Record the deletion of every key of the table."""
        self.values = {}
        self.cleared = True
        self._sorted = []

    def live_keys(self) -> list[bytes]:
        """Return the keys given a value by the transaction, in ascending order.

        Returns:
            The sorted list; do not modify it.
        """
        if self._sorted is None:
            self._sorted = sorted(k for k, v in self.values.items() if v is not None)
        return self._sorted
