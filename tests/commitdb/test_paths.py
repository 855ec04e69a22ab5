"""Tests for commitdb.paths: building, text form, resolution, reading, writing, wire form."""

from __future__ import annotations

import copy
import math
import pickle
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from commitdb import types as T
from commitdb.codec import encode
from commitdb.definitions import Definitions
from commitdb.errors import DecodeError, PathError
from commitdb.paths import (
    Component,
    Element,
    Entry,
    Field,
    Index,
    MapKey,
    Path,
    Position,
    Unwrap,
    element_sort_key,
    sorted_elements,
)
from commitdb.values import Key, Typed, XArray

# --------------------------------------------------------------------------------------------
# A small schema with every kind of container


@dataclass
class Schema:
    defs: Definitions
    user: T.ConceptType
    admin: T.ConceptType
    color: T.EnumerationType
    point: T.StructureType
    cell: T.StructureType
    doc: T.StructureType
    variant: T.VariantType
    multi: T.VariantType


def make_schema() -> Schema:
    defs = Definitions()
    ns = defs.namespace("PathsTest", "6b1c3a52-2d7e-4c35-9a53-6a0b0f6f1f10")
    user = defs.create_concept(ns, "User")
    admin = defs.create_concept(ns, "Admin", parent=user)
    color = defs.create_enumeration(ns, "Color", ["red", "green", "blue"])
    point = defs.create_structure(ns, "Point", [T.Field("x", T.DOUBLE), T.Field("y", T.DOUBLE)])
    cell = defs.create_structure(
        ns,
        "Cell",
        [
            T.Field("label", T.STRING),
            T.Field("tags", T.SetType(T.STRING)),
            T.Field("entry", T.INT64),
            T.Field("element", T.STRING),
        ],
    )
    variant = T.VariantType([T.INT64, T.STRING, point])
    multi = T.VariantType(
        [T.MapType(T.STRING, T.INT64), T.MapType(T.UUID, T.STRING), T.MapType(T.BLOB, T.INT64)]
    )
    doc = defs.create_structure(
        ns,
        "Doc",
        [
            T.Field("name", T.STRING),
            T.Field("count", T.INT64),
            T.Field("point", point),
            T.Field("points", T.VectorType(point)),
            T.Field("scores", T.MapType(T.STRING, T.INT64)),
            T.Field("by_id", T.MapType(T.INT64, point)),
            T.Field("by_uuid", T.MapType(T.UUID, T.STRING)),
            T.Field("by_color", T.MapType(color, T.STRING)),
            T.Field("by_ratio", T.MapType(T.DOUBLE, T.STRING)),
            T.Field("by_owner", T.MapType(T.KeyType(user), T.STRING)),
            T.Field("by_point", T.MapType(point, T.STRING)),
            T.Field("maybe", T.OptionalType(T.INT64)),
            T.Field("extra", T.OptionalType(point)),
            T.Field("pair", T.TupleType([T.STRING, T.INT64])),
            T.Field("v3", T.VecType(T.FLOAT, 3)),
            T.Field("m22", T.MatType(T.DOUBLE, 2, 2)),
            T.Field("items", T.XArrayType(T.STRING)),
            T.Field("cells", T.XArrayType(cell)),
            T.Field("tags", T.SetType(T.STRING)),
            T.Field("pairs", T.SetType(T.TupleType([T.INT64, T.STRING]))),
            T.Field("choice", variant),
            T.Field("opt_choice", T.OptionalType(T.VariantType([T.INT64, T.INT32]))),
            T.Field("multi", multi),
            T.Field(
                "twin",
                T.VariantType([T.MapType(T.STRING, T.INT64), T.MapType(T.STRING, T.STRING)]),
            ),
            T.Field("payload", T.ANY),
            T.Field("owner", T.KeyType(user)),
            T.Field("nested", T.VectorType(T.MapType(T.STRING, T.VectorType(T.INT64)))),
            T.Field("shapes", T.VectorType(T.TupleType([T.STRING, T.VecType(T.DOUBLE, 2)]))),
            T.Field("table", T.MapType(T.STRING, cell)),
        ],
    )
    return Schema(defs, user, admin, color, point, cell, doc, variant, multi)


S = make_schema()
DOC = S.doc
ITEM_POSITIONS = [uuid.UUID(int=0x1000 + i) for i in range(3)]
CELL_POSITION = uuid.UUID(int=0x2000)
OWNER_ID = uuid.UUID(int=0x3000)
UUID_KEY = uuid.UUID(int=0x4000)


def make_doc() -> Any:
    items = XArray()
    for p, v in zip(ITEM_POSITIONS, ["a", "b", "c"], strict=True):
        items.append(v, p)
    cells = XArray()
    cells.append({"label": "c0", "tags": ["t"]}, CELL_POSITION)
    return DOC.check(
        {
            "name": "doc",
            "count": 3,
            "point": {"x": 1.0, "y": 2.0},
            "points": [{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 1.0}],
            "scores": {"a": 1, "b": 2},
            "by_id": {7: {"x": 7.0, "y": 7.0}},
            "by_uuid": {UUID_KEY: "u"},
            "by_color": {"green": "g"},
            "by_ratio": {0.5: "half"},
            "by_owner": {Key(S.user, OWNER_ID): "owner"},
            "by_point": {S.point(x=1.0, y=2.0): "p"},
            "maybe": None,
            "extra": None,
            "pair": ("p", 1),
            "v3": (1.0, 2.0, 3.0),
            "m22": (1.0, 0.0, 0.0, 1.0),
            "items": items,
            "cells": cells,
            "tags": {"x", "a", "m"},
            "pairs": {(2, "b"), (-1, "z"), (2, "a")},
            "choice": 5,
            "opt_choice": Typed(T.INT32, 4),
            "multi": {"k": 1},
            "payload": Typed(T.TupleType([T.INT64, T.INT64]), (1, 2)),
            "owner": Key(S.user, OWNER_ID),
            "nested": [{"xs": [1, 2, 3]}],
            "shapes": [("sq", (1.0, 2.0))],
            "table": {"t": {"label": "L", "tags": ["q"]}},
        }
    )


def p(text: str) -> Path:
    return Path.parse(text)


# --------------------------------------------------------------------------------------------
# Components


