"""The gateway's endpoints: ``POST /``, ``GET /health``, ``GET /metrics`` and the ``/ws`` handshake.

:class:`Routes` holds the :class:`~rpc.gateway.app.Gateway`; its methods are the endpoints
:func:`~rpc.gateway.app.create_app` serves. ``POST /`` and ``/ws`` are raw ASGI endpoints
(``scope, receive, send``: no Starlette ``Request``/``Response``/``WebSocket`` objects on the
way of a call). ``POST /`` checks the content type, the bearer token and the body size, then
hands the message to the gateway's dispatcher. ``/ws`` checks a header token before
accepting, then serves a :class:`~rpc.gateway.ws.WsSession` over a :class:`RawWebSocket`. ``/health`` and ``/metrics`` need a valid token only when
the gateway protects them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from rpc.gateway.context import CallContext
from rpc.gateway.security import bearer_token, too_large, unauthorized
from rpc.gateway.ws import WsSession
from rpc.jsonrpc import INVALID_REQUEST, JsonRpcError, parse_message

if TYPE_CHECKING:
    from rpc.gateway.app import Gateway

__all__ = ("RawEndpoint", "RawWebSocket", "Routes")


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (latin-1, as Starlette's ``Headers``), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RawEndpoint:
    """A raw ASGI endpoint as a Starlette route's app (an instance, so Starlette calls it
    with ``scope, receive, send`` instead of wrapping it in a ``Request``)."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoint(scope, receive, send)


class RawWebSocket:
    """The three ASGI WebSocket operations a :class:`~rpc.gateway.ws.WsSession` uses,
    straight on ``receive``/``send`` (without Starlette's ``WebSocket`` state checks: the
    session accepts once, then only sends text and receives until the disconnect)."""

    __slots__ = ("_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send

    async def accept(self) -> None:
        """Wait for the connect message, then accept."""
        message = await self._receive()
        if message["type"] != "websocket.connect":
            raise RuntimeError(f"expected websocket.connect, got {message['type']!r}")
        await self._send({"type": "websocket.accept", "subprotocol": None, "headers": []})

    async def receive(self) -> Message:
        """The next ASGI message (``websocket.receive`` or ``websocket.disconnect``)."""
        return await self._receive()

    async def send_text(self, text: str) -> None:
        """Send a text message."""
        await self._send({"type": "websocket.send", "text": text})


_JSON_TYPE = (b"content-type", b"application/json")


class _Disconnected(Exception):
    """The client disconnected before its request body was complete."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows beyond `limit` bytes."""
    message = await receive()
    if message["type"] != "http.request":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the whole body in one message (the usual case)
        return body if len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            return None
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if size <= limit else None


def _client(scope_client: Any) -> str:
    if scope_client is None:
        return "-"
    host, port = scope_client[0], scope_client[1]
    return f"{host}:{port}"


class Routes:
    """The gateway's HTTP and WebSocket endpoints."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def _refuse(
        self,
        status: int,
        error: JsonRpcError,
        ctx: CallContext,
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = self.gw.refuse(error, ctx)
        return Response(body, status, headers, media_type="application/json")

    async def http_rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /``: one JSON-RPC message (a raw ASGI endpoint: no ``Request`` and
        ``Response`` objects on the way of a call)."""
        gw = self.gw
        ctx = CallContext("http", _client(scope.get("client")), None)
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            reason = {"reason": "Content-Type must be application/json"}
            error = JsonRpcError(INVALID_REQUEST, "invalid request", reason)
            await self._refuse(415, error, ctx)(scope, receive, send)
            return
        ctx.principal = gw.tokens.lookup(bearer_token(_header(scope, b"authorization")))
        if ctx.principal is None:
            error = unauthorized("missing or invalid bearer token")
            refusal = self._refuse(401, error, ctx, {"WWW-Authenticate": "Bearer"})
            await refusal(scope, receive, send)
            return
        limit = gw.config.max_request_bytes
        length = _header(scope, b"content-length") or ""
        body: bytes | None = None
        if not (length.isdigit() and int(length) > limit):
            try:
                body = await _read_body(receive, limit)
            except _Disconnected:
                return  # the client left: no one to answer
        if body is None:
            await self._refuse(413, too_large(limit), ctx)(scope, receive, send)
            return
        text = await gw.run_message(parse_message(body), ctx)
        if text is None:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        data = text.encode("utf-8")
        headers = [(b"content-length", str(len(data)).encode()), _JSON_TYPE]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _open_route(self, request: Request) -> Response | None:
        if not self.gw.config.protect_metrics:
            return None
        if self.gw.tokens.lookup(bearer_token(request.headers.get("authorization"))) is not None:
            return None
        error = unauthorized("missing or invalid bearer token")
        return self._refuse(401, error, CallContext("http", _client(request.client), None))

    async def health(self, request: Request) -> Response:
        """``GET /health``."""
        refused = self._open_route(request)
        if refused is not None:
            return refused
        gw = self.gw

        def databases() -> list[dict[str, Any]]:
            return [{**s.describe(), "commits": s.db.commit_count()} for s in gw.databases.values()]

        return JSONResponse(
            {
                "status": "ok" if gw.backend.connected else "degraded",
                "service": gw.backend.name,
                "websocket_clients": len(gw.sessions),
                "pending_requests": gw.metrics.pending,
                "uptime_seconds": round(gw.metrics.uptime(), 3),
                "databases": await anyio.to_thread.run_sync(databases, limiter=gw.read_limiter),
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        """``GET /metrics``."""
        refused = self._open_route(request)
        if refused is not None:
            return refused
        text = self.gw.metrics.render(self.gw.queue_depths())
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/ws`` (a raw ASGI endpoint): a header token is checked before accepting (a bad
        one is refused with 401); without one the session must authenticate first when
        tokens are required."""
        gw = self.gw
        client = _client(scope.get("client"))
        token = bearer_token(_header(scope, b"authorization"))
        principal = gw.tokens.lookup(token) if token is not None or not gw.tokens.enabled else None
        if token is not None and principal is None:
            error = unauthorized("invalid bearer token")
            refusal = self._refuse(401, error, CallContext("ws", client, None))
            await WebSocket(scope, receive, send).send_denial_response(refusal)
            return
        await WsSession(gw, RawWebSocket(receive, send), principal, client).run()
