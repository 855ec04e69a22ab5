"""Type descriptors: check() normalization and errors, defaults, runtime ids, str() forms."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from commitdb.definitions import Definitions
from commitdb.errors import DefinitionError, ValidationError
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
    PRIMITIVES,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    UUID,
    VOID,
    Attachment,
    ClubType,
    ConceptType,
    EnumerationType,
    Field,
    IntType,
    KeyType,
    MapType,
    MatType,
    Namespace,
    OptionalType,
    SetType,
    StructureType,
    TupleType,
    Type,
    VariantType,
    VectorType,
    VecType,
    XArrayType,
    describe,
    is_hashable_type,
)
from commitdb.values import NIL_UUID, Key, StructValue, Typed, XArray

NS_UUID = "2b7e1516-28ae-4d2a-a6f7-15880911cf3c"
ROOT = Path(__file__).resolve().parents[2]


class World:
    """A small schema: Material > Glass, Wood; club Shop {Wood}; enum Color; struct Point."""

    def __init__(self) -> None:
        self.defs = Definitions()
        self.ns = self.defs.namespace("Art", NS_UUID)
        self.material = self.defs.create_concept(self.ns, "Material")
        self.glass = self.defs.create_concept(self.ns, "Glass", parent=self.material)
        self.wood = self.defs.create_concept(self.ns, "Wood")
        self.shop = self.defs.create_club(self.ns, "Shop")
        self.defs.create_membership(self.shop, self.wood)
        self.color = self.defs.create_enumeration(self.ns, "Color", ["red", "green", "blue"])
        self.point = self.defs.create_structure(
            self.ns,
            "Point",
            [Field("x", DOUBLE, 1.0), Field("y", DOUBLE), Field("tag", STRING, "p")],
        )


@pytest.fixture
def w() -> World:
    return World()


def expect_error(t: Type, value: object, *fragments: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        t.check(value)
    for f in fragments:
        assert f in str(info.value), (f, str(info.value))
    return info.value


# --------------------------------------------------------------------------------------------
# Primitives


def test_bool_accepts_only_bools() -> None:
    assert BOOL.check(True) is True
    assert BOOL.check(False) is False
    expect_error(BOOL, 1, "expected bool", "got int 1")
    expect_error(BOOL, 4, "expected bool")
    expect_error(BOOL, None, "got NoneType None")


@pytest.mark.parametrize(
    ("t", "low", "high"),
    [
        (INT8, -128, 127),
        (INT16, -32768, 32767),
        (INT32, -(2**31), 2**31 - 1),
        (INT64, -(2**63), 2**63 - 1),
        (UINT8, 0, 255),
        (UINT16, 0, 65535),
        (UINT32, 0, 2**32 - 1),
        (UINT64, 0, 2**64 - 1),
    ],
)
def test_integer_range_edges(t: IntType, low: int, high: int) -> None:
    assert t.check(low) == low
    assert t.check(high) == high
    for outside in (low - 1, high + 1):
        err = expect_error(t, outside, f"{t.name} in [{low}, {high}]", f"got int {outside}")
        assert err.given == f"int {outside}"


@pytest.mark.parametrize("t", [INT8, UINT64, INT64])
def test_integer_refuses_bool_float_and_str(t: IntType) -> None:
    for bad in (True, 1.0, "1", None):
        expect_error(t, bad, f"expected {t.name}")


def test_integer_normalizes_int_subclasses() -> None:
    class Small(int):
        pass

    v = INT32.check(Small(5))
    assert v == 5 and type(v) is int


def test_float_rounds_to_binary32() -> None:
    assert FLOAT.check(0.1) == 0.10000000149011612
    assert FLOAT.check(1) == 1.0 and type(FLOAT.check(1)) is float
    assert FLOAT.check(3.4028234663852886e38) == 3.4028234663852886e38
    assert math.isnan(FLOAT.check(math.nan))
    assert FLOAT.check(-math.inf) == -math.inf
    assert math.copysign(1.0, FLOAT.check(-0.0)) == -1.0


def test_float_range_is_enforced() -> None:
    expect_error(FLOAT, 3.5e38, "float (binary32 range)")
    expect_error(FLOAT, -1e39, "float (binary32 range)")
    expect_error(FLOAT, 10**400, "float (binary32 range)")  # no OverflowError leaks
    expect_error(FLOAT, True, "expected float")
    expect_error(FLOAT, "1.0", "expected float")


def test_double_widens_ints_only() -> None:
    assert DOUBLE.check(3) == 3.0 and type(DOUBLE.check(3)) is float
    assert DOUBLE.check(1e300) == 1e300
    assert DOUBLE.check(0.1) == 0.1  # no binary32 rounding
    expect_error(DOUBLE, 10**400, "expected double")
    expect_error(DOUBLE, False, "expected double")
    expect_error(DOUBLE, "2", "expected double")


def test_string_requires_utf8_text() -> None:
    assert STRING.check("héllo ✓") == "héllo ✓"

    class Name(str):
        pass

    assert type(STRING.check(Name("x"))) is str
    expect_error(STRING, "\ud800", "string (UTF-8 text)")
    expect_error(STRING, b"bytes", "expected string", "got bytes")


def test_uuid_accepts_uuid_and_canonical_text() -> None:
    u = uuid.uuid4()
    assert UUID.check(u) is u
    assert UUID.check(str(u)) == u
    expect_error(UUID, "not-a-uuid", "expected uuid", "got str 'not-a-uuid'")
    expect_error(UUID, u.bytes, "expected uuid")


def test_blob_accepts_bytes_like_but_not_ids() -> None:
    assert BLOB.check(b"ab") == b"ab"
    v = BLOB.check(bytearray(b"ab"))
    assert v == b"ab" and type(v) is bytes
    assert BLOB.check(memoryview(b"xy")) == b"xy"
    expect_error(BLOB, BlobId(bytes(32)), "expected blob")
    expect_error(BLOB, "text", "expected blob")


def test_blob_id_and_commit_id() -> None:
    raw = bytes(range(32))
    assert BLOB_ID.check(BlobId(raw)) == BlobId(raw)
    assert BLOB_ID.check(raw.hex()) == BlobId(raw)
    assert COMMIT_ID.check(CommitId(raw).hex()) == CommitId(raw)
    expect_error(BLOB_ID, "zz", "expected blob_id")
    expect_error(BLOB_ID, raw, "expected blob_id")
    expect_error(COMMIT_ID, BlobId(raw), "expected commit_id")
    expect_error(BLOB_ID, CommitId(raw), "expected blob_id")


def test_void_accepts_only_none() -> None:
    assert VOID.check(None) is None
    expect_error(VOID, 0, "void (None)")


@pytest.mark.parametrize(
    ("t", "zero"),
    [
        (BOOL, False),
        (INT8, 0),
        (UINT64, 0),
        (FLOAT, 0.0),
        (DOUBLE, 0.0),
        (STRING, ""),
        (UUID, NIL_UUID),
        (BLOB, b""),
        (BLOB_ID, BlobId.INVALID),
        (COMMIT_ID, CommitId.INVALID),
        (ANY, None),
        (VectorType(INT64), []),
        (SetType(STRING), set()),
        (MapType(STRING, INT64), {}),
        (OptionalType(INT64), None),
        (TupleType([INT8, STRING]), (0, "")),
        (VecType(FLOAT, 3), (0.0, 0.0, 0.0)),
        (MatType(INT32, 2, 3), (0,) * 6),
        (VariantType([STRING, INT64]), ""),
    ],
)
def test_defaults(t: Type, zero: Any) -> None:
    assert t.default() == zero
    assert t.check(t.default()) == zero


def test_default_of_variant_keeps_first_alternative() -> None:
    # zero of variant<double, int64> is double 0.0 (the first alternative) even though a
    # plain 0.0 would also naturally go there; of variant<int8, int64> it is Typed(int8, 0)
    assert VariantType([DOUBLE, INT64]).default() == 0.0
    assert VariantType([INT8, INT64]).default() == Typed(INT8, 0)


def test_default_containers_are_fresh() -> None:
    t = VectorType(INT64)
    a = t.default()
    a.append(1)
    assert t.default() == []
    x = XArrayType(STRING).default()
    assert isinstance(x, XArray) and x.positions() == [NIL_UUID]


def test_primitives_table_and_str() -> None:
    assert {str(t) for t in PRIMITIVES.values()} == set(PRIMITIVES)
    assert PRIMITIVES["uint16"] is UINT16
    assert str(INT16) == "int16"


# --------------------------------------------------------------------------------------------
# Containers


def test_vector_checks_each_element_with_its_path() -> None:
    t = VectorType(INT8)
    assert t.check((1, 2)) == [1, 2]
    expect_error(t, [1, 300], "int8 in [-128, 127]", "at [1]")
    expect_error(t, {1, 2}, "expected vector<int8>")


def test_set_normalizes_and_refuses_unhashable_element_types() -> None:
    t = SetType(STRING)
    assert t.check(["a", "b", "a"]) == {"a", "b"}
    assert t.check(frozenset({"x"})) == {"x"}
    expect_error(t, ["a", 1], "expected string", "at .element")
    for bad in (VectorType(INT64), MapType(STRING, INT64), XArrayType(INT64), SetType(INT64)):
        with pytest.raises(DefinitionError, match="not usable as a set element"):
            SetType(bad)


def test_map_errors_name_key_and_value_paths() -> None:
    t = MapType(STRING, INT64)
    assert t.check({"a": 1}) == {"a": 1}
    err = expect_error(t, {"a": "b"}, "expected int64, got str 'b' at ['a']")
    assert err.where == "['a']"
    expect_error(t, {1: 1}, "expected string", "at .key")
    expect_error(t, [("a", 1)], "expected map<string, int64>")
    with pytest.raises(DefinitionError, match="not usable as a map key"):
        MapType(VectorType(INT64), INT64)


def test_nested_paths_in_structures(w: World) -> None:
    scores = w.defs.create_structure(w.ns, "Scores", [Field("scores", MapType(STRING, INT64))])
    with pytest.raises(ValidationError) as info:
        scores.check({"scores": {"a": "b"}})
    assert str(info.value) == "expected int64, got str 'b' at .scores['a']"


def test_optional() -> None:
    t = OptionalType(INT8)
    assert t.check(None) is None
    assert t.check(5) == 5
    expect_error(t, "x", "expected int8")


def test_tuple_has_fixed_arity() -> None:
    t = TupleType([INT8, STRING])
    assert t.check([1, "a"]) == (1, "a")
    expect_error(t, (1,), "tuple<int8, string> (a sequence of 2)")
    expect_error(t, (1, 2), "expected string", "at [1]")
    with pytest.raises(DefinitionError):
        TupleType([])


def test_variant_natural_selection_prefers_int64() -> None:
    t = VariantType([DOUBLE, INT64])
    assert t.natural_index(5) == 1
    assert t.check(5) == 5 and type(t.check(5)) is int
    assert t.natural_index(5.0) == 0
    assert t.select(5) == (1, 5)
    # Typed picks another alternative; the normalized value is plain when the natural
    # choice of the inner value agrees (5.0 goes to double), else it stays Typed
    assert t.select(Typed(DOUBLE, 5)) == (0, 5.0)
    assert t.check(Typed(DOUBLE, 5)) == 5.0
    assert t.check(Typed(INT64, 7)) == 7
    ints = VariantType([INT8, INT64])
    assert ints.check(5) == 5 and ints.natural_index(5) == 1
    assert ints.check(Typed(INT8, 5)) == Typed(INT8, 5)


def test_variant_other_preferences() -> None:
    assert VariantType([INT8, STRING]).check(5) == 5
    assert VariantType([INT8, STRING]).natural_index(5) == 0
    assert VariantType([INT64, FLOAT, DOUBLE]).natural_index(1.5) == 2
    assert VariantType([FLOAT, INT64]).natural_index(1.5) == 0
    assert VariantType([STRING, BOOL]).natural_index(True) == 1
    expect_error(VariantType([INT8, STRING]), 300, "expected variant<int8, string>")
    expect_error(VariantType([INT8]), Typed(STRING, "x"), "expected variant<int8>")


def test_variant_with_any_alternative_takes_foreign_typed_values() -> None:
    t = VariantType([ANY, STRING])
    vec = Typed(VectorType(INT64), [1])
    assert t.check(vec) == vec
    assert t.select(vec) == (0, vec)
    # Typed(string) names the string alternative; a plain string would go to any first
    assert t.select(Typed(STRING, "s")) == (1, "s")
    assert t.check(Typed(STRING, "s")) == Typed(STRING, "s")
    assert t.select("s") == (0, "s")


def test_variant_definition_errors() -> None:
    with pytest.raises(DefinitionError, match="distinct"):
        VariantType([INT64, INT64])
    with pytest.raises(DefinitionError):
        VariantType([])
    with pytest.raises(DefinitionError):
        VariantType([VOID])


def test_any_deduction_and_typed(w: World) -> None:
    assert ANY.check(None) is None
    assert ANY.check(5) == 5
    assert ANY.check(1.5) == 1.5
    assert ANY.check(bytearray(b"a")) == b"a"
    key = Key(w.glass, uuid.uuid4())
    assert ANY.check(key) is key
    assert ANY.check(w.color.red) is w.color.red
    # a Typed whose type deduction would give back is plain
    assert ANY.check(Typed(INT64, 3)) == 3
    assert ANY.check(Typed(INT8, 3)) == Typed(INT8, 3)
    assert ANY.check(Typed(KeyType(w.material), key)) == Typed(KeyType(w.material), key)
    expect_error(ANY, [1, 2], "a value whose type can be deduced (or Typed)")
    expect_error(ANY, Typed(VOID, None), "a storable type inside any")
    expect_error(ANY, 2**70, "int64 in")


def test_vec_and_mat() -> None:
    v = VecType(FLOAT, 3)
    assert v.check([1, 2, 0.1]) == (1.0, 2.0, 0.10000000149011612)
    expect_error(v, [1, 2], "vec<float, 3> (a sequence of 3 numbers)")
    m = MatType(INT32, 2, 3)  # 2 columns of 3
    flat = (1, 2, 3, 4, 5, 6)
    assert m.check(flat) == flat
    assert m.check([[1, 2, 3], [4, 5, 6]]) == flat  # nested: column-major
    expect_error(m, [[1, 2], [3, 4, 5, 6]], "2 columns of 3 numbers")
    expect_error(m, [[1, 2, 3]], "2 columns of 3 numbers")
    expect_error(m, (1, 2, 3), "6 numbers, column-major")
    for bad in (BOOL, STRING):
        with pytest.raises(DefinitionError, match="numeric"):
            VecType(bad, 2)
    with pytest.raises(DefinitionError):
        VecType(INT8, 0)
    with pytest.raises(DefinitionError):
        MatType(INT8, 1, 0)


def test_xarray_check_normalizes_lists_and_keeps_positions() -> None:
    t = XArrayType(INT8)
    from_list = t.check([1, 2])
    assert isinstance(from_list, XArray) and from_list.to_list() == [1, 2]
    xa = XArray()
    p = xa.append(5)
    xa.remove(p)
    q = xa.append(6)
    checked = t.check(xa)
    assert checked == xa and checked is not xa
    assert checked.positions() == [p, q, NIL_UUID]
    bad = XArray([1, 999])
    err = expect_error(t, bad, "int8 in")
    assert err.where.startswith("[{") and err.where.endswith("}]")


def test_storability_rules(w: World) -> None:
    for bad in (VOID, w.material, w.shop, ANY_CONCEPT):
        with pytest.raises(DefinitionError):
            VectorType(bad)
    with pytest.raises(DefinitionError):
        Field("f", VOID)
    with pytest.raises(DefinitionError, match="concept, a club or any_concept"):
        KeyType(INT64)  # type: ignore[arg-type]


def test_is_hashable_type(w: World) -> None:
    assert is_hashable_type(INT64)
    assert is_hashable_type(TupleType([STRING, OptionalType(UUID)]))
    assert is_hashable_type(VecType(INT8, 2))
    assert is_hashable_type(ANY)
    assert is_hashable_type(w.point)
    assert not is_hashable_type(VectorType(INT64))
    assert not is_hashable_type(OptionalType(MapType(STRING, INT64)))
    assert not is_hashable_type(VariantType([INT64, XArrayType(INT64)]))
    bag = w.defs.create_structure(w.ns, "Bag", [Field("items", VectorType(STRING))])
    assert not is_hashable_type(bag)


# --------------------------------------------------------------------------------------------
# Keys


def test_key_of_child_concept_is_a_key_of_parent(w: World) -> None:
    glass_key = Key(w.glass, uuid.uuid4())
    material_key = Key(w.material, uuid.uuid4())
    assert KeyType(w.material).check(glass_key) is glass_key
    assert KeyType(w.glass).check(glass_key) is glass_key
    err = expect_error(KeyType(w.glass), material_key, "expected key<Art::Glass>")
    assert err.given == "key of Art::Material"
    expect_error(KeyType(w.material), Key(w.wood, uuid.uuid4()), "expected key<Art::Material>")
    expect_error(KeyType(w.material), str(uuid.uuid4()), "expected key<Art::Material>")


def test_key_of_club_accepts_members_only(w: World) -> None:
    t = KeyType(w.shop)
    wood_key = Key(w.wood, uuid.uuid4())
    assert t.check(wood_key) is wood_key
    expect_error(t, Key(w.glass, uuid.uuid4()), "expected key<Art::Shop>")
    # membership is not inherited and may grow later
    w.defs.create_membership(w.shop, w.material)
    expect_error(t, Key(w.glass, uuid.uuid4()), "expected key<Art::Shop>")
    assert t.check(Key(w.material, uuid.uuid4())).concept == w.material


def test_key_of_any_concept(w: World) -> None:
    t = KeyType(ANY_CONCEPT)
    for c in (w.material, w.glass, w.wood):
        k = Key(c, uuid.uuid4())
        assert t.check(k) is k
    assert str(t) == "key<any_concept>"


def test_key_defaults_are_nil_keys_of_the_target(w: World) -> None:
    for target in (w.material, w.shop, ANY_CONCEPT):
        t = KeyType(target)
        zero = t.default()
        assert zero.is_nil and zero.concept == target
        assert t.check(zero) == zero
        assert repr(zero) == f"Key({target}, {NIL_UUID})"
    # the nil key of a club is not a key of some other key type
    expect_error(KeyType(w.material), KeyType(w.shop).default(), "expected key<Art::Material>")
    expect_error(KeyType(ANY_CONCEPT), KeyType(w.shop).default(), "key<any_concept>")


def test_key_type_create_key(w: World) -> None:
    k = KeyType(w.glass).create_key()
    assert k.concept == w.glass and not k.is_nil
    u = uuid.uuid4()
    assert KeyType(w.glass).create_key(str(u)).id == u
    with pytest.raises(DefinitionError):
        KeyType(w.shop).create_key()


def test_concept_hierarchy(w: World) -> None:
    assert w.glass.is_a(w.material) and w.glass.is_a(w.glass)
    assert not w.material.is_a(w.glass)
    assert w.glass.ancestors() == [w.glass, w.material]
    assert KeyType(w.material).accepts_concept(w.glass)
    assert not KeyType(w.material).accepts_concept(w.shop)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Enumerations


def test_enumeration_spellings(w: World) -> None:
    c = w.color
    for spelling in ("green", ".green", "Color.green", "Art::Color.green", 1, c.green):
        assert c.check(spelling) is c.green, spelling
    assert c.case("blue") is c.blue
    assert c.default() is c.red


def test_enumeration_bad_case_lists_cases(w: World) -> None:
    err = expect_error(w.color, "purple", "a case of Art::Color (red, green, blue)")
    assert err.given == "str 'purple'"
    for bad in ("..green", "Other.green", "Art::Other.green", ".x.green", "Color."):
        expect_error(w.color, bad, "a case of Art::Color")
    expect_error(w.color, 3, "a case ordinal of Art::Color in [0, 2]")
    expect_error(w.color, -1, "a case ordinal")
    expect_error(w.color, True, "expected Art::Color")
    other = w.defs.create_enumeration(w.ns, "Mood", ["red"])
    expect_error(w.color, other.red, "expected Art::Color")
    with pytest.raises(KeyError, match="purple"):
        w.color.case("purple")
    with pytest.raises(AttributeError):
        _ = w.color.purple


def test_enumeration_case_count_limits(w: World) -> None:
    ns = w.ns
    assert len(EnumerationType(ns, "Big", [f"c{i}" for i in range(256)]).cases) == 256
    with pytest.raises(DefinitionError, match="at most 256"):
        EnumerationType(ns, "Huge", [f"c{i}" for i in range(257)])
    with pytest.raises(DefinitionError, match="at least one"):
        EnumerationType(ns, "Empty", [])
    with pytest.raises(DefinitionError, match="twice"):
        EnumerationType(ns, "Dup", ["a", "a"])


def test_enum_case_from_an_equal_enumeration_is_normalized(w: World) -> None:
    twin = EnumerationType(w.ns, "Color", ["red", "green", "blue"])
    assert twin == w.color
    assert w.color.check(twin.green) is w.color.green


# --------------------------------------------------------------------------------------------
# Structures


def test_structure_from_dict_and_defaults(w: World) -> None:
    p = w.point.check({"y": 2})
    assert isinstance(p, StructValue)
    assert (p.x, p.y, p.tag) == (1.0, 2.0, "p")
    assert w.point.default() == w.point(x=1.0, y=0.0, tag="p")
    assert w.point.check(p) == p and w.point.check(p) is not p


def test_structure_unknown_field_and_wrong_type(w: World) -> None:
    err = expect_error(w.point, {"z": 1}, "a field of Art::Point (x, y, tag)")
    assert err.given == "unknown field 'z'"
    expect_error(w.point, {"x": "a"}, "expected double", "at .x")
    expect_error(w.point, [1, 2], "expected Art::Point")
    expect_error(w.point, w.defs.create_structure(w.ns, "P2", [Field("x", DOUBLE)])(), "Point")


def test_nested_structures(w: World) -> None:
    seg = w.defs.create_structure(
        w.ns, "Segment", [Field("a", w.point), Field("b", w.point, {"x": 5})]
    )
    s = seg.check({"a": {"y": 1}})
    assert s.a == w.point(y=1.0)
    assert s.b.x == 5.0 and s.b.tag == "p"
    assert seg.default().b == w.point(x=5.0)
    expect_error(seg, {"b": {"y": "no"}}, "at .b.y")
    assert seg.field("b").default == w.point(x=5.0)
    assert seg.has_field("a") and not seg.has_field("c")
    with pytest.raises(KeyError, match=r"fields: a, b"):
        seg.field("c")


def test_structure_definition_errors(w: World) -> None:
    with pytest.raises(DefinitionError, match="at least one field"):
        StructureType(w.ns, "E", [])
    with pytest.raises(DefinitionError, match="twice"):
        StructureType(w.ns, "D", [Field("a", INT8), Field("a", INT16)])
    for bad in ("_type", "_fields", "_asdict", "not valid", "é"):
        with pytest.raises(DefinitionError, match="invalid field name"):
            StructureType(w.ns, "B", [Field(bad, INT8)])


def test_field_defaults_are_normalized_and_zero_defaults_dropped() -> None:
    assert Field("f", FLOAT, 0.1).default == 0.10000000149011612
    assert Field("f", INT64, 0).default is None
    assert Field("f", STRING, "").default is None
    assert Field("f", SetType(STRING), ["a", "a"]).default == {"a"}
    with pytest.raises(ValidationError, match="at .f"):
        Field("f", INT8, 1000)


def test_field_defaults_must_be_finite_and_xarrays_empty() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(DefinitionError, match="non-finite"):
            Field("f", DOUBLE, bad)
    with pytest.raises(DefinitionError, match="non-finite"):
        Field("f", VecType(FLOAT, 2), (1.0, math.inf))
    with pytest.raises(DefinitionError, match="xarray default must be empty"):
        Field("f", XArrayType(STRING), ["a"])
    with pytest.raises(DefinitionError, match="xarray default must be empty"):
        Field("f", OptionalType(XArrayType(STRING)), XArray(["a"]))
    assert Field("f", XArrayType(STRING), []).default is None


def test_field_default_values_are_fresh_copies(w: World) -> None:
    bag = w.defs.create_structure(w.ns, "Bag", [Field("items", VectorType(STRING), ["a"])])
    one, two = bag(), bag()
    one.items.append("b")
    assert two.items == ["a"] and bag.field("items").default == ["a"]


def test_field_default_holding_typed_values(w: World) -> None:
    # a default inside any / variant is a Typed: instances deep-copy it
    s = w.defs.create_structure(
        w.ns,
        "Holder",
        [
            Field("a", ANY, Typed(VectorType(INT64), [1])),
            Field("v", VariantType([INT8, STRING]), 3),
        ],
    )
    one, two = s(), s()
    assert one.a == Typed(VectorType(INT64), [1]) and one.a is not two.a
    assert one.v == 3 and s.field("v").default == 3


# --------------------------------------------------------------------------------------------
# str() forms


def test_str_forms(w: World) -> None:
    assert str(VectorType(STRING)) == "vector<string>"
    assert str(SetType(UUID)) == "set<uuid>"
    assert str(MapType(STRING, INT64)) == "map<string, int64>"
    assert str(OptionalType(BLOB_ID)) == "optional<blob_id>"
    assert str(XArrayType(COMMIT_ID)) == "xarray<commit_id>"
    assert str(TupleType([INT8, BOOL])) == "tuple<int8, bool>"
    assert str(VariantType([DOUBLE, INT64])) == "variant<double, int64>"
    assert str(VecType(FLOAT, 3)) == "vec<float, 3>"
    assert str(MatType(DOUBLE, 4, 2)) == "mat<double, 4, 2>"
    assert str(KeyType(w.glass)) == "key<Art::Glass>"
    assert str(KeyType(w.shop)) == "key<Art::Shop>"
    assert str(w.point) == "Art::Point"
    assert str(ANY) == "any" and str(ANY_CONCEPT) == "any_concept" and str(VOID) == "void"
    assert repr(MapType(STRING, w.color)) == "<type map<string, Art::Color>>"
    assert repr(w.color.green) == "Color.green"


def test_describe_truncates_long_values() -> None:
    assert describe(5) == "int 5"
    text = describe("x" * 100)
    assert text.startswith("str 'xxx") and text.endswith("...") and len(text) == 4 + 40


# --------------------------------------------------------------------------------------------
# Runtime ids


def test_runtime_ids_follow_content_not_identity() -> None:
    assert VectorType(STRING).runtime_id == VectorType(STRING).runtime_id
    assert VectorType(STRING) == VectorType(STRING)
    assert hash(MapType(STRING, INT8)) == hash(MapType(STRING, INT8))
    distinct = [
        VectorType(STRING),
        SetType(STRING),
        OptionalType(STRING),
        XArrayType(STRING),
        TupleType([STRING]),
        VariantType([STRING]),
        VectorType(INT64),
        MapType(STRING, INT8),
        MapType(INT8, STRING),
        TupleType([INT8, STRING]),
        TupleType([STRING, INT8]),
        VecType(INT8, 2),
        VecType(INT8, 3),
        MatType(INT8, 2, 3),
        MatType(INT8, 3, 2),
        *PRIMITIVES.values(),
    ]
    assert len({t.runtime_id for t in distinct}) == len(distinct)


def _ns(name: str = "Art") -> Namespace:
    return Namespace(name, NS_UUID)


def test_named_ids_ignore_documentation_and_namespace_name() -> None:
    a = StructureType(_ns(), "S", [Field("x", INT8, 1, "doc x")], "doc")
    b = StructureType(_ns("Renamed"), "S", [Field("x", INT8, 1)])
    assert a.runtime_id == b.runtime_id
    c1 = ConceptType(_ns(), "C", documentation="one")
    c2 = ConceptType(_ns("Other"), "C", documentation="two")
    assert c1.runtime_id == c2.runtime_id
    e1 = EnumerationType(_ns(), "E", ["a", "b"], "doc", {"a": "case doc"})
    assert e1.runtime_id == EnumerationType(_ns(), "E", ["a", "b"]).runtime_id
    other_ns = Namespace("Art", "00000000-0000-0000-0000-000000000001")
    assert ConceptType(other_ns, "C").runtime_id != c1.runtime_id


@pytest.mark.parametrize(
    "variant",
    [
        [Field("y", INT8, 1), Field("z", STRING)],  # field renamed
        [Field("x", INT16, 1), Field("z", STRING)],  # field retyped
        [Field("x", INT8, 2), Field("z", STRING)],  # default changed
        [Field("x", INT8), Field("z", STRING)],  # default removed
        [Field("z", STRING), Field("x", INT8, 1)],  # fields reordered
        [Field("x", INT8, 1)],  # field removed
        [Field("x", INT8, 1), Field("z", STRING), Field("w", BOOL)],  # field added
    ],
)
def test_structure_id_changes_with_its_definition(variant: list[Field]) -> None:
    base = StructureType(_ns(), "S", [Field("x", INT8, 1), Field("z", STRING)])
    assert StructureType(_ns(), "S", variant).runtime_id != base.runtime_id


def test_other_named_ids_change_with_their_definition() -> None:
    e = EnumerationType(_ns(), "E", ["a", "b"])
    assert EnumerationType(_ns(), "E", ["b", "a"]).runtime_id != e.runtime_id
    assert EnumerationType(_ns(), "E", ["a", "b", "c"]).runtime_id != e.runtime_id
    assert EnumerationType(_ns(), "F", ["a", "b"]).runtime_id != e.runtime_id
    parent = ConceptType(_ns(), "P")
    assert ConceptType(_ns(), "C", parent).runtime_id != ConceptType(_ns(), "C").runtime_id
    club = ClubType(_ns(), "K")
    before = club.runtime_id
    club.members.add(parent)
    assert ClubType(_ns(), "K").runtime_id == before  # membership is not identity
    assert ClubType(_ns(), "C").runtime_id != ConceptType(_ns(), "C").runtime_id


def test_attachment_id_and_identifier(w: World) -> None:
    att = Attachment(w.ns, "pos", KeyType(w.glass), w.point, "doc")
    same = Attachment(_ns("Renamed"), "pos", KeyType(w.glass), w.point)
    assert att.runtime_id == same.runtime_id and att == same
    assert Attachment(w.ns, "pos", KeyType(w.material), w.point).runtime_id != att.runtime_id
    assert Attachment(w.ns, "pos", KeyType(w.glass), w.color).runtime_id != att.runtime_id
    assert Attachment(w.ns, "pos2", KeyType(w.glass), w.point).runtime_id != att.runtime_id
    assert att.identifier == "Art::Glass.pos"
    assert (
        Attachment(w.ns, "tag", KeyType(ANY_CONCEPT), STRING).identifier == "Art::any_concept.tag"
    )
    foreign = ConceptType(Namespace("Lib", "00000000-0000-0000-0000-0000000000aa"), "User")
    assert Attachment(w.ns, "p", KeyType(foreign), STRING).identifier == "Art::Lib::User.p"
    assert repr(att) == "<attachment Art::Glass.pos: Art::Point>"
    assert att.create_document() == w.point.default()
    key = att.create_key()
    assert att.check_key(key) is key
    with pytest.raises(ValidationError, match="the nil key"):
        att.check_key(KeyType(w.glass).default())
    with pytest.raises(ValidationError, match="key<Art::Glass>"):
        att.check_key(Key(w.material, uuid.uuid4()))


_ID_SCRIPT = """
import json
from commitdb.types import *
from commitdb.values import Typed
from commitdb.definitions import Definitions
d = Definitions()
ns = d.namespace("Art", "%s")
m = d.create_concept(ns, "Material")
g = d.create_concept(ns, "Glass", parent=m)
color = d.create_enumeration(ns, "Color", ["red", "green", "blue"])
club = d.create_club(ns, "Shop")
s = d.create_structure(ns, "Thing", [
    Field("name", STRING, "unnamed"), Field("color", color, "green"),
    Field("tags", SetType(STRING), ["b", "a", "c"]), Field("scores", MapType(STRING, DOUBLE), {"z": 1.5, "a": 2}),
    Field("k", KeyType(g)), Field("any", ANY, Typed(VectorType(INT8), [1, 2])),
    Field("v", VariantType([DOUBLE, INT64]), 3), Field("m", MatType(FLOAT, 2, 2), [[1, 2], [3, 4]]),
    Field("club", KeyType(club)), Field("x", XArrayType(STRING)),
])
att = d.create_attachment(ns, "thing", g, s)
types = [m, g, color, club, s, VectorType(s), MapType(STRING, OptionalType(color)), KeyType(ANY_CONCEPT)]
result = {"ids": [str(t.runtime_id) for t in types] + [str(att.runtime_id)],
          "digest": d.hexdigest()}
print(json.dumps(result))
"""


def _ids_in_subprocess(seed: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _ID_SCRIPT % NS_UUID],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_runtime_ids_are_stable_across_processes() -> None:
    first = _ids_in_subprocess("1")
    second = _ids_in_subprocess("4242")
    assert first == second
    assert len(set(first["ids"])) == len(first["ids"])
    # and this process computes the same ids and digest
    scope: dict[str, Any] = {}
    exec((_ID_SCRIPT % NS_UUID).replace("print(json.dumps(result))", ""), scope)
    assert scope["result"] == first
