"""JSON-RPC 2.0 over HTTP against a real gateway process: protocol rules, pools, databases."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from commitdb import CommitDatabase
from rpc.examples.graph import ge_definitions
from tests.rpc.gateway.conftest import GatewayProcess, rpc

JSON = {"Content-Type": "application/json"}
GRAPH = "Graph::Graph"
ZERO = "0" * 64


@pytest.fixture(scope="module")
def http(gw: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        yield client


def post(http: httpx.Client, body: Any) -> httpx.Response:
    return http.post("/", content=json.dumps(body), headers=JSON)


def call(http: httpx.Client, method: str, params: Any = None) -> Any:
    reply = post(http, rpc(method, params)).json()
    assert "error" not in reply, reply
    return reply["result"]


def error(http: httpx.Client, method: str, params: Any = None) -> dict[str, Any]:
    reply = post(http, rpc(method, params)).json()
    assert "error" in reply, reply
    assert reply["id"] == 1
    err: dict[str, Any] = reply["error"]
    return err


def graph_key() -> dict[str, str]:
    return {"concept": GRAPH, "id": str(uuid.uuid4())}


# --------------------------------------------------------------------------------------------
# Protocol rules


def test_single_request(http: httpx.Client) -> None:
    response = post(http, rpc("rpc.ping", id="abc"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"jsonrpc": "2.0", "result": "pong", "id": "abc"}


@pytest.mark.parametrize("ident", ["x", 7, 2.5, None, -1, ""])
def test_valid_ids_are_echoed(http: httpx.Client, ident: Any) -> None:
    assert post(http, rpc("rpc.ping", id=ident)).json()["id"] == ident


@pytest.mark.parametrize("ident", [{"a": 1}, [1], True, False])
def test_ids_of_other_types_are_invalid_requests_answered_with_null(
    http: httpx.Client, ident: Any
) -> None:
    reply = post(http, rpc("rpc.ping", id=ident)).json()
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    assert "id must be" in reply["error"]["data"]["reason"]


def test_batch_mixes_valid_invalid_and_notification_members(http: httpx.Client) -> None:
    batch = [
        rpc("pool.Tools.add", [1, 2], id=1),
        {"jsonrpc": "2.0", "method": "pool.Tools.add", "params": [5, 5]},  # notification
        {"jsonrpc": "2.0", "method": 1, "params": "bar"},
        42,
        rpc("no.such.method", id=2),
        rpc("pool.Tools.add", {"a": 20, "b": 22}, id=3),
    ]
    replies = post(http, batch).json()
    assert isinstance(replies, list)
    by_id = {r["id"]: r for r in replies if r["id"] is not None}
    nulls = [r for r in replies if r["id"] is None]
    assert by_id[1]["result"] == 3
    assert by_id[3]["result"] == 42
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[2]["error"]["data"]["method"] == "no.such.method"
    assert [r["error"]["code"] for r in nulls] == [-32600, -32600]
    assert len(replies) == 5  # the notification got nothing


def test_empty_batch_is_one_invalid_request(http: httpx.Client) -> None:
    reply = post(http, []).json()
    assert isinstance(reply, dict)
    assert reply["error"]["code"] == -32600
    assert reply["error"]["data"]["reason"] == "empty batch"
    assert reply["id"] is None


def test_all_notification_batch_gets_no_body(http: httpx.Client) -> None:
    batch = [{"jsonrpc": "2.0", "method": "rpc.ping"}, {"jsonrpc": "2.0", "method": "nope"}]
    response = post(http, batch)
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(
    "notification",
    [
        {"jsonrpc": "2.0", "method": "no.such.method"},
        {"jsonrpc": "2.0", "method": "pool.Tools.add", "params": ["x"]},
        {"jsonrpc": "2.0", "method": "Probe.fail", "params": ["boom"]},
        {"jsonrpc": "2.0", "method": "pool.Probe.fail", "params": ["boom"]},
    ],
)
def test_notifications_get_no_reply_even_on_error(
    http: httpx.Client, notification: dict[str, Any]
) -> None:
    response = post(http, notification)
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"method": "rpc.ping", "id": 1}, '"jsonrpc"'),
        ({"jsonrpc": "1.0", "method": "rpc.ping", "id": 1}, '"jsonrpc"'),
        ({"jsonrpc": "2.0", "method": 5, "id": 1}, '"method"'),
        ({"jsonrpc": "2.0", "method": "", "id": 1}, '"method"'),
        ({"jsonrpc": "2.0", "method": "rpc.ping", "params": "x", "id": 1}, '"params"'),
        ({"jsonrpc": "2.0", "method": "rpc.ping", "id": 1, "extra": 1}, "unknown member"),
    ],
)
def test_invalid_requests_say_what_is_wrong(
    http: httpx.Client, body: dict[str, Any], reason: str
) -> None:
    reply = post(http, body).json()
    assert reply["error"]["code"] == -32600
    assert reason in reply["error"]["data"]["reason"]
    assert reply["id"] == 1  # readable, so echoed


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"jsonrpc": "2.0", "method": "rpc.ping", "id": 1', "not valid JSON"),
        (b"\xff\xfe{}", "invalid UTF-8"),
        (b'{"jsonrpc": "2.0", "method": "rpc.\xc3\x28", "id": 1}', "invalid UTF-8"),
        (b'{"jsonrpc": "2.0", "method": "rpc.ping", "id": NaN}', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_parse_errors(http: httpx.Client, raw: bytes, reason: str) -> None:
    response = http.post("/", content=raw, headers=JSON)
    assert response.status_code == 200
    reply = response.json()
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "parse error", "data": {"reason": reason}},
        "id": None,
    }


def test_content_type_must_be_json(http: httpx.Client) -> None:
    response = http.post(
        "/", content=json.dumps(rpc("rpc.ping")), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == -32600


def test_other_http_methods_are_refused(http: httpx.Client) -> None:
    assert http.get("/").status_code == 405


def test_invalid_params_say_what_and_where(http: httpx.Client) -> None:
    err = error(http, "pool.Tools.add", [1, "two"])
    assert err["code"] == -32602
    assert err["data"]["where"] == "params[1]"
    assert err["data"]["expected"].startswith("int64")
    err = error(http, "pool.Tools.add", {"a": 1})
    assert err["code"] == -32602
    assert err["data"]["missing"] == ["b"]
    err = error(http, "pool.Tools.add", {"a": 1, "b": 2, "c": 3})
    assert err["data"]["unknown"] == ["c"]
    err = error(http, "pool.Tools.add", [1, 2, 3])
    assert err["data"]["given"] == 3
    err = error(http, "pool.Tools.randomWord", [-1])
    assert err["code"] == -32602
    assert "uint64" in err["data"]["expected"]


def test_method_not_found_names_the_method(http: httpx.Client) -> None:
    err = error(http, "pool.Tools.nope")
    assert err == {
        "code": -32601,
        "message": "method not found",
        "data": {"method": "pool.Tools.nope"},
    }


def test_websocket_only_methods_are_not_found_over_http(http: httpx.Client) -> None:
    err = error(http, "db.subscribe", ["default"])
    assert err["code"] == -32601
    assert err["data"]["reason"] == "only over ws"


def test_unserialisable_result_is_an_internal_error_not_a_500(http: httpx.Client) -> None:
    response = post(http, rpc("pool.Probe.opaque", id=9))
    assert response.status_code == 200
    reply = response.json()
    assert reply["id"] == 9
    assert reply["error"]["code"] == -32603
    assert "cannot be serialized" in reply["error"]["data"]["reason"]
    assert "Traceback" not in response.text


def test_pool_function_errors_hide_their_text(http: httpx.Client) -> None:
    response = post(http, rpc("pool.Probe.fail", ["secret detail"]))
    reply = response.json()
    assert reply["error"] == {"code": -32000, "message": "server error"}
    assert "secret detail" not in response.text and "ValueError" not in response.text


# --------------------------------------------------------------------------------------------
# Discovery and pools


def test_discover_returns_an_openrpc_document(http: httpx.Client) -> None:
    doc = call(http, "rpc.discover")
    assert doc["openrpc"].startswith("1.2")
    assert doc["info"]["title"] and doc["info"]["version"]
    methods = {m["name"]: m for m in doc["methods"]}
    defs = ge_definitions()
    for pool in defs.pools():
        prefix = "apool" if pool.attachment else "pool"
        for fn in pool.functions:
            assert f"{prefix}.{pool.name}.{fn}" in methods
    for name in (
        "rpc.discover", "rpc.ping", "db.list", "db.heads", "db.last", "db.header", "db.log",
        "db.keys", "db.has", "db.get", "db.commit", "db.merge", "db.enable", "db.disable",
        "db.reduce_heads", "db.blob.put", "db.blob.get", "db.blob.info", "db.subscribe",
        "db.unsubscribe", "events.subscribe", "events.unsubscribe", "admin.stats",
        "pool.Probe.wait", "auth",
    ):  # fmt: skip
        assert name in methods
    for m in doc["methods"]:
        assert isinstance(m["params"], list) and "schema" in m["result"] and m["summary"]
        assert m["x-permission"].split()[0] in ("read", "write", "admin")
        for p in m["params"]:
            assert set(p) >= {"name", "schema", "required"}
    add = methods["pool.Tools.add"]
    assert [p["name"] for p in add["params"]] == ["a", "b"]
    assert add["params"][0]["schema"]["type"] == "integer"
    new_vertex = methods["apool.ModelGraph.newVertex"]
    args = next(p for p in new_vertex["params"] if p["name"] == "args")["schema"]
    position = args["oneOf"][1]["properties"]["position"]
    assert position == {"$ref": "#/components/schemas/Graph.Position"}
    schemas = doc["components"]["schemas"]
    assert schemas["Graph.Position"]["properties"]["x"]["oneOf"][0] == {"type": "number"}
    _assert_refs_resolve(doc, schemas)


def _assert_refs_resolve(node: Any, schemas: dict[str, Any]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref is not None:
            assert ref.startswith("#/components/schemas/")
            assert ref.rsplit("/", 1)[1] in schemas
        for v in node.values():
            _assert_refs_resolve(v, schemas)
    elif isinstance(node, list):
        for v in node:
            _assert_refs_resolve(v, schemas)


def test_function_pool_calls_by_position_and_by_name(http: httpx.Client) -> None:
    assert call(http, "pool.Tools.add", [32, 10]) == 42
    assert call(http, "pool.Tools.add", {"b": 10, "a": 32}) == 42
    assert call(http, "pool.Tools.isEven", [4]) is True
    assert call(http, "pool.Tools.isGreater", [3, 2.5]) is True
    assert call(http, "pool.Tools.isGreater", [{"type": "string", "value": "a"}, "b"]) is False
    assert call(http, "pool.Tools.randomWord", {"size": 5}) == call(
        http, "pool.Tools.randomWord", [5]
    )


def test_any_values_cross_as_tagged_json(http: httpx.Client) -> None:
    assert call(http, "pool.Probe.echo", [None]) is None
    assert call(http, "pool.Probe.echo", [7]) == {"type": "int64", "value": 7}
    assert call(http, "pool.Probe.echo", ["x"]) == {"type": "string", "value": "x"}
    tagged = {"type": "Graph::Position", "value": {"x": 1.5, "y": -2}}
    assert call(http, "pool.Probe.echo", [tagged]) == {
        "type": "Graph::Position",
        "value": {"x": 1.5, "y": -2.0},
    }
    inf = {"type": "double", "value": "Infinity"}
    assert call(http, "pool.Probe.echo", [inf]) == inf
    err = error(http, "pool.Probe.echo", [{"type": "Graph::Position", "value": {"x": "a"}}])
    assert err["data"]["where"] == "params[0].value.x"
    err = error(http, "pool.Probe.echo", [{"type": "Graph::Nope", "value": 1}])
    assert err["data"]["where"] == "params[0].type"


# --------------------------------------------------------------------------------------------
# Databases


def test_db_list_describes_the_embedded_default_database(http: httpx.Client) -> None:
    (entry,) = call(http, "db.list")
    assert entry["name"] == "default" and entry["kind"] == "commit"
    uuid.UUID(entry["uuid"])


def _vertex_mutations(vertex: dict[str, str], x: float) -> list[dict[str, Any]]:
    return [
        {
            "op": "set",
            "attachment": "Graph::Vertex.render2DAttributes",
            "key": vertex,
            "value": {"position": {"x": x, "y": 2.0}},
        },
        {
            "op": "set",
            "attachment": "Graph::Vertex.visualAttributes",
            "key": vertex,
            "value": {"value": 7},
        },
    ]


def test_every_database_method(http: httpx.Client) -> None:
    db = "default"
    vertex = {"concept": "Graph::Vertex", "id": str(uuid.uuid4())}
    graph = graph_key()
    before = call(http, "db.last", [db])
    first = call(http, "db.commit", {"database": db, "base": before, "label": "first", "mutations": _vertex_mutations(vertex, 1.0)})  # fmt: skip
    assert call(http, "db.last", {"database": db}) == first
    header = call(http, "db.header", [db, first])
    assert header["commit"] == first and header["parent"] == before and header["label"] == "first"
    assert header["kind"] == "Mutations" and header["target"] is None
    assert first in call(http, "db.heads", [db])
    render = "Graph::Vertex.render2DAttributes"
    assert vertex in call(http, "db.keys", {"database": db, "attachment": render})
    assert call(
        http, "db.has", {"database": db, "commit": first, "attachment": render, "key": vertex}
    )
    doc = call(
        http, "db.get", {"database": db, "commit": "head", "attachment": render, "key": vertex}
    )
    assert doc == {"position": {"x": 1.0, "y": 2.0}}
    assert (
        call(http, "db.get", {"database": db, "attachment": "Graph::Graph.tags", "key": graph})
        is None
    )
    tags = {"op": "set", "attachment": "Graph::Graph.tags", "key": graph, "value": {"k": "v"}}
    mutations = [
        tags,
        {"op": "union_in_map", "attachment": "Graph::Graph.tags", "key": graph, "path": ".", "entries": {"a": "b"}},
        {"op": "update", "attachment": render, "key": vertex, "path": ".position.x", "value": 5},
        {"op": "set", "attachment": "Graph::Graph.comments", "key": graph, "value": []},
        {"op": "insert_in_xarray", "attachment": "Graph::Graph.comments", "key": graph, "path": ".", "before": "END", "value": "x"},
    ]  # fmt: skip
    # two branches on `first`, then merged
    left = call(http, "db.commit", {"database": db, "base": first, "label": "left", "mutations": mutations[:2]})  # fmt: skip
    right = call(http, "db.commit", {"database": db, "base": first, "label": "right", "mutations": mutations[2:]})  # fmt: skip
    assert {left, right} <= set(call(http, "db.heads", [db]))
    get = {"database": db, "commit": left, "attachment": "Graph::Graph.tags", "key": graph}
    assert call(http, "db.get", get) == {"a": "b", "k": "v"}
    merged = call(
        http, "db.merge", {"database": db, "parent": left, "target": right, "label": "merge"}
    )
    assert call(http, "db.header", [db, merged])["target"] == right
    assert call(http, "db.get", {**get, "commit": merged}) == {"a": "b", "k": "v"}
    pos = call(
        http, "db.get", {"database": db, "commit": merged, "attachment": render, "key": vertex}
    )
    assert pos["position"]["x"] == 5.0
    comments = call(
        http, "db.get", {**get, "commit": merged, "attachment": "Graph::Graph.comments"}
    )
    assert [c["value"] for c in comments] == ["x"]
    uuid.UUID(comments[0]["position"])
    disabled = call(
        http, "db.disable", {"database": db, "parent": merged, "commit": left, "label": "off"}
    )
    assert call(http, "db.get", {**get, "commit": disabled}) is None
    enabled = call(http, "db.enable", [db, disabled, left, "on"])
    assert call(http, "db.get", {**get, "commit": enabled}) == {"a": "b", "k": "v"}
    log = call(http, "db.log", {"database": db, "limit": 1000})
    seqs = [e["seq"] for e in log]
    assert seqs == sorted(seqs) and {first, left, right, merged, disabled, enabled} <= {
        e["commit"] for e in log
    }
    assert call(http, "db.log", {"database": db, "since": log[-1]["seq"]})[0]["commit"] == enabled
    side = call(http, "db.commit", {"database": db, "base": first, "mutations": [tags]})
    assert len(call(http, "db.heads", [db])) >= 2
    reduced = call(http, "db.reduce_heads", [db])
    assert reduced is not None and call(http, "db.heads", [db]) == [reduced]
    assert call(http, "db.reduce_heads", [db]) is None
    assert side in {e["commit"] for e in call(http, "db.log", {"database": db, "limit": 1000})}
    data = bytes(range(256)) * 3
    blob = call(http, "db.blob.put", {"database": db, "data": base64.b64encode(data).decode()})
    assert call(http, "db.blob.info", [db, blob]) == {
        "blob": blob,
        "layout": "uchar-1",
        "size": 768,
    }
    assert base64.b64decode(call(http, "db.blob.get", [db, blob])) == data
    part = call(http, "db.blob.get", {"database": db, "blob": blob, "offset": 10, "size": 5})
    assert base64.b64decode(part) == data[10:15]
    floats = call(
        http, "db.blob.put", {"database": db, "data": "AAAAAAAAAAAAAAAA", "layout": "float-2"}
    )
    assert call(http, "db.blob.info", [db, floats])["layout"] == "float-2"
    assert call(http, "db.blob.info", [db, ZERO]) is None


def test_engine_errors_keep_their_codes(http: httpx.Client) -> None:
    db = "default"
    err = error(http, "db.header", [db, "ab" * 32])
    assert err["code"] == -32131 and err["data"]["type"] == "UnknownCommitError"
    err = error(http, "db.blob.get", [db, "cd" * 32])
    assert err["code"] == -32132 and err["data"]["type"] == "MissingBlobError"
    vertex = {"concept": "Graph::Vertex", "id": str(uuid.uuid4())}
    bad = _vertex_mutations(vertex, 1.0)
    bad[0]["value"] = {"position": {"x": "left"}}
    err = error(http, "db.commit", {"database": db, "mutations": bad})
    assert err["code"] == -32602
    assert err["data"]["where"] == "params.mutations[0].value.position.x"
    update = {"op": "update", "attachment": "Graph::Vertex.render2DAttributes", "key": vertex, "path": ".nope", "value": 1}  # fmt: skip
    err = error(http, "db.commit", {"database": db, "mutations": [update]})
    assert err["code"] == -32110 and "params.mutations[0].path" in err["message"]
    unknown = {"op": "set", "attachment": "Graph::Nope.x", "key": vertex, "value": 1}
    assert error(http, "db.commit", {"database": db, "mutations": [unknown]})["code"] == -32130
    err = error(http, "db.commit", {"database": db, "base": "zz", "mutations": []})
    assert err["code"] == -32602 and err["data"]["where"] == "params.base"
    err = error(http, "db.keys", {"database": "nope", "attachment": "Graph::Graph.tags"})
    assert err["code"] == -32602 and err["data"]["where"] == "params.database"
    wrong_key = {"concept": "Graph::Edge", "id": str(uuid.uuid4())}
    err = error(
        http, "db.get", {"database": db, "attachment": "Graph::Graph.tags", "key": wrong_key}
    )
    assert err["code"] == -32602 and err["data"]["where"] == "params.key"
    err = error(http, "db.merge", [db, ZERO, ZERO])
    assert err["code"] == -32131


def test_attachment_pool_over_http_commits_with_the_clients_label(http: httpx.Client) -> None:
    db = "default"
    graph = graph_key()
    base = call(http, "db.last", [db])
    rect = {"x": 0, "y": 0, "w": 100, "h": 100}
    out = call(http, "apool.ModelGraph.randomGraph", {"database": db, "base": base, "label": "a random graph", "args": [graph, 5, 4, rect]})  # fmt: skip
    assert out["result"] is None
    header = call(http, "db.header", [db, out["commit"]])
    assert header["label"] == "a random graph" and header["parent"] == base
    topology = call(http, "db.get", {"database": db, "commit": out["commit"], "attachment": "Graph::Graph.topology", "key": graph})  # fmt: skip
    assert len(topology["vertexKeys"]) == 5 and len(topology["edgeKeys"]) == 4
    position = {"x": 3, "y": 4}
    made = call(http, "apool.ModelGraph.newVertex", {"database": db, "base": out["commit"], "args": {"graphKey": graph, "value": 9, "position": position}})  # fmt: skip
    assert made["result"]["concept"] == "Graph::Vertex"
    assert call(http, "db.header", [db, made["commit"]])["label"] == "apool.ModelGraph.newVertex"
    selected = call(http, "apool.ModelSelection.selectAllVertices", {"database": db, "base": made["commit"], "args": [graph]})  # fmt: skip
    read = call(http, "apool.ModelSelection.selectedVertices", {"database": db, "base": selected["commit"], "args": [graph]})  # fmt: skip
    assert read["commit"] is None  # a read-only function commits nothing
    assert made["result"] in read["result"] and len(read["result"]) == 6
    err = error(
        http, "apool.ModelGraph.newVertex", {"database": db, "args": [graph, 1, {"x": "a"}]}
    )
    assert err["code"] == -32602 and err["data"]["where"] == "params.args[2].x"
    err = error(http, "apool.ModelGraph.graphWithError", {"database": db, "args": [graph]})
    assert err["code"] == -32000
    err = error(http, "apool.ModelGraph.noArgs", {"args": []})
    assert err["code"] == -32602 and err["data"]["where"] == "params.database"
    err = error(http, "apool.ModelGraph.noArgs", {"database": db, "args": [], "lend": True})
    assert err["code"] == -32602  # lending needs a WebSocket


# --------------------------------------------------------------------------------------------
# Debug mode, timeouts, the embedded default, an upstream service


@pytest.fixture(scope="module")
def debug_gw(gateways: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateways("--debug", "--timeout", "1")


def test_debug_mode_shows_error_texts(debug_gw: GatewayProcess) -> None:
    with httpx.Client(base_url=debug_gw.url, timeout=30) as client:
        reply = post(client, rpc("pool.Probe.fail", ["the detail"])).json()
        assert reply["error"]["code"] == -32000
        assert reply["error"]["message"] == "server error: ValueError: the detail"
        assert reply["error"]["data"] == {"type": "ValueError"}


def test_timeout(debug_gw: GatewayProcess) -> None:
    with httpx.Client(base_url=debug_gw.url, timeout=30) as client:
        reply = post(client, rpc("pool.Probe.wait", ["never-released"])).json()
        assert reply["error"]["code"] == -32001
        assert reply["error"]["data"] == {"timeout_seconds": 1.0}
        post(client, rpc("pool.Probe.release", ["never-released"]))


def test_commitdb_gateway_alone_serves_an_embedded_database(
    gateways: Callable[..., GatewayProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    cwd = tmp_path_factory.mktemp("bare")
    bare = gateways(service=None, data_dir=False, cwd=cwd)
    with httpx.Client(base_url=bare.url, timeout=30) as client:
        assert call(client, "db.list")[0]["name"] == "default"
        health = client.get("/health").json()
        assert health["service"] == "graph-editor"
        graph = graph_key()
        out = call(client, "apool.ModelGraph.setGraphLabel", {"database": "default", "args": [graph, "hi"]})  # fmt: skip
        assert out["commit"]
    assert (cwd / "commitdb-gateway.cdb").is_dir()


def test_named_databases_are_created_and_served(
    gateways: Callable[..., GatewayProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("named")
    existing = directory / "existing.cdb"
    CommitDatabase.create(existing, ge_definitions(), documentation="made by the test").close()
    both = gateways(
        "--database", f"main={existing}", "--database", f"fresh={directory / 'fresh.cdb'}"
    )
    with httpx.Client(base_url=both.url, timeout=30) as client:
        listed = {d["name"]: d for d in call(client, "db.list")}
        assert set(listed) == {"main", "fresh"}
        assert listed["main"]["documentation"] == "made by the test"
        graph = graph_key()
        out = call(client, "apool.ModelGraph.setGraphTag", {"database": "fresh", "args": [graph, "k", "v"]})  # fmt: skip
        tags = call(client, "db.get", {"database": "fresh", "commit": out["commit"], "attachment": "Graph::Graph.tags", "key": graph})  # fmt: skip
        assert tags == {"k": "v"}


def test_upstream_service_over_the_native_protocol(upstream_gw: GatewayProcess) -> None:
    with httpx.Client(base_url=upstream_gw.url, timeout=30) as client:
        assert call(client, "pool.Tools.add", [2, 3]) == 5
        assert call(client, "pool.Tools.add", {"a": 2, "b": 3}) == 5
        assert client.get("/health").json()["service"] == "gateway-tests"
        graph = graph_key()
        out = call(client, "apool.ModelGraph.setGraphTag", {"database": "default", "label": "up", "args": [graph, "k", "v"]})  # fmt: skip
        assert call(client, "db.header", ["default", out["commit"]])["label"] == "up"
        tags = call(client, "db.get", {"database": "default", "attachment": "Graph::Graph.tags", "key": graph})  # fmt: skip
        assert tags == {"k": "v"}
        assert error(client, "pool.Probe.fail", ["x"]) == {
            "code": -32000,
            "message": "server error",
        }
        assert error(client, "db.header", ["default", "ab" * 32])["code"] == -32131
