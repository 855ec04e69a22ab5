"""Remote databases: the local CommitDatabase / Database API over the native protocol.

Async first::

    async with AsyncCommitDatabaseRemote.connect("tcp://127.0.0.1:54321", "main") as db:
        head = await db.last_commit_id()
        state = await db.state(head)
        doc = await state.get(login, key)

and a blocking facade with the local names, arguments, results and errors
(:class:`CommitDatabaseRemote`, :class:`DatabaseRemote`), on whose states a local
:class:`~commitdb.CommitMutableState` can be built::

    with CommitDatabaseRemote.connect(url, "main") as db:
        ms = CommitMutableState(db.state(db.last_commit_id()))
        ms.set(login, key, {...})
        db.commit_mutations("edit", ms)      # committed on the server

The blocking facade speaks the protocol over a plain blocking socket (no event loop, no
thread hop: a call costs one round trip); over TLS it runs the async client in a helper
thread. Engine errors come back as the same :mod:`commitdb.errors` classes (an unknown commit
raises ``UnknownCommitError``...), ``ValueError``/``TypeError`` of the server as themselves, a
lost connection as :class:`~rpc.errors.ConnectionClosedError`, and any call after ``close()``
as ``DatabaseClosedError``.

States are evaluated on the server and cached here (a state never changes). After
``commit_mutations`` the new commit's state is seeded with the documents the commit wrote, so
a loop of read-modify-commit costs one round trip per commit.

Where the remote differs from the local classes (on purpose):

* ``path()`` returns the served name (a client never sees the server's filesystem) and
  ``in_memory()`` is False;
* ``flatten(commit_id, path)`` writes the flat copy to *the client's* ``path``;
* the default ``author`` of a commit is the client's user (``COMMITDB_AUTHOR`` or the login
  name of the client process), the timestamp is the server's clock;
* ``subscribe`` (live notifications) exists only remotely.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import os
import selectors
import socket
import ssl
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from commitdb.blobs import BlobInfo, BlobLayout, BlobStatistics
from commitdb.codec import decode, decoder, from_wire, to_wire, unpack
from commitdb.commit_database import DocEntry
from commitdb.commits import CommitData, CommitHeader
from commitdb.copier import copier
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import (
    CommitError,
    DatabaseClosedError,
    DecodeError,
    TransactionError,
    UnknownAttachmentError,
    UnknownCommitError,
    ValidationError,
)
from commitdb.ids import BlobId, CommitId
from commitdb.opcodes import ABSENT, DocAddress, op_from_wire, program_bytes
from commitdb.state import DocumentTrace, EvalAction, TraceStep, _Resolved
from commitdb.types import Attachment, ConceptType, OptionalType
from commitdb.values import Key
from rpc.client import open_connection
from rpc.connection import Connection
from rpc.errors import (
    CallTimeoutError,
    ConnectionClosedError,
    FrameTooLargeError,
    HandshakeError,
    MethodNotFoundError,
    ProtocolError,
    RemoteError,
    error_from_wire,
)
from rpc.framing import DEFAULT_MAX_FRAME_SIZE, FrameParser, encode_frame
from rpc.packets import (
    PROTOCOL_VERSION,
    Error,
    Hello,
    Notify,
    Request,
    Result,
    decode_packet,
    encode_cancel,
    encode_hello,
    encode_notify,
    encode_request,
)
from rpc.transports import Endpoint, parse_endpoint

__all__ = (
    "AsyncCommitDatabaseRemote",
    "AsyncDatabaseRemote",
    "AsyncRemoteCommitState",
    "AsyncSubscription",
    "CommitDatabaseRemote",
    "CommitEvent",
    "DatabaseRemote",
    "MissedEvents",
    "RemoteBlobStream",
    "RemoteCommitState",
    "ServedDatabaseInfo",
    "Subscription",
    "list_databases",
)

log = logging.getLogger("rpc.db_remote")

T = TypeVar("T")

DEFAULT_WINDOW = 1024
"""Events a subscription buffers on the client (and may have in flight to it)."""

_STATES = 64  # states cached per remote database
_SEED_KEYS = 20_000  # key sets up to this size are carried from a state to its child
_STREAM_PIECE = 4 << 20  # a blob stream write larger than this is sent in pieces
_RECEIVE = 262144


# --------------------------------------------------------------------------------------------
# Public value types


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """A new commit announced by the server.

    Attributes:
        database: The served name of the database.
        header: The commit's header.
        seq: Its creation sequence in the server's database (see ``commits_since``).
    """

    database: str
    header: CommitHeader
    seq: int

    @property
    def commit_id(self) -> CommitId:
        """The new commit's id."""
        return self.header.commit_id


@dataclass(frozen=True, slots=True)
class MissedEvents:
    """The subscriber fell behind: `count` commits were not announced to it.

    The subscription resumes with the newest commits; ``db.commits_since(first_seq)`` lists
    what was missed (resync).

    Attributes:
        database: The served name of the database.
        count: How many commits were not announced.
        first_seq: The creation sequence of the first of them.
    """

    database: str
    count: int
    first_seq: int


@dataclass(frozen=True, slots=True)
class ServedDatabaseInfo:
    """A database a server offers.

    Attributes:
        name: The name to open it by.
        kind: ``"commit"`` or ``"flat"``.
        uuid: The database's uuid.
        documentation: Its documentation.
    """

    name: str
    kind: str
    uuid: uuid.UUID
    documentation: str


# --------------------------------------------------------------------------------------------
# Wire helpers


def _check_id(commit_id: object) -> CommitId:
    """A commit id as the local database accepts it (CommitId, 32 bytes or hex)."""
    if isinstance(commit_id, CommitId):
        return commit_id
    if isinstance(commit_id, bytes | bytearray) and len(commit_id) == 32:
        return CommitId(bytes(commit_id))
    if isinstance(commit_id, str):
        try:
            return CommitId.from_hex(commit_id)
        except ValueError as exc:
            raise CommitError(str(exc)) from None
    raise CommitError(f"expected a CommitId, got {type(commit_id).__name__}")


def _wid(commit_id: object) -> bytes:
    return bytes(_check_id(commit_id))


def _opt_wid(commit_id: object) -> bytes | None:
    return None if commit_id is None else _wid(commit_id)


def _opt_cid(w: Any) -> CommitId | None:
    return None if w is None else CommitId(w)


def _layout_wire(layout: BlobLayout | None) -> list[Any]:
    lay = layout or BlobLayout()
    return [lay.data_type, lay.components]


def _layout(w: Any) -> BlobLayout:
    return BlobLayout(str(w[0]), int(w[1]))


def _blob_info(w: Any) -> BlobInfo | None:
    return None if w is None else BlobInfo(BlobId(w[0]), _layout(w[1]), int(w[2]))


def _blob_ids(w: Any) -> set[BlobId]:
    return {BlobId(b) for b in w}


def _commit_ids(w: Any) -> set[CommitId]:
    return {CommitId(c) for c in w}


def _commit_data(w: Any) -> CommitData:
    return CommitData(CommitHeader.from_wire(w[0]), bytes(w[1]))


def _commit_data_wire(data: CommitData) -> list[Any]:
    return [data.header.to_wire(), data.program]


def _ext(info: dict[str, Any]) -> ExtendInfo:
    def ids(name: str) -> list[uuid.UUID]:
        return [uuid.UUID(bytes=b) for b in info.get(name, [])]

    return ExtendInfo(
        concepts=ids("concepts"),
        clubs=ids("clubs"),
        enumerations=ids("enumerations"),
        structures=ids("structures"),
        attachments=ids("attachments"),
        pools=ids("pools"),
        memberships=[
            (uuid.UUID(bytes=a), uuid.UUID(bytes=b)) for a, b in info.get("memberships", [])
        ],
    )


def _served_info(d: dict[str, Any]) -> ServedDatabaseInfo:
    return ServedDatabaseInfo(
        str(d["name"]), str(d["kind"]), uuid.UUID(bytes=d["uuid"]), str(d["documentation"])
    )


def _key_wire(key: Key) -> bytes:
    return key.concept.runtime_id.bytes + key.id.bytes


def default_author() -> str:
    """The author of this process's commits: ``COMMITDB_AUTHOR`` or the login name."""
    env = os.environ.get("COMMITDB_AUTHOR")
    if env:
        return env
    if _LOGIN_NAME:
        return _LOGIN_NAME[0]
    try:
        name = getpass.getuser()
    except Exception:  # no user database in some containers
        name = ""
    _LOGIN_NAME.append(name)
    return name


_LOGIN_NAME: list[str] = []  # getpass.getuser() once (it reads the user database)


def _author(author: str | None) -> str:
    return default_author() if author is None else author


def _translate(exc: RemoteError) -> Exception:
    """A server-side ValueError/TypeError comes back as itself."""
    kind = exc.data.get("type") if isinstance(exc.data, dict) else None
    builtin = _BUILTIN_ERRORS.get(kind) if exc.code == -32000 else None
    if builtin is not None:
        return builtin(exc.message.partition(": ")[2] or exc.message)
    return exc


_BUILTIN_ERRORS: dict[Any, type[Exception]] = {
    "ValueError": ValueError,
    "TypeError": TypeError,
    "OverflowError": OverflowError,
}


def _check_key(att: Attachment, key: object, *, write: bool = False) -> Key:
    where = f"{att.identifier} key"
    if not isinstance(key, Key):
        raise ValidationError(str(att.key_type), f"{type(key).__name__} {key!r}", where)
    if not att.key_type.accepts_concept(key.concept):
        raise ValidationError(str(att.key_type), f"key of {key.concept}", where)
    if write and key.is_nil:
        raise ValidationError("a key with a valid instance id", "the nil key", where)
    return key


def _value_wire(att: Attachment, key: Key, value: Any) -> Any:
    """The wire form of a document, refused with the local database's located message."""
    t = att.document_type
    where = f"{att.identifier}[{key.id}]"
    try:
        return to_wire(value, t)
    except ValidationError as exc:
        try:
            t.check(value, where)
        except ValidationError as located:
            raise located from None
        raise ValidationError(exc.expected, exc.given, where) from None


class _Stale(Exception):
    """The cached definitions miss something the server knows: refresh and retry."""


class _Defs:
    """The definitions a remote caches, with lookups that say when they are stale."""

    def __init__(self, definitions: Definitions, digest: str) -> None:
        self.definitions = definitions
        self.digest = digest

    def attachment(self, ref: Attachment | str | uuid.UUID) -> Attachment:
        try:
            return self.definitions.check_attachment(ref)
        except UnknownAttachmentError:
            raise _Stale from None

    def key(self, w: Any) -> Key:
        concept = self.definitions.query_type(uuid.UUID(bytes=w[:16]))
        if not isinstance(concept, ConceptType):
            raise _Stale
        return Key(concept, uuid.UUID(bytes=w[16:]))

    def value(self, w: Any, t: Any) -> Any:
        try:
            return from_wire(w, t, self.definitions)
        except DecodeError:
            raise _Stale from None


# --------------------------------------------------------------------------------------------
# State cores (shared by the async and blocking states)

_MISSING: Any = object()


