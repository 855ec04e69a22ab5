"""The gateway's ASGI app: configuration, service backends, lifecycle, dispatch, HTTP routes.

``create_app(config)`` returns a Starlette app with ``POST /`` (JSON-RPC, single or batch),
``/ws`` (JSON-RPC over WebSocket, :mod:`rpc.gateway.ws`), ``GET /health`` and
``GET /metrics``. Its lifespan connects the service — in process (:class:`LocalBackend`) or
upstream over the native protocol (:class:`UpstreamBackend`) — opens the databases (creating
the embedded default one when none is named) and starts one watcher per database, which
announces new commits from any writer.

:meth:`Gateway.run_message` is the one dispatcher of both transports: per call it applies
the rate limit, authentication, permission, parameter binding and the timeout, maps
exceptions to error objects, and records metrics and the audit line. The members of a batch
run concurrently.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from anyio.from_thread import start_blocking_portal
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions
from commitdb.errors import CommitDBError, StorageError, ValidationError
from commitdb.prototypes import FunctionPrototype, PoolDeclaration
from rpc.errors import RemoteError, RPCError
from rpc.gateway.methods import CallContext, ServedDatabase, build_registry
from rpc.gateway.metrics import CountRequests, Metrics
from rpc.gateway.openrpc import SchemaBuilder, openrpc_document
from rpc.gateway.security import (
    AuditLog,
    Permission,
    RateLimiter,
    TokenTable,
    bearer_token,
    read_body,
)
from rpc.gateway.ws import Hub, LentState, WsSession, watch_database
from rpc.jsonrpc import (
    FORBIDDEN,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
    UNAUTHORIZED,
    Call,
    Invalid,
    JsonRpcError,
    Message,
    bind_params,
    encode_json,
    encode_replies,
    error_from_exception,
    error_response,
    parse_message as parse,
    result_response,
)
from rpc.service import Service
from rpc.service_remote import ServiceRemote

__all__ = (
    "DEFAULT_DATABASE",
    "DEFAULT_DATABASE_FILE",
    "TOPICS",
    "Gateway",
    "GatewayConfig",
    "LocalBackend",
    "UpstreamBackend",
    "create_app",
)

log = logging.getLogger("commitdb.gateway")

DEFAULT_DATABASE = "default"
DEFAULT_DATABASE_FILE = "commitdb-gateway.cdb"

#: Members of one batch handled at once (the others wait for a free slot).
BATCH_CONCURRENCY = 32

#: Service event topics (``events.subscribe``): finished pool calls, WebSocket sessions.
TOPICS = ("calls", "connections")


@dataclass
class GatewayConfig:
    """Everything ``commitdb gateway`` can be told.

    Attributes:
        databases: Served commit databases, name -> path (created when missing).
        data_dir: Where the embedded default database lives when ``databases`` is empty.
        service: The in-process Service (default: the Ge example) unless ``upstream``.
        upstream: URL of a service over the native protocol (``tcp://host:port``).
        upstream_token: Credentials presented to the upstream service.
        tokens: ``TOKEN:PERMISSION`` specs; none means no authentication.
        rate: Calls per second per client (None: unlimited); ``burst``: bucket size.
        max_request_bytes: The largest request accepted.
        timeout: Seconds a call may take.
        queue_size: Notifications queued per subscription before events are dropped.
        max_in_flight: Calls a WebSocket session may have running at once.
        poll_interval: Seconds between checks of the databases for new commits.
        protect_metrics: Require a valid token for /health and /metrics.
        debug: Show internal error texts in error objects.
        worker_threads: Worker threads for the pool functions.
    """

    databases: dict[str, str] = field(default_factory=dict)
    data_dir: str = "."
    service: Service | None = None
    upstream: str | None = None
    upstream_token: str | None = None
    tokens: tuple[str, ...] = ()
    rate: float | None = None
    burst: int | None = None
    max_request_bytes: int = 1 << 20
    timeout: float = 30.0
    queue_size: int = 256
    max_in_flight: int = 128
    poll_interval: float = 0.05
    protect_metrics: bool = False
    debug: bool = False
    worker_threads: int = 32


# --------------------------------------------------------------------------------------------
# Service backends


def function_error(exc: Exception, debug: bool) -> Exception:
    """What a pool function's exception becomes: engine and RPC errors keep their codes, a
    result of the wrong type is an internal error, anything else a -32000 server error whose
    text only shows in debug mode."""
    if isinstance(exc, ValidationError) and exc.where.endswith("result"):
        data = {"reason": "the function's result does not fit its declared type"}
        return JsonRpcError(
            INTERNAL_ERROR, f"internal error: {exc}" if debug else "internal error", data
        )
    if isinstance(exc, CommitDBError | JsonRpcError | RPCError):
        return exc
    log.info("a pool function raised %s: %s", type(exc).__name__, exc, exc_info=exc)
    if debug:
        return JsonRpcError(
            SERVER_ERROR, f"server error: {type(exc).__name__}: {exc}", {"type": type(exc).__name__}
        )
    return JsonRpcError(SERVER_ERROR, "server error")


class Backend:
    """How the gateway reaches the service's pools."""

    name: str
    definitions: Definitions

    def __init__(self, limiter: anyio.CapacityLimiter, debug: bool) -> None:
        self.limiter = limiter
        self.debug = debug

    @property
    def connected(self) -> bool:
        """False once an upstream connection is lost."""
        return True

    def function_declarations(self) -> list[PoolDeclaration]:
        """The function pools."""
        return []

    def attachment_declarations(self) -> list[PoolDeclaration]:
        """The attachment function pools."""
        return []

    async def call(self, pool: str, proto: FunctionPrototype, args: list[Any]) -> Any:
        """Call a function pool function with typed arguments."""
        raise JsonRpcError(METHOD_NOT_FOUND, "method not found", {"pool": pool})

    async def call_attachment(
        self, pool: str, proto: FunctionPrototype, state: Any, args: list[Any]
    ) -> Any:
        """Call an attachment function on a local state (the gateway's mutable state)."""
        raise JsonRpcError(METHOD_NOT_FOUND, "method not found", {"pool": pool})

    async def call_lent(
        self, pool: str, proto: FunctionPrototype, lent: LentState, args: list[Any]
    ) -> Any:
        """Call an attachment function on a state a WebSocket client lends."""
        raise JsonRpcError(METHOD_NOT_FOUND, "method not found", {"pool": pool})

    def _guard(self, fn: Any, args: list[Any]) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise function_error(exc, self.debug) from None

    async def _threaded(self, run: Any, lent: LentState) -> Any:
        def body() -> Any:
            try:
                value = run()
            except BaseException:
                lent.send_pending()  # the client keeps what the function did before failing
                raise
            lent.finish()
            return value

        try:
            return await anyio.to_thread.run_sync(
                self._guard, body, [], limiter=self.limiter, abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            lent.cancel()  # the abandoned thread stops at its next read or mutation
            raise


class LocalBackend(Backend):
    """A :class:`~rpc.service.Service` in this process."""

    def __init__(self, service: Service, limiter: anyio.CapacityLimiter, debug: bool) -> None:
        super().__init__(limiter, debug)
        self.service = service
        self.name = service.name
        self.definitions = service.definitions

    def function_declarations(self) -> list[PoolDeclaration]:
        return [p.declaration() for p in self.service.function_pools.values()]

    def attachment_declarations(self) -> list[PoolDeclaration]:
        return [p.declaration() for p in self.service.attachment_function_pools.values()]

    async def call(self, pool: str, proto: FunctionPrototype, args: list[Any]) -> Any:
        fn = self.service.function_pool(pool).check(proto.name)
        if fn.inline:
            return self._guard(fn, args)
        return await anyio.to_thread.run_sync(
            self._guard, fn, args, limiter=self.limiter, abandon_on_cancel=True
        )

    async def call_attachment(
        self, pool: str, proto: FunctionPrototype, state: Any, args: list[Any]
    ) -> Any:
        fn = self.service.attachment_function_pool(pool).check(proto.name)
        return await anyio.to_thread.run_sync(
            self._guard, fn, [state, *args], limiter=self.limiter, abandon_on_cancel=True
        )

    async def call_lent(
        self, pool: str, proto: FunctionPrototype, lent: LentState, args: list[Any]
    ) -> Any:
        fn = self.service.attachment_function_pool(pool).check(proto.name)
        return await self._threaded(lambda: fn(lent, *args), lent)


class UpstreamBackend(Backend):
    """A service over the native protocol (:class:`~rpc.service_remote.ServiceRemote`).

    Over HTTP the gateway's mutable state is lent to the upstream call. A WebSocket client's
    lent state is lent on through a connection of its own, run in a worker thread (the
    upstream's callbacks then block that thread, not the gateway's event loop).
    """

    def __init__(
        self,
        remote: ServiceRemote,
        url: str,
        token: str | None,
        limiter: anyio.CapacityLimiter,
        debug: bool,
    ) -> None:
        super().__init__(limiter, debug)
        self.remote = remote
        self.url = url
        self.token = token
        self.name = str(remote.welcome.get("server") or url)
        self.definitions = remote.definitions()

    @property
    def connected(self) -> bool:
        return not self.remote.is_closed()

    def function_declarations(self) -> list[PoolDeclaration]:
        return [p.declaration for p in self.remote.function_pools()]

    def attachment_declarations(self) -> list[PoolDeclaration]:
        return [p.declaration for p in self.remote.attachment_function_pools()]

    async def _upstream(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except RemoteError as exc:  # the upstream's function failed: hidden unless debug
            if exc.code not in (SERVER_ERROR, INTERNAL_ERROR):
                raise
            message = f"server error: {exc.message}" if self.debug else "server error"
            raise JsonRpcError(SERVER_ERROR, message, exc.data if self.debug else None) from None

    async def call(self, pool: str, proto: FunctionPrototype, args: list[Any]) -> Any:
        return await self._upstream(self.remote.function_pool(pool).check(proto.name)(*args))

    async def call_attachment(
        self, pool: str, proto: FunctionPrototype, state: Any, args: list[Any]
    ) -> Any:
        fn = self.remote.attachment_function_pool(pool).check(proto.name)
        return await self._upstream(fn(state, *args))

    async def call_lent(
        self, pool: str, proto: FunctionPrototype, lent: LentState, args: list[Any]
    ) -> Any:
        async def lend() -> Any:
            async with ServiceRemote.connect(self.url, credentials=self.token) as remote:
                fn = remote.attachment_function_pool(pool).check(proto.name)
                return await self._upstream(fn(lent, *args))

        def run() -> Any:
            with start_blocking_portal() as portal:
                return portal.call(lend)

        return await self._threaded(run, lent)


# --------------------------------------------------------------------------------------------
# The gateway


def _client(scope_client: Any) -> str:
    if scope_client is None:
        return "-"
    host, port = scope_client[0], scope_client[1]
    return f"{host}:{port}"


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
        limiter = anyio.CapacityLimiter(self.config.worker_threads)
        async with AsyncExitStack() as stack:
            if self.config.upstream:
                url, token = self.config.upstream, self.config.upstream_token
                remote = await stack.enter_async_context(
                    ServiceRemote.connect(url, credentials=token)
                )
                self.backend = UpstreamBackend(remote, url, token, limiter, self.config.debug)
            else:
                service = self.config.service or _default_service()
                self.backend = LocalBackend(service, limiter, self.config.debug)
            stack.callback(self._close_databases)
            await anyio.to_thread.run_sync(self._open_databases)
            self.registry = build_registry(self)
            async with anyio.create_task_group() as tg:
                for served in self.databases.values():
                    tg.start_soon(watch_database, served, self.hub, self.config.poll_interval)
                yield
                tg.cancel_scope.cancel()

    def _open_databases(self) -> None:
        service = self.backend.definitions  # its types and attachments; not its pools
        defs = service.extract(service.types(), service.attachments())
        named = dict(self.config.databases)
        default = not named
        if default:
            os.makedirs(self.config.data_dir, exist_ok=True)
            named = {DEFAULT_DATABASE: os.path.join(self.config.data_dir, DEFAULT_DATABASE_FILE)}
        for name, path in named.items():
            if not os.path.exists(path):
                db = CommitDatabase.create(path, defs, documentation=f"commitdb gateway: {name}")
            elif CommitDatabase.is_compatible(path):
                db = CommitDatabase.open(path)
                if default and not db.definitions().contains(defs):
                    db.extend_definitions(defs)  # the embedded database follows its service
            else:
                raise StorageError(f"{path} is not a commitdb commit database")
            self.databases[name] = ServedDatabase(name, path, db)

    def _close_databases(self) -> None:
        for served in self.databases.values():
            served.db.close()

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
        items = [i for i in message.items if isinstance(i, Call | Invalid)]
        if len(items) == 1:
            reply = await self.run_call(items[0], ctx)
            return encode_replies([reply] if reply else [], message.batch)
        replies: list[dict[str, Any] | None] = [None] * len(items)
        limiter = anyio.CapacityLimiter(BATCH_CONCURRENCY)

        async def one(i: int, item: Call | Invalid) -> None:
            async with limiter:
                replies[i] = await self.run_call(item, ctx)

        async with anyio.create_task_group() as tg:
            for i, item in enumerate(items):
                tg.start_soon(one, i, item)
        return encode_replies([r for r in replies if r is not None], message.batch)

    async def run_call(self, item: Call | Invalid, ctx: CallContext) -> dict[str, Any] | None:
        """Handle one member; its response (None for a notification)."""
        start = time.perf_counter()
        method = "(invalid)"
        code: int | None = None
        self.metrics.pending += 1
        try:
            if isinstance(item, Invalid):
                raise item.error
            spec = self.registry.get(item.method)
            method = spec.name if spec is not None else "(unknown)"
            reply = result_response(item.id, await self._invoke(item, ctx))
        except Exception as exc:
            error = error_from_exception(exc, debug=self.config.debug)
            if error.code == INTERNAL_ERROR and not isinstance(exc, JsonRpcError):
                log.error("internal error in %s", method, exc_info=exc)
            code = error.code
            reply = error_response(item.id, error)
        finally:
            self.metrics.pending -= 1
        duration = time.perf_counter() - start
        shown = item.method if isinstance(item, Call) else "-"
        self._record(shown, method, ctx, code, duration)
        if method.startswith(("pool.", "apool.")):
            outcome = "ok" if code is None else f"error {code}"
            event = {"method": method, "outcome": outcome, "duration_ms": round(duration * 1e3, 3)}
            self.hub.publish("events", "calls", event)
        return None if isinstance(item, Call) and item.notification else reply

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

    async def _invoke(self, call: Call, ctx: CallContext) -> Any:
        key = (
            ctx.principal.name
            if ctx.principal and self.tokens.enabled
            else ctx.client.rsplit(":", 1)[0]
        )
        retry = self.limiter.acquire(key)
        if retry:
            self.metrics.rate_limited += 1
            raise JsonRpcError(RATE_LIMITED, "rate limited", {"retry_after": round(retry, 3)})
        spec = self.registry.get(call.method)
        if ctx.principal is None and call.method != "auth":
            raise JsonRpcError(
                UNAUTHORIZED, "unauthorized", {"reason": "authenticate first (auth)"}
            )
        if spec is None:
            raise JsonRpcError(METHOD_NOT_FOUND, "method not found", {"method": call.method})
        if ctx.transport not in spec.transports:
            only = " and ".join(sorted(spec.transports))
            raise JsonRpcError(
                METHOD_NOT_FOUND,
                "method not found",
                {"method": call.method, "reason": f"only over {only}"},
            )
        needed = Permission.of_method(spec.permission)
        if ctx.principal is not None and ctx.principal.permission < needed:
            data = {"required": needed.label, "granted": ctx.principal.permission.label}
            raise JsonRpcError(FORBIDDEN, "forbidden", data)
        bound = bind_params(spec, call.params)
        with anyio.move_on_after(self.config.timeout) as scope:
            return await spec.handler(ctx, bound)
        if scope.cancelled_caught:
            raise JsonRpcError(TIMEOUT, "timeout", {"timeout_seconds": self.config.timeout})
        raise JsonRpcError(INTERNAL_ERROR, "internal error")

    # -- routes ---------------------------------------------------------------------------
    def _refuse(
        self,
        status: int,
        error: JsonRpcError,
        ctx: CallContext,
        headers: dict[str, str] | None = None,
    ) -> Response:
        self._record("-", "(refused)", ctx, error.code, 0.0)
        body = encode_json(error_response(None, error))
        return Response(body, status, headers, media_type="application/json")

    async def http_rpc(self, request: Request) -> Response:
        """``POST /``: one JSON-RPC message."""
        ctx = CallContext("http", _client(request.client), None)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            reason = {"reason": "Content-Type must be application/json"}
            return self._refuse(415, JsonRpcError(INVALID_REQUEST, "invalid request", reason), ctx)
        ctx.principal = self.tokens.lookup(bearer_token(request.headers.get("authorization")))
        if ctx.principal is None:
            error = JsonRpcError(
                UNAUTHORIZED, "unauthorized", {"reason": "missing or invalid bearer token"}
            )
            return self._refuse(401, error, ctx, {"WWW-Authenticate": "Bearer"})
        body = await read_body(request, self.config.max_request_bytes)
        if body is None:
            limit = {"reason": "request too large", "max_bytes": self.config.max_request_bytes}
            return self._refuse(413, JsonRpcError(INVALID_REQUEST, "invalid request", limit), ctx)
        text = await self.run_message(parse(body), ctx)
        if text is None:
            return Response(status_code=204)
        return Response(text, media_type="application/json")

    def _open_route(self, request: Request) -> Response | None:
        if not self.config.protect_metrics:
            return None
        if self.tokens.lookup(bearer_token(request.headers.get("authorization"))) is not None:
            return None
        error = JsonRpcError(
            UNAUTHORIZED, "unauthorized", {"reason": "missing or invalid bearer token"}
        )
        return self._refuse(401, error, CallContext("http", _client(request.client), None))

    async def health(self, request: Request) -> Response:
        """``GET /health``."""
        refused = self._open_route(request)
        if refused is not None:
            return refused

        def databases() -> list[dict[str, Any]]:
            return [
                {**s.describe(), "commits": s.db.commit_count()} for s in self.databases.values()
            ]

        return JSONResponse(
            {
                "status": "ok" if self.backend.connected else "degraded",
                "service": self.backend.name,
                "websocket_clients": len(self.sessions),
                "pending_requests": self.metrics.pending,
                "uptime_seconds": round(self.metrics.uptime(), 3),
                "databases": await anyio.to_thread.run_sync(databases, limiter=self.read_limiter),
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        """``GET /metrics``."""
        refused = self._open_route(request)
        if refused is not None:
            return refused
        text = self.metrics.render(self.queue_depths())
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def websocket(self, websocket: WebSocket) -> None:
        """``/ws``: a header token is checked before accepting (a bad one is refused with
        401); without one the session must authenticate first when tokens are required."""
        client = _client(websocket.client)
        token = bearer_token(websocket.headers.get("authorization"))
        principal = (
            self.tokens.lookup(token) if token is not None or not self.tokens.enabled else None
        )
        if token is not None and principal is None:
            error = JsonRpcError(UNAUTHORIZED, "unauthorized", {"reason": "invalid bearer token"})
            self._record("-", "(refused)", CallContext("ws", client, None), error.code, 0.0)
            body = encode_json(error_response(None, error))
            await websocket.send_denial_response(Response(body, 401, media_type="application/json"))
            return
        await WsSession(self, websocket, principal, client).run()


def _default_service() -> Service:
    from rpc.examples.graph import make_service

    service: Service = make_service()
    return service


def create_app(config: GatewayConfig | None = None) -> Starlette:
    """The gateway's Starlette app (``app.state.gateway`` is the :class:`Gateway`)."""
    gateway = Gateway(config or GatewayConfig())
    app = Starlette(
        middleware=[Middleware(CountRequests, metrics=gateway.metrics)],
        routes=[
            Route("/", gateway.http_rpc, methods=["POST"]),
            Route("/health", gateway.health, methods=["GET"]),
            Route("/metrics", gateway.metrics_text, methods=["GET"]),
            WebSocketRoute("/ws", gateway.websocket),
        ],
        lifespan=gateway.lifespan,
    )
    app.state.gateway = gateway
    return app
