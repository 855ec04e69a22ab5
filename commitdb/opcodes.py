"""Mutation opcodes: what a commit stores, how it is encoded, and the pure replay evaluator.

A commit's program is a list of documents, each with the opcodes recorded for it in order
(the program is grouped by document in first-touch order; documents replay independently).
A document is addressed by 48 bytes: attachment runtime id, concrete concept runtime id and
instance id (16 bytes each).

The evaluator :func:`apply_op` is used both live (by the mutable state, right after recording)
and at replay, so a working copy always equals what the commit will replay to. A failing
opcode raises :class:`ReplayFailure`; replay records it for tracing and skips the opcode.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from commitdb.codec import from_wire, pack, to_wire, trusted_decoder, unpack
from commitdb.errors import DecodeError, PathError, UnknownAttachmentError
from commitdb.ids import BlobId
from commitdb.paths import Field, Path
from commitdb.types import Attachment, ConceptType, MapType, SetType, Type, XArrayType
from commitdb.values import EnumCase, Key, StructValue, Typed, XArray

if TYPE_CHECKING:
    from commitdb.definitions import Definitions

__all__ = (
    "ABSENT",
    "DocAddress",
    "Op",
    "OpKind",
    "Program",
    "ReplayFailure",
    "apply_op",
    "collect_blob_ids",
    "decode_ops",
    "decode_program",
    "doc_address",
    "encode_ops",
    "split_address",
)

DocAddress = bytes
"""48 bytes: attachment runtime id ‖ concept runtime id ‖ instance id."""


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()
"""Stands for a document that does not exist."""


class OpKind(IntEnum):
    """Opcode tags (engine spec §3.4), plus DOCUMENT_DELETE (a commitdb extension)."""

    DOCUMENT_SET = 0
    DOCUMENT_UPDATE = 1
    SET_UNION = 2
    SET_SUBTRACT = 3
    MAP_UNION = 4
    MAP_SUBTRACT = 5
    MAP_UPDATE = 6
    XARRAY_INSERT = 7
    XARRAY_UPDATE = 8
    XARRAY_REMOVE = 9
    DOCUMENT_DELETE = 10


_OPKINDS: tuple[OpKind, ...] = tuple(OpKind)  # indexed by code: the codes are 0, 1, 2...
# Local names for the hot paths (an enum member looked up on its class costs more).
_SET = OpKind.DOCUMENT_SET
_UPDATE = OpKind.DOCUMENT_UPDATE
_SET_UNION = OpKind.SET_UNION
_SET_SUBTRACT = OpKind.SET_SUBTRACT
_MAP_UNION = OpKind.MAP_UNION
_MAP_SUBTRACT = OpKind.MAP_SUBTRACT
_MAP_UPDATE = OpKind.MAP_UPDATE
_INSERT = OpKind.XARRAY_INSERT
_XUPDATE = OpKind.XARRAY_UPDATE
_REMOVE = OpKind.XARRAY_REMOVE
_DELETE = OpKind.DOCUMENT_DELETE


class ReplayFailure(Exception):
    """An opcode that could not be applied (recorded by tracing, never raised by replay)."""


class Op:
    """One opcode: kind, path, value and xarray positions (16 raw bytes) as the kind needs."""

    __slots__ = ("kind", "path", "position", "position2", "value")

    def __init__(
        self,
        kind: OpKind,
        path: Path | None = None,
        value: Any = None,
        position: bytes | None = None,
        position2: bytes | None = None,
    ) -> None:
        self.kind = kind
        self.path = path
        self.value = value
        self.position = position
        self.position2 = position2

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Op)
            and self.kind == other.kind
            and self.path == other.path
            and self.value == other.value
            and self.position == other.position
            and self.position2 == other.position2
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.path, self.position, self.position2))

    def __repr__(self) -> str:
        parts = [self.kind.name]
        if self.path is not None:
            parts.append(str(self.path))
        if self.position is not None:
            parts.append(str(uuid.UUID(bytes=self.position)))
        if self.position2 is not None:
            parts.append(str(uuid.UUID(bytes=self.position2)))
        if self.kind not in (OpKind.XARRAY_INSERT, OpKind.XARRAY_REMOVE, OpKind.DOCUMENT_DELETE):
            parts.append(repr(self.value))
        return f"Op({', '.join(parts)})"

    def describe(self) -> str:
        """A one-line readable form (used by ``commitdb show`` and traces)."""
        return repr(self)[3:-1]


def doc_address(attachment: Attachment, key: Key) -> DocAddress:
    """The 48-byte address of a document."""
    return attachment.runtime_id.bytes + key.concept.runtime_id.bytes + key.id.bytes


def split_address(address: DocAddress, definitions: Definitions) -> tuple[Attachment, Key]:
    """The attachment and key of an address (raises UnknownAttachmentError / DecodeError)."""
    if len(address) != 48:
        raise DecodeError("a document address is 48 bytes")
    att = definitions.query_attachment(uuid.UUID(bytes=address[:16]))
    if att is None:
        raise UnknownAttachmentError(f"unknown attachment id {uuid.UUID(bytes=address[:16])}")
    concept = definitions.query_type(uuid.UUID(bytes=address[16:32]))
    if not isinstance(concept, ConceptType):
        raise DecodeError(f"unknown concept id {uuid.UUID(bytes=address[16:32])}")
    return att, Key(concept, uuid.UUID(bytes=address[32:]))


# --------------------------------------------------------------------------------------------
# Types reached by each opcode


def _target_type(op: Op, doc_type: Type) -> Type:
    assert op.path is not None
    return op.path.resolve(doc_type)


def _value_type(op: Op, doc_type: Type) -> Type | None:
    """The type of the op's value (None when it carries none)."""
    k = op.kind
    if k == OpKind.DOCUMENT_SET:
        return doc_type
    if k in (OpKind.XARRAY_INSERT, OpKind.XARRAY_REMOVE, OpKind.DOCUMENT_DELETE):
        return None
    t = _target_type(op, doc_type)
    if k == OpKind.DOCUMENT_UPDATE:
        return t
    if k in (OpKind.SET_UNION, OpKind.SET_SUBTRACT):
        if not isinstance(t, SetType):
            raise PathError(f"{op.path} is a {t}, not a set")
        return t
    if k in (OpKind.MAP_UNION, OpKind.MAP_UPDATE):
        if not isinstance(t, MapType):
            raise PathError(f"{op.path} is a {t}, not a map")
        return t
    if k == OpKind.MAP_SUBTRACT:
        if not isinstance(t, MapType):
            raise PathError(f"{op.path} is a {t}, not a map")
        return SetType(t.key)
    if k == OpKind.XARRAY_UPDATE:
        if not isinstance(t, XArrayType):
            raise PathError(f"{op.path} is a {t}, not an xarray")
        return t.element
    raise DecodeError(f"unknown opcode kind {k}")


