"""The canonical codec: typed values to deterministic msgpack bytes and back.

``encode(value, type)`` validates and encodes; equal values always give identical bytes (sets
and map entries are written in a canonical order whatever their insertion order; floats are
compared bit for bit: ``0.0`` and ``-0.0`` encode differently).
``decode(data, type, definitions=None)`` validates and rebuilds the value; bytes that do not
encode a valid value of the type raise :class:`~commitdb.errors.DecodeError` — never another
exception, a hang or a huge allocation (msgpack limits sizes to the input length). Decoding
checks validity, not layout: a valid value written in another layout (set elements out of
order, a non-minimal msgpack integer) decodes, and re-encoding it gives the canonical bytes.

``decode_trusted`` is the decoder of bytes commitdb encoded and stored itself (snapshots of
the commit engine, documents of a flat database): it rebuilds the same values without the
per-element checks, and falls back to ``decode`` (and its DecodeError) on anything that does
not fit the expected shape.

Wire forms (msgpack): bool, int, float64, str and bin as themselves; uuid as bin(16); blob_id
and commit_id as bin(32); vector, tuple, vec, mat as arrays; set as a sorted array; map as a
flat sorted array ``[k0, v0, k1, v1, ...]``; optional as nil or the value (``[]``/``[v]`` when
the element itself may be nil); variant as ``[index, value]``; any as nil or
``[type, value]``; key as bin(32) = concept runtime id + instance id; enumeration case as its
ordinal; structure as the array of its fields; xarray as
``[[positions as bin(16)], [live values in order], [tombstone indices, ascending]]``.

This module is the only one that imports msgpack.
"""

from __future__ import annotations

import keyword
import math
import struct
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from commitdb.errors import DecodeError, ValidationError
from commitdb.ids import BlobId, CommitId
from commitdb.types import (
    PRIMITIVES,
    AnyConceptType,
    AnyType,
    BlobIdType,
    BlobType,
    BoolType,
    ClubType,
    CommitIdType,
    ConceptType,
    DoubleType,
    EnumerationType,
    FloatType,
    IntType,
    KeyType,
    MapType,
    MatType,
    NamedType,
    OptionalType,
    SetType,
    StringType,
    StructureType,
    TupleType,
    Type,
    UUIDType,
    VariantType,
    VectorType,
    VecType,
    VoidType,
    XArrayType,
    deduce_type,
    is_storable,
)
from commitdb.values import EnumCase, Key, StructValue, Typed, XArray

_END_RAW = bytes(16)
_F32 = struct.Struct("<f")

if TYPE_CHECKING:
    from commitdb.definitions import Definitions

__all__ = (
    "decode",
    "decode_trusted",
    "decode_type",
    "encode",
    "encode_type",
    "from_wire",
    "may_hold_blob_ids",
    "pack",
    "to_wire",
    "trusted_bytes_decoder",
    "trusted_decoder",
    "unpack",
    "unpack_raw",
    "validated_copy",
    "validated_encoding",
)

_packer_opts: dict[str, Any] = {"use_bin_type": True, "use_single_float": False}
_packb = msgpack.Packer(**_packer_opts).pack

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any, "Definitions | None"], Any]


class _NotCanonical(Exception):
    """The fast encoder met a value that needs normalizing by ``Type.check`` first."""


def pack(obj: Any) -> bytes:
    """msgpack-encode a plain structure (bin for bytes, float64 for floats)."""
    out: bytes = _packb(obj)
    return out


def unpack(data: bytes | bytearray | memoryview) -> Any:
    """msgpack-decode a plain structure; malformed input raises DecodeError."""
    try:
        # msgpack's defaults (raw=False, use_list=True, and container / str / bin lengths
        # bounded by the input length); keyword arguments would cost a third of the call.
        # No wire form uses msgpack maps, so strict_map_key only changes which error is raised.
        return msgpack.unpackb(data)
    except Exception as exc:  # msgpack raises several unrelated classes
        raise DecodeError(f"malformed msgpack: {exc}") from None


def unpack_raw(data: bytes | bytearray | memoryview) -> Any:
    """:func:`unpack` for callers that handle any exception themselves (msgpack's own)."""
    return msgpack.unpackb(data)


# --------------------------------------------------------------------------------------------
# Encoders: fast path over canonical (normalized) values; anything else raises _NotCanonical


def _identity(v: Any) -> Any:
    return v


def _sort_key_for(t: Type) -> Callable[[Any], Any] | None:
    """Key to order wire forms of `t` deterministically (None: order by packed bytes)."""
    if isinstance(
        t, IntType | StringType | BlobType | UUIDType | BlobIdType | CommitIdType | BoolType
    ):
        return _identity
    if isinstance(t, EnumerationType):
        return _identity
    if isinstance(t, FloatType | DoubleType):
        return lambda v: (not math.isnan(v), v if not math.isnan(v) else 0.0)
    if isinstance(t, KeyType):
        return _identity
    return None


def _packed_key(v: Any) -> bytes:
    out: bytes = _packb(v)
    return out


def _build_encoder(t: Type) -> Encoder:
    if isinstance(t, BoolType):

        def enc_bool(v: Any) -> Any:
            if v is True or v is False:
                return v
            raise _NotCanonical

        return enc_bool
    if isinstance(t, IntType):
        low, high = t.low, t.high

        def enc_int(v: Any) -> Any:
            if type(v) is int and low <= v <= high:
                return v
            raise _NotCanonical

        return enc_int
    if isinstance(t, FloatType):

        def enc_float(v: Any) -> Any:
            if type(v) is float and t.check(v) == v or (v != v and type(v) is float):
                return v
            raise _NotCanonical

        return enc_float
    if isinstance(t, DoubleType):

        def enc_double(v: Any) -> Any:
            if type(v) is float:
                return v
            raise _NotCanonical

        return enc_double
    if isinstance(t, StringType):

        def enc_str(v: Any) -> Any:
            if type(v) is str:
                return v
            raise _NotCanonical

        return enc_str
    if isinstance(t, BlobType):

        def enc_blob(v: Any) -> Any:
            if type(v) is bytes:
                return v
            raise _NotCanonical

        return enc_blob
    if isinstance(t, UUIDType):

        def enc_uuid(v: Any) -> Any:
            if type(v) is uuid.UUID:
                return v.bytes
            raise _NotCanonical

        return enc_uuid
    if isinstance(t, BlobIdType | CommitIdType):
        cls = BlobId if isinstance(t, BlobIdType) else CommitId

        def enc_id(v: Any) -> Any:
            if type(v) is cls:
                return bytes(v)
            raise _NotCanonical

        return enc_id
    if isinstance(t, VectorType | VecType | MatType | TupleType):
        return _vector_like_encoder(t)
    if isinstance(t, SetType):
        return _set_encoder(t)
    if isinstance(t, MapType):
        return _map_encoder(t)
    if isinstance(t, OptionalType):
        inner = encoder(t.element)
        if _may_be_nil(t.element):

            def enc_opt_wrapped(v: Any) -> Any:
                return [] if v is None else [inner(v)]

            return enc_opt_wrapped

        def enc_opt(v: Any) -> Any:
            return None if v is None else inner(v)

        return enc_opt
    if isinstance(t, VariantType):
        alt_encs = [encoder(a) for a in t.alternatives]

        def enc_variant(v: Any) -> Any:
            if isinstance(v, Typed):
                for i, a in enumerate(t.alternatives):
                    if a == v.type:
                        return [i, alt_encs[i](v.value)]
            natural = t.natural_index(v)
            if natural is None:
                raise _NotCanonical
            return [natural, alt_encs[natural](v)]

        return enc_variant
    if isinstance(t, AnyType):

        def enc_any(v: Any) -> Any:
            if v is None:
                return None
            if isinstance(v, Typed):
                if not is_storable(v.type):
                    raise _NotCanonical
                return [type_to_wire(v.type), encoder(v.type)(v.value)]
            dt = deduce_type(v)
            if dt is None:
                raise _NotCanonical
            return [type_to_wire(dt), encoder(dt)(v)]

        return enc_any
    if isinstance(t, KeyType):
        accepts = t.accepts_concept
        target = t.target

        def enc_key(v: Any) -> Any:
            if type(v) is Key and (accepts(v.concept) or (v.is_nil and v.concept == target)):
                return v.concept.runtime_id.bytes + v._id_bytes
            raise _NotCanonical

        return enc_key
    if isinstance(t, EnumerationType):

        def enc_enum(v: Any) -> Any:
            if type(v) is EnumCase and v.enumeration == t:
                return v.index
            raise _NotCanonical

        return enc_enum
    if isinstance(t, StructureType):
        return _struct_encoder(t)
    if isinstance(t, XArrayType):
        return _xarray_encoder(t)
    if isinstance(t, VoidType):

        def enc_void(v: Any) -> Any:
            if v is None:
                return None
            raise _NotCanonical

        return enc_void
    raise ValidationError("a storable type", f"type {t}", "")