def test_components_are_immutable_hashable_and_compare_by_kind_and_payload() -> None:
    u = uuid.UUID(int=9)
    comps: list[Component] = [
        Field("a"),
        Index(1),
        MapKey("a"),
        MapKey(1),
        MapKey(True),
        MapKey(1.0),
        Position(u),
        Unwrap(),
        Entry("a"),
        Element(1),
    ]
    assert len(set(comps)) == len(comps)  # Field('a') != MapKey('a'), 1 != 1.0 != True, ...
    assert Field("a") == Field("a") and hash(Field("a")) == hash(Field("a"))
    assert MapKey(math.nan) == MapKey(math.nan)
    assert hash(MapKey(math.nan)) == hash(MapKey(float("nan")))
    assert MapKey(0.0) != MapKey(-0.0)
    assert Position(str(u)) == Position(u.bytes) == Position(u)
    assert Unwrap() == Unwrap()
    with pytest.raises(AttributeError):
        Field("a").name = "b"  # type: ignore[misc]
    assert [c.value for c in comps[:3]] == ["a", 1, "a"]
    assert Unwrap().value is None
    assert repr(Field("a")) == "Field('a')" and repr(Unwrap()) == "Unwrap()"
    assert not Entry("a").regular and not Element(0).regular and Field("a").regular


@pytest.mark.parametrize(
    "build",
    [
        lambda: Field(""),
        lambda: Field(3),
        lambda: Index(-1),
        lambda: Index(True),
        lambda: Index(1.0),
        lambda: Element(-2),
        lambda: MapKey([1]),
        lambda: Entry({}),
        lambda: Position(uuid.UUID(int=0)),
        lambda: Position("nope"),
        lambda: Position(b"short"),
        lambda: Path("abc"),
        lambda: Path([1]),
    ],
)
def test_invalid_components_raise_path_error(build: Any) -> None:
    with pytest.raises(PathError):
        build()


# --------------------------------------------------------------------------------------------
# Building and querying


def test_builders_queries_and_operators() -> None:
    root = Path.root()
    assert root == Path() and root.is_root and root.last is None and str(root) == "."
    a = root.field("a")
    ab = a / "b"
    assert ab == Path([Field("a"), Field("b")]) and not ab.is_root
    assert ab.components == (Field("a"), Field("b")) and ab.last == Field("b")
    full = ab / Path().index(2).unwrap()
    assert str(full) == ".a.b[2]!"
    assert full / Unwrap() == full.unwrap()
    assert full.parent() == ab.index(2)
    assert full.ancestors() == (full, ab.index(2), ab, a, root)
    assert full.has_prefix(ab) and full.has_prefix(root) and full.has_prefix(full)
    assert not ab.has_prefix(full) and not ab.has_prefix(Path().field("b"))
    assert hash(ab) == hash(p(".a.b")) and {ab: 1}[p(".a.b")] == 1
    assert ab != ".a.b"
    assert repr(ab) == "Path('.a.b')"
    with pytest.raises(PathError, match="root path has no parent"):
        root.parent()
    with pytest.raises(AttributeError):
        ab._components = ()  # type: ignore[misc]
    # building never mutates
    assert a == Path().field("a")


def test_regular_and_regularized() -> None:
    assert p(".a['k'][1]!").is_regular
    assert not p(".s.element[0]").is_regular and not p(".m['k'].entry[0]").is_regular
    assert p(".s.element[0]").regularized() == p(".s[0]")
    assert p(".s.element[0].x").regularized() == p(".s[0]")
    assert p(".m['k'].entry[0]").regularized() == p(".m['k']")
    assert p(".m['k'].entry[0][1]").regularized() == p(".m['k']")
    assert p(".m['k'].entry[1].x").regularized() == p(".m['k'].x")
    assert p(".m['k'].entry").regularized() == p(".m['k']")
    assert p(".a[3]").regularized() == p(".a[3]")


# --------------------------------------------------------------------------------------------
# Text form


U = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (Path(), "."),
        (Path().field("topology").field("vertexKeys"), ".topology.vertexKeys"),
        (Path().index(3), "[3]"),
        (Path().key("k"), "['k']"),
        (Path().key(3), "[#3]"),
        (Path().key(-3), "[#-3]"),
        (Path().key(1.5), "[#1.5]"),
        (Path().key(1e16), "[#1e+16]"),
        (Path().key(-math.inf), "[#-inf]"),
        (Path().key(True), "[true]"),
        (Path().key(None), "[nil]"),
        (Path().key(U), "[{01234567-89ab-cdef-0123-456789abcdef}]"),
        (Path().position(U), "[@{01234567-89ab-cdef-0123-456789abcdef}]"),
        (Path().key(b"\x00\xff"), "[x'00ff']"),
        (Path().key((1, "a")), "[(#1, 'a')]"),
        (Path().key((1,)), "[(#1,)]"),
        (Path().field("maybe").unwrap().unwrap(), ".maybe!!"),
        (Path().field("m").entry("k").index(0), ".m['k'].entry[0]"),
        (Path().field("m").entry(4), ".m[#4].entry"),
        (Path().field("s").element(2), ".s.element[2]"),
        (Path().field("entry").field("element"), ".'entry'.'element'"),
        (Path().field("a b").field("1x").field("é"), ".'a b'.'1x'.'é'"),
        (Path().key("it's \\ \n\t\x00\u2028"), "['it\\'s \\\\ \\n\\t\\x00\\u2028']"),
        (Path().field("_ok9"), "._ok9"),
    ],
)
def test_text_form_and_parse(path: Path, text: str) -> None:
    assert str(path) == text
    assert Path.parse(text) == path


def test_parse_accepts_alternative_spellings() -> None:
    assert p('["k"]') == p("['k']")
    assert p('."a b"') == p(".'a b'")
    assert p("[( #1 , 'a' , )]") == Path().key((1, "a"))
    assert p("[(#1)]") == Path().key((1,))
    assert p("[()]") == Path().key(())
    assert p("[#1.]") == Path().key(1.0)
    assert p("[#nan]") == Path().key(math.nan)
    assert p("[{01234567-89AB-CDEF-0123-456789ABCDEF}]") == Path().key(U)
    assert p("['\\U0001F600\\x41\\u00e9\\\"\\0']") == Path().key('\U0001f600Aé"\0')
    assert p("!") == Path().unwrap()
    assert p("[007]") == Path().index(7)