# --------------------------------------------------------------------------------------------
# Encoding


def op_to_wire(op: Op, doc_type: Type) -> list[Any]:
    """The canonical wire form of one opcode of a document of type `doc_type`."""
    k = op.kind
    if k == OpKind.DOCUMENT_SET:
        return [int(k), to_wire(op.value, doc_type)]
    if k == OpKind.DOCUMENT_DELETE:
        return [int(k)]
    assert op.path is not None
    path_wire = op.path.to_wire(doc_type)
    if k == OpKind.XARRAY_INSERT:
        return [int(k), path_wire, op.position, op.position2]
    if k == OpKind.XARRAY_REMOVE:
        return [int(k), path_wire, op.position]
    vt = _value_type(op, doc_type)
    assert vt is not None
    if k == OpKind.XARRAY_UPDATE:
        return [int(k), path_wire, op.position, to_wire(op.value, vt)]
    return [int(k), path_wire, to_wire(op.value, vt)]


def encode_ops(ops: Sequence[Op], doc_type: Type) -> bytes:
    """Canonical bytes of a document's opcodes."""
    return pack([op_to_wire(op, doc_type) for op in ops])


def _pos(w: Any) -> bytes:
    if type(w) is not bytes or len(w) != 16:
        raise DecodeError("an xarray position is 16 bytes")
    return w


