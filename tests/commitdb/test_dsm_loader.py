"""Tests for the DSM loader (commitdb.dsm.load_definitions / load_text)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

from commitdb.definitions import Definitions
from commitdb.dsm import DSMText, load_definitions, load_text, normalize_doc, parse
from commitdb.errors import DSMError
from commitdb.types import (
    ANY,
    FLOAT,
    INT64,
    STRING,
    UINT32,
    UINT64,
    VOID,
    ClubType,
    ConceptType,
    EnumerationType,
    Field,
    KeyType,
    MapType,
    OptionalType,
    SetType,
    StructureType,
    VectorType,
    XArrayType,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "dsm-samples"
TUTO = [SAMPLES / "Tuto" / "model.dsm"]
GE = sorted((SAMPLES / "Ge").glob("*.dsm"))
RE = sorted((SAMPLES / "Re").glob("*.dsm"))

NS_A = "namespace A {11111111-1111-1111-1111-111111111111} {\n"
NS_B = "namespace B {22222222-2222-2222-2222-222222222222} {\n"
POOL = "function_pool P {33333333-3333-3333-3333-333333333333} {\n"


def _counts(
    namespaces: int,
    concepts: int,
    clubs: int,
    enumerations: int,
    structures: int,
    attachments: int,
    function_pools: int,
    functions: int,
) -> dict[str, int]:
    return {
        "namespaces": namespaces,
        "concepts": concepts,
        "clubs": clubs,
        "enumerations": enumerations,
        "structures": structures,
        "attachments": attachments,
        "function_pools": function_pools,
        "functions": functions,
    }


@pytest.fixture(scope="module")
def tuto() -> Definitions:
    return load_definitions(TUTO)


@pytest.fixture(scope="module")
def ge() -> Definitions:
    return load_definitions(GE)


@pytest.fixture(scope="module")
def raptor() -> Definitions:
    return load_definitions(RE)


def _struct(defs: Definitions, name: str) -> StructureType:
    t = defs.check_type(name)
    assert isinstance(t, StructureType)
    return t


def _concept(defs: Definitions, name: str) -> ConceptType:
    t = defs.check_type(name)
    assert isinstance(t, ConceptType)
    return t


def _enum(defs: Definitions, name: str) -> EnumerationType:
    t = defs.check_type(name)
    assert isinstance(t, EnumerationType)
    return t


# -- samples -------------------------------------------------------------------------------


def test_sample_sets_are_present() -> None:
    assert TUTO[0].is_file()
    assert len(GE) == 5
    assert len(RE) == 20


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(TUTO, _counts(1, 1, 0, 1, 5, 5, 0, 0), id="Tuto"),
        pytest.param(GE, _counts(1, 3, 0, 0, 9, 8, 4, 52), id="Ge"),
        pytest.param(RE, _counts(1, 91, 4, 37, 136, 86, 2, 6), id="Re"),
    ],
)
def test_sample_counts(files: list[Path], expected: dict[str, int]) -> None:
    assert load_definitions(files).counts() == expected


def test_sample_file_order_does_not_matter() -> None:
    forward = load_definitions(RE)
    backward = load_definitions(list(reversed(RE)))
    assert forward == backward
    assert forward.hexdigest() == backward.hexdigest()


def test_tuto_types(tuto: Definitions) -> None:
    ns = tuto.namespaces()[0]
    assert (ns.name, ns.uuid) == ("Tuto", UUID("f529bc42-0618-4f54-a3fb-d55f95c5ad03"))
    status = _enum(tuto, "Tuto::Status")
    assert [c.name for c in status.cases] == ["pending", "active", "completed"]
    assert status.documentation == "Lifecycle state of a User account."
    account = _struct(tuto, "Tuto::Account")
    assert account.field("state").type == status
    assert account.default().state == status.pending
    login = tuto.check_attachment("Tuto::User.login")
    assert login.key_type == KeyType(_concept(tuto, "Tuto::User"))
    assert login.document_type == _struct(tuto, "Tuto::Login")
    assert sorted(a.name for a in tuto.attachments()) == [
        "account",
        "avatar",
        "identity",
        "login",
        "portrait",
    ]


def test_ge_attachments_and_pools(ge: Definitions) -> None:
    graph = _concept(ge, "Graph::Graph")
    vertex = _concept(ge, "Graph::Vertex")
    edge = _concept(ge, "Graph::Edge")
    tags = ge.check_attachment("Graph::Graph.tags")
    assert tags.document_type == MapType(STRING, STRING)
    assert ge.check_attachment("Graph::Graph.comments").document_type == XArrayType(STRING)
    # the same attachment name over two concepts is allowed
    assert ge.check_attachment("Graph::Edge.topology").key_type == KeyType(edge)
    assert ge.check_attachment("Graph::Graph.topology").key_type == KeyType(graph)
    rect = _struct(ge, "Graph::Rectangle")
    assert [f.documentation for f in rect.fields] == [
        "the x origin.",
        "the y origin.",
        "the width.",
        "the height.",
    ]
    assert rect.field("w").type == FLOAT

    pools = {p.name: p for p in ge.pools()}
    assert sorted(pools) == ["ModelGraph", "ModelIntegrity", "ModelSelection", "Tools"]
    assert [len(pools[n].functions) for n in sorted(pools)] == [26, 4, 18, 4]
    model_graph = pools["ModelGraph"]
    assert model_graph.attachment and model_graph.uuid == UUID(
        "9bdcbb5b-76e9-426f-b8a6-a10ed2d949e6"
    )
    assert model_graph.documentation == (
        "This pool provides access to functions used to edit the graph topology."
    )
    new_edge = model_graph.check("newEdge")
    assert new_edge.mutable
    assert new_edge.return_type == KeyType(edge)
    assert [(p.name, p.type) for p in new_edge.parameters] == [
        ("graphKey", KeyType(graph)),
        ("vaKey", KeyType(vertex)),
        ("vbKey", KeyType(vertex)),
    ]
    assert model_graph.check("noArgs").parameters == ()
    assert model_graph.check("killer").parameters[1].type == UINT64
    move = model_graph.check("moveVertices")
    assert move.parameters[0].type == SetType(KeyType(vertex))
    assert move.parameters[1].type == _struct(ge, "Graph::Position")
    selected = pools["ModelSelection"].check("selectedEdges")
    assert not selected.mutable
    assert selected.return_type == SetType(KeyType(edge))
    assert pools["ModelSelection"].check("deselectAll").return_type == VOID
    tools = pools["Tools"]
    assert not tools.attachment
    assert tools.check("isGreater").parameters[0].type == ANY
    assert tools.check("add").return_type == INT64
    assert tools.check("add").documentation == "Return a + b."


def test_re_concept_chains(raptor: Definitions) -> None:
    material = _concept(raptor, "Raptor::Material")
    matte = _concept(raptor, "Raptor::MaterialMatte")
    assert matte.parent == material
    assert material.parent is None
    layer = _concept(raptor, "Raptor::MaterialMultilayerLayer")
    diffuse = _concept(raptor, "Raptor::MaterialMultilayerLayerDiffuse")
    assert diffuse.ancestors() == [diffuse, layer]
    assert not diffuse.is_a(material)
    children = {c.name for c in raptor.concept_members(material)} - {"Material"}
    assert children == {
        "MaterialAxfCpa2",
        "MaterialEnvironment",
        "MaterialMatte",
        "MaterialMirror",
        "MaterialMultilayer",
        "MaterialSeam",
        "MaterialStandard",
    }
    # a key<Parent> accepts the key of a child concept
    assert KeyType(material).accepts_concept(matte)


def test_re_clubs_and_members(raptor: Definitions) -> None:
    clubs = {c.name: c for c in raptor.clubs()}
    assert sorted(clubs) == [
        "ConfigurationTargetElement",
        "ConfigurationTargetSource",
        "KinematicsElement",
        "TimelineAnimation",
    ]
    assert {m.name for m in clubs["KinematicsElement"].members} == {
        "Surface",
        "BezierPath",
        "KinematicsNodeAxis",
        "KinematicsNodeNull",
        "KinematicsNodeVector",
    }
    assert {m.name for m in clubs["ConfigurationTargetSource"].members} == {
        "Model",
        "Product",
        "Overlay",
    }
    assert len(clubs["ConfigurationTargetElement"].members) == 7
    assert len(clubs["TimelineAnimation"].members) == 10
    kinematics = _struct(raptor, "Raptor::KinematicsProperties")
    element = KeyType(clubs["KinematicsElement"])
    parents = kinematics.field("parents").type
    assert parents == MapType(element, element)
    assert element.accepts_concept(_concept(raptor, "Raptor::Surface"))
    assert not element.accepts_concept(_concept(raptor, "Raptor::KinematicsNode"))


def test_re_enum_defaults(raptor: Definitions) -> None:
    repeat = _enum(raptor, "Raptor::TextureRepeatMode")
    bump = _struct(raptor, "Raptor::MaterialMultilayerBump")
    assert bump.field("mapRepeatU").default == repeat.repeat
    assert bump.default().mapRepeatV == repeat.repeat
    data_type = _enum(raptor, "Raptor::PostProcessDataType")
    # enum cases may use words that are type names or keywords elsewhere
    assert [c.name for c in data_type.cases][:3] == ["bool", "int", "float"]
    param = _struct(raptor, "Raptor::PostProcessEffectParameter")
    assert param.field("dataType").default == data_type.case("float")
    assert param.field("parameterLength").default == 1
    assert param.field("parameterValue").default == "0/"
    # a default equal to the zero value is not retained
    follow = _struct(raptor, "Raptor::KinematicsConstraintFollowPathProperties")
    assert follow.field("curvilinearAbscissa").default is None
    axis = _enum(raptor, "Raptor::KinematicsConstraintAxis")
    assert follow.field("followUpAxis").default == axis.y
    # 'int64 key;' is a legal field name
    trigger = _struct(raptor, "Raptor::TimelineTriggerKeyProperties")
    assert trigger.field("key").type == INT64


def test_re_struct_and_vector_defaults(raptor: Definitions) -> None:
    vector = _struct(raptor, "Raptor::Vector")
    transform = _struct(raptor, "Raptor::Transform")
    assert transform.field("scaling").type == vector
    assert transform.field("scaling").default == vector(x=1.0, y=1.0, z=1.0)
    assert transform.field("translation").default is None
    pov = _struct(raptor, "Raptor::PointOfView").default()
    assert (pov.up.x, pov.up.y, pov.up.z) == (0.0, 1.0, 0.0)
    iray = _struct(raptor, "Raptor::IrayTonemapper")
    white = iray.default().whitePoint
    assert (white.x, white.y, white.z) == (
        FLOAT.check(1.04287),
        FLOAT.check(0.983863),
        FLOAT.check(1.03358),
    )
    # float defaults are binary32 values
    fov = _struct(raptor, "Raptor::TimelineClipCameraFieldOfView").field("fov")
    assert fov.default == FLOAT.check(0.7853981634) != 0.7853981634
    timeline = _struct(raptor, "Raptor::TimelineProperties")
    assert timeline.field("tracks").type == VectorType(_struct(raptor, "Raptor::TimelineTrack"))
    post = _struct(raptor, "Raptor::PostProcessProperties")
    assert post.field("soloEffectIndex").type == OptionalType(UINT32)
    tools = raptor.query_pool("Tools")
    assert tools is not None
    assert tools.check("randomColor").return_type == vector
    surface_pool = raptor.query_pool("ModelSurface")
    assert surface_pool is not None
    assign = surface_pool.check("assign_material")
    assert [p.type for p in assign.parameters] == [
        KeyType(_concept(raptor, "Raptor::AspectLayer")),
        KeyType(_concept(raptor, "Raptor::Surface")),
        KeyType(_concept(raptor, "Raptor::Material")),
    ]


# -- name resolution and multi-file loading ------------------------------------------------


def test_bare_names_prefer_the_current_namespace() -> None:
    defs = load_text(
        NS_A
        + "struct Color { int32 a; };\nstruct Use { Color c; B::Color q; Shade s; };\n};\n"
        + NS_B
        + "struct Color { string b; };\nenum Shade { light, dark };\n"
        + "struct Use { Color c; A::Color q; };\n};\n"
    )
    a_color = _struct(defs, "A::Color")
    b_color = _struct(defs, "B::Color")
    assert a_color != b_color
    a_use = _struct(defs, "A::Use")
    assert [f.type for f in a_use.fields] == [a_color, b_color, _enum(defs, "B::Shade")]
    b_use = _struct(defs, "B::Use")
    assert [f.type for f in b_use.fields] == [b_color, a_color]


def test_forward_references_and_split_namespace_blocks() -> None:
    defs = load_text(
        NS_A + "struct Late { Later x; };\n};\n" + NS_A + "struct Later { int32 y = 7; };\n};\n"
    )
    assert defs.counts()["namespaces"] == 1
    late = _struct(defs, "A::Late")
    assert late.field("x").type == _struct(defs, "A::Later")
    assert late.default().x.y == 7
    # registration order puts a dependency first
    assert [t.name for t in defs.types()] == ["Later", "Late"]


def test_a_type_declared_in_one_file_is_used_in_another(tmp_path: Path) -> None:
    types = tmp_path / "types.dsm"
    types.write_text(
        NS_A + "concept User;\nenum Role { reader, writer };\n"
        "struct Profile { string name; Role role = .writer; };\n};\n"
    )
    uses = tmp_path / "uses.dsm"
    uses.write_text(
        NS_B
        + "concept Admin is a A::User;\nattachment<Admin, Profile> profile;\n};\n"
        + POOL
        + "Role promote(key<User> user, Profile profile);\n};\n"
    )
    defs = load_definitions([uses, types])
    admin = _concept(defs, "B::Admin")
    assert admin.parent == _concept(defs, "A::User")
    att = defs.check_attachment("B::Admin.profile")
    assert att.document_type == _struct(defs, "A::Profile")
    promote = defs.pools()[0].check("promote")
    assert promote.return_type == _enum(defs, "A::Role")
    assert promote.parameters[0].type == KeyType(_concept(defs, "A::User"))


def test_identical_redeclaration_in_another_file_is_accepted(tmp_path: Path) -> None:
    body = NS_A + "concept C;\nstruct S { int32 x = 1; };\nattachment<C, S> s;\n};\n"
    (tmp_path / "one.dsm").write_text('"""doc"""\n' + body)
    (tmp_path / "two.dsm").write_text(body)
    defs = load_definitions([tmp_path / "one.dsm", tmp_path / "two.dsm"])
    assert defs.counts() == _counts(1, 1, 0, 0, 1, 1, 0, 0)


@pytest.mark.parametrize(
    ("first", "second", "line", "col", "message"),
    [
        pytest.param(
            "struct S { int32 x; };",
            "struct S { int64 x; };",
            2,
            8,
            "conflicting redefinition of struct 'A::S': field 'x' has type 'int64' here but "
            "'int32' at {first}:2:8",
            id="struct-field-type",
        ),
        pytest.param(
            "struct S { int32 x; };",
            "struct S { int32 x = 2; };",
            2,
            8,
            "conflicting redefinition of struct 'A::S': field 'x' has default 2 here but "
            "no default at {first}:2:8",
            id="struct-default",
        ),
        pytest.param(
            "enum E { a, b };",
            "enum E { a, c };",
            2,
            6,
            "conflicting redefinition of enum 'A::E': its cases are (a, c) here but (a, b)",
            id="enum-cases",
        ),
        pytest.param(
            "concept P;\nconcept C;",
            "concept C is a P;",
            2,
            9,
            "conflicting redefinition of concept 'A::C': it has parent 'A::P' here but no parent",
            id="concept-parent",
        ),
        pytest.param(
            "concept C;\nattachment<C, int32> a;",
            "attachment<C, int64> a;",
            2,
            22,
            "conflicting redefinition of attachment 'a' on concept 'A::C' in namespace 'A': its "
            "document type is 'int64' here but 'int32' at {first}:3:22",
            id="attachment",
        ),
        pytest.param(
            "concept C;",
            "struct C { int32 x; };",
            2,
            8,
            "'C' is already declared as a concept in namespace 'A' at {first}:2:9; it cannot "
            "also be a struct",
            id="kind",
        ),
    ],
)
def test_conflicting_redefinition_across_files(
    tmp_path: Path, first: str, second: str, line: int, col: int, message: str
) -> None:
    one = tmp_path / "one.dsm"
    two = tmp_path / "two.dsm"
    one.write_text(NS_A + first + "\n};\n")
    two.write_text(NS_A + second + "\n};\n")
    with pytest.raises(DSMError) as info:
        load_definitions([one, two])
    err = info.value
    assert (err.file, err.line, err.col) == (str(two), line, col)
    assert message.format(first=one) in err.message
    assert str(err).startswith(f"{two}:{line}:{col}: ")


def test_conflicting_pools_across_texts() -> None:
    one = DSMText(POOL + "void f(int32 a);\n};\n", "one.dsm")
    two = DSMText(POOL + "void f(int64 a);\n};\n", "two.dsm")
    with pytest.raises(DSMError) as info:
        load_definitions([one, two])
    assert str(info.value).startswith(
        "two.dsm:1:15: conflicting redefinition of function_pool 'P' "
        "{33333333-3333-3333-3333-333333333333}: function 'f' has signature"
    )
    assert load_definitions([one, DSMText(one.text, "again.dsm")]).counts()["functions"] == 1


def test_load_into_existing_definitions_resolves_and_is_atomic() -> None:
    base = load_text(NS_A + "concept User;\nstruct Name { string v; };\n};\n")
    before = base.runtime_ids()
    with pytest.raises(DSMError, match="unknown type 'Nme'"):
        load_text(NS_A + "concept Admin is a User;\nstruct Bad { Nme n; };\n};\n", "x.dsm", base)
    assert base.runtime_ids() == before
    out = load_text(NS_A + "attachment<User, Name> name;\n};\n", "y.dsm", base)
    assert out is base
    assert base.check_attachment("A::User.name").document_type == _struct(base, "A::Name")
    with pytest.raises(DSMError) as info:
        load_text(NS_A + "struct Name { int32 v; };\n};\n", "z.dsm", base)
    assert str(info.value) == (
        "z.dsm:2:8: conflicting redefinition of struct 'A::Name': field 'v' has type 'int32' "
        "here but 'string' in the definitions loaded before"
    )


def test_documentation_is_normalized_and_not_part_of_ids() -> None:
    documented = load_text(
        NS_A + '"""\n    Line one.\n      indented\n    Line three.   \n"""\n'
        'enum E { """  first case  """ a, b };\n};\n'
    )
    bare = load_text(NS_A + "enum E { a, b };\n};\n")
    enum = _enum(documented, "A::E")
    assert enum.documentation == "Line one.\n  indented\nLine three."
    assert enum.case_documentation == {"a": "first case"}
    assert documented == bare
    assert normalize_doc('  """') == '"""'
    assert normalize_doc("   \n  ") is None
    assert normalize_doc(None) is None


def test_sources_may_be_text_paths_or_parsed_files(tmp_path: Path) -> None:
    text = NS_A + "concept C;\n};\n"
    path = tmp_path / "c.dsm"
    path.write_text(text)
    expected = load_text(text)
    assert load_definitions(text) == expected
    assert load_definitions(path) == expected
    assert load_definitions(str(path)) == expected
    assert load_definitions([parse(text, "p.dsm")]) == expected
    with pytest.raises(FileNotFoundError):
        load_definitions([tmp_path / "missing.dsm"])


def test_defaults_of_every_literal_form() -> None:
    defs = load_text(
        NS_A
        + """enum E { a, b };
