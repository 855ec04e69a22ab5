"""Tests for the DSM printer (commitdb.dsm.to_dsm) and the load → print → load round trip."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from commitdb.definitions import Definitions
from commitdb.dsm import format_type, load_definitions, load_text, to_dsm
from commitdb.errors import DefinitionError
from commitdb.prototypes import FunctionPrototype, PoolDeclaration
from commitdb.types import (
    DOUBLE,
    FLOAT,
    INT32,
    STRING,
    Field,
    KeyType,
    MapType,
    OptionalType,
    StructureType,
    VectorType,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "dsm-samples"
SAMPLE_SETS = {
    "Tuto": [SAMPLES / "Tuto" / "model.dsm"],
    "Ge": sorted((SAMPLES / "Ge").glob("*.dsm")),
    "Re": sorted((SAMPLES / "Re").glob("*.dsm")),
}

NS_A = "namespace A {11111111-1111-1111-1111-111111111111} {\n"
NS_B = "namespace B {22222222-2222-2222-2222-222222222222} {\n"

RICH = (
    NS_A
    + '''"""
    A multi-line doc.
      indented line
    last "quoted"
"""
concept Base;
concept Child is a Base;
"""Things."""
club Things;
membership Things Child;
membership Things B::Other;
enum Color { """the red""" red, green, blue };
struct Inner { int32 a = 3; optional<string> s; key<Base> k; };
struct Rich {
    """ends with a quote: "x" """
    vec<float, 3> v = {1, 2.5, -3};
    mat<double, 2, 2> m = {{1.0, 0.0}, {0.0, 1.0}};
    tuple<int8, string> t = {-5, "x\\ty\\"z\\\\"};
    variant<int64, double, string> var = 2.5;
    variant<Color, B::Shade> vc = B::Shade.dark;
    any an = B::Shade.dark;
    any an2 = 42;
    any an3 = 0.5;
    map<string, vector<int16>> mp = {{"b", {1}}, {"a", {2, 3}}};
    set<int32> st = {5, 1, 3, 1};
    set<Inner> si = {{7}, {1, "s"}};
    optional<Color> oc = .blue;
    blob bl = {0, 255, 16};
    uuid id = "f529bc42-0618-4f54-a3fb-d55f95c5ad03";
    Inner inner = {4, "\\u00e9\\u0001"};
    double big = 1e300;
    float small = 1.5e-30;
    float third = 0.333333333;
    xarray<int32> xa = {};
    uint64 u = 0xFFFFFFFFFFFFFFFF;
    int64 neg = -9223372036854775808;
};
attachment<any_concept, Rich> tag;
"""Colors of things."""
attachment<Things, vector<Color>> colors;
};
'''
    + NS_B
    + """concept Other;