def _may_be_nil(t: Type) -> bool:
    if isinstance(t, OptionalType | AnyType | VoidType):
        return True
    if isinstance(t, VariantType):
        return False
    return False


def _vector_like_encoder(t: VectorType | VecType | MatType | TupleType) -> Encoder:
    if isinstance(t, TupleType):
        encs = [encoder(e) for e in t.elements]
        n = len(encs)

        def enc_tuple(v: Any) -> Any:
            if type(v) is not tuple or len(v) != n:
                raise _NotCanonical
            return [e(x) for e, x in zip(encs, v, strict=True)]

        return enc_tuple
    el = encoder(t.element)
    if isinstance(t, VectorType):
        if el is _ENC_STR:

            def enc_vec_str(v: Any) -> Any:
                if type(v) is not list:
                    raise _NotCanonical
                for x in v:
                    if type(x) is not str:
                        raise _NotCanonical
                return v

            return enc_vec_str

        def enc_vector(v: Any) -> Any:
            if type(v) is not list:
                raise _NotCanonical
            return [el(x) for x in v]

        return enc_vector
    size = t.size if isinstance(t, VecType) else t.columns * t.rows

    def enc_fixed(v: Any) -> Any:
        if type(v) is not tuple or len(v) != size:
            raise _NotCanonical
        return [el(x) for x in v]

    return enc_fixed


def _may_hold_float(t: Type, seen: set[int] | None = None) -> bool:
    """Whether a value of `t` may hold a float or double somewhere."""
    if isinstance(t, FloatType | DoubleType):
        return True
    seen = set() if seen is None else seen
    if id(t) in seen:
        return False
    seen.add(id(t))
    return any(_may_hold_float(c, seen) for c in t.children())


def _zero_as_positive(w: Any) -> Any:
    """The wire form with every -0.0 made 0.0 (other floats, NaN included, unchanged)."""
    if type(w) is float:
        return w + 0.0  # -0.0 + 0.0 is 0.0
    if type(w) is list:
        return [_zero_as_positive(x) for x in w]
    return w


def _zero_normalized(enc: Encoder, t: Type) -> Encoder:
    """`enc` for set elements and map keys: -0.0 and 0.0 are one element (they compare
    equal), so they must have one encoding; 0.0 is the canonical one."""
    if not _may_hold_float(t):
        return enc

    def enc_normalized(v: Any) -> Any:
        return _zero_as_positive(enc(v))

    return enc_normalized


def _set_encoder(t: SetType) -> Encoder:
    el = _zero_normalized(encoder(t.element), t.element)
    sk = _sort_key_for(t.element)
    if el is _ENC_STR:

        def enc_set_str(v: Any) -> Any:
            if type(v) is not set and type(v) is not frozenset:
                raise _NotCanonical
            for x in v:
                if type(x) is not str:
                    raise _NotCanonical
            return sorted(v)

        return enc_set_str

    def enc_set(v: Any) -> Any:
        if type(v) is not set and type(v) is not frozenset:
            raise _NotCanonical
        wires = [el(x) for x in v]
        wires.sort(key=sk or _packed_key)
        return wires

    return enc_set


def _map_encoder(t: MapType) -> Encoder:
    kenc = _zero_normalized(encoder(t.key), t.key)
    venc = encoder(t.value)
    sk = _sort_key_for(t.key)
    if kenc is _ENC_STR and venc is _ENC_I64:

        def enc_map_str_i64(v: Any) -> Any:
            if type(v) is not dict:
                raise _NotCanonical
            out: list[Any] = []
            try:
                keys = sorted(v)
            except TypeError:  # keys of mixed types: not canonical, let check() say why
                raise _NotCanonical from None
            for k in keys:
                x = v[k]
                if type(k) is not str or type(x) is not int or not -(2**63) <= x < 2**63:
                    raise _NotCanonical
                out.append(k)
                out.append(x)
            return out

        return enc_map_str_i64

    def enc_map(v: Any) -> Any:
        if type(v) is not dict:
            raise _NotCanonical
        pairs = [(kenc(k), venc(x)) for k, x in v.items()]
        key = sk or _packed_key
        pairs.sort(key=lambda p: key(p[0]))
        out: list[Any] = []
        for k, x in pairs:
            out.append(k)
            out.append(x)
        return out

    return enc_map