def op_from_wire(w: Any, doc_type: Type, definitions: Definitions | None) -> Op:
    """Rebuild an opcode from its wire form."""
    if type(w) is not list or not w or type(w[0]) is not int:
        raise DecodeError("malformed opcode")
    if not 0 <= w[0] < len(_OPKINDS):
        raise DecodeError(f"unknown opcode kind {w[0]}")
    k = _OPKINDS[w[0]]
    n = len(w)
    if k is _SET:
        if n != 2:
            raise DecodeError("malformed Document_Set")
        return Op(k, value=from_wire(w[1], doc_type, definitions))
    if k is _DELETE:
        if n != 1:
            raise DecodeError("malformed Document_Delete")
        return Op(k)
    if n < 3:
        raise DecodeError(f"malformed {k.name}")
    path, vt = _path_and_value_type(k, w[1], doc_type, definitions)
    if k is _INSERT:
        if n != 4:
            raise DecodeError("malformed XArray_Insert")
        return Op(k, path, position=_pos(w[2]), position2=_pos(w[3]))
    if k is _REMOVE:
        if n != 3:
            raise DecodeError("malformed XArray_Remove")
        return Op(k, path, position=_pos(w[2]))
    assert vt is not None
    if k is _XUPDATE:
        if n != 4:
            raise DecodeError("malformed XArray_Update")
        return Op(k, path, from_wire(w[3], vt, definitions), _pos(w[2]))
    if n != 3:
        raise DecodeError(f"malformed {k.name}")
    return Op(k, path, from_wire(w[2], vt, definitions))


_SIMPLE_PATH_ITEMS = frozenset((str, bytes, int, type(None)))
_PATHS: dict[tuple[int, int, tuple[Any, ...]], tuple[Type, Path, Type | None]] = {}
_PATHS_LIMIT = 4096


def _path_and_value_type(
    kind: OpKind, wire: Any, doc_type: Type, definitions: Definitions | None
) -> tuple[Path, Type | None]:
    """The path of an opcode from its wire form, with the type of the opcode's value.

    Replaying a document decodes the same few paths over and over: paths made only of
    fields, indices, positions and unwraps (whose decoding needs no definitions) are
    memoized per document type object. Their items are of types with no equality across
    them (``True`` is not admitted), so equal keys mean equal wire forms.
    """
    key: tuple[int, int, tuple[Any, ...]] | None = None
    if type(wire) is list:
        for item in wire:
            if type(item) not in _SIMPLE_PATH_ITEMS:
                break
        else:
            key = (id(doc_type), int(kind), tuple(wire))
            hit = _PATHS.get(key)
            if hit is not None and hit[0] is doc_type:
                return hit[1], hit[2]
    try:
        path = Path.from_wire(wire, doc_type, definitions)
    except PathError as exc:
        raise DecodeError(f"bad path in {kind.name}: {exc}") from None
    vt: Type | None = None
    if kind not in (OpKind.XARRAY_INSERT, OpKind.XARRAY_REMOVE):
        try:
            vt = _value_type(Op(kind, path), doc_type)
        except PathError as exc:
            raise DecodeError(str(exc)) from None
    if key is not None:
        if len(_PATHS) >= _PATHS_LIMIT:
            _PATHS.clear()
        _PATHS[key] = (doc_type, path, vt)  # the type is kept: its id stays unique
    return path, vt