struct In { int32 a = 3; optional<string> s; };
struct S {
    vec<float, 3> v = {1, 2.5, -3};
    mat<double, 2, 2> m = {{1.0, 2.0}, {3.0, 4.0}};
    mat<int8, 2, 1> flat = {5, 6};
    tuple<int8, string> t = {-5, "x\\ty"};
    variant<int64, double, string> d = 2.5;
    variant<int64, double, string> i = 2;
    variant<E, string> e = E.b;
    any n = 42;
    any c = A::E.b;
    map<string, vector<int16>> mp = {{"b", {1}}, {"a", {2, 3}}};
    set<int32> st = {5, 1, 3};
    optional<E> oe = .b;
    blob bl = {0, 255, 16};
    uuid id = "f529bc42-0618-4f54-a3fb-d55f95c5ad03";
    In in = {4};
    double big = 1e300;
    uint64 u = 0xFFFFFFFFFFFFFFFF;
    xarray<int32> xa = {};
};
};
"""
    )
    s = _struct(defs, "A::S")
    e = _enum(defs, "A::E")
    values = {f.name: f.default for f in s.fields}
    assert values["v"] == (1.0, 2.5, -3.0)
    assert values["m"] == (1.0, 2.0, 3.0, 4.0)
    assert values["flat"] == (5, 6)
    assert values["t"] == (-5, "x\ty")
    assert values["d"] == 2.5 and isinstance(values["d"], float)
    assert values["i"] == 2 and isinstance(values["i"], int)
    assert values["e"] == e.b
    assert values["n"] == 42
    assert values["c"] == e.b
    assert values["mp"] == {"a": [2, 3], "b": [1]}
    assert values["st"] == {1, 3, 5}
    assert values["oe"] == e.b
    assert values["bl"] == b"\x00\xff\x10"
    assert values["id"] == UUID("f529bc42-0618-4f54-a3fb-d55f95c5ad03")
    assert values["in"] == _struct(defs, "A::In")(a=4)
    assert values["big"] == 1e300
    assert values["u"] == 2**64 - 1
    assert values["xa"] is None


def test_struct_default_from_a_short_brace_list_keeps_field_defaults() -> None:
    defs = load_text(
        NS_A + "concept C;\nstruct P { float x; float y = 5.0; key<C> k; };\n"
        "struct S { P p = {1.0}; };\n};\n"
    )
    p = _struct(defs, "A::S").default().p
    assert (p.x, p.y, p.k.is_nil) == (1.0, 5.0, True)


def test_a_default_changes_the_structure_id() -> None:
    one = load_text(NS_A + "struct S { int32 x = 1; };\n};\n")
    two = load_text(NS_A + "struct S { int32 x = 2; };\n};\n")
    zero = load_text(NS_A + "struct S { int32 x = 0; };\n};\n")
    none = load_text(NS_A + "struct S { int32 x; };\n};\n")
    assert one != two
    assert zero == none


def test_loaded_types_match_python_built_types() -> None:
    defs = load_text(NS_A + 'struct S { string s = "a"; vector<int64> v = {1}; };\n};\n')
    manual = Definitions()
    ns = manual.namespace("A", "11111111-1111-1111-1111-111111111111")
    manual.create_structure(ns, "S", [Field("s", STRING, "a"), Field("v", VectorType(INT64), [1])])
    assert defs == manual


def test_attachment_keys_may_be_clubs_or_any_concept() -> None:
    defs = load_text(
        NS_A + "concept C;\nclub K;\nmembership K C;\n"
        "attachment<K, int32> k;\nattachment<any_concept, string> tag;\n};\n"
    )
    club = defs.check_type("A::K")
    assert isinstance(club, ClubType)
    assert defs.check_attachment("A::K.k").key_type == KeyType(club)
    assert defs.check_attachment("A::any_concept.tag").document_type == STRING


# -- semantic errors -----------------------------------------------------------------------

_ERRORS = [
    ("unknown-type", "struct S { Vectr v; };\nstruct Vector { float x; };", 2, 12,
     "unknown type 'Vectr' (did you mean 'Vector' or 'vector'?)"),
    ("unknown-namespace", "struct S { Q::Vector v; };", 2, 12,
     "unknown namespace 'Q' in 'Q::Vector'"),
    ("unknown-qualified", "struct S { A::Vectr v; };\nstruct Vector { float x; };", 2, 12,
     "unknown type 'A::Vectr' (did you mean 'Vector'?)"),
    ("duplicate-name", "concept C;\nconcept C;", 3, 9,
     "duplicate concept 'C' in namespace 'A' (first declared at line 2, column 9)"),
    ("same-name-other-kind", "concept C;\nstruct C { int32 x; };", 3, 8,
     "'C' is already declared as a concept in namespace 'A' at line 2, column 9; "
     "it cannot also be a struct"),
    ("duplicate-field", "struct S { int32 x; float x; };", 2, 27,
     "duplicate field 'x' in struct 'S' (first declared at line 2, column 18)"),
    ("duplicate-case", "enum E { a, b, a };", 2, 16,
     "duplicate case 'a' in enum 'E' (first declared at line 2, column 10)"),
    ("default-out-of-range", "struct S { uint8 x = 300; };", 2, 22,
     "invalid default for field 'x': expected uint8 in [0, 255], given integer 300"),
    ("default-wrong-kind", 'struct S { int32 x = "a"; };', 2, 22,
     "invalid default for field 'x': expected 'int32', given string \"a\""),
    ("default-float-for-int", "struct S { int32 x = 1.5; };", 2, 22,
     "invalid default for field 'x': expected 'int32', given number 1.5"),
    ("default-float32-range", "struct S { float x = 1e39; };", 2, 22,
     "invalid default for field 'x': expected float (binary32 range), given number 1e39"),
    ("default-nested-element", "struct S { vector<int8> v = {1, 2, 300}; };", 2, 36,
     "invalid default for field 'v': expected int8 in [-128, 127], given integer 300"),
    ("key-of-primitive", "struct S { key<int64> k; };", 2, 16,
     "invalid type argument for key<...>: expected a concept, a club or any_concept, "
     "found 'int64'"),
    ("set-of-unhashable", "struct S { set<vector<int32>> k; };", 2, 16,
     "invalid set element type 'vector<int32>': its values are not hashable"),
    ("map-key-unhashable", "struct S { map<map<int32, int32>, int32> m; };", 2, 16,
     "invalid map key type 'map<int32, int32>': its values are not hashable"),
    ("vec-of-string", "struct S { vec<string, 3> k; };", 2, 16,
     "invalid element type for vec<...>: expected a numeric type"),
    ("mat-of-bool", "struct S { mat<bool, 2, 2> k; };", 2, 16,
     "invalid element type for mat<...>: expected a numeric type"),
    ("empty-struct", "struct S { };", 2, 8, "struct 'S' must have at least one field"),
    ("membership-of-non-club", "concept C;\nstruct K { int32 x; };\nmembership K C;", 4, 12,
     "struct 'A::K' is not a club: membership needs a club first"),
    ("membership-of-non-concept", "club K;\nstruct C { int32 x; };\nmembership K C;", 4, 14,
     "struct 'A::C' is not a concept: only concepts can be members of a club"),
    ("struct-cycle", "struct A { B b; };\nstruct B { vector<A> a; };", 3, 19,
     "recursive structure: A.b -> B.a -> A; a structure cannot contain itself"),
    ("struct-self", "struct A { optional<A> a; };", 2, 21, "recursive structure: A.a -> A"),
    ("concept-cycle", "concept A is a B;\nconcept B is a A;", 3, 16,
     "concept inheritance cycle: A is a B is a A"),
    ("parent-not-concept", "struct P { int32 x; };\nconcept C is a P;", 3, 16,
     "struct 'A::P' is not a concept: concept 'C' can only extend a concept"),
    ("attachment-key-not-concept", "struct S { int32 x; };\nattachment<S, S> a;", 3, 12,
     "invalid attachment key struct 'A::S': expected a concept, a club or any_concept"),
    ("attachment-key-primitive", "attachment<int32, string> a;", 2, 12,
     "invalid attachment key 'int32': expected a concept, a club or any_concept"),
    ("attachment-void-document", "concept C;\nattachment<C, void> a;", 3, 15,
     "the document of attachment 'a' cannot be of type 'void'"),
    ("attachment-concept-document", "concept C;\nattachment<C, C> a;", 3, 15,
     "the document of attachment 'a' cannot be of type concept 'A::C': use key<C>"),
    ("duplicate-attachment", "concept C;\nattachment<C, int32> a;\nattachment<C, int32> a;",
     4, 22, "duplicate attachment 'a' on concept 'A::C' in namespace 'A' (first declared at "
     "line 3, column 22)"),
    ("builtin-type-name", "struct string { int32 x; };", 2, 8,
     "invalid struct name 'string': 'string' is a built-in type name"),
    ("keyword-name", "concept namespace;", 2, 9,
     "invalid concept name 'namespace': 'namespace' is a reserved word"),
    ("attachment-keyword-name", "concept C;\nattachment<C, int32> struct;", 3, 22,
     "invalid attachment name 'struct': 'struct' is a reserved word"),
    ("underscore-type-name", "struct _S { int32 x; };", 2, 8,
     "invalid struct name '_S': a name starts with an ASCII letter"),
    ("underscore-field-name", "struct S { int32 _x; };", 2, 18,
     "invalid field name '_x': a name starts with an ASCII letter"),
    ("unknown-enum-case", "enum E { a, b };\nstruct S { E e = .c; };", 3, 18,
     "invalid default for field 'e': enum 'A::E' has no case 'c' (cases: a, b)"),
    ("enum-case-of-other-enum", "enum E { a };\nenum F { a };\nstruct S { E e = F.a; };", 4,
     18, "invalid default for field 'e': expected a case of enum 'A::E', given enum case 'F.a'"),
    ("vec-default-arity", "struct S { vec<float, 3> v = {1.0, 2.0}; };", 2, 30,
     "invalid default for field 'v': expected 'vec<float, 3>' (3 values), given brace list "
     "of 2 values"),
    ("struct-default-too-long", "struct V { float x; };\nstruct S { V v = {1.0, 2.0}; };", 3,
     18, "invalid default for field 'v': expected struct 'A::V' (at most 1 value in field "
     "order: x), given brace list of 2 values"),
    ("key-default", "concept C;\nstruct S { key<C> k = 1; };", 3, 23,
     "field 'k' of type 'key<A::C>' cannot have a default value"),
    ("xarray-default", "struct S { xarray<int32> x = {1}; };", 2, 30,
     "a default of type 'xarray<int32>' must be empty ({})"),
    ("variant-duplicate", "struct S { variant<int32, int32> v; };", 2, 27,
     "duplicate alternative 'int32' in variant<...>"),
    ("field-of-concept", "concept C;\nstruct S { C c; };", 3, 12,
     "field 'c' cannot be of type concept 'A::C': use key<C> to refer to an instance"),
    ("field-of-any-concept", "struct S { any_concept c; };", 2, 12,
     "field 'c' cannot be of type 'any_concept': use key<any_concept> instead"),
    ("field-of-void", "struct S { void v; };", 2, 12,
     "field 'v' cannot be of type 'void': void is only a return type"),
    ("any-default-list", "struct S { any a = {1}; };", 2, 20,
     "invalid default for field 'a': expected 'any' (a number, a string, true, false or a "
     "qualified Enum.case), given brace list of 1 value"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "line", "col", "message"),
    [pytest.param(body, line, col, msg, id=name) for name, body, line, col, msg in _ERRORS],
)
def test_semantic_error(body: str, line: int, col: int, message: str) -> None:
    with pytest.raises(DSMError) as info:
        load_text(NS_A + body + "\n};\n", "bad.dsm")
    err = info.value
    assert (err.file, err.line, err.col) == ("bad.dsm", line, col), str(err)
    assert message in err.message
    assert str(err) == f"bad.dsm:{line}:{col}: {err.message}"


_POOL_ERRORS = [
    ("duplicate-function", POOL + "void f();\nint32 f();\n};", 3, 7,
     "duplicate function 'f' in function_pool 'P' (first declared at line 2, column 6)"),
    ("duplicate-parameter", POOL + "void f(int32 a, string a);\n};", 2, 24,
     "duplicate parameter 'a' in function 'f' (first declared at line 2, column 14)"),
    ("void-parameter", POOL + "void f(void a);\n};", 2, 8,
     "parameter 'a' of function 'f' cannot be of type 'void'"),
    ("unknown-parameter-type", POOL + "void f(Strng a);\n};", 2, 8,
     "unknown type 'Strng' (did you mean 'string'?)"),
    ("ambiguous-name",
     NS_A + "struct X { int32 a; };\n};\n" + NS_B + "struct X { int32 a; };\n};\n" + POOL
     + "void f(X a);\n};", 8, 8,
     "ambiguous name 'X': declared in namespaces 'A' and 'B' (write A::X or B::X)"),
    ("namespace-with-two-uuids",
     NS_A + "};\nnamespace A {44444444-2222-2222-2222-222222222222} {\n};", 3, 11,
     "namespace 'A' is declared with uuid {44444444-2222-2222-2222-222222222222} here but "
     "with {11111111-1111-1111-1111-111111111111} at line 1, column 11"),
    ("uuid-with-two-names",
     NS_A + "};\nnamespace C {11111111-1111-1111-1111-111111111111} {\n};", 3, 11,
     "namespace {11111111-1111-1111-1111-111111111111} is named 'C' here but 'A' at line 1, "
     "column 11"),
    ("nil-namespace-uuid", "namespace Z {00000000-0000-0000-0000-000000000000} {\n};", 1, 11,
     "the nil uuid is the global namespace and cannot be declared"),
    ("pool-name-reused",
     POOL + "};\nfunction_pool P {55555555-3333-3333-3333-333333333333} {\n};", 3, 15,
     "pool name 'P' is already used by the pool {33333333-3333-3333-3333-333333333333} at "
     "line 1, column 15"),
    ("duplicate-pool", POOL + "};\n" + POOL + "};", 3, 15,
     "duplicate function_pool 'P' {33333333-3333-3333-3333-333333333333} (first declared at "
     "line 1, column 15)"),
    ("concept-parameter",
     NS_A + "concept C;\n};\n" + POOL + "void f(C c);\n};", 5, 8,
     "parameter 'c' of function 'f' cannot be of type concept 'A::C': use key<C>"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [pytest.param(text, line, col, msg, id=name) for name, text, line, col, msg in _POOL_ERRORS],
)
def test_semantic_error_outside_one_namespace(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(DSMError) as info:
        load_text(text + "\n", "bad.dsm")
    err = info.value
    assert (err.file, err.line, err.col) == ("bad.dsm", line, col), str(err)
    assert message in err.message


def test_samples_words_stay_legal_as_names() -> None:
    defs = load_text(
        NS_A + "enum E { bool, default, key, float, none };\n"
        "struct S { E default = .default; int64 key; string bool; };\n};\n"
        + POOL
        + "void f(string key, int32 default);\n};\n"
    )
    s = _struct(defs, "A::S")
    assert [f.name for f in s.fields] == ["default", "key", "bool"]
    assert s.field("default").default == _enum(defs, "A::E").case("default")
    assert [p.name for p in defs.pools()[0].check("f").parameters] == ["key", "default"]


def test_the_documented_example_loads() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "typed-model.md").read_text()
    example = page.split("```dsm\n", 1)[1].split("```", 1)[0]
    defs = load_text(example, "typed-model.md")
    assert defs.counts() == _counts(1, 2, 1, 1, 2, 3, 2, 3)
    listing = _struct(defs, "Shop::Listing").default()
    assert listing.price.cents == 100
    assert listing.stock == {"paris": 3, "lyon": 0}