def _struct_encoder(t: StructureType) -> Encoder:
    # Generated code: one attribute read and one encoder call per field, no loop overhead.
    # Field encoders are resolved on first use (a structure's runtime id is computed with the
    # codec, before its field types may have encoders).
    cls = t.value_class
    rid = t.runtime_id
    names = [f.name for f in t.fields]
    env: dict[str, Any] = {
        "cls": cls,
        "rid": rid,
        "NC": _NotCanonical,
        "SV": StructValue,
        "XArray": XArray,
    }
    resolved: list[Encoder] = []

    def resolve() -> Encoder:
        for i, f in enumerate(t.fields):
            env[f"e{i}"] = encoder(f.type)
        get = [_attr("v", n) for n in names]
        checks = " or ".join(
            f"type(a{i}) is not str" for i in range(len(get)) if env[f"e{i}"] is _ENC_STR_RAW
        )
        # Each field read once into a local; string fields checked first, then the others
        # encoded in field order (int64 and containers of strings / int64 inline).
        lines = [f"    a{i} = {g}" for i, g in enumerate(get)]
        if checks:
            lines += [f"    if {checks}:", "        raise NC"]
        items = []
        for i, f in enumerate(t.fields):
            if env[f"e{i}"] is _ENC_STR_RAW:
                items.append(f"a{i}")
                continue
            inline = _inline_field_encoder(f.type, env[f"e{i}"], i)
            if inline is None:
                lines.append(f"    r{i} = e{i}(a{i})")
            else:
                lines += inline
            items.append(f"r{i}")
        src = (
            "def enc_struct(v):\n"
            "    if v.__class__ is not cls and not (isinstance(v, SV) and v._type.runtime_id == rid):\n"
            "        raise NC\n" + "\n".join(lines) + f"\n    return [{', '.join(items)}]\n"
        )
        exec(src, env)
        resolved.append(env["enc_struct"])
        t._enc = resolved[0]
        if _rid_determined(t) and len(_encoders) < _SHARED_LIMIT:
            _encoders[rid] = resolved[0]
        return resolved[0]

    def enc_struct_first(v: Any) -> Any:
        return (resolved[0] if resolved else resolve())(v)

    return enc_struct_first


def _inline_field_encoder(t: Type, enc: Encoder, i: int) -> list[str] | None:
    """Source lines encoding field ``a{i}`` into ``r{i}`` inside a generated structure
    encoder, for int64 and the common containers of strings and int64 (what their own
    encoders do; an xarray with tombstones calls its encoder ``e{i}``). None otherwise."""
    a, r = f"a{i}", f"r{i}"
    i64 = f"not {-(2**63)} <= x <= {2**63 - 1}"
    if enc is _ENC_I64:
        return [
            f"    if type({a}) is not int or not {-(2**63)} <= {a} <= {2**63 - 1}:",
            "        raise NC",
            f"    {r} = {a}",
        ]
    if isinstance(t, SetType) and enc is not None and isinstance(t.element, StringType):
        return [
            f"    if type({a}) is not set and type({a}) is not frozenset:",
            "        raise NC",
            f"    for x in {a}:",
            "        if type(x) is not str:",
            "            raise NC",
            f"    {r} = sorted({a})",
        ]
    if (
        isinstance(t, MapType)
        and isinstance(t.key, StringType)
        and isinstance(t.value, IntType)
        and t.value.bits == 64
        and t.value.signed
    ):
        return [
            f"    if type({a}) is not dict:",
            "        raise NC",
            "    try:",
            f"        keys = sorted({a})",
            "    except TypeError:  # keys of mixed types: not canonical",
            "        raise NC from None",
            f"    {r} = []",
            "    for k in keys:",
            f"        x = {a}[k]",
            f"        if type(k) is not str or type(x) is not int or {i64}:",
            "            raise NC",
            f"        {r}.append(k)",
            f"        {r}.append(x)",
        ]
    if isinstance(t, XArrayType) and isinstance(t.element, StringType):
        return [
            f"    if type({a}) is not XArray:",
            "        raise NC",
            f"    order = {a}._order",
            f"    values = {a}._values",
            "    if len(values) == len(order):",
            "        live = [values[p] for p in order]",
            "        for x in live:",
            "            if type(x) is not str:",
            "                raise NC",
            f"        {r} = [order, live, []]",
            "    else:",
            f"        {r} = e{i}({a})",
        ]
    return None


def _attr(obj: str, name: str) -> str:
    """Source reading a field (a Python keyword, legal as a DSM field name, needs getattr)."""
    return f"getattr({obj}, {name!r})" if keyword.iskeyword(name) else f"{obj}.{name}"


def _set_attr(obj: str, name: str, expr: str) -> str:
    """Source line writing a field (see :func:`_attr`)."""
    if keyword.iskeyword(name):
        return f"    setattr({obj}, {name!r}, {expr})"
    return f"    {obj}.{name} = {expr}"


def _lazy(t: Type) -> Encoder:
    """An encoder resolved on first use (structures may be built before their field types'
    encoders, e.g. while computing runtime ids)."""
    cell: list[Encoder] = []

    def enc_lazy(v: Any) -> Any:
        if not cell:
            cell.append(encoder(t))
        return cell[0](v)

    return enc_lazy


def _xarray_encoder(t: XArrayType) -> Encoder:
    el = encoder(t.element)

    def enc_xarray(v: Any) -> Any:
        if type(v) is not XArray:
            raise _NotCanonical
        order = v._order
        values = v._values
        if len(values) == len(order):
            if el is _ENC_STR:
                live = [values[p] for p in order]
                for x in live:
                    if type(x) is not str:
                        raise _NotCanonical
            else:
                live = [el(values[p]) for p in order]
            return [order, live, []]
        live = []
        tombs = []
        for i, p in enumerate(order):
            if p in values:
                live.append(el(values[p]))
            else:
                tombs.append(i)
        return [order, live, tombs]

    return enc_xarray


def _enc_str(v: Any) -> Any:
    if type(v) is str:
        return v
    raise _NotCanonical


def _enc_i64(v: Any) -> Any:
    if type(v) is int and -(2**63) <= v < 2**63:
        return v
    raise _NotCanonical


_ENC_STR: Encoder = _enc_str
_ENC_STR_RAW: Encoder = _enc_str
_ENC_I64: Encoder = _enc_i64
_encoders: dict[uuid.UUID, Encoder] = {}


_SHARED_LIMIT = 4096
"""Bound of the id-keyed caches: types arriving inside ``any`` are chosen by peers, and each
distinct one would otherwise stay cached for the life of the process. Past the bound, fresh
type objects compile their own codec (still cached on the object)."""


def _rid_determined(t: Type) -> bool:
    """True if the runtime id fully determines how `t` encodes and decodes.

    Club membership is not part of a club's runtime id and may differ between two
    Definitions (and grow): the codec of a type that reaches a ``key<Club>`` is compiled for
    each type object, bound to that object's club, and never shared through the id caches.
    """
    if isinstance(t, KeyType):
        return not isinstance(t.target, ClubType)
    return all(_rid_determined(c) for c in t.children())


def encoder(t: Type) -> Encoder:
    """The compiled fast encoder of a type (canonical values only)."""
    enc: Encoder | None = t._enc
    if enc is not None:
        return enc
    shared = _rid_determined(t)
    if shared:
        enc = _encoders.get(t.runtime_id)
    if enc is None:
        if isinstance(t, StringType):
            enc = _ENC_STR
        elif isinstance(t, IntType) and t.bits == 64 and t.signed:
            enc = _ENC_I64
        else:
            enc = _build_encoder(t)
        if shared and len(_encoders) < _SHARED_LIMIT:
            _encoders[t.runtime_id] = enc
    if t._enc is None:  # a structure's encoder installs its compiled form itself
        t._enc = enc
    return enc


