"""Security and limits against real gateways: TLS, mutual TLS, tokens, rate, size, audit."""

from __future__ import annotations

import json
import socket
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.rpc.gateway.conftest import PKI, GatewayProcess, make_pki, rpc, ws_call

READER, WRITER, ADMIN = "reader-7f3a9c", "writer-b81d44", "admin-e02c5a"
TOKENS = (f"{READER}:read", f"{WRITER}:read-write", f"{ADMIN}:admin")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(gw: GatewayProcess, body: Any, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": "application/json", **(bearer(token) if token else {})}
    return httpx.post(gw.url, content=json.dumps(body), headers=headers, timeout=30, **kwargs)


def commit_params() -> dict[str, Any]:
    key = {"concept": "Graph::Graph", "id": str(uuid.uuid4())}
    mutation = {"op": "set", "attachment": "Graph::Graph.tags", "key": key, "value": {}}
    return {"database": "default", "label": "secure", "mutations": [mutation]}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_gw(gateways: Callable[..., GatewayProcess]) -> GatewayProcess:
    options = [o for t in TOKENS for o in ("--token", t)]
    return gateways(*options, "--max-request-bytes", "4096", "--protect-metrics")


# --------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def tls_gw(gateways: Callable[..., GatewayProcess], pki: PKI) -> GatewayProcess:
    return gateways(
        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), scheme="https"
    )


@pytest.fixture(scope="module")
def mtls_gw(gateways: Callable[..., GatewayProcess], pki: PKI) -> GatewayProcess:
    tls = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    return gateways(*tls, "--client-ca", str(pki.ca), scheme="https")


def test_tls_serves_https_and_wss(tls_gw: GatewayProcess, pki: PKI) -> None:
    assert tls_gw.url.startswith("https://")
    with httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca)), timeout=30) as client:
        assert client.post(tls_gw.url, json=rpc("rpc.ping")).json()["result"] == "pong"
    context = ssl.create_default_context(cafile=str(pki.ca))
    with connect(tls_gw.ws_url, ssl=context, open_timeout=30) as ws:
        assert ws_call(ws, "pool.Tools.add", [1, 2])["result"] == 3
    with pytest.raises(httpx.ConnectError):  # the server's certificate is checked
        httpx.get(tls_gw.url + "health", timeout=30)


