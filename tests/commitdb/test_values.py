"""Value classes: Key, EnumCase, StructValue, XArray (engine spec §3.5) and Typed."""

from __future__ import annotations

import copy
import uuid

import pytest

from commitdb.definitions import Definitions
from commitdb.errors import ValidationError
from commitdb.types import (
    ANY,
    DOUBLE,
    INT8,
    INT64,
    STRING,
    Field,
    KeyType,
    MapType,
    SetType,
    TupleType,
    VectorType,
    XArrayType,
)
from commitdb.values import END, NIL_UUID, Key, StructValue, Typed, XArray

NS_UUID = "0f0e0d0c-0b0a-4908-8706-050403020100"


class World:
    """Concepts Material > Glass and Other; enum Color; struct Login; struct Point."""

    def __init__(self) -> None:
        self.defs = Definitions()
        self.ns = self.defs.namespace("Val", NS_UUID)
        self.material = self.defs.create_concept(self.ns, "Material")
        self.glass = self.defs.create_concept(self.ns, "Glass", parent=self.material)
        self.other = self.defs.create_concept(self.ns, "Other")
        self.color = self.defs.create_enumeration(self.ns, "Color", ["red", "green", "blue"])
        self.mood = self.defs.create_enumeration(self.ns, "Mood", ["red", "calm"])
        self.login = self.defs.create_structure(
            self.ns,
            "Login",
            [
                Field("nickname", STRING),
                Field("level", INT64, 1),
                Field("tags", SetType(STRING)),
                Field("history", VectorType(STRING), ["created"]),
            ],
        )
        self.point = self.defs.create_structure(
            self.ns, "Point", [Field("x", DOUBLE), Field("y", DOUBLE)]
        )


@pytest.fixture
def w() -> World:
    return World()


# --------------------------------------------------------------------------------------------
# Key


def test_key_equality_uses_instance_and_concrete_concept(w: World) -> None:
    u = uuid.uuid4()
    a, b = Key(w.glass, u), Key(w.glass, str(u))
    assert a == b and hash(a) == hash(b)
    assert Key(w.material, u) != a  # same uuid, other concept: another document
    assert Key(w.glass, uuid.uuid4()) != a
    assert len({a, b, Key(w.material, u)}) == 2
    assert a.to_parent_key() == a
    assert a != u and (a == "x") is False


def test_key_fresh_ids_nil_and_immutability(w: World) -> None:
    k1, k2 = Key(w.glass), Key(w.glass)
    assert k1 != k2 and not k1.is_nil
    nil = Key(w.glass, NIL_UUID)
    assert nil.is_nil
    with pytest.raises(AttributeError, match="immutable"):
        k1.id = uuid.uuid4()
    with pytest.raises(ValueError):
        Key(w.glass, "not-a-uuid")
    assert copy.copy(k1) is k1 and copy.deepcopy(k1) is k1


def test_key_repr_and_order(w: World) -> None:
    u = uuid.UUID(int=1)
    assert repr(Key(w.glass, u)) == f"Key(Val::Glass, {u})"
    a = Key(w.glass, uuid.UUID(int=1))
    b = Key(w.glass, uuid.UUID(int=2))
    assert a < b and not b < a
    assert sorted([b, a]) == [a, b]


# --------------------------------------------------------------------------------------------
# EnumCase


def test_enum_case_identity_and_equality(w: World) -> None:
    red = w.color.red
    assert red.name == "red" and red.index == 0 and red.enumeration is w.color
    assert red == w.color.case("red") and hash(red) == hash(w.color.check("red"))
    assert red != w.mood.red  # same case name, other enumeration
    assert red != w.color.green
    assert repr(w.color.blue) == "Color.blue"
    assert copy.copy(red) is red and copy.deepcopy(red) is red
    with pytest.raises(AttributeError, match="immutable"):
        red.name = "x"


def test_enum_cases_order_by_name(w: World) -> None:
    c = w.color
    # engine spec §1.3: enumeration values compare by case name, not ordinal
    assert sorted([c.red, c.green, c.blue]) == [c.blue, c.green, c.red]
    assert c.blue < c.red and not c.red < c.blue


# --------------------------------------------------------------------------------------------
# StructValue