def to_wire(value: Any, t: Type) -> Any:
    """Validate `value` against `t` and return its msgpack-ready wire form."""
    enc = t._enc
    if enc is None:
        enc = encoder(t)
    try:
        return enc(value)
    except _NotCanonical:
        pass
    normalized = t.check(value)  # raises the precise ValidationError
    try:
        return enc(normalized)
    except _NotCanonical:
        raise ValidationError(str(t), f"a value that does not normalize ({value!r})") from None


def validated_copy(value: Any, t: Type, where: str | Callable[[], str] = "") -> Any:
    """Validate `value` against `t` and return a normalized copy sharing nothing mutable.

    `where` locates a refused value in the error; it may be a function, called only then.
    """
    from commitdb.copier import copier

    try:
        encoder(t)(value)
    except _NotCanonical:
        # check builds fresh containers
        return t.check(value, where() if callable(where) else where)
    return copier(t)(value)


def validated_encoding(
    value: Any, t: Type, where: str | Callable[[], str] = "", copy: bool = True
) -> tuple[Any, bytes]:
    """Validate `value` against `t`; return a normalized copy sharing nothing mutable and its
    canonical bytes (what :func:`validated_copy` then :func:`encode` give, encoding once).

    `where` locates a refused value in the error; it may be a function, called only then.
    With ``copy=False`` the copy is not made (None is returned in its place). A value msgpack
    cannot pack raises as :func:`pack` does.
    """
    from commitdb.copier import copier

    enc = t._enc
    if enc is None:
        enc = encoder(t)
    try:
        w = enc(value)
    except _NotCanonical:
        normalized = t.check(value, where() if callable(where) else where)  # fresh containers
        return normalized, _packb(to_wire(normalized, t))
    return copier(t)(value) if copy else None, _packb(w)


_BLOB_HOLDERS: dict[int, tuple[Type, bool]] = {}


def _type_flag(
    cache: dict[int, tuple[Type, bool]], t: Type, compute: Callable[[Type, Any], bool]
) -> bool:
    """A property of a type, computed once per type object (``compute(t, set())``)."""
    hit = cache.get(id(t))
    if hit is not None and hit[0] is t:
        return hit[1]
    found = compute(t, set())
    if len(cache) >= _SHARED_LIMIT:
        cache.clear()
    cache[id(t)] = (t, found)  # the type is kept: its id stays unique
    return found


def may_hold_blob_ids(t: Type) -> bool:
    """Whether a value of type `t` can contain a ``blob_id`` (``any`` may hold anything).

    Type-driven and cached per type object: values of other types need no walk to find the
    blobs they reference.
    """
    return _type_flag(_BLOB_HOLDERS, t, _holds_blob_ids)


def _holds_blob_ids(t: Type, seen: set[uuid.UUID]) -> bool:
    if isinstance(t, BlobIdType | AnyType):
        return True
    if isinstance(t, NamedType):
        if t.runtime_id in seen:
            return False
        seen.add(t.runtime_id)
    return any(_holds_blob_ids(child, seen) for child in t.children())


def encode(value: Any, t: Type) -> bytes:
    """Validate and encode a value of type `t` to canonical bytes."""
    enc = t._enc
    if enc is None:
        enc = encoder(t)
    try:
        try:
            w = enc(value)  # the fast path of to_wire(), inlined
        except _NotCanonical:
            w = to_wire(value, t)
        return _packb(w)  # type: ignore[no-any-return]
    except (ValueError, OverflowError, UnicodeEncodeError) as exc:
        raise ValidationError(str(t), f"a value msgpack cannot encode ({exc})") from None


# --------------------------------------------------------------------------------------------
# Type descriptors (inside ``any``)


def type_to_wire(t: Type) -> Any:
    """A compact, self-describing wire form of a type (named types by runtime id)."""
    if isinstance(t, NamedType):
        return t.runtime_id.bytes
    if isinstance(t, IntType):
        return t.name
    if isinstance(t, AnyConceptType):
        return "any_concept"
    if isinstance(t, VecType):
        return ["vec", type_to_wire(t.element), t.size]
    if isinstance(t, MatType):
        return ["mat", type_to_wire(t.element), t.columns, t.rows]
    children = t.children()
    if not children:
        return t.kind
    return [t.kind, *(type_to_wire(c) for c in children)]


def type_from_wire(w: Any, definitions: Definitions | None) -> Type:
    """Rebuild a type from :func:`type_to_wire` (named types need `definitions`)."""
    from commitdb import types as T

    if isinstance(w, bytes):
        if len(w) != 16:
            raise DecodeError("a type reference must be 16 bytes")
        if definitions is None:
            raise DecodeError("a named type inside 'any' needs definitions to decode")
        found = definitions.query_type(uuid.UUID(bytes=w))
        if found is None:
            raise DecodeError(f"unknown type id {uuid.UUID(bytes=w)} inside 'any'")
        return found
    if isinstance(w, str):
        if w == "any_concept":
            return T.ANY_CONCEPT
        p = PRIMITIVES.get(w)
        if p is None:
            raise DecodeError(f"unknown type {w!r}")
        return p
    if not isinstance(w, list) or not w or not isinstance(w[0], str):
        raise DecodeError("malformed type descriptor")
    kind, args = w[0], w[1:]
    try:
        if kind == "vec":
            return T.VecType(type_from_wire(args[0], definitions), int(args[1]))
        if kind == "mat":
            return T.MatType(type_from_wire(args[0], definitions), int(args[1]), int(args[2]))
        subs = [type_from_wire(a, definitions) for a in args]
        if kind == "vector":
            return T.VectorType(subs[0])
        if kind == "set":
            return T.SetType(subs[0])
        if kind == "map":
            return T.MapType(subs[0], subs[1])
        if kind == "optional":
            return T.OptionalType(subs[0])
        if kind == "xarray":
            return T.XArrayType(subs[0])
        if kind == "tuple":
            return T.TupleType(subs)
        if kind == "variant":
            return T.VariantType(subs)
        if kind == "key":
            target = subs[0]
            if not isinstance(target, ConceptType | ClubType | AnyConceptType):
                raise DecodeError("key<> of a non-concept")
            return T.KeyType(target)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"malformed type descriptor: {exc}") from None
    raise DecodeError(f"unknown type kind {kind!r}")


def encode_type(t: Type) -> bytes:
    """Canonical bytes of a type descriptor."""
    return _packb(type_to_wire(t))  # type: ignore[no-any-return]


def decode_type(data: bytes, definitions: Definitions | None = None) -> Type:
    """Inverse of :func:`encode_type`."""
    return type_from_wire(unpack(data), definitions)


# --------------------------------------------------------------------------------------------
# Decoders: wire form -> value, validating shape and domain


class _Bad(Exception):
    pass


def _bad(what: str) -> _Bad:
    return _Bad(what)


