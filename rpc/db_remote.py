"""Remote databases: the local CommitDatabase / Database API over the native protocol.

Async first::

    async with AsyncCommitDatabaseRemote.connect("tcp://127.0.0.1:54321", "main") as db:
        head = await db.last_commit_id()
        state = await db.state(head)
        doc = await state.get(login, key)

and a blocking facade with the same names (:class:`CommitDatabaseRemote`,
:class:`DatabaseRemote`) on which a local :class:`~commitdb.CommitMutableState` can be built::

    with CommitDatabaseRemote.connect(url, "main") as db:
        ms = CommitMutableState(db.state(db.last_commit_id()))
        ms.set(login, key, {...})
        db.commit_mutations("edit", ms)      # committed on the server

States are evaluated on the server and cached on the client (a state never changes). Errors
are the local classes (an unknown commit raises ``UnknownCommitError``...).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal, start_blocking_portal

from commitdb.blobs import BlobInfo, BlobLayout, BlobStatistics
from commitdb.codec import from_wire, to_wire
from commitdb.commits import CommitData, CommitHeader
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import UnknownAttachmentError, ValidationError
from commitdb.ids import BlobId, CommitId
from commitdb.opcodes import ABSENT, DocAddress, program_bytes
from commitdb.types import Attachment, ConceptType, OptionalType
from commitdb.values import Key
from rpc.client import open_connection
from rpc.connection import Connection
from rpc.errors import MethodNotFoundError
from rpc.packets import Notify, Request
from rpc.remote_local import _key_from_wire, _key_wire

__all__ = (
    "AsyncCommitDatabaseRemote",
    "AsyncDatabaseRemote",
    "AsyncRemoteCommitState",
    "CommitDatabaseRemote",
    "CommitEvent",
    "DatabaseRemote",
    "MissedEvents",
    "RemoteCommitState",
    "list_databases",
)

T = TypeVar("T")


class MissedEvents(Exception):
    """A subscriber fell behind: `count` commit notifications were dropped (resync)."""

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"{count} commit notification(s) were missed; resync")


class CommitEvent:
    """A new commit announced by the server."""

    __slots__ = ("database", "header")

    def __init__(self, database: str, header: CommitHeader) -> None:
        self.database = database
        self.header = header

    @property
    def commit_id(self) -> CommitId:
        """The new commit's id."""
        return self.header.commit_id

    def __repr__(self) -> str:
        return f"<CommitEvent {self.database} {self.header.commit_id.hex()[:12]} {self.header.label!r}>"


def _ext(info: dict[str, Any]) -> ExtendInfo:
    """Rebuild an ExtendInfo sent by the server."""
    import uuid as _uuid

    def ids(name: str) -> list[Any]:
        return [_uuid.UUID(bytes=b) for b in info.get(name, [])]

    return ExtendInfo(
        concepts=ids("concepts"),
        clubs=ids("clubs"),
        enumerations=ids("enumerations"),
        structures=ids("structures"),
        attachments=ids("attachments"),
        pools=ids("pools"),
        memberships=[
            (_uuid.UUID(bytes=a), _uuid.UUID(bytes=b)) for a, b in info.get("memberships", [])
        ],
    )


def _layout(w: Any) -> BlobLayout:
    return BlobLayout(str(w[0]), int(w[1]))