def test_other_keys_print_in_a_form_that_normalizes_back() -> None:
    doc_path = Path().field("by_color").key(S.color.case("green"))
    assert str(doc_path) == ".by_color['green']"
    assert Path.parse(str(doc_path)).normalize(DOC) == doc_path
    k = Key(S.user, OWNER_ID)
    owner_path = Path().field("by_owner").key(k)
    assert str(owner_path) == f".by_owner[{{{OWNER_ID}}}]"
    assert Path.parse(str(owner_path)).normalize(DOC) == owner_path
    pt = S.point(x=1.0, y=2.0)
    point_path = Path().field("by_point").key(pt)
    assert str(point_path) == ".by_point[(#1.0, #2.0)]"
    assert Path.parse(str(point_path)).normalize(DOC) == point_path
    assert str(Path().key(Typed(T.INT32, 4))) == "[#4]"
    assert str(Path().key(frozenset())) == "[<frozenset()>]"  # printable, not parseable
    with pytest.raises(PathError, match="column 2"):
        Path.parse(str(Path().key(frozenset())))


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty path"),
        ("a", 1, "a step starts with"),
        (".a.", 4, "expected a field name"),
        (".a..b", 4, "expected a field name"),
        (".1a", 2, "expected a field name"),
        ("[x]", 2, "expected a map key"),
        ("[]", 2, "expected a map key"),
        ("['a'", 5, "expected ']'"),
        ("['a", 2, "unterminated string"),
        ("[3", 3, "expected ']'"),
        ("[-1]", 2, "an index is >= 0"),
        ("[#]", 3, "expected a number"),
        ("[#x]", 3, "expected a number"),
        ("[@x]", 3, "expected a uuid"),
        ("[{0123}]", 2, "expected a uuid in braces"),
        ("[@{00000000-0000-0000-0000-000000000000}]", 1, "END"),
        (".entry", 1, "must follow a map key"),
        ("[0].entry", 4, "must follow a map key"),
        (".a.element", 3, "must be followed by [i]"),
        (".element[x]", 10, "expected digits"),
        ("['\\q']", 3, "unknown escape"),
        ("['\\x4']", 5, "hexadecimal digits"),
        ("['\\UFFFFFFFF']", 5, "not a unicode code point"),
        ("[x'zz']", 2, "hexadecimal"),
        ("[(#1 #2)]", 6, "expected ',' or ')'"),
        ("[truth]", 2, "expected a map key"),
        (".a?", 3, "unexpected '?'"),
    ],
)
def test_parse_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(PathError) as info:
        Path.parse(text)
    message = str(info.value)
    assert f"column {column} " in message, message
    assert fragment in message, message


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(PathError):
        Path.parse(3)  # type: ignore[arg-type]


identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
simple_keys = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.uuids(),
)
positions = st.uuids().filter(lambda u: u.int != 0)
components = st.one_of(
    identifiers.map(Field),
    st.text(min_size=1, max_size=8).map(Field),
    st.sampled_from(["entry", "element"]).map(Field),
    st.integers(min_value=0, max_value=10**6).map(Index),
    simple_keys.map(MapKey),
    positions.map(Position),
    st.just(Unwrap()),
    simple_keys.map(Entry),
    st.integers(min_value=0, max_value=50).map(Element),
)
paths = st.lists(components, max_size=8).map(Path)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(paths)
def test_text_round_trip_property(path: Path) -> None:
    text = str(path)
    assert Path.parse(text) == path
    assert str(Path.parse(text)) == text


@settings(max_examples=200, derandomize=True, deadline=None)
@given(paths)
def test_paths_copy_deepcopy_and_pickle(path: Path) -> None:
    assert copy.copy(path) is path
    assert copy.deepcopy(path) is path
    assert copy.deepcopy({"p": path, "c": list(path.components)})["p"] is path
    back = pickle.loads(pickle.dumps(path))
    assert back == path and hash(back) == hash(path) and str(back) == str(path)
    for comp in path.components:
        assert pickle.loads(pickle.dumps(comp)) == comp


@settings(max_examples=200, derandomize=True, deadline=None)
@given(paths, paths)
def test_prefix_and_concatenation_properties(a: Path, b: Path) -> None:
    ab = a / b
    assert ab.has_prefix(a)
    assert str(ab) == (str(b) if a.is_root else str(a) if b.is_root else str(a) + str(b))
    assert ab.ancestors()[-1] == Path() and ab.ancestors()[0] == ab
    assert a in ab.ancestors()


# --------------------------------------------------------------------------------------------
# Resolution


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (".", DOC),
        (".name", T.STRING),
        (".point.x", T.DOUBLE),
        (".points[10].y", T.DOUBLE),
        (".scores['zz']", T.INT64),
        (".by_id[#7].x", T.DOUBLE),
        (".by_uuid[{01234567-89ab-cdef-0123-456789abcdef}]", T.STRING),
        (".maybe!", T.INT64),
        (".extra!.y", T.DOUBLE),
        (".pair[1]", T.INT64),
        (".v3[2]", T.FLOAT),
        (".m22[3]", T.DOUBLE),
        (".items[@{01234567-89ab-cdef-0123-456789abcdef}]", T.STRING),
        (".cells[@{01234567-89ab-cdef-0123-456789abcdef}].'entry'", T.INT64),
        (".cells[@{01234567-89ab-cdef-0123-456789abcdef}].'element'", T.STRING),
        (".tags.element[3]", T.STRING),
        (".pairs.element[0][1]", T.STRING),
        (".scores['a'].entry", T.TupleType([T.STRING, T.INT64])),
        (".scores['a'].entry[0]", T.STRING),
        (".scores['a'].entry[1]", T.INT64),
        (".nested[0]['k'][5]", T.INT64),
        (".shapes[0][1][1]", T.DOUBLE),
        (".table['t'].tags.element[0]", T.STRING),
        (".choice!", S.variant),
        (".choice!.x", T.DOUBLE),
        (".opt_choice!", T.VariantType([T.INT64, T.INT32])),
        (".opt_choice!!", T.VariantType([T.INT64, T.INT32])),
        (".multi!['a']", T.INT64),
        (f".multi!['{U}']", T.ANY),  # int64 under a string key, string under a uuid key
        (".multi![{01234567-89ab-cdef-0123-456789abcdef}]", T.STRING),
        (".multi![x'00']", T.INT64),
        (".twin!['a']", T.ANY),
        (".twin!['a'].entry[0]", T.STRING),
        (".payload", T.ANY),
        (".payload!", T.ANY),
        (".payload!.x['k'][3]!.element[1]", T.ANY),
    ],
)
def test_resolve(text: str, expected: T.Type) -> None:
    assert p(text).resolve(DOC) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (".nope", "unknown field 'nope' in PathsTest::Doc (fields: name, count, point,"),
        (".point.z", "unknown field 'z' in PathsTest::Point (fields: x, y) (at .point.z)"),
        (".name[0]", "index [0] on string, which is not a vector, tuple, vec or mat"),
        (".by_id[7]", "(a map key is written [#7] or ['7'])"),
        (".items[0]", "addressed by position"),
        (".tags[0]", "(a set element is .element[0])"),
        (".pair[2]", "Index 2 is out of range for tuple<string, int64> (size 2)"),
        (".v3[3]", "Index 3 is out of range for vec<float, 3> (size 3)"),
        (".m22[4]", "Index 4 is out of range for mat<double, 2, 2> (size 4)"),
        (".scores['a'].entry[2]", "Index 2 is out of range"),
        (".by_uuid['nope']", "map key 'nope' does not fit map<uuid, string>"),
        (".by_id['7']", "map key '7' does not fit map<int64, PathsTest::Point>"),
        (".by_color['pink']", "does not fit map<PathsTest::Color, string>"),
        (".name['k']", "map key ['k'] on string, which is not a map"),
        (".tags['k'].entry", "entry ['k'].entry on set<string>, which is not a map"),
        (".points[@{01234567-89ab-cdef-0123-456789abcdef}]", "which is not an xarray"),
        (".name!", "unwrap '!' on string, which is not an optional, a variant or an any"),
        (".scores.element[0]", "on map<string, int64>, which is not a set"),
        (".maybe.x", "field .x on optional<int64>: unwrap it first with '!'"),
        (".extra['k']", "on optional<PathsTest::Point>: unwrap it first"),
        (".choice.x", "unwrap it first"),
        (".payload[0]", "on any: unwrap it first"),
        (".choice!.z", "no alternative of the variant fits"),
        (".multi![#3]", "no alternative of the variant fits"),
        (".point.x.y", "field 'y' on double, which is not a structure"),
    ],
)
def test_resolve_failures(text: str, fragment: str) -> None:
    with pytest.raises(PathError) as info:
        p(text).resolve(DOC)
    assert fragment in str(info.value), str(info.value)


