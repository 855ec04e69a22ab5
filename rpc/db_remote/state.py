"""States of a remote commit database: what a state knows (its core), the states cache, and
the async state :class:`AsyncRemoteCommitState` (the blocking one wraps it)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.from_thread

from commitdb.codec import decode, decoder, from_wire, unpack
from commitdb.commit_database import DocEntry
from commitdb.commits import CommitHeader
from commitdb.copier import copier
from commitdb.definitions import Definitions
from commitdb.errors import CommitError, DecodeError, UnknownAttachmentError
from commitdb.ids import CommitId
from commitdb.opcodes import ABSENT, DocAddress, op_from_wire
from commitdb.state import DocumentTrace, EvalAction, TraceStep, _Resolved
from commitdb.types import Attachment, ConceptType, OptionalType
from commitdb.values import Key
from rpc.db_remote.wire import _MISSING, _check_key, _Defs, _key_wire, _ref, _Stale

if TYPE_CHECKING:
    from rpc.db_remote.commit import AsyncCommitDatabaseRemote

__all__ = ("AsyncRemoteCommitState",)

T = TypeVar("T")

_STATES = 64  # states cached per remote database
_COPY_KEYS = 256  # key sets up to this size are copied from a state to its child


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

    def cached(self, address: DocAddress, *, count: bool = True) -> Any:
        """The document if known without asking (ABSENT: known absent), else _MISSING;
        `count` adds the read to the hit rate."""
        if self.initial:
            v = ABSENT
        else:
            v = self.docs.get(address, _MISSING)
            if v is _MISSING:
                known = self.present.get(address[:16])
                if known is None or address[16:] in known:
                    if count:
                        self.requests += 1
                    return _MISSING
                v = ABSENT
            elif type(v) is _Lazy:
                v = self.docs[address] = v.decode(self.defs)
        if count:
            self.requests += 1
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
        elif parent is not None:
            # small key sets are copied; larger ones are handed over (the parent forgets them
            # and asks the server if it needs them again): a commit costs O(what it wrote)
            handed = parent.present
            parent.present = {rid: keys for rid, keys in handed.items() if len(keys) <= _COPY_KEYS}
            self.present = {
                rid: set(keys) if len(keys) <= _COPY_KEYS else keys for rid, keys in handed.items()
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
        self._facade: Any = None  # the blocking state wrapping this one, once asked for

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

    async def _fetch(self, att: Attachment, address: DocAddress) -> Any:
        """Ask the server for a document not cached (and cache it)."""
        w = await self._db._call("state_get", self._core.spec, att.runtime_id.bytes, address[16:])
        return await self._retry(lambda: self._core.store(address, att, w))

    def _cached_doc(self, attachment: Attachment | str, key: Key) -> tuple[Attachment, Any]:
        """(attachment, document) when both are known without asking, else _MISSING in
        either place (no round trip: used by the blocking state before it hops)."""
        try:
            att = self._core.attachment(attachment)
        except _Stale:
            return _MISSING, _MISSING
        core = self._core
        v = core.cached(core.address(att, key), count=False)
        if v is not _MISSING:  # a miss is counted by the call that fetches it
            core.requests += 1
            core.hits += 1
        return att, v

    async def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        att = await self._att(attachment)
        address = self._core.address(att, key)
        v = self._core.cached(address)
        if v is _MISSING:
            v = await self._fetch(att, address)
        return _out(att, v)

    async def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att = await self._att(attachment)
        address = self._core.address(att, key)
        v = self._core.cached(address)
        if v is _MISSING:
            v = await self._fetch(att, address)
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
            anyio.from_thread.run(self._fetch, att, address)
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