class _Handler:
    """Client side: receives subscription notifications."""

    def __init__(self) -> None:
        self.queues: dict[str, anyio.abc.ObjectSendStream[Any]] = {}

    def handle_request(self, conn: Connection, req: Request) -> Any:
        raise MethodNotFoundError(f"this client serves no {req.target!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        if not notify.target.startswith("sub:"):
            return
        q = self.queues.get(notify.target[4:])
        if q is None:
            return
        if notify.method == "commit":
            item: Any = CommitEvent(notify.target[4:], CommitHeader.from_wire(notify.args[0]))
        elif notify.method == "missed":
            item = MissedEvents(int(notify.args[0]))
        else:
            return
        try:
            q.send_nowait(item)
        except anyio.WouldBlock:
            pass  # the local queue is bounded too; the server reports misses
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.queues.pop(notify.target[4:], None)


async def list_databases(
    url: str,
    *,
    credentials: Any = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """The databases a server offers: name, kind ('commit'/'flat'), uuid, documentation."""
    hello: dict[str, Any] = {"client": "commitdb-python"}
    if credentials is not None:
        hello["credentials"] = credentials
    conn, welcome = await open_connection(url, hello, ssl_context=ssl_context, timeout=timeout)
    async with conn:
        return list(welcome.get("databases", []))


class _RemoteBase:
    """Shared plumbing: the connection, the target, definitions cache."""

    kind = ""

    def __init__(self, conn: Connection, name: str, timeout: float | None) -> None:
        self.connection = conn
        self.name = name
        self.timeout = timeout
        self._target = f"{'cdb' if self.kind == 'commit' else 'db'}:{name}"
        self._defs: Definitions | None = None
        self._defs_digest = ""

    async def _call(self, method: str, *args: Any) -> Any:
        return await self.connection.call(self._target, method, list(args), timeout=self.timeout)

    async def definitions(self) -> Definitions:
        """The database's definitions (fetched fresh: another client may have extended them)."""
        digest = await self._call("definitions_hexdigest")
        if self._defs is None or digest != self._defs_digest:
            self._defs = decode_definitions(await self._call("definitions"))
            self._defs_digest = digest
        return self._defs

    async def _cached_defs(self) -> Definitions:
        return self._defs if self._defs is not None else await self.definitions()

    async def _attachment(self, attachment: Attachment | str) -> Attachment:
        defs = await self._cached_defs()
        try:
            return defs.check_attachment(attachment)
        except UnknownAttachmentError:
            return (await self.definitions()).check_attachment(attachment)

    async def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Extend the database's definitions (additive)."""
        info = await self._call("extend_definitions", encode_definitions(definitions))
        self._defs = None
        return _ext(info)

    async def definitions_hexdigest(self) -> str:
        """Digest of the definitions."""
        return str(await self._call("definitions_hexdigest"))

    async def uuid(self) -> Any:
        """The database uuid."""
        import uuid as _uuid

        return _uuid.UUID(bytes=await self._call("uuid"))

    async def documentation(self) -> str:
        """The database documentation."""
        return str(await self._call("documentation"))

    async def codec_name(self) -> str:
        """The value codec."""
        return str(await self._call("codec_name"))

    def path(self) -> str:
        """The served name (a remote never sees the server's filesystem)."""
        return self.name

    def in_memory(self) -> bool:
        """Remote databases are not memory databases."""
        return False

    def is_closed(self) -> bool:
        """True once the connection is closed."""
        return self.connection.closed

    async def aclose(self) -> None:
        """Close the connection."""
        await self.connection.aclose()

    # -- blobs ----------------------------------------------------------------------------
    async def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob on the server."""
        lay = layout or BlobLayout()
        return BlobId(await self._call("create_blob", bytes(data), [lay.data_type, lay.components]))

    async def blob(self, blob_id: BlobId) -> bytes | None:
        """A whole blob, or None."""
        r = await self._call("blob", bytes(blob_id))
        return None if r is None else bytes(r)

    async def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """A range of a blob."""
        return bytes(await self._call("read_blob", bytes(blob_id), size, offset))

    async def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob."""
        w = await self._call("blob_info", bytes(blob_id))
        return None if w is None else BlobInfo(BlobId(w[0]), _layout(w[1]), int(w[2]))

    async def blob_ids(self) -> set[BlobId]:
        """Every stored blob id."""
        return {BlobId(b) for b in await self._call("blob_ids")}

    async def blob_statistics(self) -> BlobStatistics:
        """Count and sizes of stored blobs."""
        return BlobStatistics(*await self._call("blob_statistics"))


class AsyncRemoteCommitState:
    """A state of a remote commit database (evaluated on the server, cached here)."""

    def __init__(
        self, db: AsyncCommitDatabaseRemote, commit_id: CommitId, definitions: Definitions
    ) -> None:
        self._db = db
        self._commit_id = commit_id
        self._defs = definitions
        self._docs: dict[DocAddress, Any] = {}
        self._keys: dict[bytes, set[Key]] = {}

    def commit_id(self) -> CommitId:
        """The commit of this state."""
        return self._commit_id

    def definitions(self) -> Definitions:
        """The definitions typing the documents."""
        return self._defs

    def _wire_cid(self) -> bytes | None:
        return bytes(self._commit_id) if self._commit_id.is_valid else None

    def _check(
        self, attachment: Attachment | str, key: Key | None = None
    ) -> tuple[Attachment, bytes]:
        att = self._defs.check_attachment(attachment)
        if key is None:
            return att, b""
        if not isinstance(key, Key) or not att.key_type.accepts_concept(key.concept):
            raise ValidationError(str(att.key_type), repr(key), f"{att.identifier} key")
        return att, _key_wire(key)

    async def get(self, attachment: Attachment | str, key: Key) -> Any:
        """The document, or None."""
        att, kw = self._check(attachment, key)
        address = att.runtime_id.bytes + kw
        if address not in self._docs:
            w = await self._db._call("state_get", self._wire_cid(), att.runtime_id.bytes, kw)
            self._docs[address] = from_wire(w, OptionalType(att.document_type), self._defs)
        v = self._docs[address]
        return None if v is None else _copy(att, v)

    async def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        return await self.get(attachment, key) is not None

    async def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the existing documents."""
        att, _ = self._check(attachment)
        cached = self._keys.get(att.runtime_id.bytes)
        if cached is None:
            w = await self._db._call("state_keys", self._wire_cid(), att.runtime_id.bytes)
            cached = {_key_from_wire(k, self._defs) for k in w}
            self._keys[att.runtime_id.bytes] = cached
        return set(cached)

    async def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document) of every document, in one round trip (cached)."""
        att, _ = self._check(attachment)
        w = await self._db._call("state_enumerate", self._wire_cid(), att.runtime_id.bytes)
        out = []
        rid = att.runtime_id.bytes
        for kw, dw in w:
            key = _key_from_wire(kw, self._defs)
            doc = from_wire(dw, att.document_type, self._defs)
            self._docs[rid + kw] = doc
            out.append((key, _copy(att, doc)))
        self._keys[rid] = {k for k, _ in out}
        return out

    async def get_many(self, attachment: Attachment | str, keys: Iterable[Key]) -> list[Any]:
        """Several documents in one round trip (None for absent ones)."""
        att, _ = self._check(attachment)
        kws = [self._check(att, k)[1] for k in keys]
        w = await self._db._call("state_get_many", self._wire_cid(), att.runtime_id.bytes, kws)
        t = OptionalType(att.document_type)
        out = []
        for kw, dw in zip(kws, w, strict=True):
            v = from_wire(dw, t, self._defs)
            self._docs[att.runtime_id.bytes + kw] = v
            out.append(None if v is None else _copy(att, v))
        return out

    def _cached(self, address: DocAddress) -> Any:
        return self._docs.get(address, ABSENT)


def _copy(att: Attachment, v: Any) -> Any:
    from commitdb.copier import copier

    return copier(att.document_type)(v)


class AsyncCommitDatabaseRemote(_RemoteBase):
    """A commit database served by ``commitdb serve`` (async API)."""

    kind = "commit"

    def __init__(
        self, conn: Connection, name: str, timeout: float | None, handler: _Handler
    ) -> None:
        super().__init__(conn, name, timeout)
        self._handler = handler

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[AsyncCommitDatabaseRemote]:
        """Connect to a server and open the commit database served as `name`."""
        async with _open(url, name, "commit", credentials, ssl_context, connect_timeout) as (
            conn,
            handler,
        ):
            remote = cls(conn, name, timeout, handler)
            await remote.definitions()
            yield remote

    # -- DAG ------------------------------------------------------------------------------
    async def data_version(self) -> int:
        """The server's change counter."""
        return int(await self._call("data_version"))

    async def commit_ids(self) -> set[CommitId]:
        """Every commit id."""
        return {CommitId(c) for c in await self._call("commit_ids")}

    async def commit_ids_in_order(self) -> list[CommitId]:
        """Every commit id in creation order."""
        return [CommitId(c) for c in await self._call("commit_ids_in_order")]

    async def commits_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, CommitId]]:
        """(sequence, id) of commits created at or after `seq`."""
        return [(int(s), CommitId(c)) for s, c in await self._call("commits_since", seq, limit)]

    async def head_commit_ids(self) -> set[CommitId]:
        """Current heads."""
        return {CommitId(c) for c in await self._call("head_commit_ids")}

    async def children_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Children of a commit."""
        return {CommitId(c) for c in await self._call("children_commit_ids", bytes(commit_id))}

    async def nephew_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Merges targeting a commit."""
        return {CommitId(c) for c in await self._call("nephew_commit_ids", bytes(commit_id))}

    async def first_commit_id(self) -> CommitId | None:
        """First commit in creation order."""
        r = await self._call("first_commit_id")
        return None if r is None else CommitId(r)

    async def last_commit_id(self) -> CommitId | None:
        """Latest commit by timestamp."""
        r = await self._call("last_commit_id")
        return None if r is None else CommitId(r)

    async def commit_exists(self, commit_id: CommitId) -> bool:
        """True if the commit is stored."""
        return bool(await self._call("commit_exists", bytes(commit_id)))

    async def commit_header(self, commit_id: CommitId) -> CommitHeader:
        """A commit's header."""
        return CommitHeader.from_wire(await self._call("commit_header", bytes(commit_id)))

    async def commit_count(self) -> int:
        """Number of commits."""
        return int(await self._call("commit_count"))

    async def is_ancestor(self, ancestor: CommitId, descendant: CommitId) -> bool:
        """Reachability (reflexive)."""
        return bool(await self._call("is_ancestor", bytes(ancestor), bytes(descendant)))

    async def is_mergeable(self, parent: CommitId, target: CommitId) -> bool:
        """True if the commits diverged."""
        return bool(await self._call("is_mergeable", bytes(parent), bytes(target)))

    async def linearization(self, commit_id: CommitId) -> list[CommitId]:
        """Linearized history."""
        return [CommitId(c) for c in await self._call("linearization", bytes(commit_id))]

    async def enabled_by_commit_id(self, commit_id: CommitId) -> dict[CommitId, bool]:
        """Enable flags of a commit's history."""
        return {
            CommitId(c): bool(f)
            for c, f in await self._call("enabled_by_commit_id", bytes(commit_id))
        }

    # -- writing --------------------------------------------------------------------------
    async def commit_program(
        self, label: str, base: CommitId, program: bytes, *, author: str | None = None
    ) -> CommitId:
        """Commit an encoded program on `base` (the server validates and replays it)."""
        wire_base = bytes(base) if base.is_valid else None
        return CommitId(await self._call("commit_program", wire_base, label, author, program))

    async def commit_mutations(
        self, label: str, mutable_state: Any, *, author: str | None = None
    ) -> CommitId:
        """Commit a local mutable state built on a state of this database."""
        return await anyio.to_thread.run_sync(
            lambda: mutable_state._commit_into(
                _ThreadWriter(self, anyio.from_thread), label, author
            )
        )

    async def merge_commit(
        self, label: str, parent: CommitId, target: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Merge on the server."""
        return CommitId(
            await self._call("merge_commit", label, bytes(parent), bytes(target), author)
        )

    async def disable_commit(
        self, label: str, parent: CommitId, disabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Disable on the server."""
        return CommitId(
            await self._call("disable_commit", label, bytes(parent), bytes(disabled), author)
        )

    async def enable_commit(
        self, label: str, parent: CommitId, enabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append an Enable on the server."""
        return CommitId(
            await self._call("enable_commit", label, bytes(parent), bytes(enabled), author)
        )

    async def reduce_heads(
        self, anchor: CommitId | None = None, *, author: str | None = None
    ) -> CommitId | None:
        """Reduce heads on the server."""
        r = await self._call("reduce_heads", None if anchor is None else bytes(anchor), author)
        return None if r is None else CommitId(r)

    async def forward(self, commit_id: CommitId) -> CommitId:
        """Single head or fast-forward."""
        return CommitId(await self._call("forward", bytes(commit_id)))

    async def fast_forward(self, commit_id: CommitId) -> CommitId:
        """Fast-forward from a commit."""
        return CommitId(await self._call("fast_forward", bytes(commit_id)))

    # -- states ---------------------------------------------------------------------------
    async def state(self, commit_id: CommitId | None) -> AsyncRemoteCommitState:
        """The state at a commit (None or INVALID: the initial state)."""
        cid = commit_id if commit_id is not None else CommitId.INVALID
        if cid.is_valid and not await self.commit_exists(cid):
            from commitdb.errors import UnknownCommitError

            raise UnknownCommitError(f"missing commit {cid.hex()}")
        return AsyncRemoteCommitState(self, cid, await self._cached_defs())

    async def initial_state(self) -> AsyncRemoteCommitState:
        """The empty state."""
        return await self.state(None)

    # -- transport (CommitDatabasing) -----------------------------------------------------
    async def commit_data(self, commit_id: CommitId) -> CommitData:
        """Header and program of a commit."""
        h, p = await self._call("commit_data", bytes(commit_id))
        return CommitData(CommitHeader.from_wire(h), p)

    async def commit_datas(self, commit_ids: Iterable[CommitId]) -> list[CommitData]:
        """Several commit datas in one round trip."""
        w = await self._call("commit_datas", [bytes(c) for c in commit_ids])
        return [CommitData(CommitHeader.from_wire(h), p) for h, p in w]

    async def create_commit_data(self, data: CommitData) -> bool:
        """Store a commit verbatim (sync)."""
        return bool(await self._call("create_commit_data", data.header.to_wire(), data.program))

    async def create_commit_datas(self, datas: Iterable[CommitData]) -> list[bool]:
        """Store several commits verbatim, in order, in one round trip."""
        return list(
            await self._call(
                "create_commit_datas", [[d.header.to_wire(), d.program] for d in datas]
            )
        )

    async def commit_blob_ids(self, data: CommitData) -> set[BlobId]:
        """Blob ids a commit references."""
        return {
            BlobId(b)
            for b in await self._call("commit_blob_ids", data.header.to_wire(), data.program)
        }

    async def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of known blobs."""
        w = await self._call("blob_infos", [bytes(b) for b in blob_ids])
        return [BlobInfo(BlobId(i), _layout(lay), int(s)) for i, lay, s in w]

    async def unknown_blob_ids(self, blob_ids: Iterable[BlobId]) -> set[BlobId]:
        """The ids the server lacks."""
        return {
            BlobId(b) for b in await self._call("unknown_blob_ids", [bytes(b) for b in blob_ids])
        }

    async def blob_datas(
        self, blob_ids: Iterable[BlobId]
    ) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """(id, layout, bytes) of known blobs."""
        w = await self._call("blob_datas", [bytes(b) for b in blob_ids])
        return [(BlobId(b), _layout(lay), bytes(d)) for b, lay, d in w]

    async def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs; returns the ids actually added."""
        w = await self._call(
            "create_blobs", [[[lay.data_type, lay.components], bytes(d)] for lay, d in blobs]
        )
        return [BlobId(b) for b in w]

    # -- live notifications ---------------------------------------------------------------
    @asynccontextmanager
    async def subscribe(
        self, max_queue: int = 1024
    ) -> AsyncIterator[anyio.abc.ObjectReceiveStream[Any]]:
        """Receive each new commit as a :class:`CommitEvent` (or a :class:`MissedEvents`
        item when this subscriber fell behind) until the context exits."""
        send, receive = anyio.create_memory_object_stream[Any](max_queue)
        self._handler.queues[self.name] = send
        await self._call("subscribe")
        try:
            async with receive:
                yield receive
        finally:
            self._handler.queues.pop(self.name, None)
            send.close()
            if not self.connection.closed:
                with anyio.CancelScope(shield=True):
                    await self._call("unsubscribe")


class AsyncDatabaseRemote(_RemoteBase):
    """A flat database served by ``commitdb serve`` (async API); transactions are per
    connection and rolled back if the connection drops."""

    kind = "flat"

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[AsyncDatabaseRemote]:
        """Connect to a server and open the flat database served as `name`."""
        async with _open(url, name, "flat", credentials, ssl_context, connect_timeout) as (conn, _):
            remote = cls(conn, name, timeout)
            await remote.definitions()
            yield remote

    async def begin_transaction(self, mode: str | None = "deferred") -> None:
        """Open this session's transaction."""
        await self._call("begin_transaction", mode or "deferred")

    async def commit(self) -> None:
        """Commit this session's transaction."""
        await self._call("commit")

    async def rollback(self) -> None:
        """Roll back this session's transaction."""
        await self._call("rollback")

    async def in_transaction(self) -> bool:
        """True while this session has a transaction open."""
        return bool(await self._call("in_transaction"))

    async def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the documents of an attachment."""
        att = await self._attachment(attachment)
        defs = await self._cached_defs()
        return {_key_from_wire(k, defs) for k in await self._call("keys", att.runtime_id.bytes)}

    async def _ak(self, attachment: Attachment | str, key: Key) -> tuple[Attachment, bytes]:
        att = await self._attachment(attachment)
        if not isinstance(key, Key) or not att.key_type.accepts_concept(key.concept):
            raise ValidationError(str(att.key_type), repr(key), f"{att.identifier} key")
        return att, _key_wire(key)

    async def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att, kw = await self._ak(attachment, key)
        return bool(await self._call("has", att.runtime_id.bytes, kw))

    async def get(self, attachment: Attachment | str, key: Key) -> Any:
        """The document, or None."""
        att, kw = await self._ak(attachment, key)
        w = await self._call("get", att.runtime_id.bytes, kw)
        return from_wire(w, OptionalType(att.document_type), await self._cached_defs())

    async def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document) pairs."""
        att = await self._attachment(attachment)
        defs = await self._cached_defs()
        w = await self._call("enumerate", att.runtime_id.bytes)
        return [(_key_from_wire(k, defs), from_wire(d, att.document_type, defs)) for k, d in w]

    async def set(self, attachment: Attachment | str, key: Key, value: Any) -> bool:
        """Write a document (inside this session's transaction)."""
        att, kw = await self._ak(attachment, key)
        if key.is_nil:
            raise ValidationError("a key with a valid instance id", "the nil key", att.identifier)
        where = f"{att.identifier}[{key.id}]"
        try:
            wire = to_wire(value, att.document_type)
        except ValidationError as exc:
            raise ValidationError(exc.expected, exc.given, where + exc.where) from None
        return bool(await self._call("set", att.runtime_id.bytes, kw, wire))

    async def delete(self, attachment: Attachment | str, key: Key) -> bool:
        """Delete a document; returns whether it existed."""
        att, kw = await self._ak(attachment, key)
        return bool(await self._call("delete", att.runtime_id.bytes, kw))

    async def del_blob(self, blob_id: BlobId) -> bool:
        """Delete a blob; returns whether it existed."""
        return bool(await self._call("del_blob", bytes(blob_id)))


@asynccontextmanager
async def _open(
    url: str,
    name: str,
    kind: str,
    credentials: Any,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> AsyncIterator[tuple[Connection, _Handler]]:
    hello: dict[str, Any] = {"client": "commitdb-python"}
    if credentials is not None:
        hello["credentials"] = credentials
    handler = _Handler()
    conn, welcome = await open_connection(
        url, hello, handler=handler, ssl_context=ssl_context, timeout=timeout
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(conn)
        served = {d["name"]: d for d in welcome.get("databases", [])}
        d = served.get(name)
        if d is None or d.get("kind") != kind:
            raise MethodNotFoundError(
                f"the server has no {kind} database named {name!r} (served: {', '.join(sorted(served)) or 'none'})"
            )
        yield conn, handler


class _ThreadWriter:
    """Lets a CommitMutableState commit through an async remote from a worker thread."""

    def __init__(self, remote: AsyncCommitDatabaseRemote, from_thread: Any) -> None:
        self._remote = remote
        self._from_thread = from_thread

    def _write_mutations(
        self, label: str, base: CommitId, entries: Any, blob_ids: Any, author: str | None
    ) -> CommitId:
        program = program_bytes((e[0], e[1]) for e in entries)
        return self._from_thread.run(  # type: ignore[no-any-return]
            lambda: self._remote.commit_program(label, base, program, author=author)
        )


# --------------------------------------------------------------------------------------------
# Blocking facades


class _Sync:
    """Runs coroutines of the async remote through a portal."""

    def __init__(self, portal: BlockingPortal, remote: Any) -> None:
        self._portal = portal
        self._remote = remote

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self._portal.call(lambda: fn(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._remote, name)
        if callable(value) and anyio_is_coroutine(value):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._run(value, *args, **kwargs)

            call.__name__ = name
            call.__doc__ = value.__doc__
            return call
        return value


def anyio_is_coroutine(fn: Any) -> bool:
    """True for coroutine functions (bound methods included)."""
    import inspect

    return inspect.iscoroutinefunction(fn)


class RemoteCommitState:
    """A blocking state of a remote commit database; a CommitMutableState can be built on it."""

    def __init__(
        self, portal: BlockingPortal, state: AsyncRemoteCommitState, db: CommitDatabaseRemote
    ) -> None:
        self._portal = portal
        self._state = state
        self._db = db

    def commit_id(self) -> CommitId:
        """The commit of this state."""
        return self._state.commit_id()

    def definitions(self) -> Definitions:
        """The definitions typing the documents."""
        return self._state.definitions()

    def database(self) -> CommitDatabaseRemote:
        """The remote database."""
        return self._db

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """The document, or None."""
        return self._portal.call(self._state.get, attachment, key)

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        return self._portal.call(self._state.has, attachment, key)

    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of existing documents."""
        return self._portal.call(self._state.keys, attachment)

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document) pairs, in one round trip."""
        return self._portal.call(self._state.enumerate, attachment)

    def get_many(self, attachment: Attachment | str, keys: Iterable[Key]) -> list[Any]:
        """Several documents in one round trip."""
        return self._portal.call(self._state.get_many, attachment, list(keys))

    def cache_preload(self) -> float:
        """Fetch every document of every attachment; returns the seconds taken."""
        import time

        t0 = time.perf_counter()
        for att in self.definitions().attachments():
            self.enumerate(att)
        return time.perf_counter() - t0

    # what CommitMutableState needs from its base
    def _resolve(self, address: DocAddress, att: Attachment) -> Any:
        from commitdb.state import _Resolved

        v = self._state._cached(address)
        if v is ABSENT:
            key = self._key_of(address)
            self._portal.call(self._state.get, att, key)
            v = self._state._cached(address)
        return _Resolved(ABSENT if v is None else v, 0, True)

    def _key_of(self, address: DocAddress) -> Key:
        import uuid as _uuid

        concept = self.definitions().query_type(_uuid.UUID(bytes=address[16:32]))
        assert isinstance(concept, ConceptType)
        return Key(concept, _uuid.UUID(bytes=address[32:]))


class CommitDatabaseRemote(_Sync):
    """The blocking remote commit database: the local CommitDatabase names, plain calls."""

    @staticmethod
    @contextmanager
    def connect(url: str, name: str, **kwargs: Any) -> Iterator[CommitDatabaseRemote]:
        """Connect and open the commit database served as `name`."""
        with start_blocking_portal() as portal:
            cm = AsyncCommitDatabaseRemote.connect(url, name, **kwargs)
            with portal.wrap_async_context_manager(cm) as remote:
                yield CommitDatabaseRemote(portal, remote)

    def state(self, commit_id: CommitId | None) -> RemoteCommitState:
        """The state at a commit."""
        return RemoteCommitState(self._portal, self._run(self._remote.state, commit_id), self)

    def initial_state(self) -> RemoteCommitState:
        """The empty state."""
        return self.state(None)

    def commit_mutations(
        self, label: str, mutable_state: Any, *, author: str | None = None
    ) -> CommitId:
        """Commit a local mutable state on the server."""
        return mutable_state._commit_into(self, label, author)  # type: ignore[no-any-return]

    def _write_mutations(
        self, label: str, base: CommitId, entries: Any, blob_ids: Any, author: str | None
    ) -> CommitId:
        program = program_bytes((e[0], e[1]) for e in entries)
        return self._run(self._remote.commit_program, label, base, program, author=author)

    def close(self) -> None:
        """Close the connection."""
        self._run(self._remote.aclose)

    @contextmanager
    def subscribe(self, max_queue: int = 1024) -> Iterator[Iterator[Any]]:
        """Iterate over new commits (CommitEvent, or MissedEvents when behind)."""
        with self._portal.wrap_async_context_manager(self._remote.subscribe(max_queue)) as receive:

            def events() -> Iterator[Any]:
                while True:
                    try:
                        yield self._portal.call(receive.receive)
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        return

            yield events()


class DatabaseRemote(_Sync):
    """The blocking remote flat database: the local Database names, plain calls."""

    @staticmethod
    @contextmanager
    def connect(url: str, name: str, **kwargs: Any) -> Iterator[DatabaseRemote]:
        """Connect and open the flat database served as `name`."""
        with start_blocking_portal() as portal:
            cm = AsyncDatabaseRemote.connect(url, name, **kwargs)
            with portal.wrap_async_context_manager(cm) as remote:
                yield DatabaseRemote(portal, remote)

    @contextmanager
    def transaction(self, mode: str | None = "deferred") -> Iterator[DatabaseRemote]:
        """Commit on success, roll back on exception."""
        self._run(self._remote.begin_transaction, mode)
        try:
            yield self
        except BaseException:
            self._run(self._remote.rollback)
            raise
        self._run(self._remote.commit)

    def close(self) -> None:
        """Close the connection."""
        self._run(self._remote.aclose)