def test_resolve_failure_says_where() -> None:
    with pytest.raises(PathError) as info:
        p(".points[0].z.w").resolve(DOC)
    assert str(info.value).endswith("(at .points[0].z in .points[0].z.w)")


def test_normalize_converts_keys_with_the_key_types() -> None:
    text_uuid = str(UUID_KEY)
    assert Path().field("by_uuid").key(text_uuid).normalize(DOC) == Path().field("by_uuid").key(
        UUID_KEY
    )
    green = p(".by_color['green']").normalize(DOC).components[-1]
    assert isinstance(green, MapKey) and green.key is S.color.case("green")
    assert p(".by_color['.blue']").normalize(DOC) == Path().field("by_color").key(
        S.color.case("blue")
    )
    ratio = p(".by_ratio[#1]").normalize(DOC)
    assert ratio == Path().field("by_ratio").key(1.0)
    assert p(".by_owner['" + str(OWNER_ID) + "']").normalize(DOC) == Path().field("by_owner").key(
        Key(S.user, OWNER_ID)
    )
    assert p(".scores['a'].entry[0]").normalize(DOC) == p(".scores['a'].entry[0]")
    assert p(".multi!['" + str(U) + "']").normalize(DOC) == p(".multi!['" + str(U) + "']")
    assert p(".payload!['k']").normalize(DOC) == p(".payload!['k']")
    with pytest.raises(PathError):
        p(".by_ratio['x']").normalize(DOC)


def test_normalize_builds_structures_and_keys_inside_composite_keys() -> None:
    by_pair = T.MapType(T.TupleType([S.point, T.KeyType(S.user)]), T.STRING)
    path = p(f"[((#1, #2), {{{OWNER_ID}}})]").normalize(by_pair)
    assert path == Path().key((S.point(x=1.0, y=2.0), Key(S.user, OWNER_ID)))
    by_maybe = T.MapType(T.OptionalType(S.point), T.STRING)
    assert p("[(#1, #2)]").normalize(by_maybe) == Path().key(S.point(x=1.0, y=2.0))
    assert p("[nil]").normalize(by_maybe) == Path().key(None)
    by_key = T.MapType(T.KeyType(S.user), T.STRING)
    with pytest.raises(PathError, match="does not fit map<key<PathsTest::User>, string>"):
        p("['not a uuid']").normalize(by_key)


def test_normalized_paths_read_the_document() -> None:
    doc = make_doc()
    assert p(".by_uuid['" + str(UUID_KEY) + "']").normalize(DOC).at(doc) == "u"
    assert p(".by_color['green']").normalize(DOC).at(doc) == "g"
    assert p(".by_ratio[#0.5]").at(doc) == "half"
    assert p(f".by_owner[{{{OWNER_ID}}}]").normalize(DOC).at(doc) == "owner"
    assert p(".by_point[(#1, #2)]").normalize(DOC).at(doc) == "p"


# --------------------------------------------------------------------------------------------
# Reading


