"""The gateway: its state, lifecycle and the one dispatcher; :func:`create_app`, the ASGI app.

``create_app(config)`` returns a Starlette app with ``POST /`` (JSON-RPC, single or batch),
``/ws`` (JSON-RPC over WebSocket, :mod:`rpc.gateway.ws`), ``GET /health`` and
``GET /metrics`` (the endpoints: :mod:`rpc.gateway.routes`). Its lifespan connects the
service — in process or upstream over the native protocol (:mod:`rpc.gateway.backends`) —
opens the databases (creating the embedded default one when none is named,
:mod:`rpc.gateway.databases`) and starts one watcher per database, which announces new
commits from any writer (:mod:`rpc.gateway.subscriptions`).

:meth:`Gateway.run_message` is the one dispatcher of both transports: per call it applies
the rate limit, authentication, permission, parameter binding and the timeout, maps
exceptions to error objects, and records metrics and the audit line. The members of a batch
that complete at once (inline pool functions, invalid members) run in place, the others
concurrently; the members start in order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message as AsgiMessage, Receive, Scope, Send

from rpc.gateway.backends import (
    Backend,
    LocalBackend,
    UpstreamBackend,
    connect_backend,
    function_error,
)
from rpc.gateway.config import GatewayConfig
from rpc.gateway.context import CallContext
from rpc.gateway.databases import (
    DEFAULT_DATABASE,
    DEFAULT_DATABASE_FILE,
    ServedDatabase,
    close_databases,
    open_databases,
)
from rpc.gateway.methods import build_registry
from rpc.gateway.metrics import CountRequests, Metrics
from rpc.gateway.openrpc import SchemaBuilder, openrpc_document
from rpc.gateway.routes import RawEndpoint, Routes
from rpc.gateway.security import (
    AuditLog,
    RateLimiter,
    TokenTable,
    require_permission,
    unauthorized,
)
from rpc.gateway.subscriptions import TOPICS, Hub, watch_database
from rpc.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RATE_LIMITED,
    TIMEOUT,
    Call,
    Invalid,
    JsonRpcError,
    Message,
    MethodSpec,
    bind_params,
    encode_json,
    encode_replies,
    error_from_exception,
    error_response,
)

if TYPE_CHECKING:
    from rpc.gateway.ws import WsSession

__all__ = (
    "DEFAULT_DATABASE",
    "DEFAULT_DATABASE_FILE",
    "TOPICS",
    "Backend",
    "Gateway",
    "GatewayConfig",
    "LocalBackend",
    "UpstreamBackend",
    "create_app",
    "function_error",
)

log = logging.getLogger("commitdb.gateway")

#: Members of one batch handled at once (the others wait for a free slot).
BATCH_CONCURRENCY = 32


class Gateway:
    """The gateway's state: backend, databases, registry, security, metrics, sessions."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.tokens = TokenTable(config.tokens)
        self.limiter = RateLimiter(config.rate, config.burst)
        self.audit = AuditLog()
        self.hub = Hub(self.metrics)
        self.schemas = SchemaBuilder()
        self.topics = TOPICS
        self.read_limiter = anyio.CapacityLimiter(16)
        self.databases: dict[str, ServedDatabase] = {}
        self.sessions: set[WsSession] = set()
        self.backend: Backend = Backend(anyio.CapacityLimiter(1), config.debug)
        self.registry = build_registry(self)
        self._openrpc: dict[str, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Connect the service, open the databases, run the watchers; undo on exit."""
        config = self.config
        async with AsyncExitStack() as stack:
            self.backend = await connect_backend(config, stack)
            stack.callback(close_databases, self.databases)
            await anyio.to_thread.run_sync(
                open_databases,
                self.databases,
                self.backend.definitions,
                config.databases,
                config.data_dir,
            )
            self.registry = build_registry(self)
            async with anyio.create_task_group() as tg:
                for served in self.databases.values():
                    tg.start_soon(watch_database, served, self.hub, self.config.poll_interval)
                yield
                tg.cancel_scope.cancel()

    # -- lookups --------------------------------------------------------------------------
    def database(self, name: Any, where: str) -> ServedDatabase:
        """The served database named `name` (-32602 naming the served ones otherwise)."""
        served = self.databases.get(name) if isinstance(name, str) else None
        if served is None:
            names = sorted(self.databases)
            raise JsonRpcError(
                INVALID_PARAMS,
                f"invalid params: no database {name!r} is served",
                {"expected": f"one of {', '.join(names)}", "given": repr(name), "where": where},
            )
        return served

    def openrpc(self) -> dict[str, Any]:
        """The OpenRPC document (built once)."""
        if self._openrpc is None:
            self._openrpc = openrpc_document(
                f"commitdb gateway: {self.backend.name}",
                "0.1.0",
                "JSON-RPC 2.0 over HTTP (POST /) and WebSocket (/ws): the service's pools "
                f"and the databases {', '.join(sorted(self.databases))}.",
                self.registry.methods(),
                self.schemas,
            )
        return self._openrpc

    def queue_depths(self) -> dict[str, int]:
        """Queued notifications and server requests awaiting a client's reply."""
        waiting = sum(len(s.pending) for s in self.sessions)
        return {"notifications": self.hub.depth(), "server_requests": waiting}

    # -- dispatch -------------------------------------------------------------------------
    async def run_message(self, message: Message, ctx: CallContext) -> str | None:
        """Handle a parsed message's calls (concurrently for a batch); the reply text."""
        items = [i for i in message.items if isinstance(i, (Call, Invalid))]
        if len(items) == 1:
            reply = await self.run_call(items[0], ctx)
            return encode_replies([reply] if reply else [], message.batch)
        replies: list[dict[str, Any] | None] = [None] * len(items)
        waiting: list[tuple[int, Call | Invalid]] = []
        for i, item in enumerate(items):
            # one that completes without suspending runs in place (no task), unless one that
            # awaits comes before it: the members still start in order (as `auth` needs)
            if not waiting and self.is_immediate(item):
                replies[i] = await self.run_call(item, ctx)
            else:
                waiting.append((i, item))
        if len(waiting) == 1:
            i, item = waiting[0]
            replies[i] = await self.run_call(item, ctx)
        elif waiting:
            limiter = anyio.CapacityLimiter(BATCH_CONCURRENCY)

            async def one(i: int, item: Call | Invalid) -> None:
                async with limiter:
                    replies[i] = await self.run_call(item, ctx)

            async with anyio.create_task_group() as tg:
                for i, item in waiting:
                    tg.start_soon(one, i, item)
        return encode_replies([r for r in replies if r is not None], message.batch)

    def is_immediate(self, item: object) -> bool:
        """Whether handling `item` completes without suspending (an invalid member, an
        unknown method, an inline method)."""
        if isinstance(item, Invalid):
            return True
        if not isinstance(item, Call):
            return False
        spec = self.registry.get(item.method)
        return spec is None or spec.inline

    async def run_call(self, item: Call | Invalid, ctx: CallContext) -> dict[str, Any] | None:
        """Handle one member; its response (None for a notification)."""
        start = perf_counter()
        metrics = self.metrics
        method = "(invalid)"
        code: int | None = None
        call = item if isinstance(item, Call) else None
        metrics.pending += 1
        try:
            if isinstance(item, Invalid):
                raise item.error
            assert call is not None
            spec = self.registry.get(call.method)
            method = spec.name if spec is not None else "(unknown)"
            reply = {"jsonrpc": "2.0", "result": await self._invoke(call, spec, ctx), "id": item.id}
        except Exception as exc:
            error = error_from_exception(exc, debug=self.config.debug)
            if error.code == INTERNAL_ERROR and not isinstance(exc, JsonRpcError):
                log.error("internal error in %s", method, exc_info=exc)
            code = error.code
            reply = error_response(item.id, error)
        finally:
            metrics.pending -= 1
        duration = perf_counter() - start
        self._record(call.method if call is not None else "-", method, ctx, code, duration)
        if self.hub.has("events", "calls") and method.startswith(("pool.", "apool.")):
            outcome = "ok" if code is None else f"error {code}"
            event = {"method": method, "outcome": outcome, "duration_ms": round(duration * 1e3, 3)}
            self.hub.publish("events", "calls", event)
        return None if call is not None and call.notification else reply

    def _record(
        self, shown: str, label: str, ctx: CallContext, code: int | None, duration: float
    ) -> None:
        self.metrics.observe(label, ctx.transport, duration, code)
        principal = ctx.principal.name if ctx.principal is not None else "unauthenticated"
        self.audit.record(
            method=shown,
            client=ctx.client,
            principal=principal,
            transport=ctx.transport,
            outcome="ok" if code is None else f"error {code}",
            duration=duration,
        )

    def refuse(self, error: JsonRpcError, ctx: CallContext) -> str:
        """Count and audit a message refused before dispatch (too large, no valid token,
        wrong content type); the text of its error response (``id`` null)."""
        self._record("-", "(refused)", ctx, error.code, 0.0)
        return encode_json(error_response(None, error))

    async def _invoke(self, call: Call, spec: MethodSpec | None, ctx: CallContext) -> Any:
        limiter = self.limiter
        if limiter.rate is not None:
            key = (
                ctx.principal.name
                if ctx.principal and self.tokens.enabled
                else ctx.client.rsplit(":", 1)[0]
            )
            retry = limiter.acquire(key)
            if retry:
                self.metrics.rate_limited += 1
                raise JsonRpcError(RATE_LIMITED, "rate limited", {"retry_after": round(retry, 3)})
        principal = ctx.principal
        if principal is None and call.method != "auth":
            raise unauthorized("authenticate first (auth)")
        if spec is None:
            raise JsonRpcError(METHOD_NOT_FOUND, "method not found", {"method": call.method})
        if ctx.transport not in spec.transports:
            only = " and ".join(sorted(spec.transports))
            raise JsonRpcError(
                METHOD_NOT_FOUND,
                "method not found",
                {"method": call.method, "reason": f"only over {only}"},
            )
        if principal is not None:
            require_permission(principal, spec.permission)
        bound = bind_params(spec, call.params)
        if spec.inline:  # runs to its end at once: no timeout could interrupt it
            return await spec.handler(ctx, bound)
        with anyio.move_on_after(self.config.timeout) as scope:
            return await spec.handler(ctx, bound)
        if scope.cancelled_caught:
            raise JsonRpcError(TIMEOUT, "timeout", {"timeout_seconds": self.config.timeout})
        raise JsonRpcError(INTERNAL_ERROR, "internal error")


class GatewayApp(Starlette):
    """The gateway's Starlette app: ``POST /`` and ``/ws`` are answered straight from
    :meth:`__call__` (raw ASGI endpoints, without the middleware stack, the router and the
    request/response wrappers); everything else goes through Starlette."""

    def __init__(self, gateway: Gateway, endpoints: Routes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gateway = gateway
        self._routes = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["method"] == "POST" and scope["path"] == "/" and not scope.get("root_path"):
                await self._http_rpc(scope, receive, send)
                return
        elif kind == "websocket" and scope["path"] == "/ws" and not scope.get("root_path"):
            await self._routes.websocket(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _http_rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._gateway.metrics
        metrics.http_in_flight += 1
        started = False

        async def tracked(message: AsgiMessage) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._routes.http_rpc(scope, receive, tracked)
        except Exception:
            if not started:  # as Starlette's ServerErrorMiddleware: a plain 500, then raise
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise
        finally:
            metrics.http_in_flight -= 1


def create_app(config: GatewayConfig | None = None) -> Starlette:
    """The gateway's Starlette app (``app.state.gateway`` is the :class:`Gateway`)."""
    gateway = Gateway(config or GatewayConfig())
    routes = Routes(gateway)
    app = GatewayApp(
        gateway,
        routes,
        middleware=[Middleware(CountRequests, metrics=gateway.metrics)],
        routes=[  # POST / and /ws are answered before the router, but for a root path
            Route("/", RawEndpoint(routes.http_rpc), methods=["POST"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/metrics", routes.metrics_text, methods=["GET"]),
            WebSocketRoute("/ws", RawEndpoint(routes.websocket)),
        ],
        lifespan=gateway.lifespan,
    )
    app.state.gateway = gateway
    return app