def _build_decoder(t: Type) -> Decoder:
    if isinstance(t, BoolType):

        def dec_bool(w: Any, d: Definitions | None) -> Any:
            if w is True or w is False:
                return w
            raise _bad("bool")

        return dec_bool
    if isinstance(t, IntType):
        low, high, name = t.low, t.high, t.name

        def dec_int(w: Any, d: Definitions | None) -> Any:
            if type(w) is int and low <= w <= high:
                return w
            raise _bad(name)

        return dec_int
    if isinstance(t, FloatType):
        f32 = _F32.pack
        u32 = _F32.unpack

        def dec_float32(w: Any, d: Definitions | None) -> Any:
            # a float must be a binary32 value (finite values within range, exactly)
            if type(w) is float:
                try:
                    if w != w or u32(f32(w))[0] == w:
                        return w
                except OverflowError:  # beyond the binary32 range
                    pass
            raise _bad("float (binary32)")

        return dec_float32
    if isinstance(t, DoubleType):

        def dec_double(w: Any, d: Definitions | None) -> Any:
            if type(w) is float:
                return w
            raise _bad("double")

        return dec_double
    if isinstance(t, StringType):

        def dec_str(w: Any, d: Definitions | None) -> Any:
            if type(w) is str:
                return w
            raise _bad("string")

        return dec_str
    if isinstance(t, BlobType):

        def dec_blob(w: Any, d: Definitions | None) -> Any:
            if type(w) is bytes:
                return w
            raise _bad("blob")

        return dec_blob
    if isinstance(t, UUIDType):

        def dec_uuid(w: Any, d: Definitions | None) -> Any:
            if type(w) is bytes and len(w) == 16:
                return uuid.UUID(bytes=w)
            raise _bad("uuid")

        return dec_uuid
    if isinstance(t, BlobIdType | CommitIdType):
        cls = BlobId if isinstance(t, BlobIdType) else CommitId

        def dec_id(w: Any, d: Definitions | None) -> Any:
            if type(w) is bytes and len(w) == 32:
                return cls(w)
            raise _bad(t.kind)

        return dec_id
    if isinstance(t, VectorType):
        el = decoder(t.element)
        if el is _DEC_STR:

            def dec_vec_str(w: Any, d: Definitions | None) -> Any:
                if type(w) is not list:
                    raise _bad("vector")
                for x in w:
                    if type(x) is not str:
                        raise _bad("string")
                return w

            return dec_vec_str

        def dec_vector(w: Any, d: Definitions | None) -> Any:
            if type(w) is not list:
                raise _bad("vector")
            return [el(x, d) for x in w]

        return dec_vector
    if isinstance(t, VecType | MatType):
        el = decoder(t.element)
        size = t.size if isinstance(t, VecType) else t.columns * t.rows

        def dec_fixed(w: Any, d: Definitions | None) -> Any:
            if type(w) is not list or len(w) != size:
                raise _bad(str(t))
            return tuple(el(x, d) for x in w)

        return dec_fixed
    if isinstance(t, TupleType):
        decs = [decoder(e) for e in t.elements]
        n = len(decs)

        def dec_tuple(w: Any, d: Definitions | None) -> Any:
            if type(w) is not list or len(w) != n:
                raise _bad(str(t))
            return tuple(f(x, d) for f, x in zip(decs, w, strict=True))

        return dec_tuple
    if isinstance(t, SetType):
        el = decoder(t.element)
        if el is _DEC_STR:

            def dec_set_str(w: Any, d: Definitions | None) -> Any:
                if type(w) is not list:
                    raise _bad("set")
                out = set(w)
                if len(out) != len(w):
                    raise _bad("set (duplicate elements)")
                for x in out:
                    if type(x) is not str:
                        raise _bad("string")
                return out

            return dec_set_str

        def dec_set(w: Any, d: Definitions | None) -> Any:
            if type(w) is not list:
                raise _bad("set")
            out = {el(x, d) for x in w}
            if len(out) != len(w):
                raise _bad("set (duplicate elements)")
            return out

        return dec_set
    if isinstance(t, MapType):
        kd = decoder(t.key)
        vd = decoder(t.value)
        if kd is _DEC_STR and vd is _DEC_I64:

            def dec_map_str_i64(w: Any, d: Definitions | None) -> Any:
                if type(w) is not list or len(w) & 1:
                    raise _bad("map")
                it = iter(w)
                out = dict(zip(it, it, strict=False))
                if len(out) * 2 != len(w):
                    raise _bad("map (duplicate keys)")
                for k in out:
                    if type(k) is not str:
                        raise _bad("string")
                for v in out.values():
                    if type(v) is not int or not -(2**63) <= v < 2**63:
                        raise _bad("int64")
                return out

            return dec_map_str_i64

        def dec_map(w: Any, d: Definitions | None) -> Any:
            if type(w) is not list or len(w) & 1:
                raise _bad("map")
            out = {kd(w[i], d): vd(w[i + 1], d) for i in range(0, len(w), 2)}
            if len(out) * 2 != len(w):
                raise _bad("map (duplicate keys)")
            return out

        return dec_map
    if isinstance(t, OptionalType):
        inner = decoder(t.element)
        if _may_be_nil(t.element):

            def dec_opt_wrapped(w: Any, d: Definitions | None) -> Any:
                if type(w) is not list or len(w) > 1:
                    raise _bad("optional")
                return inner(w[0], d) if w else None

            return dec_opt_wrapped

        def dec_opt(w: Any, d: Definitions | None) -> Any:
            return None if w is None else inner(w, d)

        return dec_opt
    if isinstance(t, VariantType):
        alts = t.alternatives
        decs = [decoder(a) for a in alts]

        def dec_variant(w: Any, d: Definitions | None) -> Any:
            if type(w) is not list or len(w) != 2 or type(w[0]) is not int:
                raise _bad("variant")
            i = w[0]
            if not 0 <= i < len(decs):
                raise _bad("variant alternative index")
            v = decs[i](w[1], d)
            if t.natural_index(v) == i:
                return v
            return Typed(alts[i], v)

        return dec_variant
    if isinstance(t, AnyType):

        def dec_any(w: Any, d: Definitions | None) -> Any:
            if w is None:
                return None
            if type(w) is not list or len(w) != 2:
                raise _bad("any")
            inner_t = type_from_wire(w[0], d)
            if not is_storable(inner_t):
                raise _bad(f"any holding a {inner_t}")
            v = decoder(inner_t)(w[1], d)
            if deduce_type(v) == inner_t:
                return v
            return Typed(inner_t, v)

        return dec_any
    if isinstance(t, KeyType):
        target = t.target
        target_rid = target.runtime_id.bytes
        target_is_concept = isinstance(target, ConceptType)

        def dec_key(w: Any, d: Definitions | None) -> Any:
            if type(w) is not bytes or len(w) != 32:
                raise _bad("key")
            crid = w[:16]
            if crid == target_rid and (target_is_concept or w[16:] == _END_RAW):
                # a club / any_concept names an instance's concept only in the nil default key
                return Key(target, uuid.UUID(bytes=w[16:]))  # type: ignore[arg-type]
            if d is None:
                raise _bad(f"key of another concept than {target} (definitions needed)")
            c = d.query_type(uuid.UUID(bytes=crid))
            if not isinstance(c, ConceptType) or not t.accepts_concept(c):
                raise _bad(f"key of an unknown or foreign concept for {t}")
            return Key(c, uuid.UUID(bytes=w[16:]))

        return dec_key
    if isinstance(t, EnumerationType):
        cases = t.cases

        def dec_enum(w: Any, d: Definitions | None) -> Any:
            if type(w) is int and 0 <= w < len(cases):
                return cases[w]
            raise _bad(f"a case of {t}")

        return dec_enum
    if isinstance(t, StructureType):
        return _struct_decoder(t)
    if isinstance(t, XArrayType):
        el = decoder(t.element)
        new_xarray = XArray.__new__

        def dec_xarray(w: Any, d: Definitions | None) -> Any:
            if type(w) is not list or len(w) != 3:
                raise _bad("xarray")
            order, live, tombs = w
            if type(order) is not list or type(live) is not list or type(tombs) is not list:
                raise _bad("xarray")
            n = len(order)
            if len(live) + len(tombs) != n:
                raise _bad("xarray positions")
            for p in order:
                if type(p) is not bytes or len(p) != 16:
                    raise _bad("xarray position")
            if tombs:
                if len(set(order)) != n or _END_RAW in order:
                    raise _bad("xarray positions")
                if sorted(set(tombs)) != tombs or not all(
                    type(i) is int and 0 <= i < n for i in tombs
                ):
                    raise _bad("xarray tombstones")
                dead = set(tombs)
                live_order = [p for i, p in enumerate(order) if i not in dead]
            else:
                live_order = order
            if el is _DEC_STR:
                for x in live:
                    if type(x) is not str:
                        raise _bad("string")
                values = dict(zip(live_order, live, strict=False))
            else:
                values = {p: el(x, d) for p, x in zip(live_order, live, strict=False)}
            # without tombstones every position is a key: the dict checks uniqueness
            if not tombs and (len(values) != n or _END_RAW in values):
                raise _bad("xarray positions")
            xa = new_xarray(XArray)
            xa._order = order
            xa._values = values
            return xa

        return dec_xarray
    if isinstance(t, VoidType):

        def dec_void(w: Any, d: Definitions | None) -> Any:
            if w is None:
                return None
            raise _bad("void")

        return dec_void
    raise DecodeError(f"type {t} cannot be decoded")