def test_at_reads_every_component() -> None:
    doc = make_doc()
    assert Path().at(doc) is doc
    assert p(".name").at(doc) == "doc"
    assert p(".point.y").at(doc) == 2.0
    assert p(".points[1].x").at(doc) == 1.0
    assert p(".scores['b']").at(doc) == 2
    assert p(".by_id[#7].y").at(doc) == 7.0
    assert p(".pair[0]").at(doc) == "p"
    assert p(".m22[3]").at(doc) == 1.0
    assert p(f".items[@{{{ITEM_POSITIONS[1]}}}]").at(doc) == "b"
    assert p(".tags.element[0]").at(doc) == "a"
    assert p(".tags.element[2]").at(doc) == "x"
    assert p(".pairs.element[0]").at(doc) == (-1, "z")
    assert p(".pairs.element[2][1]").at(doc) == "b"
    assert p(".scores['a'].entry").at(doc) == ("a", 1)
    assert p(".scores['a'].entry[0]").at(doc) == "a"
    assert p(".scores['a'].entry[1]").at(doc) == 1
    assert p(".nested[0]['xs'][2]").at(doc) == 3
    assert p(".shapes[0][1][1]").at(doc) == 2.0
    assert p(".choice!").at(doc) == 5
    # an unwrap keeps the Typed wrapper of a variant or an any; the next step looks inside
    assert p(".opt_choice!").at(doc) == Typed(T.INT32, 4)
    assert p(".opt_choice!!").at(doc) == 4
    assert p(".payload!").at(doc) == Typed(T.TupleType([T.INT64, T.INT64]), (1, 2))
    assert p(".payload![1]").at(doc) == 2
    assert p(f".cells[@{{{CELL_POSITION}}}].'entry'").at(doc) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (".points[4]", "Index 4 is out of range"),
        (".points[4].x", "Index 4 is out of range"),
        (".maybe!", "Try to unwrap empty optional"),
        (".extra!.x", "Try to unwrap empty optional"),
        (".scores['zz']", "Key 'zz' not found"),
        (".by_id[#3]", "Key #3 not found"),
        (".scores['zz'].entry[0]", "Key 'zz' not found"),
        (".nope", "unknown field 'nope' in PathsTest::Doc (fields: name,"),
        (".items[@{01234567-89ab-cdef-0123-456789abcdef}]", "Position {01234567-"),
        (".tags.element[3]", "Element 3 is out of range"),
        (".name.x", "field .x on a str"),
        (".name[0]", "index [0] on a str"),
        (".scores[0]", "index [0] on a dict"),
        (".tags['a']", "map key ['a'] on a set"),
        (".name.element[0]", "element .element[0] on a str"),
        (".points[@{01234567-89ab-cdef-0123-456789abcdef}]", "on a list"),
        (".maybe!!", "Try to unwrap empty optional"),
    ],
)
def test_at_failures_use_the_replay_messages(text: str, message: str) -> None:
    with pytest.raises(PathError) as info:
        p(text).at(make_doc())
    assert message in str(info.value), str(info.value)


def test_at_on_a_removed_position_and_on_nil_inside_a_typed_any() -> None:
    doc = make_doc()
    doc.items.remove(ITEM_POSITIONS[0])
    with pytest.raises(PathError, match="is removed"):
        p(f".items[@{{{ITEM_POSITIONS[0]}}}]").at(doc)
    doc.payload = Typed(T.OptionalType(T.INT64), None)  # an any holding a nil optional<int64>
    assert p(".payload!").at(doc) == Typed(T.OptionalType(T.INT64), None)
    with pytest.raises(PathError, match="Try to unwrap empty optional"):
        p(".payload!!").at(doc)
    doc.payload = None  # an empty any
    with pytest.raises(PathError, match="Try to unwrap empty optional"):
        p(".payload!").at(doc)


# --------------------------------------------------------------------------------------------
# Writing with the replay rules


def test_set_in_assigns_in_place_in_mutable_containers() -> None:
    doc = make_doc()
    points = doc.points
    assert p(".name").set_in(doc, "new") is doc and doc.name == "new"
    assert p(".points[1].x").set_in(doc, 9.0) is doc
    assert doc.points is points and doc.points[1].x == 9.0
    p(".points[0]").set_in(doc, S.point(x=5.0, y=5.0))
    assert doc.points[0] == S.point(x=5.0, y=5.0)
    p(".scores['a']").set_in(doc, 10)
    p(".nested[0]['xs'][0]").set_in(doc, 100)
    p(f".items[@{{{ITEM_POSITIONS[2]}}}]").set_in(doc, "C")
    p(".table['t'].label").set_in(doc, "LL")
    p(f".cells[@{{{CELL_POSITION}}}].'element'").set_in(doc, "el")
    assert doc.scores == {"a": 10, "b": 2}
    assert doc.nested == [{"xs": [100, 2, 3]}]
    assert doc.items.to_list() == ["a", "b", "C"]
    assert doc.table["t"].label == "LL"
    assert doc.cells.at(CELL_POSITION).element == "el"


def test_set_in_rebuilds_immutable_containers_in_their_parent() -> None:
    doc = make_doc()
    shapes = doc.shapes
    p(".pair[1]").set_in(doc, 42)
    assert doc.pair == ("p", 42)
    p(".v3[0]").set_in(doc, 7.0)
    assert doc.v3 == (7.0, 2.0, 3.0)
    p(".m22[1]").set_in(doc, 3.0)
    assert doc.m22 == (1.0, 3.0, 0.0, 1.0)
    p(".shapes[0][1][0]").set_in(doc, 8.0)
    assert doc.shapes is shapes and doc.shapes == [("sq", (8.0, 2.0))]
    # an immutable root is rebuilt and returned
    root = (1, (2, 3))
    assert p("[1][0]").set_in(root, 9) == (1, (9, 3))
    assert root == (1, (2, 3))
    # a Typed wrapper around an immutable value is rebuilt too
    p(".payload![0]").set_in(doc, 7)
    assert doc.payload == Typed(T.TupleType([T.INT64, T.INT64]), (7, 2))
    typed_root = Typed(T.TupleType([T.INT64, T.INT64]), (1, 2))
    new_root = p("![1]").set_in(typed_root, 5)
    assert new_root == Typed(T.TupleType([T.INT64, T.INT64]), (1, 5))
    assert typed_root.value == (1, 2)


def test_set_in_goes_through_typed_wrappers_in_the_middle_of_a_path() -> None:
    doc = make_doc()
    listed = Typed(T.VectorType(T.TupleType([T.INT64, T.INT64])), [(1, 2)])
    doc.payload = listed
    p(".payload![0][1]").set_in(doc, 9)
    assert doc.payload is listed and listed.value == [(1, 9)]  # the list changed in place
    nested_type = T.TupleType([T.TupleType([T.INT64, T.INT64]), T.INT64])
    doc.payload = Typed(nested_type, ((1, 2), 3))
    p(".payload![0][1]").set_in(doc, 9)
    assert doc.payload == Typed(nested_type, ((1, 9), 3))  # tuples and wrapper rebuilt
    assert p(".payload![0][1]").at(doc) == 9


def test_set_in_root_path_is_refused() -> None:
    with pytest.raises(PathError, match="^unexpected root Path$"):
        Path().set_in(make_doc(), 1)


def test_set_in_map_key_inserts_last_but_not_in_the_middle() -> None:
    doc = make_doc()
    p(".scores['new']").set_in(doc, 7)
    assert doc.scores == {"a": 1, "b": 2, "new": 7}
    p(".by_id[#8]").set_in(doc, S.point(x=8.0, y=8.0))
    assert doc.by_id[8].x == 8.0
    with pytest.raises(PathError, match="^Key 'zz' not found$"):
        p(".table['zz'].label").set_in(doc, "x")
    with pytest.raises(PathError, match="Key #9 not found"):
        p(".by_id[#9].x").set_in(doc, 1.0)
    with pytest.raises(PathError, match="Key 'zz' not found"):
        p(".scores['zz']!").set_in(doc, 1)  # a key followed by more path is in the middle


