"""Service: definitions plus function pools, served over the native protocol.

Targets understood by a service connection:

* ``service`` — ``ping``;
* ``pool:<Name>`` — call a FunctionPool function: args are the wire values of its parameters;
* ``apool:<Name>`` — call an AttachmentFunctionPool function: ``[lend_id, *args]``; the
  function runs in a worker thread against an :class:`AttachmentMutatingRemote` whose
  callbacks go to the client's lent state (target ``cb:<lend_id>``).

The handshake exchanges definitions: the client's (reduced) definitions extend a copy of the
service's for that connection (a conflicting type refuses the connection), and the welcome
carries the service's definitions, pool declarations included, so the client discovers
everything at connect time without generated code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import anyio.to_thread

from commitdb.codec import decoder, from_wire, to_wire
from commitdb.definitions import Definitions
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import DefinitionConflictError
from commitdb.prototypes import FunctionPrototype
from commitdb.types import STRING
from rpc.connection import Connection
from rpc.errors import (
    AuthenticationError,
    ConnectionClosedError,
    HandshakeError,
    InvalidArgumentsError,
    MethodNotFoundError,
)
from rpc.packets import Hello, Notify, Request
from rpc.pools import AttachmentFunctionPool, Function, FunctionPool
from rpc.remote_local import AttachmentMutatingRemote

__all__ = ("Authenticator", "Service")

log = logging.getLogger("rpc.service")

Authenticator = Callable[[Any], bool]
"""Given the client's credentials (any msgpack value, or None), accept or refuse."""


