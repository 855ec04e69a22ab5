"""Retry, backoff, timeouts and the circuit breaker of the gateway clients.

The client logic is driven against a stand-in JSON-RPC server written here (Starlette under
uvicorn, in a thread of the test process, on a free port) whose methods fail a chosen number
of times in a chosen way; delays are recorded by an injected ``sleep`` and the breaker runs on
an injected clock, so no assertion depends on elapsed time.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rpc.gateway_client import (
    BlockingGatewayClient,
    BreakerState,
    Call,
    CircuitBreaker,
    CircuitOpenError,
    EngineError,
    Forbidden,
    GatewayClient,
    HTTPStatusError,
    InternalError,
    InvalidParams,
    InvalidRequest,
    JsonRpcError,
    MethodNotFound,
    Notification,
    ParseError,
    ProtocolViolation,
    RateLimited,
    RetryPolicy,
    ServerError,
    Timeout,
    TransportError,
    Unauthorized,
    error_from_json,
    is_idempotent,
)
from rpc.gateway_client.resilience import call_with_resilience, counts_as_failure, is_transient

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------------------------
# The stand-in server


@dataclass
class Script:
    """What the stand-in does: per method, how many calls fail and how."""

    failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)
    notified: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, times: int, how: str) -> None:
        with self.lock:
            self.failures[method] = (times, how)
            self.attempts[method] = 0

    def take(self, method: str) -> str | None:
        """Count an attempt; the failure mode if this attempt must fail."""
        with self.lock:
            self.attempts[method] += 1
            times, how = self.failures.get(method, (0, ""))
            return how if self.attempts[method] <= times else None


def _error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


async def _answer(script: Script, req: dict[str, Any]) -> dict[str, Any] | Response | None:
    method = req["method"]
    id_ = req.get("id")
    how = script.take(method)
    if "id" not in req:
        script.notified.append(method)
        return None
    if how == "http503":
        return PlainTextResponse("upstream unavailable", status_code=503)
    if how == "http404":
        return PlainTextResponse("no such route", status_code=404)
    if how == "timeout":
        return _error(id_, -32001, "request timed out")
    if how == "rate":
        return _error(id_, -32002, "rate limited", {"retry_after": 0.75})
    if how == "internal":
        return _error(id_, -32603, "internal error")
    if how == "slow":
        await anyio.sleep(3)
    if how == "garbage":
        return PlainTextResponse("<html>oops</html>", status_code=200)
    if method == "pool.Err.invalid":
        return _error(id_, -32602, "bad", {"expected": "int64", "given": "str", "where": "a"})
    if method == "pool.Err.engine":
        return _error(id_, -32131, "unknown commit", {"type": "UnknownCommitError"})
    return {"jsonrpc": "2.0", "result": {"method": method, "params": req.get("params")}, "id": id_}


def make_standin(script: Script) -> Starlette:
    """A minimal JSON-RPC 2.0 endpoint on ``POST /`` following the gateway's conventions."""

    async def endpoint(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(_error(None, -32700, "parse error"))
        if isinstance(body, list):
            replies = []
            for member in body:
                r = await _answer(script, member)
                if isinstance(r, Response):
                    return r
                if r is not None:
                    replies.append(r)
            return JSONResponse(list(reversed(replies))) if replies else Response(status_code=204)
        reply = await _answer(script, body)
        if isinstance(reply, Response):
            return reply
        return Response(status_code=204) if reply is None else JSONResponse(reply)

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


@dataclass
class StandIn:
    """A running stand-in server."""

    url: str
    script: Script


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """Start the stand-in on a free port; stopped at teardown."""
    script = Script()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_standin(script),
        log_level="error",
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: at most ~10 s
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.02)
    assert server.started, "the stand-in server did not start"
    try:
        yield StandIn(f"http://127.0.0.1:{port}", script)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture
