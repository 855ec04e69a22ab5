"""DatabaseServer: serves flat and commit databases by name over the native protocol.

Clients list the served databases and address one by name (``cdb:<name>`` for a commit
database, ``db:<name>`` for a flat one) — never by filesystem path. Engine work runs in worker
threads: reads through a shared limiter, writes one at a time per database (LMDB has one
writer); no LMDB transaction spans an ``await``.

* Commit databases: the DAG, blobs, commit transport (for sync) and *server-side* state
  reads; a client's mutable state is committed by sending its program, which the server
  decodes, validates, replays on its own state and commits (so snapshots are always computed
  by the server).
* Flat databases: each client session opens its own handle, so transactions are per session;
  a client that disconnects mid-transaction is rolled back.
* Live notifications: a watcher polls each commit database's change counter (cheap), so
  commits from *any* writer — this server, another server, a local process — are announced to
  subscribers with their header. Each subscriber has a bounded queue; one that falls behind is
  told how many events it missed and can resync.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

from commitdb.blobs import BlobLayout
from commitdb.codec import from_wire, to_wire
from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitData, CommitHeader
from commitdb.database import Database
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import CommitDBError, StorageError
from commitdb.ids import BlobId, CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.opcodes import decode_program
from commitdb.types import OptionalType
from rpc.connection import Connection
from rpc.errors import AuthenticationError, InvalidArgumentsError, MethodNotFoundError
from rpc.packets import Hello, Notify, Request
from rpc.remote_local import _attachment_from_wire, _key_from_wire, _key_wire

__all__ = ("DatabaseServer", "ServedDatabase")

log = logging.getLogger("rpc.db_server")

SUBSCRIBER_QUEUE = 1024


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


def _layout_wire(layout: BlobLayout) -> list[Any]:
    return [layout.data_type, layout.components]


def _layout(w: Any) -> BlobLayout:
    if w is None:
        return BlobLayout()
    return BlobLayout(str(w[0]), int(w[1]))


def _extend_info_wire(info: Any) -> dict[str, Any]:
    return {
        "concepts": [u.bytes for u in info.concepts],
        "clubs": [u.bytes for u in info.clubs],
        "enumerations": [u.bytes for u in info.enumerations],
        "structures": [u.bytes for u in info.structures],
        "attachments": [u.bytes for u in info.attachments],
        "pools": [u.bytes for u in info.pools],
        "memberships": [[a.bytes, b.bytes] for a, b in info.memberships],
    }


@dataclass
class _Subscriber:
    conn: Connection
    send: anyio.abc.ObjectSendStream[list[Any]]
    missed: int = 0


@dataclass
class ServedDatabase:
    """A database the server offers under a name."""

    name: str
    path: str
    kind: str  # "commit" or "flat"
    db: Any  # CommitDatabase or Database (the server's shared handle)
    write_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    subscribers: list[_Subscriber] = field(default_factory=list)
    wake: anyio.Event = field(default_factory=anyio.Event)

    def describe(self) -> dict[str, Any]:
        """What ``databases`` lists."""
        return {
            "name": self.name,
            "kind": self.kind,
            "uuid": self.db.uuid().bytes,
            "documentation": self.db.documentation(),
        }


def open_served(name: str, path: str, *, durable: bool = True) -> ServedDatabase:
    """Open a database file for serving (its kind is detected)."""
    if CommitDatabase.is_compatible(path):
        return ServedDatabase(name, path, "commit", CommitDatabase.open(path, durable=durable))
    if Database.is_compatible(path):
        return ServedDatabase(name, path, "flat", Database.open(path, durable=durable))
    raise StorageError(f"{path} is neither a commitdb commit database nor a flat database")


class DatabaseServer:
    """A ServerApp serving databases by name."""

    def __init__(
        self,
        databases: Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        name: str = "commitdb-server",
        authenticator: Callable[[Any], bool] | None = None,
        poll_interval: float = 0.05,
        read_threads: int = 16,
    ) -> None:
        self.name = name
        self.authenticator = authenticator
        self.poll_interval = poll_interval
        self.served: dict[str, ServedDatabase] = {}
        self.read_limiter = anyio.CapacityLimiter(read_threads)
        for db_name, path in (databases or {}).items():
            self.add(db_name, os.fspath(path))

    def add(self, name: str, path: str) -> ServedDatabase:
        """Serve the database at `path` under `name`."""
        if name in self.served:
            raise ValueError(f"a database is already served as {name!r}")
        served = open_served(name, path)
        self.served[name] = served
        return served

    def close(self) -> None:
        """Close every served database."""
        for s in self.served.values():
            s.db.close()

    # -- watchers -------------------------------------------------------------------------
    async def run_watchers(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Announce new commits of every served commit database (run in a task group)."""
        async with anyio.create_task_group() as tg:
            for s in self.served.values():
                if s.kind == "commit":
                    tg.start_soon(self._watch, s)
            task_status.started()

    async def _watch(self, s: ServedDatabase) -> None:
        db: CommitDatabase = s.db
        version = await anyio.to_thread.run_sync(db.data_version)
        next_seq = await anyio.to_thread.run_sync(lambda: _next_seq(db))
        while True:
            with anyio.move_on_after(self.poll_interval):
                await s.wake.wait()
            if s.wake.is_set():
                s.wake = anyio.Event()
            if not s.subscribers:
                next_seq = await anyio.to_thread.run_sync(lambda: _next_seq(db))
                continue
            v = await anyio.to_thread.run_sync(db.data_version)
            if v == version:
                continue
            version = v
            new = await anyio.to_thread.run_sync(db.commits_since, next_seq)
            if not new:
                continue
            next_seq = new[-1][0] + 1
            headers = await anyio.to_thread.run_sync(_headers, db, [c for _, c in new])
            for h in headers:
                self._publish(s, ["commit", h.to_wire()])

    def _publish(self, s: ServedDatabase, event: list[Any]) -> None:
        for sub in list(s.subscribers):
            try:
                sub.send.send_nowait(event)
            except anyio.WouldBlock:
                sub.missed += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                s.subscribers.remove(sub)

    async def _deliver(
        self, s: ServedDatabase, sub: _Subscriber, receive: anyio.abc.ObjectReceiveStream[list[Any]]
    ) -> None:
        target = f"sub:{s.name}"
        async with receive:
            async for event in receive:
                if sub.conn.closed:
                    return
                if sub.missed:
                    missed, sub.missed = sub.missed, 0
                    await sub.conn.notify(target, "missed", [missed])
                await sub.conn.notify(target, event[0], event[1:])

    # -- ServerApp ------------------------------------------------------------------------
    async def accept(self, hello: Hello, conn: Connection) -> dict[str, Any]:
        """Check credentials and set the connection's handler."""
        if self.authenticator is not None and not self.authenticator(
            hello.fields.get("credentials")
        ):
            raise AuthenticationError("credentials refused")
        conn.handler = _DatabaseHandler(self, conn)
        return {"server": self.name, "databases": [s.describe() for s in self.served.values()]}

    def connection_closed(self, conn: Connection) -> None:
        """Roll back the session's transactions, drop its subscriptions."""
        handler = conn.handler
        if isinstance(handler, _DatabaseHandler):
            handler.close()
        for s in self.served.values():
            for sub in list(s.subscribers):
                if sub.conn is conn:
                    s.subscribers.remove(sub)
                    sub.send.close()


