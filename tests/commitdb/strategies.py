"""Hypothesis strategies for generated DSM types and values of those types.

Reusable by any test file::

    from tests.commitdb.strategies import schemas, types_and_values

    @given(types_and_values())
    def test_something(tv: TypeAndValue) -> None:
        encode(tv.value, tv.type)

A :class:`Schema` is a fresh :class:`~commitdb.definitions.Definitions` holding a small concept
hierarchy (``Root``, ``Mid is a Root``, ``Leaf is a Mid``, ``Other``), a club ``Club`` (members
``Mid`` and ``Other``) and whatever structures and enumerations the type strategy registers in
it while drawing. Values drawn by :func:`values` are *inputs*: they may use accepted spellings
(enumeration names, ordinals, dicts for structures, plain lists for xarrays, nested matrices);
``type.check(value)`` gives the normalized value.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from commitdb.definitions import Definitions
from commitdb.errors import DefinitionError
from commitdb.ids import BlobId, CommitId
from commitdb.types import (
    ANY,
    ANY_CONCEPT,
    BLOB,
    BLOB_ID,
    BOOL,
    COMMIT_ID,
    DOUBLE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    UUID,
    AnyType,
    BlobIdType,
    BlobType,
    BoolType,
    ClubType,
    CommitIdType,
    ConceptType,
    DoubleType,
    EnumerationType,
    Field,
    FloatType,
    IntType,
    KeyType,
    MapType,
    MatType,
    Namespace,
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
    XArrayType,
    is_hashable_type,
)
from commitdb.values import NIL_UUID, EnumCase, Key, StructValue, Typed, XArray

__all__ = (
    "NUMERIC",
    "PRIMITIVE_TYPES",
    "Schema",
    "TypeAndValue",
    "rebuild_shuffled",
    "same_value",
    "schemas",
    "types",
    "types_and_values",
    "values",
)

SCHEMA_NS = "6a0c1f3e-52b7-4d38-9a1e-7c4b2f9d8e01"

PRIMITIVE_TYPES: tuple[Type, ...] = (
    BOOL,
    INT8,
    INT16,
    INT32,
    INT64,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    FLOAT,
    DOUBLE,
    STRING,
    UUID,
    BLOB,
    BLOB_ID,
    COMMIT_ID,
)
"""Every storable leaf type (``any`` is drawn separately)."""

NUMERIC: tuple[Type, ...] = (
    INT8,
    INT16,
    INT32,
    INT64,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    FLOAT,
    DOUBLE,
)
"""Element types accepted by ``vec`` and ``mat``."""

_FIELD_NAMES = ("a", "b", "value", "name", "items", "count", "class", "from", "None", "key", "x1")
_CASE_NAMES = ("red", "green", "blue", "a", "b", "c", "none", "set", "True")


@dataclass
class Schema:
    """A fresh Definitions with a concept hierarchy and a club, grown by the type strategy."""

    definitions: Definitions
    namespace: Namespace
    root: ConceptType
    mid: ConceptType
    leaf: ConceptType
    other: ConceptType
    club: ClubType
    named: list[Type] = field(default_factory=list)
    counter: int = 0

    @property
    def concepts(self) -> list[ConceptType]:
        """Every concept of the schema."""
        return [self.root, self.mid, self.leaf, self.other]

    def next_name(self, prefix: str) -> str:
        """A fresh type name."""
        self.counter += 1
        return f"{prefix}{self.counter}"


def make_schema() -> Schema:
    """Build the base schema (deterministic: same runtime ids in every process)."""
    defs = Definitions()
    ns = defs.namespace("Gen", SCHEMA_NS)
    root = defs.create_concept(ns, "Root")
    mid = defs.create_concept(ns, "Mid", parent=root)
    leaf = defs.create_concept(ns, "Leaf", parent=mid)
    other = defs.create_concept(ns, "Other")
    club = defs.create_club(ns, "Club")
    defs.create_membership(club, mid)
    defs.create_membership(club, other)
    return Schema(defs, ns, root, mid, leaf, other, club)


def schemas() -> st.SearchStrategy[Schema]:
    """A fresh base schema per example."""
    return st.builds(make_schema)


# --------------------------------------------------------------------------------------------
# Types


def _leaf_types(schema: Schema) -> st.SearchStrategy[Type]:
    keys = st.sampled_from(
        [KeyType(c) for c in schema.concepts] + [KeyType(schema.club), KeyType(ANY_CONCEPT)]
    )
    return st.one_of(st.sampled_from(PRIMITIVE_TYPES), st.just(ANY), keys)


def types(schema: Schema, max_leaves: int = 6) -> st.SearchStrategy[Type]:
    """Random storable types; structures and enumerations are registered in `schema`."""

    @st.composite
    def enums(draw: st.DrawFn) -> Type:
        cases = draw(st.lists(st.sampled_from(_CASE_NAMES), min_size=1, max_size=4, unique=True))
        t = schema.definitions.create_enumeration(schema.namespace, schema.next_name("Enum"), cases)
        schema.named.append(t)
        return t

    def extend(children: st.SearchStrategy[Type]) -> st.SearchStrategy[Type]:
        hashable = children.filter(is_hashable_type)

        @st.composite
        def structs(draw: st.DrawFn) -> Type:
            names = draw(
                st.lists(st.sampled_from(_FIELD_NAMES), min_size=1, max_size=3, unique=True)
            )
            fields = []
            for n in names:
                ft = draw(children)
                default = None
                if draw(st.booleans()):
                    default = draw(values(ft, schema, depth=1))
                try:
                    fields.append(Field(n, ft, default))
                except DefinitionError:  # non-finite or non-empty xarray defaults are refused
                    fields.append(Field(n, ft))
            t = schema.definitions.create_structure(
                schema.namespace, schema.next_name("Struct"), fields
            )
            schema.named.append(t)
            return t

        numeric = st.sampled_from(NUMERIC)
        return st.one_of(
            children.map(VectorType),
            hashable.map(SetType),
            st.builds(MapType, hashable, children),
            children.map(OptionalType),
            children.map(XArrayType),
            st.lists(children, min_size=1, max_size=3).map(TupleType),
            st.lists(children, min_size=1, max_size=3, unique_by=lambda t: t.runtime_id).map(
                VariantType
            ),
            st.builds(VecType, numeric, st.integers(1, 4)),
            st.builds(MatType, numeric, st.integers(1, 3), st.integers(1, 3)),
            structs(),
            enums(),
        )

    return st.recursive(st.one_of(_leaf_types(schema), enums()), extend, max_leaves=max_leaves)


# --------------------------------------------------------------------------------------------
# Values


def _floats(width: int, nan: bool) -> st.SearchStrategy[float]:
    exact = st.floats(width=width, allow_nan=nan)  # type: ignore[arg-type]
    if width == 32:
        # doubles that float rounds to binary32, within the range
        rounded = st.floats(min_value=-3.0e38, max_value=3.0e38)
        return st.one_of(exact, rounded)
    return exact


def values(t: Type, schema: Schema, *, nan: bool = True, depth: int = 3) -> st.SearchStrategy[Any]:
    """Input values of type `t` (possibly in an accepted non-normalized spelling).

    `nan=False` keeps NaN out (set elements and map keys: Python sets cannot dedupe NaN).
    `depth` bounds the nesting of types chosen for ``any`` contents.
    """
    if isinstance(t, BoolType):
        return st.booleans()
    if isinstance(t, IntType):
        return st.one_of(st.integers(t.low, t.high), st.sampled_from([t.low, t.high, 0]))
    if isinstance(t, FloatType):
        return _floats(32, nan)
    if isinstance(t, DoubleType):
        return st.one_of(_floats(64, nan), st.integers(-(2**53), 2**53))
    if isinstance(t, StringType):
        return st.text(st.characters(codec="utf-8"), max_size=8)
    if isinstance(t, UUIDType):
        return st.one_of(st.uuids(), st.just(NIL_UUID), st.uuids().map(str))
    if isinstance(t, BlobType):
        return st.one_of(st.binary(max_size=12), st.binary(max_size=4).map(bytearray))
    if isinstance(t, BlobIdType):
        return st.binary(min_size=32, max_size=32).map(BlobId)
    if isinstance(t, CommitIdType):
        return st.binary(min_size=32, max_size=32).map(CommitId)
    if isinstance(t, VectorType):
        return st.lists(values(t.element, schema, nan=nan, depth=depth), max_size=4)
    if isinstance(t, SetType):
        return st.lists(values(t.element, schema, nan=False, depth=depth), max_size=4).map(
            set_of(t)
        )
    if isinstance(t, MapType):
        return st.lists(
            st.tuples(
                values(t.key, schema, nan=False, depth=depth),
                values(t.value, schema, nan=nan, depth=depth),
            ),
            max_size=4,
        ).map(map_of(t))
    if isinstance(t, OptionalType):
        return st.one_of(st.none(), values(t.element, schema, nan=nan, depth=depth))
    if isinstance(t, TupleType):
        return st.tuples(*(values(e, schema, nan=nan, depth=depth) for e in t.elements))
    if isinstance(t, VecType):
        return st.tuples(*[values(t.element, schema, nan=nan)] * t.size)
    if isinstance(t, MatType):
        column = st.lists(values(t.element, schema, nan=nan), min_size=t.rows, max_size=t.rows)
        nested = st.lists(column, min_size=t.columns, max_size=t.columns)
        return st.one_of(nested, nested.map(lambda cols: tuple(x for c in cols for x in c)))
    if isinstance(t, VariantType):
        return _variant_values(t, schema, nan, depth)
    if isinstance(t, AnyType):
        return _any_values(schema, nan, depth)
    if isinstance(t, KeyType):
        return _key_values(t, schema)
    if isinstance(t, EnumerationType):
        return _enum_values(t)
    if isinstance(t, StructureType):
        return _struct_values(t, schema, nan, depth)
    if isinstance(t, XArrayType):
        return _xarray_values(t, schema, nan, depth)
    raise AssertionError(f"no value strategy for {t}")


def set_of(t: SetType) -> Callable[[list[Any]], set[Any]]:
    """Build a set of normalized elements (inputs in other spellings may be unhashable)."""
    check = t.element.check
    return lambda xs: {check(x) for x in xs}


def map_of(t: MapType) -> Callable[[list[tuple[Any, Any]]], dict[Any, Any]]:
    """Build a dict with normalized keys."""
    check = t.key.check
    return lambda kvs: {check(k): v for k, v in kvs}


def _variant_values(t: VariantType, schema: Schema, nan: bool, depth: int) -> Any:
    def pick(i: int) -> st.SearchStrategy[Any]:
        alt = t.alternatives[i]
        inner = values(alt, schema, nan=nan, depth=depth)
        # Typed names the alternative; a plain value goes to its natural alternative
        return st.one_of(inner.map(lambda v: Typed(alt, v)), inner)

    return st.integers(0, len(t.alternatives) - 1).flatmap(pick)


def _any_content_types(schema: Schema, depth: int) -> list[Type]:
    out: list[Type] = [
        INT8,
        UINT64,
        FLOAT,
        STRING,
        BOOL,
        UUID,
        BLOB_ID,
        VectorType(STRING),
        MapType(INT64, DOUBLE),
        SetType(UUID),
        OptionalType(INT64),
        OptionalType(OptionalType(STRING)),
        TupleType([VectorType(INT64), BOOL]),
        XArrayType(INT32),
        VariantType([DOUBLE, INT64]),
        VecType(FLOAT, 3),
        MatType(INT16, 2, 2),
        KeyType(schema.root),
        KeyType(schema.club),
        KeyType(ANY_CONCEPT),
    ]
    if depth > 1:
        out.append(ANY)
        out.extend(schema.named)
    return out


def _any_values(schema: Schema, nan: bool, depth: int) -> st.SearchStrategy[Any]:
    deducible = st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=nan),
        st.text(st.characters(codec="utf-8"), max_size=6),
        st.binary(max_size=6),
        st.uuids(),
        st.sampled_from(schema.concepts).map(Key),
    )

    if depth <= 0:
        return st.one_of(st.none(), deducible)

    def typed(t: Type) -> st.SearchStrategy[Any]:
        return values(t, schema, nan=nan, depth=depth - 1).map(lambda v: Typed(t, v))

    typed_values = st.sampled_from(_any_content_types(schema, depth)).flatmap(typed)
    return st.one_of(st.none(), deducible, typed_values)


def _key_values(t: KeyType, schema: Schema) -> st.SearchStrategy[Any]:
    target = t.target
    if isinstance(target, ConceptType):
        concepts = [c for c in schema.concepts if c.is_a(target)]
    elif isinstance(target, ClubType):
        concepts = sorted(target.members, key=lambda c: c.name)
    else:
        concepts = schema.concepts
    ids = st.one_of(st.uuids(), st.just(NIL_UUID))
    keys = st.builds(Key, st.sampled_from(concepts), ids)
    return st.one_of(keys, st.just(t.default()))


def _enum_values(t: EnumerationType) -> st.SearchStrategy[Any]:
    def spellings(c: EnumCase) -> st.SearchStrategy[Any]:
        return st.sampled_from(
            [c, c.name, f".{c.name}", f"{t.name}.{c.name}", f"{t.qualified_name}.{c.name}", c.index]
        )

    return st.sampled_from(t.cases).flatmap(spellings)


def _struct_values(t: StructureType, schema: Schema, nan: bool, depth: int) -> Any:
    @st.composite
    def build(draw: st.DrawFn) -> Any:
        data = {}
        for f in t.fields:
            if draw(st.booleans()):  # missing fields take their defaults
                data[f.name] = draw(values(f.type, schema, nan=nan, depth=depth))
        if draw(st.booleans()):
            return data
        return t(**data)

    return build()


def _xarray_values(t: XArrayType, schema: Schema, nan: bool, depth: int) -> Any:
    @st.composite
    def build(draw: st.DrawFn) -> Any:
        items = draw(st.lists(values(t.element, schema, nan=nan, depth=depth), max_size=5))
        if draw(st.booleans()):
            return items  # a plain list gets fresh positions
        xa = XArray()
        rng = random.Random(draw(st.integers(0, 2**32)))
        for v in items:
            positions = xa.positions()  # tombstones count as anchors too
            before = positions[rng.randrange(len(positions))]
            xa.insert(before, v, uuid.UUID(int=rng.getrandbits(128) | 1))
            if rng.random() < 0.3:
                xa.remove(xa.live_positions()[rng.randrange(len(xa))])
        return xa

    return build()


@dataclass
class TypeAndValue:
    """A drawn schema, a type registered in it and an input value of that type."""

    schema: Schema
    type: Type
    value: Any

    @property
    def definitions(self) -> Definitions:
        """The schema's definitions (needed to decode keys of sub-concepts and ``any``)."""
        return self.schema.definitions