class _StateCore:
    """What a remote state knows: its identity, and the documents and key sets fetched."""

    def __init__(
        self,
        commit_id: CommitId,
        definitions: Definitions,
        virtual: tuple[CommitId, CommitId] | None = None,
    ) -> None:
        self.commit_id = commit_id
        self.virtual = virtual
        self.defs = definitions
        self.initial = not commit_id.is_valid and virtual is None
        self.spec: Any = (
            [bytes(virtual[0]), bytes(virtual[1])]
            if virtual is not None
            else bytes(commit_id)
            if commit_id.is_valid
            else None
        )
        self.docs: dict[DocAddress, Any] = {}  # ABSENT: no such document
        self.keys: dict[bytes, set[Key]] = {}  # attachment id -> keys (when fetched)
        # attachment id -> wire keys of its documents, for the attachments whose key set is
        # known (fetched, or derived from the parent's by a commit): the absence of any other
        # document is then known without asking
        self.present: dict[bytes, set[bytes]] = {}
        self._concepts: dict[bytes, ConceptType] = {}
        self.requests = 0
        self.hits = 0

    def attachment(self, ref: Attachment | str | uuid.UUID) -> Attachment:
        try:
            return self.defs.check_attachment(ref)
        except UnknownAttachmentError:
            raise _Stale from None

    def address(self, att: Attachment, key: object) -> DocAddress:
        k = _check_key(att, key)
        return att.runtime_id.bytes + _key_wire(k)

    def cached(self, address: DocAddress) -> Any:
        self.requests += 1
        if self.initial:
            self.hits += 1
            return ABSENT
        v = self.docs.get(address, _MISSING)
        if v is _MISSING:
            known = self.present.get(address[:16])
            if known is None or address[16:] in known:
                return _MISSING
            v = ABSENT
        elif type(v) is _Lazy:
            v = self.docs[address] = v.decode(self.defs)
        self.hits += 1
        return v

    def known_keys(self, att: Attachment) -> set[Key] | None:
        """The keys of an attachment, if known without asking."""
        rid = att.runtime_id.bytes
        keys = self.keys.get(rid)
        if keys is None and rid in self.present:
            keys = {self.key_of(k) for k in self.present[rid]}
            self.keys[rid] = keys
        return keys

    def store(self, address: DocAddress, att: Attachment, w: Any) -> Any:
        """Cache a document sent as None (absent) or ``[wire value]``."""
        try:
            v = ABSENT if w is None else from_wire(w[0], att.document_type, self.defs)
        except DecodeError:
            raise _Stale from None
        self.docs[address] = v
        return v

    def key_of(self, w: bytes) -> Key:
        prefix = w[:16]
        concept = self._concepts.get(prefix)
        if concept is None:
            found = self.defs.query_type(uuid.UUID(bytes=prefix))
            if not isinstance(found, ConceptType):
                raise _Stale
            concept = self._concepts[prefix] = found
        return Key(concept, uuid.UUID(bytes=w[16:]))

    def store_keys(self, att: Attachment, w: Any) -> set[Key]:
        keys = {self.key_of(k) for k in w}
        self.keys[att.runtime_id.bytes] = keys
        self.present[att.runtime_id.bytes] = {bytes(k) for k in w}
        return keys

    def store_enumeration(self, att: Attachment, w: Any) -> list[tuple[Key, Any]]:
        rid = att.runtime_id.bytes
        t = att.document_type
        dec = decoder(t)
        defs = self.defs
        docs = self.docs
        out: list[tuple[Key, Any]] = []
        try:
            for kw, dw in w:
                # the cache keeps the wire form: what is returned is fresh (no copy needed)
                out.append((self.key_of(kw), dec(dw, defs)))
                docs[rid + kw] = _Lazy(dw, t, False)
        except Exception:  # the codec's own errors included: retried with fresh definitions
            raise _Stale from None
        self.keys[rid] = {k for k, _ in out}
        self.present[rid] = {bytes(kw) for kw, _ in w}
        return out

    def seed(self, entries: Any, parent: _StateCore | None) -> None:
        """Fill the cache with what a commit on `parent` (this state's parent, when known)
        wrote: the documents after the commit (its snapshots) and the key sets the parent
        knew, updated."""
        if parent is not None and parent.initial:
            self.present = {a.runtime_id.bytes: set() for a in self.defs.attachments()}
        elif parent is not None:  # copying is O(keys): very large key sets are forgotten
            self.present = {
                rid: set(keys) for rid, keys in parent.present.items() if len(keys) <= _SEED_KEYS
            }
        for entry in entries:
            address, ops, snap = entry[0], entry[1], entry[2]
            known = self.present.get(address[:16])
            if known is not None:
                if snap is False:
                    known.discard(address[16:])
                else:
                    known.add(address[16:])
            att = self.defs.query_attachment(uuid.UUID(bytes=address[:16]))
            if att is None:
                continue
            if snap is False:
                self.docs[address] = ABSENT
                continue
            raw = DocEntry(self.commit_id, 0, ops, snap, 0, True, False).snapshot_bytes()
            if raw is not None:
                self.docs[address] = _Lazy(raw, att.document_type, True)  # decoded if read

    def value(self, address: DocAddress) -> Any:
        """A document known to this state (fetched, or known absent)."""
        if self.initial:
            return ABSENT
        v = self.docs.get(address, ABSENT)
        if type(v) is _Lazy:
            v = self.docs[address] = v.decode(self.defs)
        return v

    def resolved(self, address: DocAddress) -> _Resolved:
        return _Resolved(self.value(address), 0, True)

    def trace(self, att: Attachment, key: Key, w: Any) -> DocumentTrace:
        t = att.document_type
        value = from_wire(w[0], OptionalType(t), self.defs)
        steps = [TraceStep(CommitId(c), op_from_wire(op, t, self.defs), err) for c, op, err in w[1]]
        return DocumentTrace(att, key, value, steps, [CommitId(c) for c in w[2]])


class _Lazy:
    """A cached document not decoded yet: its wire form, or its encoded bytes."""

    __slots__ = ("data", "encoded", "type")

    def __init__(self, data: Any, t: Any, encoded: bool) -> None:
        self.data = data
        self.type = t
        self.encoded = encoded

    def decode(self, definitions: Definitions) -> Any:
        if self.encoded:
            return decode(self.data, self.type, definitions)
        return from_wire(self.data, self.type, definitions)


def _out(att: Attachment, v: Any) -> Any:
    return None if v is ABSENT or v is None else copier(att.document_type)(v)


def _seeded(
    states: _StateCache, defs: _Defs | None, commit_id: CommitId, base: CommitId, entries: Any
) -> _StateCore | None:
    """The state core of a commit just made on `base` from `entries` (None if cached)."""
    if defs is None or states.get(commit_id) is not None:
        return None
    if base.is_valid:
        parent = states.get(base)
        parent_core = parent._core if parent is not None else None
    else:
        parent_core = _StateCore(base, defs.definitions)
    core = _StateCore(commit_id, defs.definitions)
    core.seed(entries, parent_core)
    return core


class _StateCache:
    """The states a remote database handed out, most recent last (a state never changes)."""

    def __init__(self) -> None:
        self._states: OrderedDict[CommitId, Any] = OrderedDict()
        self._lock = threading.Lock()  # a blocking remote may be shared by threads

    def get(self, commit_id: CommitId) -> Any:
        with self._lock:
            st = self._states.get(commit_id)
            if st is not None:
                self._states.move_to_end(commit_id)
            return st

    def put(self, commit_id: CommitId, state: Any) -> None:
        with self._lock:
            self._states[commit_id] = state
            if len(self._states) > _STATES:
                self._states.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


# --------------------------------------------------------------------------------------------
# Blocking transports


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Buffer:
    """The events of one subscription waiting for their consumer (guarded by the
    transport's condition)."""

    __slots__ = ("consumed", "database", "done", "items", "window")

    def __init__(self, database: str, window: int) -> None:
        self.database = database
        self.window = window
        self.items: deque[CommitEvent | MissedEvents] = deque()
        self.consumed = 0
        self.done = False

    def push(self, notify: Notify) -> None:
        try:
            if notify.method == "commit":
                header = CommitHeader.from_wire(notify.args[0])
                self.items.append(CommitEvent(self.database, header, int(notify.args[1])))
            elif notify.method == "missed":
                count, first = int(notify.args[0]), int(notify.args[1])
                self.items.append(MissedEvents(self.database, count, first))
        except (DecodeError, IndexError, TypeError, ValueError):
            log.warning("malformed %s notification %r", notify.method, notify.args)


class _BlockingTransport(ABC):
    """A connection used from plain threads: calls, notifications, subscription buffers."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.buffers: dict[str, _Buffer] = {}
        self.closed = False
        self.reason: BaseException | None = None
        self._reading = False
        self._tags = itertools.count(1)

    def new_tag(self) -> str:
        """A subscription tag unique on this connection."""
        return f"sub:{next(self._tags)}"

    @abstractmethod
    def call(self, target: str, method: str, args: list[Any], timeout: float | None) -> Any:
        """Send a request and wait for its wire result."""

    @abstractmethod
    def notify(self, target: str, method: str, args: list[Any]) -> None:
        """Send a notification."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent)."""

    @abstractmethod
    def _reader_needed(self) -> bool:
        """Whether a waiting thread must read the connection itself."""

    @abstractmethod
    def _pump(self, deadline: float | None) -> None:
        """Read once (until `deadline` at most) and dispatch what arrived."""

    def wait_for(self, ready: Callable[[], bool], deadline: float | None) -> bool:
        """Wait until ``ready()`` (checked under the condition) is true, reading the
        connection when no other thread does.

        Returns:
            False when the deadline passed first.

        Raises:
            ConnectionClosedError: The connection closed (and ``ready()`` is false).
        """
        while True:
            with self.cond:
                while True:
                    if ready():
                        return True
                    if self.closed:
                        raise ConnectionClosedError(str(self.reason)) from self.reason
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    if self._reader_needed():
                        self._reading = True
                        break
                    self.cond.wait(remaining)
            try:
                self._pump(deadline)
            finally:
                with self.cond:
                    self._reading = False
                    self.cond.notify_all()

    def _dispatch_notify(self, notify: Notify) -> None:
        """Deliver a notification (called with the condition held)."""
        buffer = self.buffers.get(notify.target)
        if buffer is None:
            return
        buffer.push(notify)
        self.cond.notify_all()

    def _lost(self, reason: BaseException) -> None:
        with self.cond:
            if not self.closed:
                self.closed = True
                self.reason = reason
            self.cond.notify_all()


