"""The gateway's endpoints: ``POST /``, ``GET /health``, ``GET /metrics`` and the ``/ws`` handshake.

:class:`Routes` holds the :class:`~rpc.gateway.app.Gateway`; its methods are the Starlette
endpoints :func:`~rpc.gateway.app.create_app` routes to. ``POST /`` checks the content type,
the bearer token and the body size, then hands the message to the gateway's dispatcher.
``/ws`` checks a header token before accepting, then serves a
:class:`~rpc.gateway.ws.WsSession`. ``/health`` and ``/metrics`` need a valid token only when
the gateway protects them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from rpc.gateway.context import CallContext
from rpc.gateway.security import bearer_token, read_body, too_large, unauthorized
from rpc.gateway.ws import WsSession
from rpc.jsonrpc import INVALID_REQUEST, JsonRpcError, parse_message

if TYPE_CHECKING:
    from rpc.gateway.app import Gateway

__all__ = ("DirectRpc", "Routes")


class DirectRpc:
    """ASGI middleware answering ``POST /`` straight away (the same endpoint, without the
    router and the per-request exception wrapper); other requests go on to the app."""

    def __init__(self, app: ASGIApp, routes: Routes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/"
            and not scope.get("root_path")
        ):
            response = await self.routes.http_rpc(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


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

    async def http_rpc(self, request: Request) -> Response:
        """``POST /``: one JSON-RPC message."""
        gw = self.gw
        ctx = CallContext("http", _client(request.client), None)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            reason = {"reason": "Content-Type must be application/json"}
            return self._refuse(415, JsonRpcError(INVALID_REQUEST, "invalid request", reason), ctx)
        ctx.principal = gw.tokens.lookup(bearer_token(request.headers.get("authorization")))
        if ctx.principal is None:
            error = unauthorized("missing or invalid bearer token")
            return self._refuse(401, error, ctx, {"WWW-Authenticate": "Bearer"})
        body = await read_body(request, gw.config.max_request_bytes)
        if body is None:
            return self._refuse(413, too_large(gw.config.max_request_bytes), ctx)
        text = await gw.run_message(parse_message(body), ctx)
        if text is None:
            return Response(status_code=204)
        return Response(text, media_type="application/json")

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

    async def websocket(self, websocket: WebSocket) -> None:
        """``/ws``: a header token is checked before accepting (a bad one is refused with
        401); without one the session must authenticate first when tokens are required."""
        gw = self.gw
        client = _client(websocket.client)
        token = bearer_token(websocket.headers.get("authorization"))
        principal = gw.tokens.lookup(token) if token is not None or not gw.tokens.enabled else None
        if token is not None and principal is None:
            error = unauthorized("invalid bearer token")
            refusal = self._refuse(401, error, CallContext("ws", client, None))
            await websocket.send_denial_response(refusal)
            return
        await WsSession(gw, websocket, principal, client).run()
