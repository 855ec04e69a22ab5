"""The Python gateway clients against a real gateway process (see conftest.py).

HTTP: calls by position and by name, notifications, batches, the database methods, errors
mapped to their classes, timeouts, rate limiting with ``retry_after``, tokens. WebSocket:
calls, batches, notification handlers, commit subscriptions (a commit made over HTTP arrives
as a ``db.commit`` notification), authentication by header and by message, lending a local
``CommitMutableState`` to an ``apool`` call and committing it locally. The blocking facades.
And the generated method reference is checked against the live ``rpc.discover``.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from commitdb import CommitDatabase, CommitMutableState, Key
from commitdb.errors import CommitError, UnknownCommitError
from rpc.examples.graph import ge_definitions
from rpc.gateway_client import (
    BlockingGatewayClient,
    BlockingGatewayWebSocket,
    Call,
    CommitEvent,
    EngineError,
    Forbidden,
    GatewayClient,
    GatewayWebSocket,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    Notification,
    ParseError,
    RateLimited,
    RetryPolicy,
    ServerError,
    Timeout,
    TransportError,
    Unauthorized,
)
from rpc.gateway_client.http import result_of
from tests.rpc.gateway_clients.conftest import REPO, Gateway, make_ge_database, start_gateway

pytestmark = pytest.mark.anyio

DEFS = ge_definitions()
TAGS = "Graph::Graph.tags"
TOPOLOGY = "Graph::Graph.topology"


def new_graph() -> Key:
    """A fresh graph key."""
    return DEFS.check_attachment(TOPOLOGY).create_key()


def graph_key() -> dict[str, str]:
    """A fresh graph key in its JSON form."""
    return {"concept": "Graph::Graph", "id": str(uuid.uuid4())}


async def commit_tags(gw: GatewayClient, tags: dict[str, str], key: Any = None) -> str:
    """Commit a tags document on ``main``; returns the commit id."""
    commit = await gw.call(
        "db.commit",
        {
            "database": "main",
            "base": "head",
            "label": "tags",
            "mutations": [
                {"op": "set", "attachment": TAGS, "key": key or graph_key(), "value": tags}
            ],
        },
    )
    assert isinstance(commit, str) and len(commit) == 64
    return commit


# --------------------------------------------------------------------------------------------
# HTTP


async def test_calls_by_position_and_by_name(gateway: Gateway) -> None:
    async with GatewayClient(gateway.url) as gw:
        assert await gw.call("rpc.ping") == "pong"
        assert await gw.call("pool.Tools.add", [40, 2]) == 42
        assert await gw.call("pool.Tools.add", {"a": 1, "b": 2}) == 3
        assert await gw.call("pool.Tools.isEven", [7]) is False
        assert await gw.call("pool.Tools.isGreater", [3, 2.5]) is True
        doc = await gw.call("rpc.discover")
        names = {m["name"] for m in doc["methods"]}
        assert {"pool.Tools.add", "db.get", "db.commit", "apool.ModelGraph.newVertex"} <= names
        assert gw.retry_log == []


async def test_notifications_get_no_reply(gateway: Gateway) -> None:
    async with GatewayClient(gateway.url) as gw:
        assert await gw.notify("pool.Tools.add", [1, 2]) is None
        assert await gw.notify("no.such.method") is None  # errors are not reported either
        assert await gw.call("rpc.ping") == "pong"


async def test_batches_line_up_with_their_items(gateway: Gateway) -> None:
    async with GatewayClient(gateway.url) as gw:
        out = await gw.batch(
            [
                Call("pool.Tools.add", [1, 2]),
                Notification("rpc.ping"),
                ("pool.Tools.isEven", [4]),
                Call("no.such.method"),
                Call("pool.Tools.add", [1, "x"]),
            ]
        )
        assert out[0] == 3 and out[1] is None and out[2] is True
        assert isinstance(out[3], MethodNotFound)
        assert isinstance(out[4], InvalidParams)
        assert await gw.batch([Notification("rpc.ping"), Notification("rpc.ping")]) == [None, None]
        many = await gw.batch([Call("pool.Tools.add", [i, i]) for i in range(100)])
        assert many == [2 * i for i in range(100)]


async def test_database_methods(gateway: Gateway) -> None:
    async with GatewayClient(gateway.url) as gw:
        listed = await gw.call("db.list")
        assert "main" in [d["name"] for d in listed]
        key = graph_key()
        commit = await commit_tags(gw, {"owner": "python"}, key)
        assert await gw.call("db.last", {"database": "main"}) == commit
        assert commit in await gw.call("db.heads", ["main"])
        header = await gw.call("db.header", {"database": "main", "commit": commit})
        assert header["commit"] == commit and header["label"] == "tags"
        args = {"database": "main", "commit": commit, "attachment": TAGS, "key": key}
        assert await gw.call("db.get", args) == {"owner": "python"}
        assert await gw.call("db.has", args) is True
        keys = await gw.call("db.keys", {"database": "main", "commit": "head", "attachment": TAGS})
        assert key in keys
        log = await gw.call("db.log", {"database": "main", "limit": 1000})
        assert log[-1]["commit"] == commit
        blob = await gw.call(
            "db.blob.put", {"database": "main", "data": base64.b64encode(b"hello").decode()}
        )
        assert (
            base64.b64decode(await gw.call("db.blob.get", {"database": "main", "blob": blob}))
            == b"hello"
        )
        info = await gw.call("db.blob.info", {"database": "main", "blob": blob})
        assert info["size"] == 5


async def test_apool_over_http_commits_on_the_gateway(gateway: Gateway) -> None:
    async with GatewayClient(gateway.url) as gw:
        g = graph_key()
        out = await gw.call(
            "apool.ModelGraph.newVertex",
            {
                "database": "main",
                "base": "head",
                "label": "a vertex",
                "args": [g, 10, {"x": 1.0, "y": 2.0}],
            },
        )
        assert len(out["commit"]) == 64
        vertex = out["result"]
        topo = await gw.call(
            "db.get",
            {"database": "main", "commit": out["commit"], "attachment": TOPOLOGY, "key": g},
        )
        assert vertex in topo["vertexKeys"]


async def test_errors_map_to_their_classes(gateway: Gateway) -> None:
    async with GatewayClient(gateway.url) as gw:
        with pytest.raises(MethodNotFound) as not_found:
            await gw.call("pool.Tools.nope", [])
        assert not_found.value.code == -32601
        with pytest.raises(InvalidParams) as invalid:
            await gw.call("pool.Tools.add", [1, "two"])
        assert invalid.value.where is not None and "1" in invalid.value.where
        with pytest.raises(InvalidParams):
            await gw.call("pool.Tools.add", [1, 2, 3])
        with pytest.raises(EngineError) as engine:
            await gw.call("db.header", {"database": "main", "commit": "0" * 64})
        assert engine.value.code == -32131
        assert isinstance(engine.value.as_engine_error(), UnknownCommitError)
        # the client only sends valid requests: check the other codes with raw bodies
        raw = gw._http
        parse = (await raw.post(gw.url, content=b"{not json")).json()
        with pytest.raises(ParseError):
            result_of(parse, None)
        bad_id = (
            await raw.post(gw.url, json={"jsonrpc": "2.0", "method": "rpc.ping", "id": {}})
        ).json()
        with pytest.raises(InvalidRequest):
            result_of(bad_id, None)
        empty = (await raw.post(gw.url, json=[])).json()
        with pytest.raises(InvalidRequest):
            result_of(empty, None)


async def test_pool_failures_and_server_timeouts(lab_gateway: Gateway) -> None:
    async with GatewayClient(lab_gateway.url, retries=0) as gw:
        with pytest.raises(ServerError) as failed:
            await gw.call("pool.Lab.fail", ["boom"])
        assert "boom" in failed.value.message  # the gateway runs with --debug
        with pytest.raises(Timeout) as server_side:
            await gw.call("pool.Lab.sleep", [5])
        assert not server_side.value.client_side
        with pytest.raises(Timeout) as client_side:
            await gw.call("pool.Lab.sleep", [0.9], timeout=0.2)
        assert client_side.value.client_side
        assert await gw.call("pool.Lab.add", [2, 3]) == 5


async def test_client_timeout_is_retried_for_reads_only(lab_gateway: Gateway) -> None:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    policy = RetryPolicy(retries=2, backoff=0.01)
    async with GatewayClient(lab_gateway.url, policy=policy, sleep=record, timeout=0.2) as gw:
        with pytest.raises(Timeout):
            await gw.call("pool.Lab.sleep", [0.9])
        assert len(delays) == 2
        with pytest.raises(Timeout):
            await gw.call("pool.Lab.sleep", [0.9], idempotent=False)
        assert len(delays) == 2


async def _burst(gw: GatewayClient, n: int) -> list[Any]:
    """`n` concurrent pings; their results or RateLimited errors."""
    out: list[Any] = []

    async def one() -> None:
        try:
            out.append(await gw.call("rpc.ping"))
        except RateLimited as exc:
            out.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return out


async def test_rate_limited_calls_wait_retry_after(limited_gateway: Gateway) -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        await anyio.sleep(seconds)

    async with GatewayClient(limited_gateway.url, retries=0) as strict:
        refused = [r for r in await _burst(strict, 8) if isinstance(r, RateLimited)]
    assert refused, "8 concurrent calls against a bucket of 2"
    assert all(r.retry_after is not None and 0 < r.retry_after <= 0.2 for r in refused)
    async with GatewayClient(limited_gateway.url, retries=10, sleep=sleep) as patient:
        assert await _burst(patient, 6) == ["pong"] * 6
    assert waited, "the bucket (2) must have run dry"
    assert all(
        d >= e.retry_after
        for (_, d, e) in patient.retry_log
        if isinstance(e, RateLimited) and e.retry_after is not None
    )


async def test_tokens_and_permissions(secured_gateway: Gateway) -> None:
    url = secured_gateway.url
    async with GatewayClient(url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.call("rpc.ping")
    async with GatewayClient(url, token="wrong") as wrong:
        with pytest.raises(Unauthorized):
            await wrong.call("rpc.ping")
    async with GatewayClient(url, token="reader") as reader:
        assert await reader.call("pool.Tools.add", [1, 1]) == 2
        with pytest.raises(Forbidden):
            await commit_tags(reader, {"a": "b"})
        with pytest.raises(Forbidden):
            await reader.call("admin.stats")
    async with GatewayClient(url, token="writer") as writer:
        await commit_tags(writer, {"a": "b"})
    async with GatewayClient(url, token="boss") as boss:
        assert isinstance(await boss.call("admin.stats"), dict)


async def test_health(gateway: Gateway) -> None:
    async with GatewayClient(gateway.url) as gw:
        health = await gw.health()
        assert health["status"] == "ok"
        assert "main" in str(health["databases"])
        metrics = await gw.metrics()
        assert "# TYPE" in metrics


# --------------------------------------------------------------------------------------------
# WebSocket


async def test_ws_calls_notifications_and_batches(gateway: Gateway) -> None:
    async with GatewayWebSocket(gateway.ws_url) as ws:
        assert await ws.call("pool.Tools.add", [2, 3]) == 5
        assert await ws.call("pool.Tools.add", {"a": 2, "b": 2}) == 4
        await ws.notify("rpc.ping")
        out = await ws.batch(
            [
                Call("rpc.ping"),
                Notification("rpc.ping"),
                Call("pool.Tools.nope"),
                ("pool.Tools.isEven", [2]),
            ]
        )
        assert (
            out[0] == "pong"
            and out[1] is None
            and isinstance(out[2], MethodNotFound)
            and out[3] is True
        )
        with pytest.raises(InvalidParams):
            await ws.call("pool.Tools.add", [1])
        results = []
        async with anyio.create_task_group() as tg:  # concurrent calls on one connection

            async def one(i: int) -> None:
                results.append((i, await ws.call("pool.Tools.add", [i, 1])))

            for i in range(20):
                tg.start_soon(one, i)
        assert sorted(results) == [(i, i + 1) for i in range(20)]


async def test_ws_accepts_an_http_url(gateway: Gateway) -> None:
    async with GatewayWebSocket(gateway.url) as ws:
        assert await ws.call("rpc.ping") == "pong"


async def test_commit_over_http_arrives_as_a_notification(gateway: Gateway) -> None:
    seen_sync: list[Any] = []
    seen_async: list[Any] = []

    async def async_handler(params: Any) -> None:
        await anyio.sleep(0)
        seen_async.append(params)

    async with GatewayWebSocket(gateway.ws_url) as ws, GatewayClient(gateway.url) as http:
        ws.on_notification("db.commit", seen_sync.append)
        remove = ws.on_notification("db.commit", async_handler)
        async with ws.subscribe_commits("main") as commits:
            commit = await commit_tags(http, {"via": "http"})
            event = await commits.next(timeout=10)
            assert isinstance(event, CommitEvent)
            assert event.database == "main" and event.commit == commit
            assert event.header["label"] == "tags"
            second = await commit_tags(http, {"via": "http", "n": "2"})
            async for later in commits:
                assert later.commit == second
                break
        remove()
        assert [p["header"]["commit"] for p in seen_sync] == [commit, second]
        assert [p["header"]["commit"] for p in seen_async] == [commit, second]
        # after unsubscribing, commits no longer arrive (checked with a ping round trip)
        await commit_tags(http, {"via": "http", "n": "3"})
        assert await ws.call("rpc.ping") == "pong"
        assert len(seen_sync) == 2


async def test_ws_tokens_by_header_and_by_message(secured_gateway: Gateway) -> None:
    async with GatewayWebSocket(secured_gateway.ws_url, token="reader") as by_header:
        assert await by_header.call("rpc.ping") == "pong"
    async with GatewayWebSocket(secured_gateway.ws_url, token="writer", auth="message") as by_msg:
        assert await by_msg.call("pool.Tools.add", [1, 2]) == 3
    with pytest.raises(Unauthorized) as by_message:
        async with GatewayWebSocket(secured_gateway.ws_url, token="nope", auth="message"):
            pass
    assert by_message.value.code == -32003
    with pytest.raises(Unauthorized):  # the upgrade is refused with a JSON-RPC error body
        async with GatewayWebSocket(secured_gateway.ws_url, token="nope"):
            pass
    async with GatewayWebSocket(secured_gateway.ws_url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.call("rpc.ping")
    async with GatewayWebSocket(secured_gateway.ws_url, token="reader") as reader:
        with pytest.raises(Forbidden):
            await reader.call("admin.stats")


async def test_connection_loss_fails_calls_and_ends_subscriptions(tmp_path: Path) -> None:
    doomed = start_gateway({"main": make_ge_database(tmp_path / "doomed.cdb")})
    try:
        async with GatewayWebSocket(doomed.ws_url, timeout=30) as ws:
            async with ws.subscribe_commits("main") as commits:
                assert await ws.call("rpc.ping") == "pong"
                doomed.proc.kill()  # abrupt: no close frame
                doomed.proc.wait(timeout=15)
                with pytest.raises(TransportError):
                    await commits.next(timeout=30)
                with pytest.raises(TransportError):
                    await ws.call("rpc.ping")
                assert ws.closed
    finally:
        doomed.stop()


# --------------------------------------------------------------------------------------------
# Lending


@pytest.fixture
def local_db(tmp_path: Path) -> Iterator[CommitDatabase]:
    db = CommitDatabase.create(tmp_path / "local.cdb", DEFS)
    yield db
    db.close()


async def test_lend_a_local_state_and_commit_locally(
    gateway: Gateway, local_db: CommitDatabase
) -> None:
    graph = new_graph()
    ms = CommitMutableState(local_db.initial_state())
    async with GatewayWebSocket(gateway.ws_url) as ws:
        vertex = await ws.call(
            "apool.ModelGraph.newVertex", [graph, 10, {"x": 1.5, "y": -2.0}], lend=ms
        )
        assert set(vertex) == {"concept", "id"}
        other = await ws.call(
            "apool.ModelGraph.newVertex", {"args": [graph, 20, {"x": 0.0, "y": 0.0}]}, lend=ms
        )
        edge = await ws.call("apool.ModelGraph.newEdge", [graph, vertex, other], lend=ms)
        assert set(edge) == {"concept", "id"}
    commit = local_db.commit_mutations("two vertices and an edge, computed on the gateway", ms)
    state = local_db.state(commit)
    topo = state.get(TOPOLOGY, graph)
    assert {str(v.id) for v in topo.vertexKeys} == {vertex["id"], other["id"]}
    assert {str(e.id) for e in topo.edgeKeys} == {edge["id"]}


async def test_lend_reports_mutation_failures(gateway: Gateway, local_db: CommitDatabase) -> None:
    ms = CommitMutableState(local_db.initial_state())
    local_db.commit_mutations("seal it", ms)  # a sealed state refuses every mutation
    graph = new_graph()
    async with GatewayWebSocket(gateway.ws_url) as ws:
        with pytest.raises(EngineError) as refused:
            await ws.call("apool.ModelGraph.newVertex", [graph, 1, {"x": 0, "y": 0}], lend=ms)
        assert refused.value.code == -32151
        assert isinstance(refused.value.as_engine_error(), CommitError)
        assert await ws.call("rpc.ping") == "pong"


async def test_lend_answers_reads_from_the_local_state(
    gateway: Gateway, local_db: CommitDatabase
) -> None:
    graph = new_graph()
    ms = CommitMutableState(local_db.initial_state())
    rect = {"x": 0, "y": 0, "w": 100, "h": 100}
    async with GatewayWebSocket(gateway.ws_url) as ws:
        async with ws.lend(ms) as lender:
            await ws.call(
                "apool.ModelGraph.randomGraph", {"lend": True, "args": [graph, 5, 4, rect]}
            )
        assert lender.applied > 0
        # selectAll reads the topology the previous call wrote (only in the local state)
        async with ws.lend(ms) as reading:
            await ws.call("apool.ModelSelection.selectAll", {"lend": True, "args": [graph]})
        assert reading.answered > 0
        selected = await ws.call("apool.ModelSelection.selectedVertices", [graph], lend=ms)
    topo = ms.get(TOPOLOGY, graph)
    selection = ms.get("Graph::Graph.selection", graph)
    assert len(topo.vertexKeys) == 5 and len(topo.edgeKeys) == 4
    assert selection.vertexKeys == topo.vertexKeys and selection.edgeKeys == topo.edgeKeys
    assert sorted(k["id"] for k in selected) == sorted(str(v.id) for v in topo.vertexKeys)
    commit = local_db.commit_mutations("random graph, all selected", ms)
    assert local_db.state(commit).get(TOPOLOGY, graph) == topo


# --------------------------------------------------------------------------------------------
# Blocking facades


def test_blocking_facades(gateway: Gateway, tmp_path: Path) -> None:
    with BlockingGatewayClient(gateway.url) as http, BlockingGatewayWebSocket(gateway.ws_url) as ws:
        assert http.call("pool.Tools.add", [1, 2]) == 3
        assert http.batch([("rpc.ping", None), Call("pool.Tools.add", [2, 2])]) == ["pong", 4]
        http.notify("rpc.ping")
        assert ws.call("pool.Tools.add", [5, 5]) == 10
        assert ws.batch([Call("rpc.ping")]) == ["pong"]
        seen: list[Any] = []
        remove = ws.on_notification("db.commit", seen.append)
        with ws.subscribe_commits("main") as commits:
            key = graph_key()
            commit = http.call(
                "db.commit",
                {
                    "database": "main",
                    "label": "blocking",
                    "mutations": [
                        {"op": "set", "attachment": TAGS, "key": key, "value": {"k": "v"}}
                    ],
                },
            )
            event = commits.next(timeout=10)
            assert event.commit == commit
        remove()
        db = CommitDatabase.create(tmp_path / "blocking.cdb", DEFS)
        try:
            ms = CommitMutableState(db.initial_state())
            graph = new_graph()
            with ws.lend(ms) as lender:
                ws.call(
                    "apool.ModelGraph.newVertex",
                    {"lend": True, "args": [graph, 3, {"x": 0, "y": 0}]},
                )
            assert lender.applied > 0
            local = db.commit_mutations("blocking lend", ms)
            assert len(db.state(local).get(TOPOLOGY, graph).vertexKeys) == 1
        finally:
            db.close()


# --------------------------------------------------------------------------------------------
# The generated method reference


def test_methods_reference_is_up_to_date(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "gateway-methods.md"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "gen_gateway_methods.py"),
            gateway.url,
            "-o",
            str(out),
        ],
        check=True,
        cwd=REPO,
        timeout=120,
    )
    committed = (REPO / "docs" / "gateway-methods.md").read_text(encoding="utf-8")
    generated = out.read_text(encoding="utf-8")
    assert generated == committed, (
        "docs/gateway-methods.md is out of date: run "
        "`.venv/bin/python scripts/gen_gateway_methods.py URL -o docs/gateway-methods.md` "
        "against the reference gateway (tests/rpc/gateway_clients/conftest.py)"
    )
    assert "### `pool.Tools.add`" in generated


def test_raw_http_is_json_rpc_even_on_errors(gateway: Gateway) -> None:
    with httpx.Client() as raw:
        json_type = {"Content-Type": "application/json"}
        for body in (b"\xff\xfe", b'{"a": \xc3\x28}', b"[1,"):
            reply = raw.post(gateway.url + "/", content=body, headers=json_type).json()
            assert reply["error"]["code"] == -32700 and reply["id"] is None
            with pytest.raises(ParseError):
                result_of(reply, None)
