"""CommitDatabase: an append-only, content-addressed DAG of typed document mutations.

Storage layout (one LMDB environment, named tables):

========  ==================================  =============================================
table     key                                 value
========  ==================================  =============================================
meta      name                                format, uuid, documentation, definitions,
                                              counters (next sequence, data version, last
                                              commit)
meta      ``h:`` ‖ commit id                  (empty): the heads
meta      ``~`` ‖ u64be creation sequence     commit id (creation order)
meta      ``~`` ‖ u64be parent seq ‖ u64be    (empty): a child link (parent, child), by
          child seq                           creation sequences
commits   commit id (32)                      header + seq, height, flags
commits   commit id ‖ u32be index             document address (program order)
nephews   merge target id ‖ merge id          (empty)
docs      document address (48) ‖ u64be seq   commit id, encoded ops, snapshot, counters,
                                              history digest
blobs     blob id                             layout, size, chunk count
chunks    blob id ‖ u32be chunk index         bytes
========  ==================================  =============================================

The layout keeps the pages one commit dirties few (each is written and flushed by the
durable LMDB commit): a Mutations commit writes three tables. Its record and its document
addresses share one leaf of ``commits``; its heads, sequence and child-link keys share the
meta leaves (the sequence region ``~`` is last, so a new commit's sequence and its link to
a parent created just before append to the same leaf); its ``docs`` entries are the third.
``commitdb-commit/2`` is this layout (``/1`` kept ``seqs``, ``children``, ``heads`` and the
addresses, ``cdocs``, in tables of their own).

``docs`` is the per-document index: reading one document at a commit touches only that
document's entries, and each entry keeps the materialized document after that commit (its
*snapshot*), so a read does not replay the document's whole history (see
:mod:`commitdb.state`). A snapshot is only reused by a state whose history of the document
is the same *ordered* list of commits: the entry keeps a chained digest of that list
(:func:`history_step`), since two states can hold the same commits in different orders
(criss-cross merges). One write transaction per commit; durable by default.

Merge snapshots
    A merge written by :meth:`CommitDatabase.merge_commit` also stores, for every document
    that a commit brought in by the merge touched, an entry with the document after the
    merge (a *derived* entry: no opcodes, marked by an eighth element ``True``; the
    general replay ignores it). Its record is then marked ``snapshots``; when the brought
    commits hold no Disable/Enable, a document without an entry at the merge is as after
    the merge's parent. A record is *clean* when every commit of its parent chain down to
    the root is a Mutations commit or such a merge: reading a document at a clean commit
    is one reverse seek in ``docs`` (the newest entry on the chain), never a linearization.
    Records keep ``clean`` and ``snapshots`` as two extra elements; records and entries
    written before them read as not clean (``simple`` still applies) and not derived.

First-parent skip pointers
    Knowing whether an entry's commit is on a state's parent chain must not cost a walk
    over every commit made since (a document untouched for 10,000 commits would be read
    in 10,000 steps). Each record also stores its *depth* (number of parent links down to
    its root) and a *jump* pointer to one of its first-parent ancestors, chosen as in a
    skew-binary skip list (Myers, 1983): the ancestor of a commit at any depth is then
    found in O(log n) record loads (:meth:`CommitDatabase._ancestor_at_depth`). Two more
    elements; records written without them read as unknown and fall back to the walk.
"""

from __future__ import annotations

import getpass
import os
import struct
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from commitdb.blobs import BLOB_TABLES, BlobInfo, BlobLayout, BlobStatistics, BlobStore, BlobStream
from commitdb.codec import pack, unpack, unpack_raw as msgpack_unpack
from commitdb.commits import CommitData, CommitHeader, CommitKind, compute_commit_id
from commitdb.dag import Linearization, linearize, mask
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import (
    CommitDBError,
    CommitError,
    CorruptDatabaseError,
    DecodeError,
    MissingBlobError,
    StorageError,
    UnknownCommitError,
)
from commitdb.ids import BlobId, CommitId
from commitdb.opcodes import (
    DocAddress,
    OpKind,
    program_bytes,
    split_program,
)
from commitdb.storage import LmdbStorage, MemoryStorage, Storage
from commitdb.storage.base import getter

if TYPE_CHECKING:
    from commitdb.mutable_state import CommitMutableState
    from commitdb.state import CommitState
    from commitdb.storage import ReadTxn, WriteTxn
    from commitdb.types import Attachment

__all__ = ("COMMIT_TABLES", "CommitDatabase", "CommitRecord", "DocEntry", "history_step")

COMMIT_TABLES = ("meta", "commits", "nephews", "docs", *BLOB_TABLES)
FORMAT = b"commitdb-commit/2"
_HEAD = b"h:"  # meta: heads
_SEQ = b"~"  # meta: creation sequences and child links (sorts after every name)
_COUNTERS = b"counters"  # meta: next seq, data version, last commit (see _counters)
INVALID = CommitId.INVALID

# snapshot markers inside a docs entry
SNAP_UNKNOWN = None  # not computed (commit imported by sync): replay to know
SNAP_ABSENT = False  # the document does not exist after this commit
SNAP_IN_OPS = 1  # the ops are a single Document_Set: the snapshot is that value
_NO_OPS = b"\x90"  # the (empty) opcode list of a derived entry


_KINDS: tuple[CommitKind, ...] = tuple(CommitKind)  # indexed by code
_ZERO_ID = bytes(32)


