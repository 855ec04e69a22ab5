"""CommitState: the read-only view of the documents at a commit.

Reading one document never replays unrelated history: the per-document index holds only the
commits that touched it, and each entry keeps the document as it was after that commit (a
*snapshot*). The read takes the newest entry whose snapshot is valid for this state and
replays only what follows it:

* At a *clean* commit (every commit of its parent chain down to the root is a Mutations
  commit or a merge that stored snapshots — see :mod:`commitdb.commit_database`), and more
  generally whenever the commits between the state and the entry are such commits, the
  newest entry on the parent chain is the answer: one reverse seek in the index and one
  decode. Every commit in between left the document as it was (a Mutations commit that
  does not touch it, or a merge whose brought commits did not touch it).
* Otherwise the state's linearization and enable flags are computed once (engine spec
  §5.2–§5.3); the document's entries are ordered by it, and replay starts from the newest
  snapshot whose history is exactly this state's prefix (the same touching commits in the
  same order — checked with the entry's chained history digest — all enabled), or from the
  last enabled Document_Set. Opcodes that fail are skipped and
  recorded for :meth:`CommitState.trace`; replay never raises. Entries are decoded only
  as far back as the replay needs; merge snapshots (derived entries) are not commits
  touching the document and are left out.

Documents are cached once resolved. A document read from a snapshot is kept as its
canonical bytes until it is read a second time: the first ``get`` hands out the freshly
decoded value itself, later ones decode once more, keep that value and return copies.
``get`` always returns a value the caller owns.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from commitdb.codec import decode_trusted, encode, trusted_bytes_decoder, unpack, unpack_raw
from commitdb.commit_database import (
    EMPTY_HISTORY as _EMPTY_HISTORY,
    EntryFields,
    entry_fields,
    history_step,
    snapshot_of,
)
from commitdb.commits import CommitHeader, CommitKind
from commitdb.copier import copier
from commitdb.dag import Linearization, mask
from commitdb.definitions import Definitions
from commitdb.errors import UnknownAttachmentError, ValidationError
from commitdb.ids import CommitId
from commitdb.opcodes import (
    ABSENT,
    DocAddress,
    Op,
    OpKind,
    ReplayFailure,
    apply_op,
    decode_ops,
    replay_ops,
)
from commitdb.storage.base import prefix_items
from commitdb.types import Attachment, ConceptType, Type
from commitdb.values import Key

if TYPE_CHECKING:
    from commitdb.commit_database import CommitDatabase, CommitRecord
    from commitdb.storage import ReadTxn

__all__ = ("CommitState", "DocumentTrace", "EvalAction", "TraceStep")


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One replayed opcode: the commit it came from, the opcode, and why it failed (or None)."""

    commit_id: CommitId
    op: Op
    error: str | None


@dataclass(slots=True)
class DocumentTrace:
    """How a document was rebuilt: its value and every opcode replayed since the last set."""

    attachment: Attachment
    key: Key
    value: Any
    steps: list[TraceStep] = field(default_factory=list)
    skipped_commits: list[CommitId] = field(default_factory=list)

    @property
    def failures(self) -> list[TraceStep]:
        """Steps whose opcode had no effect."""
        return [s for s in self.steps if s.error is not None]


@dataclass(frozen=True, slots=True)
class EvalAction:
    """A Mutations commit of the state's history with its enable flag."""

    header: CommitHeader
    enabled: bool


class _Pending:
    """The value of a document known only by its canonical bytes so far."""

    __slots__ = ()


_PENDING: Any = _Pending()


class _Resolved:
    """A materialized document with what a commit on top of it records about its history:
    how many commits touched it, whether all were enabled, and the digest of their order
    (computed on demand from `order` when the state replayed them).

    A document resolved from a snapshot keeps the snapshot's bytes and is decoded on first
    use (see :meth:`fresh`).
    """

    __slots__ = (
        "_defs",
        "_given",
        "_history",
        "_order",
        "_raw",
        "_type",
        "_value",
        "all_enabled",
        "touches",
    )

    def __init__(
        self,
        value: Any,
        touches: int,
        all_enabled: bool,
        history: int | None = _EMPTY_HISTORY,
        order: list[bytes] | None = None,
        raw: bytes | None = None,
        doc_type: Type | None = None,
        definitions: Definitions | None = None,
    ) -> None:
        self._value = value
        self.touches = touches
        self.all_enabled = all_enabled
        self._history = history
        self._order = order
        self._raw = raw
        self._type = doc_type
        self._defs = definitions
        self._given = False

    @classmethod
    def encoded(
        cls,
        raw: bytes,
        doc_type: Type,
        definitions: Definitions,
        touches: int,
        all_enabled: bool,
        history: int | None,
    ) -> _Resolved:
        """A document known by its canonical bytes (decoded when first needed)."""
        return cls(_PENDING, touches, all_enabled, history, None, raw, doc_type, definitions)

    def _decode(self) -> Any:
        assert self._raw is not None and self._type is not None
        # the engine's own snapshots: see codec.decode_trusted
        return decode_trusted(self._raw, self._type, self._defs)

    @property
    def value(self) -> Any:
        """The document (ABSENT if it does not exist); shared: do not mutate it."""
        v = self._value
        if v is _PENDING:
            v = self._value = self._decode()
        return v

    @property
    def exists(self) -> bool:
        """Whether the document exists (never decodes)."""
        return self._value is not ABSENT

    def fresh(self, copy_value: Callable[[Any], Any]) -> Any:
        """A value the caller owns (ABSENT if the document does not exist).

        The first call on a document known by its bytes returns a fresh decode and keeps
        nothing (a document read once is decoded once); later calls decode it for good and
        copy it.
        """
        v = self._value
        if v is _PENDING:
            if not self._given:
                self._given = True
                return self._decode()
            v = self._value = self._decode()
        if v is ABSENT:
            return ABSENT
        return copy_value(v)

    def encoding(self, doc_type: Type) -> bytes | bool:
        """The document's canonical bytes, or False (SNAP_ABSENT) when it does not exist."""
        v = self._value
        if v is ABSENT:
            return False
        if self._raw is not None:
            return self._raw
        return encode(v, doc_type)

    def history(self) -> int | None:
        """Chained digest of the touching commits in this state's order (None: unknown)."""
        if self._order is not None:
            h = _EMPTY_HISTORY
            for c in self._order:
                h = history_step(h, c)
            self._history = h
            self._order = None
        return self._history


