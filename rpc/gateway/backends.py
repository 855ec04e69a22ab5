"""How the gateway reaches the service's pools: in process or upstream.

:class:`LocalBackend` calls a :class:`~rpc.service.Service` in this process (functions run in
worker threads, inline ones on the event loop); :class:`UpstreamBackend` calls a service over
the native protocol (a remote attachment function is lent the local state).
:func:`connect_backend` picks one from the configuration. :func:`function_error` decides what
a failing pool function's exception becomes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.from_thread import start_blocking_portal

from commitdb.definitions import Definitions
from commitdb.errors import CommitDBError, ValidationError
from commitdb.prototypes import FunctionPrototype, PoolDeclaration
from rpc.errors import RemoteError, RPCError
from rpc.gateway.config import GatewayConfig
from rpc.jsonrpc import INTERNAL_ERROR, METHOD_NOT_FOUND, SERVER_ERROR, JsonRpcError
from rpc.service import Service
from rpc.service_remote import ServiceRemote

if TYPE_CHECKING:
    from rpc.gateway.lending import LentState

__all__ = (
    "Backend",
    "LocalBackend",
    "UpstreamBackend",
    "connect_backend",
    "default_service",
    "function_error",
)

log = logging.getLogger("commitdb.gateway")


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


def _no_pool(pool: str) -> JsonRpcError:
    return JsonRpcError(METHOD_NOT_FOUND, "method not found", {"pool": pool})


class Backend:
    """How the gateway reaches the service's pools (this base class reaches none)."""

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

    def is_inline(self, pool: str, function: str) -> bool:
        """Whether :meth:`call` of this function completes without suspending."""
        return False

    async def call(self, pool: str, proto: FunctionPrototype, args: list[Any]) -> Any:
        """Call a function pool function with typed arguments."""
        raise _no_pool(pool)

    async def call_attachment(
        self, pool: str, proto: FunctionPrototype, state: Any, args: list[Any]
    ) -> Any:
        """Call an attachment function on a local state (the gateway's mutable state)."""
        raise _no_pool(pool)

    async def call_lent(
        self, pool: str, proto: FunctionPrototype, lent: LentState, args: list[Any]
    ) -> Any:
        """Call an attachment function on a state a WebSocket client lends."""
        raise _no_pool(pool)

    def _guard(self, fn: Any, args: list[Any]) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise function_error(exc, self.debug) from None

    async def _in_worker(self, fn: Any, args: list[Any]) -> Any:
        """``fn(*args)`` in a worker thread, guarded (abandoned when the call is cancelled)."""
        return await anyio.to_thread.run_sync(
            self._guard, fn, args, limiter=self.limiter, abandon_on_cancel=True
        )

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
            return await self._in_worker(body, [])
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

    def is_inline(self, pool: str, function: str) -> bool:
        return bool(self.service.function_pool(pool).check(function).inline)

    async def call(self, pool: str, proto: FunctionPrototype, args: list[Any]) -> Any:
        fn = self.service.function_pool(pool).check(proto.name)
        if fn.inline:
            return self._guard(fn, args)
        return await self._in_worker(fn, args)

    async def call_attachment(
        self, pool: str, proto: FunctionPrototype, state: Any, args: list[Any]
    ) -> Any:
        fn = self.service.attachment_function_pool(pool).check(proto.name)
        return await self._in_worker(fn, [state, *args])

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


def default_service() -> Service:
    """The service served when none is given: the Ge example (``rpc.examples.graph``)."""
    from rpc.examples.graph import make_service

    service: Service = make_service()
    return service


async def connect_backend(config: GatewayConfig, stack: AsyncExitStack) -> Backend:
    """The configured backend: upstream when ``config.upstream`` is set (its connection is
    closed with `stack`), else the in-process service (default: :func:`default_service`)."""
    limiter = anyio.CapacityLimiter(config.worker_threads)
    if config.upstream:
        url, token = config.upstream, config.upstream_token
        remote = await stack.enter_async_context(ServiceRemote.connect(url, credentials=token))
        return UpstreamBackend(remote, url, token, limiter, config.debug)
    service = config.service or default_service()
    return LocalBackend(service, limiter, config.debug)