class _SocketTransport(_BlockingTransport):
    """The protocol over a blocking TCP or Unix socket, no event loop.

    Whichever thread waits for something reads the socket (one at a time) and hands what it
    reads to the others: a single-threaded client never switches threads.
    """

    def __init__(self, sock: socket.socket, parser: FrameParser) -> None:
        super().__init__()
        self._sock = sock
        self._parser = parser
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._results: dict[int, Any] = {}
        self._waiting: set[int] = set()
        self._selector: selectors.BaseSelector | None = None

    def _reader_needed(self) -> bool:
        return not self._reading

    def _send(self, data: bytes) -> None:
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as exc:
            self._lost(ConnectionClosedError(f"connection lost while sending: {exc}"))
            raise ConnectionClosedError(f"connection lost while sending: {exc}") from None

    def call(self, target: str, method: str, args: list[Any], timeout: float | None) -> Any:
        """Send a request and wait for its wire result."""
        call_id = next(self._ids)
        frame = encode_frame(encode_request(call_id, target, method, args))
        results = self._results
        with self.cond:
            if self.closed:
                raise ConnectionClosedError(str(self.reason)) from self.reason
            self._waiting.add(call_id)
        try:
            self._send(frame)
            deadline = time.monotonic() + timeout if timeout else None
            if not self.wait_for(lambda: call_id in results, deadline):
                try:
                    self._send(encode_frame(encode_cancel(call_id)))
                except ConnectionClosedError:
                    pass
                raise CallTimeoutError(f"{target}.{method} timed out after {timeout} s")
            with self.cond:
                value = results.pop(call_id)
        finally:
            with self.cond:
                self._waiting.discard(call_id)
                results.pop(call_id, None)
        if type(value) is _Failure:
            raise value.error
        return value

    def notify(self, target: str, method: str, args: list[Any]) -> None:
        """Send a notification."""
        self._send(encode_frame(encode_notify(target, method, args)))

    def _pump(self, deadline: float | None) -> None:
        sock = self._sock
        try:
            if deadline is not None:
                if self._selector is None:
                    self._selector = selectors.DefaultSelector()
                    self._selector.register(sock, selectors.EVENT_READ)
                if not self._selector.select(max(0.0, deadline - time.monotonic())):
                    return
            data = sock.recv(_RECEIVE)
        except (OSError, ValueError) as exc:
            self._lost(ConnectionClosedError(f"connection lost: {exc}"))
            return
        if not data:
            self._lost(ConnectionClosedError("connection closed by the server"))
            return
        try:
            frames = self._parser.feed(data)
        except FrameTooLargeError as exc:
            self._lost(ConnectionClosedError(f"connection closed: {exc}"))
            return
        with self.cond:
            for frame in frames:
                self._dispatch(frame)

    def _dispatch(self, frame: bytes) -> None:
        try:
            pkt = decode_packet(frame)
        except ProtocolError as exc:
            log.warning("ignored a malformed packet from the server: %s", exc)
            return
        if type(pkt) is Result:
            if pkt.id in self._waiting:
                self._results[pkt.id] = pkt.value
        elif type(pkt) is Error:
            if pkt.id == 0:
                log.info("the server reported: [%s] %s", pkt.code, pkt.message)
            elif pkt.id in self._waiting:
                self._results[pkt.id] = _Failure(error_from_wire(pkt.code, pkt.message, pkt.data))
        elif type(pkt) is Notify:
            self._dispatch_notify(pkt)
        elif type(pkt) is Request:
            log.warning("the server sent a request (%s.%s); ignored", pkt.target, pkt.method)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._lost(ConnectionClosedError("connection closed"))
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self._send_lock:
            self._sock.close()
        if self._selector is not None:
            self._selector.close()

    @classmethod
    def open(
        cls, ep: Endpoint, hello: dict[str, Any], timeout: float
    ) -> tuple[_SocketTransport, dict[str, Any]]:
        """Connect and handshake.

        Returns:
            The transport and the server's welcome fields.
        """
        if ep.scheme == "tcp":
            sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(ep.path)
            except BaseException:
                sock.close()
                raise
        try:
            parser = FrameParser(DEFAULT_MAX_FRAME_SIZE)
            sock.sendall(encode_frame(encode_hello(PROTOCOL_VERSION, hello)))
            frames: list[bytes] = []
            while not frames:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionClosedError("connection closed during the handshake")
                frames = parser.feed(data, 1)
            pkt = decode_packet(frames[0])
            if isinstance(pkt, Error):
                err = error_from_wire(pkt.code, pkt.message, pkt.data)
                raise err if isinstance(err, HandshakeError) else HandshakeError(pkt.message)
            if not isinstance(pkt, Hello) or not pkt.welcome:
                raise ProtocolError("the server did not answer the hello with a welcome")
            sock.settimeout(None)
        except TimeoutError:
            sock.close()
            raise HandshakeError("no welcome within the connect timeout") from None
        except BaseException:
            sock.close()
            raise
        return cls(sock, parser), pkt.fields