_NOTHING = _Resolved(ABSENT, 0, True)  # shared: an absent document has nothing to change


class _AttInfo:
    """What reads need about one attachment, computed once per state."""

    __slots__ = ("att", "concepts", "copy", "decode", "prefix")

    def __init__(self, att: Attachment) -> None:
        self.att = att
        self.prefix = att.runtime_id.bytes
        self.copy = copier(att.document_type)
        self.decode = trusted_bytes_decoder(att.document_type)
        # id(concept) -> (concept, attachment rid ‖ concept rid); the concept object is kept
        # so that its id cannot be reused while the entry exists, and compared by identity.
        self.concepts: dict[int, tuple[ConceptType, bytes]] = {}


_INFO_LIMIT = 1024
_AHEAD_MAX = 256
_WALK_STEPS = 16  # parent-chain steps walked before a clean state uses the skip pointers
_LAST_SEQ = b"\xff" * 8  # after every entry of an address


_FAST_ENTRY = b"\x97\xc4\x20"  # a plain entry: fixarray of 7, then the commit id (bin 32)


def _entry_head(raw: bytes) -> tuple[bytes, bool]:
    """The commit id of a stored ``docs`` entry, and whether it is derived (a merge
    snapshot), read without decoding the entry where its layout allows."""
    # [cid (bin 32), ops, snapshot, touches, all_enabled, resets, history]: a fixarray of 7
    if raw[:3] == b"\x97\xc4\x20":
        return raw[3:35], False
    w = unpack(raw)
    if type(w) is not list or not w or type(w[0]) is not bytes:
        return b"", False
    return w[0], len(w) > 7 and w[7] is True


def _bin_at(raw: bytes, i: int) -> tuple[int, int] | None:
    """(start, end) of the msgpack bin at offset `i` of `raw`, or None if there is none."""
    head = raw[i] if i < len(raw) else 0
    if head == 0xC4:
        start = i + 2
        end = start + raw[i + 1]
    elif head == 0xC5:
        start = i + 3
        end = start + int.from_bytes(raw[i + 1 : start], "big")
    elif head == 0xC6:
        start = i + 5
        end = start + int.from_bytes(raw[i + 1 : start], "big")
    else:
        return None
    return (start, end) if end <= len(raw) else None


def _entry_ops(raw: bytes) -> tuple[bytes, bool] | None:
    """The encoded opcodes of a stored Mutations entry and whether they reset the document,
    read in place without copying its snapshot (None: not the common layout; see
    :func:`~commitdb.commit_database.entry_fields`)."""
    # [cid (bin 32), ops (bin), snapshot (bin, 1, false or nil), touches, all_enabled,
    #  resets, history]: a fixarray of 7, so never a derived entry
    if raw[:3] != b"\x97\xc4\x20":
        return None
    ops = _bin_at(raw, 35)
    if ops is None:
        return None
    end = ops[1]
    snap = _bin_at(raw, end)
    if snap is not None:
        after = snap[1]
    elif raw[end : end + 1] in (b"\x01", b"\xc2", b"\xc0"):
        after = end + 1
    else:
        return None
    try:
        tail = unpack_raw(b"\x94" + raw[after:])  # touches, all_enabled, resets, history
    except Exception:  # malformed: the generic path says how
        return None
    if type(tail) is not list:
        return None
    return raw[ops[0] : end], bool(tail[2])


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _commit_id(raw: bytes) -> CommitId:
    """A CommitId of 32 bytes already checked."""
    return bytes.__new__(CommitId, raw)


