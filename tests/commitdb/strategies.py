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
)
from commitdb.values import NIL_UUID, Key, StructValue, Typed, XArray

__all__ = (
    "NUMERIC",
    "PRIMITIVE_TYPES",
    "SCHEMA_NS",
    "Schema",
    "TypeAndValue",
    "make_schema",
    "materialize",
    "rebuild_shuffled",
    "same_value",
    "schemas",
    "type_specs",
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
#
# A type is drawn as a *spec* (plain nested tuples, from one strategy built once: building a
# recursive strategy per example costs more than the test) and then materialized in a schema.

_PRIMITIVE_NAMES = tuple(str(t) for t in PRIMITIVE_TYPES)
_BY_NAME: dict[str, Type] = {str(t): t for t in PRIMITIVE_TYPES}
_NUMERIC_NAMES = tuple(str(t) for t in NUMERIC)

_KEY_TARGETS = ("root", "mid", "leaf", "other", "club", "any_concept")
_CONTAINERS = (
    "vector",
    "set",
    "map",
    "optional",
    "xarray",
    "tuple",
    "variant",
    "vec",
    "mat",
    "struct",
)


def _spec_hashable(spec: tuple[Any, ...]) -> bool:
    kind = spec[0]
    if kind in ("vector", "set", "map", "xarray"):
        return False
    if kind == "optional":
        return _spec_hashable(spec[1])
    if kind in ("tuple", "variant"):
        return all(_spec_hashable(s) for s in spec[1])
    if kind == "struct":
        return all(_spec_hashable(s) for _, s, _ in spec[1])
    return True


def _leaf_spec(rng: random.Random) -> tuple[Any, ...]:
    category = rng.randrange(5)
    if category <= 1:
        return ("prim", rng.choice(_PRIMITIVE_NAMES))
    if category == 2:
        return ("any",)
    if category == 3:
        return ("key", rng.choice(_KEY_TARGETS))
    return ("enum", tuple(rng.sample(_CASE_NAMES, rng.randint(1, 4))))


def _spec(rng: random.Random, budget: list[int], hashable: bool = False) -> tuple[Any, ...]:
    """A type spec: a leaf, or a container chosen uniformly while the budget of nodes lasts."""
    for _ in range(20):
        spec = _one_spec(rng, budget)
        if not hashable or _spec_hashable(spec):
            return spec
    return ("prim", "int64")


def _one_spec(rng: random.Random, budget: list[int]) -> tuple[Any, ...]:
    if budget[0] <= 0 or rng.randrange(3) == 0:
        return _leaf_spec(rng)
    budget[0] -= 1
    kind = rng.choice(_CONTAINERS)
    if kind in ("vector", "optional", "xarray"):
        return (kind, _spec(rng, budget))
    if kind == "set":
        return (kind, _spec(rng, budget, hashable=True))
    if kind == "map":
        return (kind, _spec(rng, budget, hashable=True), _spec(rng, budget))
    if kind in ("tuple", "variant"):
        return (kind, tuple(_spec(rng, budget) for _ in range(rng.randint(1, 3))))
    if kind == "vec":
        return (kind, rng.choice(_NUMERIC_NAMES), rng.randint(1, 4))
    if kind == "mat":
        return (kind, rng.choice(_NUMERIC_NAMES), rng.randint(1, 3), rng.randint(1, 3))
    names = rng.sample(_FIELD_NAMES, rng.randint(1, 3))
    return (kind, tuple((n, _spec(rng, budget), rng.random() < 0.5) for n in names))


@st.composite
def type_specs(draw: st.DrawFn, max_nodes: int = 6) -> tuple[Any, ...]:
    """Type specs (nested tuples) of at most `max_nodes` containers; see :func:`types`.

    The shape comes from a seeded :class:`random.Random` (uniform over kinds, which
    hypothesis' own draws are not); values of the type are drawn by hypothesis.
    """
    return _spec(random.Random(draw(_SEEDS)), [max_nodes])


def materialize(draw: st.DrawFn, spec: tuple[Any, ...], schema: Schema) -> Type:
    """Build (and register in `schema`) the type a spec describes; defaults are drawn."""
    kind = spec[0]
    if kind == "prim":
        return _BY_NAME[spec[1]]
    if kind == "any":
        return ANY
    if kind == "key":
        targets: dict[str, ConceptType | ClubType | Any] = {
            "root": schema.root,
            "mid": schema.mid,
            "leaf": schema.leaf,
            "other": schema.other,
            "club": schema.club,
            "any_concept": ANY_CONCEPT,
        }
        return KeyType(targets[spec[1]])
    if kind == "enum":
        t: Type = schema.definitions.create_enumeration(
            schema.namespace, schema.next_name("Enum"), spec[1]
        )
        schema.named.append(t)
        return t
    if kind == "vec":
        return VecType(_BY_NAME[spec[1]], spec[2])
    if kind == "mat":
        return MatType(_BY_NAME[spec[1]], spec[2], spec[3])
    if kind == "struct":
        fields = []
        for name, fspec, with_default in spec[1]:
            ft = materialize(draw, fspec, schema)
            field_ = Field(name, ft)
            if with_default:
                try:
                    field_ = Field(name, ft, _value(draw, ft, schema, True, 1))
                except DefinitionError:  # non-finite and non-empty xarray defaults are refused
                    pass
            fields.append(field_)
        t = schema.definitions.create_structure(
            schema.namespace, schema.next_name("Struct"), fields
        )
        schema.named.append(t)
        return t
    if kind in ("tuple", "variant"):
        subs = [materialize(draw, s, schema) for s in spec[1]]
        if kind == "tuple":
            return TupleType(subs)
        unique = list({s.runtime_id: s for s in subs}.values())
        return VariantType(unique)
    subs = [materialize(draw, s, schema) for s in spec[1:]]
    if kind == "vector":
        return VectorType(subs[0])
    if kind == "set":
        return SetType(subs[0])
    if kind == "map":
        return MapType(subs[0], subs[1])
    if kind == "optional":
        return OptionalType(subs[0])
    if kind == "xarray":
        return XArrayType(subs[0])
    raise AssertionError(f"unknown spec {spec!r}")


@st.composite
def types(draw: st.DrawFn, schema: Schema, max_nodes: int = 6) -> Type:
    """Random storable types; structures and enumerations are registered in `schema`."""
    return materialize(draw, draw(type_specs(max_nodes)), schema)


# --------------------------------------------------------------------------------------------
# Values

_BOOLS = st.booleans()
_UUIDS = st.one_of(st.uuids(), st.just(NIL_UUID))
_TEXT = st.text(st.characters(codec="utf-8"), max_size=8)
_SIZES = st.integers(0, 4)
_SEEDS = st.integers(0, 2**32)
_DIGESTS = st.binary(min_size=32, max_size=32)
_BLOBS = st.binary(max_size=12)
_I64 = st.integers(-(2**63), 2**63 - 1)
_FLOATS = {
    (32, True): st.one_of(st.floats(width=32), st.floats(min_value=-3.0e38, max_value=3.0e38)),
    (32, False): st.one_of(
        st.floats(width=32, allow_nan=False), st.floats(min_value=-3.0e38, max_value=3.0e38)
    ),
    (64, True): st.one_of(st.floats(), st.integers(-(2**53), 2**53)),
    (64, False): st.one_of(st.floats(allow_nan=False), st.integers(-(2**53), 2**53)),
}
_INTS: dict[str, st.SearchStrategy[int]] = {}


def values(t: Type, schema: Schema, *, nan: bool = True, depth: int = 3) -> st.SearchStrategy[Any]:
    """Input values of type `t` (possibly in an accepted non-normalized spelling).

    `nan=False` keeps NaN out (set elements and map keys: Python sets cannot dedupe NaN).
    `depth` bounds the nesting of types chosen for ``any`` contents.
    """
    return _values(t, schema, nan, depth)


@st.composite
def _values(draw: st.DrawFn, t: Type, schema: Schema, nan: bool, depth: int) -> Any:
    return _value(draw, t, schema, nan, depth)


def _index(draw: st.DrawFn, n: int) -> int:
    ints = _RANGES.get(n)
    if ints is None:
        ints = _RANGES[n] = st.integers(0, n - 1)
    return draw(ints)


_RANGES: dict[int, st.SearchStrategy[int]] = {}


def _value(draw: st.DrawFn, t: Type, schema: Schema, nan: bool, depth: int) -> Any:
    """Draw an input value of `t` (plain recursion: no strategy object per node)."""

    def sub(u: Type, nan_: bool = nan, depth_: int = depth) -> Any:
        return _value(draw, u, schema, nan_, depth_)

    if isinstance(t, BoolType):
        return draw(_BOOLS)
    if isinstance(t, IntType):
        ints = _INTS.get(t.name)
        if ints is None:
            ints = _INTS[t.name] = st.one_of(
                st.integers(t.low, t.high), st.sampled_from([t.low, t.high, 0])
            )
        return draw(ints)
    if isinstance(t, FloatType):
        return draw(_FLOATS[32, nan])
    if isinstance(t, DoubleType):
        return draw(_FLOATS[64, nan])
    if isinstance(t, StringType):
        return draw(_TEXT)
    if isinstance(t, UUIDType):
        u = draw(_UUIDS)
        return str(u) if draw(_BOOLS) else u
    if isinstance(t, BlobType):
        b = draw(_BLOBS)
        return bytearray(b) if draw(_BOOLS) else b
    if isinstance(t, BlobIdType):
        return BlobId(draw(_DIGESTS))
    if isinstance(t, CommitIdType):
        return CommitId(draw(_DIGESTS))
    if isinstance(t, VectorType):
        return [sub(t.element) for _ in range(draw(_SIZES))]
    if isinstance(t, SetType):
        check = t.element.check  # normalize: other spellings may be unhashable
        return {check(sub(t.element, False)) for _ in range(draw(_SIZES))}
    if isinstance(t, MapType):
        kc = t.key.check
        return {kc(sub(t.key, False)): sub(t.value) for _ in range(draw(_SIZES))}
    if isinstance(t, OptionalType):
        return None if draw(_BOOLS) else sub(t.element)
    if isinstance(t, TupleType):
        return tuple(sub(e) for e in t.elements)
    if isinstance(t, VecType):
        return tuple(sub(t.element) for _ in range(t.size))
    if isinstance(t, MatType):
        cols = [[sub(t.element) for _ in range(t.rows)] for _ in range(t.columns)]
        return cols if draw(_BOOLS) else tuple(x for c in cols for x in c)
    if isinstance(t, VariantType):
        alt = t.alternatives[_index(draw, len(t.alternatives))]
        v = sub(alt)
        # Typed names the alternative; a plain value goes to its natural alternative
        return Typed(alt, v) if draw(_BOOLS) else v
    if isinstance(t, AnyType):
        return _any_value(draw, schema, nan, depth)
    if isinstance(t, KeyType):
        return _key_value(draw, t, schema)
    if isinstance(t, EnumerationType):
        c = t.cases[_index(draw, len(t.cases))]
        spellings = [c, c.name, f".{c.name}", f"{t.name}.{c.name}", f"{t.qualified_name}.{c.name}"]
        return [*spellings, c.index][_index(draw, 6)]
    if isinstance(t, StructureType):
        data = {f.name: sub(f.type) for f in t.fields if draw(_BOOLS)}  # others: defaults
        return data if draw(_BOOLS) else t(**data)
    if isinstance(t, XArrayType):
        return _xarray_value(draw, t, sub)
    raise AssertionError(f"no value strategy for {t}")


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


def _any_value(draw: st.DrawFn, schema: Schema, nan: bool, depth: int) -> Any:
    choice = _index(draw, 10 if depth > 0 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return draw(_BOOLS)
    if choice == 2:
        return draw(_I64)
    if choice == 3:
        return draw(_FLOATS[64, nan])
    if choice == 4:
        return draw(_TEXT)
    if choice == 5:
        return draw(_BLOBS)
    if choice == 6:
        return draw(st.uuids())
    if choice == 7:
        return Key(schema.concepts[_index(draw, 4)], draw(st.uuids()))
    content = _any_content_types(schema, depth)
    u = content[_index(draw, len(content))]
    return Typed(u, _value(draw, u, schema, nan, depth - 1))


def _key_value(draw: st.DrawFn, t: KeyType, schema: Schema) -> Any:
    target = t.target
    if isinstance(target, ConceptType):
        concepts = [c for c in schema.concepts if c.is_a(target)]
    elif isinstance(target, ClubType):
        concepts = sorted(target.members, key=lambda c: c.name)
    else:
        concepts = schema.concepts
    if _index(draw, 6) == 0:
        return t.default()  # the nil key (for a club or any_concept: of the target itself)
    return Key(concepts[_index(draw, len(concepts))], draw(_UUIDS))


def _xarray_value(draw: st.DrawFn, t: XArrayType, sub: Callable[[Type], Any]) -> Any:
    items = [sub(t.element) for _ in range(draw(_SIZES))]
    if draw(_BOOLS):
        return items  # a plain list gets fresh positions
    xa = XArray()
    rng = random.Random(draw(_SEEDS))
    for v in items:
        positions = xa.positions()  # tombstones count as anchors too
        before = positions[rng.randrange(len(positions))]
        xa.insert(before, v, uuid.UUID(int=rng.getrandbits(128) | 1))
        if rng.random() < 0.3:
            xa.remove(xa.live_positions()[rng.randrange(len(xa))])
    return xa


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
def types_and_values(draw: st.DrawFn, max_nodes: int = 6) -> TypeAndValue:
    """A schema, a random type and a random input value of it."""
    schema = make_schema()
    t = draw(types(schema, max_nodes))
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
    if isinstance(a, set | frozenset):
        # elements holding NaN are equal to nothing (and hash by identity): match them with
        # same_value, one to one
        if len(a) != len(b):
            return False
        rest = list(b)
        for x in a:
            i = next((i for i, y in enumerate(rest) if same_value(x, y)), None)
            if i is None:
                return False
            del rest[i]
        return True
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