def _client_context(pki: PKI, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _refused_at_tls_layer(gw: GatewayProcess, context: ssl.SSLContext) -> bool:
    """Handshake, send a request; True if no HTTP byte ever comes back."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return tls.recv(1024) == b""
        except (ssl.SSLError, ConnectionError):
            return True


def test_mutual_tls_is_enforced(mtls_gw: GatewayProcess, pki: PKI) -> None:
    good = _client_context(pki, pki.client_cert, pki.client_key)
    with httpx.Client(verify=good, timeout=30) as client:
        assert client.post(mtls_gw.url, json=rpc("rpc.ping")).json()["result"] == "pong"
    with connect(mtls_gw.ws_url, ssl=good, open_timeout=30) as ws:
        assert ws_call(ws, "rpc.ping")["result"] == "pong"
    no_cert = _client_context(pki, None, None)
    rogue = _client_context(pki, pki.rogue_cert, pki.rogue_key)
    for context in (no_cert, rogue):
        assert _refused_at_tls_layer(mtls_gw, context)
        with (
            httpx.Client(verify=context, timeout=30) as client,
            pytest.raises(httpx.TransportError),
        ):
            client.get(mtls_gw.url + "health")


# --------------------------------------------------------------------------------------------
# Tokens and permissions


def test_http_needs_a_valid_bearer_token(secure_gw: GatewayProcess) -> None:
    for token in (None, "not-a-token"):
        response = post(secure_gw, rpc("rpc.ping"), token)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == -32003
    response = httpx.post(
        secure_gw.url, json=rpc("rpc.ping"), headers={"Authorization": f"Basic {READER}"}
    )
    assert response.status_code == 401


def test_permissions_by_token(secure_gw: GatewayProcess) -> None:
    def outcome(method: str, params: Any, token: str) -> Any:
        reply = post(secure_gw, rpc(method, params), token).json()
        return reply.get("result", reply.get("error"))

    graph = {"concept": "Graph::Graph", "id": str(uuid.uuid4())}
    apool = {"database": "default", "args": [graph, "k", "v"]}
    assert isinstance(outcome("db.heads", ["default"], READER), list)
    assert outcome("pool.Tools.add", [1, 2], READER) == 3
    denied = outcome("db.commit", commit_params(), READER)
    assert denied == {"code": -32004, "message": "forbidden", "data": {"required": "read-write", "granted": "read"}}  # fmt: skip
    assert outcome("apool.ModelGraph.setGraphTag", apool, READER)["code"] == -32004
    assert outcome("admin.stats", None, READER)["code"] == -32004
    assert len(outcome("db.commit", commit_params(), WRITER)) == 64
    assert outcome("apool.ModelGraph.setGraphTag", apool, WRITER)["commit"]
    assert outcome("admin.stats", None, WRITER)["code"] == -32004
    stats = outcome("admin.stats", None, ADMIN)
    assert stats["methods"]["db.commit"]["errors"] >= 1
    assert len(outcome("db.commit", commit_params(), ADMIN)) == 64


def test_websocket_header_token(secure_gw: GatewayProcess) -> None:
    with connect(secure_gw.ws_url, additional_headers=bearer(READER), open_timeout=30) as ws:
        assert ws_call(ws, "rpc.ping")["result"] == "pong"
        assert ws_call(ws, "db.commit", commit_params(), id=2)["error"]["code"] == -32004
    with pytest.raises(InvalidStatus) as refused:
        connect(secure_gw.ws_url, additional_headers=bearer("wrong"), open_timeout=30)
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body or b"{}")["error"]["code"] == -32003


def test_websocket_first_message_auth(secure_gw: GatewayProcess) -> None:
    with connect(secure_gw.ws_url, open_timeout=30) as ws:
        assert ws_call(ws, "rpc.ping")["error"]["code"] == -32003
        assert ws_call(ws, "auth", {"token": "nope"}, id=2)["error"]["code"] == -32003
        assert ws_call(ws, "auth", [WRITER], id=3)["result"] == {"permission": "read-write"}
        assert len(ws_call(ws, "db.commit", commit_params(), id=4)["result"]) == 64
        assert ws_call(ws, "admin.stats", id=5)["error"]["code"] == -32004
    with connect(secure_gw.ws_url, open_timeout=30) as ws:  # auth, then a call at once
        ws.send(json.dumps(rpc("auth", {"token": READER}, id=1)))
        ws.send(json.dumps(rpc("rpc.ping", id=2)))
        replies = {r["id"]: r for r in (json.loads(ws.recv(timeout=30)) for _ in range(2))}
        assert replies[1]["result"] == {"permission": "read"} and replies[2]["result"] == "pong"
    assert post(secure_gw, rpc("auth", [READER]), READER).json()["error"]["code"] == -32601


def test_health_and_metrics_protected_on_request(secure_gw: GatewayProcess) -> None:
    for route in ("health", "metrics"):
        assert httpx.get(secure_gw.url + route, timeout=30).status_code == 401
        assert (
            httpx.get(secure_gw.url + route, headers=bearer(READER), timeout=30).status_code == 200
        )


# --------------------------------------------------------------------------------------------
# Limits


def test_maximum_request_size(secure_gw: GatewayProcess) -> None:
    big = rpc("pool.Tools.randomWord", ["x" * 5000])
    response = post(secure_gw, big, READER)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == -32600 and error["data"]["max_bytes"] == 4096

    def chunks() -> Any:  # no Content-Length: the body is counted as it arrives
        for _ in range(10):
            yield b" " * 1000

    headers = {"Content-Type": "application/json", **bearer(READER)}
    streamed = httpx.post(secure_gw.url, content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413
    assert post(secure_gw, rpc("rpc.ping"), READER).json()["result"] == "pong"
    with connect(secure_gw.ws_url, additional_headers=bearer(READER), open_timeout=30) as ws:
        ws.send(json.dumps(big))
        reply = json.loads(ws.recv(timeout=30))
        assert reply["error"]["code"] == -32600 and reply["id"] is None
        assert ws_call(ws, "rpc.ping", id=2)["result"] == "pong"  # the session goes on


@pytest.fixture(scope="module")
def limited_gw(gateways: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateways(
        "--token", "alpha:read", "--token", "beta:read", "--rate", "0.2", "--burst", "2"
    )


def test_rate_limit_per_client(limited_gw: GatewayProcess) -> None:
    batch = [rpc("rpc.ping", id=i) for i in range(4)]
    replies = sorted(post(limited_gw, batch, "alpha").json(), key=lambda r: r["id"])
    ok = [r for r in replies if "result" in r]
    limited = [r["error"] for r in replies if "error" in r]
    assert len(ok) == 2 and len(limited) == 2
    assert all(e["code"] == -32002 and e["data"]["retry_after"] > 0 for e in limited)
    assert post(limited_gw, rpc("rpc.ping"), "beta").json()["result"] == "pong"  # its own bucket
    with connect(limited_gw.ws_url, additional_headers=bearer("alpha"), open_timeout=30) as ws:
        assert ws_call(ws, "rpc.ping")["error"]["code"] == -32002


# --------------------------------------------------------------------------------------------
# Audit


def test_audit_log_lines_never_show_secrets(secure_gw: GatewayProcess) -> None:
    post(secure_gw, rpc("pool.Tools.add", [1, 2]), WRITER)
    post(secure_gw, rpc("db.commit", commit_params()), READER)
    post(secure_gw, rpc("rpc.ping"), "bad-token-123")
    with connect(secure_gw.ws_url, open_timeout=30) as ws:
        ws_call(ws, "auth", {"token": ADMIN})
    lines = secure_gw.audit_lines()
    fields = [dict(f.split("=", 1) for f in line.split(" ") if "=" in f) for line in lines]
    add = [f for f in fields if f["method"] == "pool.Tools.add" and f["principal"] == "token#2"]
    assert add and add[-1]["outcome"] == "ok" and add[-1]["transport"] == "http"
    assert add[-1]["client"].startswith("127.0.0.1:") and float(add[-1]["duration_ms"]) >= 0
    assert any(f["method"] == "db.commit" and f["outcome"] == "error:-32004" for f in fields)
    assert any(f["method"] == "-" and f["outcome"] == "error:-32003" for f in fields)
    assert any(f["method"] == "auth" and f["transport"] == "ws" for f in fields)
    everything = secure_gw.audit.read_text() + secure_gw.log.read_text()
    for secret in (READER, WRITER, ADMIN, "bad-token-123"):
        assert secret not in everything