class CommitState:
    """The documents at a commit (immutable once built; later commits make new states)."""

    def __init__(
        self,
        db: CommitDatabase,
        commit_id: CommitId,
        *,
        virtual_merge: tuple[CommitId, CommitId] | None = None,
    ) -> None:
        self._db = db
        self._commit_id = commit_id
        self._virtual = virtual_merge
        self._defs = db.definitions()
        rec = db._record(commit_id) if commit_id.is_valid else None
        self._rec = rec
        self._empty = rec is None and virtual_merge is None
        self._cache: dict[DocAddress, _Resolved] = {}
        self._lin: Linearization | None = None
        self._flags: dict[CommitId, bool] | None = None
        # The parent chain walked so far (newest first) and the index of each seq in it.
        self._chain: list[CommitRecord] = []
        self._chain_index: dict[int, int] = {}
        if rec is not None and virtual_merge is None:
            self._chain.append(rec)
            self._chain_index[rec.seq] = 0
        self._infos: dict[int, tuple[object, _AttInfo]] = {}
        self._att_infos: dict[uuid.UUID, _AttInfo] = {}
        self._clean = rec is not None and virtual_merge is None and rec.clean
        self._top_seq = rec.seq if rec is not None else -1
        self._ahead = 0  # the read-ahead window (see _read_ahead)
        self._ahead_next: bytes | None = None
        # Entries read ahead, not parsed yet: address -> the stored entry that is the
        # document at this state. `_given`: those whose first get returned their decode.
        self._stash: dict[bytes, bytes] = {}
        self._given: dict[bytes, bytes] = {}
        self.cache_requests = 0
        self.cache_hits = 0

    # -- identity -------------------------------------------------------------------------
    def commit_id(self) -> CommitId:
        """The commit this state is at (INVALID for the initial state or a virtual merge)."""
        return self._commit_id

    def definitions(self) -> Definitions:
        """The definitions typing this state's documents."""
        return self._defs

    def database(self) -> CommitDatabase:
        """The database the state reads from."""
        return self._db

    def attachment_getting(self) -> CommitState:
        """This state, as the read interface."""
        return self

    def __repr__(self) -> str:
        c = self._commit_id.hex()[:12] if self._commit_id.is_valid else "initial"
        return f"<CommitState {c}>"

    # -- argument checks ------------------------------------------------------------------
    def _attachment(self, attachment: Attachment | str | uuid.UUID) -> Attachment:
        try:
            return self._defs.check_attachment(attachment)
        except UnknownAttachmentError:
            self._defs = self._db.definitions()
            return self._defs.check_attachment(attachment)

    def _info(self, attachment: Attachment | str) -> _AttInfo:
        """The checked attachment and its read helpers, cached by the caller's object."""
        hit = self._infos.get(id(attachment))
        if hit is not None and hit[0] is attachment:
            return hit[1]
        att = self._attachment(attachment)
        info = self._att_infos.get(att.runtime_id)
        if info is None:
            info = self._att_infos[att.runtime_id] = _AttInfo(att)
        if len(self._infos) >= _INFO_LIMIT:
            self._infos.clear()
        self._infos[id(attachment)] = (attachment, info)
        return info

    @staticmethod
    def _key(att: Attachment, key: object) -> Key:
        if not isinstance(key, Key):
            raise ValidationError(
                str(att.key_type), f"{type(key).__name__} {key!r}", att.identifier
            )
        if not att.key_type.accepts_concept(key.concept):
            raise ValidationError(
                str(att.key_type), f"key of {key.concept}", f"{att.identifier} key"
            )
        return key

    def _address(self, info: _AttInfo, key: object) -> DocAddress:
        """The document address of a key (checked like :meth:`_key`)."""
        if type(key) is Key:
            concept = key.concept
            hit = info.concepts.get(id(concept))
            if hit is not None and hit[0] is concept:
                return hit[1] + key._id_bytes
        k = self._key(info.att, key)
        prefix = info.prefix + k.concept.runtime_id.bytes
        if len(info.concepts) >= _INFO_LIMIT:
            info.concepts.clear()
        info.concepts[id(k.concept)] = (k.concept, prefix)
        return prefix + k.id.bytes

    # -- reads ----------------------------------------------------------------------------
    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None if it does not exist."""
        # _info(), _address() and _resolve() inlined for their common cases: the hot path
        hit = self._infos.get(id(attachment))
        info = hit[1] if hit is not None and hit[0] is attachment else self._info(attachment)
        if type(key) is Key:
            known = info.concepts.get(id(key.concept))
            if known is not None and known[0] is key.concept:
                address = known[1] + key._id_bytes
            else:
                address = self._address(info, key)
        else:
            address = self._address(info, key)
        self.cache_requests += 1
        r = self._cache.get(address)
        if r is None:
            raw = self._stash.pop(address, None)
            if raw is not None:
                # a plain entry whose ops are its single Document_Set (SNAP_IN_OPS): the
                # document is read in place, after b"\x91\x92\x00" (see entry_fields)
                if raw[:3] == _FAST_ENTRY:
                    head = raw[35]
                    if head == 0xC4:
                        end = 37 + raw[36]
                        snap = raw[40:end] if raw[end : end + 1] == b"\x01" else None
                    elif head == 0xC5:
                        end = 38 + int.from_bytes(raw[36:38], "big")
                        snap = raw[41:end] if raw[end : end + 1] == b"\x01" else None
                    else:
                        snap = None
                    if snap is not None:
                        # first read of a document read ahead: hand out its decode, keep
                        # the entry
                        self._given[address] = raw
                        return info.decode(snap, self._defs)
                r = self._from_entry(address, raw, info.att)
            else:
                r = self._unstash(address, info.att)
            if r is None:
                r = self._resolve_uncached(address, info.att, None, True)
            self._cache[address] = r
        else:
            self.cache_hits += 1
        value = r.fresh(info.copy)
        return None if value is ABSENT else value

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        info = self._info(attachment)
        return self._resolve(self._address(info, key), info.att).exists

    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the documents that exist under an attachment."""
        att = self._attachment(attachment)
        out: set[Key] = set()
        if self._empty:
            return out
        cache = self._cache
        with self._db._read() as txn:
            addresses = self._db._addresses(att.runtime_id.bytes, txn)
            for address in addresses:
                self.cache_requests += 1
                r = cache.get(address)
                if r is None:
                    r = self._unstash(address, att)
                    if r is None:
                        r = self._resolve_uncached(address, att, txn)
                    cache[address] = r
                else:
                    self.cache_hits += 1
                if r.exists:
                    out.add(self._key_of(address))
        return out

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) of every existing document of an attachment."""
        att = self._attachment(attachment)
        return [(k, self.get(att, k)) for k in sorted(self.keys(att))]

    def _key_of(self, address: DocAddress) -> Key:
        concept = self._defs.query_type(uuid.UUID(bytes=address[16:32]))
        if not isinstance(concept, ConceptType):
            self._defs = self._db.definitions()
            concept = self._defs.query_type(uuid.UUID(bytes=address[16:32]))
        assert isinstance(concept, ConceptType)
        return Key(concept, uuid.UUID(bytes=address[32:]))

    # -- resolution -----------------------------------------------------------------------
    def _resolve(self, address: DocAddress, att: Attachment) -> _Resolved:
        self.cache_requests += 1
        r = self._cache.get(address)
        if r is not None:
            self.cache_hits += 1
            return r
        r = self._unstash(address, att)
        if r is None:
            r = self._resolve_uncached(address, att)
        self._cache[address] = r
        return r

    def _unstash(self, address: DocAddress, att: Attachment) -> _Resolved | None:
        """The document from its entry read ahead, if one is stashed (None otherwise, or
        when only the general path can tell)."""
        if not self._stash and not self._given:
            return None
        raw = self._stash.pop(address, None)
        if raw is not None:
            return self._from_entry(address, raw, att)
        raw = self._given.pop(address, None)
        if raw is not None:
            r = self._from_entry(address, raw, att)
            if r is not None:
                r._given = True  # its first read was handed out: keep the next decode
            return r
        return None

    def _from_entry(self, address: DocAddress, raw: bytes, att: Attachment) -> _Resolved | None:
        """The document from the stored entry that is its answer at this state (None for
        an entry whose snapshot was never computed: the general path decides)."""
        e = entry_fields(raw)
        snap = e[2]  # as snapshot_of(e), inlined
        if type(snap) is int:  # SNAP_IN_OPS
            return _Resolved(
                _PENDING, e[3], e[4], e[6], None, e[1][3:], att.document_type, self._defs
            )
        if type(snap) is bytes:
            return _Resolved(_PENDING, e[3], e[4], e[6], None, snap, att.document_type, self._defs)
        if snap is not None:  # SNAP_ABSENT
            return _Resolved(ABSENT, e[3], e[4], e[6])
        return None  # SNAP_UNKNOWN

    def _resolve_uncached(
        self,
        address: DocAddress,
        att: Attachment,
        txn: ReadTxn | None = None,
        ahead: bool = False,
    ) -> _Resolved:
        """Resolve a document not in the cache (`ahead`: a read by :meth:`get`, which may
        read the next documents ahead)."""
        if self._empty:
            return _NOTHING
        if self._virtual is None:
            if txn is None:
                with self._db._read() as t:
                    r = self._resolve_chain(address, att, t)
                    if ahead and r is not None and self._clean:
                        self._read_ahead(address, att, t)
            else:
                r = self._resolve_chain(address, att, txn)
            if r is not None:
                return r
        return self._resolve_general(address, att, None)

    def _read_ahead(self, address: DocAddress, att: Attachment, txn: ReadTxn) -> None:
        """Serve reads that walk an attachment's documents in index order (a loop over keys
        in order, an export) by resolving the next documents in the same transaction.

        The window doubles (from 8 to :data:`_AHEAD_MAX` documents) while each miss is the
        document right after the previous window, and drops to none on a jump, when only
        the next address is noted; it also stops after a bounded number of index entries
        (documents with long histories). Only at clean commits, where the newest entry on
        the chain is the answer. The entries are stashed unparsed (see :meth:`get`).
        """
        if address == self._ahead_next:
            n = self._ahead = min(max(2 * self._ahead, 8), _AHEAD_MAX)
        else:
            n = self._ahead = 0
        self._ahead_next = None
        top = _u64(self._top_seq)  # entry keys end with the big-endian seq: compared as bytes
        commit_id = self._commit_id
        limit = 4 * n + 64 if n else 1  # index entries read at most (one: just peek)
        items = prefix_items(txn, "docs", address[:16], address + _LAST_SEQ, limit)
        cache = self._cache
        stash = self._stash
        current: bytes | None = None  # the address being collected
        pending: list[tuple[bytes, bytes]] | None = None  # its entries up to this state
        at_top: bytes | None = None  # its entry at this state's own commit, if any
        skip = False
        count = 0
        for key, raw in items:
            a = key[:48]
            if a != current:
                if current is not None and not skip:
                    if at_top is not None:
                        stash[current] = at_top
                    else:
                        self._ahead_store(current, pending or [], txn)
                count += 1
                if count > n:
                    self._ahead_next = a
                    return
                # (a document already read and handed out may be stashed again: its next
                # read is then a first read again, a fresh decode as well)
                current, skip, at_top, pending = a, a in cache, None, None
            if not skip:
                seq = key[48:]
                if (
                    seq == top
                    and (raw[3:35] if raw[:3] == _FAST_ENTRY else _entry_head(raw)[0]) == commit_id
                ):
                    at_top = raw  # the newest possible entry: on the chain, the answer
                elif seq <= top:
                    if pending is None:
                        pending = []  # oldest first
                    pending.append((seq, raw))
        if current is not None:
            if len(items) == limit:
                self._ahead_next = current  # maybe unfinished: the next miss continues here
            elif not skip:
                if at_top is not None:
                    stash[current] = at_top
                else:
                    self._ahead_store(current, pending or [], txn)

    def _ahead_store(
        self, address: DocAddress, entries: list[tuple[bytes, bytes]], txn: ReadTxn
    ) -> None:
        """Note a document read ahead, as :meth:`_resolve_chain` would resolve it, from the
        newest of its `entries` (big-endian seq, stored entry; oldest first) on the chain.
        The entry is stashed unparsed (see :meth:`get`)."""
        for seq, candidate in reversed(entries):  # newest first: the chain is walked less
            found = self._on_chain(_entry_head(candidate)[0], int.from_bytes(seq, "big"), txn)
            if found is None:  # cannot happen at a clean commit; the general path decides
                return
            if found:
                self._stash[address] = candidate
                return
        self._cache[address] = _NOTHING  # no entry on a clean chain: never existed

    def _on_chain(self, commit_id: bytes, seq: int, txn: ReadTxn) -> bool | None:
        """Whether the commit (`commit_id`, `seq`) is on this state's parent chain with only
        transparent commits above it (True), is not on the chain (False), or cannot be told
        apart that way because a commit above it is not transparent (None)."""
        if seq == self._top_seq:  # the state's own commit (every seq names one commit)
            return commit_id == self._commit_id
        chain = self._chain
        last = chain[-1]
        steps = 0
        while last.seq > seq:  # seqs decrease strictly down the chain
            if not last.transparent:
                return None
            steps += 1
            if steps > _WALK_STEPS and self._clean:
                found = self._on_chain_by_skips(commit_id, txn)
                if found is not None:
                    return found
            parent = last.parent_commit_id
            if not parent.is_valid:
                return False
            last = self._db._record(parent, txn)
            self._chain_index[last.seq] = len(chain)
            chain.append(last)
        i = self._chain_index.get(seq)
        return i is not None and chain[i].commit_id == commit_id

    def _on_chain_by_skips(self, commit_id: bytes, txn: ReadTxn) -> bool | None:
        """:meth:`_on_chain` at a clean commit (every commit of its chain is transparent)
        through the records' skip pointers: O(log n) record loads instead of a walk over
        every commit made since. None when a record has no skip pointer."""
        rec = self._rec
        assert rec is not None
        candidate = self._db._record(CommitId(commit_id), txn)
        depth, top = candidate.depth, rec.depth
        if depth is None or top is None:
            return None
        if depth > top:
            return False
        ancestor = self._db._ancestor_at_depth(rec, depth, txn)
        if ancestor is None:
            return None
        return ancestor.commit_id == candidate.commit_id

    def _resolve_chain(
        self, address: DocAddress, att: Attachment, txn: ReadTxn
    ) -> _Resolved | None:
        """The document from the newest entry on the parent chain, or None when only the
        general path can tell (a commit on the way is not transparent, or the entry's
        snapshot was never computed)."""
        rec = self._rec
        assert rec is not None
        start = address + _u64(rec.seq)
        for key, raw in txn.items("docs", address, start=start, reverse=True):
            cid, _ = _entry_head(raw)
            found = self._on_chain(cid, int.from_bytes(key[48:], "big"), txn)
            if found is None:
                return None
            if not found:
                continue
            e = entry_fields(raw)
            if e[2] is None:  # SNAP_UNKNOWN: a commit received by sync
                return None
            snap = snapshot_of(e)
            if snap is None:
                return _Resolved(ABSENT, e[3], e[4], e[6])
            return _Resolved(_PENDING, e[3], e[4], e[6], None, snap, att.document_type, self._defs)
        # No entry on the chain: the document never existed here if the whole chain is
        # transparent down to the root.
        return _NOTHING if rec.clean else None

    def _linearization(self) -> Linearization:
        if self._lin is None:
            if self._virtual is not None:
                ours, theirs = self._virtual
                p = self._db._linearize(ours)
                t = self._db._linearize(theirs)
                seen = p.positions
                brought = [x for x in t.order if x not in seen]
                introduced = dict(p.introduced)
                brought_set = set(brought)
                for m, xs in t.introduced.items():
                    if m in brought_set:
                        introduced[m] = [x for x in xs if x in brought_set]
                self._lin = Linearization([*p.order, *brought], introduced)
            else:
                self._lin = self._db._linearize(self._commit_id)
        return self._lin

    def _enabled(self) -> dict[CommitId, bool]:
        if self._flags is None:
            if self._virtual is not None:
                clean = all(self._db._record(c).clean for c in self._virtual)
            else:
                clean = self._rec is not None and self._rec.clean
            # The history of a clean commit holds no Disable or Enable commit (a merge with
            # snapshots brought none): every commit is enabled, which the empty map says.
            self._flags = {} if clean else mask(self._linearization(), self._db._record)
        return self._flags

    def _ordered_entries(self, address: DocAddress) -> list[tuple[int, bytes, bytes, bytes]]:
        """(position, commit id, key, stored entry) of the document's entries in this
        state's linearization, in its order (derived entries left out)."""
        pos = self._linearization().positions
        with self._db._read() as txn:
            stored = prefix_items(txn, "docs", address)
        out = []
        for key, raw in stored:
            cid, derived = _entry_head(raw)
            if derived:
                continue
            p = pos.get(cid)  # type: ignore[call-overload]
            if p is not None:
                out.append((p, cid, key, raw))
        out.sort()
        return out

    def _resolve_general(
        self, address: DocAddress, att: Attachment, trace: DocumentTrace | None
    ) -> _Resolved:
        items = self._ordered_entries(address)
        n = len(items)
        if n == 0:
            return _NOTHING
        parsed: list[EntryFields | None] = [None] * n

        def entry(i: int) -> EntryFields:
            e = parsed[i]
            if e is None:
                e = parsed[i] = entry_fields(items[i][3])
            return e

        cids = [cid for _, cid, _, _ in items]
        flags = self._enabled()
        enabled = [flags.get(c, True) for c in cids]  # type: ignore[call-overload]
        all_enabled = all(enabled)
        doc_type = att.document_type
        defs = self._defs
        # Walk down from the newest entry to the first that is either a snapshot valid for
        # this state (replay starts after it) or the last enabled Document_Set/Delete
        # (replay starts there): only the entries above it are decoded. A snapshot is
        # valid when its history is exactly this state's prefix, all enabled: the same
        # count is not enough, since a criss-cross merge can hold the same commits in
        # another order, so the ordered history digests must match too. A trace replays
        # from the last reset, never from a snapshot.
        first_off = n if trace is not None else next((j for j in range(n) if not enabled[j]), n)
        last_reset = -1
        start = -1
        doc: Any = ABSENT
        raw_snapshot: bytes | None = None
        prefix: list[int] | None = None
        for i in range(n - 1, -1, -1):
            e = entry(i)
            # (commit id, ops, snapshot, touches, all_enabled, resets, history, derived)
            if (
                trace is None
                and i < first_off
                and e[2] is not None
                and e[3] == i + 1
                and e[4]
                and e[6] is not None
            ):
                if prefix is None:  # digests of entries 0..i (smaller i reuse them)
                    prefix = _prefix_histories(cids[: i + 1])
                if prefix[i] == e[6]:
                    raw_snapshot = snapshot_of(e)
                    start = i
                    break
            if enabled[i] and e[5]:
                last_reset = i
                break
        if start < 0:
            if last_reset < 0:
                if trace is not None:
                    trace.skipped_commits.extend(_commit_id(c) for c in cids)
                return _Resolved(ABSENT, n, all_enabled, None, cids)
            e = entry(last_reset)
            ops = decode_ops(e[1], doc_type, defs)
            reset_at = max(
                i
                for i, op in enumerate(ops)
                if op.kind in (OpKind.DOCUMENT_SET, OpKind.DOCUMENT_DELETE)
            )
            doc = _replay(doc, ops[reset_at:], _commit_id(e[0]), trace)
            start = last_reset
        elif start == n - 1:
            # nothing to replay after the snapshot: keep it as bytes until it is read
            history = prefix[-1] if prefix is not None and len(prefix) == n else None
            order = None if history is not None else cids
            if raw_snapshot is None:
                return _Resolved(ABSENT, n, all_enabled, history, order)
            r = _Resolved.encoded(raw_snapshot, doc_type, defs, n, all_enabled, history)
            r._order = order
            return r
        elif raw_snapshot is not None:
            doc = decode_trusted(raw_snapshot, doc_type, defs)
        for i in range(start + 1, n):
            if not enabled[i]:
                if trace is not None:
                    trace.skipped_commits.append(_commit_id(cids[i]))
                continue
            e = entry(i)
            if trace is None:
                doc = replay_ops(doc, e[1], doc_type, defs)
            else:
                doc = _replay(doc, decode_ops(e[1], doc_type, defs), _commit_id(e[0]), trace)
        if prefix is not None and len(prefix) == n:
            return _Resolved(doc, n, all_enabled, prefix[-1])
        return _Resolved(doc, n, all_enabled, None, cids)

    def _merge_snapshots(self) -> list[tuple[DocAddress, Any, int, bool, int | None]] | None:
        """For a virtual merge state: the derived entries its merge commit stores, as
        (address, snapshot, touches, all_enabled, history), one per document that a
        commit brought by the merge touched. None when the brought commits hold a Disable
        or Enable commit: those may change the flags of the parent's commits, so documents
        the merge does not store would not be as after the parent."""
        assert self._virtual is not None
        db = self._db
        lin = self._linearization()
        parent = self._virtual[0]
        brought = lin.order[len(db._linearize(parent).order) :]
        # address -> (seq, id) of the brought commits touching it, in the merge's order
        touching: dict[bytes, list[tuple[int, bytes]]] = {}
        with db._read() as txn:
            get = txn.get
            for c in brought:
                rec = db._record(c, txn)
                kind = rec.kind
                if kind == CommitKind.DISABLE or kind == CommitKind.ENABLE:
                    return None
                if kind == CommitKind.MUTATIONS:
                    # address keys are the commit id and a 0, 1, 2... index: point reads
                    # until the first missing one (cheaper than a prefix scan per commit)
                    seq = rec.seq
                    i = 0
                    while True:
                        address = get("commits", c + i.to_bytes(4, "big"))
                        if address is None:
                            break
                        seqs = touching.get(address)
                        if seqs is None:
                            touching[address] = [(seq, c)]
                        elif seqs[-1][0] != seq:
                            seqs.append((seq, c))
                        i += 1
        # Every commit of a clean parent is enabled and the brought ones hold no Disable
        # or Enable: a document after the merge is the parent's followed by the brought
        # entries, so it is found without the merge's whole linearization.
        base = CommitState(db, parent) if db._record(parent).clean else None
        out = []
        for address, seqs in touching.items():
            att = self._defs.query_attachment(uuid.UUID(bytes=address[:16]))
            if att is None:
                return None
            found = None if base is None else self._merged_document(base, address, att, seqs)
            if found is None:
                r = self._resolve_general(address, att, None)
                found = (
                    address,
                    r.encoding(att.document_type),
                    r.touches,
                    r.all_enabled,
                    r.history(),
                )
            out.append(found)
        return out

    def _in_history(
        self, address: DocAddress, att: Attachment, txn: ReadTxn, skip: set[int]
    ) -> _Resolved | None:
        """For a clean state: the document from its newest entry whose commit is in the
        history (None when only the general path can tell); entries at the seqs in `skip`
        are known not to be.

        An entry of a Mutations commit in the history but off the parent chain was brought
        by a merge on the chain, which stored a newer derived entry for the document: the
        newest Mutations entry in the history is then on the chain, and the document is as
        after it. A derived entry counts only on the chain (a brought merge's snapshot may
        order the commits otherwise)."""
        rec = self._rec
        assert rec is not None and self._clean
        pos = self._db._linearize(self._commit_id).positions
        # a skipped seq -> the lowest of its run of consecutive skipped seqs: every seq
        # names one commit, so no other entry lies within a run and one seek passes it
        runs: dict[int, int] = {}
        for seq in sorted(skip):
            runs[seq] = runs.get(seq - 1, seq)
        top = rec.seq
        while True:
            found = self._newest_in_history(address, att, txn, top, runs, pos)
            if not isinstance(found, int):
                return found
            top = found

    def _newest_in_history(
        self,
        address: DocAddress,
        att: Attachment,
        txn: ReadTxn,
        top: int,
        runs: dict[int, int],
        pos: dict[CommitId, int],
    ) -> _Resolved | int | None:
        """One reverse scan of :meth:`_in_history` from seq `top`: its answer, or the seq
        to seek to past a run of skipped entries."""
        for key, raw in txn.items("docs", address, start=address + _u64(top), reverse=True):
            seq = int.from_bytes(key[48:], "big")
            low = runs.get(seq)
            if low is not None:
                if low == 0:
                    return _NOTHING
                return low - 1
            cid, derived = _entry_head(raw)
            if cid not in pos:
                continue
            if derived:
                on_chain = self._on_chain(cid, seq, txn)
                if on_chain is None:
                    return None
                if not on_chain:
                    continue
            e = entry_fields(raw)
            if e[2] is None:  # SNAP_UNKNOWN: a commit received by sync
                return None
            snap = snapshot_of(e)
            if snap is None:
                return _Resolved(ABSENT, e[3], e[4], e[6])
            return _Resolved(_PENDING, e[3], e[4], e[6], None, snap, att.document_type, self._defs)
        return _NOTHING

    def _merged_document(
        self,
        base: CommitState,
        address: DocAddress,
        att: Attachment,
        brought: list[tuple[int, bytes]],
    ) -> tuple[DocAddress, Any, int, bool, int | None] | None:
        """The derived entry of one document for a merge onto `base` (a clean parent) of
        the brought commits touching it, as (seq, commit id) in the merge's order, or None
        when only the general path can tell."""
        doc_type = att.document_type
        with self._db._read() as txn:
            pr = base._in_history(address, att, txn, {seq for seq, _ in brought})
            if pr is None or not pr.all_enabled:
                return None
            history = pr.history()
            if history is None:
                return None
            for _, c in brought:
                history = history_step(history, c)
            touches = pr.touches + len(brought)
            raw = txn.get("docs", address + _u64(brought[-1][0]))
            if raw is None:
                return None
            last = entry_fields(raw)
            if last[7]:
                return None
            if last[2] is not None and last[3] == touches and last[4] and last[6] == history:
                snap = snapshot_of(last)  # the newest brought entry has the merge's history
                return (address, False if snap is None else snap, touches, True, history)
            # newest first, down to the last Document_Set/Delete (replay starts there)
            entries = [(last[1], bool(last[5]))]
            get = txn.get
            for seq, _ in reversed(brought[:-1]):
                if entries[-1][1]:
                    break
                raw = get("docs", address + _u64(seq))
                if raw is None:
                    return None
                found = _entry_ops(raw)
                if found is None:
                    e = entry_fields(raw)
                    if e[7]:
                        return None
                    found = (e[1], bool(e[5]))
                entries.append(found)
        entries.reverse()
        defs = self._defs
        if entries[0][1]:  # replay from the Document_Set/Delete, as the general path
            ops = decode_ops(entries[0][0], doc_type, defs)
            reset_at = max(
                i
                for i, op in enumerate(ops)
                if op.kind in (OpKind.DOCUMENT_SET, OpKind.DOCUMENT_DELETE)
            )
            commit_id = _commit_id(brought[len(brought) - len(entries)][1])
            doc = _replay(ABSENT, ops[reset_at:], commit_id, None)
            rest = entries[1:]
        else:
            encoded = pr.encoding(doc_type)
            doc = decode_trusted(encoded, doc_type, defs) if type(encoded) is bytes else ABSENT
            rest = entries
        for ops_bytes, _ in rest:
            doc = replay_ops(doc, ops_bytes, doc_type, defs)
        return (address, False if doc is ABSENT else encode(doc, doc_type), touches, True, history)

    # -- history and tracing --------------------------------------------------------------
    def eval_actions(self) -> list[EvalAction]:
        """The Mutations commits of the history, latest first, with their enable flags."""
        lin = self._linearization() if (self._commit_id.is_valid or self._virtual) else None
        if lin is None:
            return []
        flags = self._enabled()
        out = []
        for c in reversed(lin.order):
            h = self._db._header(c)
            if h.kind == CommitKind.MUTATIONS:
                out.append(EvalAction(h, flags.get(c, True)))
        return out

    def enabled_by_commit_id(self) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history."""
        if not (self._commit_id.is_valid or self._virtual):
            return {}
        flags = self._enabled()
        return {c: flags.get(c, True) for c in self._linearization().order}

    def trace(self, attachment: Attachment | str, key: Key) -> DocumentTrace:
        """Replay one document from its last set, reporting each opcode and its failure."""
        att = self._attachment(attachment)
        k = self._key(att, key)
        address = att.runtime_id.bytes + k.concept.runtime_id.bytes + k.id.bytes
        t = DocumentTrace(att, k, None)
        if self._commit_id.is_valid or self._virtual is not None:
            r = self._resolve_general(address, att, t)
            t.value = None if r.value is ABSENT else r.value
        return t

    def cache_preload(self) -> float:
        """Materialize every document of every attachment; returns the seconds taken."""
        t0 = time.perf_counter()
        for att in self._defs.attachments():
            self.keys(att)
        for r in self._cache.values():
            r.value  # noqa: B018 - decodes what is still held as bytes
        return time.perf_counter() - t0

    def cache_hit_rate(self) -> float:
        """Share of document reads served from the cache."""
        return self.cache_hits / self.cache_requests if self.cache_requests else 0.0


def _prefix_histories(commit_ids: list[bytes]) -> list[int]:
    """History digests of every prefix of the commits (index i: commits 0..i)."""
    out = []
    h = _EMPTY_HISTORY
    step = history_step
    for c in commit_ids:
        h = step(h, c)
        out.append(h)
    return out


def _replay(doc: Any, ops: list[Op], commit_id: CommitId, trace: DocumentTrace | None) -> Any:
    for traced in ops:
        op = traced
        try:
            # the evaluator owns what it applies: keep the traced opcode intact
            if trace is not None:
                op = Op(op.kind, op.path, copy.deepcopy(op.value), op.position, op.position2)
            doc = apply_op(doc, op)
            if trace is not None:
                trace.steps.append(TraceStep(commit_id, traced, None))
        except ReplayFailure as exc:
            if trace is not None:
                trace.steps.append(TraceStep(commit_id, traced, str(exc)))
    return doc