class CommitRecord:
    """A commit's links with the engine's bookkeeping, decoded as far as it is used.

    The links (``commit_id``, ``parent_commit_id``, ``target_commit_id``, ``kind``) are read
    from fixed offsets of the stored form when it has the canonical layout, which is all a
    linearization needs; the rest (sequence, height, flags, timestamp) is decoded on first
    use, and the full :attr:`header` only when asked for. A record serves as the header
    lookup of :mod:`commitdb.dag`.
    """

    __slots__ = (
        "_header",
        "_raw",
        "_rest",
        "commit_id",
        "kind",
        "parent_commit_id",
        "target_commit_id",
    )

    def __init__(
        self,
        commit_id: CommitId,
        parent_commit_id: CommitId,
        target_commit_id: CommitId,
        kind: CommitKind,
        raw: bytes | None,
        rest: _Rest | None,
        header: CommitHeader | None = None,
    ) -> None:
        self.commit_id = commit_id
        self.parent_commit_id = parent_commit_id
        self.target_commit_id = target_commit_id
        self.kind = kind
        self._raw = raw  # the stored form, while `_rest` or `_header` is not decoded
        # (timestamp, seq, height, simple, clean, snapshots, depth, jump)
        self._rest = rest
        self._header = header

    def _fields(self) -> _Rest:
        rest = self._rest
        if rest is None:
            assert self._raw is not None
            w = unpack(self._raw)
            if (
                type(w) is list
                and len(w) >= 10
                and type(w[4]) is str
                and type(w[5]) is float
                and type(w[6]) is str
            ):
                # the links were checked when the record was loaded; the header is built
                # only if asked for
                n = len(w)
                rest = (w[5], w[7], w[8], w[9], w[10] is True if n > 10 else bool(w[9]),
                        n > 11 and w[11] is True, *_skip(w))  # fmt: skip
            else:
                full = _parse_record(self.commit_id, self._raw)  # raises what is wrong
                rest = full._rest
                assert rest is not None
                self._header = full._header
            self._rest = rest
        return rest

    @property
    def timestamp(self) -> float:
        """The header's timestamp."""
        return self._fields()[0]

    @property
    def seq(self) -> int:
        """Creation sequence (parents come first)."""
        return self._fields()[1]

    @property
    def height(self) -> int:
        """Longest path to a root through parent and target links."""
        return self._fields()[2]

    @property
    def simple(self) -> bool:
        """A chain of Mutations commits down to the root: no merge, no mask."""
        return self._fields()[3]

    @property
    def clean(self) -> bool:
        """Every commit of the parent chain down to the root, this one included, is a
        Mutations commit or a merge with snapshots (see the module documentation)."""
        return self._fields()[4]

    @property
    def snapshots(self) -> bool:
        """A merge that stored the derived entries of what it brought."""
        return self._fields()[5]

    @property
    def depth(self) -> int | None:
        """Parent links down to the root (None: written before depths were kept)."""
        return self._fields()[6]

    @property
    def jump(self) -> CommitId | None:
        """The skip pointer: a first-parent ancestor, or the commit itself at a root."""
        return self._fields()[7]

    @property
    def header(self) -> CommitHeader:
        """The commit's header."""
        h = self._header
        if h is None:
            self._fields()
            h = self._header
            if h is None:
                assert self._raw is not None
                h = self._header = CommitHeader.from_wire(unpack(self._raw)[:7])
        self._raw = None
        return h

    @property
    def transparent(self) -> bool:
        """True when a document without an entry at this commit is as after its parent."""
        return self.kind is CommitKind.MUTATIONS or self._fields()[5]

    @classmethod
    def from_header(
        cls,
        header: CommitHeader,
        seq: int,
        height: int,
        simple: bool,
        clean: bool = False,
        snapshots: bool = False,
        depth: int | None = None,
        jump: CommitId | None = None,
    ) -> CommitRecord:
        """A record of a header and its bookkeeping."""
        rest: _Rest = (header.timestamp, seq, height, simple, clean, snapshots, depth, jump)
        return cls(
            header.commit_id,
            header.parent_commit_id,
            header.target_commit_id,
            header.kind,
            None,
            rest,
            header,
        )

    def to_wire(self) -> list[Any]:
        """The stored form: the header's wire form, seq, height, simple, clean, snapshots,
        depth and jump."""
        f = self._fields()
        jump = f[7]
        return [*self.header.to_wire(), *f[1:6], f[6], None if jump is None else bytes(jump)]


_Rest = tuple[float, int, int, bool, bool, bool, int | None, CommitId | None]


def _skip(w: list[Any]) -> tuple[int | None, CommitId | None]:
    """Depth and jump of a decoded record (None, None when it has none)."""
    if len(w) > 13 and type(w[12]) is int and type(w[13]) is bytes and len(w[13]) == 32:
        return w[12], _NEW(CommitId, w[13])
    return None, None


_BIN32 = 0xC420  # msgpack bin8 of 32 bytes
# fixarray header, then three bin8(32) (commit id, parent, target), then the kind (a fixint)
_LINKS = struct.Struct(">BH32sH32sH32sB")
_NEW = bytes.__new__


def _load_record(commit_id: CommitId, raw: bytes) -> CommitRecord:
    """A record from its stored form, its links read at their fixed offsets when the layout
    is the canonical one (a fixarray of 10 or 12 starting with three 32-byte bins and the
    kind), else fully decoded (DecodeError when it is malformed)."""
    if len(raw) > _LINKS.size:
        head, b0, cid, b1, parent, b2, target, kind = _LINKS.unpack_from(raw)
        if (
            b0 == b1 == b2 == _BIN32
            and kind < 4
            and (head == 0x9E or head == 0x9C or head == 0x9A)
            and cid == commit_id
        ):
            return CommitRecord(
                commit_id if type(commit_id) is CommitId else _NEW(CommitId, cid),
                INVALID if parent == _ZERO_ID else _NEW(CommitId, parent),
                INVALID if target == _ZERO_ID else _NEW(CommitId, target),
                _KINDS[kind],
                raw,
                None,
            )
    return _parse_record(commit_id, raw)


def _parse_record(commit_id: CommitId, raw: bytes) -> CommitRecord:
    """Decode a stored commit record in full (DecodeError when it is malformed)."""
    w = unpack(raw)
    try:
        header = CommitHeader.from_wire(w[:7])
        rest = (
            header.timestamp,
            w[7],
            w[8],
            w[9],
            # written before the flags existed: clean only if simple, no snapshots
            w[10] is True if len(w) > 10 else bool(w[9]),
            len(w) > 11 and w[11] is True,
            *_skip(w),
        )
    except (IndexError, TypeError) as exc:
        raise DecodeError(f"corrupt commit record {commit_id.hex()}: {exc}") from None
    return CommitRecord(
        header.commit_id,
        header.parent_commit_id,
        header.target_commit_id,
        header.kind,
        None,
        rest,
        header,
    )