def test_set_in_unwrap_last_stores_into_a_nil_optional() -> None:
    doc = make_doc()
    p(".maybe!").set_in(doc, 5)
    assert doc.maybe == 5
    p(".maybe!").set_in(doc, 6)
    assert doc.maybe == 6
    p(".extra!").set_in(doc, S.point(x=1.0, y=1.0))
    p(".extra!.x").set_in(doc, 3.0)
    assert doc.extra == S.point(x=3.0, y=1.0)
    # the whole document may be an optional
    assert p("!").set_in(None, 4) == 4


def test_set_in_unwrap_in_the_middle_of_nil_raises() -> None:
    doc = make_doc()
    with pytest.raises(PathError, match="^Try to unwrap empty optional$"):
        p(".extra!.x").set_in(doc, 1.0)
    with pytest.raises(PathError, match="^Try to unwrap empty optional$"):
        p(".maybe!!").set_in(doc, 1)
    with pytest.raises(PathError, match="Try to unwrap empty optional"):
        p("!!").set_in(None, 1)
    assert doc.extra is None and doc.maybe is None


def test_set_in_unwrap_of_variant_and_any() -> None:
    doc = make_doc()
    p(".choice!").set_in(doc, "text")
    assert doc.choice == "text"
    p(".choice!").set_in(doc, S.point(x=1.0, y=2.0))
    p(".choice!.y").set_in(doc, 4.0)
    assert doc.choice == S.point(x=1.0, y=4.0)
    p(".opt_choice!!").set_in(doc, Typed(T.INT32, 9))
    assert doc.opt_choice == Typed(T.INT32, 9)
    p(".payload!").set_in(doc, "anything")
    assert doc.payload == "anything"


def test_set_in_positions_write_and_revive() -> None:
    doc = make_doc()
    first = ITEM_POSITIONS[0]
    doc.items.remove(first)
    assert doc.items.to_list() == ["b", "c"]
    with pytest.raises(PathError, match="is removed"):
        p(f".items[@{{{first}}}]!").set_in(doc, "A")  # a position followed by more path
    p(f".items[@{{{first}}}]").set_in(doc, "A")
    assert doc.items.to_list() == ["A", "b", "c"]
    unknown = uuid.UUID(int=0xDEAD)
    with pytest.raises(PathError, match=f"Position {{{unknown}}} not found"):
        p(f".items[@{{{unknown}}}]").set_in(doc, "z")
    with pytest.raises(PathError, match="not found"):
        p(f".cells[@{{{unknown}}}].label").set_in(doc, "z")
    doc.cells.remove(CELL_POSITION)
    with pytest.raises(PathError, match="is removed"):
        p(f".cells[@{{{CELL_POSITION}}}].label").set_in(doc, "z")


def test_set_in_index_out_of_range() -> None:
    doc = make_doc()
    with pytest.raises(PathError, match="^Index 4 is out of range$"):
        p(".points[4].x").set_in(doc, 1.0)
    with pytest.raises(PathError, match="^Index 2 is out of range$"):
        p(".points[2]").set_in(doc, S.point())
    with pytest.raises(PathError, match="^Index 2 is out of range$"):
        p(".pair[2]").set_in(doc, 1)


def test_set_in_refuses_irregular_paths_and_wrong_shapes() -> None:
    doc = make_doc()
    with pytest.raises(PathError, match="need patch"):
        p(".tags.element[0]").set_in(doc, "q")
    with pytest.raises(PathError, match="need patch"):
        p(".scores['a'].entry[1]").set_in(doc, 3)
    for text in (".nope", ".name.x", ".name[0]", ".tags['a']", ".scores.x", ".points['k']"):
        with pytest.raises(PathError):
            p(text).set_in(doc, 1)


def test_failed_writes_change_nothing() -> None:
    doc = make_doc()
    before = encode(doc, DOC)  # copy.deepcopy cannot copy a Typed value yet
    failing = [
        ".points[4].x",
        ".extra!.x",
        ".table['zz'].label",
        ".maybe!!",
        f".items[@{{{uuid.UUID(int=77)}}}]",
        ".nope",
        ".",
    ]
    for text in failing:
        with pytest.raises(PathError):
            p(text).set_in(doc, 1)
    assert encode(doc, DOC) == before


class Quarrelsome:
    """A key whose comparisons fail: lookups next to it raise TypeError."""

    def __hash__(self) -> int:
        return hash("k")

    def __eq__(self, other: object) -> bool:
        raise TypeError("cannot compare")


def test_unexpected_errors_become_path_errors() -> None:
    with pytest.raises(PathError, match="cannot read"):
        p("['k']").at({Quarrelsome(): 1})
    with pytest.raises(PathError, match="cannot set"):
        p("['k']").set_in({Quarrelsome(): 1}, 2)
    m = {"a": 1}
    with pytest.raises(PathError, match="TypeError"):
        p("['a'].entry[0]").patch(m, [1])  # an unhashable new key
    s = {1}
    with pytest.raises(PathError, match="TypeError"):
        p(".element[0]").patch(s, {})  # an unhashable new element
    assert m == {"a": 1} and s == {1}  # nothing changed


# --------------------------------------------------------------------------------------------
# Patch


def test_patch_replaces_set_elements_and_map_keys() -> None:
    doc = make_doc()
    tags = doc.tags
    assert p(".tags.element[0]").patch(doc, "zz") is doc
    assert doc.tags is tags and doc.tags == {"m", "x", "zz"}
    p(".tags.element[0]").patch(doc, "x")  # already a member: the set shrinks
    assert doc.tags == {"x", "zz"}
    p(".pairs.element[0]").patch(doc, (0, "zero"))
    assert doc.pairs == {(0, "zero"), (2, "a"), (2, "b")}
    p(".table['t'].tags.element[0]").patch(doc, "r")
    assert doc.table["t"].tags == {"r"}
    p(".scores['a'].entry[0]").patch(doc, "A")
    assert doc.scores == {"A": 1, "b": 2}
    p(".scores['A'].entry[0]").patch(doc, "b")  # an existing entry is overwritten
    assert doc.scores == {"b": 1}
    assert p(".element[1]").patch(frozenset({1, 2}), 5) == frozenset({1, 5})
    assert p("['k'].entry[0]").patch({"k": 1}, "j") == {"j": 1}