_FieldOp = tuple[Type, str, Type, Path, Callable[[Any, "Definitions | None"], Any]]
_FIELD_OPS: dict[tuple[int, int, str], _FieldOp | None] = {}


def _field_op(
    kind: int, name: str, doc_type: Type, definitions: Definitions | None
) -> _FieldOp | None:
    """(doc type, field, value type, path, value decoder) of a value opcode on the path
    ``.name`` when that path is one field of a structure, else None; memoized per document
    type object."""
    key = (id(doc_type), kind, name)
    if key in _FIELD_OPS:
        hit = _FIELD_OPS[key]
        if hit is None or hit[0] is doc_type:
            return hit
    path, vt = _path_and_value_type(_OPKINDS[kind], [name], doc_type, definitions)
    found = None
    comps = path.components
    if vt is not None and len(comps) == 1 and type(comps[0]) is Field:
        # stored opcodes are commitdb's own bytes: see codec.decode_trusted (a misfit is
        # decoded again the checked way, which raises the precise error)
        found = (doc_type, comps[0].name, vt, path, trusted_decoder(vt))
    if len(_FIELD_OPS) >= _PATHS_LIMIT:
        _FIELD_OPS.clear()
    # a None result is only trusted for the same type object: keep it under a fresh key
    _FIELD_OPS[key] = found
    return found


def replay_ops(
    doc: Any, data: bytes, doc_type: Type, definitions: Definitions | None = None
) -> Any:
    """Decode one commit's opcodes for a document and apply them in order, skipping those
    that fail: ``apply_op`` over :func:`decode_ops`, and the hot loop of replays.

    Value opcodes (update, set and map operations) on one field of a structure document are
    decoded and applied directly, without building an :class:`Op`, with the same checks
    and outcome as :func:`apply_op`; their values are decoded as bytes commitdb wrote itself
    (see :func:`commitdb.codec.decode_trusted`). Every other opcode goes through the general
    path. Decoding errors raise as :func:`decode_ops` does (the document is then discarded).
    """
    w = unpack(data)
    if type(w) is not list:
        raise DecodeError("malformed opcode list")
    memo = _FIELD_OPS
    type_id = id(doc_type)
    for x in w:
        fast = None
        if type(x) is list and len(x) == 3:
            k = x[0]
            wire = x[1]
            if (
                type(k) is int
                and 1 <= k <= 6  # DOCUMENT_UPDATE .. MAP_UPDATE
                and type(wire) is list
                and len(wire) == 1
                and type(wire[0]) is str
            ):
                fast = memo.get((type_id, k, wire[0]))
                if fast is None or fast[0] is not doc_type:
                    fast = _field_op(k, wire[0], doc_type, definitions)
        if fast is None:
            op = op_from_wire(x, doc_type, definitions)
            try:
                doc = apply_op(doc, op)
            except ReplayFailure:
                pass
            continue
        _, name, vt, path, dec = fast
        try:
            value = dec(x[2], definitions)
        except Exception:  # decode again the checked way, for the error it raises
            value = from_wire(x[2], vt, definitions)
        if doc is ABSENT or not isinstance(doc, StructValue) or name not in doc._fields:
            try:  # the general evaluator decides (and most likely refuses)
                doc = apply_op(doc, Op(_OPKINDS[k], path, value))
            except ReplayFailure:
                pass
            continue
        if k == 1:  # DOCUMENT_UPDATE
            object.__setattr__(doc, name, value)
            continue
        target = getattr(doc, name)
        if k <= 3:  # SET_UNION, SET_SUBTRACT
            if isinstance(target, set):
                if k == 2:
                    target |= value
                else:
                    target -= value
        elif isinstance(target, dict):
            if k == 4:  # MAP_UNION
                target.update(value)
            elif k == 5:  # MAP_SUBTRACT
                for key in value:
                    target.pop(key, None)
            else:  # MAP_UPDATE
                for key, v in value.items():
                    if key in target:
                        target[key] = v
    return doc