@st.composite
def types_and_values(draw: st.DrawFn, max_leaves: int = 6) -> TypeAndValue:
    """A schema, a random type and a random input value of it."""
    schema = draw(schemas())
    t = draw(types(schema, max_leaves))
    v = draw(values(t, schema))
    return TypeAndValue(schema, t, v)


# --------------------------------------------------------------------------------------------
# Helpers for properties


def same_value(a: Any, b: Any) -> bool:
    """Structural equality where NaN equals NaN and -0.0 differs from 0.0 (bit-faithful)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is not type(b) and not (isinstance(a, StructValue) and isinstance(b, StructValue)):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, StructValue):
        return a._type == b._type and all(
            same_value(getattr(a, f), getattr(b, f)) for f in a._fields
        )
    if isinstance(a, XArray):
        return a.positions() == b.positions() and same_value(a.items(), b.items())
    if isinstance(a, Typed):
        return a.type == b.type and same_value(a.value, b.value)
    return bool(a == b)


def rebuild_shuffled(value: Any, rng: random.Random) -> Any:
    """An equal value whose sets and dicts were built in a shuffled insertion order."""
    if isinstance(value, set):
        items = [rebuild_shuffled(x, rng) for x in value]
        rng.shuffle(items)
        return set(items)
    if isinstance(value, dict):
        pairs = [(rebuild_shuffled(k, rng), rebuild_shuffled(v, rng)) for k, v in value.items()]
        rng.shuffle(pairs)
        return dict(pairs)
    if isinstance(value, list):
        return [rebuild_shuffled(x, rng) for x in value]
    if isinstance(value, tuple):
        return tuple(rebuild_shuffled(x, rng) for x in value)
    if isinstance(value, StructValue):
        return value._type.value_class(
            **{f: rebuild_shuffled(getattr(value, f), rng) for f in value._fields}
        )
    if isinstance(value, XArray):
        items = list(value._values.items())
        rng.shuffle(items)
        return XArray._from_parts(
            list(value._order), {p: rebuild_shuffled(v, rng) for p, v in items}
        )
    if isinstance(value, Typed):
        return Typed(value.type, rebuild_shuffled(value.value, rng))
    return value