@dataclass(frozen=True, slots=True)
class DocEntry:
    """One commit's opcodes for one document, with the document's snapshot after it."""

    commit_id: CommitId
    seq: int
    ops: bytes
    snapshot: bytes | bool | int | None
    touches: int  # number of commits touching this document in lin(commit), this one included
    all_enabled: bool  # every such commit was enabled when the snapshot was taken
    resets: bool  # the ops contain a Document_Set or Document_Delete
    history: int | None = None  # digest of those commits in order (None: unknown)
    derived: bool = False  # a merge snapshot: no opcodes, not a commit touching the document

    def snapshot_bytes(self) -> bytes | None:
        """Encoded document after this commit (None if absent or unknown)."""
        s = self.snapshot
        if type(s) is int:  # SNAP_IN_OPS
            return self.ops[3:]  # b"\x91\x92\x00" + encoded value
        if type(s) is bytes:
            return s
        return None

    @property
    def snapshot_known(self) -> bool:
        """False when the snapshot was never computed (the commit came from a sync)."""
        return self.snapshot is not SNAP_UNKNOWN


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _counters(raw: bytes | None) -> tuple[int, int, CommitId | None]:
    """The meta ``counters`` value: the next creation sequence (the number of commits), the
    data version (bumped by every write) and the last commit (see
    :meth:`CommitDatabase.last_commit_id`), packed as u64be ‖ u64be ‖ commit id (absent while
    there is no commit)."""
    if raw is None or len(raw) < 16:
        return 0, 0, None
    return (
        int.from_bytes(raw[:8], "big"),
        int.from_bytes(raw[8:16], "big"),
        _NEW(CommitId, raw[16:48]) if len(raw) >= 48 else None,
    )


EntryFields = tuple[bytes, bytes, Any, int, bool, bool, "int | None", bool]
"""A stored ``docs`` entry: commit id, ops, snapshot, touches, all_enabled, resets, history,
derived (the fields of :class:`DocEntry` but the sequence, in a plain tuple)."""


def entry_fields(raw: bytes) -> EntryFields:
    """Decode a stored ``docs`` entry (DecodeError when it is malformed)."""
    # The common entry, a single Document_Set: [cid (bin 32), ops (bin8 or bin16),
    # SNAP_IN_OPS, ...] is read in place, leaving its ops (the document) undecoded.
    if raw[:3] == b"\x97\xc4\x20" and len(raw) > 38:
        head = raw[35]
        if head == 0xC4:
            start = 37
            end = start + raw[36]
        elif head == 0xC5:
            start = 38
            end = start + int.from_bytes(raw[36:38], "big")
        else:
            end = 0
        if end and raw[end : end + 1] == b"\x01":
            try:
                tail = msgpack_unpack(b"\x94" + raw[end + 1 :])  # the 4 small fields after
            except Exception:  # malformed: the generic path says how
                tail = None
            if type(tail) is list:
                touches, all_enabled, resets, history = tail
                return (
                    raw[3:35],
                    raw[start:end],
                    SNAP_IN_OPS,
                    touches,
                    all_enabled,
                    resets,
                    history if type(history) is int else None,
                    False,
                )
    w = unpack(raw)
    try:
        cid, ops, snap, touches, all_enabled, resets, *rest = w
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"corrupt document entry: {exc}") from None
    if type(cid) is not bytes or len(cid) != 32:
        raise DecodeError("corrupt document entry: the commit id is not 32 bytes")
    # entries written before the digest (or in another form of it): unknown
    history = rest[0] if rest and type(rest[0]) is int else None
    return cid, ops, snap, touches, all_enabled, resets, history, len(rest) > 1 and rest[1] is True


def snapshot_of(fields: EntryFields) -> bytes | None:
    """Encoded document after the entry's commit (None if absent or unknown); see
    :meth:`DocEntry.snapshot_bytes`."""
    s = fields[2]
    if type(s) is int:  # SNAP_IN_OPS
        return fields[1][3:]  # b"\x91\x92\x00" + encoded value
    if type(s) is bytes:
        return s
    return None


EMPTY_HISTORY = 0
"""The history digest of a document no commit touched."""

_HISTORY_FACTOR = 0x9E3779B97F4A7C15  # odd: multiplying by it is a bijection modulo 2**64
_U64_MASK = (1 << 64) - 1


def history_step(history: int, commit_id: bytes) -> int:
    """The history digest after one more commit touching the document.

    A polynomial hash, modulo 2**64, of the ordered commit ids: equal digests mean the same
    commits in the same order (commit ids are SHA-256 digests, so two orders of the same
    commits collide with probability about 2**-62), which is what makes a stored snapshot
    valid for another state. It costs a multiplication per commit, not a hash call: reads
    compute it over a document's entries.
    """
    return (history * _HISTORY_FACTOR + int.from_bytes(commit_id[:8], "little")) & _U64_MASK


_LOGIN_NAME: list[str] = []


def _author() -> str:
    """COMMITDB_AUTHOR, else the login name (``getpass.getuser()``, asked once per process:
    it reads several environment variables and may read the user database, which cost a
    few percent of a small commit)."""
    env = os.environ.get("COMMITDB_AUTHOR")
    if env:
        return env
    if not _LOGIN_NAME:
        try:
            name = getpass.getuser()
        except Exception:  # no user database in some containers
            name = ""
        _LOGIN_NAME.append(name)
    return _LOGIN_NAME[0]