def _struct_decoder(t: StructureType) -> Decoder:
    cls = t.value_class
    names = [f.name for f in t.fields]
    env: dict[str, Any] = {
        "cls": cls,
        "new": object.__new__,
        "Bad": _Bad,
        "n": len(names),
        "XArray": XArray,
        "END": _END_RAW,
    }
    resolved: list[Decoder] = []

    def resolve() -> Decoder:
        for i, f in enumerate(t.fields):
            env[f"d{i}"] = decoder(f.type)
        lines = []
        str_checks = []
        for i, (name, f) in enumerate(zip(names, t.fields, strict=True)):
            if env[f"d{i}"] is _DEC_STR:
                lines.append(_set_attr("o", name, f"w{i}"))
                str_checks.append(f"type(w{i}) is not str")
            elif env[f"d{i}"] is _DEC_I64:  # inlined: no call per int64 field
                lines.append(_set_attr("o", name, f"w{i}"))
                str_checks.append(f"type(w{i}) is not int or not {-(2**63)} <= w{i} <= {2**63 - 1}")
            else:
                inline = _inline_field_decoder(f.type, i)
                if inline is None:
                    lines.append(_set_attr("o", name, f"d{i}(w{i}, d)"))
                else:
                    lines.extend(inline)
                    lines.append(_set_attr("o", name, f"v{i}"))
        src = (
            "def dec_struct(w, d):\n"
            "    if type(w) is not list or len(w) != n:\n"
            f"        raise Bad({str(t)!r})\n"
            + f"    {''.join(f'w{i}, ' for i in range(len(names)))}= w\n"
            + (
                f"    if {' or '.join(str_checks)}:\n        raise Bad('string or int64 field')\n"
                if str_checks
                else ""
            )
            + "    o = new(cls)\n"
            + "\n".join(lines)
            + "\n    return o\n"
        )
        exec(src, env)
        env["dec_struct"].value_class = cls  # what it builds (see decode_trusted)
        resolved.append(env["dec_struct"])
        t._dec = resolved[0]
        if _rid_determined(t) and len(_decoders) < _SHARED_LIMIT:
            _decoders[t.runtime_id] = resolved[0]
        return resolved[0]

    def dec_struct_first(w: Any, d: Definitions | None) -> Any:
        return (resolved[0] if resolved else resolve())(w, d)

    dec_struct_first.value_class = cls  # type: ignore[attr-defined]
    return dec_struct_first


def _inline_field_decoder(t: Type, i: int) -> list[str] | None:
    """Source lines decoding field ``w{i}`` into ``v{i}`` inside a generated structure
    decoder, for the common container types of strings and int64 (the same checks, in the
    same order, as their own decoders; an xarray with tombstones calls its decoder ``d{i}``).
    None for other types."""
    w, v = f"w{i}", f"v{i}"
    i64 = f"type(x) is not int or not {-(2**63)} <= x <= {2**63 - 1}"
    if isinstance(t, SetType) and isinstance(t.element, StringType):
        return [
            f"    if type({w}) is not list:",
            "        raise Bad('set')",
            f"    {v} = set({w})",
            f"    if len({v}) != len({w}):",
            "        raise Bad('set (duplicate elements)')",
            f"    for x in {v}:",
            "        if type(x) is not str:",
            "            raise Bad('string')",
        ]
    if (
        isinstance(t, MapType)
        and isinstance(t.key, StringType)
        and isinstance(t.value, IntType)
        and t.value.bits == 64
        and t.value.signed
    ):
        return [
            f"    if type({w}) is not list or len({w}) & 1:",
            "        raise Bad('map')",
            f"    it = iter({w})",
            f"    {v} = dict(zip(it, it))",
            f"    if len({v}) * 2 != len({w}):",
            "        raise Bad('map (duplicate keys)')",
            f"    for x in {v}:",
            "        if type(x) is not str:",
            "            raise Bad('string')",
            f"    for x in {v}.values():",
            f"        if {i64}:",
            "            raise Bad('int64')",
        ]
    if isinstance(t, XArrayType) and isinstance(t.element, StringType):
        return [
            f"    if type({w}) is not list or len({w}) != 3:",
            "        raise Bad('xarray')",
            f"    order, live, tombs = {w}",
            "    if type(order) is not list or type(live) is not list or type(tombs) is not list:",
            "        raise Bad('xarray')",
            "    if len(live) + len(tombs) != len(order):",
            "        raise Bad('xarray positions')",
            "    for x in order:",
            "        if type(x) is not bytes or len(x) != 16:",
            "            raise Bad('xarray position')",
            "    if tombs:",
            f"        {v} = d{i}({w}, d)",
            "    else:",
            "        for x in live:",
            "            if type(x) is not str:",
            "                raise Bad('string')",
            "        values = dict(zip(order, live))",
            "        if len(values) != len(order) or END in values:",
            "            raise Bad('xarray positions')",
            f"        {v} = new(XArray)",
            f"        {v}._order = order",
            f"        {v}._values = values",
        ]
    return None