def test_patch_failures() -> None:
    doc = make_doc()
    with pytest.raises(PathError, match="Element 3 is out of range"):
        p(".tags.element[3]").patch(doc, "q")
    with pytest.raises(PathError, match="Key 'zz' not found"):
        p(".scores['zz'].entry[0]").patch(doc, "q")
    with pytest.raises(PathError, match="patch addresses a set element"):
        p(".name").patch(doc, "q")
    with pytest.raises(PathError, match="patch addresses a set element"):
        p(".scores['a'].entry[1]").patch(doc, 3)
    with pytest.raises(PathError, match="patch addresses a set element"):
        Path().patch(doc, 3)
    with pytest.raises(PathError, match="only its last step may be irregular"):
        p(".pairs.element[0].element[0]").patch(doc, 3)
    with pytest.raises(PathError, match="element .element\\[0\\] on a str"):
        p(".name.element[0]").patch(doc, "q")
    with pytest.raises(PathError, match="on a list"):
        p(".points['k'].entry[0]").patch(doc, "q")
    with pytest.raises(PathError, match="Try to unwrap empty optional"):
        p(".extra!.element[0]").patch(doc, "q")


# --------------------------------------------------------------------------------------------
# Every failure is a PathError (replay never raises anything else)

doc_fields = [f.name for f in DOC.fields] + ["x", "y", "xs", "label", "tags", "entry", "nope"]
fuzz_components = st.one_of(
    st.sampled_from(doc_fields).map(Field),
    st.integers(min_value=0, max_value=4).map(Index),
    st.sampled_from(["a", "b", "t", "xs", "k", 7, 0.5, True, UUID_KEY, None]).map(MapKey),
    st.sampled_from([*ITEM_POSITIONS, CELL_POSITION, uuid.UUID(int=5)]).map(Position),
    st.just(Unwrap()),
    st.sampled_from(["a", "t", 7]).map(Entry),
    st.integers(min_value=0, max_value=3).map(Element),
)
fuzz_paths = st.lists(fuzz_components, min_size=0, max_size=5).map(Path)
fuzz_values = st.one_of(
    st.none(), st.integers(), st.text(max_size=3), st.just([1]), st.just({}), st.just(S.point())
)


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(fuzz_paths, fuzz_values)
def test_reads_and_writes_fail_only_with_path_errors(path: Path, value: Any) -> None:
    for op in ("at", "set_in", "patch"):
        doc = make_doc()
        try:
            if op == "at":
                path.at(doc)
            elif op == "set_in":
                path.set_in(doc, value)
            else:
                path.patch(doc, value)
        except PathError:
            pass
    try:
        path.resolve(DOC)
    except PathError:
        pass


# --------------------------------------------------------------------------------------------
# Wire form


def test_wire_shape() -> None:
    pos = ITEM_POSITIONS[0]
    assert p(".name").to_wire(DOC) == ["name"]
    assert p(".points[3].x").to_wire(DOC) == ["points", 3, "x"]
    assert p(".scores['a']").to_wire(DOC) == ["scores", [0, "a"]]
    assert p(".by_id[#7]").to_wire(DOC) == ["by_id", [0, 7]]
    assert p(f".by_uuid[{{{U}}}]").to_wire(DOC) == ["by_uuid", [0, U.bytes]]
    assert p(f".items[@{{{pos}}}]").to_wire(DOC) == ["items", pos.bytes]
    assert p(".maybe!").to_wire(DOC) == ["maybe", None]
    assert p(".tags.element[2]").to_wire(DOC) == ["tags", [2, 2]]
    assert p(".scores['a'].entry[0]").to_wire(DOC) == ["scores", [1, "a"], 0]
    assert p(".by_color['blue']").to_wire(DOC) == ["by_color", [0, 2]]
    assert p(".multi!['a']").to_wire(DOC) == ["multi", None, [0, "a", 0]]
    assert p(f".multi![{{{U}}}]").to_wire(DOC) == ["multi", None, [0, U.bytes, 1]]
    assert p(".twin!['a']").to_wire(DOC) == ["twin", None, [0, "a", 0]]
    assert p(".payload!['k']").to_wire(DOC) == ["payload", None, [0, ["string", "k"]]]
    assert Path().to_wire(DOC) == []


WIRE_PATHS = [
    ".",
    ".name",
    ".point.x",
    ".points[3].y",
    ".scores['a']",
    ".scores['a'].entry[1]",
    ".by_id[#-7].x",
    f".by_uuid[{{{U}}}]",
    ".by_color['green']",
    ".by_ratio[#nan]",
    ".by_ratio[#-0.0]",
    f".by_owner[{{{OWNER_ID}}}]",
    ".by_point[(#1, #2)]",
    ".maybe!",
    ".extra!.y",
    ".pair[1]",
    ".v3[2]",
    ".m22[3]",
    f".items[@{{{U}}}]",
    f".cells[@{{{U}}}].tags.element[4]",
    ".pairs.element[1][0]",
    ".choice!",
    ".choice!.x",
    ".opt_choice!!",
    ".multi!['a']",
    f".multi![{{{U}}}]",
    f".multi!['{U}']",
    ".multi![x'0011']",
    ".twin!['a'].entry[1]",
    ".payload!",
    ".payload!['k'][#3].x[2]!",
    ".nested[0]['xs'][1]",
    ".shapes[0][1][1]",
    ".table['t'].'entry'",
]


@pytest.mark.parametrize("text", WIRE_PATHS)
def test_wire_round_trip(text: str) -> None:
    path = p(text)
    wire = path.to_wire(DOC)
    back = Path.from_wire(wire, DOC, S.defs)
    assert back == path.normalize(DOC)
    assert back.to_wire(DOC) == wire
    assert Path.parse(str(back)).normalize(DOC) == back


def test_wire_of_a_sub_concept_key_needs_definitions() -> None:
    admin_key = Key(S.admin, OWNER_ID)
    path = Path().field("by_owner").key(admin_key)
    wire = path.to_wire(DOC)
    assert Path.from_wire(wire, DOC, S.defs) == path
    with pytest.raises(DecodeError):
        Path.from_wire(wire, DOC)


def test_to_wire_refuses_paths_that_do_not_fit() -> None:
    with pytest.raises(PathError):
        p(".nope").to_wire(DOC)
    with pytest.raises(PathError, match="cannot encode the key"):
        p(".payload![(#1, #2)]").to_wire(DOC)  # a tuple key inside an any has no deduced type


