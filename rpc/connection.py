"""An async, bidirectional, multiplexed connection over any anyio byte stream.

One reader task parses frames and dispatches packets; one writer task coalesces every
queued outgoing frame into a single ``send`` (a lock held around ``send`` would cut
throughput five-fold). Many calls are in flight at once in both directions, matched by id.

Inbound requests go to a :class:`RequestHandler`. A handler that returns a plain value is
answered inline, without a task (cheap requests cost no scheduling); one that returns an
awaitable runs as a task of the connection's task group and can be cancelled by the peer.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol

import anyio
import anyio.abc

from rpc.errors import (
    CallCancelledError,
    CallTimeoutError,
    ConnectionClosedError,
    FrameTooLargeError,
    ProtocolError,
    RPCError,
    error_from_wire,
    error_to_wire,
)
from rpc.framing import DEFAULT_MAX_FRAME_SIZE, FrameParser, encode_frame
from rpc.packets import (
    Cancel,
    Error,
    Hello,
    Notify,
    Request,
    Result,
    decode_packet,
    encode_cancel,
    encode_error,
    encode_notify,
    encode_request,
    encode_result,
)

__all__ = ("Connection", "RequestHandler", "read_frame")

log = logging.getLogger("rpc.connection")

_HIGH_WATER = 8 * 1024 * 1024  # queued outgoing bytes before async senders wait
_MAX_PROTOCOL_ERRORS = 16  # malformed packets tolerated on one connection before closing it


class RequestHandler(Protocol):
    """Serves what the peer sends on a connection."""

    def handle_request(self, conn: Connection, request: Request) -> Any:
        """Return the wire result, or an awaitable of it (raise to answer with an error)."""

    def handle_notify(self, conn: Connection, notify: Notify) -> Any:
        """Handle a notification (may return an awaitable)."""


class _Pending:
    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


async def read_frame(stream: anyio.abc.ByteReceiveStream, parser: FrameParser) -> bytes:
    """Read exactly one frame (leftover bytes stay in the parser)."""
    pending = parser.feed(b"")
    while not pending:
        try:
            data = await stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ConnectionClosedError("connection closed during the handshake") from None
        pending = parser.feed(data)
    if len(pending) > 1:
        raise ProtocolError("unexpected frames during the handshake")
    return pending[0]


class Connection:
    """A multiplexed RPC connection (use as an async context manager)."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        handler: RequestHandler | None = None,
        *,
        parser: FrameParser | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        name: str = "",
        debug: bool = True,
    ) -> None:
        self._stream = stream
        self.handler = handler
        self._parser = parser or FrameParser(max_frame_size)
        self.name = name
        self.debug = debug
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._inflight: dict[int, anyio.CancelScope] = {}
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._wake = anyio.Event()
        self._drained = anyio.Event()
        self._closed = False
        self._close_reason: BaseException | None = None
        self._protocol_errors = 0
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._owner = -1
        self.closed_event = anyio.Event()
        self.state: dict[str, Any] = {}  # per-connection data for services (auth, sessions)

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Connection:
        stack = AsyncExitStack()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        self._stack = stack
        self._owner = anyio.get_current_task().id
        self._tg.start_soon(self._reader)
        self._tg.start_soon(self._writer)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; calls in flight fail with ConnectionClosedError.

        From the task that entered the connection this also ends its tasks; from any other
        task it only signals the owner (a task group is exited by the task that entered it).
        """
        self._shutdown(ConnectionClosedError("connection closed"))
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except Exception:  # already broken
                log.debug("closing a broken stream", exc_info=True)
        if self._stack is not None and anyio.get_current_task().id == self._owner:
            stack, self._stack = self._stack, None
            await stack.aclose()

    def close(self) -> None:
        """Signal the connection to close (from any task of the event loop)."""
        self._shutdown(ConnectionClosedError("connection closed"))

    def _shutdown(self, reason: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        for p in self._pending.values():
            if not p.event.is_set():
                p.error = reason
                p.event.set()
        for scope in self._inflight.values():
            scope.cancel()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._wake.set()
        self._drained.set()
        self.closed_event.set()

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._closed

    @property
    def pending_calls(self) -> int:
        """Our calls waiting for an answer."""
        return len(self._pending)

    @property
    def inflight_requests(self) -> int:
        """The peer's requests being served as tasks."""
        return len(self._inflight)

    def extra(self, attribute: Any, default: Any = None) -> Any:
        """A stream attribute (e.g. ``anyio.abc.SocketAttribute.remote_address``)."""
        return self._stream.extra(attribute, default)

    # -- sending --------------------------------------------------------------------------
    def send_nowait(self, payload: bytes) -> None:
        """Queue an encoded packet (event-loop thread only)."""
        if self._closed:
            raise ConnectionClosedError("connection closed") from self._close_reason
        frame = encode_frame(payload)
        self._out.append(frame)
        self._out_bytes += len(frame)
        self._wake.set()

    async def _wait_drained(self) -> None:
        if self._out_bytes > _HIGH_WATER:
            if self._drained.is_set():
                self._drained = anyio.Event()
            await self._drained.wait()

    async def _writer(self) -> None:
        stream = self._stream
        try:
            while not self._closed:
                await self._wake.wait()
                self._wake = anyio.Event()
                if not self._out:
                    continue
                out, self._out = self._out, []
                self._out_bytes = 0
                data = out[0] if len(out) == 1 else b"".join(out)
                await stream.send(data)
                if not self._drained.is_set():
                    self._drained.set()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._shutdown(ConnectionClosedError(f"connection lost while sending: {exc}"))

    async def call(
        self, target: str, method: str, args: list[Any], *, timeout: float | None = None
    ) -> Any:
        """Send a request and wait for its wire result (raises the peer's error)."""
        if self._closed:
            raise ConnectionClosedError("connection closed") from self._close_reason
        call_id = next(self._ids)
        p = _Pending()
        self._pending[call_id] = p
        try:
            self.send_nowait(encode_request(call_id, target, method, args))
            if self._out_bytes > _HIGH_WATER:
                await self._wait_drained()
            if timeout is None:
                await p.event.wait()
            else:
                with anyio.fail_after(timeout if timeout > 0 else math.inf):
                    await p.event.wait()
        except TimeoutError:
            self._cancel_remote(call_id)
            raise CallTimeoutError(f"{target}.{method} timed out after {timeout} s") from None
        except BaseException:
            if not p.event.is_set():
                self._cancel_remote(call_id)
            raise
        finally:
            self._pending.pop(call_id, None)
        if p.error is not None:
            raise p.error
        return p.value

    def _cancel_remote(self, call_id: int) -> None:
        if not self._closed:
            try:
                self.send_nowait(encode_cancel(call_id))
            except ConnectionClosedError:
                pass

    async def notify(self, target: str, method: str, args: list[Any]) -> None:
        """Send a notification."""
        self.send_nowait(encode_notify(target, method, args))
        if self._out_bytes > _HIGH_WATER:
            await self._wait_drained()

    def notify_nowait(self, target: str, method: str, args: list[Any]) -> None:
        """Queue a notification without waiting (event-loop thread only)."""
        self.send_nowait(encode_notify(target, method, args))

    # -- receiving ------------------------------------------------------------------------
    async def _reader(self) -> None:
        stream = self._stream
        parser = self._parser
        reason: BaseException = ConnectionClosedError("connection closed by the peer")
        try:
            frames = parser.feed(b"")
            while True:
                for frame in frames:
                    self._dispatch(frame)
                if self._closed:
                    return
                data = await stream.receive(262144)
                try:
                    frames = parser.feed(data)
                except FrameTooLargeError as exc:
                    log.warning("%s: %s; closing the connection", self.name, exc)
                    self._send_error_quietly(0, exc)
                    await self._flush_then_close(exc)
                    return
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # a bug in a handler must not leave callers hanging
            log.exception("%s: reader failed", self.name)
            reason = ConnectionClosedError(f"connection failed: {exc}")
        self._shutdown(reason)

    async def _flush_then_close(self, reason: BaseException) -> None:
        if self._out:
            out, self._out = self._out, []
            with anyio.move_on_after(1):
                try:
                    await self._stream.send(b"".join(out))
                except Exception:
                    log.debug("flush before close failed", exc_info=True)
        self._shutdown(ConnectionClosedError(f"connection closed: {reason}"))

    def _send_error_quietly(self, call_id: int, exc: BaseException) -> None:
        code, message, data = error_to_wire(exc, debug=self.debug)
        try:
            self.send_nowait(encode_error(call_id, code, message, data))
        except ConnectionClosedError:
            pass

    def _dispatch(self, frame: bytes) -> None:
        try:
            pkt = decode_packet(frame)
        except ProtocolError as exc:
            self._protocol_errors += 1
            log.info("%s: protocol error: %s", self.name, exc)
            self._send_error_quietly(0, exc)
            if self._protocol_errors > _MAX_PROTOCOL_ERRORS:
                self._shutdown(ConnectionClosedError("too many protocol errors"))
            return
        if isinstance(pkt, Result):
            p = self._pending.get(pkt.id)
            if p is not None and not p.event.is_set():
                p.value = pkt.value
                p.event.set()
        elif isinstance(pkt, Error):
            if pkt.id == 0:
                log.info("%s: peer reported: [%s] %s", self.name, pkt.code, pkt.message)
                return
            p = self._pending.get(pkt.id)
            if p is not None and not p.event.is_set():
                p.error = error_from_wire(pkt.code, pkt.message, pkt.data)
                p.event.set()
        elif isinstance(pkt, Request):
            self._on_request(pkt)
        elif isinstance(pkt, Notify):
            self._on_notify(pkt)
        elif isinstance(pkt, Cancel):
            scope = self._inflight.get(pkt.id)
            if scope is not None:
                scope.cancel()
        elif isinstance(pkt, Hello):
            self._protocol_errors += 1
            self._send_error_quietly(0, ProtocolError("unexpected handshake packet"))

    def _on_request(self, req: Request) -> None:
        handler = self.handler
        if handler is None:
            self._send_error_quietly(req.id, RPCError("this peer serves no requests"))
            return
        try:
            result = handler.handle_request(self, req)
        except Exception as exc:
            self._send_error_quietly(req.id, exc)
            return
        if inspect.isawaitable(result):
            assert self._tg is not None
            scope = anyio.CancelScope()
            self._inflight[req.id] = scope
            self._tg.start_soon(self._serve_request, req.id, result, scope)
            return
        try:
            self.send_nowait(encode_result(req.id, result))
        except ConnectionClosedError:
            pass
        except Exception as exc:  # the result could not be encoded
            self._send_error_quietly(req.id, exc)

    async def _serve_request(
        self, call_id: int, work: Awaitable[Any], scope: anyio.CancelScope
    ) -> None:
        try:
            with scope:
                try:
                    value = await work
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:
                    self._send_error_quietly(call_id, exc)
                    return
                try:
                    self.send_nowait(encode_result(call_id, value))
                except ConnectionClosedError:
                    pass
                except Exception as exc:
                    self._send_error_quietly(call_id, exc)
            if scope.cancelled_caught and not self._closed:
                self._send_error_quietly(call_id, CallCancelledError("cancelled"))
        finally:
            self._inflight.pop(call_id, None)

    def _on_notify(self, note: Notify) -> None:
        handler = self.handler
        if handler is None:
            return
        try:
            result = handler.handle_notify(self, note)
        except Exception:
            log.exception("%s: notification handler failed", self.name)
            return
        if inspect.isawaitable(result):
            assert self._tg is not None
            self._tg.start_soon(self._serve_notify, result)

    async def _serve_notify(self, work: Awaitable[Any]) -> None:
        try:
            await work
        except Exception:
            log.exception("%s: notification handler failed", self.name)

    def start_soon(self, fn: Any, *args: Any) -> None:
        """Run a task in the connection's task group (ends with the connection)."""
        assert self._tg is not None
        self._tg.start_soon(fn, *args)