def _lazy_dec(t: Type) -> Decoder:
    cell: list[Decoder] = []

    def dec_lazy(w: Any, d: Definitions | None) -> Any:
        if not cell:
            cell.append(decoder(t))
        return cell[0](w, d)

    return dec_lazy


def _dec_str(w: Any, d: Definitions | None) -> Any:
    if type(w) is str:
        return w
    raise _bad("string")


def _dec_i64(w: Any, d: Definitions | None) -> Any:
    if type(w) is int and -(2**63) <= w < 2**63:
        return w
    raise _bad("int64")


_DEC_STR: Decoder = _dec_str
_DEC_I64: Decoder = _dec_i64
_decoders: dict[uuid.UUID, Decoder] = {}


def decoder(t: Type) -> Decoder:
    """The compiled decoder of a type (per type object; see :func:`_rid_determined`)."""
    dec: Decoder | None = t._dec
    if dec is not None:
        return dec
    shared = _rid_determined(t)
    if shared:
        dec = _decoders.get(t.runtime_id)
    if dec is None:
        if isinstance(t, StringType):
            dec = _DEC_STR
        elif isinstance(t, IntType) and t.bits == 64 and t.signed:
            dec = _DEC_I64
        else:
            dec = _build_decoder(t)
        if shared and len(_decoders) < _SHARED_LIMIT:
            _decoders[t.runtime_id] = dec
    if t._dec is None:
        t._dec = dec
    return dec


_DECODE_FAILURES = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    OverflowError,
)


def from_wire(w: Any, t: Type, definitions: Definitions | None = None) -> Any:
    """Rebuild a value from its wire form (raises DecodeError)."""
    try:
        return decoder(t)(w, definitions)
    except _Bad as exc:
        raise DecodeError(f"not a canonical {t}: bad {exc}") from None
    except DecodeError:
        raise
    except _DECODE_FAILURES as exc:
        raise DecodeError(f"not a canonical {t}: {exc}") from None