def test_struct_value_construction_and_defaults(w: World) -> None:
    v = w.login(nickname="ada")
    assert isinstance(v, StructValue) and isinstance(v, w.login.value_class)
    assert (v.nickname, v.level, v.tags, v.history) == ("ada", 1, set(), ["created"])
    positional = w.login("bob", 3)
    assert positional.nickname == "bob" and positional.level == 3
    assert w.login(tags=["a", "a"]).tags == {"a"}  # normalized on construction


def test_struct_value_constructor_validation(w: World) -> None:
    with pytest.raises(ValidationError, match=r"expected int64, got str 'x' at \.level"):
        w.login(level="x")
    with pytest.raises(TypeError, match="has no field 'nick'; fields: nickname, level"):
        w.login(nick="a")
    with pytest.raises(TypeError, match="at most 4 positional"):
        w.login("a", 1, set(), [], "extra")
    with pytest.raises(TypeError, match="multiple values for field 'nickname'"):
        w.login("a", nickname="b")


def test_struct_value_equality_and_hash(w: World) -> None:
    a = w.point(x=1, y=2)
    assert a == w.point(x=1.0, y=2.0) and hash(a) == hash(w.point(x=1.0, y=2.0))
    assert a != w.point(x=1, y=3)
    twin = w.defs.create_structure(w.ns, "Twin", [Field("x", DOUBLE), Field("y", DOUBLE)])
    assert a != twin(x=1, y=2)  # another structure type
    assert (a == (1.0, 2.0)) is False
    assert len({a, w.point(x=1, y=2), w.point()}) == 2
    # structures holding lists, dicts, sets and nested tuples of lists hash too
    assert hash(w.login(tags=["a"])) == hash(w.login(tags=["a"]))
    holder = w.defs.create_structure(
        w.ns,
        "Holder",
        [Field("m", MapType(INT64, VectorType(INT64))), Field("t", TupleType([VectorType(INT8)]))],
    )
    h1 = holder(m={1: [1], 2**61: [2]}, t=([1],))
    h2 = holder(m={2**61: [2], 1: [1]}, t=([1],))
    assert h1 == h2 and hash(h1) == hash(h2)


def test_struct_value_repr(w: World) -> None:
    assert repr(w.point(x=1, y=2)) == "Point(x=1.0, y=2.0)"


def test_struct_value_copy_and_deepcopy(w: World) -> None:
    v = w.login(nickname="ada", history=["a"])
    shallow = copy.copy(v)
    assert shallow == v and shallow is not v and shallow.history is v.history
    deep = copy.deepcopy(v)
    assert deep == v and deep.history is not v.history
    own = v._copy()
    own.history.append("b")
    assert v.history == ["a"] and type(own) is type(v)


def test_struct_value_asdict_and_replace(w: World) -> None:
    v = w.login(nickname="ada")
    d = v._asdict()
    assert d == {"nickname": "ada", "level": 1, "tags": set(), "history": ["created"]}
    assert list(d) == list(w.login.value_class._fields)
    r = v._replace(level=5)
    assert r.level == 5 and v.level == 1 and r.nickname == "ada"
    with pytest.raises(ValidationError):
        v._replace(level="high")
    with pytest.raises(TypeError, match="no field"):
        v._replace(unknown=1)


def test_struct_fields_are_attributes_and_slots(w: World) -> None:
    v = w.point()
    v.x = 3.0
    assert v.x == 3.0
    with pytest.raises(AttributeError):
        v.z = 1


# --------------------------------------------------------------------------------------------
# XArray (user API)


def test_xarray_fresh_and_append() -> None:
    xa = XArray()
    assert xa.positions() == [END] and len(xa) == 0 and END == NIL_UUID
    p = xa.append("a")
    assert isinstance(p, uuid.UUID) and p != END
    q = xa.append("b")
    assert xa.positions() == [p, q, END]
    assert list(xa) == ["a", "b"] and xa.to_list() == ["a", "b"]
    assert xa.items() == [(p, "a"), (q, "b")]
    assert xa.at(p) == "a" and xa.at(q.bytes) == "b"
    assert xa.position(1) == q and xa.index(q) == 1
    assert xa.position_of("b") == q and xa.position_of("zz") is None
    assert p in xa and p.bytes in xa and uuid.uuid4() not in xa
    assert repr(xa) == "XArray(['a', 'b'])"
    assert XArray(["x", "y"]).to_list() == ["x", "y"]


