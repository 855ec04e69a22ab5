"""The LMDB :class:`~commitdb.storage.base.Storage`.

Layout
    One LMDB environment per database: a directory holding ``data.mdb`` and ``lock.mdb``.
    Each declared table is a named LMDB sub-database; a reserved sub-database,
    ``__commitdb__``, holds the storage format marker (``format`` = ``1``). Tables declared
    when an existing database is opened read-write are created on the fly.

Durability
    Durable by default: a write transaction is on disk when ``with storage.write()`` returns
    (LMDB ``sync`` and ``metasync``). ``durable=False`` is the explicit fast mode for bulk
    loads and tests (no fsync; a system crash may lose the last transactions or, LMDB warns,
    damage the file).

Write transactions
    ``write()`` begins LMDB's write transaction at once and holds it to the end, so writers of
    several processes serialize and reads inside the transaction are consistent. Changes do
    not go into it while the ``with`` block runs: they are buffered per table in a
    :class:`~commitdb.storage.base.TableOverlay` (reads merge it over the LMDB transaction,
    so they see their own writes) and written, in key order, at commit. Hence:

    * an exception leaves the LMDB transaction unchanged and it is ended by a commit that
      writes nothing. It is never aborted: py-lmdb 3 makes the abort of a write transaction
      wait until no operation of any thread is in flight on the environment, which busy
      reader threads can postpone indefinitely;
    * the changes of a transaction are held in memory until it commits; bulk loads should
      commit in batches.

Map size and growth
    LMDB needs a maximum map size up front. A database starts with :data:`DEFAULT_MAP_SIZE`
    (1 GiB of address space; the file itself only grows as pages are written) or the
    ``map_size`` given to :meth:`LmdbStorage.create`, and is opened with at least that. When a
    commit hits ``MapFullError`` the full LMDB transaction is aborted, the map doubled, a new
    write transaction begun and the overlays written again: the caller's ``with`` block never
    notices. This is exact because no other writer can commit in between: writers of this
    process are serialized by a lock held for the whole transaction, and a commit by another
    process in that instant is detected (the new transaction id differs) and reported as a
    :class:`~commitdb.errors.StorageError` asking to retry. When another process has grown the
    map beyond this process's, beginning a transaction raises ``MapResizedError`` and the new
    size is adopted.

    Resizing the map unmaps it, so it happens only while no other transaction of this process
    is open on the environment: transactions pass a gate, and a resize waits (at most
    :data:`GROW_WAIT_TIMEOUT` seconds) for the open ones to finish while new ones wait for
    it. A thread that holds a read transaction while its own write transaction needs a larger
    map gets a StorageError rather than a deadlock.

One environment per process
    LMDB forbids opening an environment twice in one process. Environments are kept in a
    process-wide registry keyed by the real path of the directory, with reference counts:
    opening a path that is already open shares its environment, and every
    :class:`LmdbStorage` keeps its own ``closed`` flag. The environment is closed when the
    last storage sharing it is closed and its last transaction has ended. A path first
    opened read-only in this process cannot be opened read-write until it is closed; a
    read-write environment may be shared by read-only storages (which refuse writes). A
    durable storage sharing an environment first opened with ``durable=False`` flushes the
    environment after each of its commits.

One-key reads
    :meth:`LmdbStorage.get` reads one value in a read transaction of its own: the hot path
    of document reads. It takes no lock while no resize is under way: it announces itself
    in a list of tokens that a resize waits to see empty (and that keeps the environment
    open), and backs off to the gate when a resize has begun (see ``_SharedEnv.get_one``).

Concurrency
    Several processes may use one database at once (LMDB locking); readers never block the
    writer. Within a process, write transactions are serialized by a lock (a nested write
    transaction in the same thread raises StorageError) and read transactions may be opened
    from any thread (the binding opens environments with ``MDB_NOTLS``), each transaction
    being used only by the thread that opened it.

Damaged files
    Before LMDB maps a data file it is checked in Python: both meta pages (magic, data
    format version, page size, page numbers), and that every page the database still uses
    lies inside the file. A file may legitimately end before its last page when the pages
    past its end are free, so those are checked against the free-page list, which is read
    from the file. Anything wrong raises :class:`~commitdb.errors.CorruptDatabaseError`
    instead of letting LMDB read past the end of the file (which would kill the process
    with SIGBUS). Damage inside pages that LMDB reads later surfaces as
    CorruptDatabaseError from the operation that meets it.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast

import lmdb

from commitdb.errors import CorruptDatabaseError, DatabaseClosedError, ReadOnlyError, StorageError
from commitdb.storage.base import (
    MAX_KEY_SIZE,
    ReadTxn,
    Storage,
    TableOverlay,
    WriteTxn,
    check_key,
    check_tables,
    check_value,
    iteration_start,
    prefix_successor,
    step_sorted,
)

if TYPE_CHECKING:
    _Env = lmdb.Environment
    _Txn = lmdb.Transaction[bytes]
    _Cursor = lmdb.Cursor[bytes]
    _Db = lmdb._Database

__all__ = (
    "DEFAULT_MAP_SIZE",
    "FORMAT_VERSION",
    "GROW_WAIT_TIMEOUT",
    "MAX_TABLES",
    "LmdbStorage",
)

DEFAULT_MAP_SIZE = 1 << 30
"""The initial map size of a new database, and the least one an existing one is opened with."""

MAX_TABLES = 254
"""The most tables a database may have (LMDB's ``max_dbs``, less the format marker)."""

MAX_READERS = 1024
"""LMDB reader slots: the most read transactions open at once, over all processes."""

GROW_WAIT_TIMEOUT = 60.0
"""Seconds a map resize waits for this process's open transactions to finish."""

FORMAT_VERSION = b"1"
"""The storage format this module reads and writes."""

_META_TABLE = "__commitdb__"
_PREFIX_BLOCK = 32  # prefix_list reads blocks of pairs, doubling up to _PREFIX_BLOCK_MAX
_PREFIX_BLOCK_MAX = 1024
_FORMAT_KEY = b"format"
_RESERVED = frozenset({_META_TABLE})

_CORRUPT_ERRORS: tuple[type[lmdb.Error], ...] = tuple(
    cls
    for cls in (
        lmdb.CorruptedError,
        lmdb.PageNotFoundError,
        lmdb.PanicError,
        lmdb.InvalidError,
        lmdb.VersionMismatchError,
        getattr(lmdb, "BadChecksumError", None),
    )
    if cls is not None
)


def _translate(exc: lmdb.Error, path: str) -> StorageError:
    """Turn an LMDB exception into the matching commitdb error."""
    if isinstance(exc, _CORRUPT_ERRORS):
        return CorruptDatabaseError(f"{path}: the database is damaged ({exc})")
    if isinstance(exc, lmdb.ReadonlyError):
        return ReadOnlyError(f"{path}: the database is read-only ({exc})")
    if isinstance(exc, lmdb.MapFullError):
        return StorageError(f"{path}: the LMDB map is full ({exc})")
    return StorageError(f"{path}: LMDB error: {exc}")


# --------------------------------------------------------------------------------------------
# Checking a data file before LMDB maps it (LMDB 0.9 format, data version 1, 64-bit).

_MDB_MAGIC = 0xBEEFC0DE
_DATA_VERSION = 1
_PAGE_HEADER = 16
_META_SIZE = 136
_P_BRANCH, _P_LEAF, _P_OVERFLOW, _P_META, _P_LEAF2, _P_SUBP = 0x01, 0x02, 0x04, 0x08, 0x20, 0x40
_P_TYPE = _P_BRANCH | _P_LEAF | _P_OVERFLOW | _P_META | _P_LEAF2 | _P_SUBP
_F_BIGDATA = 0x01
_P_INVALID = (1 << 64) - 1
_MAX_DEPTH = 32

_PAGE = struct.Struct("=QHHHH")  # mp_pgno, mp_pad, mp_flags, mp_lower, mp_upper
_NODE = struct.Struct("=HHHH")  # mn_lo, mn_hi, mn_flags, mn_ksize
_META = struct.Struct("=IIQQ48s48sQQ")  # magic, version, address, mapsize, dbs, last_pg, txnid
_DB = struct.Struct("=IHHQQQQQ")  # pad (psize), flags, depth, pages x3, entries, root
_U16 = struct.Struct("=H")
_U64 = struct.Struct("=Q")


@dataclass(frozen=True)
class _Header:
    """What the committed meta page of a data file says."""

    psize: int
    map_size: int
    last_pg: int
    txnid: int
    free_root: int
    main_root: int


class _DataFile:
    """Random access to the pages of a data file, each read checked against its size."""

    def __init__(self, path: str, handle: BinaryIO, size: int) -> None:
        self.path = path
        self.handle = handle
        self.size = size

    def corrupt(self, reason: str) -> CorruptDatabaseError:
        return CorruptDatabaseError(f"{self.path} is not a valid commitdb database: {reason}")

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset + length > self.size:
            raise self.corrupt(f"{what} lies beyond the end of the file ({self.size} bytes)")
        self.handle.seek(offset)
        data = self.handle.read(length)
        if len(data) != length:
            raise self.corrupt(f"{what} could not be read")
        return data

    def meta(self, index: int, psize: int) -> tuple[int, int, int, bytes, bytes, int, int]:
        page = self.read(index * psize, _PAGE_HEADER + _META_SIZE, f"meta page {index}")
        pgno, _, flags, _, _ = _PAGE.unpack_from(page)
        magic, version, _, map_size, free, main, last_pg, txnid = _META.unpack_from(
            page, _PAGE_HEADER
        )
        if magic != _MDB_MAGIC:
            raise self.corrupt(f"meta page {index} has no LMDB magic number (not an LMDB file)")
        if version != _DATA_VERSION:
            raise self.corrupt(f"unsupported LMDB data format version {version}")
        if pgno != index or not flags & _P_META:
            raise self.corrupt(f"page {index} is not a meta page")
        return magic, version, map_size, free, main, last_pg, txnid


def _read_header(data: _DataFile) -> _Header:
    """Read and check both meta pages and pick the committed one, as LMDB does."""
    if data.size < 2 * (_PAGE_HEADER + _META_SIZE):
        raise data.corrupt(f"the data file is too short ({data.size} bytes)")
    _, _, _, free0, _, _, _ = data.meta(0, 1)
    psize = _DB.unpack(free0)[0]
    if psize < 256 or psize > 0x10000 or psize & (psize - 1):
        raise data.corrupt(f"implausible page size {psize}")
    if data.size < 2 * psize:
        raise data.corrupt(f"the data file is too short ({data.size} bytes) for two meta pages")
    metas = [data.meta(0, psize), data.meta(1, psize)]
    _, _, map_size, free, main, last_pg, txnid = max(metas, key=lambda meta: meta[6])
    free_db, main_db = _DB.unpack(free), _DB.unpack(main)
    if free_db[0] != psize:
        raise data.corrupt("the meta pages disagree on the page size")
    if last_pg < 1:
        raise data.corrupt(f"the committed meta page claims {last_pg + 1} pages")
    for root, what in ((free_db[7], "free-page list"), (main_db[7], "table directory")):
        if root != _P_INVALID and not 2 <= root <= last_pg:
            raise data.corrupt(f"the root page {root} of the {what} is out of range")
    return _Header(psize, map_size, last_pg, txnid, free_db[7], main_db[7])


def _free_pages(data: _DataFile, header: _Header) -> set[int]:
    """Walk the free-page list of the committed state and return the page numbers it holds."""
    psize, file_pages = header.psize, data.size // header.psize
    free: set[int] = set()
    seen: set[int] = set()
    stack = [] if header.free_root == _P_INVALID else [(header.free_root, 0)]
    while stack:
        pgno, depth = stack.pop()
        if pgno in seen or depth > _MAX_DEPTH or not 2 <= pgno < file_pages:
            raise data.corrupt(f"the free-page list reaches page {pgno}, which is missing")
        seen.add(pgno)
        page = data.read(pgno * psize, psize, f"page {pgno}")
        stored, _, flags, lower, upper = _PAGE.unpack_from(page)
        kind = flags & _P_TYPE
        if stored != pgno or kind not in (_P_BRANCH, _P_LEAF):
            raise data.corrupt(f"page {pgno} of the free-page list is damaged")
        if not _PAGE_HEADER <= lower <= upper <= psize:
            raise data.corrupt(f"page {pgno} of the free-page list is damaged")
        for i in range((lower - _PAGE_HEADER) // 2):
            (offset,) = _U16.unpack_from(page, _PAGE_HEADER + 2 * i)
            if offset < upper or offset + _NODE.size > psize:
                raise data.corrupt(f"page {pgno} of the free-page list is damaged")
            lo, hi, node_flags, key_size = _NODE.unpack_from(page, offset)
            if kind == _P_BRANCH:
                stack.append((lo | hi << 16 | node_flags << 32, depth + 1))
                continue
            size, start = lo | hi << 16, offset + _NODE.size + key_size
            if node_flags & _F_BIGDATA:
                if start + 8 > psize:
                    raise data.corrupt(f"page {pgno} of the free-page list is damaged")
                (first,) = _U64.unpack_from(page, start)
                count = (_PAGE_HEADER - 1 + size) // psize + 1
                if not 2 <= first or first + count > file_pages:
                    raise data.corrupt(f"the free-page list reaches page {first}, which is missing")
                value = data.read(first * psize + _PAGE_HEADER, size, f"page {first}")
            else:
                if start + size > psize:
                    raise data.corrupt(f"page {pgno} of the free-page list is damaged")
                value = page[start : start + size]
            if len(value) < 8:
                raise data.corrupt(f"page {pgno} of the free-page list is damaged")
            (n,) = _U64.unpack_from(value)
            if 8 * (n + 1) > len(value):
                raise data.corrupt(f"page {pgno} of the free-page list is damaged")
            free.update(struct.unpack_from(f"={n}Q", value, 8))
    return free


def _check_extent(data: _DataFile, header: _Header) -> None:
    """Check that every page the committed state uses lies inside the file."""
    needed = header.last_pg + 1
    file_pages = data.size // header.psize
    if file_pages >= needed:
        return
    if needed > 2 * file_pages + (1 << 20):
        raise data.corrupt(f"it claims {needed} pages but holds only {file_pages} (truncated?)")
    free = _free_pages(data, header)
    for pgno in range(file_pages, needed):
        if pgno not in free:
            raise data.corrupt(
                f"the file is truncated: it holds {file_pages} of its {needed} pages "
                f"({data.size} bytes) and page {pgno} is in use"
            )


def _check_data_file(path: str) -> _Header:
    """Check that LMDB can map the data file of ``path`` safely; return its committed header.

    Raises:
        CorruptDatabaseError: The file is not an LMDB data file, or is truncated.
        StorageError: The file cannot be read.
    """
    data_path = os.path.join(path, "data.mdb")
    try:
        with open(data_path, "rb") as handle:
            attempts = 0
            while True:
                data = _DataFile(data_path, handle, os.fstat(handle.fileno()).st_size)
                header = _read_header(data)
                try:
                    _check_extent(data, header)
                    return header
                except CorruptDatabaseError:
                    # A writer in another process may have recycled the pages being read:
                    # look again while the committed transaction keeps changing.
                    attempts += 1
                    data = _DataFile(data_path, handle, os.fstat(handle.fileno()).st_size)
                    if attempts >= 3 or _read_header(data).txnid == header.txnid:
                        raise
    except OSError as exc:
        raise StorageError(f"cannot read {data_path}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The process-wide registry of open environments.


class _SharedEnv:
    """One open LMDB environment, shared by every :class:`LmdbStorage` on its path.

    It owns the table handles, the in-process writer lock, and the gate that lets a map
    resize wait until no transaction of this process is open on the environment.
    """

    def __init__(self, path: str, env: _Env, *, readonly: bool, durable: bool) -> None:
        self.path = path
        self.env = env
        self.readonly = readonly
        self.durable = durable
        self.dbs: dict[str, _Db] = {}
        self.refs = 0  # storages sharing the environment, guarded by _REGISTRY_LOCK
        self.closed = False
        self._write_lock = threading.Lock()
        self._writer: int | None = None
        # One plain lock guards the counters below; the condition shares it and is used only
        # to wait (and to wake waiters while a resize is under way), so that the hot paths
        # take a C-level lock once instead of going through Condition's Python methods.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pins = 0  # sessions (transactions) keeping the environment open
        self._active = 0  # LMDB transactions open, over all threads
        self._resizing = False
        self._local = threading.local()
        # One-shot reads in flight (see get_one): a token each, appended and popped without
        # the lock (both atomic in CPython).
        self._inflight: list[None] = []

    # -- lifetime --

    def pin(self) -> None:
        """Keep the environment open until the matching :meth:`unpin`."""
        with self._lock:
            self._pins += 1

    def unpin(self) -> None:
        """Release a :meth:`pin`; the last one may close the environment."""
        with self._lock:
            self._pins -= 1
            idle = self._pins == 0
        # A storage closing meanwhile re-checks the pins itself, under the registry lock.
        if idle and self.refs == 0:
            _close_if_unused(self)

    def unused(self) -> bool:
        """Tell whether no storage and no transaction uses the environment any more."""
        with self._lock:
            return self.refs == 0 and self._pins == 0 and not self._inflight

    # -- the writer lock --

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the in-process writer lock; refuse a nested write transaction."""
        me = threading.get_ident()
        if self._writer == me:
            raise StorageError(f"{self.path}: a write transaction is already open in this thread")
        with self._write_lock:
            self._writer = me
            try:
                yield
            finally:
                self._writer = None

    # -- the gate --

    def _held(self) -> int:
        held: int = getattr(self._local, "held", 0)
        return held

    def enter(self) -> None:
        """Count a transaction in; wait while a resize is under way."""
        with self._lock:
            held = self._held()
            if not held:
                while self._resizing:
                    self._cond.wait()
            self._active += 1
            self._local.held = held + 1

    def leave(self) -> None:
        """Count a transaction out."""
        with self._lock:
            self._active -= 1
            self._local.held = self._held() - 1
            # Only a resize waits for transactions to leave (it sets _resizing first, under
            # this lock): nobody else needs waking.
            if self._resizing:
                self._cond.notify_all()

    def begin_read(self) -> _Txn:
        """Pin the environment, enter the gate and begin a read transaction.

        The read-side twin of ``pin()`` + :meth:`begin`, taking the lock once.

        Raises:
            lmdb.Error: LMDB refused; the gate was left and the pin released.
        """
        local = self._local
        pin = 1
        while True:
            with self._lock:
                held: int = getattr(local, "held", 0)
                if not held:
                    while self._resizing:
                        self._cond.wait()
                self._pins += pin
                self._active += 1
                local.held = held + 1
            pin = 0
            try:
                return self.env.begin(write=False)
            except lmdb.MapResizedError:
                self.leave()  # still pinned: the environment stays open while it resizes
                try:
                    self.resize(None)
                except BaseException:
                    self.unpin()
                    raise
            except BaseException:
                self.end_read(None)
                raise

    def get_one(self, db: _Db, key: bytes) -> bytes | None:
        """Read one value in a read transaction of its own.

        Lock-free while no resize is under way: the read puts a token in ``_inflight``,
        *then* looks at ``_resizing``; a resize sets ``_resizing``, *then* waits for the
        tokens to go (and :meth:`unused` counts them). Under the GIL these steps are
        sequentially consistent, so either the resize sees the token or the read sees the
        flag, and backs off to the gated path (:meth:`_get_one_gated`).

        Raises:
            lmdb.Error: LMDB refused.
        """
        inflight = self._inflight
        inflight.append(None)
        try:
            if not self._resizing:
                try:
                    txn = self.env.begin()
                except lmdb.MapResizedError:  # another process grew the map: the gated path
                    txn = None
                if txn is not None:
                    try:
                        return txn.get(key, db=db)
                    finally:
                        try:
                            txn.abort()
                        except lmdb.Error:
                            pass
        finally:
            inflight.pop()
            if self.refs == 0 and self._pins == 0:  # the last storage closed meanwhile
                _close_if_unused(self)
        return self._get_one_gated(db, key)

    def _get_one_gated(self, db: _Db, key: bytes) -> bytes | None:
        """:meth:`get_one` through the gate (pinned, counted in ``_active``), for when a
        resize is under way.

        The thread's count of held transactions is read (a thread holding another one must
        not wait for a resize) but not changed: nothing else runs in this thread while the
        transaction is open, so nothing could look at it.
        """
        pin = 1
        while True:
            with self._lock:
                if self._resizing and not getattr(self._local, "held", 0):
                    while self._resizing:
                        self._cond.wait()
                self._pins += pin
                self._active += 1
            pin = 0
            try:
                txn = self.env.begin(write=False)
            except lmdb.MapResizedError:
                self._leave_one()
                try:
                    self.resize(None)
                except BaseException:
                    self.unpin()
                    raise
                continue
            except BaseException:
                self._leave_one()
                self.unpin()
                raise
            try:
                return txn.get(key, db=db)
            finally:
                try:
                    txn.abort()
                except lmdb.Error:
                    pass
                with self._lock:
                    self._active -= 1
                    self._pins -= 1
                    if self._resizing:
                        self._cond.notify_all()
                    idle = self._pins == 0
                if idle and self.refs == 0:
                    _close_if_unused(self)

    def _leave_one(self) -> None:
        with self._lock:
            self._active -= 1
            if self._resizing:
                self._cond.notify_all()

    def end_read(self, txn: _Txn | None) -> None:
        """End a transaction of :meth:`begin_read`: abort it, leave the gate, unpin."""
        if txn is not None:
            try:
                txn.abort()
            except lmdb.Error:
                pass
        local = self._local
        with self._lock:
            self._active -= 1
            self._pins -= 1
            local.held -= 1
            if self._resizing:
                self._cond.notify_all()
            idle = self._pins == 0
        if idle and self.refs == 0:
            _close_if_unused(self)

    def _wait(self, deadline: float, poll: float | None = None) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StorageError(
                f"{self.path}: gave up resizing the LMDB map after {GROW_WAIT_TIMEOUT:g} s "
                "waiting for the other transactions of this process to finish"
            )
        self._cond.wait(remaining if poll is None else min(remaining, poll))

    def resize(self, seen: int | None, own: _Txn | None = None) -> None:
        """Resize the map once no other transaction is open in this process.

        Args:
            seen: The map size that proved too small: the map is doubled unless it has grown
                since. ``None`` adopts the size set by another process.
            own: The calling thread's write transaction, which ran out of room. It is aborted
                once nothing else runs (the binding may stall aborting a write transaction
                while other operations are in flight) and counted out of the gate, whether
                the resize succeeds or not.
        """
        deadline = time.monotonic() + GROW_WAIT_TIMEOUT
        allowed = 0 if own is None else 1
        with self._lock:
            try:
                if self._held() > allowed:
                    raise StorageError(
                        f"{self.path}: the LMDB map must grow, which cannot happen while this "
                        "thread holds another transaction on the database; close it first"
                    )
                while self._resizing:
                    self._wait(deadline)
                self._resizing = True
                try:
                    while self._active > allowed or self._inflight:
                        # one-shot reads do not notify: poll for them (they last microseconds)
                        self._wait(deadline, 0.001 if self._inflight else None)
                    if own is not None:
                        self._release_locked(own)
                        own = None
                    if seen is None:
                        self.env.set_mapsize(0)
                    else:
                        current = self.env.info()["map_size"]
                        if current <= seen:
                            self.env.set_mapsize(2 * current)
                finally:
                    self._resizing = False
                    self._cond.notify_all()
            finally:
                if own is not None:
                    self._release_locked(own)

    def _release_locked(self, txn: _Txn) -> None:
        """Abort ``txn`` and count it out; the caller holds ``_cond``."""
        try:
            txn.abort()
        except lmdb.Error:
            pass
        self._active -= 1
        self._local.held = self._held() - 1
        self._cond.notify_all()

    def begin(self, *, write: bool) -> _Txn:
        """Enter the gate and begin an LMDB transaction, adopting a map grown elsewhere.

        Raises:
            lmdb.Error: LMDB refused; the gate was left.
        """
        while True:
            self.enter()
            try:
                return self.env.begin(write=write)
            except lmdb.MapResizedError:
                self.leave()
                self.resize(None)
            except BaseException:
                self.leave()
                raise

    def end(self, txn: _Txn) -> None:
        """Abort ``txn`` (a no-op once committed) and leave the gate."""
        try:
            txn.abort()
        except lmdb.Error:
            pass
        finally:
            self.leave()

    def end_clean(self, txn: _Txn) -> None:
        """End a write transaction that changed nothing, and leave the gate.

        Committing an unchanged LMDB transaction writes nothing; unlike an abort it never
        waits for the operations of other threads to drain.
        """
        try:
            txn.commit()
        except lmdb.Error:
            self.end(txn)
        else:
            self.leave()

    # -- tables --

    def open_tables(self, names: Iterable[str], *, create: bool) -> None:
        """Open the handles of ``names``, creating the missing tables when ``create``.

        Without ``create``, a missing table is left without a handle (it reads as empty).
        Handles are opened in a write transaction, or without one in a read-only
        environment: the binding forgets handles opened in a read transaction.
        """
        missing = [name for name in names if name not in self.dbs]
        if not missing:
            return
        with self.writing():
            try:
                if self.readonly:
                    self._open_read_only(missing)
                else:
                    self._open_in_write_txn(missing, create)
            except lmdb.IncompatibleError as exc:
                raise CorruptDatabaseError(
                    f"{self.path}: a declared table clashes with a non-table entry"
                ) from exc
            except lmdb.Error as exc:
                raise _translate(exc, self.path) from exc

    def _open_read_only(self, names: list[str]) -> None:
        for name in names:
            while True:
                self.enter()
                try:
                    self.dbs[name] = self.env.open_db(name.encode(), create=False)
                except lmdb.NotFoundError:
                    pass
                except lmdb.MapResizedError:
                    self.leave()
                    self.resize(None)
                    continue
                except BaseException:
                    self.leave()
                    raise
                self.leave()
                break

    def _open_in_write_txn(self, names: list[str], create: bool) -> None:
        while True:
            txn = self.begin(write=True)
            opened: dict[str, _Db] = {}
            try:
                for name in names:
                    try:
                        opened[name] = self.env.open_db(name.encode(), txn=txn, create=create)
                    except lmdb.NotFoundError:
                        if create:
                            raise
                txn.commit()
            except lmdb.MapFullError:
                seen = self.env.info()["map_size"]
                self.end(txn)
                self.resize(seen)
                continue
            except BaseException:
                self.end(txn)
                raise
            self.end(txn)
            self.dbs.update(opened)
            return


_REGISTRY: dict[str, _SharedEnv] = {}
_REGISTRY_LOCK = threading.Lock()


def _close_if_unused(shared: _SharedEnv) -> None:
    """Close the environment of ``shared`` once no storage or transaction uses it."""
    with _REGISTRY_LOCK:
        if shared.closed or not shared.unused():
            return
        shared.closed = True
        if _REGISTRY.get(shared.path) is shared:
            del _REGISTRY[shared.path]
        shared.env.close()


def _open_env(path: str, *, create: bool, readonly: bool, durable: bool, map_size: int) -> _Env:
    """Open the LMDB environment of ``path``; LMDB errors become commitdb errors."""
    try:
        env = lmdb.open(
            path,
            map_size=map_size,
            subdir=True,
            readonly=readonly,
            metasync=durable,
            sync=durable,
            create=create,
            mode=0o644,
            max_dbs=MAX_TABLES + 1,
            max_readers=MAX_READERS,
            lock=True,
        )
    except lmdb.Error as exc:
        raise _translate(exc, path) from exc
    try:
        env.reader_check()
    except lmdb.Error:
        pass
    return env


def _check_format(shared: _SharedEnv) -> None:
    """Check the format marker of a freshly opened environment."""
    shared.open_tables((_META_TABLE,), create=False)
    meta = shared.dbs.get(_META_TABLE)
    if meta is None:
        raise CorruptDatabaseError(
            f"{shared.path} is an LMDB database but not a commitdb one (no format marker)"
        )
    try:
        txn = shared.begin(write=False)
    except lmdb.Error as exc:
        raise _translate(exc, shared.path) from exc
    try:
        version = txn.get(_FORMAT_KEY, db=meta)
    except lmdb.Error as exc:
        raise _translate(exc, shared.path) from exc
    finally:
        shared.end(txn)
    if version != FORMAT_VERSION:
        raise StorageError(
            f"{shared.path} has storage format {version!r}; this version of commitdb reads "
            f"format {FORMAT_VERSION!r}"
        )


def _acquire(path: str, *, readonly: bool, durable: bool) -> _SharedEnv:
    """Return the shared environment of an existing database, opening it if needed."""
    key = os.path.realpath(path)
    with _REGISTRY_LOCK:
        shared = _REGISTRY.get(key)
        if shared is not None:
            if shared.readonly and not readonly:
                raise StorageError(
                    f"{path} is already open read-only in this process; close it before "
                    "opening it read-write"
                )
            shared.refs += 1
            return shared
        if not os.path.isdir(key):
            raise CorruptDatabaseError(f"{path} is not a commitdb database (not a directory)")
        if not os.path.isfile(os.path.join(key, "data.mdb")):
            raise CorruptDatabaseError(f"{path} is not a commitdb database (no data.mdb)")
        header = _check_data_file(key)
        map_size = max(header.map_size, (header.last_pg + 1) * header.psize, DEFAULT_MAP_SIZE)
        env = _open_env(key, create=False, readonly=readonly, durable=durable, map_size=map_size)
        shared = _SharedEnv(key, env, readonly=readonly, durable=durable)
        try:
            _check_format(shared)
        except BaseException:
            env.close()
            raise
        shared.refs = 1
        _REGISTRY[key] = shared
        return shared


def _release(shared: _SharedEnv) -> None:
    """Drop one storage's reference to ``shared``."""
    with _REGISTRY_LOCK:
        shared.refs -= 1
    _close_if_unused(shared)


# --------------------------------------------------------------------------------------------
# Transactions.


def _seek(cursor: _Cursor, bound: bytes | None, inclusive: bool, reverse: bool) -> bool:
    """Position ``cursor`` where an iteration from ``bound`` begins (see iteration_start)."""
    if not reverse:
        if not bound:
            found = cursor.first()
        else:
            found = cursor.set_range(bound[:MAX_KEY_SIZE])
        if bound:
            while found and (cursor.key() < bound if inclusive else cursor.key() <= bound):
                found = cursor.next()
        return found
    if bound is None:
        return cursor.last()
    if not bound:
        return False
    found = cursor.set_range(bound[:MAX_KEY_SIZE]) or cursor.last()
    while found and (cursor.key() > bound if inclusive else cursor.key() >= bound):
        found = cursor.prev()
    return found


def _past(key: bytes, bound: bytes | None, inclusive: bool, reverse: bool) -> bool:
    """Tell whether ``key`` lies past ``bound`` in the direction of travel."""
    if bound is None:
        return True
    if inclusive and key == bound:
        return True
    return key < bound if reverse else key > bound


class _LmdbReadTxn(ReadTxn):
    """A read transaction, and the read side of the write transaction.

    ``_overlays`` holds the uncommitted changes of a write transaction (empty for readers);
    every read merges them over the LMDB transaction. A plain reader (``_writes`` false)
    never has overlays, so its reads go straight to LMDB.
    """

    _writes = False

    def __init__(self, storage: LmdbStorage, txn: _Txn) -> None:
        self._storage = storage
        self._txn = txn
        self._overlays: dict[str, TableOverlay] = {}
        self._done = False
        self._tables = storage._table_set
        self._dbs = storage._shared.dbs

    def _check_live(self) -> None:
        if self._storage.closed:
            raise DatabaseClosedError(f"{self._storage.path}: the storage was closed")
        if self._done:
            raise StorageError("the transaction is finished")

    def _db(self, table: str) -> _Db | None:
        self._check_live()
        return self._storage._db(table)

    def _failed(self, exc: lmdb.Error) -> StorageError:
        return _translate(exc, self._storage.path)

    def get(self, table: str, key: bytes) -> bytes | None:
        """Return the value under ``key`` in ``table``, or ``None``; see :class:`ReadTxn`."""
        if not (isinstance(key, bytes) and 0 < len(key) <= MAX_KEY_SIZE):
            check_key(key)
        if self._done or self._storage._closed:
            self._check_live()
        if table not in self._tables:
            self._storage._db(table)  # raises the unknown-table error
        db = self._dbs.get(table)
        if self._overlays:
            overlay = self._overlays.get(table)
            if overlay is not None:
                if key in overlay.values:
                    return overlay.values[key]
                if overlay.cleared:
                    return None
        if db is None:
            return None
        try:
            return self._txn.get(key, db=db)
        except lmdb.Error as exc:
            raise self._failed(exc) from exc

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
        db = self._db(table)
        if not self._writes:
            return self._scan(db, prefix, start, reverse, True)
        return self._iterate(table, db, prefix, start, reverse, True)

    def keys(self, table: str, prefix: bytes = b"") -> Iterator[bytes]:
        """Iterate over the keys starting with ``prefix``; see :class:`ReadTxn`."""
        db = self._db(table)
        if not self._writes:
            return (key for key, _ in self._scan(db, prefix, None, False, False))
        return (key for key, _ in self._iterate(table, db, prefix, None, False, False))

    def prefix_list(
        self, table: str, prefix: bytes, start: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """The ``(key, value)`` pairs whose key starts with ``prefix``, from the first key
        ``>= start``, at most `limit` of them, in key order, as a list (see
        :func:`~commitdb.storage.base.prefix_items`): the cursor steps in C."""
        db = self._db(table)
        if self._writes:
            found_all = self._iterate(table, db, prefix, start, False, True)
            return list(found_all if limit is None else itertools.islice(found_all, limit))
        if db is None:
            return []
        out: list[tuple[bytes, bytes]] = []
        try:
            cursor = self._txn.cursor(db)
            if start is None and prefix and len(prefix) <= MAX_KEY_SIZE:
                found = cursor.set_range(prefix)
            else:
                found = _seek(cursor, *iteration_start(prefix, start, False), False)
            if not found:
                return out
            # Blocks read in C; the keys past the prefix are cut off by a binary search (the
            # keys are sorted, from one >= prefix: those after the prefix's range are the
            # ones >= its successor).
            pairs: Iterator[tuple[bytes, bytes]] = cursor.iternext()
            end = prefix_successor(prefix)
            bound = (end,) if end is not None else None  # sorts before (end, any value)
            left = limit
            size = _PREFIX_BLOCK
            while True:
                n = size if left is None else min(size, left)
                block = list(itertools.islice(pairs, n))
                if bound is not None and block and block[-1] >= bound:
                    out += block[: bisect.bisect_left(block, bound)]
                    break
                out += block
                if len(block) < n:
                    break
                if left is not None:
                    left -= n
                    if not left:
                        break
                size = min(2 * size, _PREFIX_BLOCK_MAX)
        except lmdb.Error as exc:
            raise self._failed(exc) from exc
        return out

    def _scan(
        self, db: _Db | None, prefix: bytes, start: bytes | None, reverse: bool, values: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        """The iteration of a plain reader: one LMDB cursor, nothing to merge."""
        if db is None:
            return
        try:
            cursor = self._txn.cursor(db)
            if start is None and not reverse and len(prefix) <= MAX_KEY_SIZE:
                # the common case: begin at the prefix's first key
                found = cursor.set_range(prefix) if prefix else cursor.first()
            else:
                bound, inclusive = iteration_start(prefix, start, reverse)
                found = _seek(cursor, bound, inclusive, reverse)
        except lmdb.Error as exc:
            raise self._failed(exc) from exc
        if not found:
            return
        # The cursor's own iterator steps in C; each step first checks that the
        # transaction is still open (an iterator is only valid inside its ``with`` block).
        pairs: Iterator[tuple[bytes, bytes]] | Iterator[bytes]
        if values:
            pairs = cursor.iterprev() if reverse else cursor.iternext()
        else:
            pairs = cursor.iterprev(values=False) if reverse else cursor.iternext(values=False)
        storage = self._storage
        while True:
            if self._done or storage._closed:
                self._check_live()
            try:
                item = next(pairs, None)
            except lmdb.Error as exc:
                raise self._failed(exc) from exc
            if item is None:
                return
            if isinstance(item, tuple):
                key, value = item
            else:
                key, value = item, b""
            if not key.startswith(prefix):
                return
            yield key, value

    def _iterate(
        self,
        table: str,
        db: _Db | None,
        prefix: bytes,
        start: bytes | None,
        reverse: bool,
        values: bool,
    ) -> Iterator[tuple[bytes, bytes]]:
        if db is None:
            return
        bound, inclusive = iteration_start(prefix, start, reverse)
        cursor: _Cursor | None = None
        base: bytes | None = None  # the cursor's key; None once the table is exhausted
        while True:
            self._check_live()
            overlay = self._overlays.get(table)
            try:
                if overlay is not None and overlay.cleared:
                    base = None
                else:
                    if cursor is None:
                        cursor = self._txn.cursor(db)
                        base = cursor.key() if _seek(cursor, bound, inclusive, reverse) else None
                    # Skip keys already produced and keys the transaction changed.
                    while base is not None and (
                        not _past(base, bound, inclusive, reverse)
                        or (overlay is not None and base in overlay.values)
                    ):
                        found = cursor.prev() if reverse else cursor.next()
                        base = cursor.key() if found else None
                key = base
                if overlay is not None:
                    other = step_sorted(overlay.live_keys(), bound, inclusive, reverse)
                    if other is not None and (
                        key is None or (other > key if reverse else other < key)
                    ):
                        key = other
                if key is None or not key.startswith(prefix):
                    return
                if not values:
                    value = b""
                elif key is base and cursor is not None:
                    value = cursor.value()
                else:
                    assert overlay is not None
                    value = overlay.values[key] or b""
            except lmdb.Error as exc:
                raise self._failed(exc) from exc
            yield key, value
            bound, inclusive = key, False

    def count(self, table: str) -> int:
        """Return the number of keys in ``table``; see :class:`ReadTxn`."""
        db = self._db(table)
        if db is None:
            return 0
        overlay = self._overlays.get(table)
        if overlay is not None and overlay.cleared:
            return len(overlay.live_keys())
        try:
            total = self._txn.stat(db)["entries"]
            if overlay is not None:
                for key, value in overlay.values.items():
                    present = self._txn.get(key, db=db) is not None
                    if value is None:
                        total -= present
                    else:
                        total += not present
        except lmdb.Error as exc:
            raise self._failed(exc) from exc
        return total


class _LmdbReader(_LmdbReadTxn):
    """What :meth:`LmdbStorage.read` returns: a read transaction that is its own context
    manager (the LMDB transaction begins on entry and ends on exit)."""

    def __init__(self, storage: LmdbStorage) -> None:
        self._storage = storage
        self._overlays = {}
        self._done = True  # until entered
        self._tables = storage._table_set
        self._dbs = storage._shared.dbs

    def __enter__(self) -> _LmdbReader:
        storage = self._storage
        if storage._closed:
            storage._check_open()
        try:
            self._txn = storage._shared.begin_read()
        except lmdb.Error as exc:
            raise _translate(exc, storage._path) from exc
        self._done = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done = True
        self._storage._shared.end_read(self._txn)


class _LmdbWriteTxn(_LmdbReadTxn, WriteTxn):
    """The write transaction.

    It holds LMDB's write transaction from start to end (so writers of several processes
    serialize, and its reads are consistent), but keeps its changes in overlays and applies
    them only at commit. Until then the LMDB transaction is unchanged, so ending it after an
    exception is a commit that writes nothing, and a full map at commit is handled by growing
    the map and applying the overlays again.
    """

    _writes = True

    def __init__(self, storage: LmdbStorage, shared: _SharedEnv) -> None:
        self._shared = shared
        try:
            txn = shared.begin(write=True)
        except lmdb.Error as exc:
            raise _translate(exc, shared.path) from exc
        super().__init__(storage, txn)
        self._txn_id = txn.id()
        self._open = True  # the LMDB transaction is still to be ended
        self._dirty = False  # the LMDB transaction holds changes (only while committing)

    def _overlay(self, table: str) -> TableOverlay:
        if self._done or self._storage._closed:
            self._check_live()
        overlay = self._overlays.get(table)
        if overlay is None:
            if table not in self._tables:
                self._storage._db(table)  # raises the unknown-table error
            if self._dbs.get(table) is None:  # pragma: no cover - a writable storage opened all
                raise StorageError(f"{self._storage.path}: table {table!r} has no LMDB database")
            overlay = self._overlays[table] = TableOverlay()
        return overlay

    def put(self, table: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``; see :class:`WriteTxn`."""
        if type(key) is not bytes or not 0 < len(key) <= MAX_KEY_SIZE:
            check_key(key)
        if type(value) is not bytes:
            check_value(value)
        overlay = self._overlays.get(table)
        if overlay is None or self._done or self._storage._closed:
            overlay = self._overlay(table)  # checks the table and that the txn is live
        overlay.put(key, value)

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

    def _apply(self) -> None:
        """Write the overlays into the LMDB transaction, in key order."""
        txn = self._txn
        dbs = self._dbs
        for table, overlay in self._overlays.items():
            db = dbs[table]
            if overlay.cleared:
                txn.drop(db, delete=False)
            changes = overlay.values
            if len(changes) == 1:
                ((key, value),) = changes.items()
                if value is None:
                    txn.delete(key, db=db)
                else:
                    txn.put(key, value, db=db)
                continue
            if None not in changes.values():  # only puts: one C call writes them all
                txn.cursor(db).putmulti(cast("list[tuple[bytes, bytes]]", sorted(changes.items())))
                continue
            for key in sorted(changes):
                value = changes[key]
                if value is None:
                    txn.delete(key, db=db)
                else:
                    txn.put(key, value, db=db)

    def _commit(self) -> None:
        self._check_live()
        for overlay in self._overlays.values():
            if overlay.values or overlay.cleared:
                break
        else:
            return  # nothing to write
        while True:
            try:
                self._dirty = True
                self._apply()
                self._txn.commit()
                break
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as exc:
                raise self._failed(exc) from exc
        self._open = self._dirty = False
        self._shared.leave()
        if self._storage.durable and not self._shared.durable:
            try:
                self._shared.env.sync(True)
            except lmdb.Error as exc:
                raise self._failed(exc) from exc

    def _grow(self) -> None:
        """Abort the full transaction, grow the map and begin again, for a new attempt."""
        try:
            seen = self._shared.env.info()["map_size"]
        except lmdb.Error as exc:
            raise self._failed(exc) from exc
        self._open = self._dirty = False  # resize() ends the transaction, come what may
        try:
            self._shared.resize(seen, own=self._txn)
            self._txn = self._shared.begin(write=True)
        except lmdb.Error as exc:
            raise self._failed(exc) from exc
        self._open = True
        if self._txn.id() != self._txn_id:
            raise StorageError(
                f"{self._storage.path}: another process committed while the LMDB map was "
                "growing; the transaction was not committed, retry it"
            )

    def _finish(self) -> None:
        self._done = True
        if self._open:
            self._open = False
            if self._dirty:
                self._shared.end(self._txn)
            else:
                self._shared.end_clean(self._txn)


class _WriteSession:
    """What :meth:`LmdbStorage.write` returns: pins the environment, takes the in-process
    writer lock (see :meth:`_SharedEnv.writing`) and begins the write transaction on entry;
    commits (on normal exit) and releases all that on exit."""

    __slots__ = ("_storage", "_writer")

    def __init__(self, storage: LmdbStorage) -> None:
        self._storage = storage
        self._writer: _LmdbWriteTxn | None = None

    def __enter__(self) -> WriteTxn:
        storage = self._storage
        storage._check_open()
        if storage._readonly:
            raise ReadOnlyError(f"{storage._path} was opened read-only")
        shared = storage._shared
        shared.pin()
        try:
            me = threading.get_ident()
            if shared._writer == me:
                raise StorageError(
                    f"{shared.path}: a write transaction is already open in this thread"
                )
            shared._write_lock.acquire()
            try:
                shared._writer = me
                self._writer = _LmdbWriteTxn(storage, shared)
            except BaseException:
                shared._writer = None
                shared._write_lock.release()
                raise
        except BaseException:
            shared.unpin()
            raise
        return self._writer

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        writer = self._writer
        assert writer is not None
        shared = writer._shared
        try:
            try:
                if exc_type is None:
                    writer._commit()
            finally:
                writer._finish()
        finally:
            shared._writer = None
            shared._write_lock.release()
            shared.unpin()


# --------------------------------------------------------------------------------------------
# The storage.


class LmdbStorage(Storage):
    """A :class:`~commitdb.storage.base.Storage` in an LMDB environment (a directory).

    Build one with :meth:`create` or :meth:`open`, not with the constructor.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "db")
        >>> with LmdbStorage.create(path, ("blobs",), durable=False) as storage:
        ...     with storage.write() as txn:
        ...         txn.put("blobs", b"k", b"v")
        >>> with LmdbStorage.open(path, ("blobs",), readonly=True) as storage:
        ...     with storage.read() as txn:
        ...         txn.get("blobs", b"k")
        b'v'
    """

    def __init__(
        self,
        shared: _SharedEnv,
        path: str,
        tables: tuple[str, ...],
        *,
        readonly: bool,
        durable: bool,
    ) -> None:
        """Wrap a shared environment; use :meth:`create` or :meth:`open` instead.

        Args:
            shared: The registry entry of the environment (one reference is taken over).
            path: The path as the caller gave it.
            tables: The declared tables, already opened in ``shared``.
            readonly: Refuse write transactions.
            durable: Flush every commit to disk.
        """
        self._shared = shared
        self._path = path
        self._tables = tables
        self._table_set = frozenset(tables)
        self._readonly = readonly
        self._durable = durable
        self._closed = False

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        tables: Iterable[str],
        *,
        durable: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
    ) -> LmdbStorage:
        """Create a new database in the directory ``path``.

        Args:
            path: A directory that does not exist yet, or is empty.
            tables: The table names.
            durable: Flush every commit to disk (``False``: fast, for bulk loads and tests).
            map_size: The initial LMDB map size in bytes; it grows on demand.

        Returns:
            The open storage.

        Raises:
            StorageError: ``path`` exists and is not an empty directory, or LMDB refused.
        """
        names = check_tables(tables, _RESERVED)
        if len(names) > MAX_TABLES:
            raise StorageError(f"at most {MAX_TABLES} tables, got {len(names)}")
        if map_size <= 0:
            raise StorageError(f"map_size must be positive, got {map_size}")
        shown = os.fspath(path)
        made = False
        try:
            if os.path.lexists(shown):
                if not os.path.isdir(shown):
                    raise StorageError(f"cannot create a database at {shown}: it is a file")
                if os.listdir(shown):
                    raise StorageError(f"cannot create a database at {shown}: it is not empty")
            else:
                os.makedirs(shown)
                made = True
        except OSError as exc:
            raise StorageError(f"cannot create a database at {shown}: {exc}") from exc
        key = os.path.realpath(shown)
        with _REGISTRY_LOCK:
            if key in _REGISTRY:  # pragma: no cover - an open database is never empty
                raise StorageError(f"{shown} is already open in this process")
            env: _Env | None = None
            try:
                env = _open_env(
                    key, create=True, readonly=False, durable=durable, map_size=map_size
                )
                shared = _SharedEnv(key, env, readonly=False, durable=durable)
                # The tables and the format marker appear in one transaction.
                with shared.writing():
                    txn = shared.begin(write=True)
                    try:
                        opened = {
                            name: env.open_db(name.encode(), txn=txn, create=True)
                            for name in (_META_TABLE, *names)
                        }
                        txn.put(_FORMAT_KEY, FORMAT_VERSION, db=opened[_META_TABLE])
                        txn.commit()
                    finally:
                        shared.end(txn)
                    shared.dbs.update(opened)
            except BaseException as exc:
                if env is not None:
                    env.close()
                _remove_new_database(shown, made)
                if isinstance(exc, lmdb.Error):
                    raise _translate(exc, shown) from exc
                raise
            shared.refs = 1
            _REGISTRY[key] = shared
        return cls(shared, shown, names, readonly=False, durable=durable)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        tables: Iterable[str],
        *,
        readonly: bool = False,
        durable: bool = True,
    ) -> LmdbStorage:
        """Open an existing database.

        Tables declared here but missing from the database are created (read-write) or read
        as empty (read-only).

        Args:
            path: The database directory.
            tables: The table names used through this storage.
            readonly: Refuse write transactions.
            durable: Flush every commit to disk (``False``: fast, for bulk loads and tests).

        Returns:
            The open storage.

        Raises:
            StorageError: Nothing exists at ``path``, the format is not supported, or the
                path is already open read-only in this process and ``readonly`` is false.
            CorruptDatabaseError: ``path`` is not a commitdb database, or it is damaged.
        """
        names = check_tables(tables, _RESERVED)
        if len(names) > MAX_TABLES:
            raise StorageError(f"at most {MAX_TABLES} tables, got {len(names)}")
        shown = os.fspath(path)
        if not os.path.exists(shown):
            raise StorageError(f"no database at {shown}")
        shared = _acquire(shown, readonly=readonly, durable=durable)
        try:
            shared.open_tables(names, create=not readonly)
        except BaseException:
            _release(shared)
            raise
        return cls(shared, shown, names, readonly=readonly or shared.readonly, durable=durable)

    @classmethod
    def is_compatible(cls, path: str | os.PathLike[str]) -> bool:
        """Tell whether ``path`` holds a database this module can open.

        Args:
            path: A candidate database directory.

        Returns:
            True when it is an undamaged commitdb LMDB database of a supported format.
        """
        try:
            storage = cls.open(path, (), readonly=True)
        except (StorageError, OSError):
            return False
        storage.close()
        return True

    def __repr__(self) -> str:
        state = "closed" if self._closed else "read-only" if self._readonly else "open"
        return f"LmdbStorage({self._path!r}, tables={self._tables!r}, {state})"

    def __enter__(self) -> LmdbStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def readonly(self) -> bool:
        """Whether write transactions are refused."""
        return self._readonly

    @property
    def durable(self) -> bool:
        """Whether every commit is flushed to disk before ``write()`` returns."""
        return self._durable

    @property
    def path(self) -> str:
        """The database directory, as given."""
        return self._path

    @property
    def in_memory(self) -> bool:
        """Always False."""
        return False

    @property
    def tables(self) -> tuple[str, ...]:
        """The declared table names."""
        return self._tables

    @property
    def map_size(self) -> int:
        """The current LMDB map size of the environment, in bytes."""
        self._check_open()
        return self._shared.env.info()["map_size"]

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"{self._path}: the storage was closed")

    def _db(self, table: str) -> _Db | None:
        if table not in self._table_set:
            raise StorageError(
                f"unknown table {table!r}; declared tables: {', '.join(self._tables)}"
            )
        return self._shared.dbs.get(table)

    def read(self) -> AbstractContextManager[ReadTxn]:
        """Open a read transaction on the last committed state; see :class:`Storage`."""
        return _LmdbReader(self)

    def get(self, table: str, key: bytes) -> bytes | None:
        """Read one value in a transaction of its own; see :class:`Storage`."""
        if type(key) is not bytes or not 0 < len(key) <= MAX_KEY_SIZE:
            check_key(key)
        if self._closed:
            self._check_open()
        if table not in self._table_set:
            self._db(table)  # raises the unknown-table error
        db = self._shared.dbs.get(table)
        if db is None:
            return None
        try:
            return self._shared.get_one(db, key)
        except lmdb.Error as exc:
            raise _translate(exc, self._path) from exc

    def write(self) -> AbstractContextManager[WriteTxn]:
        """Open the write transaction; see :class:`Storage`."""
        return _WriteSession(self)

    def close(self) -> None:
        """Close the storage; idempotent. The environment closes with its last user."""
        if self._closed:
            return
        self._closed = True
        _release(self._shared)


def _remove_new_database(path: str, made: bool) -> None:
    """Undo a failed :meth:`LmdbStorage.create`."""
    for name in ("data.mdb", "lock.mdb"):
        try:
            os.remove(os.path.join(path, name))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                break
    if made:
        try:
            os.rmdir(path)
        except OSError:
            pass