def decode(
    data: bytes | bytearray | memoryview, t: Type, definitions: Definitions | None = None
) -> Any:
    """Decode canonical bytes of type `t` (named types inside ``any`` and keys of
    sub-concepts need `definitions`)."""
    # unpack() and from_wire() inlined: this is the hot path
    try:
        w = msgpack.unpackb(data)
    except Exception as exc:
        raise DecodeError(f"malformed msgpack: {exc}") from None
    dec = t._dec
    if dec is None:
        dec = decoder(t)
    try:
        return dec(w, definitions)
    except _Bad as exc:
        raise DecodeError(f"not a canonical {t}: bad {exc}") from None
    except DecodeError:
        raise
    except _DECODE_FAILURES as exc:
        raise DecodeError(f"not a canonical {t}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Trusted decoding: bytes commitdb encoded itself


def decode_trusted(
    data: bytes | bytearray | memoryview, t: Type, definitions: Definitions | None = None
) -> Any:
    """Decode canonical bytes that commitdb itself encoded and stored (the snapshots of the
    commit engine, the documents of a flat database).

    The value is rebuilt following the wire form of `t` without the per-element checks of
    :func:`decode` (element types, integer ranges, duplicates), which cost as much as the
    rebuilding: they guard against bytes from elsewhere, and these were checked when they
    were encoded. Anything that does not fit the expected shape makes it decode again with
    :func:`decode`, which raises the precise :class:`DecodeError`. Bytes altered outside
    commitdb may decode to a value that does not match `t` instead of raising.
    """
    try:
        w = msgpack.unpackb(data)
        hit = _trusted.get(id(t))
        dec = hit[1] if hit is not None and hit[0] is t else trusted_decoder(t)
        return dec(w, definitions)
    except Exception:  # any misfit: decode the checked way (and raise what it raises)
        return decode(data, t, definitions)


_trusted: dict[int, tuple[Type, Decoder]] = {}

BytesDecoder = Callable[[bytes, "Definitions | None"], Any]


def trusted_bytes_decoder(t: Type) -> BytesDecoder:
    """:func:`decode_trusted` for one type, as a function of the bytes and definitions
    (for readers that decode many documents of the same type: no per-call type lookup)."""
    dec = trusted_decoder(t)
    resolve = getattr(dec, "resolve", None)
    if resolve is not None:  # a structure's decoder compiled on first use: compile it now
        dec = resolve()
    unpackb = msgpack.unpackb

    def decode_bytes(data: bytes, definitions: Definitions | None) -> Any:
        try:
            return dec(unpackb(data), definitions)
        except Exception:  # any misfit: decode the checked way (and raise what it raises)
            return decode(data, t, definitions)

    return decode_bytes


def _same_wire(w: Any, d: Definitions | None) -> Any:
    return w


_trusted_shared: dict[uuid.UUID, Decoder] = {}


def trusted_decoder(t: Type) -> Decoder:
    """The compiled decoder of :func:`decode_trusted` for a type (per type object, and
    shared by runtime id like :func:`decoder`: reopening a database builds new type objects,
    which then find their decoders compiled)."""
    hit = _trusted.get(id(t))
    if hit is not None and hit[0] is t:
        return hit[1]
    shared = _rid_determined(t)
    dec = _trusted_shared.get(t.runtime_id) if shared else None
    if dec is None:
        # a structure is registered before its fields are compiled: a recursive type finds
        # itself
        dec = _trusted_struct(t) if isinstance(t, StructureType) else _build_trusted(t)
        if shared and len(_trusted_shared) < _SHARED_LIMIT:
            _trusted_shared[t.runtime_id] = dec
    _remember_trusted(t, dec)
    return dec


def _remember_trusted(t: Type, dec: Decoder) -> None:
    if len(_trusted) >= _SHARED_LIMIT:
        _trusted.clear()
    _trusted[id(t)] = (t, dec)  # the type is kept: its id stays unique


def _build_trusted(t: Type) -> Decoder:
    if isinstance(t, BoolType | IntType | FloatType | DoubleType | StringType | BlobType):
        return _same_wire
    if isinstance(t, VoidType):
        return _same_wire
    if isinstance(t, UUIDType):
        return lambda w, d: uuid.UUID(bytes=w)
    if isinstance(t, BlobIdType | CommitIdType):
        cls = BlobId if isinstance(t, BlobIdType) else CommitId
        return lambda w, d: cls(w)
    if isinstance(t, EnumerationType):
        cases = t.cases
        return lambda w, d: cases[w]
    if isinstance(t, VectorType):
        el = trusted_decoder(t.element)
        if el is _same_wire:
            return _same_wire  # the list msgpack just built
        return lambda w, d: [el(x, d) for x in w]
    if isinstance(t, VecType | MatType):
        el = trusted_decoder(t.element)
        if el is _same_wire:
            return lambda w, d: tuple(w)
        return lambda w, d: tuple([el(x, d) for x in w])
    if isinstance(t, SetType):
        el = trusted_decoder(t.element)
        if el is _same_wire:
            return lambda w, d: set(w)
        return lambda w, d: {el(x, d) for x in w}
    if isinstance(t, MapType):
        kd = trusted_decoder(t.key)
        vd = trusted_decoder(t.value)
        if kd is _same_wire and vd is _same_wire:

            def dec_map_plain(w: Any, d: Definitions | None) -> Any:
                it = iter(w)
                return dict(zip(it, it, strict=False))

            return dec_map_plain
        return lambda w, d: {kd(w[i], d): vd(w[i + 1], d) for i in range(0, len(w), 2)}
    if isinstance(t, OptionalType):
        inner = trusted_decoder(t.element)
        if _may_be_nil(t.element):
            return lambda w, d: inner(w[0], d) if w else None
        return lambda w, d: None if w is None else inner(w, d)
    if isinstance(t, XArrayType):
        return _trusted_xarray(t)
    # key, tuple, variant, any: the checked decoder (their checks are part of the decoding)
    return decoder(t)


def _trusted_xarray(t: XArrayType) -> Decoder:
    el = trusted_decoder(t.element)
    new_xarray = XArray.__new__

    def dec_xarray_trusted(w: Any, d: Definitions | None) -> Any:
        order, live, tombs = w
        if tombs:
            dead = set(tombs)
            live_order = [p for i, p in enumerate(order) if i not in dead]
        else:
            live_order = order
        if el is _same_wire:
            values = dict(zip(live_order, live, strict=False))
        else:
            values = {p: el(x, d) for p, x in zip(live_order, live, strict=False)}
        xa = new_xarray(XArray)
        xa._order = order
        xa._values = values
        return xa

    return dec_xarray_trusted


def _trusted_struct(t: StructureType) -> Decoder:
    # Generated code, as for the checked decoder: fields whose wire form is their value are
    # stored as they come, with no call.
    names = [f.name for f in t.fields]
    env: dict[str, Any] = {"new": object.__new__, "XArray": XArray}
    resolved: list[Decoder] = []

    def resolve() -> Decoder:
        # The class the checked decoder builds (it is shared by runtime id, so it may be
        # another type object's): both decoders give values of the same class.
        env["cls"] = getattr(decoder(t), "value_class", t.value_class)
        lines = []
        for i, (name, f) in enumerate(zip(names, t.fields, strict=True)):
            dec = trusted_decoder(f.type)
            env[f"d{i}"] = dec
            ft = f.type
            # containers of values whose wire form is the value are built inline
            if dec is _same_wire:
                expr = f"w{i}"
            elif isinstance(ft, SetType) and trusted_decoder(ft.element) is _same_wire:
                expr = f"set(w{i})"
            elif (
                isinstance(ft, MapType)
                and trusted_decoder(ft.key) is _same_wire
                and trusted_decoder(ft.value) is _same_wire
            ):
                lines.append(f"    it = iter(w{i})")
                expr = "dict(zip(it, it))"
            elif isinstance(ft, XArrayType) and trusted_decoder(ft.element) is _same_wire:
                lines += [
                    f"    order, live, tombs = w{i}",
                    "    if tombs:",
                    f"        x = d{i}(w{i}, d)",
                    "    else:",
                    "        x = new(XArray)",
                    "        x._order = order",
                    "        x._values = dict(zip(order, live))",
                ]
                expr = "x"
            else:
                expr = f"d{i}(w{i}, d)"
            lines.append(_set_attr("o", name, expr))
        unpacked = "".join(f"w{i}, " for i in range(len(names)))
        src = (
            "def dec_struct_trusted(w, d):\n"
            + (f"    {unpacked}= w\n" if names else "    if w:\n        raise ValueError\n")
            + "    o = new(cls)\n"
            + "\n".join(lines)
            + "\n    return o\n"
        )
        exec(src, env)
        resolved.append(env["dec_struct_trusted"])
        _remember_trusted(t, resolved[0])
        if _trusted_shared.get(t.runtime_id) is dec_struct_trusted_first:
            _trusted_shared[t.runtime_id] = resolved[0]  # later type objects skip the wrapper
        return resolved[0]

    def dec_struct_trusted_first(w: Any, d: Definitions | None) -> Any:
        return (resolved[0] if resolved else resolve())(w, d)

    dec_struct_trusted_first.resolve = lambda: resolved[0] if resolved else resolve()  # type: ignore[attr-defined]
    return dec_struct_trusted_first


# --------------------------------------------------------------------------------------------
# Checked decoding that also tells whether the input was canonical (bytes from a peer that can
# be recorded as received)

_STRICT_LAYOUT: dict[int, tuple[Type, bool]] = {}


def _strict_layout(t: Type, seen: set[uuid.UUID]) -> bool:
    """True if every wire form the checking decoder accepts for `t` re-encodes to itself.

    Sets, maps, xarrays, variants, ``any`` and optionals of types that may be nil are excluded
    (their decoders accept other orders or forms); the other decoders accept exactly one wire
    form per value.
    """
    if isinstance(t, SetType | MapType | XArrayType | VariantType | AnyType):
        return False
    if isinstance(t, KeyType):  # 32 bytes, whatever the target
        return True
    if isinstance(t, OptionalType) and _may_be_nil(t.element):
        return False  # ``[]`` and ``[nil]`` may both decode to None
    if isinstance(t, NamedType):
        if t.runtime_id in seen:  # a recursive type: its other parts decide
            return True
        seen.add(t.runtime_id)
    return all(_strict_layout(child, seen) for child in t.children())


def strict_layout(t: Type) -> bool:
    """Whether the checking decoder of `t` accepts only canonical wire forms (cached per type
    object): then bytes that decode and repack to themselves are the canonical encoding."""
    return _type_flag(_STRICT_LAYOUT, t, _strict_layout)


def decode_canonical(
    data: bytes, t: Type, definitions: Definitions | None = None
) -> tuple[Any, bool]:
    """:func:`decode`, also telling whether `data` is exactly the canonical encoding of the
    decoded value (what :func:`encode` gives for it).

    Refuses exactly what :func:`decode` refuses (DecodeError). True is certain: `data` may
    then be stored as received. False means "not known to be canonical" (another msgpack
    layout, or a type whose decoder accepts several layouts): re-encode the value.
    """
    try:
        w = msgpack.unpackb(data)
    except Exception as exc:
        raise DecodeError(f"malformed msgpack: {exc}") from None
    dec = t._dec
    if dec is None:
        dec = decoder(t)
    try:
        value = dec(w, definitions)
    except _Bad as exc:
        raise DecodeError(f"not a canonical {t}: bad {exc}") from None
    except DecodeError:
        raise
    except _DECODE_FAILURES as exc:
        raise DecodeError(f"not a canonical {t}: {exc}") from None
    hit = _STRICT_LAYOUT.get(id(t))
    strict = hit[1] if hit is not None and hit[0] is t else strict_layout(t)
    return value, strict and _packb(w) == data