class CommitDatabase:
    """An embedded commit database on LMDB (or in memory)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._get = getter(storage)  # one-key reads, each in a read transaction of its own
        self._blobs = BlobStore(storage, self._bump)
        self._records: dict[bytes, CommitRecord] = {}
        self._lin_cache: dict[CommitId, Linearization] = {}
        self._states: OrderedDict[CommitId, CommitState] = OrderedDict()
        with storage.read() as txn:
            fmt = txn.get("meta", b"format")
            if fmt != FORMAT:
                if fmt is not None and fmt.startswith(b"commitdb-commit/"):
                    raise CorruptDatabaseError(
                        f"{storage.path} is a commitdb commit database of another layout "
                        f"({fmt.decode(errors='replace')}; this version reads {FORMAT.decode()})"
                    )
                raise CorruptDatabaseError(
                    f"{storage.path} is not a commitdb commit database (format {fmt!r})"
                )
            self._uuid = uuid.UUID(bytes=txn.get("meta", b"uuid") or bytes(16))
            self._documentation = (txn.get("meta", b"documentation") or b"").decode()
            self._defs_raw = txn.get("meta", b"definitions") or b""
        self._defs = decode_definitions(self._defs_raw) if self._defs_raw else Definitions()

    # -- factories ------------------------------------------------------------------------
    @classmethod
    def _initialize(
        cls, storage: Storage, definitions: Definitions | None, documentation: str | None
    ) -> CommitDatabase:
        with storage.write() as txn:
            txn.put("meta", b"format", FORMAT)
            txn.put("meta", b"uuid", uuid.uuid4().bytes)
            txn.put("meta", b"documentation", (documentation or "").encode())
            txn.put("meta", b"definitions", encode_definitions(definitions or Definitions()))
            txn.put("meta", _COUNTERS, _u64(0) + _u64(0))
        return cls(storage)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        definitions: Definitions | None = None,
        *,
        documentation: str | None = None,
        durable: bool = True,
    ) -> CommitDatabase:
        """Create a new database at `path` (fails if it exists)."""
        storage = LmdbStorage.create(os.fspath(path), COMMIT_TABLES, durable=durable)
        try:
            return cls._initialize(storage, definitions, documentation)
        except BaseException:
            storage.close()
            raise

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, readonly: bool = False, durable: bool = True
    ) -> CommitDatabase:
        """Open an existing database (fails if missing or not a commit database)."""
        storage = LmdbStorage.open(
            os.fspath(path), COMMIT_TABLES, readonly=readonly, durable=durable
        )
        try:
            return cls(storage)
        except BaseException:
            storage.close()
            raise

    @classmethod
    def create_in_memory(
        cls, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> CommitDatabase:
        """A database that lives in memory only (tests, scratch work)."""
        return cls._initialize(MemoryStorage(COMMIT_TABLES), definitions, documentation)

    @staticmethod
    def is_compatible(path: str | os.PathLike[str]) -> bool:
        """True if `path` holds a commitdb commit database."""
        try:
            db = CommitDatabase.open(path, readonly=True)
        except (CommitDBError, OSError):
            return False
        db.close()
        return True

    # -- metadata and lifecycle ------------------------------------------------------------
    def close(self) -> None:
        """Close the database; further calls raise DatabaseClosedError."""
        self._storage.close()
        self._states.clear()
        self._lin_cache.clear()

    def is_closed(self) -> bool:
        """True once closed."""
        return self._storage.closed

    def __enter__(self) -> CommitDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path(self) -> str:
        """The database path ('InMemory' for memory databases)."""
        return self._storage.path

    def in_memory(self) -> bool:
        """True for a memory database."""
        return self._storage.in_memory

    def uuid(self) -> uuid.UUID:
        """The uuid generated at creation."""
        return self._uuid

    def documentation(self) -> str:
        """The documentation given at creation."""
        return self._documentation

    def codec_name(self) -> str:
        """The value codec ('msgpack-canonical')."""
        return "msgpack-canonical"

    def __repr__(self) -> str:
        return f"<CommitDatabase {self.path()}>"

    # -- definitions ----------------------------------------------------------------------
    def _refresh_definitions(self, txn: ReadTxn) -> None:
        raw = txn.get("meta", b"definitions") or b""
        if raw != self._defs_raw:
            self._defs = decode_definitions(raw)
            self._defs_raw = raw

    def definitions(self) -> Definitions:
        """The definitions of the database (a snapshot: ask again after extending)."""
        raw = self._get("meta", b"definitions") or b""
        if raw != self._defs_raw:
            self._defs = decode_definitions(raw)
            self._defs_raw = raw
        return self._defs

    def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Add types and attachments (additive only; a conflict raises and adds nothing)."""
        with self._storage.write() as txn:
            self._refresh_definitions(txn)
            merged = self._defs.copy()
            info = merged.extend(definitions)
            if info.count():
                raw = encode_definitions(merged)
                txn.put("meta", b"definitions", raw)
                self._bump(txn)
                self._defs, self._defs_raw = merged, raw
        return info

    def definitions_hexdigest(self) -> str:
        """Digest of the definitions (the sync comparison key)."""
        return self.definitions().hexdigest()

    # -- records --------------------------------------------------------------------------
    def _record(
        self, commit_id: CommitId, txn: ReadTxn | None = None, remember: bool = True
    ) -> CommitRecord:
        """The record of a stored commit (UnknownCommitError if there is none).

        ``remember=False`` inside a write transaction: a record read there may belong to a
        commit of the same, not yet committed, transaction, and must not be cached before
        the transaction commits (a refused batch would leave a commit that does not exist
        in the cache)."""
        rec = self._records.get(commit_id)
        if rec is not None:
            return rec
        if txn is None:
            raw = self._get("commits", commit_id)
        else:
            raw = txn.get("commits", commit_id)
        if raw is None:
            raise UnknownCommitError(f"missing commit {commit_id.hex()}")
        rec = _load_record(commit_id, raw)
        if remember:
            self._remember(rec)
        return rec

    def _remember(self, rec: CommitRecord) -> None:
        """Cache a record (records never change once their commit is stored)."""
        records = self._records
        if len(records) >= 200_000:
            del records[next(iter(records))]  # the oldest: dicts keep insertion order
        records[rec.commit_id] = rec

    def _header(self, commit_id: CommitId) -> CommitHeader:
        return self._record(commit_id).header

    def _check_id(self, commit_id: object) -> CommitId:
        if isinstance(commit_id, CommitId):
            return commit_id
        if isinstance(commit_id, bytes | bytearray) and len(commit_id) == 32:
            return CommitId(commit_id)
        if isinstance(commit_id, str):
            try:
                return CommitId.from_hex(commit_id)
            except ValueError as exc:
                raise CommitError(str(exc)) from None
        raise CommitError(f"expected a CommitId, got {type(commit_id).__name__}")

    # -- DAG queries ----------------------------------------------------------------------
    def commit_ids(self) -> set[CommitId]:
        """Every commit id."""
        with self._storage.read() as txn:
            return {CommitId(k) for k in txn.keys("commits") if len(k) == 32}

    def commit_ids_in_order(self) -> list[CommitId]:
        """Every commit id in creation order (parents always before children)."""
        with self._storage.read() as txn:
            return [CommitId(v) for k, v in txn.items("meta", _SEQ) if len(k) == 9]

    def commits_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, CommitId]]:
        """(creation sequence, id) of the commits created at or after `seq`, oldest first
        (the change feed used by live notifications and incremental sync)."""
        out: list[tuple[int, CommitId]] = []
        with self._storage.read() as txn:
            for k, v in txn.items("meta", _SEQ, start=_SEQ + _u64(max(seq, 0))):
                if len(k) != 9:
                    continue  # a child link
                out.append((int.from_bytes(k[1:], "big"), CommitId(v)))
                if len(out) >= limit:
                    break
        return out

    def head_commit_ids(self) -> set[CommitId]:
        """Commits that are neither a parent nor a merge target."""
        with self._storage.read() as txn:
            return {CommitId(k[2:]) for k in txn.keys("meta", _HEAD)}

    def children_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Commits whose parent is `commit_id`."""
        cid = self._check_id(commit_id)
        with self._storage.read() as txn:
            try:
                prefix = _SEQ + _u64(self._record(cid, txn).seq)
            except UnknownCommitError:
                return set()
            get = txn.get
            out = set()
            for k in txn.keys("meta", prefix):
                if len(k) == 17:
                    child = get("meta", _SEQ + k[9:])
                    if child is None:
                        raise CorruptDatabaseError(f"commit {cid.hex()} has a lost child")
                    out.add(CommitId(child))
            return out

    def nephew_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Merge commits whose target is `commit_id`."""
        cid = self._check_id(commit_id)
        with self._storage.read() as txn:
            return {CommitId(k[32:]) for k in txn.keys("nephews", bytes(cid))}

    def first_commit_id(self) -> CommitId | None:
        """The first commit in creation order (None if empty)."""
        with self._storage.read() as txn:
            for k, v in txn.items("meta", _SEQ):
                if len(k) == 9:
                    return CommitId(v)
        return None

    def last_commit_id(self) -> CommitId | None:
        """The commit with the greatest timestamp, ties going to the most recently stored."""
        with self._storage.read() as txn:
            raw = txn.get("meta", _COUNTERS)
        return CommitId(raw[16:48]) if raw and len(raw) >= 48 else None

    def commit_exists(self, commit_id: CommitId) -> bool:
        """True if the commit is stored."""
        cid = self._check_id(commit_id)
        if cid in self._records:
            return True
        with self._storage.read() as txn:
            return txn.has("commits", cid)

    def commit_header(self, commit_id: CommitId) -> CommitHeader:
        """The header of a commit (UnknownCommitError if absent)."""
        return self._header(self._check_id(commit_id))

    def commit_count(self) -> int:
        """Number of commits."""
        # commits are never removed: their count is the next creation sequence
        with self._storage.read() as txn:
            return _counters(txn.get("meta", _COUNTERS))[0]

    def is_ancestor(self, ancestor: CommitId, descendant: CommitId) -> bool:
        """True if `ancestor` is reachable from `descendant` through parent and merge-target
        links (reflexive)."""
        a = self._check_id(ancestor)
        d = self._check_id(descendant)
        ra = self._record(a)
        self._record(d)
        seen: set[CommitId] = set()
        stack = [d]
        while stack:
            c = stack.pop()
            if c == a:
                return True
            if c in seen or not c.is_valid:
                continue
            seen.add(c)
            rc = self._record(c)
            if rc.height < ra.height:
                continue
            stack.append(rc.parent_commit_id)
            if rc.kind == CommitKind.MERGE:
                stack.append(rc.target_commit_id)
        return False

    def is_mergeable(self, parent: CommitId, target: CommitId) -> bool:
        """True if the two commits have diverged (neither is an ancestor of the other)."""
        return not self.is_ancestor(parent, target) and not self.is_ancestor(target, parent)

    def linearization(self, commit_id: CommitId) -> list[CommitId]:
        """The linearized history of a commit (engine spec §5.2)."""
        cid = self._check_id(commit_id)
        return list(self._linearize(cid).order)

    def _linearize(self, commit_id: CommitId) -> Linearization:
        cache = self._lin_cache
        if len(cache) > 256:
            cache.clear()
        found = cache.get(commit_id)
        if found is not None:
            return found
        # one read transaction for every record the walk loads
        records = self._records
        with self._storage.read() as txn:
            get = txn.get

            def lookup(c: CommitId) -> CommitRecord:
                rec = records.get(c)
                if rec is None:
                    raw = get("commits", c)
                    if raw is None:
                        raise UnknownCommitError(f"missing commit {c.hex()}")
                    rec = _load_record(c, raw)
                    self._remember(rec)
                return rec

            return linearize(commit_id, lookup, cache)

    def enabled_by_commit_id(self, commit_id: CommitId) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history of `commit_id`."""
        cid = self._check_id(commit_id)
        lin = self._linearize(cid)
        flags = mask(lin, self._record)
        return {c: flags.get(c, True) for c in lin.order}

    # -- commits --------------------------------------------------------------------------
    def commit_mutations(
        self, label: str, mutable_state: CommitMutableState, *, author: str | None = None
    ) -> CommitId:
        """Append a Mutations commit of the mutable state's program on its base commit.

        The mutable state is sealed afterwards: further mutation or a second commit raises.
        """
        return mutable_state._commit_into(self, label, author)

    def commit_program(
        self, label: str, base: CommitId | None, program: bytes, *, author: str | None = None
    ) -> CommitId:
        """Append a Mutations commit of an encoded program (e.g. received from a client) on
        `base` (None or INVALID: a root commit).

        Every opcode is checked against the definitions, as decoding the program does; a
        whole-document set given in its canonical encoding is recorded as received, the
        other opcodes by their canonical encoding. Nothing is written when one is refused.

        Raises:
            DecodeError: Malformed program bytes, or an opcode or value that is not valid.
            UnknownAttachmentError: An address naming an unknown attachment.
            UnknownCommitError: `base` is not stored.
            MissingBlobError: The program references a blob that is not stored.
        """
        from commitdb.codec import decode_canonical, may_hold_blob_ids
        from commitdb.mutable_state import _SET_PREFIX, CommitMutableState
        from commitdb.opcodes import Op, op_from_wire, split_address

        if type(program) is not bytes:
            raise DecodeError("a program is bytes")
        defs = self.definitions()
        w = unpack(program)
        if type(w) is not list:
            raise DecodeError("malformed program")
        # everything is checked before the base state is looked at (as decoding it first)
        checked: list[tuple[Attachment, DocAddress, Op, bytes | None]] = []
        add = checked.append
        for entry in w:
            if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not bytes:
                raise DecodeError("malformed program entry")
            address, ops_w = entry
            att, _ = split_address(address, defs)
            if type(ops_w) is not list:
                raise DecodeError("malformed opcode list")
            t = att.document_type
            for x in ops_w:
                if type(x) is list and len(x) == 2 and type(x[0]) is int and x[0] == 0:
                    # a whole-document set: checked, and kept as received when canonical
                    data = pack(x[1])
                    value, canonical = decode_canonical(data, t, defs)
                    op = Op(OpKind.DOCUMENT_SET, value=value)
                    add((att, address, op, data if canonical else None))
                else:
                    add((att, address, op_from_wire(x, t, defs), None))
        ms = CommitMutableState(self.state(base))
        for att, address, op, encoded in checked:
            if encoded is None:
                ms._record(att, address, op)
            elif may_hold_blob_ids(att.document_type):
                ms._record(att, address, op, _SET_PREFIX + encoded)
            else:
                ms._record_set(att, address, encoded)
        return ms._commit_into(self, label, author)

    def _write_mutations(
        self,
        label: str,
        base: CommitId,
        entries: Sequence[tuple[DocAddress, bytes, Any, int, bool, bool, int | None]],
        blob_ids: set[BlobId],
        author: str | None,
    ) -> CommitId:
        """Write a Mutations commit; entries are (address, ops bytes, snapshot, touches,
        all_enabled, resets, history digest of the base or None)."""
        program = program_bytes([(e[0], e[1]) for e in entries])
        cid = compute_commit_id(base, CommitKind.MUTATIONS, INVALID, program)
        header = CommitHeader(
            cid,
            base,
            INVALID,
            CommitKind.MUTATIONS,
            label,
            time.time(),
            _author() if author is None else author,
        )
        raw_cid = bytes(cid)
        with self._storage.write() as txn:
            if txn.has("commits", raw_cid):
                return cid
            # a cached record is a stored commit (commits are never removed)
            if base.is_valid and base not in self._records and not txn.has("commits", base):
                raise UnknownCommitError(f"missing commit {base.hex()}")
            for b in blob_ids:
                if not txn.has("blobs", b):
                    raise MissingBlobError(f"the commit references a missing blob {b.hex()}")
            rec = self._append_commit(txn, header)
            seq = _u64(rec.seq)
            put = txn.put
            step = int.from_bytes(raw_cid[:8], "little")  # history_step, inlined
            for i, (address, ops, snap, touches, all_enabled, resets, base_history) in enumerate(
                entries
            ):
                history = (
                    None
                    if base_history is None
                    else (base_history * _HISTORY_FACTOR + step) & _U64_MASK
                )
                put(
                    "docs",
                    address + seq,
                    pack([raw_cid, ops, snap, touches, all_enabled, resets, history]),
                )
                put("commits", raw_cid + i.to_bytes(4, "big"), address)
        self._remember(rec)
        return cid

    def _append_commit(
        self, txn: WriteTxn, header: CommitHeader, snapshots: bool = False
    ) -> CommitRecord:
        """Write the commit record and DAG indexes; returns the record (the caller caches it
        once the transaction has committed). ``snapshots``: a merge storing derived entries."""
        cid = header.commit_id
        parent = header.parent_commit_id
        kind = header.kind
        seq, version, last = _counters(txn.get("meta", _COUNTERS))
        height = 0
        simple = kind == CommitKind.MUTATIONS
        clean = simple or (kind == CommitKind.MERGE and snapshots)
        depth: int | None = 0
        jump: CommitId | None = cid
        if parent.is_valid:
            prec = self._record(parent, txn, remember=False)
            height = prec.height + 1
            simple = simple and prec.simple
            clean = clean and prec.clean
            depth, jump = self._skip_pointer(prec, txn)
        if kind == CommitKind.MERGE:
            height = max(
                height, self._record(header.target_commit_id, txn, remember=False).height + 1
            )
        rec = CommitRecord.from_header(
            header, seq, height, simple, clean, snapshots and kind == CommitKind.MERGE,
            depth, jump,
        )  # fmt: skip
        put = txn.put
        raw_cid = bytes(cid)
        put("commits", raw_cid, pack(rec.to_wire()))
        seq_bytes = _u64(seq)
        put("meta", _SEQ + seq_bytes, raw_cid)
        if parent.is_valid:
            put("meta", _SEQ + _u64(prec.seq) + seq_bytes, b"")
            txn.delete("meta", _HEAD + parent)
        if kind == CommitKind.MERGE:
            put("nephews", bytes(header.target_commit_id) + bytes(cid), b"")
            txn.delete("meta", _HEAD + header.target_commit_id)
        # A new commit is a head: its children and nephews can only be stored after it.
        put("meta", _HEAD + raw_cid, b"")
        if last is None or header.timestamp >= self._record(last, txn, remember=False).timestamp:
            last = cid
        put("meta", _COUNTERS, _u64(seq + 1) + _u64(version + 1) + bytes(last))
        return rec

    def _skip_pointer(
        self, parent: CommitRecord, txn: ReadTxn
    ) -> tuple[int | None, CommitId | None]:
        """Depth and jump pointer of a child of `parent` (skew-binary skip list: the jump
        goes two jumps up when the parent's two jumps span equal distances, else to the
        parent), or (None, None) when the parent's chain predates skip pointers."""
        d, j = parent.depth, parent.jump
        if d is None or j is None:
            return None, None
        jrec = self._record(j, txn, remember=False)
        jj = jrec.jump
        if jrec.depth is None or jj is None:
            return None, None
        jjrec = self._record(jj, txn, remember=False)
        if jjrec.depth is None:
            return None, None
        if d - jrec.depth == jrec.depth - jjrec.depth:
            return d + 1, jj
        return d + 1, parent.commit_id

    def _ancestor_at_depth(
        self, rec: CommitRecord, depth: int, txn: ReadTxn | None = None
    ) -> CommitRecord | None:
        """The first-parent ancestor of `rec` (itself included) at `depth`, in O(log n)
        record loads; None when there is none or a record on the way has no skip pointer."""
        u = rec
        while True:
            d = u.depth
            if d is None:
                return None
            if d <= depth:
                return u if d == depth else None
            j = u.jump
            if j is None:
                return None
            jrec = self._record(j, txn)
            jd = jrec.depth
            if jd is not None and jd >= depth and jd < d:
                u = jrec
            else:
                u = self._record(u.parent_commit_id, txn)

    @staticmethod
    def _bump(txn: WriteTxn) -> None:
        raw = txn.get("meta", _COUNTERS) or bytes(16)
        v = int.from_bytes(raw[8:16], "big")
        txn.put("meta", _COUNTERS, raw[:8] + _u64(v + 1) + raw[16:])

    def _structural_commit(
        self, kind: CommitKind, label: str, parent: CommitId, target: CommitId, author: str | None
    ) -> CommitId:
        parent = self._check_id(parent)
        target = self._check_id(target)
        if not self.commit_exists(parent):
            raise UnknownCommitError(f"missing commit {parent.hex()}")
        if not self.commit_exists(target):
            raise UnknownCommitError(f"missing commit {target.hex()}")
        if kind == CommitKind.MERGE and not self.is_mergeable(parent, target):
            raise CommitError(
                f"{parent.hex()[:12]} and {target.hex()[:12]} are not mergeable "
                "(one is the ancestor of the other)"
            )
        cid = compute_commit_id(parent, kind, target, b"")
        header = CommitHeader(
            cid, parent, target, kind, label, time.time(), _author() if author is None else author
        )
        snaps = None
        if kind == CommitKind.MERGE and not self.commit_exists(cid):
            snaps = self._merge_snapshots(parent, target)
        rec = None
        with self._storage.write() as txn:
            if not txn.has("commits", cid):
                rec = self._append_commit(txn, header, snapshots=snaps is not None)
                if snaps:
                    seq = _u64(rec.seq)
                    raw_cid = bytes(cid)
                    for address, snap, touches, all_enabled, history in snaps:
                        txn.put(
                            "docs",
                            address + seq,
                            pack([raw_cid, _NO_OPS, snap, touches, all_enabled, False, history,
                                  True]),
                        )  # fmt: skip
        if rec is not None:
            self._remember(rec)
        return cid

    def _merge_snapshots(
        self, parent: CommitId, target: CommitId
    ) -> list[tuple[DocAddress, Any, int, bool, int | None]] | None:
        """The derived entries of a merge of `target` into `parent`: (address, snapshot,
        touches, all_enabled, history) of every document the brought commits touched, or
        None when the merge cannot have them (see :meth:`CommitState._merge_snapshots`)."""
        from commitdb.state import CommitState

        return CommitState(self, INVALID, virtual_merge=(parent, target))._merge_snapshots()

    def merge_commit(
        self, label: str, parent: CommitId, target: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Merge of `target` into `parent` (the target's operations win)."""
        return self._structural_commit(CommitKind.MERGE, label, parent, target, author)

    def disable_commit(
        self, label: str, parent: CommitId, disabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Disable commit on `parent` that masks `disabled`."""
        return self._structural_commit(CommitKind.DISABLE, label, parent, disabled, author)

    def enable_commit(
        self, label: str, parent: CommitId, enabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append an Enable commit on `parent` that unmasks `enabled`."""
        return self._structural_commit(CommitKind.ENABLE, label, parent, enabled, author)

    # -- documents index (used by CommitState) ---------------------------------------------
    @staticmethod
    def _entry(key: bytes, raw: bytes) -> DocEntry:
        cid, ops, snap, touches, all_enabled, resets, history, derived = entry_fields(raw)
        return DocEntry(
            bytes.__new__(CommitId, cid),
            int.from_bytes(key[48:], "big"),
            ops,
            snap,
            touches,
            all_enabled,
            resets,
            history,
            derived,
        )

    def _addresses(self, prefix: bytes, txn: ReadTxn) -> list[DocAddress]:
        """Distinct document addresses under a prefix (an attachment id, usually)."""
        out: list[DocAddress] = []
        last = b""
        for k in txn.keys("docs", prefix):
            a = k[:48]
            if a != last:
                out.append(a)
                last = a
        return out

    def _read(self) -> Any:
        return self._storage.read()

    # -- states ---------------------------------------------------------------------------
    def state(self, commit_id: CommitId | None) -> CommitState:
        """The reconstructed state at a commit (None or INVALID: the initial state)."""
        from commitdb.state import CommitState

        if commit_id is None:
            return self.initial_state()
        cid = self._check_id(commit_id)
        if not cid.is_valid:
            return self.initial_state()
        st = self._states.get(cid)
        if st is not None:
            self._states.move_to_end(cid)
            return st
        st = CommitState(self, cid)
        self._states[cid] = st
        if len(self._states) > 64:
            self._states.popitem(last=False)
        return st

    def initial_state(self) -> CommitState:
        """The empty state before the first commit."""
        from commitdb.state import CommitState

        return CommitState(self, INVALID)

    def merge_state(self, ours: CommitId, theirs: CommitId) -> CommitState:
        """The state a merge of `theirs` into `ours` would produce, without writing it."""
        from commitdb.state import CommitState

        ours = self._check_id(ours)
        theirs = self._check_id(theirs)
        if not self.is_mergeable(ours, theirs):
            raise CommitError("not mergeable (one is the ancestor of the other)")
        return CommitState(self, INVALID, virtual_merge=(ours, theirs))

    # -- blobs ----------------------------------------------------------------------------
    def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob (content-addressed, idempotent)."""
        blob_id = self._blobs.create(data, layout)
        return blob_id

    def blob_stream(self, layout: BlobLayout | None = None, size: int | None = None) -> BlobStream:
        """Start a streamed blob upload; ``close()`` returns the id."""
        return self._blobs.stream(layout, size)

    def blob(self, blob_id: BlobId) -> bytes | None:
        """A whole blob, or None."""
        return self._blobs.get(blob_id)

    def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """A range of a blob."""
        return self._blobs.read(blob_id, size, offset)

    def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None."""
        return self._blobs.info(blob_id)

    def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the known blobs among `blob_ids`."""
        return self._blobs.infos(blob_ids)

    def blob_ids(self) -> set[BlobId]:
        """Every stored blob id."""
        return self._blobs.ids()

    def blob_statistics(self) -> BlobStatistics:
        """Count and sizes of stored blobs."""
        return self._blobs.statistics()

    def unknown_blob_ids(self, blob_ids: Iterable[BlobId]) -> set[BlobId]:
        """The ids among `blob_ids` that are not stored."""
        return self._blobs.unknown(blob_ids)

    def blob_datas(self, blob_ids: Iterable[BlobId]) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """(id, layout, bytes) of the known blobs among `blob_ids`."""
        return self._blobs.datas(blob_ids)

    def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs in one transaction; returns the ids actually added."""
        return self._blobs.create_blobs(blobs)

    # -- transport (CommitDatabasing driver level) -----------------------------------------
    def data_version(self) -> int:
        """A counter bumped by every write (commits, blobs, definitions)."""
        with self._storage.read() as txn:
            return _counters(txn.get("meta", _COUNTERS))[1]

    def commit_data(self, commit_id: CommitId) -> CommitData:
        """Header and program bytes of a commit."""
        cid = self._check_id(commit_id)
        header = self._header(cid)
        with self._storage.read() as txn:
            addresses = [a for k, a in txn.items("commits", bytes(cid)) if len(k) == 36]
            rec = self._record(cid, txn)
            entries = []
            for a in addresses:
                raw = txn.get("docs", a + _u64(rec.seq))
                if raw is None:
                    raise CorruptDatabaseError(f"commit {cid.hex()} lost a document entry")
                entries.append((a, self._entry(a + _u64(rec.seq), raw).ops))
        program = program_bytes(entries) if header.kind == CommitKind.MUTATIONS else b""
        return CommitData(header, program)

    def commit_datas(self, commit_ids: Iterable[CommitId]) -> list[CommitData]:
        """Commit datas of several commits."""
        return [self.commit_data(c) for c in commit_ids]

    def commit_blob_ids(self, data: CommitData) -> set[BlobId]:
        """Blob ids referenced by a commit's program."""
        from commitdb.opcodes import collect_blob_ids

        if not data.program:
            return set()
        prog = decode_program_checked(data.program, self.definitions())
        return collect_blob_ids(op.value for _, op in prog.all_ops())

    def create_commit_data(self, data: CommitData) -> bool:
        """Store a commit received verbatim (sync); False if it was already there.

        The id is verified against the content, parents must exist, the program must decode
        against the definitions and its blobs must be stored.
        """
        return self.create_commit_datas([data])[0]

    def create_commit_datas(self, datas: Iterable[CommitData]) -> list[bool]:
        """Store several received commits, in order, in ONE write transaction.

        Same checks as :meth:`create_commit_data`; a parent may be an earlier commit of the
        same batch. All or nothing: if one commit is refused, none of the batch is stored.
        Returns, per commit, whether it was added (False: it was already there). One
        durable transaction per batch instead of one per commit is what makes a sync fast.
        """
        prepared: list[tuple[CommitHeader, list[tuple[DocAddress, bytes]], set[BlobId]] | None]
        prepared = []
        batch: set[CommitId] = set()
        for data in datas:
            h = data.header
            if not data.verify():
                raise CommitError(f"commit {h.commit_id.hex()} does not match its content")
            if h.kind != CommitKind.MUTATIONS and data.program:
                raise CommitError(f"a {h.kind.label} commit carries no program")
            if h.commit_id in batch or self.commit_exists(h.commit_id):
                prepared.append(None)
                continue
            for link in (h.parent_commit_id, h.target_commit_id):
                if link.is_valid and link not in batch and not self.commit_exists(link):
                    raise UnknownCommitError(f"missing commit {link.hex()}")
            entries: list[tuple[DocAddress, bytes]] = []
            blob_ids: set[BlobId] = set()
            if data.program:
                from commitdb.opcodes import collect_blob_ids

                defs = self.definitions()
                prog = decode_program_checked(data.program, defs)
                blob_ids = collect_blob_ids(op.value for _, op in prog.all_ops())
                entries = split_program(data.program)
                # The pieces are stored re-packed and commit_data() concatenates them again: a
                # program in a non-canonical msgpack form would come back as other bytes than
                # those its id hashes.
                if program_bytes(entries) != data.program:
                    raise DecodeError(f"commit {h.commit_id.hex()}: the program is not canonical")
            prepared.append((h, entries, blob_ids))
            batch.add(h.commit_id)
        results: list[bool] = []
        records = []
        with self._storage.write() as txn:
            for item in prepared:
                if item is None:
                    results.append(False)
                    continue
                h, entries, blob_ids = item
                if txn.has("commits", h.commit_id):
                    results.append(False)
                    continue
                for b in blob_ids:
                    if not txn.has("blobs", b):
                        raise MissingBlobError(f"the commit references a missing blob {b.hex()}")
                rec = self._append_commit(txn, h)
                for i, (address, ops) in enumerate(entries):
                    resets = _ops_reset(ops)
                    txn.put(
                        "docs",
                        address + _u64(rec.seq),
                        pack([bytes(h.commit_id), ops, SNAP_UNKNOWN, -1, False, resets, None]),
                    )
                    txn.put("commits", bytes(h.commit_id) + i.to_bytes(4, "big"), address)
                records.append(rec)
                results.append(True)
        for rec in records:
            self._remember(rec)
        return results

    # -- navigation helpers ---------------------------------------------------------------
    def reduce_heads(
        self, anchor: CommitId | None = None, *, author: str | None = None
    ) -> CommitId | None:
        """Fold every head into `anchor` (default: the last commit), ascending id order.

        Returns the final merge id, or None when there is at most one head.
        """
        from commitdb.helpers import reduce_heads

        return reduce_heads(self, anchor, author=author)

    def forward(self, commit_id: CommitId) -> CommitId:
        """The single head if there is one, else :meth:`fast_forward`."""
        from commitdb.helpers import forward

        return forward(self, commit_id)

    def fast_forward(self, commit_id: CommitId) -> CommitId:
        """Walk children (then merge nephews), smallest id first, to a head."""
        from commitdb.helpers import fast_forward

        return fast_forward(self, commit_id)

    def flatten(
        self, commit_id: CommitId, path: str | os.PathLike[str], label: str = "flatten"
    ) -> CommitDatabase:
        """A fresh database at `path` holding one commit with the state at `commit_id`,
        and only the blobs that state references."""
        from commitdb.helpers import flatten

        return flatten(self, commit_id, path, label)

    def documents(self, commit_id: CommitId | None) -> Iterator[tuple[Any, Any, Any]]:
        """(attachment, key, document) for every document at a commit."""
        st = self.state(commit_id)
        for att in self.definitions().attachments():
            for key in st.keys(att):
                doc = st.get(att, key)
                if doc is not None:
                    yield att, key, doc


def _ops_reset(ops: bytes) -> bool:
    w = unpack(ops)
    return any(
        type(op) is list and op and op[0] in (OpKind.DOCUMENT_SET, OpKind.DOCUMENT_DELETE)
        for op in w
    )


def decode_program_checked(program: bytes, defs: Definitions) -> Any:
    """Decode a program against definitions (a program that does not decode is refused)."""
    from commitdb.opcodes import decode_program

    try:
        return decode_program(program, defs)
    except (DecodeError, StorageError):
        raise
    except CommitDBError as exc:
        raise DecodeError(f"program does not decode: {exc}") from None
