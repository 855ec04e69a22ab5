"""``/health``, ``/metrics`` and ``admin.stats`` of a fresh gateway; the metrics renderer."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import httpx
import pytest
from websockets.sync.client import connect

from rpc.gateway.metrics import BUCKETS, Metrics
from tests.rpc.gateway.conftest import GatewayProcess, rpc, ws_call

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Parse the exposition text (checking every line's syntax)."""
    out = []
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        m = SAMPLE.match(line)
        assert m is not None, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m["labels"] or ""))
        value = m["value"]
        out.append((m["name"], labels, math.inf if value == "+Inf" else float(value)))
    return out


def value(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    matches = [
        v for n, ls, v in found if n == name and all(ls.get(k) == x for k, x in labels.items())
    ]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


@pytest.fixture(scope="module")
def fresh_gw(gateways: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateways()


def wait_for_sessions(gw: GatewayProcess, count: int) -> None:
    """Sessions end on the server shortly after the client closed (bounded wait)."""
    for _ in range(1000):
        if httpx.get(gw.url + "health", timeout=30).json()["websocket_clients"] == count:
            return
    raise AssertionError(f"never {count} WebSocket sessions")


def test_health_reports_service_clients_pending_uptime_databases(fresh_gw: GatewayProcess) -> None:
    with connect(fresh_gw.ws_url, open_timeout=30) as ws:
        ws.send(json.dumps(rpc("pool.Probe.wait", ["health"], id=1)))
        wait_for_sessions(fresh_gw, 1)
        health = httpx.get(fresh_gw.url + "health", timeout=30).json()
        assert health["status"] == "ok"
        assert health["service"] == "gateway-tests"
        assert health["websocket_clients"] == 1
        assert health["uptime_seconds"] > 0
        (db,) = health["databases"]
        assert db["name"] == "default" and db["kind"] == "commit" and db["commits"] >= 0
        for _ in range(1000):  # the waiting call shows as pending once it started (bounded)
            if httpx.get(fresh_gw.url + "health", timeout=30).json()["pending_requests"] >= 1:
                break
        else:
            raise AssertionError("the waiting call never showed as pending")
        assert ws_call(ws, "pool.Probe.release", ["health"], id=2)["result"] is True
        assert json.loads(ws.recv(timeout=30)) == {
            "jsonrpc": "2.0",
            "result": "health released",
            "id": 1,
        }


def test_metrics_count_requests_errors_latency_connections_and_queues(
    fresh_gw: GatewayProcess,
) -> None:
    url = fresh_gw.url
    for params in ([1, 2], [3, 4], [5, "x"]):
        httpx.post(url, json=rpc("pool.Tools.add", params), timeout=30)
    httpx.post(url, json=rpc("no.such.method"), timeout=30)
    httpx.post(url, content=b"{", headers={"Content-Type": "application/json"}, timeout=30)
    graph = {"concept": "Graph::Graph", "id": "3f0c2b56-1f4b-4b0e-9b59-6d4f0f8c1a11"}
    with connect(fresh_gw.ws_url, open_timeout=30) as ws:
        assert ws_call(ws, "rpc.ping")["result"] == "pong"
        wait_for_sessions(fresh_gw, 1)  # the previous test's session is gone
        ws.send(
            json.dumps(rpc("apool.ModelSelection.selectAll", {"lend": True, "args": [graph]}, id=2))
        )
        request = json.loads(ws.recv(timeout=30))  # the gateway now waits for this client
        assert request["method"] == "state.get"
        response = httpx.get(url + "metrics", timeout=30)
        ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": None}))
        for _ in range(100):
            message = json.loads(ws.recv(timeout=30))
            if message.get("id") == request["id"] or message.get("id") == 2:
                break
            if "id" in message:
                ws.send(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": None}))
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    prefix = "commitdb_gateway_"
    assert value(found, prefix + "requests_total", method="pool.Tools.add", transport="http") == 3
    assert value(found, prefix + "requests_total", method="rpc.ping", transport="ws") == 1
    assert value(found, prefix + "errors_total", method="pool.Tools.add", code="-32602") == 1
    assert value(found, prefix + "errors_total", method="(unknown)", code="-32601") == 1
    assert value(found, prefix + "errors_total", method="(invalid)", code="-32700") == 1
    buckets = [
        (ls["le"], v)
        for n, ls, v in found
        if n == prefix + "request_duration_seconds_bucket" and ls["method"] == "pool.Tools.add"
    ]
    assert [b for b, _ in buckets] == [*(_le(b) for b in BUCKETS), "+Inf"]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 3
    assert value(found, prefix + "request_duration_seconds_count", method="pool.Tools.add") == 3
    assert value(found, prefix + "request_duration_seconds_sum", method="pool.Tools.add") >= 0
    assert value(found, prefix + "open_connections", transport="ws") == 1
    assert value(found, prefix + "open_connections", transport="http") == 1  # this request
    assert value(found, prefix + "queue_depth", queue="server_requests") == 1
    assert value(found, prefix + "queue_depth", queue="notifications") == 0
    assert value(found, prefix + "pending_requests") == 1  # the lending call
    assert value(found, prefix + "uptime_seconds") > 0
    stats = httpx.post(url, json=rpc("admin.stats"), timeout=30).json()["result"]
    add = stats["methods"]["pool.Tools.add"]
    assert add["calls"] == 3 and add["errors"] == 1
    assert 0 <= add["p50_ms"] <= add["p95_ms"] <= add["p99_ms"]


def _le(bound: float) -> str:
    return str(int(bound)) if bound.is_integer() else repr(bound)


def test_histogram_quantiles_interpolate_like_promql() -> None:
    metrics = Metrics()
    for seconds in (0.002, 0.002, 0.003, 0.004, 0.2):
        metrics.observe("m", "http", seconds, None)
    stats = metrics.snapshot()["methods"]["m"]
    assert stats["p50_ms"] == 3.125  # rank 2.5 of 5: halfway into the (2.5 ms, 5 ms] bucket
    assert 100.0 < stats["p99_ms"] <= 250.0
    metrics.observe("m", "ws", 100.0, -32001)  # beyond the last bucket: its lower bound
    assert metrics.snapshot()["methods"]["m"]["p99_ms"] == 30_000.0


def test_metrics_text_escapes_label_values() -> None:
    metrics = Metrics()
    metrics.observe('we"ird\\name\n', "http", 0.01, -32000)
    text = metrics.render({"q": 2})
    assert 'method="we\\"ird\\\\name\\n"' in text
    found = samples(text)
    assert value(found, "commitdb_gateway_queue_depth", queue="q") == 2