enum Shade { light, dark };
struct Color { A::Color c = .green; };
};
attachment_function_pool P {33333333-3333-3333-3333-333333333333} {
  \"\"\"doc\"\"\"
  mutable A::Color f(B::Color c, map<A::Color, key<any_concept>> m);
  void g();
};
function_pool Empty {44444444-3333-3333-3333-333333333333} {
};
"""
)


def _docs(defs: Definitions) -> dict[str, str | None]:
    """Every piece of documentation, by a stable name."""
    out: dict[str, str | None] = {}
    for t in defs.types():
        out[t.qualified_name] = t.documentation
        for f in getattr(t, "fields", ()):
            out[f"{t.qualified_name}.{f.name}"] = f.documentation
        for case, doc in getattr(t, "case_documentation", {}).items():
            out[f"{t.qualified_name}.{case}"] = doc
    for a in defs.attachments():
        out[a.identifier] = a.documentation
    for p in defs.pools():
        out[f"pool {p.name}"] = p.documentation
        for fn in p.functions.values():
            out[f"pool {p.name}.{fn.name}"] = fn.documentation
    return out


def _members(defs: Definitions) -> dict[str, set[str]]:
    return {c.qualified_name: {m.qualified_name for m in c.members} for c in defs.clubs()}


def _assert_same(first: Definitions, second: Definitions) -> None:
    assert second == first
    assert second.hexdigest() == first.hexdigest()
    assert sorted(r.bytes for r in second.runtime_ids()) == sorted(
        r.bytes for r in first.runtime_ids()
    )
    assert _docs(second) == _docs(first)
    assert _members(second) == _members(first)


@pytest.mark.parametrize("name", sorted(SAMPLE_SETS))
def test_sample_round_trip(name: str) -> None:
    first = load_definitions(SAMPLE_SETS[name])
    text = to_dsm(first)
    second = load_text(text, f"{name}.printed.dsm")
    _assert_same(first, second)
    assert to_dsm(second) == text


def test_sample_docs_survive() -> None:
    ge = load_text(to_dsm(load_definitions(SAMPLE_SETS["Ge"])))
    assert ge.check_attachment("Graph::Edge.topology").documentation == (
        "An Edge in the graph topology."
    )
    pool = ge.query_pool("ModelGraph")
    assert pool is not None
    assert pool.check("noArgs").documentation == "Test no args."


def test_rich_round_trip() -> None:
    first = load_text(RICH, "rich.dsm")
    text = to_dsm(first)
    second = load_text(text, "printed.dsm")
    _assert_same(first, second)
    assert to_dsm(second) == text
    rich = second.check_type("A::Rich")
    original = first.check_type("A::Rich")
    assert isinstance(rich, StructureType) and isinstance(original, StructureType)
    assert [f.default for f in rich.fields] == [f.default for f in original.fields]
    assert rich.documentation is None
    assert rich.field("v").documentation == 'ends with a quote: "x"'


def test_printed_text_is_normalized() -> None:
    text = to_dsm(load_text(RICH, "rich.dsm"))
    lines = text.splitlines()
    # namespace blocks, then pools
    heads = [line for line in lines if line.endswith("{") and " {" in line and "(" not in line]
    assert heads[0] == "namespace A {11111111-1111-1111-1111-111111111111} {"
    assert "namespace B {22222222-2222-2222-2222-222222222222} {" in heads
    assert lines.index("concept Base;") < lines.index("concept Child is a Base;")
    assert lines.index("struct Inner {") < lines.index("struct Rich {")
    assert "membership Things B::Other;" not in lines
    assert "membership Things Other;" in lines
    assert '"""' in lines and "A multi-line doc." in lines and "  indented line" in lines
    assert '    """ends with a quote: "x" """' in lines
    assert "    vec<float, 3> v = {1.0, 2.5, -3.0};" in lines
    assert "    mat<double, 2, 2> m = {1.0, 0.0, 0.0, 1.0};" in lines
    assert '    tuple<int8, string> t = {-5, "x\\ty\\"z\\\\"};' in lines
    assert "    variant<Color, Shade> vc = Shade.dark;" in lines
    assert "    any an = Shade.dark;" in lines
    assert "    any an3 = 0.5;" in lines
    assert '    map<string, vector<int16>> mp = {{"a", {2, 3}}, {"b", {1}}};' in lines
    assert "    set<int32> st = {1, 3, 5};" in lines
    assert '    set<Inner> si = {{1, "s"}, {7}};' in lines
    assert "    optional<Color> oc = .blue;" in lines
    assert "    blob bl = {0, 255, 16};" in lines
    assert '    Inner inner = {4, "é\\u0001"};' in lines
    assert "    double big = 1e+300;" in lines
    assert "    float third = 0.33333334;" in lines
    assert "    xarray<int32> xa;" in lines
    assert "    int64 neg = -9223372036854775808;" in lines
    assert "    A::Color c = .green;" in lines
    assert "mutable A::Color f(B::Color c, map<A::Color, key<any_concept>> m);" in lines
    assert "function_pool Empty {44444444-3333-3333-3333-333333333333} {" in lines
    assert text.endswith("};\n")


def test_float_defaults_print_the_shortest_binary32_decimal() -> None:
    defs = load_text(NS_A + "struct S { float f = 0.7853981634; float g = 100; };\n};\n")
    text = to_dsm(defs)
    assert "    float f = 0.7853982;" in text
    assert "    float g = 100.0;" in text
    assert load_text(text) == defs


@settings(max_examples=150, deadline=None)
@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
def test_scalar_literals_round_trip(f32: float, f64: float, text: str) -> None:
    defs = Definitions()
    ns = defs.namespace("A", "11111111-1111-1111-1111-111111111111")
    defs.create_structure(
        ns, "S", [Field("f", FLOAT, f32), Field("d", DOUBLE, f64), Field("s", STRING, text)]
    )
    printed = to_dsm(defs)
    again = load_text(printed)
    assert again == defs
    s = again.check_type("A::S")
    assert isinstance(s, StructureType)
    if f32 != 0.0:
        got = s.field("f").default
        assert struct.pack("<f", got) == struct.pack("<f", f32)
    if f64 != 0.0:
        assert s.field("d").default == f64
    if text:
        assert s.field("s").default == text


