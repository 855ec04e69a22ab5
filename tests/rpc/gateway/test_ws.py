"""JSON-RPC 2.0 over WebSocket against a real gateway: concurrency, lending, subscriptions."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from commitdb import CommitDatabase, CommitMutableState
from commitdb.types import Attachment
from rpc.examples.graph import ge_definitions, make_ge_pools
from rpc.json_values import to_json
from tests.rpc.gateway.conftest import GatewayProcess, StateLender, rpc, ws_call

DEFS = ge_definitions()


@contextmanager
def ws_client(gw: GatewayProcess, **kwargs: Any) -> Iterator[ClientConnection]:
    with connect(gw.ws_url, open_timeout=30, **kwargs) as ws:
        yield ws


def recv(ws: ClientConnection) -> Any:
    return json.loads(ws.recv(timeout=30))


def http_call(gw: GatewayProcess, method: str, params: Any) -> Any:
    reply = httpx.post(gw.url, json=rpc(method, params), timeout=30).json()
    assert "error" not in reply, reply
    return reply["result"]


def new_graph() -> dict[str, str]:
    return {"concept": "Graph::Graph", "id": str(uuid.uuid4())}


# --------------------------------------------------------------------------------------------
# Calls


def test_calls_batches_and_errors_over_websocket(gw: GatewayProcess) -> None:
    with ws_client(gw) as ws:
        assert ws_call(ws, "pool.Tools.add", [40, 2], id="a") == {
            "jsonrpc": "2.0",
            "result": 42,
            "id": "a",
        }
        ws.send(json.dumps([rpc("pool.Tools.add", [1, 1], id=1), rpc("rpc.ping", id=2), {"jsonrpc": "2.0", "method": "rpc.ping"}]))  # fmt: skip
        replies = recv(ws)
        assert sorted((r["id"], r["result"]) for r in replies) == [(1, 2), (2, "pong")]
        ws.send("not json")
        assert recv(ws)["error"]["code"] == -32700
        ws.send(b"\xff\xfe")
        assert recv(ws)["error"] == {
            "code": -32700,
            "message": "parse error",
            "data": {"reason": "invalid UTF-8"},
        }
        ws.send("[]")
        assert recv(ws)["error"]["code"] == -32600
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "nope"}))  # a notification: no reply
        assert ws_call(ws, "rpc.ping", id=3)["result"] == "pong"
        held = {"database": "default", "label": "over ws", "args": [new_graph(), "k", "v"]}
        out = ws_call(ws, "apool.ModelGraph.setGraphTag", held, id=4)["result"]
        assert (
            ws_call(ws, "db.header", ["default", out["commit"]], id=5)["result"]["label"]
            == "over ws"
        )


def test_a_slow_call_does_not_block_a_fast_one(gw: GatewayProcess) -> None:
    with ws_client(gw) as ws:
        ws.send(json.dumps(rpc("pool.Probe.wait", ["ws-slow"], id=1)))
        ws.send(json.dumps(rpc("pool.Tools.add", [2, 3], id=2)))
        first = recv(ws)
        assert first == {"jsonrpc": "2.0", "result": 5, "id": 2}  # the slow one is still waiting
        ws.send(json.dumps(rpc("pool.Probe.release", ["ws-slow"], id=3)))
        rest = {r["id"]: r["result"] for r in (recv(ws), recv(ws))}
        assert rest == {1: "ws-slow released", 3: True}


def test_ids_are_scoped_per_connection(gw: GatewayProcess) -> None:
    with ws_client(gw) as a, ws_client(gw) as b:
        a.send(json.dumps(rpc("pool.Probe.wait", ["scoped"], id=7)))
        assert ws_call(b, "pool.Tools.add", [1, 2], id=7)["result"] == 3
        b.send(json.dumps(rpc("pool.Probe.release", ["scoped"], id=7)))
        assert recv(b) == {"jsonrpc": "2.0", "result": True, "id": 7}
        assert recv(a) == {"jsonrpc": "2.0", "result": "scoped released", "id": 7}


def test_service_events(gw: GatewayProcess) -> None:
    with ws_client(gw) as ws:
        assert ws_call(ws, "events.subscribe", ["calls"])["result"] is True
        assert ws_call(ws, "events.subscribe", ["connections"], id=2)["result"] is True
        err = ws_call(ws, "events.subscribe", ["nope"], id=3)["error"]
        assert err["code"] == -32602 and err["data"]["where"] == "params[0]"
        with ws_client(gw):
            pass
        http_call(gw, "pool.Tools.add", [1, 2])
        seen: dict[str, list[Any]] = {"events.calls": [], "events.connections": []}
        for _ in range(100):
            message = recv(ws)
            seen[message["method"]].append(message["params"])
            calls = [c for c in seen["events.calls"] if c["method"] == "pool.Tools.add"]
            if calls and len(seen["events.connections"]) >= 2:
                break
        assert calls[0]["outcome"] == "ok" and calls[0]["duration_ms"] >= 0
        assert [c["event"] for c in seen["events.connections"][:2]] == ["open", "close"]
        assert ws_call(ws, "events.unsubscribe", {"topic": "calls"}, id=4)["result"] is True


# --------------------------------------------------------------------------------------------
# Lending


def _attachments() -> list[Attachment]:
    return DEFS.attachments()


def _documents(state: Any) -> dict[str, Any]:
    return {
        att.identifier: {str(k.id): to_json(d, att.document_type) for k, d in state.enumerate(att)}
        for att in _attachments()
    }


@pytest.fixture
def graph_base(gw: GatewayProcess) -> Iterator[tuple[CommitDatabase, Any, dict[str, str]]]:
    """A random graph committed through HTTP; the database opened by this process."""
    graph = new_graph()
    rect = {"x": 0, "y": 0, "w": 10, "h": 10}
    params = {"database": "default", "args": [graph, 6, 5, rect]}
    out = http_call(gw, "apool.ModelGraph.randomGraph", params)
    db = CommitDatabase.open(gw.database_path())
    try:
        yield db, db.state(bytes.fromhex(out["commit"])), graph
    finally:
        db.close()


def test_lending_mirrors_a_local_run(
    gw: GatewayProcess, graph_base: tuple[CommitDatabase, Any, dict[str, str]]
) -> None:
    db, base, graph = graph_base
    defs = db.definitions()
    graph_key = DEFS.check_attachment("Graph::Graph.topology").key_type.create_key(graph["id"])
    lent, local = CommitMutableState(base), CommitMutableState(base)
    _, pools = make_ge_pools(DEFS)
    funcs = {p.name: p for p in pools}
    vertex_keys = sorted(local.get("Graph::Graph.topology", graph_key).vertexKeys)
    offset = {"x": 1.5, "y": -2}
    calls: list[tuple[str, str, list[Any], list[Any]]] = [
        ("ModelGraph", "setGraphTag", [graph, "colour", "blue"], [graph_key, "colour", "blue"]),
        ("ModelGraph", "setGraphLabel", [graph, "lent"], [graph_key, "lent"]),
        ("ModelGraph", "randomTag", [graph], [graph_key]),
        ("ModelSelection", "selectAll", [graph], [graph_key]),
        ("ModelSelection", "incrementVertexValue", [graph, 10], [graph_key, 10]),
        (
            "ModelGraph",
            "moveVertices",
            [[to_json(k, _vertex_key_type()) for k in vertex_keys], offset],
            [set(vertex_keys), {"x": 1.5, "y": -2.0}],
        ),  # fmt: skip
        ("ModelSelection", "selectedVertices", [graph], [graph_key]),
        (
            "ModelGraph",
            "unsetGraphTags",
            {"graphKey": graph, "keys": ["colour"]},
            [graph_key, {"colour"}],
        ),  # fmt: skip
    ]
    lender = StateLender(lent, defs)
    last_before = http_call(gw, "db.last", ["default"])
    with ws_client(gw) as ws:
        for i, (pool, name, json_args, args) in enumerate(calls):
            fn = funcs[pool].check(name)
            request = rpc(f"apool.{pool}.{name}", {"lend": True, "args": json_args}, id=i)
            reply = lender.serve(ws, request)
            expected = fn(local, *(_typed(fn, args)))
            assert reply["result"] == to_json(expected, fn.prototype.return_type), name
    assert _documents(lent) == _documents(local)
    assert lender.requests.count("state.flush") >= 1
    assert {"state.get", "state.has"} <= set(lender.requests)
    assert {"state.set", "state.union_in_map", "state.update", "state.union_in_set"} <= set(
        lender.notifications
    )
    assert http_call(gw, "db.last", ["default"]) == last_before  # lending commits nothing


def _vertex_key_type() -> Any:
    return DEFS.check_attachment("Graph::Vertex.visualAttributes").key_type


def _typed(fn: Any, args: list[Any]) -> list[Any]:
    return [p.type.check(a) for p, a in zip(fn.prototype.parameters, args, strict=True)]


def test_server_requests_have_prefixed_ids_and_mutations_are_flushed_before_reads(
    gw: GatewayProcess,
) -> None:
    """A dict-based client state: documents kept as JSON, only set/has/get/keys answered."""
    graph = new_graph()
    docs: dict[tuple[str, str], Any] = {}
    order: list[str] = []
    with ws_client(gw) as ws:
        ws.send(json.dumps(rpc("apool.ModelGraph.setGraphLabel", {"lend": True, "args": [graph, "dict"]}, id="call")))  # fmt: skip
        for _ in range(100):
            message = recv(ws)
            if message.get("id") == "call":
                reply = message
                break
            order.append(message["method"])
            params = message["params"]
            where = (params.get("attachment", ""), json.dumps(params.get("key"), sort_keys=True))
            if message["method"] == "state.set":
                docs[where] = params["value"]
                continue
            assert message["id"].startswith("s:")
            if message["method"] == "state.has":
                result: Any = where in docs
            elif message["method"] == "state.get":
                result = docs.get(where)
            else:
                result = None
            ws.send(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}))
    assert reply["result"] is None
    assert order == ["state.has", "state.set", "state.flush"]
    (((att, key), doc),) = docs.items()
    assert att == "Graph::Graph.description" and json.loads(key) == graph
    assert doc == {"name": "dict", "author": "", "createDate": ""}


def test_lending_errors(gw: GatewayProcess) -> None:
    graph = new_graph()
    with ws_client(gw) as ws:
        # the client answers a read with an error: the call fails with it
        ws.send(
            json.dumps(rpc("apool.ModelSelection.selectAll", {"lend": True, "args": [graph]}, id=1))
        )
        request = recv(ws)
        assert request["method"] == "state.get"
        ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -31999, "message": "no state here"}}))  # fmt: skip
        assert recv(ws)["error"] == {"code": -31999, "message": "no state here"}
        # a document that does not fit its type is an invalid params error saying where
        ws.send(
            json.dumps(rpc("apool.ModelSelection.selectAll", {"lend": True, "args": [graph]}, id=2))
        )
        request = recv(ws)
        bad = {"vertexKeys": [{"concept": "Graph::Vertex", "id": "x"}], "edgeKeys": []}
        ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": bad}))
        err = recv(ws)["error"]
        assert err["code"] == -32602
        assert err["data"]["where"] == "state.get(Graph::Graph.topology) result.vertexKeys[0].id"
        # a function that fails after mutating: the client keeps the mutations, like locally
        lender = StateLender(_empty_state(), DEFS)
        reply = lender.serve(
            ws, rpc("apool.ModelGraph.graphWithError", {"lend": True, "args": [graph]}, id=3)
        )
        assert reply["error"] == {"code": -32000, "message": "server error"}
        key = DEFS.check_attachment("Graph::Graph.topology").key_type.create_key(graph["id"])
        topology = lender.state.get("Graph::Graph.topology", key)
        assert len(topology.vertexKeys) == 2 and len(topology.edgeKeys) == 1


def _empty_state() -> CommitMutableState:
    return CommitMutableState(CommitDatabase.create_in_memory(DEFS).initial_state())


def test_lending_through_an_upstream_service(upstream_gw: GatewayProcess) -> None:
    graph = new_graph()
    key = DEFS.check_attachment("Graph::Graph.tags").key_type.create_key(graph["id"])
    lender = StateLender(_empty_state(), DEFS)
    with ws_client(upstream_gw) as ws:
        reply = lender.serve(
            ws, rpc("apool.ModelGraph.setGraphTag", {"lend": True, "args": [graph, "k", "v"]})
        )
        assert reply == {"jsonrpc": "2.0", "result": None, "id": 1}
        assert lender.state.get("Graph::Graph.tags", key) == {"k": "v"}
        reply = lender.serve(
            ws, rpc("apool.ModelGraph.setGraphTag", {"lend": True, "args": [graph, "a", "b"]}, id=2)
        )
        assert lender.state.get("Graph::Graph.tags", key) == {"a": "b", "k": "v"}


# --------------------------------------------------------------------------------------------
# Subscriptions


def _commit_body(label: str) -> dict[str, Any]:
    graph = new_graph()
    mutation = {"op": "set", "attachment": "Graph::Graph.tags", "key": graph, "value": {"l": label}}
    return {"database": "default", "label": label, "mutations": [mutation]}


def _commit_directly(path: Any, label: str) -> str:
    """Commit in this process, writing the database file directly (not through the gateway)."""
    db = CommitDatabase.open(path)
    try:
        ms = CommitMutableState(db.state(db.last_commit_id()))
        tags = db.definitions().check_attachment("Graph::Graph.tags")
        ms.set(tags, tags.create_key(), {"l": label})
        return db.commit_mutations(label, ms).hex()
    finally:
        db.close()


def test_subscribers_hear_of_commits_from_every_writer(gw: GatewayProcess) -> None:
    with ws_client(gw) as ws, ws_client(gw) as other:
        assert ws_call(ws, "db.subscribe", ["default"])["result"] is True
        assert (
            ws_call(ws, "db.subscribe", {"database": "default"}, id=2)["result"] is True
        )  # twice: one
        assert ws_call(other, "db.subscribe", ["default"])["result"] is True
        assert ws_call(other, "db.unsubscribe", ["default"], id=2)["result"] is True
        via_http = http_call(gw, "db.commit", _commit_body("via http"))
        ws.send(json.dumps(rpc("db.commit", _commit_body("via ws"), id=3)))
        direct = _commit_directly(gw.database_path(), "direct")
        announced: dict[str, dict[str, Any]] = {}
        via_ws = None
        for _ in range(100):
            message = recv(ws)
            if message.get("id") == 3:
                via_ws = message["result"]
            else:
                assert (
                    message["method"] == "db.commit" and message["params"]["database"] == "default"
                )
                header = message["params"]["header"]
                assert header["commit"] not in announced  # once each
                announced[header["commit"]] = header
            if via_ws is not None and {via_http, via_ws, direct} <= set(announced):
                break
        assert announced[via_http]["label"] == "via http"
        assert announced[via_ws]["label"] == "via ws"
        assert announced[direct]["label"] == "direct" and announced[direct]["kind"] == "Mutations"
        # the unsubscribed client heard of none of them (its queue is FIFO: they would come
        # before the reply to a call made now)
        other.send(json.dumps(rpc("rpc.ping", id=9)))
        for _ in range(100):
            message = recv(other)
            if message.get("id") == 9:
                break
            assert message["params"]["header"]["commit"] not in {via_http, via_ws, direct}
        assert message == {"jsonrpc": "2.0", "result": "pong", "id": 9}
        err = ws_call(ws, "db.subscribe", ["nope"], id=4)["error"]
        assert err["code"] == -32602


@pytest.fixture(scope="module")
def small_queue_gw(gateways: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateways("--queue-size", "2")


def test_a_client_that_does_not_read_is_told_how_many_events_it_missed(
    small_queue_gw: GatewayProcess,
) -> None:
    total = 48
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", small_queue_gw.port))
    with connect(
        small_queue_gw.ws_url, sock=sock, max_queue=1, max_size=None, open_timeout=30
    ) as ws:
        assert ws_call(ws, "db.subscribe", ["default"])["result"] is True
        path = small_queue_gw.database_path()
        db = CommitDatabase.open(path)
        try:
            tags = db.definitions().check_attachment("Graph::Graph.tags")
            for i in range(total):  # big labels fill the socket buffers: the client reads nothing
                ms = CommitMutableState(db.state(db.last_commit_id()))
                ms.set(tags, tags.create_key(), {"i": str(i)})
                db.commit_mutations(f"{i:03d}" + "x" * 65536, ms)
        finally:
            db.close()
        delivered: list[str] = []
        missed: list[int] = []
        for _ in range(total * 2):
            message = recv(ws)
            if message["method"] == "db.missed":
                assert message["params"]["database"] == "default"
                missed.append(message["params"]["missed"])
            else:
                delivered.append(message["params"]["header"]["label"][:3])
            if len(delivered) + sum(missed) == total:
                break
        assert missed and all(n > 0 for n in missed)
        assert len(delivered) + sum(missed) == total
        assert delivered == sorted(delivered)  # in commit order
