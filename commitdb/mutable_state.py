"""CommitMutableState: a working copy over a base state that records mutation opcodes.

Each mutator validates first (attachment, key, path, value — nothing is recorded when a call
is refused, and the error names attachment, key, path and type), records its opcode(s), and
applies them at once to the working copy with the replay evaluator, so reads see exactly what
the commit will replay to. ``CommitDatabase.commit_mutations`` seals the state: a further
mutation or a second commit raises instead of silently forking a sibling head.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from commitdb.codec import (
    decode_canonical,
    decode_trusted,
    encode,
    from_wire,
    may_hold_blob_ids,
    pack,
    unpack,
    validated_copy,
    validated_encoding,
)
from commitdb.copier import copier
from commitdb.definitions import Definitions
from commitdb.errors import (
    CommitError,
    PathError,
    UnknownAttachmentError,
    ValidationError,
)
from commitdb.ids import BlobId, CommitId
from commitdb.opcodes import (
    ABSENT,
    DocAddress,
    Op,
    OpKind,
    Program,
    ReplayFailure,
    apply_op,
    collect_blob_ids,
    op_from_wire,
    op_to_wire,
    pack_array_header,
    program_bytes,
)
from commitdb.paths import Path
from commitdb.types import (
    Attachment,
    ConceptType,
    MapType,
    SetType,
    StructureType,
    Type,
    XArrayType,
)
from commitdb.values import END, Key, StructValue, XArray

if TYPE_CHECKING:
    from commitdb.commit_database import CommitDatabase
    from commitdb.state import CommitState

__all__ = ("CommitMutableState", "PreparedCommit")

PathLike = Path | str
_MISSING = object()
_CACHE_LIMIT = 1024
_SET_PREFIX = b"\x92\x00"  # msgpack [DOCUMENT_SET, ...]: what an encoded value follows


_ENCODED: Any = object()
"""The working value of a document set whole: known by its encoding until it is read."""

_ENCODED_SET = Op(OpKind.DOCUMENT_SET)  # shared: an opcode object is never changed


class _Doc:
    """A document of the working copy with what the commit will need to store about it.

    A document set whole keeps only the canonical bytes of its new value (``value`` is
    ``_ENCODED``, ``encoded`` the bytes): they are the opcode's payload and the snapshot, and
    the value is decoded only if the working copy is read or changed further.
    """

    __slots__ = ("all_enabled", "att", "encoded", "history", "ops", "touches", "value")

    def __init__(
        self, att: Attachment, value: Any, touches: int, all_enabled: bool, history: int | None
    ) -> None:
        self.att = att
        self.value = value
        self.encoded: bytes | None = None
        self.touches = touches
        self.all_enabled = all_enabled
        self.history = history
        self.ops: list[tuple[Op, bytes]] = []


class CommitMutableState:
    """A working copy of a base :class:`CommitState` that records opcodes."""

    def __init__(self, base: CommitState) -> None:
        self._base = base
        self._defs: Definitions = base.definitions()
        self._docs: dict[DocAddress, _Doc] = {}
        self._sealed: CommitId | None = None
        # On an empty base (the initial state) every document resolves alike: absent, no
        # touching commit; its (touches, all_enabled, history) is asked for once.
        self._empty_base = getattr(base, "_empty", False) is True
        self._empty_doc: tuple[int, bool, int | None] | None = None
        # id(caller's attachment object) -> (that object, the registered attachment)
        self._atts: dict[int, tuple[object, Attachment]] = {}
        # id(attachment) -> (attachment, {id(concept): (concept, address prefix)})
        self._prefixes: dict[int, tuple[Attachment, dict[int, tuple[Any, bytes]]]] = {}

    # -- identity and reads ---------------------------------------------------------------
    def commit_state(self) -> CommitState:
        """The base state."""
        return self._base

    def base_commit_id(self) -> CommitId:
        """The commit the mutations will be committed on."""
        return self._base.commit_id()

    def definitions(self) -> Definitions:
        """The definitions typing the documents."""
        return self._defs

    def attachment_getting(self) -> CommitMutableState:
        """This object as the read interface (reads see the working copy)."""
        return self

    def attachment_mutating(self) -> CommitMutableState:
        """This object as the mutation interface."""
        return self

    @property
    def sealed(self) -> CommitId | None:
        """The commit id once committed, else None."""
        return self._sealed

    def __repr__(self) -> str:
        return f"<CommitMutableState on {self._base!r}, {len(self.mutations())} opcodes>"

    def _attachment(self, attachment: Attachment | str | uuid.UUID) -> Attachment:
        hit = self._atts.get(id(attachment))
        if hit is not None and hit[0] is attachment:
            return hit[1]
        try:
            att = self._defs.check_attachment(attachment)
        except UnknownAttachmentError:
            fresh = self._base.database().definitions()
            att = fresh.check_attachment(attachment)
            self._defs = fresh
        if len(self._atts) >= _CACHE_LIMIT:
            self._atts.clear()
        self._atts[id(attachment)] = (attachment, att)
        return att

    def _address(self, att: Attachment, key: object, *, write: bool) -> tuple[DocAddress, Key]:
        if type(key) is Key:
            # a concept already accepted for this attachment: only the nil check is left
            cached = self._prefixes.get(id(att))
            if cached is not None and cached[0] is att:
                hit = cached[1].get(id(key.concept))
                if hit is not None and hit[0] is key.concept and (key.id.int or not write):
                    return hit[1] + key.id.bytes, key
        where = f"{att.identifier} key"
        if not isinstance(key, Key):
            raise ValidationError(str(att.key_type), f"{type(key).__name__} {key!r}", where)
        if not att.key_type.accepts_concept(key.concept):
            raise ValidationError(str(att.key_type), f"key of {key.concept}", where)
        if write and key.is_nil:
            raise ValidationError("a key with a valid instance id", "the nil key", where)
        prefix = att.runtime_id.bytes + key.concept.runtime_id.bytes
        cached = self._prefixes.get(id(att))
        if cached is None or cached[0] is not att or len(cached[1]) >= _CACHE_LIMIT:
            if len(self._prefixes) >= _CACHE_LIMIT:
                self._prefixes.clear()
            cached = self._prefixes[id(att)] = (att, {})
        cached[1][id(key.concept)] = (key.concept, prefix)
        return prefix + key.id.bytes, key

    def _current(self, att: Attachment, address: DocAddress) -> Any:
        d = self._docs.get(address)
        if d is not None:
            return self._materialize(d)
        return self._base._resolve(address, att).value

    def _materialize(self, d: _Doc) -> Any:
        """The working value of a document (decoded now if it was only encoded)."""
        v = d.value
        if v is _ENCODED:
            assert d.encoded is not None
            v = d.value = decode_trusted(d.encoded, d.att.document_type, self._defs)
            d.encoded = None
        return v

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document in the working copy, or None."""
        att = self._attachment(attachment)
        address, _ = self._address(att, key, write=False)
        v = self._current(att, address)
        return None if v is ABSENT else copier(att.document_type)(v)

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists in the working copy."""
        att = self._attachment(attachment)
        address, _ = self._address(att, key, write=False)
        d = self._docs.get(address)
        if d is not None:
            return d.value is not ABSENT
        return self._base._resolve(address, att).value is not ABSENT

    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of existing documents in the working copy."""
        att = self._attachment(attachment)
        keys = self._base.keys(att)
        prefix = att.runtime_id.bytes
        for address, d in self._docs.items():
            if address[:16] != prefix:
                continue
            k = self._base._key_of(address)
            if d.value is ABSENT:
                keys.discard(k)
            else:
                keys.add(k)
        return keys

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) of every existing document of an attachment."""
        att = self._attachment(attachment)
        return [(k, self.get(att, k)) for k in sorted(self.keys(att))]

    def mutations(self) -> Program:
        """The recorded program (fresh opcodes, decoded from what was recorded).

        The recorded opcode objects cannot be handed out: the evaluator owns the values it
        applies, so the working copy shares them and later mutations change them in place
        (a ``set`` followed by an ``update`` would show the updated value in the ``set``).
        """
        prog = Program()
        for address, d in self._docs.items():
            doc_type = d.att.document_type
            for _, raw in d.ops:
                prog.record(address, op_from_wire(unpack(raw), doc_type, self._defs))
        return prog

    # -- recording ------------------------------------------------------------------------
    def _doc(self, att: Attachment, address: DocAddress, resets: bool = False) -> _Doc:
        d = self._docs.get(address)
        if d is None:
            if self._empty_base:
                e = self._empty_doc
                if e is None:
                    r = self._base._resolve(address, att)
                    e = self._empty_doc = (r.touches, r.all_enabled, r.history())
                d = _Doc(att, ABSENT, *e)
                self._docs[address] = d
                return d
            r = self._base._resolve(address, att)
            if resets:
                value = ABSENT  # replaced by the opcode at once: no need to materialize it
            else:
                value = r.value if r.value is ABSENT else copier(att.document_type)(r.value)
            d = _Doc(att, value, r.touches, r.all_enabled, r.history())
            self._docs[address] = d
        return d

    def _record(
        self, att: Attachment, address: DocAddress, op: Op, raw: bytes | None = None
    ) -> None:
        """Record an opcode (`raw`: its encoding, when the caller already has it)."""
        if self._sealed is not None:
            raise CommitError(
                f"this mutable state was committed as {self._sealed.hex()}; "
                "build a new one from db.state(commit_id)"
            )
        if raw is None:
            raw = pack(op_to_wire(op, att.document_type))
        kind = op.kind
        resets = kind == OpKind.DOCUMENT_SET or kind == OpKind.DOCUMENT_DELETE
        d = self._doc(att, address, resets)
        d.ops.append((op, raw))
        if d.value is _ENCODED and not resets:
            self._materialize(d)
        d.encoded = None
        try:
            d.value = apply_op(d.value, op)
        except ReplayFailure:
            pass  # recorded, no effect: exactly what replay will do

    def _record_set(self, att: Attachment, address: DocAddress, encoded: bytes) -> None:
        """Record a Document_Set of a value given by its canonical bytes (the document keeps
        them as its working value; see :class:`_Doc`)."""
        if self._sealed is not None:
            raise CommitError(
                f"this mutable state was committed as {self._sealed.hex()}; "
                "build a new one from db.state(commit_id)"
            )
        d = self._doc(att, address, True)
        # The opcode object carries no value: nothing reads it (the program is decoded from
        # the bytes, and a document type that cannot hold a blob id is not searched).
        d.ops.append((_ENCODED_SET, _SET_PREFIX + encoded))
        d.value = _ENCODED
        d.encoded = encoded

    def _path(self, att: Attachment, key: Key, path: PathLike) -> tuple[Path, Type]:
        p = Path.parse(path) if isinstance(path, str) else path
        if not isinstance(p, Path):
            raise PathError(f"expected a Path or its text form, got {type(path).__name__}")
        try:
            p = p.normalize(att.document_type)
            t = p.resolve(att.document_type)
        except PathError as exc:
            raise PathError(f"{att.identifier}[{key.id}]: {exc}") from None
        if not p.is_regular:
            raise PathError(f"{att.identifier}[{key.id}]: {p} is not a regular path")
        return p, t

    @staticmethod
    def _value(value: Any, t: Type, where: str | Callable[[], str]) -> Any:
        """Validate and take a private copy of a value of type `t` (`where`, or the function
        giving it, locates a refused value)."""
        return validated_copy(value, t, where)

    def _where(self, att: Attachment, key: Key, path: Path | None = None) -> str:
        p = "" if path is None or path.is_root else str(path)
        return f"{att.identifier}[{key.id}]{p}"

    def _at(self, att: Attachment, key: Key, path: Path | None = None) -> Callable[[], str]:
        """:meth:`_where`, for when a value is refused (it is only formatted then)."""
        return lambda: self._where(att, key, path)

    # -- mutators -------------------------------------------------------------------------
    def set(self, attachment: Attachment | str, key: Key, value: Any) -> None:
        """Replace (or create) the whole document."""
        att = self._attachment(attachment)
        address, k = self._address(att, key, write=True)
        t = att.document_type
        # validated and encoded once: the encoding is the opcode's payload (and, for a type
        # that cannot hold a blob id, the working value until it is read)
        if may_hold_blob_ids(t):
            v, raw = validated_encoding(value, t, self._at(att, k))
            self._record(att, address, Op(OpKind.DOCUMENT_SET, value=v), _SET_PREFIX + raw)
        else:
            _, raw = validated_encoding(value, t, self._at(att, k), copy=False)
            self._record_set(att, address, raw)

    def delete(self, attachment: Attachment | str, key: Key) -> None:
        """Delete the document (a commitdb extension: ``keys`` no longer lists it)."""
        att = self._attachment(attachment)
        address, _ = self._address(att, key, write=True)
        self._record(att, address, Op(OpKind.DOCUMENT_DELETE))

    def update(self, attachment: Attachment | str, key: Key, path: PathLike, value: Any) -> None:
        """Assign a value at a path (a map key at the end of the path is inserted)."""
        att = self._attachment(attachment)
        address, k = self._address(att, key, write=True)
        p, t = self._path(att, k, path)
        v = self._value(value, t, self._at(att, k, p))
        self._record(att, address, Op(OpKind.DOCUMENT_UPDATE, p, v))

    def _container_op(
        self,
        kind: OpKind,
        attachment: Attachment | str,
        key: Key,
        path: PathLike,
        operand: Any,
        expect: type[Type],
    ) -> None:
        att = self._attachment(attachment)
        address, k = self._address(att, key, write=True)
        p, t = self._path(att, k, path)
        if not isinstance(t, expect):
            raise ValidationError(
                f"a path to a {expect.kind}", f"{p} of type {t}", self._where(att, k)
            )
        vt: Type = t
        if kind == OpKind.MAP_SUBTRACT:
            assert isinstance(t, MapType)
            vt = SetType(t.key)
        v = self._value(operand, vt, self._at(att, k, p))
        if not v:
            return  # an empty operand records nothing (reference behaviour)
        self._record(att, address, Op(kind, p, v))

    def union_in_set(
        self, attachment: Attachment | str, key: Key, path: PathLike, elements: Iterable[Any]
    ) -> None:
        """Add elements to a set."""
        self._container_op(OpKind.SET_UNION, attachment, key, path, _as_set(elements), SetType)

    def subtract_in_set(
        self, attachment: Attachment | str, key: Key, path: PathLike, elements: Iterable[Any]
    ) -> None:
        """Remove elements from a set (missing ones are ignored)."""
        self._container_op(OpKind.SET_SUBTRACT, attachment, key, path, _as_set(elements), SetType)

    def union_in_map(
        self, attachment: Attachment | str, key: Key, path: PathLike, entries: Mapping[Any, Any]
    ) -> None:
        """Insert entries into a map, overwriting existing keys."""
        self._container_op(OpKind.MAP_UNION, attachment, key, path, entries, MapType)

    def subtract_in_map(
        self, attachment: Attachment | str, key: Key, path: PathLike, keys: Iterable[Any]
    ) -> None:
        """Remove entries by key (missing keys are ignored)."""
        self._container_op(OpKind.MAP_SUBTRACT, attachment, key, path, _as_set(keys), MapType)

    def update_in_map(
        self, attachment: Attachment | str, key: Key, path: PathLike, entries: Mapping[Any, Any]
    ) -> None:
        """Overwrite the values of keys already present (new keys are ignored)."""
        self._container_op(OpKind.MAP_UPDATE, attachment, key, path, entries, MapType)

    def _xarray(
        self, attachment: Attachment | str, key: Key, path: PathLike
    ) -> tuple[Attachment, DocAddress, Key, Path, XArrayType]:
        att = self._attachment(attachment)
        address, k = self._address(att, key, write=True)
        p, t = self._path(att, k, path)
        if not isinstance(t, XArrayType):
            raise ValidationError("a path to an xarray", f"{p} of type {t}", self._where(att, k))
        return att, address, k, p, t

    def insert_in_xarray(
        self,
        attachment: Attachment | str,
        key: Key,
        path: PathLike,
        before: uuid.UUID,
        new: uuid.UUID | None,
        value: Any,
    ) -> uuid.UUID:
        """Insert a value before a position (END appends); returns the new position."""
        att, address, k, p, t = self._xarray(attachment, key, path)
        before_raw = _position(before, "before", allow_end=True)
        new = new or uuid.uuid4()
        new_raw = _position(new, "new", allow_end=False)
        v = self._value(value, t.element, self._at(att, k, p))
        self._record(
            att, address, Op(OpKind.XARRAY_INSERT, p, position=before_raw, position2=new_raw)
        )
        self._record(att, address, Op(OpKind.XARRAY_UPDATE, p, v, position=new_raw))
        return new

    def update_in_xarray(
        self,
        attachment: Attachment | str,
        key: Key,
        path: PathLike,
        position: uuid.UUID,
        value: Any,
    ) -> None:
        """Write the value at a position (this also revives a removed position)."""
        att, address, k, p, t = self._xarray(attachment, key, path)
        raw = _position(position, "position", allow_end=False)
        v = self._value(value, t.element, self._at(att, k, p))
        self._record(att, address, Op(OpKind.XARRAY_UPDATE, p, v, position=raw))

    def remove_in_xarray(
        self, attachment: Attachment | str, key: Key, path: PathLike, position: uuid.UUID
    ) -> None:
        """Remove the element at a position (it stays as a tombstone)."""
        att, address, _, p, _ = self._xarray(attachment, key, path)
        raw = _position(position, "position", allow_end=False)
        self._record(att, address, Op(OpKind.XARRAY_REMOVE, p, position=raw))

    # -- diff -----------------------------------------------------------------------------
    def diff(
        self, attachment: Attachment | str, key: Key, value: Any, recursive: bool = False
    ) -> None:
        """Record only the opcodes that turn the current document into `value` (spec §3.3)."""
        att = self._attachment(attachment)
        address, k = self._address(att, key, write=True)
        t = att.document_type
        new = self._value(value, t, self._where(att, k))
        cur = self._current(att, address)
        if cur is ABSENT or not isinstance(t, StructureType | SetType | MapType | XArrayType):
            if cur is ABSENT or cur != new:
                self._record(att, address, Op(OpKind.DOCUMENT_SET, value=new))
            return
        if isinstance(t, StructureType):
            self._diff_struct(att, address, Path(), t, cur, new, recursive, root=True)
        else:
            self._diff_field(att, address, Path(), t, cur, new, recursive)

    def _diff_struct(
        self,
        att: Attachment,
        address: DocAddress,
        path: Path,
        t: StructureType,
        cur: StructValue,
        new: StructValue,
        recursive: bool,
        root: bool = False,
    ) -> None:
        for f in t.fields:
            a, b = getattr(cur, f.name), getattr(new, f.name)
            if a != b:
                self._diff_field(att, address, path.field(f.name), f.type, a, b, recursive)

    def _diff_field(
        self,
        att: Attachment,
        address: DocAddress,
        path: Path,
        t: Type,
        cur: Any,
        new: Any,
        recursive: bool,
    ) -> None:
        rec = self._record
        if isinstance(t, StructureType) and recursive and not path.is_root:
            self._diff_struct(att, address, path, t, cur, new, recursive)
        elif isinstance(t, SetType):
            gone, added = cur - new, new - cur
            if gone:
                rec(att, address, Op(OpKind.SET_SUBTRACT, path, gone))
            if added:
                rec(att, address, Op(OpKind.SET_UNION, path, added))
        elif isinstance(t, MapType):
            gone = {k for k in cur if k not in new}
            changed = {k: copier(t.value)(v) for k, v in new.items() if k in cur and cur[k] != v}
            added = {k: copier(t.value)(v) for k, v in new.items() if k not in cur}
            if gone:
                rec(att, address, Op(OpKind.MAP_SUBTRACT, path, gone))
            if changed:
                rec(att, address, Op(OpKind.MAP_UPDATE, path, changed))
            if added:
                rec(att, address, Op(OpKind.MAP_UNION, path, added))
        elif isinstance(t, XArrayType):
            self._diff_xarray(att, address, path, t, cur, new)
        elif path.is_root:
            rec(att, address, Op(OpKind.DOCUMENT_SET, value=new))
        else:
            rec(att, address, Op(OpKind.DOCUMENT_UPDATE, path, copier(t)(new)))

    def _diff_xarray(
        self,
        att: Attachment,
        address: DocAddress,
        path: Path,
        t: XArrayType,
        cur: XArray,
        new: XArray,
    ) -> None:
        rec = self._record
        cur_values, new_values = cur._values, new._values
        cur_live = [p for p in cur._order if p in cur_values]
        new_live = [p for p in new._order if p in new_values]
        new_set = set(new_live)
        cur_known = set(cur._order)  # tombstones too: an update revives one where it stands
        shared_cur = [p for p in cur._order if p in new_set]
        shared_new = [p for p in new_live if p in cur_known]
        if shared_cur != shared_new:
            whole = copier(t)(new)
            if path.is_root:
                rec(att, address, Op(OpKind.DOCUMENT_SET, value=whole))
            else:
                rec(att, address, Op(OpKind.DOCUMENT_UPDATE, path, whole))
            return
        el = copier(t.element)
        for p in cur_live:
            if p not in new_set:
                rec(att, address, Op(OpKind.XARRAY_REMOVE, path, position=p))
        # insert new positions from the end, so each anchor exists when it is used
        for i in range(len(new_live) - 1, -1, -1):
            p = new_live[i]
            if p in cur_known:
                continue
            before = new_live[i + 1] if i + 1 < len(new_live) else END.bytes
            rec(att, address, Op(OpKind.XARRAY_INSERT, path, position=before, position2=p))
            rec(att, address, Op(OpKind.XARRAY_UPDATE, path, el(new_values[p]), position=p))
        for p in new_live:
            if p in cur_known and cur_values.get(p, _MISSING) != new_values[p]:
                # a changed value, or a removed position coming back in its place
                rec(att, address, Op(OpKind.XARRAY_UPDATE, path, el(new_values[p]), position=p))

    # -- commit ---------------------------------------------------------------------------
    def _commit_into(self, db: CommitDatabase, label: str, author: str | None) -> CommitId:
        """Called by ``CommitDatabase.commit_mutations``."""
        prepared = self.prepare_commit()
        return self.seal(
            db._write_mutations(label, prepared.base, prepared.entries, prepared.blob_ids, author)
        )

    def prepare_commit(self) -> PreparedCommit:
        """What committing this state writes, without writing or sealing it (the first phase
        of a commit made elsewhere, e.g. by a server; :meth:`seal` is the second).

        Raises:
            CommitError: The state was committed, or its base is a virtual merge state.
        """
        from commitdb.commit_database import SNAP_ABSENT, SNAP_IN_OPS

        if self._sealed is not None:
            raise CommitError(
                f"this mutable state was already committed as {self._sealed.hex()}; "
                "build a new one from db.state(commit_id)"
            )
        if getattr(self._base, "_virtual", None) is not None:  # remote states have none
            # its commit id is INVALID: the program would become a root commit whose stored
            # snapshots (taken over the merged documents) disagree with its own replay
            raise CommitError(
                "cannot commit on a virtual merge state: write the merge with merge_commit, "
                "then build the mutable state on it"
            )
        entries = []
        values: list[Any] = []
        document_set = OpKind.DOCUMENT_SET
        for address, d in self._docs.items():
            ops = d.ops
            if not ops:
                continue
            if len(ops) == 1:
                kind = ops[0][0].kind
                ops_bytes = b"\x91" + ops[0][1]  # a fixarray of one opcode
                resets = kind == document_set or kind == OpKind.DOCUMENT_DELETE
                only_set = kind == document_set
            else:
                ops_bytes = pack_array_header(len(ops)) + b"".join(raw for _, raw in ops)
                kinds = [op.kind for op, _ in ops]
                resets = document_set in kinds or OpKind.DOCUMENT_DELETE in kinds
                only_set = False
            if d.value is ABSENT:
                snap: Any = SNAP_ABSENT
            elif only_set:
                snap = SNAP_IN_OPS
            elif d.value is _ENCODED:
                snap = d.encoded
            else:
                snap = encode(d.value, d.att.document_type)
            entries.append(
                (address, ops_bytes, snap, d.touches + 1, d.all_enabled, resets, d.history)
            )
            # only documents whose type can hold a blob id are searched for them
            if may_hold_blob_ids(d.att.document_type):
                values.extend(op.value for op, _ in ops)
        blob_ids = collect_blob_ids(values) if values else set()
        return PreparedCommit(self._base.commit_id(), entries, blob_ids)

    def seal(self, commit_id: CommitId) -> CommitId:
        """Mark the state committed as `commit_id` (the second phase, once the commit of
        :meth:`prepare_commit` is made): further mutation or a commit raises. Returns it.

        Raises:
            CommitError: The state was committed already.
        """
        if self._sealed is not None:
            raise CommitError(f"this mutable state was already committed as {self._sealed.hex()}")
        self._sealed = commit_id
        return commit_id

    # -- wire form (what a peer sends) ----------------------------------------------------
    def set_wire(self, attachment: Attachment | str, key: bytes, value: Any) -> None:
        """Replace (or create) the whole document, given in wire form (e.g. by a peer).

        The same as ``set(attachment, Key(concept, id), from_wire(value, document type))``
        without building the key: `key` is its 32 wire bytes (concept runtime id + instance
        id), `value` the document's wire form (what ``to_wire`` gives). Both are untrusted:
        the concept must be known and accepted by the attachment's key type and the instance
        id must not be nil (ValidationError); the value is decoded with the checking decoder
        (DecodeError) and recorded by its canonical encoding — decoding accepts other layouts
        (set elements out of order ...), so what was received is never recorded as is.

        Raises:
            ValidationError: A malformed, unknown, refused or nil key.
            DecodeError: A value that is not a valid value of the document type.
            CommitError: The state was committed.
        """
        entry = self._wire_entry(attachment)
        address = self._wire_address(entry, key)
        att = entry[1]
        decoded = from_wire(value, att.document_type, self._defs)  # fresh: owned from now on
        self._record_decoded(att, address, key, decoded, None)

    def set_encoded(self, attachment: Attachment | str, key: bytes, data: bytes) -> None:
        """Replace (or create) the whole document, given by its encoding (e.g. by a peer).

        :meth:`set_wire` for a document given as bytes (what ``encode`` gives): they are
        decoded with the checking decoder (DecodeError) and recorded as received when they
        are the canonical encoding of the decoded value (``codec.decode_canonical``), without
        encoding it again; bytes in another layout are recorded by their canonical encoding.

        Raises:
            ValidationError: A malformed, unknown, refused or nil key, or `data` not bytes.
            DecodeError: Bytes that do not encode a valid value of the document type.
            CommitError: The state was committed.
        """
        cache = self.__dict__.get("_wire_keys")
        entry = cache.get(id(attachment)) if cache is not None else None
        if entry is None or entry[0] is not attachment:
            entry = self._wire_entry(attachment)
        att = entry[1]
        # the common case first: a key concept seen already, a document type without blob
        # ids (recorded by its bytes alone)
        if (
            not entry[4]
            and type(key) is bytes
            and len(key) == 32
            and key[:16] in entry[3]
            and key[16:] != _NIL_ID
            and type(data) is bytes
        ):
            decoded, canonical = decode_canonical(data, att.document_type, self._defs)
            if canonical:
                self._record_set(att, entry[2] + key, data)
            else:
                self._record_decoded(att, entry[2] + key, key, decoded, None)
            return
        address = self._wire_address(entry, key)
        if type(data) is not bytes:
            raise ValidationError("a document encoding (bytes)", type(data).__name__, "value")
        decoded, canonical = decode_canonical(data, att.document_type, self._defs)
        self._record_decoded(att, address, key, decoded, data if canonical else None)

    def _wire_entry(self, attachment: Attachment | str) -> _WireEntry:
        """What wire-form sets need of an attachment, cached by the object given."""
        cache: dict[int, _WireEntry] | None = self.__dict__.get("_wire_keys")
        if cache is None:
            cache = self.__dict__["_wire_keys"] = {}
        entry = cache.get(id(attachment))
        if entry is None or entry[0] is not attachment:
            att = self._attachment(attachment)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            blobs = may_hold_blob_ids(att.document_type)
            # the object given is kept: its id stays unique
            entry = cache[id(attachment)] = (attachment, att, att.runtime_id.bytes, {}, blobs)
        return entry

    def _wire_address(self, entry: _WireEntry, key: Any) -> DocAddress:
        """The document address of a 32-byte wire key (validated: see :meth:`set_wire`)."""
        att = entry[1]
        if type(key) is not bytes or len(key) != 32:
            raise ValidationError("a key (32 bytes)", type(key).__name__, f"{att.identifier} key")
        accepted = entry[3]
        if key[:16] not in accepted:
            found = self._defs.query_type(uuid.UUID(bytes=key[:16]))
            if not isinstance(found, ConceptType):
                raise ValidationError(
                    "a known concept", str(uuid.UUID(bytes=key[:16])), f"{att.identifier} key"
                )
            if not att.key_type.accepts_concept(found):
                raise ValidationError(str(att.key_type), f"key of {found}", f"{att.identifier} key")
            if len(accepted) >= _CACHE_LIMIT:
                accepted.clear()
            accepted[key[:16]] = found
        if key[16:] == _NIL_ID:
            raise ValidationError(
                "a key with a valid instance id", "the nil key", f"{att.identifier} key"
            )
        return entry[2] + key

    def _record_decoded(
        self, att: Attachment, address: DocAddress, key: bytes, decoded: Any, raw: bytes | None
    ) -> None:
        """Record a set of a freshly decoded document; `raw` its canonical bytes if known."""
        t = att.document_type
        if raw is None:

            def where() -> str:
                return f"{att.identifier}[{uuid.UUID(bytes=key[16:])}]"

            normalized, raw = validated_encoding(decoded, t, where, copy=False)
            if normalized is not None:
                decoded = normalized
        if may_hold_blob_ids(t):
            self._record(att, address, Op(OpKind.DOCUMENT_SET, value=decoded), _SET_PREFIX + raw)
        else:
            self._record_set(att, address, raw)


class PreparedCommit:
    """What committing a mutable state writes (:meth:`CommitMutableState.prepare_commit`).

    Attributes:
        base: The commit the mutations go on (INVALID: a root commit).
        entries: Per document touched, in order: (address, encoded ops, snapshot, touches,
            all_enabled, resets, history digest of the base or None).
        blob_ids: The blob ids the opcodes reference (they must be stored).
    """

    __slots__ = ("base", "entries", "blob_ids")

    def __init__(
        self,
        base: CommitId,
        entries: list[tuple[DocAddress, bytes, Any, int, bool, bool, int | None]],
        blob_ids: set[BlobId],
    ) -> None:
        self.base = base
        self.entries = entries
        self.blob_ids = blob_ids

    def program(self) -> bytes:
        """The canonical program bytes (what ``CommitDatabase.commit_program`` takes)."""
        return program_bytes([(e[0], e[1]) for e in self.entries])

    def __repr__(self) -> str:
        return f"<PreparedCommit on {self.base.hex()[:12]}, {len(self.entries)} documents>"


_NIL_ID = bytes(16)  # the nil instance id, in wire form
_WireEntry = tuple[object, Attachment, bytes, dict[bytes, ConceptType], bool]
"""Per attachment object given to a wire-form set: (it, the attachment, its runtime id,
{concept runtime id: accepted concept}, whether its documents may hold blob ids)."""


def _as_set(elements: Iterable[Any]) -> Any:
    if isinstance(elements, set | frozenset):
        return elements
    if isinstance(elements, Mapping):
        return set(elements)
    return list(elements)


def _position(p: Any, what: str, *, allow_end: bool) -> bytes:
    if isinstance(p, uuid.UUID):
        raw = p.bytes
    elif isinstance(p, bytes) and len(p) == 16:
        raw = p
    else:
        raise ValidationError("an xarray position (uuid)", f"{type(p).__name__} {p!r}", what)
    if raw == END.bytes and not allow_end:
        raise ValidationError("a real xarray position", "END", what)
    return raw