class Service:
    """Definitions plus pools; a ServerApp for :class:`~rpc.server.RPCServer`."""

    def __init__(
        self,
        definitions: Definitions,
        function_pools: Iterable[FunctionPool] = (),
        attachment_function_pools: Iterable[AttachmentFunctionPool] = (),
        *,
        name: str = "commitdb-service",
        authenticator: Authenticator | None = None,
        worker_threads: int = 32,
    ) -> None:
        self.name = name
        self.definitions = definitions.copy()
        self.function_pools = {p.name: p for p in function_pools}
        self.attachment_function_pools = {p.name: p for p in attachment_function_pools}
        for p in [*self.function_pools.values(), *self.attachment_function_pools.values()]:
            self.definitions.create_pool(p.declaration())
        self.authenticator = authenticator
        self.worker_threads = worker_threads
        self._limiter = anyio.CapacityLimiter(worker_threads)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._defs_bytes = encode_definitions(self.definitions)
        self.calls = 0

    # -- local use ------------------------------------------------------------------------
    def function_pool(self, name: str) -> FunctionPool:
        """A function pool by name."""
        try:
            return self.function_pools[name]
        except KeyError:
            raise MethodNotFoundError(f"unknown function pool {name!r}") from None

    def attachment_function_pool(self, name: str) -> AttachmentFunctionPool:
        """An attachment function pool by name."""
        try:
            return self.attachment_function_pools[name]
        except KeyError:
            raise MethodNotFoundError(f"unknown attachment function pool {name!r}") from None

    async def run_in_thread(self, conn: Connection, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a function in a worker thread (at most ``worker_threads`` at once).

        On asyncio a thread pool executor is used (cheaper than anyio's worker threads);
        elsewhere ``anyio.to_thread``. A cancelled call does not wait for the function: it
        finishes in the background and its result is discarded.

        Args:
            conn: The connection the call came on (tells the event loop).
            fn: A plain (blocking) function.
            *args: Its arguments.

        Returns:
            What the function returned.
        """
        loop = conn.asyncio_loop
        if loop is None:
            return await anyio.to_thread.run_sync(
                fn, *args, limiter=self._limiter, abandon_on_cancel=True
            )
        return await loop.run_in_executor(self._pool(), functools.partial(fn, *args))

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The worker threads (asyncio), created on first use."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self.worker_threads, thread_name_prefix=f"{self.name}-worker"
            )
        return self._executor

    # -- ServerApp ------------------------------------------------------------------------
    async def accept(self, hello: Hello, conn: Connection) -> dict[str, Any]:
        """Validate the client's hello and set up the connection."""
        creds = hello.fields.get("credentials")
        if self.authenticator is not None:
            try:
                accepted = self.authenticator(creds)
            except Exception as exc:  # a failing authenticator refuses, it does not crash
                log.warning("the authenticator failed: %r", exc)
                accepted = False
            if not accepted:
                raise AuthenticationError("credentials refused")
        defs = self.definitions
        raw = hello.fields.get("definitions")
        if raw:
            if type(raw) is not bytes:
                raise HandshakeError("definitions must be bytes")
            try:
                client_defs = decode_definitions(raw)
                if not defs.contains(client_defs):
                    defs = defs.copy()
                    defs.extend(client_defs)
            except DefinitionConflictError as exc:
                raise HandshakeError(f"definitions conflict: {exc}") from None
            except Exception as exc:  # undecodable bytes fail in many ways
                raise HandshakeError(f"bad definitions: {exc}") from None
        conn.handler = _ServiceHandler(self, defs)
        return {
            "server": self.name,
            "definitions": self._defs_bytes,
            "digest": self.definitions.hexdigest(),
            "pools": [*self.function_pools, *self.attachment_function_pools],
        }

    def connection_closed(self, conn: Connection) -> None:
        """Nothing is kept per connection."""


class _Inline:
    """What an inline call needs, computed once per function and connection: the argument
    decoders, the implementation and how to pass it the arguments, the result type."""

    __slots__ = ("decoders", "fn", "implementation", "plan", "result_type")

    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.decoders = [decoder(p.type) for p in fn.prototype.parameters]
        self.implementation = fn.implementation
        plan = fn.call_plan
        by_position = not plan.keyword_names or _same_positions(
            fn.implementation, plan.positional, plan.keyword_names
        )
        self.plan = None if by_position else plan  # None: everything by position
        self.result_type = fn.prototype.return_type


def _same_positions(impl: Callable[..., Any], skip: int, names: tuple[str, ...]) -> bool:
    """True if passing `names` by position (after `skip` positional arguments) binds them to
    the same parameters of `impl` as passing them by name."""
    try:
        params = list(inspect.signature(impl).parameters.values())
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params[: skip + len(names)] if p.kind in kinds]
    if len(positional) != skip + len(names):
        return False
    return tuple(p.name for p in positional[skip:]) == names


class _ServiceHandler:
    def __init__(self, service: Service, definitions: Definitions) -> None:
        self.service = service
        self.defs = definitions
        # found functions, by target then method; an inline function's entry is its _Inline
        self._entries: dict[str, dict[str, tuple[Function, bool] | _Inline]] = {}

    def handle_request(self, conn: Connection, req: Request) -> Any:
        self.service.calls += 1
        methods = self._entries.get(req.target)
        entry = methods.get(req.method) if methods is not None else None
        if entry is None:
            entry = self._entry(req.target, req.method)
        if type(entry) is _Inline:
            return self._inline(entry, req.args)
        assert type(entry) is tuple
        fn, attachment = entry
        if not attachment:
            args = self._args(fn, req.args)
            if conn.asyncio_loop is not None:  # no task: the connection answers the future
                return self.service._pool().submit(_typed_call, fn, args)
            return self._threaded(conn, fn, args)
        if not req.args or type(req.args[0]) is not int:
            raise InvalidArgumentsError("an attachment call starts with the lend id")
        args = self._args(fn, req.args[1:])
        loop = conn.asyncio_loop
        if loop is not None:  # no task: the worker thread settles the future
            proxy = AttachmentMutatingRemote(conn, req.args[0], self.defs)
            call: concurrent.futures.Future[Any] = concurrent.futures.Future()
            call.add_done_callback(proxy.cancel_if_cancelled)  # the client gave up
            self.service._pool().submit(_attachment_call, loop, conn, call, proxy, fn, args)
            return call
        return self._attachment_call(conn, fn, req.args[0], args)

    def _entry(self, target: str, method: str) -> tuple[Function, bool] | _Inline:
        """Resolve and remember what (target, method) names (MethodNotFoundError otherwise)."""
        fn, attachment = found = self._resolve(target, method)
        entry: tuple[Function, bool] | _Inline = found
        if fn.inline and not attachment:
            entry = _Inline(fn)
        self._entries.setdefault(target, {})[method] = entry
        return entry

    def _inline(self, entry: _Inline, wires: list[Any]) -> Any:
        """Call an inline function on the event loop; its wire result.

        The arguments are validated once, by their decoders (the values they produce are
        canonical), and the result once, by its encoder; a failure is reported through the
        general path, which names the function and the parameter.
        """
        decoders = entry.decoders
        if len(wires) != len(decoders):
            self._args(entry.fn, wires)  # raises InvalidArgumentsError
        defs = self.defs
        try:
            args = [dec(w, defs) for dec, w in zip(decoders, wires, strict=True)]
        except Exception:
            args = self._args(entry.fn, wires)  # raises with the parameter named
        plan = entry.plan
        if plan is None:
            result = entry.implementation(*args)
        else:
            result = plan.call(entry.implementation, (), args)
        try:
            return to_wire(result, entry.result_type)
        except Exception:
            fn = entry.fn
            fn.prototype.return_type.check(result, f"{fn.qualified_name}() result")
            raise

    def _resolve(self, target: str, method: str) -> tuple[Function, bool]:
        """The function a (target, method) names (MethodNotFoundError otherwise)."""
        if target.startswith("pool:"):
            pool = self.service.function_pools.get(target[5:])
            if pool is None:
                raise MethodNotFoundError(f"unknown function pool {target[5:]!r}")
            return _function(pool, method), False
        if target.startswith("apool:"):
            apool = self.service.attachment_function_pools.get(target[6:])
            if apool is None:
                raise MethodNotFoundError(f"unknown attachment function pool {target[6:]!r}")
            return _function(apool, method), True
        if target == "service":
            if method == "ping":
                return _PING, False
            raise MethodNotFoundError(f"the service has no method {method!r} (methods: ping)")
        raise MethodNotFoundError(f"unknown target {target!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        log.debug("ignored notification %s.%s", notify.target, notify.method)

    def _args(self, fn: Function, wires: list[Any]) -> list[Any]:
        params = fn.prototype.parameters
        if len(wires) != len(params):
            raise InvalidArgumentsError(
                f"{fn.name} takes {len(params)} argument(s), got {len(wires)}",
                {"expected": [f"{p.type} {p.name}" for p in params]},
            )
        try:
            return [from_wire(w, p.type, self.defs) for w, p in zip(wires, params, strict=True)]
        except Exception as exc:  # DecodeError, ValidationError, or worse on garbage
            raise InvalidArgumentsError(
                f"{fn.qualified_name}: {exc}",
                {"expected": [f"{p.type} {p.name}" for p in params]},
            ) from None

    async def _threaded(self, conn: Connection, fn: Function, args: list[Any]) -> Any:
        # a cancelled call (or a lost client) does not hold its connection until the
        # function returns: the function finishes in the background, its result discarded
        result = await self.service.run_in_thread(conn, fn, *args)
        return to_wire(result, fn.prototype.return_type)

    async def _attachment_call(
        self, conn: Connection, fn: Function, lend_id: int, args: list[Any]
    ) -> Any:
        proxy = AttachmentMutatingRemote(conn, lend_id, self.defs)
        try:
            result = await self.service.run_in_thread(conn, fn, proxy, *args)
        except anyio.get_cancelled_exc_class():
            proxy.cancel()  # the abandoned thread stops at its next callback
            raise
        except BaseException:
            proxy.send_pending()  # the client keeps what the function did before failing
            raise
        # sends what is buffered, unconfirmed: the client applies it before the result and
        # raises the first mutation it refused as the call's error
        await proxy.finish_async()
        return to_wire(result, fn.prototype.return_type)


def _attachment_call(
    loop: asyncio.AbstractEventLoop,
    conn: Connection,
    call: concurrent.futures.Future[Any],
    proxy: AttachmentMutatingRemote,
    fn: Function,
    args: list[Any],
) -> None:
    """Run an attachment function in a worker thread and settle `call` (which the
    connection answers; it stays pending while the function runs, so cancelling it, from the
    event loop, cancels the proxy and releases a read in progress).

    The mutations still buffered are handed to the event loop before `call` is settled:
    callbacks run in order, so they are written before the answer (after a failure too, so
    the client keeps what the function did before failing, as a local call would).
    """
    if call.cancelled():  # the client gave up before the function started
        return
    try:
        result = to_wire(fn(proxy, *args), fn.prototype.return_type)
    except BaseException as exc:
        _send_before_answer(loop, conn, proxy)
        _settle(call, None, exc)
        if not isinstance(exc, Exception):
            raise
        return
    _send_before_answer(loop, conn, proxy)
    _settle(call, result, None)


def _send_before_answer(
    loop: asyncio.AbstractEventLoop, conn: Connection, proxy: AttachmentMutatingRemote
) -> None:
    frames = proxy.take_frames()
    if frames and not proxy.cancelled:
        try:
            loop.call_soon_threadsafe(_send_frames_quietly, conn, frames)
        except RuntimeError:  # the event loop is closed: nobody to send them to
            pass


def _send_frames_quietly(conn: Connection, frames: bytes) -> None:
    try:
        conn.send_frames_nowait(frames)
    except ConnectionClosedError:
        pass


def _settle(call: concurrent.futures.Future[Any], result: Any, exc: BaseException | None) -> None:
    try:
        if exc is None:
            call.set_result(result)
        else:
            call.set_exception(exc)
    except concurrent.futures.InvalidStateError:  # cancelled meanwhile: nobody waits
        pass


def _typed_call(fn: Function, args: list[Any]) -> Any:
    """Run a function in a worker thread; its wire result."""
    return to_wire(fn(*args), fn.prototype.return_type)


def _ping() -> str:
    """Answer a ping."""
    return "pong"


_PING = Function(FunctionPrototype("ping", [], STRING), _ping, inline=True)


def _function(pool: FunctionPool, name: str) -> Function:
    fn = pool.query(name)
    if fn is None:
        raise MethodNotFoundError(
            f"pool {pool.name} has no function {name!r}",
            {"functions": sorted(f.name for f in pool.functions())},
        )
    return fn
