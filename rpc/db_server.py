"""DatabaseServer: serves flat and commit databases by name over the native protocol.

Clients list the served databases and address one by name (``cdb:<name>`` for a commit
database, ``db:<name>`` for a flat one) — never by filesystem path. The wire methods are
listed in ``docs/remote-and-replication.md`` (appendix).

Threads and handles
    An engine handle (:class:`~commitdb.CommitDatabase`, :class:`~commitdb.Database`) keeps
    Python caches that are not safe to share between threads, so each handle is used by one
    thread at a time. For a commit database the server keeps one handle for the event loop,
    which answers cheap reads (a commit header, a document at a commit, the change counter)
    inline, without a thread hop, and a pool of handles lent to worker threads for heavy reads
    and for writes. Writes run in worker threads (at most ``write_threads`` at once: while one
    waits for its fsync the next one validates and replays its program); LMDB serializes the
    write transactions themselves and reads never wait for a write. No LMDB transaction spans
    an ``await``.

Commits
    A client's mutable state is committed by sending its program: the server decodes it
    against its definitions, replays it on its own state of the base commit and commits, so
    document snapshots are always computed by the server.

Flat databases
    Each client session opens its own handle, so transactions are per session; a client that
    disconnects mid-transaction is rolled back. The calls of one session run in order.

Live notifications
    A watcher polls each commit database's commit count (an O(1) read, every
    ``poll_interval`` seconds and at once after a write of this server), so commits from
    *any* writer — this server, another server, a local process — are announced. A subscriber
    is a cursor in the database's creation order plus a credit of events its client has room
    for (the client acknowledges what it consumed): the server keeps no queue of events, and a
    slow subscriber never stalls a writer. One that falls more than ``subscriber_queue``
    commits behind is told how many commits it missed (and from which creation sequence, to
    resync with ``commits_since``) and resumes at the newest commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

from commitdb.blobs import BlobLayout, BlobStream
from commitdb.codec import from_wire, pack, to_wire
from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitData, CommitHeader
from commitdb.database import Database
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import CommitDBError, StorageError
from commitdb.ids import BlobId, CommitId
from commitdb.opcodes import op_to_wire
from commitdb.state import CommitState
from commitdb.types import Attachment, ConceptType, OptionalType
from commitdb.values import Key
from rpc.connection import Connection
from rpc.errors import (
    AuthenticationError,
    ConnectionClosedError,
    InvalidArgumentsError,
    MethodNotFoundError,
)
from rpc.packets import Hello, Notify, Request

__all__ = ("DatabaseServer", "ServedDatabase", "open_served")

log = logging.getLogger("rpc.db_server")

SUBSCRIBER_QUEUE = 1024
"""Default bound on how far (in commits) a subscriber may fall behind before missing events."""

MAX_WINDOW = 65536
"""The most events a client may have in flight to it (its credit)."""

_INLINE_BYTES = 1 << 20  # blob stream pieces up to this size are spooled inline
_MERGE_STATES = 16  # virtual merge states kept per served database
_MERGE_LOCK = threading.Lock()  # worker threads share the caches of merge states
WHOLE_BLOB = 16 << 20
"""Blobs up to this size travel in one answer; larger ones in ranges (frames are limited)."""
ENUMERATION_CACHE = 64 << 20
"""Bytes of packed state enumerations a served commit database keeps."""


# --------------------------------------------------------------------------------------------
# Wire helpers


def _cid(w: Any) -> CommitId:
    if type(w) is not bytes or len(w) != 32:
        raise InvalidArgumentsError("a commit id is 32 bytes")
    return CommitId(w)


def _opt_cid(w: Any) -> CommitId | None:
    return None if w is None else _cid(w)


def _bid(w: Any) -> BlobId:
    if type(w) is not bytes or len(w) != 32:
        raise InvalidArgumentsError("a blob id is 32 bytes")
    return BlobId(w)


def _ids(ids: Any) -> list[bytes]:
    return sorted(bytes(i) for i in ids)


def _opt_bytes(c: CommitId | None) -> bytes | None:
    return None if c is None else bytes(c)


def _author(w: Any) -> str | None:
    if w is not None and type(w) is not str:
        raise InvalidArgumentsError("an author is a string")
    return w


def _label(w: Any) -> str:
    if type(w) is not str:
        raise InvalidArgumentsError("a label is a string")
    return w


def _layout_wire(layout: BlobLayout) -> list[Any]:
    return [layout.data_type, layout.components]


def _layout(w: Any) -> BlobLayout:
    if w is None:
        return BlobLayout()
    return BlobLayout(str(w[0]), int(w[1]))


def _attachment(w: Any, defs: Definitions) -> Attachment:
    if type(w) is not bytes or len(w) != 16:
        raise InvalidArgumentsError("an attachment is its 16-byte runtime id")
    return defs.check_attachment(uuid.UUID(bytes=w))


def _key(w: Any, defs: Definitions) -> Key:
    if type(w) is not bytes or len(w) != 32:
        raise InvalidArgumentsError("a key is 32 bytes (concept runtime id, instance id)")
    concept = defs.query_type(uuid.UUID(bytes=w[:16]))
    if not isinstance(concept, ConceptType):
        raise InvalidArgumentsError(f"unknown concept {uuid.UUID(bytes=w[:16])}")
    return Key(concept, uuid.UUID(bytes=w[16:]))


def _key_wire(key: Key) -> bytes:
    return key.concept.runtime_id.bytes + key.id.bytes


def _extend_info_wire(info: ExtendInfo) -> dict[str, Any]:
    return {
        "concepts": [u.bytes for u in info.concepts],
        "clubs": [u.bytes for u in info.clubs],
        "enumerations": [u.bytes for u in info.enumerations],
        "structures": [u.bytes for u in info.structures],
        "attachments": [u.bytes for u in info.attachments],
        "pools": [u.bytes for u in info.pools],
        "memberships": [[a.bytes, b.bytes] for a, b in info.memberships],
    }


def _blob_info_wire(info: Any) -> list[Any]:
    return [bytes(info.blob_id), _layout_wire(info.layout), info.size]


def _commit_data_wire(cd: CommitData) -> list[Any]:
    return [cd.header.to_wire(), cd.program]


def _commit_data(w: Any) -> CommitData:
    if type(w) is not list or len(w) != 2 or type(w[1]) is not bytes:
        raise InvalidArgumentsError("a commit data is [header, program bytes]")
    return CommitData(CommitHeader.from_wire(w[0]), w[1])


def _guard(fn: Callable[[Any, list[Any]], Any], db: Any, args: list[Any]) -> Any:
    """Run a wire method; malformed arguments are reported as such."""
    try:
        return fn(db, args)
    except (IndexError, KeyError, TypeError) as exc:
        raise InvalidArgumentsError(f"bad arguments: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Worker threads


class _Executor:
    """Worker threads fed by a queue.

    On asyncio a call costs one thread switch each way (``anyio.to_thread`` costs several
    times more, which is most of a commit's latency). A call whose task is cancelled still
    waits for its thread: the work is never abandoned half-way (graceful shutdown closes the
    databases only after it ended).
    """

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self._size:
                t = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                t.start()
                self._threads.append(t)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in a worker thread and return its result."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another event loop: anyio's threads
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(self._size)
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        if len(self._threads) < self._size:
            self._start()
        fut = loop.create_future()
        self._queue.put((loop, fut, fn, args))
        with anyio.CancelScope(shield=True):
            return await fut

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Queue ``fn(*args)`` for a worker thread; its concurrent future is returned to the
        connection, which answers from it (no task per request, one hop back to the loop).

        The future is marked running at once: a peer's cancel answers the call at once but
        the work is never abandoned (as with :meth:`run`).
        """
        if len(self._threads) < self._size:
            self._start()
        cf: concurrent.futures.Future[Any] = concurrent.futures.Future()
        cf.set_running_or_notify_cancel()
        self._queue.put((None, cf, fn, args))
        return cf

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, fut, fn, args = item
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the waiting task
                result, error = None, exc
            if loop is None:  # submit(): the connection waits on the concurrent future
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(result)
                continue
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                log.debug("a worker result arrived after the event loop closed")

    def close(self) -> None:
        """Stop the threads once the queued work is done."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for t in threads:
            t.join()


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


# --------------------------------------------------------------------------------------------
# Served databases


class _Handles:
    """The engine handles of one database file: one for the event loop, a pool lent to worker
    threads (each handle is used by one thread at a time)."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._open = opener
        self.loop = opener()
        self._idle: list[Any] = []
        self._all: list[Any] = [self.loop]
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        """Lend a handle to the calling thread."""
        with self._lock:
            handle = self._idle.pop() if self._idle else None
        if handle is None:
            handle = self._open()
            with self._lock:
                self._all.append(handle)
        try:
            yield handle
        finally:
            with self._lock:
                self._idle.append(handle)

    def close(self) -> None:
        """Close every handle (no thread may be using one)."""
        with self._lock:
            handles, self._all, self._idle = self._all, [], []
        for handle in handles:
            handle.close()


class _Enumerations:
    """Packed enumerations of (state, attachment), least recently used first dropped, at
    most `capacity` bytes (thread-safe: worker threads share it)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._size = 0
        self._items: OrderedDict[tuple[bytes, bytes], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[bytes, bytes]) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[bytes, bytes], packed: bytes) -> None:
        if len(packed) > self._capacity // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = packed
            self._size += len(packed)
            while self._size > self._capacity:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


@dataclass(eq=False)
class _Subscriber:
    """A live subscription: a cursor in creation order and a credit of events."""

    tag: str
    conn: Connection
    served: ServedDatabase
    next_seq: int
    credit: int
    window: int
    max_lag: int
    wake: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


@dataclass(eq=False)
class ServedDatabase:
    """A database the server offers under a name.

    Attributes:
        name: The name clients open it by.
        path: Its directory (never shown to clients).
        kind: ``"commit"`` or ``"flat"``.
        durable: Whether commits are flushed to disk before they are acknowledged.
        handles: The server's engine handles on it.
        head_seq: For a commit database, the creation sequence the next commit will get.
        subscribers: Live subscriptions to its commits.
    """

    name: str
    path: str
    kind: str
    durable: bool
    handles: _Handles
    head_seq: int = 0
    subscribers: set[_Subscriber] = field(default_factory=set)
    merge_states: dict[tuple[int, bytes, bytes], CommitState] = field(default_factory=dict)
    enumerations: _Enumerations = field(default_factory=lambda: _Enumerations(ENUMERATION_CACHE))

    def describe(self) -> dict[str, Any]:
        """What ``databases`` lists: name, kind, uuid, documentation."""
        db = self.handles.loop
        return {
            "name": self.name,
            "kind": self.kind,
            "uuid": db.uuid().bytes,
            "documentation": db.documentation(),
        }

    def refresh_head(self) -> bool:
        """Read the commit count (inline, O(1)); wake subscribers if it moved."""
        if self.kind != "commit":
            return False
        head = self.handles.loop.commit_count()
        if head == self.head_seq:
            return False
        self.head_seq = head
        for sub in self.subscribers:
            sub.wake.set()
        return True


def open_served(name: str, path: str, *, durable: bool = True) -> ServedDatabase:
    """Open a database directory for serving (its kind is detected).

    Args:
        name: The name clients will open it by.
        path: The database directory.
        durable: Flush every commit to disk before acknowledging it.

    Returns:
        The served database.

    Raises:
        StorageError: `path` holds neither kind of database.
    """
    if CommitDatabase.is_compatible(path):
        handles = _Handles(lambda: CommitDatabase.open(path, durable=durable))
        served = ServedDatabase(name, path, "commit", durable, handles)
        served.head_seq = handles.loop.commit_count()
        return served
    if Database.is_compatible(path):
        return ServedDatabase(
            name, path, "flat", durable, _Handles(lambda: Database.open(path, durable=durable))
        )
    raise StorageError(f"{path} is neither a commitdb commit database nor a flat database")


class DatabaseServer:
    """A ServerApp serving databases by name (see the module documentation).

    Attributes:
        name: The server name sent in the welcome.
        authenticator: Checks the ``credentials`` of a client's hello (None: anyone).
        served: The served databases by name.
    """

    def __init__(
        self,
        databases: Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        name: str = "commitdb-server",
        authenticator: Callable[[Any], bool] | None = None,
        poll_interval: float = 0.05,
        read_threads: int = 8,
        write_threads: int = 2,
        subscriber_queue: int = SUBSCRIBER_QUEUE,
        durable: bool = True,
    ) -> None:
        """Open the databases to serve.

        Args:
            databases: Name to database directory.
            name: The server name sent in the welcome.
            authenticator: Checks the credentials of a client's hello.
            poll_interval: Seconds between two checks for commits of other writers.
            read_threads: Heavy reads running at once (in worker threads).
            write_threads: Writes prepared at once, over all the served databases (LMDB
                stores one commit at a time per database; the others validate meanwhile).
            subscriber_queue: How far (in commits) a subscriber may fall behind before it is
                told it missed events.
            durable: Flush every commit to disk before acknowledging it.
        """
        self.name = name
        self.authenticator = authenticator
        self.poll_interval = poll_interval
        self.subscriber_queue = max(1, subscriber_queue)
        self.durable = durable
        self.served: dict[str, ServedDatabase] = {}
        self.readers = _Executor("commitdb-read", max(1, read_threads))
        self.writers = _Executor("commitdb-write", max(1, write_threads))
        self._watchers: anyio.abc.TaskGroup | None = None
        self._ids = itertools.count(1)
        self.accepted = 0  # connections accepted so far
        try:
            for db_name, path in (databases or {}).items():
                self.add(db_name, os.fspath(path))
        except BaseException:
            self.close()
            raise

    def add(self, name: str, path: str | os.PathLike[str]) -> ServedDatabase:
        """Serve the database at `path` under `name` (also while serving: call it from the
        event loop thread then).

        Args:
            name: The name clients open it by.
            path: The database directory.

        Returns:
            The served database.

        Raises:
            ValueError: The name is taken or empty.
            StorageError: `path` holds no database.
        """
        if not name or name in self.served:
            raise ValueError(f"a database is already served as {name!r}" if name else "no name")
        served = open_served(name, os.fspath(path), durable=self.durable)
        self.served[name] = served
        if self._watchers is not None and served.kind == "commit":
            self._watchers.start_soon(self._watch, served)
        log.info("serving %s database %r from %s", served.kind, name, served.path)
        return served

    def close(self) -> None:
        """Stop the worker threads and close every served database (after the server
        stopped)."""
        self.readers.close()
        self.writers.close()
        for s in self.served.values():
            s.handles.close()

    # -- watchers -------------------------------------------------------------------------
    async def run_watchers(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Announce the new commits of every served commit database (run it in a task group;
        it runs until cancelled)."""
        async with anyio.create_task_group() as tg:
            self._watchers = tg
            for s in list(self.served.values()):
                if s.kind == "commit":
                    tg.start_soon(self._watch, s)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._watchers = None

    async def _watch(self, s: ServedDatabase) -> None:
        while True:
            await anyio.sleep(self.poll_interval)
            try:
                s.refresh_head()
            except CommitDBError:
                log.warning("cannot read %s; announcements paused", s.name, exc_info=True)
                await anyio.sleep(1)

    # -- ServerApp ------------------------------------------------------------------------
    async def accept(self, hello: Hello, conn: Connection) -> dict[str, Any]:
        """Check the client's credentials and set the connection's handler.

        Args:
            hello: The client's hello.
            conn: The new connection.

        Returns:
            The welcome fields: the server name and the served databases.

        Raises:
            AuthenticationError: The credentials were refused.
        """
        peer = _peer_name(conn)
        if self.authenticator is not None and not self.authenticator(
            hello.fields.get("credentials")
        ):
            log.warning("refused a client from %s: bad credentials", peer)
            raise AuthenticationError("credentials refused")
        self.accepted += 1
        conn.handler = _DatabaseHandler(self, conn, peer)
        log.info("%s: client %r connected from %s", conn.name, hello.fields.get("client"), peer)
        welcome: dict[str, Any] = {
            "server": self.name,
            "databases": [s.describe() for s in self.served.values()],
        }
        wanted = hello.fields.get("open")
        opened = self.served.get(wanted) if type(wanted) is str else None
        if opened is not None and opened.kind == "commit":  # what its "open" call answers
            welcome["definitions"] = list(_encoded_definitions(opened.handles.loop))
        return welcome

    def connection_closed(self, conn: Connection) -> None:
        """Roll back the session's transactions and drop its subscriptions.

        Args:
            conn: The connection that ended.
        """
        handler = conn.handler
        if isinstance(handler, _DatabaseHandler):
            handler.close()
            log.info("%s: client from %s disconnected", conn.name, handler.peer)


def _peer_name(conn: Connection) -> str:
    address = conn.extra(anyio.abc.SocketAttribute.remote_address, None)
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address) if address else "a local socket"