class _PortalHandler:
    """Receives the notifications of a portal transport (on the portal's event loop)."""

    def __init__(self, transport: _PortalTransport) -> None:
        self.transport = transport

    def handle_request(self, conn: Connection, req: Request) -> Any:
        raise MethodNotFoundError(f"this client serves no {req.target!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        with self.transport.cond:
            self.transport._dispatch_notify(notify)


class _PortalTransport(_BlockingTransport):
    """The async client run in a helper thread (used for TLS, whose objects cannot be read
    and written by two threads at once)."""

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._conn_cm: AbstractContextManager[Connection] | None = None
        self._portal: BlockingPortal | None = None
        self._conn: Connection | None = None

    def _reader_needed(self) -> bool:
        return False  # the portal's event loop reads

    def _pump(self, deadline: float | None) -> None:
        return None

    @classmethod
    def open(
        cls,
        url: str,
        hello: dict[str, Any],
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        timeout: float,
    ) -> tuple[_PortalTransport, dict[str, Any]]:
        """Connect and handshake in a new portal thread."""
        t = cls()
        t._portal_cm = start_blocking_portal()
        portal = t._portal = t._portal_cm.__enter__()
        try:

            async def connect() -> tuple[Connection, dict[str, Any]]:
                return await open_connection(
                    url,
                    hello,
                    handler=_PortalHandler(t),
                    ssl_context=ssl_context,
                    server_hostname=server_hostname,
                    timeout=timeout,
                )

            conn, welcome = portal.call(connect)
            t._conn = conn
            t._conn_cm = portal.wrap_async_context_manager(conn)
            t._conn_cm.__enter__()
            portal.start_task_soon(t._watch, conn)
        except BaseException:
            t._portal_cm.__exit__(None, None, None)
            raise
        return t, welcome

    async def _watch(self, conn: Connection) -> None:
        await conn.closed_event.wait()
        self._lost(ConnectionClosedError("connection closed by the server"))

    def call(self, target: str, method: str, args: list[Any], timeout: float | None) -> Any:
        """Send a request and wait for its wire result."""
        if self.closed or self._portal is None or self._conn is None:
            raise ConnectionClosedError(str(self.reason)) from self.reason
        conn = self._conn

        async def run() -> Any:
            return await conn.call(target, method, args, timeout=timeout)

        try:
            return self._portal.call(run)
        except RuntimeError as exc:  # the portal stopped
            raise ConnectionClosedError(f"connection closed: {exc}") from None

    def notify(self, target: str, method: str, args: list[Any]) -> None:
        """Send a notification."""
        if self.closed or self._portal is None or self._conn is None:
            raise ConnectionClosedError(str(self.reason)) from self.reason
        conn = self._conn

        async def run() -> None:
            await conn.notify(target, method, args)

        self._portal.call(run)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._lost(ConnectionClosedError("connection closed"))
        conn_cm, self._conn_cm = self._conn_cm, None
        portal_cm, self._portal_cm = self._portal_cm, None
        try:
            if conn_cm is not None:
                conn_cm.__exit__(None, None, None)
        finally:
            if portal_cm is not None:
                portal_cm.__exit__(None, None, None)


def _open_blocking(
    url: str,
    credentials: Any,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    timeout: float,
) -> tuple[_BlockingTransport, dict[str, Any]]:
    hello: dict[str, Any] = {"client": "commitdb-python"}
    if credentials is not None:
        hello["credentials"] = credentials
    ep = parse_endpoint(url)
    if ep.tls:
        return _PortalTransport.open(url, hello, ssl_context, server_hostname, timeout)
    return _SocketTransport.open(ep, hello, timeout)


def _served(welcome: dict[str, Any], name: str, kind: str) -> None:
    served = {d["name"]: d for d in welcome.get("databases", [])}
    d = served.get(name)
    if d is None or d.get("kind") != kind:
        raise MethodNotFoundError(
            f"the server has no {kind} database named {name!r} "
            f"(served: {', '.join(sorted(served)) or 'none'})"
        )


# --------------------------------------------------------------------------------------------
# Subscriptions


class Subscription:
    """New commits of a served commit database, as they land (blocking).

    Iterate (``for event in sub``), or call :meth:`get`; each item is a :class:`CommitEvent`,
    or a :class:`MissedEvents` when this subscriber fell behind. With a callback the events
    are delivered to it from a helper thread instead. :meth:`close` (or leaving the ``with``
    block) unsubscribes; an exception raised by the callback stops the delivery and is raised
    again by :meth:`close`. If the connection is lost, iteration raises
    :class:`~rpc.errors.ConnectionClosedError`.
    """

    def __init__(
        self,
        db: CommitDatabaseRemote,
        tag: str,
        first_seq: int,
        buffer: _Buffer,
        callback: Callable[[CommitEvent | MissedEvents], Any] | None,
    ) -> None:
        self._db = db
        self._transport = db._transport
        self._target = tag
        self.first_seq = first_seq
        self._buffer = buffer
        self._ack_every = max(1, buffer.window // 4)
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if callback is not None:
            self._thread = threading.Thread(
                target=self._run, args=(callback,), name=f"commitdb-{db.name}-{tag}"
            )
            self._thread.daemon = True
            self._thread.start()

    def get(self, timeout: float | None = None) -> CommitEvent | MissedEvents:
        """The next event.

        Args:
            timeout: Seconds to wait at most (None: no limit).

        Returns:
            The next event.

        Raises:
            TimeoutError: Nothing arrived in time.
            StopIteration: The subscription was closed.
            ConnectionClosedError: The connection was lost.
        """
        buf = self._buffer
        deadline = time.monotonic() + timeout if timeout is not None else None
        if not self._transport.wait_for(lambda: bool(buf.items) or buf.done, deadline):
            raise TimeoutError(f"no commit announced within {timeout} s")
        ack = 0
        with self._transport.cond:
            if not buf.items:
                raise StopIteration
            item = buf.items.popleft()
            buf.consumed += 1
            if buf.consumed >= self._ack_every:
                ack, buf.consumed = buf.consumed, 0
        if ack and not buf.done:
            try:
                self._transport.notify(self._target, "ack", [ack])
            except ConnectionClosedError:
                pass
        return item

    def __iter__(self) -> Iterator[CommitEvent | MissedEvents]:
        return self

    def __next__(self) -> CommitEvent | MissedEvents:
        return self.get()

    def pending(self) -> int:
        """Events received and not consumed yet."""
        with self._transport.cond:
            return len(self._buffer.items)

    def _run(self, callback: Callable[[CommitEvent | MissedEvents], Any]) -> None:
        try:
            for event in self:
                callback(event)
        except ConnectionClosedError as exc:
            if not self._closed:
                self._error = exc
        except BaseException as exc:  # reported by close()
            log.warning("a subscription callback failed: %r", exc)
            self._error = exc

    def close(self) -> None:
        """Unsubscribe; wait for the callback thread; raise what the callback raised."""
        if not self._closed:
            self._closed = True
            with self._transport.cond:
                self._buffer.done = True
                self._transport.buffers.pop(self._target, None)
                self._transport.cond.notify_all()
            if not self._transport.closed:
                try:
                    self._db._call("unsubscribe", self._target)
                except (ConnectionClosedError, DatabaseClosedError):
                    pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSubscription:
    """New commits of a served commit database, as they land (async iterator).

    Each item is a :class:`CommitEvent`, or a :class:`MissedEvents` when this subscriber fell
    behind. Obtained from :meth:`AsyncCommitDatabaseRemote.subscribe`.
    """

    def __init__(
        self,
        remote: AsyncCommitDatabaseRemote,
        tag: str,
        first_seq: int,
        window: int,
        receive: MemoryObjectReceiveStream[CommitEvent | MissedEvents],
    ) -> None:
        self._remote = remote
        self._target = tag
        self.first_seq = first_seq
        self._receive = receive
        self._ack_every = max(1, window // 4)
        self._consumed = 0

    async def receive(self) -> CommitEvent | MissedEvents:
        """The next event.

        Raises:
            EndOfStream: The subscription was closed.
            ConnectionClosedError: The connection was lost.
        """
        try:
            item = self._receive.receive_nowait()
        except anyio.WouldBlock:
            item = await self._wait()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise anyio.EndOfStream from None
        self._consumed += 1
        if self._consumed >= self._ack_every:
            n, self._consumed = self._consumed, 0
            conn = self._remote.connection
            if not conn.closed:
                conn.notify_nowait(self._target, "ack", [n])
        return item

    async def _wait(self) -> CommitEvent | MissedEvents:
        conn = self._remote.connection
        got: list[CommitEvent | MissedEvents] = []

        async with anyio.create_task_group() as tg:

            async def item() -> None:
                try:
                    got.append(await self._receive.receive())
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    pass
                tg.cancel_scope.cancel()

            async def lost() -> None:
                await conn.closed_event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(item)
            tg.start_soon(lost)
        if got:
            return got[0]
        if conn.closed and not self._remote._user_closed:
            raise ConnectionClosedError("connection lost")
        raise anyio.EndOfStream

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> CommitEvent | MissedEvents:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class _AsyncHandler:
    """Client side of an async remote: receives subscription notifications."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.streams: dict[str, MemoryObjectSendStream[CommitEvent | MissedEvents]] = {}
        self.windows: dict[str, int] = {}

    def handle_request(self, conn: Connection, req: Request) -> Any:
        raise MethodNotFoundError(f"this client serves no {req.target!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        stream = self.streams.get(notify.target)
        if stream is None:
            return
        buf = _Buffer(self.database, 1)
        buf.push(notify)
        for item in buf.items:
            try:
                stream.send_nowait(item)
            except anyio.WouldBlock:
                log.warning("subscription buffer full; an event was dropped")
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.streams.pop(notify.target, None)


# --------------------------------------------------------------------------------------------
# Async remotes


async def list_databases(
    url: str,
    *,
    credentials: Any = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float = 10.0,
) -> list[ServedDatabaseInfo]:
    """The databases a server offers.

    Args:
        url: The server's URL.
        credentials: What the server's authenticator expects (a token).
        ssl_context: The TLS context (``tls://`` URLs).
        server_hostname: The name to check the server certificate against.
        timeout: Seconds to connect at most.

    Returns:
        One info per served database.
    """
    hello: dict[str, Any] = {"client": "commitdb-python"}
    if credentials is not None:
        hello["credentials"] = credentials
    conn, welcome = await open_connection(
        url, hello, ssl_context=ssl_context, server_hostname=server_hostname, timeout=timeout
    )
    async with conn:
        return [_served_info(d) for d in welcome.get("databases", [])]


class _AsyncBase:
    """Shared plumbing of the async remotes: the connection, the target, definitions."""

    kind = ""

    def __init__(self, conn: Connection, name: str, timeout: float | None) -> None:
        self.connection = conn
        self.name = name
        self.timeout = timeout
        self._target = f"{'cdb' if self.kind == 'commit' else 'db'}:{name}"
        self._defs: _Defs | None = None
        self._user_closed = False

    async def _call(self, method: str, *args: Any) -> Any:
        if self._user_closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")
        try:
            return await self.connection.call(
                self._target, method, list(args), timeout=self.timeout
            )
        except RemoteError as exc:
            raise _translate(exc) from None

    async def _fresh_defs(self) -> _Defs:
        digest = str(await self._call("definitions_hexdigest"))
        if self._defs is None or digest != self._defs.digest:
            raw = await self._call("definitions")
            self._defs = _Defs(decode_definitions(raw), digest)
        return self._defs

    async def _cached_defs(self) -> _Defs:
        return self._defs if self._defs is not None else await self._fresh_defs()

    async def _load_defs(self) -> None:
        """The definitions and their digest in one round trip (when the remote opens)."""
        digest, raw = await self._call("open")
        self._defs = _Defs(decode_definitions(raw), str(digest))

    async def _attachment(self, attachment: Attachment | str) -> Attachment:
        try:
            return (await self._cached_defs()).attachment(attachment)
        except _Stale:
            pass
        try:
            return (await self._fresh_defs()).attachment(attachment)
        except _Stale:
            raise UnknownAttachmentError(
                f"attachment {_ref(attachment)} is not registered"
            ) from None

    async def definitions(self) -> Definitions:
        """The database's definitions (fresh: another client may have extended them)."""
        return (await self._fresh_defs()).definitions

    async def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Add types and attachments (additive only)."""
        info = await self._call("extend_definitions", encode_definitions(definitions))
        self._defs = None
        return _ext(info)

    async def definitions_hexdigest(self) -> str:
        """Digest of the definitions."""
        return str(await self._call("definitions_hexdigest"))

    async def uuid(self) -> uuid.UUID:
        """The database uuid."""
        return uuid.UUID(bytes=await self._call("uuid"))

    async def documentation(self) -> str:
        """The database documentation."""
        return str(await self._call("documentation"))

    async def codec_name(self) -> str:
        """The value codec."""
        return str(await self._call("codec_name"))

    def path(self) -> str:
        """The served name (a client never sees the server's filesystem)."""
        self._check_open()
        return self.name

    def in_memory(self) -> bool:
        """False: the database lives on the server."""
        self._check_open()
        return False

    def _check_open(self) -> None:
        if self._user_closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")

    def is_closed(self) -> bool:
        """True once closed (by :meth:`aclose` or because the connection was lost)."""
        return self._user_closed or self.connection.closed

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        self._user_closed = True
        await self.connection.aclose()

    # -- blobs ----------------------------------------------------------------------------
    async def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob (idempotent) and return its id (a large one is streamed)."""
        view = memoryview(data).cast("B")
        if len(view) <= _STREAM_PIECE:
            return BlobId(await self._call("create_blob", bytes(view), _layout_wire(layout)))
        sid = await self._call("blob_stream_open", _layout_wire(layout), len(view))
        for i in range(0, len(view), _STREAM_PIECE):
            await self._call("blob_stream_write", sid, bytes(view[i : i + _STREAM_PIECE]))
        return BlobId(await self._call("blob_stream_close", sid))

    async def blob(self, blob_id: BlobId) -> bytes | None:
        """A whole blob, or None (a large one is read in ranges)."""
        r = await self._call("blob", bytes(blob_id))
        if type(r) is int:
            pieces = [
                await self.read_blob(blob_id, min(_STREAM_PIECE, r - i), i)
                for i in range(0, r, _STREAM_PIECE)
            ]
            return b"".join(pieces)
        return None if r is None else bytes(r)

    async def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """A range of a blob."""
        return bytes(await self._call("read_blob", bytes(blob_id), size, offset))

    async def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None."""
        return _blob_info(await self._call("blob_info", bytes(blob_id)))

    async def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the stored blobs among `blob_ids`."""
        w = await self._call("blob_infos", [bytes(b) for b in blob_ids])
        return [BlobInfo(BlobId(i), _layout(lay), int(s)) for i, lay, s in w]

    async def blob_ids(self) -> set[BlobId]:
        """Every stored blob id."""
        return _blob_ids(await self._call("blob_ids"))

    async def blob_statistics(self) -> BlobStatistics:
        """Count and sizes of stored blobs."""
        return BlobStatistics(*await self._call("blob_statistics"))


def _ref(attachment: object) -> str:
    return attachment.identifier if isinstance(attachment, Attachment) else str(attachment)


class AsyncRemoteCommitState:
    """A state of a remote commit database (evaluated on the server, cached here).

    A :class:`~commitdb.CommitMutableState` may be built on it; its reads of documents not
    fetched yet need a round trip, which can only be made from a worker thread (build the
    mutable state in ``anyio.to_thread.run_sync``, or fetch the documents first with
    :meth:`get_many` or :meth:`enumerate`).
    """

    def __init__(self, db: AsyncCommitDatabaseRemote, core: _StateCore) -> None:
        self._db = db
        self._core = core

    @property
    def _virtual(self) -> tuple[CommitId, CommitId] | None:
        return self._core.virtual

    def commit_id(self) -> CommitId:
        """The commit of this state (INVALID for the initial state or a virtual merge)."""
        return self._core.commit_id

    def definitions(self) -> Definitions:
        """The definitions typing the documents."""
        return self._core.defs

    def database(self) -> AsyncCommitDatabaseRemote:
        """The remote database."""
        return self._db

    def attachment_getting(self) -> AsyncRemoteCommitState:
        """This state, as the read interface."""
        return self

    def __repr__(self) -> str:
        c = self._core.commit_id
        return f"<AsyncRemoteCommitState {c.hex()[:12] if c.is_valid else 'initial'}>"

    async def _att(self, attachment: Attachment | str) -> Attachment:
        try:
            return self._core.attachment(attachment)
        except _Stale:
            self._core.defs = await self._db.definitions()
        try:
            return self._core.attachment(attachment)
        except _Stale:
            raise UnknownAttachmentError(
                f"attachment {_ref(attachment)} is not registered"
            ) from None

    async def _retry(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _Stale:
            self._core.defs = await self._db.definitions()
        try:
            return fn()
        except _Stale:
            raise DecodeError("the server sent a value of unknown types") from None

    async def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        att = await self._att(attachment)
        address = self._core.address(att, key)
        v = self._core.cached(address)
        if v is _MISSING:
            w = await self._db._call(
                "state_get", self._core.spec, att.runtime_id.bytes, address[16:]
            )
            v = await self._retry(lambda: self._core.store(address, att, w))
        return _out(att, v)

    async def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att = await self._att(attachment)
        address = self._core.address(att, key)
        v = self._core.cached(address)
        if v is _MISSING:
            w = await self._db._call(
                "state_get", self._core.spec, att.runtime_id.bytes, address[16:]
            )
            v = await self._retry(lambda: self._core.store(address, att, w))
        return v is not ABSENT

    async def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the existing documents."""
        att = await self._att(attachment)
        if self._core.initial:
            return set()
        cached = await self._retry(lambda: self._core.known_keys(att))
        if cached is None:
            w = await self._db._call("state_keys", self._core.spec, att.runtime_id.bytes)
            cached = await self._retry(lambda: self._core.store_keys(att, w))
        return set(cached)

    async def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) of every document, in key order (one round trip)."""
        att = await self._att(attachment)
        if self._core.initial:
            return []
        w = unpack(await self._db._call("state_enumerate", self._core.spec, att.runtime_id.bytes))
        return await self._retry(lambda: self._core.store_enumeration(att, w))

    async def get_many(self, attachment: Attachment | str, keys: Iterable[Key]) -> list[Any]:
        """Several documents in one round trip (None for absent ones)."""
        att = await self._att(attachment)
        addresses = [self._core.address(att, k) for k in keys]
        missing = [a for a in addresses if self._core.cached(a) is _MISSING]
        if missing:
            w = await self._db._call(
                "state_get_many", self._core.spec, att.runtime_id.bytes, [a[16:] for a in missing]
            )

            def store() -> None:
                for a, dw in zip(missing, w, strict=True):
                    self._core.store(a, att, dw)

            await self._retry(store)
        return [_out(att, self._core.value(a)) for a in addresses]

    async def enabled_by_commit_id(self) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history."""
        if self._core.initial:
            return {}
        w = await self._db._call("state_enabled", self._core.spec)
        return {CommitId(c): bool(f) for c, f in w}

    async def eval_actions(self) -> list[EvalAction]:
        """The Mutations commits of the history, latest first, with their enable flags."""
        if self._core.initial:
            return []
        w = await self._db._call("state_eval_actions", self._core.spec)
        return [EvalAction(CommitHeader.from_wire(h), bool(f)) for h, f in w]

    async def trace(self, attachment: Attachment | str, key: Key) -> DocumentTrace:
        """Replay one document from its last set, reporting each opcode and its failure."""
        att = await self._att(attachment)
        k = _check_key(att, key)
        if self._core.initial:
            return DocumentTrace(att, k, None)
        w = await self._db._call("state_trace", self._core.spec, att.runtime_id.bytes, _key_wire(k))
        return self._core.trace(att, k, w)

    async def cache_preload(self) -> float:
        """Fetch every document of every attachment; returns the seconds taken."""
        t0 = time.perf_counter()
        for att in self._core.defs.attachments():
            await self.enumerate(att)
        return time.perf_counter() - t0

    def cache_hit_rate(self) -> float:
        """Share of document reads served from this client's cache."""
        core = self._core
        return core.hits / core.requests if core.requests else 0.0

    # what CommitMutableState needs from its base
    def _resolve(self, address: DocAddress, att: Attachment) -> _Resolved:
        if self._core.cached(address) is not _MISSING:
            return self._core.resolved(address)
        try:
            anyio.from_thread.run(self.get, att, self._key_of(address))
        except RuntimeError:  # not in a worker thread
            raise CommitError(
                "this document was not fetched: read it first (get, get_many, enumerate) "
                "or build the mutable state in a worker thread"
            ) from None
        return self._core.resolved(address)

    def _key_of(self, address: DocAddress) -> Key:
        try:
            return self._core.key_of(address[16:])
        except _Stale:
            raise UnknownAttachmentError("a key of an unknown concept") from None


class _ThreadWriter:
    """Lets a CommitMutableState commit through an async remote from a worker thread."""

    def __init__(self, remote: AsyncCommitDatabaseRemote) -> None:
        self._remote = remote

    def _write_mutations(
        self, label: str, base: CommitId, entries: Any, blob_ids: Any, author: str | None
    ) -> CommitId:
        remote = self._remote
        program = program_bytes((e[0], e[1]) for e in entries)

        async def run() -> CommitId:
            cid = await remote.commit_program(label, base, program, author=author)
            remote._seed(cid, base, entries)
            return cid

        return anyio.from_thread.run(run)


class AsyncCommitDatabaseRemote(_AsyncBase):
    """A commit database served by ``commitdb serve`` (async API; the local names)."""

    kind = "commit"

    def __init__(
        self, conn: Connection, name: str, timeout: float | None, handler: _AsyncHandler
    ) -> None:
        super().__init__(conn, name, timeout)
        self._handler = handler
        self._states = _StateCache()
        self._tags = itertools.count(1)

    def __repr__(self) -> str:
        return f"<AsyncCommitDatabaseRemote {self.name}>"

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[AsyncCommitDatabaseRemote]:
        """Connect to a server and open the commit database served as `name`.

        Args:
            url: ``tcp://host:port``, ``unix:///path``, ``tls://host:port``...
            name: The served name.
            credentials: What the server's authenticator expects (a token).
            ssl_context: The TLS context (``tls://`` URLs).
            server_hostname: The name to check the server certificate against.
            timeout: Seconds each call may take (None: no limit).
            connect_timeout: Seconds to connect at most.

        Yields:
            The remote database, closed on exit.
        """
        handler = _AsyncHandler(name)
        async with _open_async(
            url, name, "commit", credentials, ssl_context, server_hostname, connect_timeout, handler
        ) as conn:
            remote = cls(conn, name, timeout, handler)
            await remote._load_defs()
            try:
                yield remote
            finally:
                remote._user_closed = True

    # -- DAG ------------------------------------------------------------------------------
    async def data_version(self) -> int:
        """A counter bumped by every write."""
        return int(await self._call("data_version"))

    async def commit_ids(self) -> set[CommitId]:
        """Every commit id."""
        return _commit_ids(await self._call("commit_ids"))

    async def commit_ids_in_order(self) -> list[CommitId]:
        """Every commit id in creation order."""
        return [CommitId(c) for c in await self._call("commit_ids_in_order")]

    async def commits_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, CommitId]]:
        """(creation sequence, id) of the commits created at or after `seq`, oldest first."""
        return [(int(s), CommitId(c)) for s, c in await self._call("commits_since", seq, limit)]

    async def head_commit_ids(self) -> set[CommitId]:
        """Commits that are neither a parent nor a merge target."""
        return _commit_ids(await self._call("head_commit_ids"))

    async def children_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Commits whose parent is `commit_id`."""
        return _commit_ids(await self._call("children_commit_ids", _wid(commit_id)))

    async def nephew_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Merge commits whose target is `commit_id`."""
        return _commit_ids(await self._call("nephew_commit_ids", _wid(commit_id)))

    async def first_commit_id(self) -> CommitId | None:
        """The first commit in creation order (None if empty)."""
        return _opt_cid(await self._call("first_commit_id"))

    async def last_commit_id(self) -> CommitId | None:
        """The commit with the greatest timestamp (None if empty)."""
        return _opt_cid(await self._call("last_commit_id"))

    async def commit_exists(self, commit_id: CommitId) -> bool:
        """True if the commit is stored."""
        return bool(await self._call("commit_exists", _wid(commit_id)))

    async def commit_header(self, commit_id: CommitId) -> CommitHeader:
        """The header of a commit (UnknownCommitError if absent)."""
        return CommitHeader.from_wire(await self._call("commit_header", _wid(commit_id)))

    async def commit_count(self) -> int:
        """Number of commits."""
        return int(await self._call("commit_count"))

    async def is_ancestor(self, ancestor: CommitId, descendant: CommitId) -> bool:
        """Reachability through parent and merge-target links (reflexive)."""
        return bool(await self._call("is_ancestor", _wid(ancestor), _wid(descendant)))

    async def is_mergeable(self, parent: CommitId, target: CommitId) -> bool:
        """True if the two commits have diverged."""
        return bool(await self._call("is_mergeable", _wid(parent), _wid(target)))

    async def linearization(self, commit_id: CommitId) -> list[CommitId]:
        """The linearized history of a commit."""
        return [CommitId(c) for c in await self._call("linearization", _wid(commit_id))]

    async def enabled_by_commit_id(self, commit_id: CommitId) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history of `commit_id`."""
        w = await self._call("enabled_by_commit_id", _wid(commit_id))
        return {CommitId(c): bool(f) for c, f in w}

    # -- writing --------------------------------------------------------------------------
    async def commit_program(
        self, label: str, base: CommitId | None, program: bytes, *, author: str | None = None
    ) -> CommitId:
        """Commit an encoded program on `base` (the server validates and replays it)."""
        b = _check_id(base) if base is not None else CommitId.INVALID
        wire_base = bytes(b) if b.is_valid else None
        return CommitId(
            await self._call("commit_program", wire_base, label, _author(author), bytes(program))
        )

    async def commit_mutations(
        self, label: str, mutable_state: Any, *, author: str | None = None
    ) -> CommitId:
        """Commit a mutable state built on a state of this database (sealed afterwards)."""
        return await anyio.to_thread.run_sync(
            lambda: mutable_state._commit_into(_ThreadWriter(self), label, author)
        )

    def _seed(self, commit_id: CommitId, base: CommitId, entries: Any) -> None:
        core = _seeded(self._states, self._defs, commit_id, base, entries)
        if core is not None:
            self._states.put(commit_id, AsyncRemoteCommitState(self, core))

    async def merge_commit(
        self, label: str, parent: CommitId, target: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Merge of `target` into `parent`."""
        return CommitId(
            await self._call("merge_commit", label, _wid(parent), _wid(target), _author(author))
        )

    async def disable_commit(
        self, label: str, parent: CommitId, disabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Disable commit on `parent` that masks `disabled`."""
        return CommitId(
            await self._call("disable_commit", label, _wid(parent), _wid(disabled), _author(author))
        )

    async def enable_commit(
        self, label: str, parent: CommitId, enabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append an Enable commit on `parent` that unmasks `enabled`."""
        return CommitId(
            await self._call("enable_commit", label, _wid(parent), _wid(enabled), _author(author))
        )

    async def reduce_heads(
        self, anchor: CommitId | None = None, *, author: str | None = None
    ) -> CommitId | None:
        """Fold every head into `anchor` (default: the last commit)."""
        return _opt_cid(await self._call("reduce_heads", _opt_wid(anchor), _author(author)))

    async def forward(self, commit_id: CommitId) -> CommitId:
        """The single head if there is one, else :meth:`fast_forward`."""
        return CommitId(await self._call("forward", _wid(commit_id)))

    async def fast_forward(self, commit_id: CommitId) -> CommitId:
        """Walk children (then merge nephews), smallest id first, to a head."""
        return CommitId(await self._call("fast_forward", _wid(commit_id)))

    # -- states ---------------------------------------------------------------------------
    async def state(self, commit_id: CommitId | None) -> AsyncRemoteCommitState:
        """The state at a commit (None or INVALID: the initial state)."""
        cid = CommitId.INVALID if commit_id is None else _check_id(commit_id)
        if cid.is_valid:
            st = self._states.get(cid)
            if st is not None:
                return st  # type: ignore[no-any-return]
            if not await self.commit_exists(cid):
                raise UnknownCommitError(f"missing commit {cid.hex()}")
        st = AsyncRemoteCommitState(self, _StateCore(cid, (await self._cached_defs()).definitions))
        if cid.is_valid:
            self._states.put(cid, st)
        return st

    async def initial_state(self) -> AsyncRemoteCommitState:
        """The empty state before the first commit."""
        return await self.state(None)

    async def merge_state(self, ours: CommitId, theirs: CommitId) -> AsyncRemoteCommitState:
        """The state a merge of `theirs` into `ours` would produce, without writing it."""
        o, t = _check_id(ours), _check_id(theirs)
        if not await self.is_mergeable(o, t):
            raise CommitError("not mergeable (one is the ancestor of the other)")
        defs = (await self._cached_defs()).definitions
        return AsyncRemoteCommitState(self, _StateCore(CommitId.INVALID, defs, (o, t)))

    async def documents(self, commit_id: CommitId | None) -> list[tuple[Attachment, Key, Any]]:
        """(attachment, key, document) for every document at a commit."""
        st = await self.state(commit_id)
        out: list[tuple[Attachment, Key, Any]] = []
        for att in (await self.definitions()).attachments():
            out.extend((att, k, doc) for k, doc in await st.enumerate(att))
        return out

    async def flatten(
        self, commit_id: CommitId, path: str | os.PathLike[str], label: str = "flatten"
    ) -> Any:
        """A fresh local database at `path` (on this client) with one commit holding the
        state at `commit_id` and only the blobs that state references."""
        from commitdb.commit_database import CommitDatabase
        from commitdb.mutable_state import CommitMutableState
        from commitdb.opcodes import collect_blob_ids

        docs = await self.documents(commit_id)
        blobs = []
        for blob_id in sorted(collect_blob_ids(doc for _, _, doc in docs), key=bytes):
            info, data = await self.blob_info(blob_id), await self.blob(blob_id)
            if info is None or data is None:
                raise CommitError(f"the state references a missing blob {blob_id.hex()}")
            blobs.append((info.layout, data))
        defs, documentation = await self.definitions(), await self.documentation()

        def write() -> CommitDatabase:
            target = CommitDatabase.create(path, defs, documentation=documentation)
            try:
                target.create_blobs(blobs)
                ms = CommitMutableState(target.initial_state())
                for att, key, doc in docs:
                    ms.set(att, key, doc)
                target.commit_mutations(label, ms)
            except BaseException:
                target.close()
                raise
            return target

        return await anyio.to_thread.run_sync(write)

    # -- transport (CommitDatabasing) -----------------------------------------------------
    async def commit_data(self, commit_id: CommitId) -> CommitData:
        """Header and program bytes of a commit."""
        return _commit_data(await self._call("commit_data", _wid(commit_id)))

    async def commit_datas(self, commit_ids: Iterable[CommitId]) -> list[CommitData]:
        """Commit datas of several commits (one round trip)."""
        return [
            _commit_data(w) for w in await self._call("commit_datas", [_wid(c) for c in commit_ids])
        ]

    async def create_commit_data(self, data: CommitData) -> bool:
        """Store a commit received verbatim; False if it was already there."""
        return bool(await self._call("create_commit_data", _commit_data_wire(data)))

    async def create_commit_datas(self, datas: Iterable[CommitData]) -> list[bool]:
        """Store several commits verbatim, in order (one round trip)."""
        w = await self._call("create_commit_datas", [_commit_data_wire(d) for d in datas])
        return [bool(x) for x in w]

    async def commit_blob_ids(self, data: CommitData) -> set[BlobId]:
        """Blob ids referenced by a commit's program."""
        return _blob_ids(await self._call("commit_blob_ids", _commit_data_wire(data)))

    async def unknown_blob_ids(self, blob_ids: Iterable[BlobId]) -> set[BlobId]:
        """The ids among `blob_ids` that are not stored."""
        return _blob_ids(await self._call("unknown_blob_ids", [bytes(b) for b in blob_ids]))

    async def blob_datas(
        self, blob_ids: Iterable[BlobId]
    ) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """(id, layout, bytes) of the stored blobs among `blob_ids`."""
        w = await self._call("blob_datas", [bytes(b) for b in blob_ids])
        return [(BlobId(b), _layout(lay), bytes(d)) for b, lay, d in w]

    async def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs; returns the ids actually added."""
        w = await self._call("create_blobs", [[_layout_wire(lay), bytes(d)] for lay, d in blobs])
        return [BlobId(b) for b in w]

    # -- live notifications ---------------------------------------------------------------
    @asynccontextmanager
    async def subscribe(self, window: int = DEFAULT_WINDOW) -> AsyncIterator[AsyncSubscription]:
        """Receive each new commit, from any writer, as it lands.

        Args:
            window: Events buffered on this client (a subscriber more than this plus the
                server's ``--subscriber-queue`` commits behind gets a :class:`MissedEvents`).

        Yields:
            An async iterator of :class:`CommitEvent` and :class:`MissedEvents` items; the
            subscription ends when the block exits.
        """
        window = max(1, window)
        send, receive = anyio.create_memory_object_stream[CommitEvent | MissedEvents](window)
        tag = f"sub:{next(self._tags)}"
        self._handler.streams[tag] = send  # before subscribing: the first events follow at once
        try:
            _, first_seq = await self._call("subscribe", window, tag)
            sub = AsyncSubscription(self, tag, int(first_seq), window, receive)
            async with receive:
                yield sub
        finally:
            self._handler.streams.pop(tag, None)
            send.close()
            if not self.connection.closed and not self._user_closed:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._call("unsubscribe", tag)
                    except (ConnectionClosedError, DatabaseClosedError):
                        pass


class AsyncDatabaseRemote(_AsyncBase):
    """A flat database served by ``commitdb serve`` (async API; the local names).

    Transactions belong to this connection (its session on the server) and are rolled back
    if the connection drops.
    """

    kind = "flat"

    def __repr__(self) -> str:
        return f"<AsyncDatabaseRemote {self.name}>"

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[AsyncDatabaseRemote]:
        """Connect to a server and open the flat database served as `name`.

        Args:
            url: ``tcp://host:port``, ``unix:///path``, ``tls://host:port``...
            name: The served name.
            credentials: What the server's authenticator expects (a token).
            ssl_context: The TLS context (``tls://`` URLs).
            server_hostname: The name to check the server certificate against.
            timeout: Seconds each call may take (None: no limit).
            connect_timeout: Seconds to connect at most.

        Yields:
            The remote database, closed on exit.
        """
        handler = _AsyncHandler(name)
        async with _open_async(
            url, name, "flat", credentials, ssl_context, server_hostname, connect_timeout, handler
        ) as conn:
            remote = cls(conn, name, timeout)
            await remote._load_defs()
            try:
                yield remote
            finally:
                remote._user_closed = True

    async def begin_transaction(self, mode: str | None = "deferred") -> None:
        """Open this session's transaction."""
        await self._call("begin_transaction", mode)

    async def commit(self) -> None:
        """Write this session's transaction and end it."""
        await self._call("commit")

    async def rollback(self) -> None:
        """Discard this session's transaction and end it."""
        await self._call("rollback")

    async def in_transaction(self) -> bool:
        """True while this session has a transaction open."""
        return bool(await self._call("in_transaction"))

    @asynccontextmanager
    async def transaction(
        self, mode: str | None = "deferred"
    ) -> AsyncIterator[AsyncDatabaseRemote]:
        """A block in a transaction: commit on success, roll back on exception."""
        await self.begin_transaction(mode)
        try:
            yield self
        except BaseException:
            with anyio.CancelScope(shield=True):
                if not self.is_closed():
                    await self.rollback()
            raise
        try:
            await self.commit()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if not self.is_closed() and await self.in_transaction():
                    await self.rollback()
            raise

    async def _ak(self, attachment: Attachment | str, key: Key, write: bool) -> Attachment:
        att = await self._attachment(attachment)
        _check_key(att, key, write=write)
        return att

    async def _keys(self, w: Any) -> set[Key]:
        defs = await self._cached_defs()
        try:
            return {defs.key(k) for k in w}
        except _Stale:
            defs = await self._fresh_defs()
            return {defs.key(k) for k in w}

    async def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the documents of an attachment."""
        att = await self._attachment(attachment)
        return await self._keys(await self._call("keys", att.runtime_id.bytes))

    async def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att = await self._ak(attachment, key, False)
        return bool(await self._call("has", att.runtime_id.bytes, _key_wire(key)))

    async def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        att = await self._ak(attachment, key, False)
        w = await self._call("get", att.runtime_id.bytes, _key_wire(key))
        t = OptionalType(att.document_type)
        try:
            return (await self._cached_defs()).value(w, t)
        except _Stale:
            return (await self._fresh_defs()).value(w, t)

    async def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) pairs, in key order."""
        att = await self._attachment(attachment)
        w = await self._call("enumerate", att.runtime_id.bytes)
        t = att.document_type
        defs = await self._cached_defs()
        try:
            return [(defs.key(k), defs.value(d, t)) for k, d in w]
        except _Stale:
            defs = await self._fresh_defs()
            return [(defs.key(k), defs.value(d, t)) for k, d in w]

    async def set(self, attachment: Attachment | str, key: Key, value: Any) -> bool:
        """Create or replace a document in this session's transaction."""
        att = await self._ak(attachment, key, True)
        wire = _value_wire(att, key, value)
        return bool(await self._call("set", att.runtime_id.bytes, _key_wire(key), wire))

    async def delete(self, attachment: Attachment | str, key: Key) -> bool:
        """Delete a document in this session's transaction; returns whether it existed."""
        att = await self._ak(attachment, key, True)
        return bool(await self._call("delete", att.runtime_id.bytes, _key_wire(key)))

    async def del_blob(self, blob_id: BlobId) -> bool:
        """Delete a blob in this session's transaction; returns whether it existed."""
        return bool(await self._call("del_blob", bytes(blob_id)))


@asynccontextmanager
async def _open_async(
    url: str,
    name: str,
    kind: str,
    credentials: Any,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    timeout: float,
    handler: _AsyncHandler,
) -> AsyncIterator[Connection]:
    hello: dict[str, Any] = {"client": "commitdb-python"}
    if credentials is not None:
        hello["credentials"] = credentials
    conn, welcome = await open_connection(
        url,
        hello,
        handler=handler,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
        timeout=timeout,
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(conn)
        _served(welcome, name, kind)
        yield conn


# --------------------------------------------------------------------------------------------
# Blocking facades


class RemoteBlobStream:
    """A streamed blob upload to a remote database: ``write()`` pieces, then ``close()``.

    The pieces are spooled on the server; the same overflow and short-stream checks as a
    local stream apply.
    """

    def __init__(self, db: _BlockingBase, stream_id: int) -> None:
        self._db = db
        self._id = stream_id
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; returns how many were written."""
        if self._done:
            self._db._check_open()
        view = memoryview(data).cast("B")
        n = 0
        for i in range(0, max(len(view), 1), _STREAM_PIECE):
            try:
                n += int(
                    self._db._call(
                        "blob_stream_write", self._id, bytes(view[i : i + _STREAM_PIECE])
                    )
                )
            except Exception:
                self._done = True
                raise
        return n

    def close(self) -> BlobId:
        """Store (or stage, in a flat database's transaction) the blob; returns its id."""
        self._done = True
        return BlobId(self._db._call("blob_stream_close", self._id))

    def abort(self) -> None:
        """Discard what was written."""
        if not self._done:
            self._done = True
            try:
                self._db._call("blob_stream_abort", self._id)
            except (ConnectionClosedError, DatabaseClosedError):
                pass

    def __enter__(self) -> RemoteBlobStream:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


class _BlockingBase:
    """Shared plumbing of the blocking remotes."""

    kind = ""

    def __init__(
        self, transport: _BlockingTransport, name: str, url: str, timeout: float | None
    ) -> None:
        self._transport = transport
        self.name = name
        self.url = url
        self.timeout = timeout
        self._target = f"{'cdb' if self.kind == 'commit' else 'db'}:{name}"
        self._defs: _Defs | None = None
        self._user_closed = False
        self._uuid: uuid.UUID | None = None  # never change: asked once
        self._documentation: str | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        name: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> Self:
        """Connect to a server and open the database of this kind served as `name`.

        Args:
            url: ``tcp://host:port``, ``unix:///path``, ``tls://host:port``...
            name: The served name.
            credentials: What the server's authenticator expects (a token).
            ssl_context: The TLS context (``tls://`` URLs).
            server_hostname: The name to check the server certificate against.
            timeout: Seconds each call may take (None: no limit).
            connect_timeout: Seconds to connect at most.

        Returns:
            The open remote database (a context manager).

        Raises:
            MethodNotFoundError: The server serves no database of this kind and name.
            HandshakeError: The server refused the connection (credentials...).
        """
        transport, welcome = _open_blocking(
            url, credentials, ssl_context, server_hostname, connect_timeout
        )
        try:
            _served(welcome, name, cls.kind)
            remote = cls(transport, name, url, timeout)
            remote._load_defs()
        except BaseException:
            transport.close()
            raise
        return remote

    def __repr__(self) -> str:
        closed = " (closed)" if self.is_closed() else ""
        return f"<{type(self).__name__} {self.url}#{self.name}{closed}>"

    @staticmethod
    def databases(
        url: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> list[ServedDatabaseInfo]:
        """The databases a server offers (name, kind, uuid, documentation).

        Args:
            url: The server's URL.
            credentials: What the server's authenticator expects (a token).
            ssl_context: The TLS context (``tls://`` URLs).
            server_hostname: The name to check the server certificate against.
            timeout: Seconds to connect at most.

        Returns:
            One info per served database.
        """
        transport, welcome = _open_blocking(url, credentials, ssl_context, server_hostname, timeout)
        transport.close()
        return [_served_info(d) for d in welcome.get("databases", [])]

    def _call(self, method: str, *args: Any) -> Any:
        if self._user_closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")
        try:
            return self._transport.call(self._target, method, list(args), self.timeout)
        except RemoteError as exc:
            raise _translate(exc) from None

    def _check_open(self) -> None:
        if self._user_closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")

    def _fresh_defs(self) -> _Defs:
        digest = str(self._call("definitions_hexdigest"))
        if self._defs is None or digest != self._defs.digest:
            self._defs = _Defs(decode_definitions(self._call("definitions")), digest)
        return self._defs

    def _load_defs(self) -> None:
        """The definitions and their digest in one round trip (when the remote opens)."""
        digest, raw = self._call("open")
        self._defs = _Defs(decode_definitions(raw), str(digest))

    def _cached_defs(self) -> _Defs:
        return self._defs if self._defs is not None else self._fresh_defs()

    def _attachment(self, attachment: Attachment | str) -> Attachment:
        try:
            return self._cached_defs().attachment(attachment)
        except _Stale:
            pass
        try:
            return self._fresh_defs().attachment(attachment)
        except _Stale:
            raise UnknownAttachmentError(
                f"attachment {_ref(attachment)} is not registered"
            ) from None

    def _with_defs(self, fn: Callable[[_Defs], T]) -> T:
        try:
            return fn(self._cached_defs())
        except _Stale:
            pass
        try:
            return fn(self._fresh_defs())
        except _Stale:
            raise DecodeError("the server sent a value of unknown types") from None

    # -- lifecycle and metadata -----------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent); further calls raise DatabaseClosedError."""
        if not self._user_closed:
            self._user_closed = True
            with self._transport.cond:
                for buffer in self._transport.buffers.values():
                    buffer.done = True
            self._transport.close()

    def is_closed(self) -> bool:
        """True once closed (or once the connection was lost)."""
        return self._user_closed or self._transport.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def path(self) -> str:
        """The served name (a client never sees the server's filesystem)."""
        self._check_open()
        return self.name

    def in_memory(self) -> bool:
        """False: the database lives on the server."""
        self._check_open()
        return False

    def uuid(self) -> uuid.UUID:
        """The uuid generated when the database was created."""
        self._check_open()
        if self._uuid is None:
            self._uuid = uuid.UUID(bytes=self._call("uuid"))
        return self._uuid

    def documentation(self) -> str:
        """The documentation given at creation."""
        self._check_open()
        if self._documentation is None:
            self._documentation = str(self._call("documentation"))
        return self._documentation

    def codec_name(self) -> str:
        """The value codec: ``"msgpack-canonical"``."""
        return str(self._call("codec_name"))

    # -- definitions ----------------------------------------------------------------------
    def definitions(self) -> Definitions:
        """The definitions (fresh: another client may have extended them)."""
        return self._fresh_defs().definitions

    def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Add types and attachments (additive only; a conflict raises and adds nothing)."""
        info = _ext(self._call("extend_definitions", encode_definitions(definitions)))
        self._defs = None
        return info

    def definitions_hexdigest(self) -> str:
        """Digest of the definitions."""
        return str(self._call("definitions_hexdigest"))

    # -- blobs ----------------------------------------------------------------------------
    def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob (idempotent) and return its id (a large one is streamed)."""
        view = memoryview(data).cast("B")
        if len(view) <= _STREAM_PIECE:
            return BlobId(self._call("create_blob", bytes(view), _layout_wire(layout)))
        stream = self.blob_stream(layout, len(view))
        stream.write(view)
        return stream.close()

    def blob_stream(
        self, layout: BlobLayout | None = None, size: int | None = None
    ) -> RemoteBlobStream:
        """Start a streamed blob upload; ``close()`` returns the id."""
        return RemoteBlobStream(
            self, int(self._call("blob_stream_open", _layout_wire(layout), size))
        )

    def blob(self, blob_id: BlobId) -> bytes | None:
        """A whole blob, or None (a large one is read in ranges)."""
        r = self._call("blob", bytes(blob_id))
        if type(r) is int:
            return b"".join(
                self.read_blob(blob_id, min(_STREAM_PIECE, r - i), i)
                for i in range(0, r, _STREAM_PIECE)
            )
        return None if r is None else bytes(r)

    def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """A range of a blob (ValueError outside it)."""
        return bytes(self._call("read_blob", bytes(blob_id), size, offset))

    def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None."""
        return _blob_info(self._call("blob_info", bytes(blob_id)))

    def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the stored blobs among `blob_ids` (unknown ids are left out)."""
        w = self._call("blob_infos", [bytes(b) for b in blob_ids])
        return [BlobInfo(BlobId(i), _layout(lay), int(s)) for i, lay, s in w]

    def blob_ids(self) -> set[BlobId]:
        """Every stored blob id."""
        return _blob_ids(self._call("blob_ids"))

    def blob_statistics(self) -> BlobStatistics:
        """Count, total, smallest and largest size of the stored blobs."""
        return BlobStatistics(*self._call("blob_statistics"))


class RemoteCommitState:
    """A state of a remote commit database (blocking; evaluated on the server, cached here).

    It reads like a local :class:`~commitdb.CommitState`, and a
    :class:`~commitdb.CommitMutableState` can be built on it (its commit goes to the server).
    """

    def __init__(self, db: CommitDatabaseRemote, core: _StateCore) -> None:
        self._db = db
        self._core = core

    @property
    def _virtual(self) -> tuple[CommitId, CommitId] | None:
        return self._core.virtual

    def commit_id(self) -> CommitId:
        """The commit of this state (INVALID for the initial state or a virtual merge)."""
        return self._core.commit_id

    def definitions(self) -> Definitions:
        """The definitions typing the documents."""
        return self._core.defs

    def database(self) -> CommitDatabaseRemote:
        """The remote database."""
        return self._db

    def attachment_getting(self) -> RemoteCommitState:
        """This state, as the read interface."""
        return self

    def __repr__(self) -> str:
        c = self._core.commit_id
        return f"<RemoteCommitState {c.hex()[:12] if c.is_valid else 'initial'}>"

    def _att(self, attachment: Attachment | str) -> Attachment:
        try:
            return self._core.attachment(attachment)
        except _Stale:
            self._core.defs = self._db.definitions()
        try:
            return self._core.attachment(attachment)
        except _Stale:
            raise UnknownAttachmentError(
                f"attachment {_ref(attachment)} is not registered"
            ) from None

    def _retry(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _Stale:
            self._core.defs = self._db.definitions()
        try:
            return fn()
        except _Stale:
            raise DecodeError("the server sent a value of unknown types") from None

    def _fetch(self, att: Attachment, address: DocAddress) -> Any:
        v = self._core.cached(address)
        if v is _MISSING:
            w = self._db._call("state_get", self._core.spec, att.runtime_id.bytes, address[16:])
            v = self._retry(lambda: self._core.store(address, att, w))
        return v

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        att = self._att(attachment)
        return _out(att, self._fetch(att, self._core.address(att, key)))

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att = self._att(attachment)
        return self._fetch(att, self._core.address(att, key)) is not ABSENT

    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the existing documents."""
        att = self._att(attachment)
        if self._core.initial:
            return set()
        cached = self._retry(lambda: self._core.known_keys(att))
        if cached is None:
            w = self._db._call("state_keys", self._core.spec, att.runtime_id.bytes)
            cached = self._retry(lambda: self._core.store_keys(att, w))
        return set(cached)

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) of every document, in key order (one round trip)."""
        att = self._att(attachment)
        if self._core.initial:
            return []
        w = unpack(self._db._call("state_enumerate", self._core.spec, att.runtime_id.bytes))
        return self._retry(lambda: self._core.store_enumeration(att, w))

    def get_many(self, attachment: Attachment | str, keys: Iterable[Key]) -> list[Any]:
        """Several documents in one round trip (None for absent ones)."""
        att = self._att(attachment)
        core = self._core
        addresses = [core.address(att, k) for k in keys]
        missing = [a for a in addresses if core.cached(a) is _MISSING]
        if missing:
            w = self._db._call(
                "state_get_many", core.spec, att.runtime_id.bytes, [a[16:] for a in missing]
            )

            def store() -> None:
                for a, dw in zip(missing, w, strict=True):
                    core.store(a, att, dw)

            self._retry(store)
        if core.initial:
            return [None for _ in addresses]
        return [_out(att, core.value(a)) for a in addresses]

    def enabled_by_commit_id(self) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history."""
        if self._core.initial:
            return {}
        return {CommitId(c): bool(f) for c, f in self._db._call("state_enabled", self._core.spec)}

    def eval_actions(self) -> list[EvalAction]:
        """The Mutations commits of the history, latest first, with their enable flags."""
        if self._core.initial:
            return []
        w = self._db._call("state_eval_actions", self._core.spec)
        return [EvalAction(CommitHeader.from_wire(h), bool(f)) for h, f in w]

    def trace(self, attachment: Attachment | str, key: Key) -> DocumentTrace:
        """Replay one document from its last set, reporting each opcode and its failure."""
        att = self._att(attachment)
        k = _check_key(att, key)
        if self._core.initial:
            return DocumentTrace(att, k, None)
        w = self._db._call("state_trace", self._core.spec, att.runtime_id.bytes, _key_wire(k))
        return self._core.trace(att, k, w)

    def cache_preload(self) -> float:
        """Fetch every document of every attachment; returns the seconds taken."""
        t0 = time.perf_counter()
        for att in self._core.defs.attachments():
            self.enumerate(att)
        return time.perf_counter() - t0

    def cache_hit_rate(self) -> float:
        """Share of document reads served from this client's cache."""
        core = self._core
        return core.hits / core.requests if core.requests else 0.0

    # what CommitMutableState needs from its base
    def _resolve(self, address: DocAddress, att: Attachment) -> _Resolved:
        self._fetch(att, address)
        return self._core.resolved(address)

    def _key_of(self, address: DocAddress) -> Key:
        return self._retry(lambda: self._core.key_of(address[16:]))


class CommitDatabaseRemote(_BlockingBase):
    """A commit database served by ``commitdb serve`` (blocking; the local names, arguments,
    results and errors — see the module documentation for the few differences).

    ``CommitDatabaseRemote.connect(url, name)`` returns an open remote; use it as a context
    manager (or call :meth:`close`).
    """

    kind = "commit"

    def __init__(
        self, transport: _BlockingTransport, name: str, url: str, timeout: float | None
    ) -> None:
        super().__init__(transport, name, url, timeout)
        self._states = _StateCache()

    def close(self) -> None:
        """Close the connection (idempotent); further calls raise DatabaseClosedError."""
        super().close()
        self._states.clear()

    # -- DAG ------------------------------------------------------------------------------
    def data_version(self) -> int:
        """A counter bumped by every write (commits, blobs, definitions)."""
        return int(self._call("data_version"))

    def commit_ids(self) -> set[CommitId]:
        """Every commit id."""
        return _commit_ids(self._call("commit_ids"))

    def commit_ids_in_order(self) -> list[CommitId]:
        """Every commit id in creation order (parents always before children)."""
        return [CommitId(c) for c in self._call("commit_ids_in_order")]

    def commits_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, CommitId]]:
        """(creation sequence, id) of the commits created at or after `seq`, oldest first."""
        return [(int(s), CommitId(c)) for s, c in self._call("commits_since", seq, limit)]

    def head_commit_ids(self) -> set[CommitId]:
        """Commits that are neither a parent nor a merge target."""
        return _commit_ids(self._call("head_commit_ids"))

    def children_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Commits whose parent is `commit_id`."""
        return _commit_ids(self._call("children_commit_ids", _wid(commit_id)))

    def nephew_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Merge commits whose target is `commit_id`."""
        return _commit_ids(self._call("nephew_commit_ids", _wid(commit_id)))

    def first_commit_id(self) -> CommitId | None:
        """The first commit in creation order (None if empty)."""
        return _opt_cid(self._call("first_commit_id"))

    def last_commit_id(self) -> CommitId | None:
        """The commit with the greatest timestamp, ties going to the most recently stored."""
        return _opt_cid(self._call("last_commit_id"))

    def commit_exists(self, commit_id: CommitId) -> bool:
        """True if the commit is stored."""
        return bool(self._call("commit_exists", _wid(commit_id)))

    def commit_header(self, commit_id: CommitId) -> CommitHeader:
        """The header of a commit (UnknownCommitError if absent)."""
        return CommitHeader.from_wire(self._call("commit_header", _wid(commit_id)))

    def commit_count(self) -> int:
        """Number of commits."""
        return int(self._call("commit_count"))

    def is_ancestor(self, ancestor: CommitId, descendant: CommitId) -> bool:
        """True if `ancestor` is reachable from `descendant` (reflexive)."""
        return bool(self._call("is_ancestor", _wid(ancestor), _wid(descendant)))

    def is_mergeable(self, parent: CommitId, target: CommitId) -> bool:
        """True if the two commits have diverged."""
        return bool(self._call("is_mergeable", _wid(parent), _wid(target)))

    def linearization(self, commit_id: CommitId) -> list[CommitId]:
        """The linearized history of a commit."""
        return [CommitId(c) for c in self._call("linearization", _wid(commit_id))]

    def enabled_by_commit_id(self, commit_id: CommitId) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history of `commit_id`."""
        w = self._call("enabled_by_commit_id", _wid(commit_id))
        return {CommitId(c): bool(f) for c, f in w}

    # -- writing --------------------------------------------------------------------------
    def commit_mutations(
        self, label: str, mutable_state: Any, *, author: str | None = None
    ) -> CommitId:
        """Append a Mutations commit of the mutable state's program on its base commit (on
        the server). The mutable state is sealed afterwards."""
        return mutable_state._commit_into(self, label, author)  # type: ignore[no-any-return]

    def _write_mutations(
        self, label: str, base: CommitId, entries: Any, blob_ids: Any, author: str | None
    ) -> CommitId:
        program = program_bytes((e[0], e[1]) for e in entries)
        cid = self.commit_program(label, base, program, author=author)
        core = _seeded(self._states, self._defs, cid, base, entries)
        if core is not None:
            self._states.put(cid, RemoteCommitState(self, core))
        return cid

    def commit_program(
        self, label: str, base: CommitId | None, program: bytes, *, author: str | None = None
    ) -> CommitId:
        """Commit an encoded program on `base` (the server decodes, validates and replays
        it; see :func:`commitdb.opcodes.program_bytes`)."""
        b = _check_id(base) if base is not None else CommitId.INVALID
        wire_base = bytes(b) if b.is_valid else None
        return CommitId(
            self._call("commit_program", wire_base, label, _author(author), bytes(program))
        )

    def merge_commit(
        self, label: str, parent: CommitId, target: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Merge of `target` into `parent` (the target's operations win)."""
        return CommitId(
            self._call("merge_commit", label, _wid(parent), _wid(target), _author(author))
        )

    def disable_commit(
        self, label: str, parent: CommitId, disabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Disable commit on `parent` that masks `disabled`."""
        return CommitId(
            self._call("disable_commit", label, _wid(parent), _wid(disabled), _author(author))
        )

    def enable_commit(
        self, label: str, parent: CommitId, enabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append an Enable commit on `parent` that unmasks `enabled`."""
        return CommitId(
            self._call("enable_commit", label, _wid(parent), _wid(enabled), _author(author))
        )

    def reduce_heads(
        self, anchor: CommitId | None = None, *, author: str | None = None
    ) -> CommitId | None:
        """Fold every head into `anchor` (default: the last commit); None with one head."""
        return _opt_cid(self._call("reduce_heads", _opt_wid(anchor), _author(author)))

    def forward(self, commit_id: CommitId) -> CommitId:
        """The single head if there is one, else :meth:`fast_forward`."""
        return CommitId(self._call("forward", _wid(commit_id)))

    def fast_forward(self, commit_id: CommitId) -> CommitId:
        """Walk children (then merge nephews), smallest id first, to a head."""
        return CommitId(self._call("fast_forward", _wid(commit_id)))

    def flatten(
        self, commit_id: CommitId, path: str | os.PathLike[str], label: str = "flatten"
    ) -> Any:
        """A fresh *local* database at `path` (on this client) with one commit holding the
        state at `commit_id` and only the blobs that state references."""
        from commitdb.helpers import flatten

        return flatten(self, commit_id, path, label)  # type: ignore[arg-type]

    # -- states ---------------------------------------------------------------------------
    def state(self, commit_id: CommitId | None) -> RemoteCommitState:
        """The state at a commit (None or INVALID: the initial state)."""
        cid = CommitId.INVALID if commit_id is None else _check_id(commit_id)
        if cid.is_valid:
            st = self._states.get(cid)
            if st is not None:
                return st  # type: ignore[no-any-return]
            if not self.commit_exists(cid):
                raise UnknownCommitError(f"missing commit {cid.hex()}")
        else:
            self._check_open()
        st = RemoteCommitState(self, _StateCore(cid, self._cached_defs().definitions))
        if cid.is_valid:
            self._states.put(cid, st)
        return st

    def initial_state(self) -> RemoteCommitState:
        """The empty state before the first commit."""
        return self.state(None)

    def merge_state(self, ours: CommitId, theirs: CommitId) -> RemoteCommitState:
        """The state a merge of `theirs` into `ours` would produce, without writing it."""
        o, t = _check_id(ours), _check_id(theirs)
        if not self.is_mergeable(o, t):
            raise CommitError("not mergeable (one is the ancestor of the other)")
        defs = self._cached_defs().definitions
        return RemoteCommitState(self, _StateCore(CommitId.INVALID, defs, (o, t)))

    def documents(self, commit_id: CommitId | None) -> Iterator[tuple[Attachment, Key, Any]]:
        """(attachment, key, document) for every document at a commit."""
        st = self.state(commit_id)
        for att in self.definitions().attachments():
            for key, doc in st.enumerate(att):
                yield att, key, doc

    # -- transport (CommitDatabasing) -----------------------------------------------------
    def commit_data(self, commit_id: CommitId) -> CommitData:
        """Header and program bytes of a commit."""
        return _commit_data(self._call("commit_data", _wid(commit_id)))

    def commit_datas(self, commit_ids: Iterable[CommitId]) -> list[CommitData]:
        """Commit datas of several commits (one round trip)."""
        return [_commit_data(w) for w in self._call("commit_datas", [_wid(c) for c in commit_ids])]

    def commit_blob_ids(self, data: CommitData) -> set[BlobId]:
        """Blob ids referenced by a commit's program."""
        return _blob_ids(self._call("commit_blob_ids", _commit_data_wire(data)))

    def create_commit_data(self, data: CommitData) -> bool:
        """Store a commit received verbatim; False if it was already there."""
        return bool(self._call("create_commit_data", _commit_data_wire(data)))

    def create_commit_datas(self, datas: Iterable[CommitData]) -> list[bool]:
        """Store several commits verbatim, in order (one round trip)."""
        return [
            bool(x)
            for x in self._call("create_commit_datas", [_commit_data_wire(d) for d in datas])
        ]

    def unknown_blob_ids(self, blob_ids: Iterable[BlobId]) -> set[BlobId]:
        """The ids among `blob_ids` that are not stored."""
        return _blob_ids(self._call("unknown_blob_ids", [bytes(b) for b in blob_ids]))

    def blob_datas(self, blob_ids: Iterable[BlobId]) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """(id, layout, bytes) of the stored blobs among `blob_ids`."""
        w = self._call("blob_datas", [bytes(b) for b in blob_ids])
        return [(BlobId(b), _layout(lay), bytes(d)) for b, lay, d in w]

    def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs in one transaction; returns the ids actually added."""
        w = self._call("create_blobs", [[_layout_wire(lay), bytes(d)] for lay, d in blobs])
        return [BlobId(b) for b in w]

    # -- live notifications ---------------------------------------------------------------
    def subscribe(
        self,
        callback: Callable[[CommitEvent | MissedEvents], Any] | None = None,
        *,
        window: int = DEFAULT_WINDOW,
    ) -> Subscription:
        """Receive each new commit, from any writer, as it lands.

        Args:
            callback: Called with each event from a helper thread (None: iterate the
                returned subscription instead).
            window: Events buffered on this client; a subscriber more than this plus the
                server's ``--subscriber-queue`` commits behind gets a :class:`MissedEvents`
                and resumes with the newest commits.

        Returns:
            The subscription (a context manager; :meth:`Subscription.close` unsubscribes).
        """
        window = max(1, window)
        buffer = _Buffer(self.name, window)
        t = self._transport
        tag = t.new_tag()
        with t.cond:
            t.buffers[tag] = buffer  # before subscribing: the first events follow at once
        try:
            _, first_seq = self._call("subscribe", window, tag)
        except BaseException:
            with t.cond:
                t.buffers.pop(tag, None)
            raise
        return Subscription(self, tag, int(first_seq), buffer, callback)


class DatabaseRemote(_BlockingBase):
    """A flat database served by ``commitdb serve`` (blocking; the local names, arguments,
    results and errors).

    Transactions belong to this connection (its session on the server): another client does
    not see them before :meth:`commit`, and they are rolled back if the connection drops.
    """

    kind = "flat"

    # -- transactions ---------------------------------------------------------------------
    def begin_transaction(self, mode: str | None = "deferred") -> None:
        """Open this session's transaction (``deferred``, ``immediate`` or ``exclusive``)."""
        self._call("begin_transaction", mode)

    def commit(self) -> None:
        """Write this session's transaction in one storage transaction and end it."""
        self._call("commit")

    def rollback(self) -> None:
        """Discard this session's transaction and end it."""
        self._call("rollback")

    def in_transaction(self) -> bool:
        """True while this session has a transaction open."""
        return bool(self._call("in_transaction"))

    @contextmanager
    def transaction(self, mode: str | None = "deferred") -> Iterator[DatabaseRemote]:
        """A block in a transaction: commit on success, roll back on exception."""
        self.begin_transaction(mode)
        try:
            yield self
        except BaseException:
            self._end_quietly()
            raise
        if self.is_closed():
            return
        try:
            self.commit()
        except TransactionError:
            if self.in_transaction():
                raise  # else: the block ended the transaction itself
        except BaseException:
            self._end_quietly()
            raise

    def _end_quietly(self) -> None:
        """Roll back after a failure, if the transaction is still open."""
        if not self.is_closed():
            try:
                self.rollback()
            except (TransactionError, ConnectionClosedError):
                pass

    # -- documents ------------------------------------------------------------------------
    def _ak(self, attachment: Attachment | str, key: Key, write: bool) -> Attachment:
        att = self._attachment(attachment)
        _check_key(att, key, write=write)
        return att

    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the documents of an attachment."""
        att = self._attachment(attachment)
        w = self._call("keys", att.runtime_id.bytes)
        return self._with_defs(lambda d: {d.key(k) for k in w})

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att = self._ak(attachment, key, False)
        return bool(self._call("has", att.runtime_id.bytes, _key_wire(key)))

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        att = self._ak(attachment, key, False)
        w = self._call("get", att.runtime_id.bytes, _key_wire(key))
        t = OptionalType(att.document_type)
        return self._with_defs(lambda d: d.value(w, t))

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) for every document, in key order."""
        att = self._attachment(attachment)
        w = self._call("enumerate", att.runtime_id.bytes)
        t = att.document_type
        return self._with_defs(lambda d: [(d.key(k), d.value(v, t)) for k, v in w])

    def set(self, attachment: Attachment | str, key: Key, value: Any) -> bool:
        """Create or replace a document in this session's transaction; returns True."""
        att = self._ak(attachment, key, True)
        wire = _value_wire(att, key, value)
        return bool(self._call("set", att.runtime_id.bytes, _key_wire(key), wire))

    def delete(self, attachment: Attachment | str, key: Key) -> bool:
        """Delete a document in this session's transaction; returns whether it existed."""
        att = self._ak(attachment, key, True)
        return bool(self._call("delete", att.runtime_id.bytes, _key_wire(key)))

    def del_blob(self, blob_id: BlobId) -> bool:
        """Delete a blob in this session's transaction; returns whether it existed."""
        return bool(self._call("del_blob", bytes(blob_id)))
