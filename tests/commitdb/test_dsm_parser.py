"""Tests for the DSM lexer and parser (commitdb.dsm)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commitdb.dsm import (
    AttachmentDecl,
    BoolLit,
    ClubDecl,
    ConceptDecl,
    DSMFile,
    EnumCaseLit,
    EnumDecl,
    FieldDecl,
    FloatLit,
    IntLit,
    ListLit,
    MembershipDecl,
    NameRef,
    SourcePos,
    StringLit,
    StructDecl,
    TypeRef,
    parse,
    parse_file,
)
from commitdb.dsm.lexer import tokenize
from commitdb.errors import DSMError

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "dsm-samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*/*.dsm")) if SAMPLES.is_dir() else []
assert SAMPLES.is_dir(), f"the DSM samples must be at {SAMPLES} (../shared beside the repo)"


def needs_samples(fn: Any) -> Any:
    """Marks tests that read the samples (they are required, never skipped)."""
    return fn


U = "f529bc42-0618-4f54-a3fb-d55f95c5ad03"
RAPTOR_UUID = UUID("f2d9ea90-2adc-4e9a-a2bf-02288281747d")


def _structs(dsm: DSMFile) -> dict[str, StructDecl]:
    return {d.name: d for ns in dsm.namespaces for d in ns.decls if isinstance(d, StructDecl)}


def _enums(dsm: DSMFile) -> dict[str, EnumDecl]:
    return {d.name: d for ns in dsm.namespaces for d in ns.decls if isinstance(d, EnumDecl)}


def _concepts(dsm: DSMFile) -> dict[str, ConceptDecl]:
    return {d.name: d for ns in dsm.namespaces for d in ns.decls if isinstance(d, ConceptDecl)}


def _field(struct: StructDecl, name: str) -> FieldDecl:
    return next(f for f in struct.fields if f.name == name)


def _sample(rel: str) -> DSMFile:
    return parse_file(SAMPLES / rel)


# -- samples -------------------------------------------------------------------------------


@needs_samples
def test_sample_set_is_complete() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in SAMPLE_FILES}
    assert "Tuto/model.dsm" in names
    assert sum(n.startswith("Ge/") for n in names) == 5
    assert sum(n.startswith("Re/") for n in names) == 20


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_parses(path: Path) -> None:
    dsm = parse_file(path)
    assert dsm.path == str(path)
    assert dsm.namespaces or dsm.pools
    for ns in dsm.namespaces:
        assert ns.pos.file == str(path)
        assert ns.decls


@needs_samples
def test_tuto_model() -> None:
    dsm = _sample("Tuto/model.dsm")
    assert dsm.pools == ()
    (ns,) = dsm.namespaces
    assert ns.name == "Tuto"
    assert ns.uuid == UUID(U)
    assert ns.pos == SourcePos(str(SAMPLES / "Tuto/model.dsm"), 2, 11)
    kinds = Counter(type(d).__name__ for d in ns.decls)
    assert kinds == {"StructDecl": 5, "AttachmentDecl": 5, "ConceptDecl": 1, "EnumDecl": 1}
    user = ns.decls[0]
    assert user == ConceptDecl("User", None, "A user.", user.pos)
    assert (user.pos.line, user.pos.col) == (5, 9)
    status = _enums(dsm)["Status"]
    assert [c.name for c in status.cases] == ["pending", "active", "completed"]
    assert status.doc == "Lifecycle state of a User account."
    texture = _structs(dsm)["Texture"]
    assert [(str(f.type), f.name) for f in texture.fields] == [
        ("uint16", "width"),
        ("uint16", "height"),
        ("blob_id", "pixels"),
    ]
    attachments = [d for d in ns.decls if isinstance(d, AttachmentDecl)]
    assert [(str(a.key_type), str(a.doc_type), a.name) for a in attachments] == [
        ("User", "Login", "login"),
        ("User", "Identity", "identity"),
        ("User", "Thumbnail", "avatar"),
        ("User", "Texture", "portrait"),
        ("User", "Account", "account"),
    ]
    assert all(a.doc is None for a in attachments)


@needs_samples
def test_ge_graph_namespaces_attachments_and_docs() -> None:
    dsm = _sample("Ge/Graph.dsm")
    assert [(ns.name, ns.uuid) for ns in dsm.namespaces] == [
        ("Graph", UUID("27c49329-a399-415c-baf0-db42949d2ba2")),
        ("Graph", UUID("27c49329-a399-415c-baf0-db42949d2ba2")),
    ]
    types_ns, attach_ns = dsm.namespaces
    concepts = _concepts(dsm)
    assert {n: c.doc for n, c in concepts.items()} == {
        "Graph": "A graph.",
        "Vertex": "A vertex in a graph.",
        "Edge": "An edge in a graph.",
    }
    assert len(types_ns.decls) == 12
    rect = _structs(dsm)["Rectangle"]
    assert rect.doc == "A Rectangle."
    assert [(f.name, f.doc) for f in rect.fields] == [
        ("x", "the x origin."),
        ("y", "the y origin."),
        ("w", "the width."),
        ("h", "the height."),
    ]
    selection = _structs(dsm)["GraphSelection"]
    vertex_keys = selection.fields[0].type
    assert str(vertex_keys) == "set<key<Vertex>>"
    assert vertex_keys.args[0].args[0] == TypeRef(
        "Vertex", None, (), (), vertex_keys.args[0].args[0].pos
    )

    attachments = attach_ns.decls
    assert all(isinstance(a, AttachmentDecl) for a in attachments)
    summary = [
        (str(a.key_type), str(a.doc_type), a.name, a.doc)
        for a in attachments
        if isinstance(a, AttachmentDecl)
    ]
    assert summary == [
        ("Graph", "GraphTopology", "topology", "The topology of a graph."),
        ("Graph", "map<string, string>", "tags", "A collection of tags for a graph."),
        ("Graph", "xarray<string>", "comments", "A collection of comments for a Graph."),
        ("Graph", "GraphSelection", "selection", "The selected vertices of a graph."),
        ("Graph", "GraphDescription", "description", "The descriptive information of a graph."),
        (
            "Vertex",
            "Vertex2DAttributes",
            "render2DAttributes",
            "The render attributes used to render a vertex of a graph in 2D.",
        ),
        (
            "Vertex",
            "VertexVisualAttributes",
            "visualAttributes",
            "The visual attributes used to render a vertex of a graph.",
        ),
        ("Edge", "EdgeTopology", "topology", "An Edge in the graph topology."),
    ]
    tags = attachments[1]
    assert isinstance(tags, AttachmentDecl)
    assert (tags.pos.line, tags.pos.col) == (82, 40)
    assert (tags.doc_type.pos.line, tags.doc_type.pos.col) == (82, 19)


@needs_samples
def test_ge_pools() -> None:
    graph = _sample("Ge/Pool_ModelGraph.dsm")
    assert graph.namespaces == ()
    (pool,) = graph.pools
    assert pool.kind == "attachment_function_pool"
    assert pool.name == "ModelGraph"
    assert pool.uuid == UUID("9bdcbb5b-76e9-426f-b8a6-a10ed2d949e6")
    assert pool.doc == "This pool provides access to functions used to edit the graph topology."
    assert len(pool.functions) == 26
    assert all(f.mutable for f in pool.functions)
    assert all(f.doc for f in pool.functions)
    by_name = {f.name: f for f in pool.functions}
    new_edge = by_name["newEdge"]
    assert str(new_edge.return_type) == "key<Edge>"
    assert [(str(p.type), p.name) for p in new_edge.params] == [
        ("key<Graph>", "graphKey"),
        ("key<Vertex>", "vaKey"),
        ("key<Vertex>", "vbKey"),
    ]
    assert new_edge.doc == "Create a new edge."
    assert by_name["noArgs"].params == ()
    assert str(by_name["noArgs"].return_type) == "void"
    assert [p.name for p in by_name["setGraphTag"].params] == ["graphKey", "key", "value"]

    (integrity,) = _sample("Ge/Pool_ModelIntegrity.dsm").pools
    assert len(integrity.functions) == 4
    assert all(f.mutable for f in integrity.functions)

    (selection,) = _sample("Ge/Pool_ModelSelection.dsm").pools
    assert len(selection.functions) == 18
    queries = [f.name for f in selection.functions if not f.mutable]
    assert queries == ["selectedEdges", "selectedVertices"]

    (tools,) = _sample("Ge/Pool_Tools.dsm").pools
    assert tools.kind == "function_pool"
    assert tools.uuid == UUID("dc9740c9-9d1d-4c1e-9caa-4c8843b91e82")
    assert [f.name for f in tools.functions] == ["add", "isEven", "isGreater", "randomWord"]
    assert not any(f.mutable for f in tools.functions)
    assert [str(p.type) for p in tools.functions[2].params] == ["any", "any"]


@needs_samples
def test_re_declaration_counts() -> None:
    kinds: Counter[str] = Counter()
    fields = 0
    cases = 0
    defaults: Counter[str] = Counter()
    for path in sorted((SAMPLES / "Re").glob("Raptor_*.dsm")):
        dsm = parse_file(path)
        assert dsm.pools == ()
        for ns in dsm.namespaces:
            assert (ns.name, ns.uuid) == ("Raptor", RAPTOR_UUID)
            for decl in ns.decls:
                kinds[type(decl).__name__] += 1
                if isinstance(decl, ConceptDecl) and decl.parent is not None:
                    kinds["is a"] += 1
                if isinstance(decl, StructDecl):
                    fields += len(decl.fields)
                    for f in decl.fields:
                        if f.default is not None:
                            defaults[type(f.default).__name__] += 1
                if isinstance(decl, EnumDecl):
                    cases += len(decl.cases)
    assert kinds == {
        "StructDecl": 136,
        "ConceptDecl": 91,
        "AttachmentDecl": 86,
        "is a": 41,
        "EnumDecl": 37,
        "MembershipDecl": 25,
        "ClubDecl": 4,
    }
    assert fields == 824
    assert cases == 178
    assert defaults == {
        "FloatLit": 98,
        "StringLit": 62,
        "EnumCaseLit": 42,
        "ListLit": 27,
        "BoolLit": 27,
        "IntLit": 13,
    }


@needs_samples
def test_re_pools() -> None:
    (surfaces,) = _sample("Re/Pool_Surfaces.dsm").pools
    assert (surfaces.kind, surfaces.name, len(surfaces.functions)) == (
        "attachment_function_pool",
        "ModelSurface",
        1,
    )
    assert surfaces.functions[0].mutable
    assert surfaces.functions[0].doc == "assign a material to a surface"
    (tools,) = _sample("Re/Pool_Tools.dsm").pools
    assert [f.name for f in tools.functions] == [
        "add",
        "isEven",
        "randomColor",
        "randomWord",
        "userName",
    ]
    assert str(tools.functions[2].return_type) == "Vector"


@needs_samples
def test_re_defaults_and_features() -> None:
    camera = _sample("Re/Raptor_Camera.dsm")
    structs = _structs(camera)
    policy = _field(structs["CameraDepthRange"], "policy")
    assert isinstance(policy.default, EnumCaseLit)
    assert (policy.default.name, policy.default.enum) == ("lookAtPointBasedInterest", None)
    fov = _field(structs["CameraOpticalProperties"], "fov").default
    assert isinstance(fov, FloatLit)
    assert (fov.value, fov.text) == (0.785398, "0.785398")
    samples = _field(structs["CameraDepthOfField"], "sampleCount").default
    assert isinstance(samples, IntLit) and samples.value == 32
    sensor_key = _field(structs["CameraProperties"], "sensorKey").type
    assert str(sensor_key) == "optional<key<Sensor>>"
    exposed = _field(structs["CameraProperties"], "exposedInConfiguration").default
    assert isinstance(exposed, BoolLit) and exposed.value is True
    assert [c.name for c in _enums(camera)["CameraFovType"].cases] == ["x", "y"]

    lighting = _structs(_sample("Re/Raptor_Lighting.dsm"))
    orientation = _field(lighting["IESProfile"], "orientation").default
    assert isinstance(orientation, ListLit)
    assert [i.value for i in orientation.items if isinstance(i, FloatLit)] == [-90.0, 0.0, 0.0]
    assert (orientation.pos.line, orientation.pos.col) == (107, 26)

    sensor = _sample("Re/Raptor_Sensor.dsm")
    param = _structs(sensor)["PostProcessEffectParameter"]
    data_type = _field(param, "dataType").default
    assert isinstance(data_type, EnumCaseLit) and data_type.name == "float"
    value = _field(param, "parameterValue").default
    assert isinstance(value, StringLit) and value.value == "0/"
    assert [c.name for c in _enums(sensor)["PostProcessDataType"].cases][:3] == [
        "bool",
        "int",
        "float",
    ]
    assert str(_field(_structs(sensor)["PostProcessProperties"], "soloEffectIndex").type) == (
        "optional<uint32>"
    )

    product = _sample("Re/Raptor_Product.dsm")
    cull = _field(_structs(product)["SurfaceRenderProperties"], "backfaceCullMode").default
    assert isinstance(cull, EnumCaseLit) and cull.name == "default"
    bookmarks = _field(_structs(product)["ProductProperties"], "configurationBookmarks").type
    assert str(bookmarks) == "map<string, set<string>>"

    config = _sample("Re/Raptor_Configuration.dsm")
    decls = config.namespaces[0].decls
    clubs = [d.name for d in decls if isinstance(d, ClubDecl)]
    assert clubs == ["ConfigurationTargetSource", "ConfigurationTargetElement"]
    members = [(m.club.name, m.concept.name) for m in decls if isinstance(m, MembershipDecl)]
    assert len(members) == 10
    assert members[0] == ("ConfigurationTargetSource", "Model")
    assert [c.name for c in _enums(config)["ConfigurationExpressionOperationType"].cases] == [
        "defined",
        "and",
        "or",
        "xor",
        "not",
    ]

    env = _concepts(_sample("Re/Raptor_Environment.dsm"))
    hdrls = env["EnvironmentGeneratorHdrls"]
    assert hdrls.parent is not None
    assert (hdrls.parent.name, hdrls.parent.namespace) == ("EnvironmentGenerator", None)

    kin = _structs(_sample("Re/Raptor_Kinematics.dsm"))
    constraints = _field(kin["KinematicsProperties"], "constraints").type
    assert str(constraints) == "map<key<KinematicsElement>, vector<key<KinematicsConstraint>>>"
    mesh = _structs(_sample("Re/Raptor_Mesh.dsm"))
    assert str(_field(mesh["MeshProperties"], "blob_uvs").type) == "map<int8, blob_id>"

    timeline = _sample("Re/Raptor_Timeline.dsm")
    types_ns = timeline.namespaces[0]
    interleaved = [d for d in types_ns.decls if isinstance(d, AttachmentDecl)]
    assert [(str(a.key_type), a.name) for a in interleaved] == [
        ("TimelineClipProduct", "properties")
    ]
    product_clip = _concepts(timeline)["TimelineClipProduct"]
    assert product_clip.parent is not None and product_clip.parent.name == "TimelineClip"
    trigger = _structs(timeline)["TimelineTriggerKeyProperties"]
    assert [f.name for f in trigger.fields] == ["key", "animations"]


# -- synthetic valid inputs ----------------------------------------------------------------

FEATURES = f'''\ufeff/* leading block
   comment */
"""The Demo
namespace."""
namespace Demo {{{U}}} {{
"""Colors."""
enum Color {{
    """The red one."""
    red,
    green, // trailing comma allowed
}};
concept Thing is a Other::Base;
membership Other::Club Thing;
struct All {{
    vec<float, 3> v = {{1.0, -2.5e3, .5}};
    mat<double, 3, 4> m = {{{{1, 2}}, {{}}}};
    variant<int32, string, Other::Item> var;
    tuple<bool, uuid> t;
    int64 h = -0x1F;
    int8 small = -128;
    string s = "tab\\t quote\\" \\u00e9";
    Color c = Color.green;
    Other::Mode q = Other::Mode.fast;
    bool b = false;
    any_concept ac;
    commit_id cid;
}};
struct Empty {{ }};
attachment<any_concept, vector<Other::Item>> items;
}}
attachment_function_pool Edit {{{U.upper()}}} {{
    """Does it."""
    mutable Other::Item make(key<Thing> k, map<string, vec<float, 2>> m);
    bool query();
}}
'''


def test_all_grammar_features() -> None:
    dsm = parse(FEATURES, "f.dsm")
    (ns,) = dsm.namespaces
    assert ns.doc == "The Demo\nnamespace."
    assert ns.pos == SourcePos("f.dsm", 5, 11)
    color, thing, membership, all_, empty, items = ns.decls
    assert isinstance(color, EnumDecl)
    assert [(c.name, c.doc) for c in color.cases] == [("red", "The red one."), ("green", None)]
    assert isinstance(thing, ConceptDecl)
    assert thing.parent == NameRef("Base", "Other", SourcePos("f.dsm", 12, 20))
    assert isinstance(membership, MembershipDecl)
    assert membership.club.qualified == "Other::Club"
    assert membership.pos == SourcePos("f.dsm", 13, 1)
    assert isinstance(all_, StructDecl)
    f = {fd.name: fd for fd in all_.fields}
    assert str(f["v"].type) == "vec<float, 3>"
    assert f["v"].type.int_args == (3,)
    assert f["m"].type.int_args == (3, 4)
    assert str(f["var"].type) == "variant<int32, string, Other::Item>"
    assert f["var"].type.args[2].namespace == "Other"
    assert str(f["t"].type) == "tuple<bool, uuid>"
    v = f["v"].default
    assert isinstance(v, ListLit)
    assert [(i.value, i.text) for i in v.items if isinstance(i, FloatLit)] == [
        (1.0, "1.0"),
        (-2500.0, "-2.5e3"),
        (0.5, ".5"),
    ]
    m = f["m"].default
    assert isinstance(m, ListLit)
    first, second = m.items
    assert isinstance(first, ListLit) and isinstance(second, ListLit)
    assert [i.value for i in first.items if isinstance(i, IntLit)] == [1, 2]
    assert second.items == ()
    h = f["h"].default
    assert isinstance(h, IntLit) and (h.value, h.text) == (-31, "-0x1F")
    small = f["small"].default
    assert isinstance(small, IntLit) and small.value == -128
    s = f["s"].default
    assert isinstance(s, StringLit) and s.value == 'tab\t quote" é'
    c = f["c"].default
    assert isinstance(c, EnumCaseLit)
    assert (c.name, c.enum) == ("green", NameRef("Color", None, SourcePos("f.dsm", 22, 15)))
    q = f["q"].default
    assert isinstance(q, EnumCaseLit) and q.enum is not None
    assert (q.name, q.enum.qualified) == ("fast", "Other::Mode")
    b = f["b"].default
    assert isinstance(b, BoolLit) and b.value is False
    assert isinstance(empty, StructDecl) and empty.fields == ()
    assert isinstance(items, AttachmentDecl)
    assert str(items.doc_type) == "vector<Other::Item>"

    (pool,) = dsm.pools
    assert pool.uuid == UUID(U)
    make, query = pool.functions
    assert make.mutable and not query.mutable
    assert make.doc == "Does it."
    assert str(make.return_type) == "Other::Item"
    assert [str(p.type) for p in make.params] == ["key<Thing>", "map<string, vec<float, 2>>"]
    assert make.params[1].pos == SourcePos("f.dsm", 33, 71)


def test_empty_and_comment_only_inputs() -> None:
    assert parse("") == DSMFile("<string>", (), ())
    assert parse("  // nothing\n/* at */ \n") == DSMFile("<string>", (), ())


def test_crlf_line_endings_keep_positions() -> None:
    text = f"namespace A {{{U}}} {{\r\n\r\n  concept X;\r\n}};\r\n"
    (ns,) = parse(text).namespaces
    assert ns.decls[0].pos == SourcePos("<string>", 3, 11)


def test_multiline_doc_string_is_verbatim() -> None:
    text = f'namespace A {{{U}}} {{\n"""\n  Line one.\n  Line two.\n"""\nclub C;\n}};'
    (ns,) = parse(text).namespaces
    club = ns.decls[0]
    assert isinstance(club, ClubDecl)
    assert club.doc == "\n  Line one.\n  Line two.\n"
    assert club.pos == SourcePos("<string>", 6, 6)


def test_several_blocks_and_optional_semicolons() -> None:
    text = f"namespace A {{{U}}} {{ club C; }}\nnamespace A {{{U}}} {{ club D; }};\n"
    dsm = parse(text)
    clubs = [d for ns in dsm.namespaces for d in ns.decls if isinstance(d, ClubDecl)]
    assert [c.name for c in clubs] == ["C", "D"]


def test_lexer_splits_closing_angles_and_tracks_columns() -> None:
    tokens = tokenize("set<key<V>> x;\n\tmap")
    assert [t.kind for t in tokens] == [
        "ident",
        "<",
        "ident",
        "<",
        "ident",
        ">",
        ">",
        "ident",
        ";",
        "ident",
        "eof",
    ]
    assert [(t.line, t.col) for t in tokens[-2:]] == [(2, 2), (2, 5)]


def test_parse_file_reports_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.dsm"
    path.write_bytes(b"// ok\nnamespace \xff")
    with pytest.raises(DSMError) as info:
        parse_file(path)
    assert (info.value.file, info.value.line, info.value.col) == (str(path), 2, 11)
    assert "not valid UTF-8" in info.value.message


def test_parse_file_locates_errors_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "m.dsm"
    path.write_text("concept X;\n", encoding="utf-8")
    with pytest.raises(DSMError) as info:
        parse_file(path)
    assert str(info.value).startswith(f"{path}:1:1: ")


# -- malformed inputs ----------------------------------------------------------------------

NS = f"namespace A {{{U}}} {{\n"

ERRORS: list[tuple[str, str, int, int, str]] = [
    (
        "unexpected-token",
        NS + "concept ;\n};",
        2,
        9,
        "expected a concept name after 'concept', found ';'",
    ),
    (
        "unterminated-string",
        NS + 'struct S { string s = "abc;\n};\n};',
        2,
        23,
        "unterminated string",
    ),
    (
        "unterminated-doc",
        NS + 'concept X;\n"""doc\nconcept Y;\n};',
        3,
        1,
        "unterminated doc string",
    ),
    ("unterminated-comment", NS + "/* never closed\nconcept X;\n};", 2, 1, "unterminated comment"),
    ("bad-uuid", "namespace A {1234-5678} { club C; };", 1, 13, "bad uuid '{1234-5678}'"),
    (
        "bad-uuid-short-group",
        "function_pool P {f529bc42-0618-4f54-a3fb-d55f95c5ad0} { };",
        1,
        17,
        "bad uuid",
    ),
    (
        "missing-uuid",
        "namespace A { concept X; };",
        1,
        13,
        "expected a uuid {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx} after namespace name 'A', found '{'",
    ),
    (
        "missing-semicolon-concept",
        NS + "concept X\nconcept Y;\n};",
        3,
        1,
        "expected ';' after concept 'X', found identifier 'concept'",
    ),
    (
        "missing-semicolon-field",
        NS + "struct S {\n    float x\n    float y;\n};\n};",
        4,
        5,
        "expected ';' after field 'x'",
    ),
    (
        "missing-semicolon-struct",
        NS + "struct S { float x; }\n};",
        3,
        1,
        "expected ';' after struct 'S', found '}'",
    ),
    (
        "missing-brace-namespace",
        NS + "concept X;\n",
        3,
        1,
        "missing '}' to close namespace 'A' opened at line 1, column 52",
    ),
    (
        "missing-brace-struct",
        NS + "struct S {\n    float x;",
        3,
        13,
        "missing '}' to close struct 'S' opened at line 2, column 10",
    ),
    (
        "missing-brace-pool",
        f"function_pool P {{{U}}} {{\n int32 f();",
        2,
        12,
        "missing '}' to close function_pool 'P'",
    ),
    ("unknown-top-level-keyword", "// hi\nfoo Bar;", 2, 1, "unknown keyword 'foo' at top level"),
    (
        "declaration-at-top-level",
        "concept X;",
        1,
        1,
        "'concept' declarations must be inside a namespace block",
    ),
    (
        "unknown-declaration",
        NS + "int32 x;\n};",
        2,
        1,
        "unknown declaration 'int32' in namespace 'A'",
    ),
    ("invalid-identifier-digit", NS + "concept 2D;\n};", 2, 9, "invalid identifier '2D'"),
    (
        "invalid-identifier-non-ascii",
        NS + "struct Café { };\n};",
        2,
        8,
        "invalid identifier 'Café'",
    ),
    (
        "bad-number-dots",
        NS + "struct S { float x = 1.2.3; };\n};",
        2,
        22,
        "bad number literal '1.2.3'",
    ),
    ("bad-number-hex", NS + "struct S { int32 x = 0x; };\n};", 2, 22, "bad number literal '0x'"),
    (
        "bad-number-letters",
        NS + "struct S { int32 x = 12abc; };\n};",
        2,
        22,
        "bad number literal '12abc'",
    ),
    (
        "empty-type-arguments",
        NS + "struct S { vector<> x; };\n};",
        2,
        18,
        "empty type argument list for 'vector'",
    ),
    (
        "map-arity",
        NS + "struct S { map<string> x; };\n};",
        2,
        22,
        "wrong number of type arguments for 'map': expected 2 (map<K, V>), found 1",
    ),
    (
        "vec-arity",
        NS + "struct S { vec<float> x; };\n};",
        2,
        21,
        "wrong number of type arguments for 'vec': expected 2",
    ),
    (
        "mat-arity",
        NS + "struct S { mat<float, 3> x; };\n};",
        2,
        24,
        "wrong number of type arguments for 'mat': expected 3",
    ),
    (
        "key-arity",
        NS + "struct S { key<A, B> x; };\n};",
        2,
        19,
        "wrong number of type arguments for 'key': expected 1",
    ),
    (
        "optional-arity",
        NS + "struct S { optional<int32, int32> x; };\n};",
        2,
        28,
        "wrong number of type arguments for 'optional'",
    ),
    (
        "attachment-arity",
        NS + "attachment<A> x;\n};",
        2,
        13,
        "wrong number of type arguments for 'attachment'",
    ),
    (
        "vec-dimension-type",
        NS + "struct S { vec<float, float> x; };\n};",
        2,
        23,
        "argument 2 of 'vec' must be a positive integer",
    ),
    (
        "vec-dimension-zero",
        NS + "struct S { vec<float, 0> x; };\n};",
        2,
        23,
        "must be a positive integer (vec<T, N>), found 0",
    ),
    (
        "generic-without-arguments",
        NS + "struct S { set x; };\n};",
        2,
        12,
        "type 'set' requires type arguments: set<T>",
    ),
    (
        "primitive-with-arguments",
        NS + "struct S { int32<3> x; };\n};",
        2,
        17,
        "type 'int32' does not take type arguments",
    ),
    (
        "mutable-in-function-pool",
        f"function_pool P {{{U}}} {{\n  mutable void f();\n}};",
        2,
        3,
        "'mutable' is not allowed in function_pool 'P'",
    ),
    ("stray-character", NS + "concept X; @\n};", 2, 12, "unexpected character '@'"),
    (
        "pool-inside-namespace",
        NS + f"function_pool P {{{U}}} {{ }};\n}};",
        2,
        1,
        "must be declared at top level",
    ),
    (
        "nested-namespace",
        NS + f"namespace B {{{U}}} {{ }};\n}};",
        2,
        1,
        "namespaces cannot be nested",
    ),
    (
        "dangling-doc",
        NS + 'concept X;\n"""dangling"""\n};',
        3,
        1,
        "doc string is not followed by a declaration",
    ),
    ("two-docs", '"""a"""\n"""b"""\nconcept X;', 2, 1, "only one doc string"),
    ("empty-enum", NS + "enum E { };\n};", 2, 10, "enum 'E' must have at least one case"),
    (
        "enum-missing-comma",
        NS + "enum E { a b };\n};",
        2,
        12,
        "expected ',' or '}' after enum case 'a'",
    ),
    (
        "invalid-escape",
        NS + 'struct S { string s = "a\\qb"; };\n};',
        2,
        25,
        "invalid escape sequence '\\q'",
    ),
    ("is-without-a", NS + "concept C is B;\n};", 2, 14, "expected 'a' after 'is'"),
    (
        "bare-enum-case",
        NS + "struct S { E e = linear; };\n};",
        2,
        18,
        "write '.linear' for an enum case",
    ),
    ("single-colon", NS + "struct S { NS:T e; };\n};", 2, 14, "expected '::' in qualified name"),
    (
        "unclosed-brace-list",
        NS + "struct S { Vector v = {1.0, 2.0; };\n};",
        2,
        32,
        "expected ',' or '}' in brace list, found ';'",
    ),
    (
        "param-list",
        f"function_pool P {{{U}}} {{\nvoid f(int32 a;\n}};",
        2,
        15,
        "expected ',' or ')' in the parameters of function 'f'",
    ),
    ("lone-minus", NS + "struct S { int32 x = -; };\n};", 2, 22, "expected a digit after '-'"),
    ("float-out-of-range", NS + "struct S { double x = 1e999; };\n};", 2, 23, "out of range"),
    ("stray-closing-brace", "}", 1, 1, "at top level, found '}'"),
]


@pytest.mark.parametrize(
    ("source", "line", "col", "message"),
    [pytest.param(src, line, col, msg, id=name) for name, src, line, col, msg in ERRORS],
)
def test_malformed_input_is_located(source: str, line: int, col: int, message: str) -> None:
    with pytest.raises(DSMError) as info:
        parse(source, "bad.dsm")
    err = info.value
    assert (err.file, err.line, err.col) == ("bad.dsm", line, col), str(err)
    assert message in err.message
    assert str(err) == f"bad.dsm:{line}:{col}: {err.message}"


def test_error_catalogue_is_large_and_distinct() -> None:
    assert len(ERRORS) >= 20
    assert len({name for name, *_ in ERRORS}) == len(ERRORS)
    assert len({src for _, src, *_ in ERRORS}) == len(ERRORS)


def test_first_error_in_source_order_wins() -> None:
    source = NS + "concept ;\n" + 'struct S { string s = "never closed\n};\n};'
    with pytest.raises(DSMError) as info:
        parse(source)
    assert (info.value.line, info.value.col) == (2, 9)