# --------------------------------------------------------------------------------------------
# Sessions


class _Session:
    """What one connection holds on one database: its flat handle, its blob streams; its calls
    run in order (``pending`` counts the queued ones; a call is answered inline only when none
    is)."""

    def __init__(self, db: Any) -> None:
        self.db = db  # flat: the session's own handle; commit: the server's event-loop handle
        self.lock = anyio.Lock()
        self.pending = 0
        self.closing = False
        self.streams: dict[int, BlobStream] = {}
        self.stream_ids = itertools.count(1)

    def close(self, flat: bool) -> None:
        for stream in self.streams.values():
            stream.abort()
        self.streams.clear()
        if flat:
            try:
                if self.db.in_transaction():
                    log.info("rolled back the open transaction of a closed session")
                self.db.close()  # rolls back an open transaction
            except CommitDBError:
                log.debug("closing a session handle failed", exc_info=True)


class _DatabaseHandler:
    """Serves one client connection."""

    def __init__(self, server: DatabaseServer, conn: Connection, peer: str) -> None:
        self.server = server
        self.conn = conn
        self.peer = peer
        self.sessions: dict[str, _Session] = {}
        self.subscribers: dict[str, _Subscriber] = {}
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for sub in self.subscribers.values():
            sub.served.subscribers.discard(sub)
            sub.scope.cancel()
        self.subscribers.clear()
        for name, session in self.sessions.items():
            if session.pending:
                session.closing = True  # the last queued call closes it
            else:
                session.close(self.server.served[name].kind == "flat")
        self.sessions.clear()

    def _served(self, name: str, kind: str) -> ServedDatabase:
        s = self.server.served.get(name)
        if s is None or s.kind != kind:
            raise MethodNotFoundError(
                f"no {kind} database named {name!r} is served "
                f"(served: {', '.join(sorted(self.server.served)) or 'none'})"
            )
        return s

    def _session(self, s: ServedDatabase) -> _Session:
        session = self.sessions.get(s.name)
        if session is None:
            if self.closed:
                raise ConnectionClosedError("connection closed")
            db = Database.open(s.path, durable=s.durable) if s.kind == "flat" else s.handles.loop
            session = _Session(db)
            self.sessions[s.name] = session
        return session

    # -- dispatch -------------------------------------------------------------------------
    def handle_request(self, conn: Connection, req: Request) -> Any:
        """Answer a request: inline (a plain value) or in a task (an awaitable)."""
        t = req.target
        if t.startswith("cdb:"):
            s = self._served(t[4:], "commit")
            spec = _COMMIT_METHODS.get(req.method)
            if spec is not None:
                fn, mode = spec
                if mode == _INLINE:
                    return _guard(fn, s.handles.loop, req.args)
                if mode == _WRITE:
                    return self._write(s, fn, req.args)
                return self._read(s, fn, req.args)
            if req.method in _STATE_METHODS:
                return self._state_call(s, req.args, req.method)
            if req.method in _STREAMS:
                return self._stream_call(s, req.args, _STREAMS[req.method])
            if req.method == "subscribe":
                return self._subscribe(s, req.args)
            if req.method == "unsubscribe":
                return self._unsubscribe(s, req.args)
            raise MethodNotFoundError(f"commit databases have no method {req.method!r}")
        if t.startswith("db:"):
            s = self._served(t[3:], "flat")
            fspec = _FLAT_METHODS.get(req.method)
            if fspec is not None:
                return self._in_session(s, fspec[0], req.args, fspec[1])
            if req.method in _STREAMS:
                return self._stream_call(s, req.args, _STREAMS[req.method])
            raise MethodNotFoundError(f"flat databases have no method {req.method!r}")
        if t == "server":
            if req.method == "databases":
                return [s.describe() for s in self.server.served.values()]
            if req.method == "ping":
                return "pong"
            raise MethodNotFoundError(f"unknown server method {req.method!r}")
        raise MethodNotFoundError(f"unknown target {t!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        """Credit acknowledgements of subscribers (``<tag>`` ``ack [n]``)."""
        sub = self.subscribers.get(notify.target)
        if sub is not None and notify.method == "ack":
            try:
                n = int(notify.args[0])
            except (ValueError, IndexError, TypeError):
                log.debug("%s: malformed ack %r", conn.name, notify.args)
                return
            if n > 0:
                sub.credit = min(sub.window, sub.credit + n)
                sub.wake.set()
            return
        log.debug("%s: ignored notification %s.%s", conn.name, notify.target, notify.method)

    # -- execution ------------------------------------------------------------------------
    # On asyncio a read or a write is handed to a worker thread and answered from its
    # concurrent future (see Connection: no task, no cancel scopes, one hop back); on another
    # event loop it runs in a task.
    def _read(self, s: ServedDatabase, fn: Callable[[Any, list[Any]], Any], args: Any) -> Any:
        if _asyncio_loop() is None:
            return self.server.readers.run(_borrowed, s.handles, fn, args)
        return self.server.readers.submit(_borrowed, s.handles, fn, args)

    def _write(self, s: ServedDatabase, fn: Callable[[Any, list[Any]], Any], args: Any) -> Any:
        loop = _asyncio_loop()
        if loop is None:
            return self._write_in_task(s, fn, args)
        return self.server.writers.submit(_announced_write, loop, s, fn, args)

    async def _write_in_task(
        self, s: ServedDatabase, fn: Callable[[Any, list[Any]], Any], args: Any
    ) -> Any:
        try:
            return await self.server.writers.run(_borrowed, s.handles, fn, args)
        finally:
            s.refresh_head()  # announce at once (the watcher is for other writers)

    def _in_session(
        self, s: ServedDatabase, fn: Callable[[Any, list[Any]], Any], args: Any, mode: int
    ) -> Any:
        session = self._session(s)
        if mode == _INLINE and not session.pending:
            return _guard(fn, session.db, args)
        return self._queued(s, session, fn, args, mode)

    async def _queued(
        self,
        s: ServedDatabase,
        session: _Session,
        fn: Callable[[Any, list[Any]], Any],
        args: Any,
        mode: int,
    ) -> Any:
        session.pending += 1
        try:
            async with session.lock:
                if mode == _INLINE:
                    return _guard(fn, session.db, args)
                pool = self.server.writers if mode == _WRITE else self.server.readers
                return await pool.run(_guard, fn, session.db, args)
        finally:
            session.pending -= 1
            if session.closing and not session.pending:
                session.close(s.kind == "flat")

    # -- blob streams (both kinds) --------------------------------------------------------
    def _stream(self, session: _Session, w: Any) -> tuple[int, BlobStream]:
        if type(w) is not int:
            raise InvalidArgumentsError("a blob stream id is an integer")
        stream = session.streams.get(w)
        if stream is None:
            raise CommitDBError("the blob stream is closed")
        return w, stream

    def _stream_call(self, s: ServedDatabase, args: list[Any], op: str) -> Any:
        session = self._session(s)

        def run(db: Any, a: list[Any]) -> Any:
            if op == "open":
                size = a[1] if len(a) > 1 else None
                if size is not None and type(size) is not int:
                    raise InvalidArgumentsError("a blob size is an integer")
                stream = db.blob_stream(_layout(a[0] if a else None), size)
                sid = next(session.stream_ids)
                session.streams[sid] = stream
                return sid
            sid, stream = self._stream(session, a[0])
            if op == "write":
                data = a[1]
                if type(data) is not bytes:
                    raise InvalidArgumentsError("blob data is bytes")
                try:
                    return stream.write(data)
                except CommitDBError:
                    session.streams.pop(sid, None)
                    raise
            session.streams.pop(sid, None)
            if op == "close":
                return bytes(stream.close())
            stream.abort()
            return None

        data = args[1] if op == "write" and len(args) > 1 else None
        big = isinstance(data, bytes) and len(data) > _INLINE_BYTES
        mode = _WRITE if op == "close" else _READ if big else _INLINE
        result = self._in_session(s, run, args, mode)
        if op == "close" and s.kind == "commit":
            return self._after_write(s, result)
        return result

    async def _after_write(self, s: ServedDatabase, work: Any) -> Any:
        try:
            return await work
        finally:
            s.refresh_head()

    # -- commit database specials ---------------------------------------------------------
    def _subscribe(self, s: ServedDatabase, args: list[Any]) -> Any:
        window = args[0] if args else 1024
        if type(window) is not int or window < 1:
            raise InvalidArgumentsError("the subscription window is a positive integer")
        window = min(window, MAX_WINDOW)
        tag = args[1] if len(args) > 1 else f"sub:{next(self.server._ids)}"
        if type(tag) is not str or not tag or tag in self.subscribers:
            raise InvalidArgumentsError(f"the subscription tag {tag!r} is invalid or in use")
        s.refresh_head()
        sub = _Subscriber(
            tag,
            self.conn,
            s,
            s.head_seq,
            window,
            window,
            self.server.subscriber_queue,
        )
        self.subscribers[tag] = sub
        s.subscribers.add(sub)
        self.conn.start_soon(self._deliver, sub)
        log.info("%s: subscribed to %s (from sequence %d)", self.conn.name, s.name, sub.next_seq)
        return [tag, sub.next_seq]

    def _unsubscribe(self, s: ServedDatabase, args: list[Any]) -> Any:
        sub = self.subscribers.pop(args[0], None) if args and type(args[0]) is str else None
        if sub is None:
            return False
        sub.served.subscribers.discard(sub)
        sub.scope.cancel()
        log.info("%s: unsubscribed from %s", self.conn.name, s.name)
        return True

    async def _deliver(self, sub: _Subscriber) -> None:
        s = sub.served
        target = sub.tag
        conn = sub.conn
        try:
            with sub.scope:
                while True:
                    if sub.credit <= 0 or sub.next_seq >= s.head_seq:
                        sub.wake = anyio.Event()
                        await sub.wake.wait()
                        continue
                    behind = s.head_seq - sub.next_seq
                    if behind > sub.max_lag:
                        log.info(
                            "%s: subscriber of %s fell %d commits behind; told to resync",
                            conn.name,
                            s.name,
                            behind,
                        )
                        first = sub.next_seq
                        sub.next_seq = s.head_seq
                        sub.credit -= 1
                        await conn.notify(target, "missed", [behind, first])
                        continue
                    db: CommitDatabase = s.handles.loop
                    batch = db.commits_since(sub.next_seq, min(sub.credit, 256))
                    if not batch:  # the head moved back (another process rebuilt the file)
                        sub.next_seq = s.head_seq
                        continue
                    sub.next_seq = batch[-1][0] + 1
                    sub.credit -= len(batch)
                    for seq, cid in batch:
                        await conn.notify(target, "commit", [db.commit_header(cid).to_wire(), seq])
        except (ConnectionClosedError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            s.subscribers.discard(sub)
            if self.subscribers.get(sub.tag) is sub:
                del self.subscribers[sub.tag]

    def _state_call(self, s: ServedDatabase, args: list[Any], name: str) -> Any:
        fn, mode = _STATE_METHODS[name]
        if mode == _INLINE and type(args[0] if args else None) is not list:
            return _guard(fn, s.handles.loop, args)
        return self._read(s, lambda db, a: fn(_MergeStates(db, s), a), args)


def _borrowed(handles: _Handles, fn: Callable[[Any, list[Any]], Any], args: Any) -> Any:
    with handles.borrow() as db:
        return _guard(fn, db, args)


def _announced_write(
    loop: asyncio.AbstractEventLoop,
    s: ServedDatabase,
    fn: Callable[[Any, list[Any]], Any],
    args: Any,
) -> Any:
    """A write in a worker thread; the subscribers are woken (on the loop) before the answer
    goes out, as the callbacks of the loop run in order."""
    try:
        return _borrowed(s.handles, fn, args)
    finally:
        try:
            loop.call_soon_threadsafe(s.refresh_head)  # announce at once
        except RuntimeError:  # the loop is closed: nobody to announce to
            pass


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop (None on another event loop)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _MergeStates:
    """A handle plus the server's small cache of virtual merge states (for state reads)."""

    def __init__(self, db: CommitDatabase, served: ServedDatabase) -> None:
        self.db = db
        self.served = served


def _state(db: Any, w: Any) -> CommitState:
    """The state a wire spec names: None (initial), a commit id, or [ours, theirs] (a
    virtual merge)."""
    if isinstance(db, _MergeStates):
        if type(w) is list:
            if len(w) != 2:
                raise InvalidArgumentsError("a merge state is [ours, theirs]")
            ours, theirs = _cid(w[0]), _cid(w[1])
            cache = db.served.merge_states
            key = (id(db.db), bytes(ours), bytes(theirs))
            with _MERGE_LOCK:
                st = cache.get(key)
            if st is None:
                st = db.db.merge_state(ours, theirs)
                with _MERGE_LOCK:
                    if len(cache) >= _MERGE_STATES:
                        cache.pop(next(iter(cache)))
                    cache[key] = st
            return st
        db = db.db
    if type(w) is list:
        raise InvalidArgumentsError("a merge state is read in a worker thread")
    cid = _opt_cid(w)
    handle: CommitDatabase = db
    return handle.initial_state() if cid is None else handle.state(cid)


# --------------------------------------------------------------------------------------------
# Commit database methods: (db, wire args) -> wire result

_INLINE, _READ, _WRITE = 0, 1, 2


def _present(st: CommitState, att: Attachment, key: Key) -> Any:
    """None for an absent document, else ``[wire value]`` (a document of an optional type
    may exist with the value None)."""
    if not st.has(att, key):
        return None
    return [to_wire(st.get(att, key), att.document_type)]


def _state_get(db: Any, a: list[Any]) -> Any:
    st = _state(db, a[0])
    defs = st.definitions()
    att = _attachment(a[1], defs)
    return _present(st, att, _key(a[2], defs))


def _state_has(db: Any, a: list[Any]) -> Any:
    st = _state(db, a[0])
    defs = st.definitions()
    return st.has(_attachment(a[1], defs), _key(a[2], defs))


def _state_get_many(db: Any, a: list[Any]) -> Any:
    st = _state(db, a[0])
    defs = st.definitions()
    att = _attachment(a[1], defs)
    return [_present(st, att, _key(k, defs)) for k in a[2]]


def _state_keys(db: Any, a: list[Any]) -> Any:
    st = _state(db, a[0])
    return sorted(_key_wire(k) for k in st.keys(_attachment(a[1], st.definitions())))


def _state_enumerate(db: Any, a: list[Any]) -> Any:
    """Every document of an attachment, packed (``[[key, value], ...]`` in key order).

    A state never changes, so the packed answer is kept (see :class:`_Enumerations`): many
    clients reading the head pay for it once."""
    served = db.served if isinstance(db, _MergeStates) else None
    cache_key = (pack(a[0]), bytes(a[1])) if type(a[1]) is bytes else None
    if served is not None and cache_key is not None:
        found = served.enumerations.get(cache_key)
        if found is not None:
            return found
    st = _state(db, a[0])
    att = _attachment(a[1], st.definitions())
    t = att.document_type
    keys = sorted(st.keys(att), key=_key_wire)
    packed = pack([[_key_wire(k), to_wire(st.get(att, k), t)] for k in keys])
    if served is not None and cache_key is not None:
        served.enumerations.put(cache_key, packed)
    return packed


def _state_enabled(db: Any, a: list[Any]) -> Any:
    return [[bytes(c), f] for c, f in _state(db, a[0]).enabled_by_commit_id().items()]


def _state_eval_actions(db: Any, a: list[Any]) -> Any:
    return [[e.header.to_wire(), e.enabled] for e in _state(db, a[0]).eval_actions()]


def _state_trace(db: Any, a: list[Any]) -> Any:
    st = _state(db, a[0])
    defs = st.definitions()
    att = _attachment(a[1], defs)
    t = st.trace(att, _key(a[2], defs))
    doc_type = att.document_type
    return [
        to_wire(t.value, OptionalType(doc_type)),
        [[bytes(step.commit_id), op_to_wire(step.op, doc_type), step.error] for step in t.steps],
        [bytes(c) for c in t.skipped_commits],
    ]


_STATE_METHODS: dict[str, tuple[Callable[[Any, list[Any]], Any], int]] = {
    "state_get": (_state_get, _INLINE),
    "state_has": (_state_has, _INLINE),
    "state_get_many": (_state_get_many, _READ),
    "state_keys": (_state_keys, _READ),
    "state_enumerate": (_state_enumerate, _READ),
    "state_enabled": (_state_enabled, _READ),
    "state_eval_actions": (_state_eval_actions, _READ),
    "state_trace": (_state_trace, _READ),
}


def _commit_program(db: CommitDatabase, a: list[Any]) -> Any:
    base, label, author, program = _opt_cid(a[0]), _label(a[1]), _author(a[2]), a[3]
    if type(program) is not bytes:
        raise InvalidArgumentsError("the program must be bytes")
    log.debug("commit requested: %r on %s", label, base.hex()[:12] if base else "root")
    cid = db.commit_program(label, base, program, author=author)
    log.debug("commit %s %r on %s", cid.hex()[:12], label, base.hex()[:12] if base else "root")
    return bytes(cid)


def _commits_since(db: CommitDatabase, a: list[Any]) -> Any:
    return [[s, bytes(c)] for s, c in db.commits_since(int(a[0]), int(a[1]))]


def _structural(kind: str) -> Callable[[Any, list[Any]], Any]:
    def run(db: Any, a: list[Any]) -> Any:
        write = getattr(db, kind)
        return bytes(write(_label(a[0]), _cid(a[1]), _cid(a[2]), author=_author(a[3])))

    return run


_ENCODED_DEFS: dict[str, bytes] = {}  # digest -> encoded definitions (a few, per process)


def _encoded_definitions(db: Any) -> tuple[str, bytes]:
    """The digest and the encoded definitions, encoded once per digest (every client's open
    asks for them; encoding is most of the server's work of a connect)."""
    digest = str(db.definitions_hexdigest())
    raw = _ENCODED_DEFS.get(digest)
    if raw is None:
        raw = encode_definitions(db.definitions())
        if db.definitions_hexdigest() == digest:  # not extended meanwhile (a writer thread)
            if len(_ENCODED_DEFS) >= 16:
                _ENCODED_DEFS.clear()
            _ENCODED_DEFS[digest] = raw
    return digest, raw


_COMMON: dict[str, tuple[Callable[[Any, list[Any]], Any], int]] = {
    "open": (lambda db, a: list(_encoded_definitions(db)), _INLINE),
    "definitions": (lambda db, a: _encoded_definitions(db)[1], _INLINE),
    "definitions_hexdigest": (lambda db, a: db.definitions_hexdigest(), _INLINE),
    "extend_definitions": (
        lambda db, a: _extend_info_wire(db.extend_definitions(decode_definitions(a[0]))),
        _WRITE,
    ),
    "uuid": (lambda db, a: db.uuid().bytes, _INLINE),
    "documentation": (lambda db, a: db.documentation(), _INLINE),
    "codec_name": (lambda db, a: db.codec_name(), _INLINE),
    "blob": (lambda db, a: _blob(db, _bid(a[0])), _READ),
    "read_blob": (lambda db, a: db.read_blob(_bid(a[0]), int(a[1]), int(a[2])), _READ),
    "blob_info": (
        lambda db, a: None if (i := db.blob_info(_bid(a[0]))) is None else _blob_info_wire(i),
        _INLINE,
    ),
    "blob_infos": (
        lambda db, a: [_blob_info_wire(i) for i in db.blob_infos([_bid(b) for b in a[0]])],
        _READ,
    ),
    "blob_ids": (lambda db, a: _ids(db.blob_ids()), _READ),
    "blob_statistics": (lambda db, a: list(_stats(db.blob_statistics())), _READ),
}


def _blob(db: Any, blob_id: BlobId) -> Any:
    """A whole blob; for one larger than fits a frame, its size (the client reads it in
    ranges)."""
    info = db.blob_info(blob_id)
    if info is None:
        return None
    if info.size > WHOLE_BLOB:
        return info.size
    return db.blob(blob_id)


def _stats(s: Any) -> tuple[int, int, int, int]:
    return (s.count, s.total_size, s.min_size, s.max_size)


_COMMIT_METHODS: dict[str, tuple[Callable[[Any, list[Any]], Any], int]] = {
    **_COMMON,
    "create_blob": (lambda db, a: bytes(db.create_blob(a[0], _layout(a[1]))), _WRITE),
    "data_version": (lambda db, a: db.data_version(), _INLINE),
    "commit_count": (lambda db, a: db.commit_count(), _INLINE),
    "commit_ids": (lambda db, a: _ids(db.commit_ids()), _READ),
    "commit_ids_in_order": (lambda db, a: [bytes(c) for c in db.commit_ids_in_order()], _READ),
    "commits_since": (_commits_since, _READ),
    "head_commit_ids": (lambda db, a: _ids(db.head_commit_ids()), _INLINE),
    "children_commit_ids": (lambda db, a: _ids(db.children_commit_ids(_cid(a[0]))), _INLINE),
    "nephew_commit_ids": (lambda db, a: _ids(db.nephew_commit_ids(_cid(a[0]))), _INLINE),
    "first_commit_id": (lambda db, a: _opt_bytes(db.first_commit_id()), _INLINE),
    "last_commit_id": (lambda db, a: _opt_bytes(db.last_commit_id()), _INLINE),
    "commit_exists": (lambda db, a: db.commit_exists(_cid(a[0])), _INLINE),
    "commit_header": (lambda db, a: db.commit_header(_cid(a[0])).to_wire(), _INLINE),
    "is_ancestor": (lambda db, a: db.is_ancestor(_cid(a[0]), _cid(a[1])), _READ),
    "is_mergeable": (lambda db, a: db.is_mergeable(_cid(a[0]), _cid(a[1])), _READ),
    "linearization": (lambda db, a: [bytes(c) for c in db.linearization(_cid(a[0]))], _READ),
    "enabled_by_commit_id": (
        lambda db, a: [[bytes(c), f] for c, f in db.enabled_by_commit_id(_cid(a[0])).items()],
        _READ,
    ),
    "commit_program": (_commit_program, _WRITE),
    "merge_commit": (_structural("merge_commit"), _WRITE),
    "disable_commit": (_structural("disable_commit"), _WRITE),
    "enable_commit": (_structural("enable_commit"), _WRITE),
    "reduce_heads": (
        lambda db, a: _opt_bytes(db.reduce_heads(_opt_cid(a[0]), author=_author(a[1]))),
        _WRITE,
    ),
    "forward": (lambda db, a: bytes(db.forward(_cid(a[0]))), _READ),
    "fast_forward": (lambda db, a: bytes(db.fast_forward(_cid(a[0]))), _READ),
    "commit_data": (lambda db, a: _commit_data_wire(db.commit_data(_cid(a[0]))), _READ),
    "commit_datas": (
        lambda db, a: [_commit_data_wire(d) for d in db.commit_datas([_cid(c) for c in a[0]])],
        _READ,
    ),
    "create_commit_data": (lambda db, a: db.create_commit_data(_commit_data(a[0])), _WRITE),
    "create_commit_datas": (
        lambda db, a: db.create_commit_datas([_commit_data(w) for w in a[0]]),
        _WRITE,
    ),
    "commit_blob_ids": (lambda db, a: _ids(db.commit_blob_ids(_commit_data(a[0]))), _READ),
    "unknown_blob_ids": (lambda db, a: _ids(db.unknown_blob_ids(_bid(b) for b in a[0])), _READ),
    "blob_datas": (
        lambda db, a: [
            [bytes(b), _layout_wire(lay), d] for b, lay, d in db.blob_datas(_bid(b) for b in a[0])
        ],
        _READ,
    ),
    "create_blobs": (
        lambda db, a: [bytes(b) for b in db.create_blobs((_layout(lay), d) for lay, d in a[0])],
        _WRITE,
    ),
}

# --------------------------------------------------------------------------------------------
# Flat database methods (on the session's own handle)


def _flat_att_key(db: Database, a: list[Any]) -> tuple[Attachment, Key]:
    defs = db.definitions()
    return _attachment(a[0], defs), _key(a[1], defs)


def _flat_get(db: Database, a: list[Any]) -> Any:
    att, key = _flat_att_key(db, a)
    return to_wire(db.get(att, key), OptionalType(att.document_type))


def _flat_set(db: Database, a: list[Any]) -> Any:
    att, key = _flat_att_key(db, a)
    return db.set(att, key, from_wire(a[2], att.document_type, db.definitions()))


def _flat_enumerate(db: Database, a: list[Any]) -> Any:
    att = _attachment(a[0], db.definitions())
    t = att.document_type
    return [[_key_wire(k), to_wire(v, t)] for k, v in db.enumerate(att)]


def _begin(db: Database, a: list[Any]) -> Any:
    mode = a[0] if a else "deferred"
    if mode is not None and type(mode) is not str:
        raise ValueError(f"unknown transaction mode {mode!r}")
    db.begin_transaction(mode)
    return None


_FLAT_METHODS: dict[str, tuple[Callable[[Any, list[Any]], Any], int]] = {
    **_COMMON,
    "create_blob": (lambda db, a: bytes(db.create_blob(a[0], _layout(a[1]))), _INLINE),
    "keys": (
        lambda db, a: sorted(_key_wire(k) for k in db.keys(_attachment(a[0], db.definitions()))),
        _INLINE,
    ),
    "has": (lambda db, a: db.has(*_flat_att_key(db, a)), _INLINE),
    "get": (_flat_get, _INLINE),
    "enumerate": (_flat_enumerate, _READ),
    "set": (_flat_set, _INLINE),
    "delete": (lambda db, a: db.delete(*_flat_att_key(db, a)), _INLINE),
    "begin_transaction": (_begin, _INLINE),
    "commit": (lambda db, a: db.commit(), _WRITE),
    "rollback": (lambda db, a: db.rollback(), _INLINE),
    "in_transaction": (lambda db, a: db.in_transaction(), _INLINE),
    "del_blob": (lambda db, a: db.del_blob(_bid(a[0])), _INLINE),
}
_STREAMS = {
    "blob_stream_open": "open",
    "blob_stream_write": "write",
    "blob_stream_close": "close",
    "blob_stream_abort": "abort",
}