@pytest.mark.parametrize(
    "wire",
    [
        "name",
        ("name",),
        {"name": 1},
        [True],
        [-1],
        [3.5],
        [""],
        ["nope"],
        ["name", 0],
        [b"short"],
        ["items", bytes(16)],
        ["items", b"x" * 17],
        [[9, 1]],
        [[]],
        [["0", "a"]],
        ["scores", [0]],
        ["scores", [0, 5]],
        ["scores", [0, "a", 0]],
        ["scores", [0, "a"], 7],
        ["scores", [1, "a"], 2],
        ["tags", [2, "x"]],
        ["tags", [2, -1]],
        ["tags", [2, 1, 1]],
        ["multi", None, [0, "a"]],
        ["multi", None, [0, "a", 3]],
        ["multi", None, [0, "a", True]],
        ["multi", None, [0, "a", 1]],
        ["multi", [0, "a"]],
        ["twin", None, [0, "a", 1]],  # decodes, but the canonical form names alternative 0
        ["by_color", [0, 9]],
        ["by_uuid", [0, b"\x00" * 15]],
        ["payload", None, [0, ["nope", 1]]],
        ["payload", None, [0, [b"\x00" * 16, 1]]],
        ["point", [0, "x"]],
        ["maybe", None, None],
    ],
)
def test_malformed_wire_raises_decode_error(wire: Any) -> None:
    with pytest.raises(DecodeError):
        Path.from_wire(wire, DOC, S.defs)


# A property over random valid paths drawn by walking the document type.


def draw_key(data: st.DataObject, t: T.Type) -> Any:
    if isinstance(t, T.StringType):
        return data.draw(st.text(max_size=6))
    if isinstance(t, T.IntType):
        return data.draw(st.integers(min_value=t.low, max_value=t.high))
    if isinstance(t, T.DoubleType):
        return data.draw(st.floats())
    if isinstance(t, T.UUIDType):
        return data.draw(st.uuids())
    if isinstance(t, T.BlobType):
        return data.draw(st.binary(max_size=4))
    if isinstance(t, T.EnumerationType):
        return data.draw(st.sampled_from(t.cases))
    if isinstance(t, T.KeyType):
        # a key prints as its instance uuid and normalizes back to a key of the target concept
        return Key(S.user, data.draw(st.uuids().filter(lambda u: u.int != 0)))
    if isinstance(t, T.StructureType):
        return t.check({f.name: draw_key(data, f.type) for f in t.fields})
    raise AssertionError(f"no key strategy for {t}")


def draw_path(data: st.DataObject, t: T.Type) -> Path:
    path = Path()
    while data.draw(st.integers(min_value=0, max_value=5)) > 0:
        if isinstance(t, T.StructureType):
            f = data.draw(st.sampled_from(t.fields))
            path, t = path.field(f.name), f.type
        elif isinstance(t, T.VectorType):
            path, t = path.index(data.draw(st.integers(min_value=0, max_value=99))), t.element
        elif isinstance(t, T.TupleType):
            i = data.draw(st.integers(min_value=0, max_value=len(t.elements) - 1))
            path, t = path.index(i), t.elements[i]
        elif isinstance(t, T.VecType | T.MatType):
            n = t.size if isinstance(t, T.VecType) else t.columns * t.rows
            path, t = path.index(data.draw(st.integers(min_value=0, max_value=n - 1))), t.element
        elif isinstance(t, T.MapType):
            key = draw_key(data, t.key)
            if data.draw(st.booleans()):
                path, t = path.key(key), t.value
            else:
                i = data.draw(st.integers(min_value=0, max_value=1))
                path, t = path.entry(key).index(i), (t.key, t.value)[i]
        elif isinstance(t, T.SetType):
            path, t = path.element(data.draw(st.integers(min_value=0, max_value=9))), t.element
        elif isinstance(t, T.XArrayType):
            path, t = path.position(data.draw(positions)), t.element
        elif isinstance(t, T.OptionalType):
            path, t = path.unwrap(), t.element
        elif isinstance(t, T.VariantType):
            path, t = path.unwrap(), data.draw(st.sampled_from(t.alternatives))
        else:
            break
    return path


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.data())
def test_random_valid_paths_resolve_and_round_trip(data: st.DataObject) -> None:
    path = draw_path(data, DOC)
    path.resolve(DOC)
    assert path.normalize(DOC) == path
    wire = path.to_wire(DOC)
    assert Path.from_wire(wire, DOC, S.defs) == path
    assert Path.parse(str(path)).normalize(DOC) == path


# --------------------------------------------------------------------------------------------
# Canonical order of set elements


def test_element_order() -> None:
    assert sorted_elements({3, -1, 2}) == [-1, 2, 3]
    assert sorted_elements({"b", "a", "B"}) == ["B", "a", "b"]
    nan = math.nan
    assert math.isnan(sorted_elements({1.0, nan, -5.0})[0])
    assert sorted_elements({(2, "a"), (-1, "z"), (2, "0")}) == [(-1, "z"), (2, "0"), (2, "a")]
    assert sorted_elements({None, 3, 1}) == [None, 1, 3]
    cases = S.color.cases  # red, green, blue: by case name
    assert sorted_elements(set(cases)) == [S.color.blue, S.color.green, S.color.red]
    us = [uuid.UUID(int=i) for i in (3, 1, 2)]
    assert sorted_elements(us) == sorted(us)
    keys = {Key(S.user, uuid.UUID(int=2)), Key(S.user, uuid.UUID(int=1))}
    assert [k.id.int for k in sorted_elements(keys)] == [1, 2]
    pts = {S.point(x=2.0, y=0.0), S.point(x=1.0, y=5.0)}
    assert [pt.x for pt in sorted_elements(pts)] == [1.0, 2.0]
    mixed = [Typed(T.INT32, 2), Typed(T.INT32, 1), "s", 1, b"b", True, None, 2.5, U]
    assert sorted_elements(mixed) == sorted_elements(mixed[::-1])
    assert sorted_elements(mixed)[:3] == [None, True, 1]
    assert element_sort_key(frozenset())[0] == 12
    assert isinstance(element_sort_key(S.color.red), tuple)


def test_public_names() -> None:
    import commitdb.paths as paths

    assert isinstance(paths.__all__, tuple)
    for name in paths.__all__:
        assert getattr(paths, name).__doc__, name