def decode_ops(data: bytes, doc_type: Type, definitions: Definitions | None = None) -> list[Op]:
    """Inverse of :func:`encode_ops`."""
    w = unpack(data)
    if type(w) is not list:
        raise DecodeError("malformed opcode list")
    return [op_from_wire(x, doc_type, definitions) for x in w]


class Program:
    """A commit's opcodes grouped by document, in first-touch order."""

    __slots__ = ("_docs",)

    def __init__(self) -> None:
        self._docs: dict[DocAddress, list[Op]] = {}

    def record(self, address: DocAddress, op: Op) -> None:
        """Append an opcode for a document."""
        ops = self._docs.get(address)
        if ops is None:
            self._docs[address] = [op]
        else:
            ops.append(op)

    def addresses(self) -> list[DocAddress]:
        """Touched documents in first-touch order."""
        return list(self._docs)

    def ops(self, address: DocAddress) -> list[Op]:
        """The opcodes of one document (empty if untouched)."""
        return self._docs.get(address, [])

    def items(self) -> Iterable[tuple[DocAddress, list[Op]]]:
        """(address, opcodes) pairs in first-touch order."""
        return self._docs.items()

    def all_ops(self) -> list[tuple[DocAddress, Op]]:
        """Every opcode with its document address, grouped by document."""
        return [(a, op) for a, ops in self._docs.items() for op in ops]

    def __len__(self) -> int:
        return sum(len(v) for v in self._docs.values())

    def __bool__(self) -> bool:
        return bool(self._docs)

    def has_document_set(self, address: DocAddress) -> bool:
        """True if the document is set (whole) in this program."""
        return any(op.kind == OpKind.DOCUMENT_SET for op in self._docs.get(address, ()))

    def copy(self) -> Program:
        """A copy (opcode objects are shared; they are never mutated)."""
        new = Program()
        new._docs = {a: list(ops) for a, ops in self._docs.items()}
        return new


def program_wire_prefix(count: int) -> bytes:
    """The msgpack array header for `count` documents (programs are built by concatenation)."""
    return pack_array_header(count)