def test_python_built_definitions_print_and_load_back() -> None:
    defs = Definitions()
    a = defs.namespace("A", "11111111-1111-1111-1111-111111111111")
    b = defs.namespace("B", "22222222-2222-2222-2222-222222222222")
    user = defs.create_concept(a, "User", documentation="  A user.  ")
    admin = defs.create_concept(b, "Admin", parent=user)
    group = defs.create_club(b, "Group")
    defs.create_membership(group, admin)
    defs.create_membership(group, user)
    name = defs.create_structure(
        a, "Name", [Field("first", STRING, "Ada", "given name"), Field("n", INT32, 3)]
    )
    defs.create_attachment(b, "name", group, name, documentation="The name.")
    defs.create_attachment(a, "tags", user, MapType(STRING, VectorType(INT32)))
    defs.create_pool(
        PoolDeclaration(
            "33333333-3333-3333-3333-333333333333",
            "Pool",
            [FunctionPrototype("lookup", [("user", KeyType(user))], OptionalType(name))],
        )
    )
    text = to_dsm(defs)
    again = load_text(text)
    assert again == defs
    assert _members(again) == _members(defs)
    assert again.check_type("A::User").documentation == "A user."
    assert "concept Admin is a User;" in text
    assert "attachment<Group, Name> name;" in text
    assert "optional<Name> lookup(key<User> user);" in text


def test_names_shared_by_two_namespaces_are_qualified() -> None:
    defs = load_text(
        NS_A
        + "struct X { int32 a; };\nstruct Y { X x; B::X bx; };\n};\n"
        + NS_B
        + "struct X { string b; };\n};\n"
        "function_pool P {33333333-3333-3333-3333-333333333333} {\nvoid f(A::X a, B::X b);\n};\n"
    )
    text = to_dsm(defs)
    assert "    X x;\n    B::X bx;" in text
    assert "void f(A::X a, B::X b);" in text
    assert load_text(text) == defs


def test_format_type() -> None:
    defs = load_text(NS_A + "concept C;\nstruct S { map<string, vector<key<C>>> m; };\n};\n")
    s = defs.check_type("A::S")
    assert isinstance(s, StructureType)
    m = s.field("m").type
    assert format_type(m) == "map<string, vector<key<A::C>>>"
    assert format_type(m, defs.namespaces()[0]) == "map<string, vector<key<C>>>"


def test_empty_definitions_and_namespaces() -> None:
    assert to_dsm(Definitions()) == ""
    defs = Definitions()
    defs.namespace("A", "11111111-1111-1111-1111-111111111111")
    text = to_dsm(defs)
    assert text == "namespace A {11111111-1111-1111-1111-111111111111} {\n};\n"
    assert load_text(text).counts()["namespaces"] == 1


def test_empty_containers_inside_a_structure_default() -> None:
    defs = load_text(
        NS_A + "struct In { xarray<int32> xa; vector<int8> v; int32 b; };\n"
        "struct S { In i = {{}, {}, 5}; };\n};\n"
    )
    text = to_dsm(defs)
    assert "    In i = {{}, {}, 5};" in text
    assert load_text(text) == defs


def test_unprintable_default_is_refused() -> None:
    defs = Definitions()
    ns = defs.namespace("A", "11111111-1111-1111-1111-111111111111")
    inner = defs.create_structure(ns, "Inner", [Field("o", OptionalType(INT32)), Field("x", INT32)])
    defs.create_structure(ns, "Outer", [Field("i", inner, {"o": None, "x": 5})])
    with pytest.raises(DefinitionError, match=r"A::Outer\.i .* has no DSM spelling"):
        to_dsm(defs)


def test_doc_with_triple_quotes_is_refused() -> None:
    defs = Definitions()
    ns = defs.namespace("A", "11111111-1111-1111-1111-111111111111")
    defs.create_concept(ns, "C", documentation='say """hi"""')
    with pytest.raises(DefinitionError, match="contains"):
        to_dsm(defs)