def test_xarray_insert_before_and_explicit_positions() -> None:
    xa = XArray()
    c = xa.append("c")
    a = xa.insert(c, "a")
    b = xa.insert(c, "b", uuid.UUID(int=7))
    assert b == uuid.UUID(int=7)
    assert xa.to_list() == ["a", "b", "c"]
    assert xa.positions() == [a, b, c, END]
    with pytest.raises(ValueError, match="already exists"):
        xa.insert(END, "dup", b)
    with pytest.raises(ValueError, match="END"):
        xa.insert(END, "x", END)
    with pytest.raises(KeyError, match="unknown position"):
        xa.insert(uuid.uuid4(), "x")
    with pytest.raises(TypeError, match="is a uuid"):
        xa.insert("nope", "x")  # type: ignore[arg-type]


def test_xarray_set_and_remove_leave_tombstones() -> None:
    xa = XArray()
    p, q = xa.append(1), xa.append(2)
    xa.set(p, 10)
    assert xa.to_list() == [10, 2]
    xa.remove(p)
    assert xa.to_list() == [2] and len(xa) == 1
    assert xa.positions() == [p, q, END]  # tombstone kept
    assert xa.tombstones() == [p] and xa.live_positions() == [q]
    assert xa.has_position(p) and p not in xa
    assert xa.get(p) is None and xa.get(p, "dflt") == "dflt"
    for op in (lambda: xa.set(p, 1), lambda: xa.remove(p), lambda: xa.at(p)):
        with pytest.raises(KeyError, match="no element at position"):
            op()
    with pytest.raises(KeyError):
        xa.set(END, 1)
    with pytest.raises(ValueError):
        xa.index(p)
    # inserting before a tombstone is allowed (it is still an anchor)
    r = xa.insert(p, 0)
    assert xa.positions() == [r, p, q, END] and xa.to_list() == [0, 2]


def test_xarray_equality_includes_positions_and_tombstones() -> None:
    p, q = uuid.UUID(int=1), uuid.UUID(int=2)
    a, b = XArray(), XArray()
    a.append("x", p)
    b.append("x", p)
    assert a == b and hash(a) == hash(b)
    assert XArray(["x"]) != XArray(["x"])  # same content, different positions
    a.append("y", q)
    a.remove(q)
    assert a.to_list() == b.to_list() and a != b  # a tombstone differs
    c = XArray()
    c.append("z", p)
    assert c != b  # same positions, other value
    assert (a == ["x"]) is False


def test_xarray_copy_and_deepcopy() -> None:
    xa = XArray([["inner"]])
    p = xa.position(0)
    shallow = copy.copy(xa)
    assert shallow == xa and shallow.at(p) is xa.at(p)
    shallow.append(["more"])
    assert len(xa) == 1  # structure not shared
    deep = copy.deepcopy(xa)
    assert deep == xa and deep.at(p) is not xa.at(p)


# --------------------------------------------------------------------------------------------
# XArray replay semantics (engine spec §3.5): never raise


def test_apply_insert_semantics() -> None:
    xa = XArray()
    a = xa.append("a")
    n1 = uuid.UUID(int=11)
    assert xa.apply_insert(END, n1) is True  # before END: appended, no value yet
    assert xa.positions() == [a, n1, END] and xa.to_list() == ["a"]
    n2 = uuid.UUID(int=12)
    assert xa.apply_insert(a, n2) is True  # immediately before an existing position
    assert xa.positions() == [n2, a, n1, END]
    # existing `new` (live or tombstoned): no structural change, `before` ignored
    assert xa.apply_insert(END, a) is False
    xa.remove(a)
    assert xa.apply_insert(n2, a) is False
    assert xa.positions() == [n2, a, n1, END]
    # unknown `before`: nothing, `new` not created
    ghost = uuid.UUID(int=99)
    assert xa.apply_insert(uuid.UUID(int=98), ghost) is False
    assert not xa.has_position(ghost)
    # a tombstone is a valid anchor
    n3 = uuid.UUID(int=13)
    assert xa.apply_insert(a, n3) is True
    assert xa.positions() == [n2, n3, a, n1, END]
    assert xa.apply_insert(END, END) is False
    assert xa.apply_insert(END, n3.bytes) is False  # raw bytes accepted