def _headers(db: CommitDatabase, ids: list[CommitId]) -> list[CommitHeader]:
    return [db.commit_header(c) for c in ids]


def _next_seq(db: CommitDatabase) -> int:
    return db.commit_count()  # sequences are 0..count-1


class _DatabaseHandler:
    """Serves one client connection."""

    def __init__(self, server: DatabaseServer, conn: Connection) -> None:
        self.server = server
        self.conn = conn
        self.sessions: dict[str, Database] = {}  # flat databases: one handle per session

    def close(self) -> None:
        for db in self.sessions.values():
            try:
                if db.in_transaction():
                    db.rollback()
                db.close()
            except CommitDBError:
                log.debug("closing a session handle failed", exc_info=True)
        self.sessions.clear()

    def _served(self, name: str, kind: str) -> ServedDatabase:
        s = self.server.served.get(name)
        if s is None or s.kind != kind:
            raise MethodNotFoundError(
                f"no {kind} database named {name!r} is served "
                f"(served: {', '.join(sorted(self.server.served)) or 'none'})"
            )
        return s

    def handle_request(self, conn: Connection, req: Request) -> Any:
        t = req.target
        if t == "server":
            if req.method == "databases":
                return [s.describe() for s in self.server.served.values()]
            if req.method == "ping":
                return "pong"
            raise MethodNotFoundError(f"unknown server method {req.method!r}")
        if t.startswith("cdb:"):
            s = self._served(t[4:], "commit")
            if req.method == "subscribe":
                return self._subscribe(s)
            if req.method == "unsubscribe":
                for sub in list(s.subscribers):
                    if sub.conn is conn:
                        s.subscribers.remove(sub)
                        sub.send.close()
                return None
            fn = _COMMIT_METHODS.get(req.method)
            if fn is None:
                raise MethodNotFoundError(f"commit databases have no method {req.method!r}")
            write = req.method in _COMMIT_WRITES
            return self._run(s, fn, req.args, write)
        if t.startswith("db:"):
            s = self._served(t[3:], "flat")
            ffn = _FLAT_METHODS.get(req.method)
            if ffn is None:
                raise MethodNotFoundError(f"flat databases have no method {req.method!r}")
            return self._run_flat(s, ffn, req.args, req.method in _FLAT_WRITES)
        raise MethodNotFoundError(f"unknown target {t!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        log.debug("ignored notification %s.%s", notify.target, notify.method)

    async def _run(
        self, s: ServedDatabase, fn: Callable[[Any, list[Any]], Any], args: list[Any], write: bool
    ) -> Any:
        limiter = s.write_limiter if write else self.server.read_limiter
        result = await anyio.to_thread.run_sync(_guard, fn, s.db, args, limiter=limiter)
        if write:
            s.wake.set()  # announce without waiting for the poll
        return result

    async def _run_flat(
        self, s: ServedDatabase, fn: Callable[[Any, list[Any]], Any], args: list[Any], write: bool
    ) -> Any:
        db = self.sessions.get(s.name)
        if db is None:
            db = await anyio.to_thread.run_sync(Database.open, s.path)
            self.sessions[s.name] = db
        limiter = s.write_limiter if write else self.server.read_limiter
        return await anyio.to_thread.run_sync(_guard, fn, db, args, limiter=limiter)

    def _subscribe(self, s: ServedDatabase) -> None:
        for sub in s.subscribers:
            if sub.conn is self.conn:
                return None
        send, receive = anyio.create_memory_object_stream[list[Any]](SUBSCRIBER_QUEUE)
        sub = _Subscriber(self.conn, send)
        s.subscribers.append(sub)
        self.conn.start_soon(self.server._deliver, s, sub, receive)
        return None


def _guard(fn: Callable[[Any, list[Any]], Any], db: Any, args: list[Any]) -> Any:
    try:
        return fn(db, args)
    except (IndexError, KeyError, TypeError) as exc:
        raise InvalidArgumentsError(f"bad arguments: {exc}") from None


# --------------------------------------------------------------------------------------------
# Commit database methods: (db, wire args) -> wire result


def _state_doc(db: CommitDatabase, a: list[Any]) -> Any:
    defs = db.definitions()
    att = _attachment_from_wire(a[1], defs)
    key = _key_from_wire(a[2], defs)
    return to_wire(db.state(_opt_cid(a[0])).get(att, key), OptionalType(att.document_type))


def _state_enumerate(db: CommitDatabase, a: list[Any]) -> Any:
    defs = db.definitions()
    att = _attachment_from_wire(a[1], defs)
    st = db.state(_opt_cid(a[0]))
    return [[_key_wire(k), to_wire(v, att.document_type)] for k, v in st.enumerate(att)]


def _state_get_many(db: CommitDatabase, a: list[Any]) -> Any:
    defs = db.definitions()
    att = _attachment_from_wire(a[1], defs)
    st = db.state(_opt_cid(a[0]))
    t = OptionalType(att.document_type)
    return [to_wire(st.get(att, _key_from_wire(k, defs)), t) for k in a[2]]


def _commit_program(db: CommitDatabase, a: list[Any]) -> Any:
    base, label, author, program = _opt_cid(a[0]), str(a[1]), a[2], a[3]
    if type(program) is not bytes:
        raise InvalidArgumentsError("the program must be bytes")
    defs = db.definitions()
    prog = decode_program(program, defs)
    ms = CommitMutableState(db.state(base))
    for address, op in prog.all_ops():
        att = defs.check_attachment(uuid.UUID(bytes=address[:16]))
        ms._record(att, address, op)
    return bytes(db.commit_mutations(label, ms, author=author))


def _extend(db: Any, a: list[Any]) -> Any:
    return _extend_info_wire(db.extend_definitions(decode_definitions(a[0])))


def _create_blob(db: Any, a: list[Any]) -> Any:
    return bytes(db.create_blob(a[0], _layout(a[1])))


def _blob_info(db: Any, a: list[Any]) -> Any:
    info = db.blob_info(_bid(a[0]))
    return None if info is None else [bytes(info.blob_id), _layout_wire(info.layout), info.size]


def _stats(db: Any, a: list[Any]) -> Any:
    s = db.blob_statistics()
    return [s.count, s.total_size, s.min_size, s.max_size]


def _create_commit_data(db: CommitDatabase, a: list[Any]) -> Any:
    return db.create_commit_data(CommitData(CommitHeader.from_wire(a[0]), a[1]))


_COMMON: dict[str, Callable[[Any, list[Any]], Any]] = {
    "definitions": lambda db, a: encode_definitions(db.definitions()),
    "definitions_hexdigest": lambda db, a: db.definitions_hexdigest(),
    "extend_definitions": _extend,
    "uuid": lambda db, a: db.uuid().bytes,
    "documentation": lambda db, a: db.documentation(),
    "codec_name": lambda db, a: db.codec_name(),
    "create_blob": _create_blob,
    "blob": lambda db, a: db.blob(_bid(a[0])),
    "read_blob": lambda db, a: db.read_blob(_bid(a[0]), int(a[1]), int(a[2])),
    "blob_info": _blob_info,
    "blob_ids": lambda db, a: _ids(db.blob_ids()),
    "blob_statistics": _stats,
}

_COMMIT_METHODS: dict[str, Callable[[Any, list[Any]], Any]] = {
    **_COMMON,
    "data_version": lambda db, a: db.data_version(),
    "commit_ids": lambda db, a: _ids(db.commit_ids()),
    "commit_ids_in_order": lambda db, a: [bytes(c) for c in db.commit_ids_in_order()],
    "commits_since": lambda db, a: [
        [s, bytes(c)] for s, c in db.commits_since(int(a[0]), int(a[1]))
    ],
    "head_commit_ids": lambda db, a: _ids(db.head_commit_ids()),
    "children_commit_ids": lambda db, a: _ids(db.children_commit_ids(_cid(a[0]))),
    "nephew_commit_ids": lambda db, a: _ids(db.nephew_commit_ids(_cid(a[0]))),
    "first_commit_id": lambda db, a: _opt_bytes(db.first_commit_id()),
    "last_commit_id": lambda db, a: _opt_bytes(db.last_commit_id()),
    "commit_exists": lambda db, a: db.commit_exists(_cid(a[0])),
    "commit_header": lambda db, a: db.commit_header(_cid(a[0])).to_wire(),
    "commit_count": lambda db, a: db.commit_count(),
    "is_ancestor": lambda db, a: db.is_ancestor(_cid(a[0]), _cid(a[1])),
    "is_mergeable": lambda db, a: db.is_mergeable(_cid(a[0]), _cid(a[1])),
    "linearization": lambda db, a: [bytes(c) for c in db.linearization(_cid(a[0]))],
    "enabled_by_commit_id": lambda db, a: [
        [bytes(c), f] for c, f in db.enabled_by_commit_id(_cid(a[0])).items()
    ],
    "commit_program": _commit_program,
    "merge_commit": lambda db, a: bytes(
        db.merge_commit(str(a[0]), _cid(a[1]), _cid(a[2]), author=a[3])
    ),
    "disable_commit": lambda db, a: bytes(
        db.disable_commit(str(a[0]), _cid(a[1]), _cid(a[2]), author=a[3])
    ),
    "enable_commit": lambda db, a: bytes(
        db.enable_commit(str(a[0]), _cid(a[1]), _cid(a[2]), author=a[3])
    ),
    "reduce_heads": lambda db, a: _opt_bytes(db.reduce_heads(_opt_cid(a[0]), author=a[1])),
    "forward": lambda db, a: bytes(db.forward(_cid(a[0]))),
    "fast_forward": lambda db, a: bytes(db.fast_forward(_cid(a[0]))),
    "state_get": _state_doc,
    "state_get_many": _state_get_many,
    "state_has": lambda db, a: db.state(_opt_cid(a[0])).has(
        _attachment_from_wire(a[1], db.definitions()), _key_from_wire(a[2], db.definitions())
    ),
    "state_keys": lambda db, a: sorted(
        _key_wire(k)
        for k in db.state(_opt_cid(a[0])).keys(_attachment_from_wire(a[1], db.definitions()))
    ),
    "state_enumerate": _state_enumerate,
    "commit_data": lambda db, a: _commit_data_wire(db.commit_data(_cid(a[0]))),
    "commit_datas": lambda db, a: [_commit_data_wire(db.commit_data(_cid(c))) for c in a[0]],
    "create_commit_data": _create_commit_data,
    "create_commit_datas": lambda db, a: [
        db.create_commit_data(CommitData(CommitHeader.from_wire(h), p)) for h, p in a[0]
    ],
    "commit_blob_ids": lambda db, a: _ids(
        db.commit_blob_ids(CommitData(CommitHeader.from_wire(a[0]), a[1]))
    ),
    "blob_infos": lambda db, a: [
        [bytes(i.blob_id), _layout_wire(i.layout), i.size]
        for i in db.blob_infos(_bid(b) for b in a[0])
    ],
    "unknown_blob_ids": lambda db, a: _ids(db.unknown_blob_ids(_bid(b) for b in a[0])),
    "blob_datas": lambda db, a: [
        [bytes(b), _layout_wire(lay), d] for b, lay, d in db.blob_datas(_bid(b) for b in a[0])
    ],
    "create_blobs": lambda db, a: _ids(db.create_blobs((_layout(lay), d) for lay, d in a[0])),
}
_COMMIT_WRITES = frozenset(
    {
        "extend_definitions", "create_blob", "commit_program", "merge_commit", "disable_commit",
        "enable_commit", "reduce_heads", "create_commit_data", "create_commit_datas",
        "create_blobs",
    }
)  # fmt: skip


def _opt_bytes(c: CommitId | None) -> bytes | None:
    return None if c is None else bytes(c)


def _commit_data_wire(cd: CommitData) -> list[Any]:
    return [cd.header.to_wire(), cd.program]


# --------------------------------------------------------------------------------------------
# Flat database methods (on the session's own handle)


def _flat_att_key(db: Database, a: list[Any]) -> tuple[Any, Any]:
    defs = db.definitions()
    return _attachment_from_wire(a[0], defs), _key_from_wire(a[1], defs)


def _flat_get(db: Database, a: list[Any]) -> Any:
    att, key = _flat_att_key(db, a)
    return to_wire(db.get(att, key), OptionalType(att.document_type))


def _flat_set(db: Database, a: list[Any]) -> Any:
    att, key = _flat_att_key(db, a)
    return db.set(att, key, from_wire(a[2], att.document_type, db.definitions()))


def _flat_enumerate(db: Database, a: list[Any]) -> Any:
    att = _attachment_from_wire(a[0], db.definitions())
    return [[_key_wire(k), to_wire(v, att.document_type)] for k, v in db.enumerate(att)]


_FLAT_METHODS: dict[str, Callable[[Any, list[Any]], Any]] = {
    **_COMMON,
    "keys": lambda db, a: sorted(
        _key_wire(k) for k in db.keys(_attachment_from_wire(a[0], db.definitions()))
    ),
    "has": lambda db, a: db.has(*_flat_att_key(db, a)),
    "get": _flat_get,
    "enumerate": _flat_enumerate,
    "set": _flat_set,
    "delete": lambda db, a: db.delete(*_flat_att_key(db, a)),
    "begin_transaction": lambda db, a: db.begin_transaction(a[0] if a else "deferred"),
    "commit": lambda db, a: db.commit(),
    "rollback": lambda db, a: db.rollback(),
    "in_transaction": lambda db, a: db.in_transaction(),
    "del_blob": lambda db, a: db.del_blob(_bid(a[0])),
}
_FLAT_WRITES = frozenset({"extend_definitions", "commit", "create_blob", "del_blob"})