def closed_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Sleeps:
    """An injected sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class FakeClock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(url: str, sleeps: Sleeps, **kwargs: Any) -> GatewayClient:
    policy = RetryPolicy(
        retries=kwargs.pop("retries", 3), backoff=0.1, jitter=0.5, rng=random.Random(7)
    )
    return GatewayClient(url, policy=policy, sleep=sleeps, **kwargs)


# --------------------------------------------------------------------------------------------
# Retries


@pytest.mark.parametrize("how", ["http503", "timeout", "rate"])
async def test_idempotent_call_is_retried_with_backoff(standin: StandIn, how: str) -> None:
    sleeps = Sleeps()
    standin.script.fail("pool.Tools.add", 2, how)
    async with client(standin.url, sleeps) as gw:
        result = await gw.call("pool.Tools.add", [1, 2])
        assert result == {"method": "pool.Tools.add", "params": [1, 2]}
        assert standin.script.attempts["pool.Tools.add"] == 3
        assert [n for n, _, _ in gw.retry_log] == [1, 2]
    assert len(sleeps.delays) == 2
    if how == "rate":  # never sooner than retry_after
        assert all(d >= 0.75 for d in sleeps.delays)
    else:  # exponential with jitter in [base/2, base]
        assert 0.05 <= sleeps.delays[0] <= 0.1
        assert 0.1 <= sleeps.delays[1] <= 0.2


async def test_retries_stop_after_the_limit(standin: StandIn) -> None:
    sleeps = Sleeps()
    standin.script.fail("db.get", 10, "timeout")
    async with client(standin.url, sleeps, retries=2) as gw:
        with pytest.raises(Timeout) as info:
            await gw.call("db.get", {"database": "main"})
    assert not info.value.client_side
    assert standin.script.attempts["db.get"] == 3
    assert len(sleeps.delays) == 2


async def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(retries=10, backoff=0.1, max_backoff=1.0, jitter=0.0)
    assert [policy.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    jittered = RetryPolicy(retries=10, backoff=0.1, jitter=0.5, rng=random.Random(1))
    for n in range(6):
        d = jittered.delay(n)
        assert jittered.base_delay(n) / 2 <= d <= jittered.base_delay(n)
    rate = RateLimited(-32002, "slow down", {"retry_after": 3})
    assert policy.delay(0, rate) == 3.0
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


async def test_writes_are_never_retried(standin: StandIn) -> None:
    sleeps = Sleeps()
    standin.script.fail("db.commit", 1, "http503")
    async with client(standin.url, sleeps) as gw:
        with pytest.raises(HTTPStatusError) as info:
            await gw.call("db.commit", {"database": "main", "mutations": []})
        assert info.value.status == 503
        assert standin.script.attempts["db.commit"] == 1
        # ... unless the caller says the call is idempotent
        standin.script.fail("db.commit", 1, "http503")
        await gw.call("db.commit", {"database": "main", "mutations": []}, idempotent=True)
        assert standin.script.attempts["db.commit"] == 2
        # ... and a read the caller marks as not idempotent is sent once
        standin.script.fail("db.get", 1, "timeout")
        with pytest.raises(Timeout):
            await gw.call("db.get", {}, idempotent=False)
        assert standin.script.attempts["db.get"] == 1
    assert sleeps.delays == [pytest.approx(sleeps.delays[0])]


@pytest.mark.parametrize(
    ("method", "error"), [("pool.Err.invalid", InvalidParams), ("pool.Err.engine", EngineError)]
)
async def test_other_errors_are_not_retried(
    standin: StandIn, method: str, error: type[JsonRpcError]
) -> None:
    sleeps = Sleeps()
    async with client(standin.url, sleeps) as gw:
        with pytest.raises(error):
            await gw.call(method, [1])
        assert gw.breaker.state is BreakerState.CLOSED
        assert gw.breaker.consecutive_failures == 0
    assert standin.script.attempts[method] == 1
    assert sleeps.delays == []


async def test_non_transient_http_status_is_not_retried(standin: StandIn) -> None:
    sleeps = Sleeps()
    standin.script.fail("rpc.ping", 1, "http404")
    async with client(standin.url, sleeps) as gw:
        with pytest.raises(HTTPStatusError) as info:
            await gw.call("rpc.ping")
    assert info.value.status == 404 and not info.value.transient
    assert standin.script.attempts["rpc.ping"] == 1


async def test_a_reply_that_is_not_json_rpc_is_a_protocol_violation(standin: StandIn) -> None:
    standin.script.fail("rpc.ping", 1, "garbage")
    async with client(standin.url, Sleeps()) as gw:
        with pytest.raises(ProtocolViolation):
            await gw.call("rpc.ping")
        assert gw.breaker.consecutive_failures == 1


async def test_client_side_timeout_then_retry(standin: StandIn) -> None:
    sleeps = Sleeps()
    standin.script.fail("pool.Tools.add", 1, "slow")
    async with client(standin.url, sleeps, timeout=0.3) as gw:
        assert (await gw.call("pool.Tools.add", [2, 2]))["params"] == [2, 2]
        (_, _, error) = gw.retry_log[0]
        assert isinstance(error, Timeout) and error.client_side
        standin.script.fail("db.commit", 1, "slow")
        with pytest.raises(Timeout) as info:
            await gw.call("db.commit", {}, timeout=0.3)
        assert info.value.client_side
        assert info.value.code == -32001
    assert standin.script.attempts["db.commit"] == 1


async def test_batches_retry_only_when_every_member_is_idempotent(standin: StandIn) -> None:
    sleeps = Sleeps()
    async with client(standin.url, sleeps) as gw:
        standin.script.fail("rpc.ping", 1, "http503")
        out = await gw.batch([Call("rpc.ping"), ("db.heads", {"database": "x"})])
        assert [o["method"] for o in out] == ["rpc.ping", "db.heads"]
        assert standin.script.attempts["rpc.ping"] == 2
        standin.script.fail("rpc.ping", 1, "http503")
        with pytest.raises(HTTPStatusError):
            await gw.batch([Call("rpc.ping"), Call("db.commit", {})])
        assert standin.script.attempts["rpc.ping"] == 1
        out = await gw.batch([Notification("rpc.ping"), Call("pool.Err.invalid", [])])
        assert out[0] is None and isinstance(out[1], InvalidParams)
        assert await gw.batch([Notification("rpc.ping")]) == [None]
        with pytest.raises(ValueError):
            await gw.batch([])


async def test_notifications_are_sent_once(standin: StandIn) -> None:
    async with client(standin.url, Sleeps()) as gw:
        await gw.notify("pool.Tools.add", [1, 2])
    assert standin.script.notified == ["pool.Tools.add"]


# --------------------------------------------------------------------------------------------
# Circuit breaker


async def test_breaker_opens_after_consecutive_failures(closed_url: str) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=5.0, clock=clock)
    sleeps = Sleeps()
    async with client(closed_url, sleeps, retries=0, breaker=breaker) as gw:
        for _ in range(3):
            with pytest.raises(TransportError):
                await gw.call("rpc.ping")
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError) as info:
            await gw.call("rpc.ping")
        assert info.value.retry_in == pytest.approx(5.0)
        clock.now += 2
        with pytest.raises(CircuitOpenError) as info:
            await gw.call("rpc.ping")
        assert info.value.retry_in == pytest.approx(3.0)
    assert breaker.transitions == [(BreakerState.CLOSED, BreakerState.OPEN)]


async def test_breaker_half_opens_and_closes_on_success(standin: StandIn, closed_url: str) -> None:
    clock = FakeClock()
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        failure_threshold=2,
        reset_timeout=10.0,
        clock=clock,
        on_change=lambda a, b: changes.append((a, b)),
    )
    async with client(closed_url, Sleeps(), retries=0, breaker=breaker) as down:
        for _ in range(2):
            with pytest.raises(TransportError):
                await down.call("rpc.ping")
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    # the trial fails: open again for another reset_timeout
    async with client(closed_url, Sleeps(), retries=0, breaker=breaker) as down:
        with pytest.raises(TransportError):
            await down.call("rpc.ping")
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    # the gateway is back (same breaker, shared by a client of the live server)
    async with client(standin.url, Sleeps(), retries=0, breaker=breaker) as up:
        assert (await up.call("rpc.ping"))["method"] == "rpc.ping"
        assert breaker.state is BreakerState.CLOSED
        assert (await up.call("rpc.ping"))["method"] == "rpc.ping"
    assert changes == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


async def test_half_open_admits_a_limited_number_of_trials() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1
    breaker.before_call()  # the one trial
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    assert info.value.retry_in == 0.0
    breaker.release()  # the trial was cancelled: its slot is free again
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.before_call()
    breaker.reset()
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


async def test_breaker_during_retries_stops_them(closed_url: str) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=60)
    sleeps = Sleeps()
    async with client(closed_url, sleeps, retries=5, breaker=breaker) as gw:
        with pytest.raises(CircuitOpenError) as info:
            await gw.call("rpc.ping")
    assert isinstance(info.value.__cause__, TransportError)
    assert len(sleeps.delays) == 2  # two attempts failed, the third was refused


async def test_a_json_rpc_error_resets_the_failure_count(standin: StandIn) -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    async with client(standin.url, Sleeps(), retries=0, breaker=breaker) as gw:
        standin.script.fail("rpc.ping", 1, "internal")
        with pytest.raises(InternalError):
            await gw.call("rpc.ping")
        assert breaker.consecutive_failures == 1
        with pytest.raises(InvalidParams):
            await gw.call("pool.Err.invalid", [])
        assert breaker.consecutive_failures == 0
        standin.script.fail("rpc.ping", 1, "rate")
        with pytest.raises(RateLimited) as info:
            await gw.call("rpc.ping")
        assert info.value.retry_after == 0.75
        assert breaker.state is BreakerState.CLOSED


async def test_cancelled_attempt_frees_the_trial_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1
    started = anyio.Event()

    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:

        async def run() -> None:
            await call_with_resilience(
                hang, idempotent=True, policy=RetryPolicy(), breaker=breaker, timeout=None
            )

        tg.start_soon(run)
        await started.wait()
        with pytest.raises(CircuitOpenError):
            breaker.before_call()
        tg.cancel_scope.cancel()
    breaker.before_call()  # the slot was released by the cancellation


# --------------------------------------------------------------------------------------------
# Errors and classification


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (-32700, ParseError),
        (-32600, InvalidRequest),
        (-32601, MethodNotFound),
        (-32602, InvalidParams),
        (-32603, InternalError),
        (-32000, ServerError),
        (-32050, ServerError),
        (-32001, Timeout),
        (-32002, RateLimited),
        (-32003, Unauthorized),
        (-32004, Forbidden),
        (-32100, EngineError),
        (-32131, EngineError),
        (-32199, EngineError),
        (-1, JsonRpcError),
        (-32200, JsonRpcError),
    ],
)
def test_error_classes_map_codes(code: int, cls: type[JsonRpcError]) -> None:
    err = error_from_json({"code": code, "message": "m", "data": {"type": "X"}})
    assert type(err) is cls
    assert (err.code, err.message, err.data) == (code, "m", {"type": "X"})
    assert err.to_json() == {"code": code, "message": "m", "data": {"type": "X"}}


def test_error_details() -> None:
    from commitdb.errors import MissingBlobError, UnknownCommitError

    err = error_from_json(
        {
            "code": -32602,
            "message": "bad",
            "data": {"expected": "int64", "given": "str 'x'", "where": "params.args[1].position.x"},
        }
    )
    assert isinstance(err, InvalidParams)
    assert (err.expected, err.given, err.where) == ("int64", "str 'x'", "params.args[1].position.x")
    engine = error_from_json(
        {"code": -32131, "message": "no commit", "data": {"type": "UnknownCommitError"}}
    )
    assert isinstance(engine, EngineError) and engine.type == "UnknownCommitError"
    assert isinstance(engine.as_engine_error(), UnknownCommitError)
    assert isinstance(EngineError(-32132, "gone").as_engine_error(), MissingBlobError)
    assert RateLimited(-32002, "x", {"retry_after": "soon"}).retry_after is None
    assert isinstance(Timeout(-32001, "t"), TimeoutError)
    with pytest.raises(ProtocolViolation):
        error_from_json({"code": "x", "message": "m"})
    with pytest.raises(ProtocolViolation):
        error_from_json("boom")


def test_classification() -> None:
    assert is_transient(TransportError("x"))
    assert is_transient(HTTPStatusError(503, "x"))
    assert not is_transient(HTTPStatusError(400, "x"))
    assert is_transient(Timeout(-32001, "x"))
    assert is_transient(RateLimited(-32002, "x"))
    assert not is_transient(InvalidParams(-32602, "x"))
    assert not is_transient(InternalError(-32603, "x"))
    assert counts_as_failure(InternalError(-32603, "x"))
    assert not counts_as_failure(RateLimited(-32002, "x"))
    assert not counts_as_failure(Forbidden(-32004, "x"))


@pytest.mark.parametrize(
    ("method", "idempotent"),
    [
        ("rpc.discover", True),
        ("pool.Tools.add", True),
        ("db.get", True),
        ("db.blob.info", True),
        ("db.log", True),
        ("db.commit", False),
        ("db.blob.put", False),
        ("apool.ModelGraph.newVertex", False),
        ("db.subscribe", False),
        ("admin.stats", False),
    ],
)
def test_idempotent_defaults(method: str, idempotent: bool) -> None:
    assert is_idempotent(method) is idempotent


# --------------------------------------------------------------------------------------------
# The blocking facade against the stand-in


def test_blocking_client_retries(standin: StandIn) -> None:
    standin.script.fail("pool.Tools.add", 1, "http503")
    with BlockingGatewayClient(standin.url, backoff=0.001) as gw:
        assert gw.call("pool.Tools.add", [3, 4])["params"] == [3, 4]
        assert len(gw.retry_log) == 1
        assert gw.batch([("rpc.ping", None)])[0]["method"] == "rpc.ping"
        gw.notify("rpc.ping")
        with pytest.raises(InvalidParams):
            gw.call("pool.Err.invalid", [])
        assert gw.breaker.state is BreakerState.CLOSED
    assert standin.script.notified == ["rpc.ping"]


def test_httpx_transport_errors_become_transport_errors(closed_url: str) -> None:
    with BlockingGatewayClient(closed_url, retries=0) as gw:
        with pytest.raises(TransportError) as info:
            gw.call("rpc.ping")
    assert isinstance(info.value.__cause__, httpx.TransportError)