def test_apply_update_semantics() -> None:
    xa = XArray()
    p = xa.append("a")
    assert xa.apply_update(p, "b") is True and xa.at(p) == "b"
    xa.remove(p)
    assert xa.apply_update(p, "revived") is True  # update resurrects a tombstone
    assert xa.to_list() == ["revived"] and xa.tombstones() == []
    assert xa.apply_update(uuid.uuid4(), "x") is False  # unknown: no-op
    assert xa.apply_update(END, "x") is False
    assert xa.to_list() == ["revived"]
    # insert then update fills a freshly inserted position
    n = uuid.UUID(int=5)
    xa.apply_insert(END, n)
    assert xa.apply_update(n, "new") is True
    assert xa.to_list() == ["revived", "new"]


def test_apply_remove_semantics() -> None:
    xa = XArray()
    p = xa.append("a")
    assert xa.apply_remove(p) is True
    assert xa.apply_remove(p) is False  # idempotent
    assert xa.positions() == [p, END]
    assert xa.apply_remove(uuid.uuid4()) is False  # unknown: no-op
    assert xa.apply_remove(END) is False


def test_concurrent_inserts_before_the_same_anchor() -> None:
    # the later insert in the linearization sits closest to the anchor
    xa = XArray()
    anchor = xa.append("anchor")
    p, q = uuid.UUID(int=1), uuid.UUID(int=2)
    xa.apply_insert(anchor, p)
    xa.apply_update(p, "P")
    xa.apply_insert(anchor, q)
    xa.apply_update(q, "Q")
    assert xa.to_list() == ["P", "Q", "anchor"]


def test_xarray_positions_are_uuids_in_the_api() -> None:
    xa = XArray()
    p = xa.append(1)
    assert all(isinstance(x, uuid.UUID) for x in xa.positions())
    assert isinstance(XArray.create_position(), uuid.UUID)
    assert XArray.create_position() != XArray.create_position()
    assert xa.has_position(p.bytes) and not xa.has_position(END)


# --------------------------------------------------------------------------------------------
# Typed


def test_typed_validates_and_compares(w: World) -> None:
    t = Typed(INT8, 5)
    assert t.type == INT8 and t.value == 5
    assert t == Typed(INT8, 5) and hash(t) == hash(Typed(INT8, 5))
    assert t != Typed(INT64, 5)
    assert repr(t) == "Typed(int8, 5)"
    with pytest.raises(ValidationError, match="int8 in"):
        Typed(INT8, 500)
    with pytest.raises(AttributeError, match="immutable"):
        t.value = 3
    assert Typed(SetType(STRING), ["a", "a"]).value == {"a"}
    assert (t == 5) is False


def test_typed_is_hashable_whatever_it_holds(w: World) -> None:
    held = [
        Typed(VectorType(INT64), [1, 2]),
        Typed(TupleType([VectorType(INT8), STRING]), ([1], "x")),
        Typed(MapType(INT64, VectorType(INT64)), {1: [1], 2**61: [2]}),  # equal key hashes
        Typed(MapType(INT64, ANY), {1: Typed(INT8, 1), 2**61: Typed(INT8, 2)}),
        Typed(XArrayType(STRING), XArray(["a"])),
        Typed(SetType(STRING), {"a"}),
    ]
    for t in held:
        assert hash(t) == hash(copy.deepcopy(t))
    assert SetType(ANY).check(held)  # usable as set elements


def test_typed_copy_and_deepcopy() -> None:
    t = Typed(VectorType(INT64), [1])
    assert copy.copy(t) is t
    deep = copy.deepcopy(t)
    assert deep == t and deep.value is not t.value and deep.type == t.type


def test_keys_of_values_in_keytype(w: World) -> None:
    k = Key(w.glass, uuid.uuid4())
    assert KeyType(w.material).check(k) == k