def pack_array_header(n: int) -> bytes:
    """msgpack array header bytes for n elements."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


_DOC_ENTRY_PREFIX = b"\x92\xc4\x30"  # fixarray(2), bin8 of length 48


def program_bytes(entries: Iterable[tuple[DocAddress, bytes]]) -> bytes:
    """Canonical program bytes: msgpack ``[[address, ops], ...]`` from encoded op lists."""
    items = list(entries)
    parts = [pack_array_header(len(items))]
    for address, ops in items:
        parts.append(_DOC_ENTRY_PREFIX)
        parts.append(address)
        parts.append(ops)
    return b"".join(parts)


def decode_program(data: bytes, definitions: Definitions) -> Program:
    """Decode canonical program bytes against definitions."""
    w = unpack(data)
    if type(w) is not list:
        raise DecodeError("malformed program")
    prog = Program()
    for entry in w:
        if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not bytes:
            raise DecodeError("malformed program entry")
        address, ops_w = entry
        att, _ = split_address(address, definitions)
        if type(ops_w) is not list:
            raise DecodeError("malformed opcode list")
        for x in ops_w:
            prog.record(address, op_from_wire(x, att.document_type, definitions))
    return prog


def split_program(data: bytes) -> list[tuple[DocAddress, bytes]]:
    """Split canonical program bytes into (address, encoded ops) without decoding values."""
    w = unpack(data)
    if type(w) is not list:
        raise DecodeError("malformed program")
    out = []
    for entry in w:
        if (
            type(entry) is not list
            or len(entry) != 2
            or type(entry[0]) is not bytes
            or len(entry[0]) != 48
        ):
            raise DecodeError("malformed program entry")
        out.append((entry[0], pack(entry[1])))
    return out


# --------------------------------------------------------------------------------------------
# The evaluator


def _container(doc: Any, path: Path) -> Any:
    if path.is_root:
        return doc
    name = _struct_field(path, doc)
    if name is not None:
        return getattr(doc, name)
    return path.at(doc)


def _struct_field(path: Path, doc: Any) -> str | None:
    """The field name when `path` is a single field of the structure `doc`: the common
    case, where reading or writing it is what :meth:`Path.at` / :meth:`Path.set_in` would do
    after their walk (no Typed wrapper, the field exists)."""
    comps = path.components
    if len(comps) == 1:
        c = comps[0]
        if type(c) is Field and isinstance(doc, StructValue) and c.name in doc._fields:
            return c.name
    return None


def apply_op(doc: Any, op: Op) -> Any:
    """Apply one opcode to a document value (mutated in place where possible); returns the
    new value, or raises :class:`ReplayFailure` saying why the opcode has no effect.

    The evaluator takes ownership of ``op.value``: callers pass freshly decoded or freshly
    copied opcodes, and never apply the same opcode object twice.
    """
    k = op.kind
    if k == _SET:
        return op.value
    if k == _DELETE:
        return ABSENT
    if doc is ABSENT:
        raise ReplayFailure("the document is absent")
    path = op.path
    assert path is not None
    try:
        if k == _UPDATE:
            if path.is_root:
                raise ReplayFailure("unexpected root Path")
            name = _struct_field(path, doc)
            if name is not None:
                object.__setattr__(doc, name, op.value)
                return doc
            return path.set_in(doc, op.value)
        target = _container(doc, path)
        if k == _SET_UNION:
            _expect(target, set, path)
            target |= op.value
        elif k == _SET_SUBTRACT:
            _expect(target, set, path)
            target -= op.value
        elif k == _MAP_UNION:
            _expect(target, dict, path)
            target.update(op.value)
        elif k == _MAP_SUBTRACT:
            _expect(target, dict, path)
            for key in op.value:
                target.pop(key, None)
        elif k == _MAP_UPDATE:
            _expect(target, dict, path)
            for key, v in op.value.items():
                if key in target:
                    target[key] = v
        elif k == _INSERT:
            _expect(target, XArray, path)
            assert op.position is not None and op.position2 is not None
            if not target.apply_insert(op.position, op.position2):
                if not target.has_position(op.position2):
                    raise ReplayFailure(
                        f"position {uuid.UUID(bytes=op.position)} not found in {path}"
                    )
        elif k == _XUPDATE:
            _expect(target, XArray, path)
            assert op.position is not None
            if not target.apply_update(op.position, op.value):
                raise ReplayFailure(f"position {uuid.UUID(bytes=op.position)} not found in {path}")
        elif k == _REMOVE:
            _expect(target, XArray, path)
            assert op.position is not None
            target.apply_remove(op.position)
        else:
            raise ReplayFailure(f"unknown opcode {k}")
    except PathError as exc:
        raise ReplayFailure(str(exc)) from None
    return doc


def collect_blob_ids(values: Iterable[Any]) -> set[BlobId]:
    """Every BlobId found inside the values (recursively)."""
    found: set[BlobId] = set()
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, BlobId):
            if v.is_valid:
                found.add(v)
        elif (
            isinstance(v, str | bytes | int | float | bool | uuid.UUID | Key | EnumCase)
            or v is None
        ):
            continue
        elif isinstance(v, list | tuple | set | frozenset):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, XArray):
            stack.extend(v._values.values())
        elif isinstance(v, StructValue):
            stack.extend(getattr(v, f) for f in v._fields)
        elif isinstance(v, Typed):
            stack.append(v.value)
    return found


def _expect(target: Any, cls: type, path: Path) -> None:
    if not isinstance(target, cls):
        raise ReplayFailure(f"{path} does not hold a {cls.__name__}")
