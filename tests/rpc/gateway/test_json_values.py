"""Typed values as JSON (``rpc.json_values``): every type both ways, errors with ``where``,
type spellings, and mutation objects applied to a real mutable state."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest

from commitdb import CommitDatabase, CommitMutableState, types as T
from commitdb.definitions import Definitions
from commitdb.errors import PathError, UnknownAttachmentError, ValidationError
from commitdb.ids import BlobId, CommitId
from commitdb.values import END, Key, Typed, XArray
from rpc.json_values import apply_mutation, describe_json, from_json, parse_type, to_json

D = Definitions()
NS = D.namespace("Test", "7b0d2a4e-6c1f-4a58-9d3e-2f1b5c7a9e01")
THING = D.create_concept(NS, "Thing")
SUB = D.create_concept(NS, "Sub", parent=THING)
OTHER = D.create_concept(NS, "Other")
COLOR = D.create_enumeration(NS, "Color", ["red", "green", "blue"])
POINT = D.create_structure(NS, "Point", [T.Field("x", T.DOUBLE), T.Field("y", T.DOUBLE, 2.0)])
DOC = D.create_structure(
    NS,
    "Doc",
    [
        T.Field("name", T.STRING),
        T.Field("tags", T.SetType(T.STRING)),
        T.Field("scores", T.MapType(T.STRING, T.INT32)),
        T.Field("by_key", T.MapType(T.KeyType(THING), T.STRING)),
        T.Field("items", T.XArrayType(POINT)),
        T.Field("color", COLOR),
        T.Field("maybe", T.OptionalType(T.INT64)),
    ],
)
ATT = D.create_attachment(NS, "doc", THING, DOC)
KEY = T.KeyType(THING)


def round_trip(value: Any, t: T.Type) -> Any:
    data = json.loads(json.dumps(to_json(t.check(value), t), allow_nan=False))
    return from_json(data, t, D, "v")


@pytest.mark.parametrize(
    ("t", "value", "expected_json"),
    [
        (T.BOOL, True, True),
        (T.INT8, -128, -128),
        (T.UINT64, 2**64 - 1, 2**64 - 1),
        (T.DOUBLE, 1.5, 1.5),
        (T.DOUBLE, math.inf, "Infinity"),
        (T.DOUBLE, -math.inf, "-Infinity"),
        (T.FLOAT, 0.5, 0.5),
        (T.STRING, "é✓", "é✓"),
        (T.UUID, uuid.UUID(int=5), str(uuid.UUID(int=5))),
        (T.BLOB, b"\x00\xff", "AP8="),
        (T.BLOB_ID, BlobId(b"\x01" * 32), "01" * 32),
        (T.COMMIT_ID, CommitId(b"\xab" * 32), "ab" * 32),
        (T.VectorType(T.INT64), [3, 1], [3, 1]),
        (T.SetType(T.INT64), {3, 1, 2}, [1, 2, 3]),
        (T.SetType(T.STRING), {"b", "a"}, ["a", "b"]),
        (T.TupleType([T.INT64, T.STRING]), (1, "a"), [1, "a"]),
        (T.VecType(T.FLOAT, 2), (1.0, 2.0), [1.0, 2.0]),
        (T.MatType(T.DOUBLE, 2, 2), (1.0, 2.0, 3.0, 4.0), [1.0, 2.0, 3.0, 4.0]),
        (T.MapType(T.STRING, T.INT64), {"b": 2, "a": 1}, {"a": 1, "b": 2}),
        (T.MapType(T.INT64, T.STRING), {2: "b", 1: "a"}, [[1, "a"], [2, "b"]]),
        (T.OptionalType(T.INT64), None, None),
        (T.OptionalType(T.INT64), 4, 4),
        (COLOR, "green", "green"),
        (POINT, {"x": 1.0}, {"x": 1.0, "y": 2.0}),
        (T.ANY, None, None),
        (T.ANY, 5, {"type": "int64", "value": 5}),
        (T.ANY, Typed(T.INT32, 5), {"type": "int32", "value": 5}),
        (T.ANY, Typed(POINT, {"x": 1.0}), {"type": "Test::Point", "value": {"x": 1.0, "y": 2.0}}),
        (T.VariantType([T.INT64, T.STRING]), "a", {"type": "string", "value": "a"}),
        (T.VariantType([T.INT64, T.INT32]), Typed(T.INT32, 3), {"type": "int32", "value": 3}),
    ],
)
def test_values_both_ways(t: T.Type, value: Any, expected_json: Any) -> None:
    normalized = t.check(value)
    assert to_json(normalized, t) == expected_json
    assert round_trip(value, t) == normalized


def test_nan_and_non_finite_floats() -> None:
    assert to_json(math.nan, T.DOUBLE) == "NaN"
    assert math.isnan(from_json("NaN", T.DOUBLE, None, "v"))
    assert from_json("Infinity", T.FLOAT, None, "v") == math.inf


def test_keys_structures_and_xarrays() -> None:
    thing = Key(SUB, uuid.UUID(int=9))
    assert to_json(thing, KEY) == {"concept": "Test::Sub", "id": str(uuid.UUID(int=9))}
    assert from_json({"concept": "Test::Sub", "id": str(thing.id)}, KEY, D, "k") == thing
    assert from_json({"id": str(thing.id)}, KEY, D, "k") == Key(THING, thing.id)  # the target
    doc = DOC.check(
        {
            "name": "n",
            "tags": {"b", "a"},
            "by_key": {thing: "x"},
            "items": XArray([POINT.check({"x": 1.0}), POINT.check({"x": 2.0})]),
            "color": "blue",
        }
    )
    data = to_json(doc, DOC)
    assert data["by_key"] == [[{"concept": "Test::Sub", "id": str(thing.id)}, "x"]]
    assert [i["value"]["x"] for i in data["items"]] == [1.0, 2.0]
    assert data["maybe"] is None and data["color"] == "blue" and data["tags"] == ["a", "b"]
    back = from_json(data, DOC, D, "d")
    assert back == doc and back.items.live_positions() == doc.items.live_positions()
    plain = from_json({"name": "p", "items": [{"x": 3}]}, DOC, D, "d")
    assert [p.x for p in plain.items] == [3.0] and plain.color == COLOR.case("red")


@pytest.mark.parametrize(
    ("t", "data", "where", "expected"),
    [
        (T.INT64, "1", "v", "int64"),
        (T.INT64, 1.0, "v", "int64"),
        (T.INT64, True, "v", "int64"),
        (T.INT8, 300, "v", "int8 in [-128, 127]"),
        (T.BOOL, 0, "v", "boolean"),
        (T.DOUBLE, "1.5", "v", "double"),
        (T.UUID, "nope", "v", "uuid"),
        (T.BLOB, "***", "v", "base64"),
        (T.COMMIT_ID, "ab", "v", "64 hexadecimal"),
        (T.VectorType(T.INT64), [1, "x"], "v[1]", "int64"),
        (T.TupleType([T.INT64, T.INT64]), [1], "v", "array of 2"),
        (T.MapType(T.STRING, T.INT64), {"a": "x"}, 'v["a"]', "int64"),
        (T.MapType(T.INT64, T.INT64), [[1]], "v[0]", "[key, value]"),
        (POINT, {"x": 1, "z": 2}, "v", "a field of Test::Point"),
        (POINT, {"x": "a"}, "v.x", "double"),
        (DOC, {"items": [{"position": "bad", "value": {"x": 1}}]}, "v.items[0].position", "uuid"),
        (COLOR, "purple", "v", "a case of Test::Color"),
        (KEY, {"concept": "Test::Other", "id": str(uuid.UUID(int=1))}, "v", "key<Test::Thing>"),
        (KEY, {"concept": "Test::Nope", "id": str(uuid.UUID(int=1))}, "v.concept", "known concept"),
        (KEY, {"id": "x"}, "v.id", "uuid"),
        (KEY, "x", "v", "key<Test::Thing>"),
        (T.ANY, [1], "v", "any"),
        (T.ANY, {"type": "Test::Point", "value": {"x": "a"}}, "v.value.x", "double"),
        (T.ANY, {"type": "nope<", "value": 1}, "v.type", "DSM type"),
        (T.VariantType([T.INT64, T.BOOL]), "x", "v", "variant<int64, bool>"),
        (
            T.VariantType([T.INT64, T.BOOL]),
            {"type": "string", "value": "x"},
            "v.type",
            "alternative",
        ),
        (T.VOID, 1, "v", "void"),
    ],
)
def test_errors_say_what_and_where(t: T.Type, data: Any, where: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        from_json(data, t, D, "v")
    assert caught.value.where == where
    assert expected in caught.value.expected


def test_describe_json() -> None:
    assert describe_json(None) == "null" and describe_json(True) == "boolean true"
    assert (
        describe_json([1]) == "array of 1 item"
        and describe_json({"b": 1, "a": 2}) == "object {a, b}"
    )
    assert describe_json("x" * 100).endswith('..."')


@pytest.mark.parametrize(
    "text",
    [
        "int32",
        "vector<string>",
        "map<string, Test::Point>",
        "key<Test::Thing>",
        "vec<float, 3>",
        "mat<double, 2, 3>",
        "tuple<int8, variant<string, bool>>",
        "optional<xarray<Test::Color>>",
        "set<uuid>",
        "any",
    ],
)
def test_type_spellings_parse_back(text: str) -> None:
    assert str(parse_type(text, D)) == text


@pytest.mark.parametrize(
    "text",
    ["nope", "vector<", "vector<int8", "vec<float>", "map<int8>", "key<int8>", "3", "int8 int8"],
)
def test_bad_type_spellings(text: str) -> None:
    with pytest.raises(ValueError):
        parse_type(text, D)


# --------------------------------------------------------------------------------------------
# Mutation objects


@pytest.fixture
def state() -> CommitMutableState:
    return CommitMutableState(CommitDatabase.create_in_memory(D).initial_state())


def apply(state: CommitMutableState, **obj: Any) -> Any:
    return apply_mutation(state, obj, D, "m")


def test_every_mutation_op(state: CommitMutableState) -> None:
    thing = Key(THING, uuid.uuid4())
    k = to_json(thing, KEY)
    a = "Test::Thing.doc"
    apply(state, op="set", attachment=a, key=k, value={"name": "n", "scores": {"a": 1}})
    apply(state, op="update", attachment=a, key=k, path=".name", value="m")
    apply(state, op="union_in_set", attachment=a, key=k, path=".tags", elements=["x", "y"])
    apply(state, op="subtract_in_set", attachment=a, key=k, path=".tags", elements=["x"])
    apply(state, op="union_in_map", attachment=a, key=k, path=".scores", entries={"b": 2, "c": 3})
    apply(state, op="update_in_map", attachment=a, key=k, path=".scores", entries={"a": 10, "z": 1})
    apply(state, op="subtract_in_map", attachment=a, key=k, path=".scores", keys=["c"])
    first = apply(
        state,
        op="insert_in_xarray",
        attachment=a,
        key=k,
        path=".items",
        before="END",
        value={"x": 1},
    )
    chosen = str(uuid.uuid4())
    second = apply(state, op="insert_in_xarray", attachment=a, key=k, path=".items", before=str(first), position=chosen, value={"x": 0})  # fmt: skip
    assert str(second) == chosen
    apply(
        state,
        op="update_in_xarray",
        attachment=a,
        key=k,
        path=".items",
        position=chosen,
        value={"x": 5},
    )
    apply(state, op="remove_in_xarray", attachment=a, key=k, path=".items", position=str(first))
    doc = state.get(ATT, thing)
    assert doc.name == "m" and doc.tags == {"y"} and doc.scores == {"a": 10, "b": 2}
    assert [p.x for p in doc.items] == [5.0] and doc.items.tombstones() == [first]
    apply(
        state,
        op="diff",
        attachment=a,
        key=k,
        value={"name": "d", "scores": {"a": 10}},
        recursive=True,
    )
    assert state.get(ATT, thing).name == "d"
    apply(state, op="delete", attachment=a, key=k)
    assert not state.has(ATT, thing)


@pytest.mark.parametrize(
    ("obj", "error", "needle"),
    [
        ({"op": "nope"}, ValidationError, "m.op"),
        (
            {"op": "set", "attachment": "Test::Thing.doc", "key": {}},
            ValidationError,
            "missing ['value']",
        ),
        (
            {"op": "delete", "attachment": "Test::Thing.doc", "key": {}, "x": 1},
            ValidationError,
            "unknown ['x']",
        ),
        (
            {"op": "delete", "attachment": "Test::Nope.doc", "key": {}},
            UnknownAttachmentError,
            "Test::Nope.doc",
        ),
        (
            {
                "op": "update",
                "attachment": "Test::Thing.doc",
                "key": None,
                "path": ".name",
                "value": 1,
            },
            ValidationError,
            "m.key",
        ),
        (
            {
                "op": "update",
                "attachment": "Test::Thing.doc",
                "key": "K",
                "path": ".nope",
                "value": 1,
            },
            PathError,
            "m.path",
        ),
        (
            {
                "op": "update",
                "attachment": "Test::Thing.doc",
                "key": "K",
                "path": ".name",
                "value": 1,
            },
            ValidationError,
            "m.value",
        ),
        (
            {
                "op": "union_in_set",
                "attachment": "Test::Thing.doc",
                "key": "K",
                "path": ".name",
                "elements": [],
            },
            ValidationError,
            "a path to a set",
        ),
        (
            {
                "op": "remove_in_xarray",
                "attachment": "Test::Thing.doc",
                "key": "K",
                "path": ".items",
                "position": str(END),
            },
            ValidationError,
            "m.position",
        ),
        (
            {
                "op": "diff",
                "attachment": "Test::Thing.doc",
                "key": "K",
                "value": {},
                "recursive": 1,
            },
            ValidationError,
            "m.recursive",
        ),
        ("x", ValidationError, "mutation object"),
    ],
)
def test_bad_mutation_objects(
    state: CommitMutableState, obj: Any, error: type[Exception], needle: str
) -> None:
    if isinstance(obj, dict) and obj.get("key") == "K":
        obj["key"] = to_json(Key(THING, uuid.uuid4()), KEY)
    with pytest.raises(error) as caught:
        apply_mutation(state, obj, D, "m")
    text = str(caught.value) + (
        caught.value.where if isinstance(caught.value, ValidationError) else ""
    )
    assert needle in text
