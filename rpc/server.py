"""RPCServer: accepts connections on TCP / Unix / TLS endpoints and hands them to an app.

The server does the transport and the handshake framing; the *app* (a
:class:`~rpc.service.Service`, a database server, ...) validates the client's hello, sets the
connection's request handler and returns the welcome fields. Many clients are served at
once, each connection in its own task; shutdown is graceful: listeners close first, then
connections get a grace period to finish their in-flight requests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import ssl
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from rpc.connection import Connection, read_frame
from rpc.errors import (
    ConnectionClosedError,
    HandshakeError,
    ProtocolError,
    RPCError,
    error_to_wire,
)
from rpc.framing import DEFAULT_MAX_FRAME_SIZE, FrameParser, encode_frame
from rpc.packets import PROTOCOL_VERSION, Hello, decode_packet, encode_error, encode_hello
from rpc.transports import Endpoint, create_listener, parse_endpoint

__all__ = ("RPCServer", "ServerApp")

log = logging.getLogger("rpc.server")

_BROKEN = (anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError)


class ServerApp(Protocol):
    """What an RPCServer serves."""

    name: str

    async def accept(self, hello: Hello, conn: Connection) -> dict[str, Any]:
        """Validate a client's hello, set ``conn.handler``; return the welcome fields
        (raise HandshakeError to refuse)."""

    def connection_closed(self, conn: Connection) -> None:
        """A connection of this app ended."""


class RPCServer:
    """Serves an app on one or more endpoints (an async context manager)."""

    def __init__(
        self,
        app: ServerApp,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        handshake_timeout: float = 10.0,
        grace: float = 5.0,
        debug: bool = True,
    ) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.max_frame_size = max_frame_size
        self.handshake_timeout = handshake_timeout
        self.grace = grace
        self.debug = debug
        self.connections: set[Connection] = set()
        self.endpoints: list[Endpoint] = []
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._listener_scopes: list[anyio.CancelScope] = []
        self._handshakes: set[anyio.CancelScope] = set()
        self._closing = False
        self.accepted = 0

    async def __aenter__(self) -> RPCServer:
        stack = AsyncExitStack()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def listen(self, url: str | Endpoint) -> Endpoint:
        """Start listening.

        Args:
            url: A transport URL or endpoint (port 0 picks a free port).

        Returns:
            The bound endpoint (with the actual port).

        Raises:
            RPCError: The server's context was not entered.
        """
        if self._tg is None:
            raise RPCError("enter the server's context before listening")
        ep = parse_endpoint(url) if isinstance(url, str) else url
        if ep.tls and self.ssl_context is None:
            raise ValueError(f"{ep}: TLS needs a server certificate (ssl_context)")
        # TLS is set up per connection in _handle, inside the handshake timeout and scope
        listener = await create_listener(dataclasses.replace(ep, tls=False))
        if ep.scheme == "tcp":
            sock_listener = listener
            inner = getattr(sock_listener, "listener", sock_listener)
            address: Any = inner.extra(anyio.abc.SocketAttribute.local_address)
            host, port = address[0], address[1]
            ep = Endpoint("tcp", str(host), int(port), tls=ep.tls)
        self.endpoints.append(ep)
        scope = anyio.CancelScope()
        self._listener_scopes.append(scope)
        inode = os.stat(ep.path).st_ino if ep.scheme == "unix" else None
        self._tg.start_soon(self._serve_listener, listener, scope, ep, inode)
        log.info("%s listening on %s", self.app.name, ep)
        return ep

    async def _serve_listener(
        self,
        listener: anyio.abc.Listener[anyio.abc.ByteStream],
        scope: anyio.CancelScope,
        ep: Endpoint,
        inode: int | None,
    ) -> None:
        try:
            await self._accept_loop(listener, scope, ep.tls)
        finally:
            if inode is not None:  # remove our socket file (not one that replaced it)
                with contextlib.suppress(OSError):
                    if os.stat(ep.path).st_ino == inode:
                        os.unlink(ep.path)

    async def _accept_loop(
        self,
        listener: anyio.abc.Listener[anyio.abc.ByteStream],
        scope: anyio.CancelScope,
        tls: bool,
    ) -> None:
        with scope:
            async with listener:
                # the connections run in the server's task group, not in the listener's:
                # closing the listener must not cancel them (graceful shutdown)
                await listener.serve(functools.partial(self._handle, tls), task_group=self._tg)

    async def _handle(self, tls: bool, stream: anyio.abc.ByteStream) -> None:
        parser = FrameParser(self.max_frame_size)
        conn: Connection | None = None
        handshake = anyio.CancelScope()
        self._handshakes.add(handshake)
        if self._closing:
            handshake.cancel()
        try:
            with handshake:
                if tls:
                    secured = await self._start_tls(stream)
                    if secured is None:
                        return
                    stream = secured
                conn = await self._handshake(stream, parser)
            self._handshakes.discard(handshake)
            if conn is None:
                return
            self.accepted += 1
            async with conn:
                self.connections.add(conn)
                if self._closing:  # accepted while the server was shutting down
                    conn.close()
                await conn.closed_event.wait()
        except Exception:
            log.exception("connection handler failed")
        finally:
            self._handshakes.discard(handshake)
            if conn is not None:
                self.connections.discard(conn)
                try:
                    self.app.connection_closed(conn)
                except Exception:
                    log.exception("connection_closed hook failed")
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _start_tls(self, stream: anyio.abc.ByteStream) -> TLSStream | None:
        """The TLS handshake, bounded by the handshake timeout (None: it failed)."""
        assert self.ssl_context is not None
        try:
            with anyio.fail_after(self.handshake_timeout):
                return await TLSStream.wrap(
                    stream,
                    server_side=True,
                    ssl_context=self.ssl_context,
                    standard_compatible=False,
                )
        except (TimeoutError, ssl.SSLError, OSError, *_BROKEN) as exc:
            # a client's mistake (no or untrusted certificate, plain TCP on a TLS port), not
            # the server's: one line, no traceback
            log.warning("TLS handshake with %s failed: %s", _peer(stream), _tls_reason(exc))
            return None

    async def _handshake(
        self, stream: anyio.abc.ByteStream, parser: FrameParser
    ) -> Connection | None:
        """Read the hello, let the app accept it, send the welcome (None: refused)."""
        try:
            with anyio.fail_after(self.handshake_timeout):
                frame = await read_frame(stream, parser)
            pkt = decode_packet(frame)
            if not isinstance(pkt, Hello) or pkt.welcome:
                raise ProtocolError("the first packet must be a hello")
            if pkt.version != PROTOCOL_VERSION:
                raise HandshakeError(
                    f"protocol version {pkt.version} is not supported "
                    f"(this server speaks {PROTOCOL_VERSION})"
                )
            conn = Connection(
                stream,
                None,
                parser=parser,
                name=f"{self.app.name}#{self.accepted + 1}",
                debug=self.debug,
            )
            welcome = await self.app.accept(pkt, conn)
            await stream.send(encode_frame(encode_hello(PROTOCOL_VERSION, welcome, welcome=True)))
            return conn
        except ConnectionClosedError as exc:
            log.info("handshake aborted: %s", exc)
            return None
        except (RPCError, TimeoutError, ValueError) as exc:
            if isinstance(exc, TimeoutError):
                exc = HandshakeError("no hello within the handshake timeout")
            log.info("handshake refused: %s", exc)
            code, message, data = error_to_wire(exc)
            with anyio.move_on_after(1):
                try:
                    await stream.send(encode_frame(encode_error(0, code, message, data)))
                except Exception:
                    log.debug("could not report the handshake error", exc_info=True)
            return None

    async def aclose(self) -> None:
        """Stop listening, let connections finish in-flight requests (grace period), close.

        Connections still in their handshake are dropped at once.
        """
        self._closing = True
        for scope in self._listener_scopes:
            scope.cancel()
        for scope in list(self._handshakes):
            scope.cancel()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.grace):
                while any(c.inflight_requests for c in self.connections):
                    await anyio.sleep(0.01)
            for c in list(self.connections):
                c.close_gracefully()  # the answers already queued still go out
            with anyio.move_on_after(min(self.grace, 1.0)):
                while any(not c.closed for c in self.connections):
                    await anyio.sleep(0.01)
            for c in list(self.connections):
                c.close()  # each connection's own task exits its context
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()


def _peer(stream: anyio.abc.ByteStream) -> str:
    """``host:port`` of the client (or "a local socket")."""
    address = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address) if address else "a local socket"


def _tls_reason(exc: BaseException) -> str:
    """Why a TLS handshake failed, in words."""
    if isinstance(exc, TimeoutError):
        return "no handshake within the handshake timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate refused ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).replace("_", " ").lower()
        if exc.reason == "WRONG_VERSION_NUMBER" or exc.reason == "HTTP_REQUEST":
            reason += " (not a TLS client?)"
        return reason
    return str(exc) or type(exc).__name__
