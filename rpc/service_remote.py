"""ServiceRemote: the client of a Service, discovered at connect time.

::

    async with ServiceRemote.connect("tcp://127.0.0.1:54320") as remote:
        add = remote.function_pool("Tools").check("add")
        assert await add(32, 10) == 42
        assert await remote.pools.Tools.add(1, 2) == 3
        key = await remote.attachment_pools.ModelGraph.newVertex(mutable_state, graph_key, 5, pos)

The definitions passed to ``connect`` (or a fresh one) are extended in place with the
service's, pool declarations included; arguments are validated against the prototypes
before sending and results are decoded into typed values.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any

from commitdb.codec import encoder, from_wire, to_wire
from commitdb.definitions import Definitions
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import DefinitionConflictError, NotFoundError
from commitdb.prototypes import FunctionPrototype, PoolDeclaration
from rpc.client import open_connection
from rpc.connection import Connection
from rpc.errors import HandshakeError, MethodNotFoundError
from rpc.packets import Notify, Request
from rpc.pools import GETTING_METHODS, MUTATING_METHODS
from rpc.remote_local import Lender, WireDecoder

__all__ = (
    "RemoteAttachmentFunction",
    "RemoteFunction",
    "RemoteFunctionPool",
    "ServiceRemote",
)


class RemoteFunction:
    """A remote FunctionPool function: ``await f(*args)``."""

    def __init__(
        self, remote: ServiceRemote, pool: PoolDeclaration, prototype: FunctionPrototype
    ) -> None:
        """Bind a declared function to a remote.

        Args:
            remote: The connected remote.
            pool: The pool declaration.
            prototype: The function's prototype.
        """
        self._remote = remote
        self.pool = pool
        self.prototype = prototype
        self.name = prototype.name
        self.documentation = prototype.documentation
        prefix = "apool:" if pool.attachment else "pool:"
        self._target = prefix + pool.name
        self._where = f"{pool.name}.{prototype.name}"
        self._types = [p.type for p in prototype.parameters]
        self._encoders = [encoder(t) for t in self._types]  # validate canonical values

    def __repr__(self) -> str:
        return f"<remote {self.pool.name}.{self.name}{self.prototype!r}>"

    def _wire_args(self, args: tuple[Any, ...]) -> list[Any]:
        encoders = self._encoders
        if len(args) == len(encoders):
            try:  # canonical arguments: one validation, by the encoders
                return [enc(a) for enc, a in zip(encoders, args, strict=True)]
            except Exception:  # not canonical: normalized, or refused naming the parameter
                pass
        values = self.prototype.check_arguments(args, self._where)
        return [to_wire(v, t) for v, t in zip(values, self._types, strict=True)]

    async def __call__(self, *args: Any, timeout: float | None = None) -> Any:
        """Call the function on the service.

        Args:
            *args: The arguments, validated against the prototype before sending.
            timeout: Seconds to wait (default: the remote's timeout; None: no limit).

        Returns:
            The typed result.

        Raises:
            ValidationError: Wrong argument count or types (nothing is sent).
            CallTimeoutError: No answer in time (the call is cancelled on the server).
            RemoteError: The server function raised (engine errors keep their class).
        """
        wires = self._wire_args(args)
        r = self._remote
        w = await r.connection.call(self._target, self.name, wires, timeout=timeout or r.timeout)
        return from_wire(w, self.prototype.return_type, r._defs)


class RemoteAttachmentFunction(RemoteFunction):
    """A remote AttachmentFunctionPool function: ``await f(state, *args)``.

    The state (a CommitMutableState, or anything with the same methods) is lent for the
    duration of the call: the server's reads and mutations are applied to it locally.
    """

    @property
    def mutable(self) -> bool:
        """True for a function that mutates the state."""
        return self.prototype.mutable

    async def __call__(self, state: Any, *args: Any, timeout: float | None = None) -> Any:  # type: ignore[override]
        needed = MUTATING_METHODS if self.mutable else GETTING_METHODS
        missing = [m for m in needed if not callable(getattr(state, m, None))]
        if missing:
            raise TypeError(
                f"{self.pool.name}.{self.name} needs an attachment "
                f"{'mutating' if self.mutable else 'getting'} state as first argument; "
                f"{type(state).__name__} lacks {', '.join(missing)}"
            )
        wires = self._wire_args(args)
        r = self._remote
        lend_id, lender = r._lend(state, mutable=self.mutable)
        try:
            w = await r.connection.call(
                self._target, self.name, [lend_id, *wires], timeout=timeout or r.timeout
            )
        finally:
            r._lenders.pop(lend_id, None)
        if lender.error is not None:
            raise lender.error
        return from_wire(w, self.prototype.return_type, r.definitions())


class RemoteFunctionPool:
    """A remote pool: ``check``/``query`` functions, or attribute access."""

    def __init__(self, remote: ServiceRemote, declaration: PoolDeclaration) -> None:
        self._remote = remote
        self.declaration = declaration
        self.name = declaration.name
        self.uuid = declaration.uuid
        self.documentation = declaration.documentation
        cls = RemoteAttachmentFunction if declaration.attachment else RemoteFunction
        self._functions = {n: cls(remote, declaration, p) for n, p in declaration.functions.items()}

    def __repr__(self) -> str:
        return f"<remote {self.declaration.kind} {self.name}>"

    def functions(self) -> list[RemoteFunction]:
        """The pool's functions."""
        return list(self._functions.values())

    def query(self, name: str) -> RemoteFunction | None:
        """A function by name, or None."""
        return self._functions.get(name)

    def check(self, name: str) -> RemoteFunction:
        """A function by name (raises NotFoundError listing the functions)."""
        f = self._functions.get(name)
        if f is None:
            raise NotFoundError(
                f"pool {self.name} has no function {name!r} (functions: {', '.join(sorted(self._functions))})"
            )
        return f

    def __getattr__(self, name: str) -> RemoteFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        f = self._functions.get(name)
        if f is None:
            raise AttributeError(f"pool {self.name} has no function {name!r}")
        return f

    def __dir__(self) -> list[str]:
        return sorted(self._functions)

    def __len__(self) -> int:
        return len(self._functions)


class _Pools:
    def __init__(self, pools: dict[str, RemoteFunctionPool]) -> None:
        self._pools = pools

    def __getattr__(self, name: str) -> RemoteFunctionPool:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._pools[name]
        except KeyError:
            raise AttributeError(
                f"no pool {name!r} (pools: {', '.join(sorted(self._pools))})"
            ) from None

    def __getitem__(self, name: str) -> RemoteFunctionPool:
        return self._pools[name]

    def __dir__(self) -> list[str]:
        return sorted(self._pools)

    def __iter__(self) -> Any:
        return iter(self._pools.values())


class _ClientHandler:
    def __init__(self, remote: ServiceRemote) -> None:
        self.remote = remote

    def _lender(self, target: str) -> Lender | None:
        if not target.startswith("cb:") or not target[3:].isdigit():
            return None
        return self.remote._lenders.get(int(target[3:]))

    def handle_request(self, conn: Connection, req: Request) -> Any:
        lender = self._lender(req.target)
        if lender is None:
            if not req.target.startswith("cb:"):
                raise MethodNotFoundError(f"this client serves no {req.target!r}")
            raise MethodNotFoundError(f"no call is lending state {req.target!r}")
        return lender.request(req.method, req.args)

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        lender = self._lender(notify.target)
        if lender is not None:  # mutations of a call that ended (timeout) are dropped
            lender.notify(notify.method, notify.args)


class ServiceRemote:
    """An async client of a Service (use :meth:`connect`)."""

    def __init__(
        self,
        connection: Connection,
        definitions: Definitions,
        welcome: dict[str, Any],
        timeout: float | None,
    ) -> None:
        self.connection = connection
        self._defs = definitions
        self.welcome = welcome
        self.timeout = timeout
        self._lenders: dict[int, Lender] = {}
        self._decoder = WireDecoder(definitions)
        self._lend_ids = itertools.count(1)
        pools = {p.name: RemoteFunctionPool(self, p) for p in definitions.pools()}
        # the pools the service serves (not those the client's own definitions declare)
        served = welcome.get("pools")
        offered = set(served) if isinstance(served, list) else set(pools)
        self._function_pools = {
            n: p for n, p in pools.items() if not p.declaration.attachment and n in offered
        }
        self._attachment_pools = {
            n: p for n, p in pools.items() if p.declaration.attachment and n in offered
        }
        self.pools = _Pools(self._function_pools)
        self.attachment_pools = _Pools(self._attachment_pools)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        definitions: Definitions | None = None,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[ServiceRemote]:
        """Connect, handshake and discover the service; closes on exit."""
        defs = definitions if definitions is not None else Definitions()
        hello: dict[str, Any] = {"client": "commitdb-python", "digest": defs.hexdigest()}
        if defs.runtime_ids():
            hello["definitions"] = encode_definitions(defs)
        if credentials is not None:
            hello["credentials"] = credentials
        conn, welcome = await open_connection(
            url,
            hello,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            timeout=connect_timeout,
        )
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(conn)
            raw = welcome.get("definitions")
            if type(raw) is not bytes:
                raise HandshakeError("the service sent no definitions")
            try:
                defs.extend(decode_definitions(raw))
            except DefinitionConflictError as exc:
                raise HandshakeError(f"definitions conflict with the service: {exc}") from None
            remote = cls(conn, defs, welcome, timeout)
            conn.handler = _ClientHandler(remote)  # callbacks only come after our first call
            yield remote

    async def __aenter__(self) -> ServiceRemote:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection."""
        await self.connection.aclose()

    def is_closed(self) -> bool:
        """True once the connection is closed."""
        return self.connection.closed

    def definitions(self) -> Definitions:
        """The client's definitions, extended with the service's."""
        return self._defs

    def _lend(self, state: Any, *, mutable: bool) -> tuple[int, Lender]:
        lend_id = next(self._lend_ids)
        lender = Lender(state, self._defs, mutable=mutable, decoder=self._decoder)
        self._lenders[lend_id] = lender
        return lend_id, lender

    def function_pools(self) -> list[RemoteFunctionPool]:
        """The service's function pools."""
        return list(self._function_pools.values())

    def attachment_function_pools(self) -> list[RemoteFunctionPool]:
        """The service's attachment function pools."""
        return list(self._attachment_pools.values())

    def function_pool(self, name: str) -> RemoteFunctionPool:
        """A function pool by name (raises NotFoundError)."""
        p = self._function_pools.get(name)
        if p is None:
            raise NotFoundError(
                f"the service has no function pool {name!r} (pools: {', '.join(sorted(self._function_pools))})"
            )
        return p

    def attachment_function_pool(self, name: str) -> RemoteFunctionPool:
        """An attachment function pool by name (raises NotFoundError)."""
        p = self._attachment_pools.get(name)
        if p is None:
            raise NotFoundError(
                f"the service has no attachment function pool {name!r} "
                f"(pools: {', '.join(sorted(self._attachment_pools))})"
            )
        return p

    def query_function_pool(self, name: str) -> RemoteFunctionPool | None:
        """A function pool by name, or None."""
        return self._function_pools.get(name)

    def query_attachment_function_pool(self, name: str) -> RemoteFunctionPool | None:
        """An attachment function pool by name, or None."""
        return self._attachment_pools.get(name)

    async def ping(self) -> str:
        """A round trip to the service."""
        return str(await self.connection.call("service", "ping", [], timeout=self.timeout))

    def to_dsm(self) -> str:
        """The service's definitions and pools as DSM text."""
        from commitdb.dsm import to_dsm

        return to_dsm(self._defs)
