"""An async, bidirectional, multiplexed connection over any anyio byte stream.

Many calls are in flight at once in both directions, matched by id. Outgoing frames are
never written under a lock (that cuts throughput five-fold): they are queued and coalesced.
Two I/O modes, chosen when the connection is entered:

* **transport mode** (a TCP stream of anyio's asyncio backend, uvloop included): the
  connection takes over the stream's asyncio transport with its own protocol. Received bytes
  are parsed and dispatched in the protocol's callback (no reader task, no stream-level
  checkpoints); the frames queued by callers during one event-loop iteration go out in one
  ``transport.write`` at the next iteration; the answers of inline requests are written every
  :attr:`Connection.flush_every` frames while a received batch is being served, so the peer
  works on the first answers while the rest are computed (the two processes overlap instead
  of alternating in lock-step). Flow control uses the transport's write-buffer limits.
* **stream mode** (TLS, Unix sockets, trio): one reader task parses frames and dispatches
  packets; one writer task coalesces every queued frame into a single ``send``; the answers
  the reader produces itself (inline requests) are sent by the reader at the end of each
  batch of frames, saving a task switch per request.

Inbound requests go to a :class:`RequestHandler`. A handler that returns a plain value is
answered inline, without a task (cheap requests cost no scheduling); one that returns an
awaitable runs as a task of the connection's task group and can be cancelled by the peer; on
asyncio, one that returns a :class:`concurrent.futures.Future` (work submitted to a thread
pool) is answered when the future completes, without a task (a cancelled request is answered
at once and the thread's result discarded).

The connection's own tasks (reader, writer, served requests) each run in their own cancel
scope: closing the connection — because the peer went away, or from any task — cancels
them, never the code of the task that entered the connection (that code sees its calls fail
with :class:`~rpc.errors.ConnectionClosedError` and goes on).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.from_thread

from commitdb.codec import pack, unpack
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
from rpc.framing import DEFAULT_MAX_FRAME_SIZE, FrameParser
from rpc.packets import (
    REQUEST,
    RESULT,
    Cancel,
    Error,
    Notify,
    Request,
    Result,
    decode_packet,
    encode_cancel,
    encode_error,
    encode_notify,
    packet_from_array,
)

__all__ = ("Connection", "RequestHandler", "read_frame")

log = logging.getLogger("rpc.connection")

_HIGH_WATER = 8 * 1024 * 1024  # queued outgoing bytes before senders (and the reader) wait
_MAX_PROTOCOL_ERRORS = 16  # malformed packets tolerated on one connection before closing it
_RECEIVE_SIZE = 262144
_CLOSED_STREAM = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
_MAX_ID = 2**63
_header = struct.Struct(">I").pack  # rpc.framing.frame_header, without a call
_TRANSPORT_METHODS = (
    "set_protocol",
    "write",
    "pause_reading",
    "resume_reading",
    "set_write_buffer_limits",
    "is_closing",
    "close",
)


def _takeover(stream: Any) -> tuple[Any, Any] | None:
    """The asyncio transport and protocol of an anyio TCP socket stream, or None.

    Only anyio's asyncio ``SocketStream`` (uvloop's transports included) is taken over; its
    protocol holds the bytes received but not yet read (``read_queue``).
    """
    if type(stream).__module__ != "anyio._backends._asyncio" or type(stream).__name__ != (
        "SocketStream"
    ):
        return None
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if transport is None or not hasattr(protocol, "read_queue"):
        return None
    if not all(callable(getattr(transport, m, None)) for m in _TRANSPORT_METHODS):
        return None
    return transport, protocol


class _Protocol(asyncio.Protocol):
    """The asyncio protocol of a connection in transport mode: forwards to the connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def data_received(self, data: bytes) -> None:
        self._conn._on_data(data)

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn._on_lost(exc)

    def pause_writing(self) -> None:
        self._conn._pause_writing()

    def resume_writing(self) -> None:
        self._conn._resume_writing()


class RequestHandler(Protocol):
    """Serves what the peer sends on a connection."""

    def handle_request(self, conn: Connection, request: Request) -> Any:
        """Answer a request.

        Args:
            conn: The connection the request came on.
            request: The request.

        Returns:
            The wire result, or an awaitable of it (run as a cancellable task), or (asyncio)
            a concurrent future of it. Raise to answer with an error.
        """

    def handle_notify(self, conn: Connection, notify: Notify) -> Any:
        """Handle a notification (may return an awaitable, run as a task).

        Args:
            conn: The connection the notification came on.
            notify: The notification.
        """


class _ThreadAnswer:
    """A request served by a worker thread (the handler returned a concurrent future): the
    thread's result is answered from the event loop, without a task per request."""

    __slots__ = ("_cf", "_conn", "_id", "_over")

    def __init__(self, conn: Connection, call_id: int, cf: concurrent.futures.Future[Any]) -> None:
        self._conn = conn
        self._id = call_id
        self._cf = cf
        self._over = False

    def done_in_thread(self, cf: concurrent.futures.Future[Any]) -> None:
        loop = self._conn._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(self._answer)
        except RuntimeError:  # the event loop is closed: nobody to answer
            pass

    def _answer(self) -> None:
        if self._over:
            return
        self._over = True
        conn = self._conn
        if conn._inflight.get(self._id) is self:
            del conn._inflight[self._id]
        if conn._closed:
            return
        cf = self._cf
        if cf.cancelled():
            conn._send_error_quietly(self._id, CallCancelledError("cancelled by the peer"))
            return
        exc = cf.exception()
        if exc is not None:
            conn._send_error_quietly(self._id, exc)
            return
        try:
            payload = pack([RESULT, self._id, cf.result()])
        except Exception as error:
            conn._send_error_quietly(self._id, error)
            return
        conn.send_nowait(payload)

    def cancel(self) -> None:
        """The peer gave up (or the connection closed): answer at once; a function already
        running finishes in its thread and its result is discarded."""
        if self._over:
            return
        self._over = True
        self._cf.cancel()
        conn = self._conn
        if conn._inflight.get(self._id) is self:
            del conn._inflight[self._id]
        if not conn._closed:
            conn._send_error_quietly(self._id, CallCancelledError("cancelled by the peer"))


class _Failure:
    """An error delivered to a waiting call (kept apart from results that are exceptions)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Pending:
    """The waiter of a call on event loops other than asyncio."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Any = None

    def done(self) -> bool:
        return self.event.is_set()

    def set_result(self, value: Any) -> None:
        self.value = value
        self.event.set()


_PLAIN = frozenset({type(None), bool, int, float, str, bytes, list, dict})
_ConcurrentFuture = concurrent.futures.Future


def _awaitable(value: Any) -> bool:
    """inspect.isawaitable, with a fast answer for the plain wire values of inline handlers."""
    return type(value) not in _PLAIN and inspect.isawaitable(value)


def _settle(cf: concurrent.futures.Future[Any], value: Any = None, error: Any = None) -> None:
    """Complete a concurrent future unless it is already done (its owner may fail it)."""
    try:
        if error is not None:
            cf.set_exception(error)
        else:
            cf.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass


def _deliver_to_thread(cf: concurrent.futures.Future[Any], fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        _settle(cf, error=CallCancelledError("the call was cancelled"))
        return
    value = fut.result()
    if type(value) is _Failure:
        _settle(cf, error=value.error)
    else:
        _settle(cf, value)


async def read_frame(stream: anyio.abc.ByteReceiveStream, parser: FrameParser) -> bytes:
    """Read exactly one frame; bytes after it stay buffered in the parser.

    Args:
        stream: The stream to read from.
        parser: The parser of that stream (it keeps what follows the frame).

    Returns:
        The frame payload.

    Raises:
        ConnectionClosedError: The stream ended first.
        FrameTooLargeError: The frame is larger than the parser accepts.
    """
    pending = parser.feed(b"", 1)
    while not pending:
        try:
            data = await stream.receive(65536)
        except _CLOSED_STREAM as exc:
            cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
            raise ConnectionClosedError(f"connection closed during the handshake{cause}") from None
        pending = parser.feed(data, 1)
    return pending[0]


class Connection:
    """A multiplexed RPC connection (use as an async context manager).

    Attributes:
        handler: Serves the peer's requests and notifications (None: refuse requests).
        name: A name for log messages.
        debug: Report unexpected handler exceptions with their type and message.
        closed_event: Set once the connection is closed.
        state: Per-connection data for services (authentication, sessions ...).
    """

    flush_every = 16
    """Transport mode: while a received batch is served, the answers are written every this
    many frames (smaller flushes let the peer work on the first answers meanwhile)."""

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
        """Wrap a stream (nothing runs until the connection is entered).

        Args:
            stream: A connected byte stream.
            handler: Serves what the peer sends.
            parser: The stream's frame parser when bytes were already read (handshake).
            max_frame_size: The largest frame accepted (when no parser is given).
            name: A name for log messages.
            debug: See the class attributes.
        """
        self._stream = stream
        self.handler = handler
        self._parser = parser or FrameParser(max_frame_size)
        self.name = name
        self.debug = debug
        self._ids = itertools.count(1)
        self._pending: dict[int, Any] = {}  # call id -> asyncio.Future or _Pending
        self._inflight: dict[int, anyio.CancelScope | _ThreadAnswer] = {}
        self._tasks: set[anyio.CancelScope] = set()  # scopes of the other background tasks
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._sending = False  # a task is in stream.send (the writer, or the reader)
        self._wake = anyio.Event()
        self._drained = anyio.Event()
        self._closed = False
        self._close_after_flush: BaseException | None = None
        self._close_reason: BaseException | None = None
        self._protocol_errors = 0
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: Any = None  # transport mode: the asyncio transport
        self._flush_scheduled = False  # transport mode: a _flush is due (or _on_data runs)
        self._write_paused = False  # transport mode: the transport's buffer is over the limit
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._backlog: list[bytes] = []  # transport mode: frames received, not yet dispatched
        self.closed_event = anyio.Event()
        self.state: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Connection:
        stack = AsyncExitStack()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        self._stack = stack
        try:  # on asyncio a call waits on a bare future (the cheapest waiter)
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        found = _takeover(self._stream) if self._loop is not None else None
        if found is not None:
            self._attach(*found)
        else:
            self._start(self._reader)
            self._start(self._writer)
        return self

    def _attach(self, transport: Any, stream_protocol: Any) -> None:
        """Enter transport mode: our protocol receives, ``transport.write`` sends."""
        self._transport = transport
        transport.set_protocol(_Protocol(self))
        transport.set_write_buffer_limits(_HIGH_WATER)
        # what anyio received but nobody read yet, then what the handshake left in the parser
        queued = list(stream_protocol.read_queue)
        stream_protocol.read_queue.clear()
        at_eof = stream_protocol.is_at_eof or stream_protocol.exception is not None
        self._on_data(b"")
        for chunk in queued:
            if self._closed:
                break
            self._on_data(chunk)
        if at_eof or transport.is_closing():
            self._on_lost(stream_protocol.exception)
        elif not self._closed and not self._write_paused:
            # anyio pauses reading between its receive() calls; while our writes are paused
            # (what was just served filled the buffer) _resume_writing resumes it
            transport.resume_reading()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        if self._stack is not None:  # waits for the connection's tasks (all cancelled)
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def aclose(self) -> None:
        """Close the connection (from any task); calls in flight fail with
        ConnectionClosedError.

        The stream is closed and the connection's tasks are cancelled; leaving the
        ``async with`` block waits for them to end.
        """
        self._shutdown(ConnectionClosedError("connection closed"))
        await self._close_stream()

    def close(self) -> None:
        """Signal the connection to close (from any task of the event loop)."""
        self._shutdown(ConnectionClosedError("connection closed"))

    def close_gracefully(self) -> None:
        """Close once everything queued is sent (answers included), from any task.

        The writer flushes the queue, then closes; :attr:`closed_event` is set then. A peer
        that does not read can delay this forever: follow with :meth:`close` after a grace.
        """
        if self._closed:
            return
        if self._close_after_flush is None:
            self._close_after_flush = ConnectionClosedError("connection closed")
        if self._transport is not None:
            self._flush()
            self._shutdown(self._close_after_flush)
            return
        self._wake.set()

    def _shutdown(self, reason: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        pending, self._pending = self._pending, {}
        failure = _Failure(reason)
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_result(failure)
        for scope in list(self._inflight.values()):
            scope.cancel()
        for scope in self._tasks:
            scope.cancel()
        self._wake.set()
        self._drained.set()
        self._release_drain_waiters()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()  # what was written still goes out
        self.closed_event.set()

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._closed

    @property
    def io_mode(self) -> str:
        """``transport`` or ``stream`` (see the module documentation); set once entered."""
        return "transport" if self._transport is not None else "stream"

    @property
    def pending_calls(self) -> int:
        """Our calls waiting for an answer."""
        return len(self._pending)

    @property
    def inflight_requests(self) -> int:
        """The peer's requests being served as tasks."""
        return len(self._inflight)

    def extra(self, attribute: Any, default: Any = None) -> Any:
        """A stream attribute (e.g. ``anyio.abc.SocketAttribute.remote_address``).

        Args:
            attribute: The typed attribute.
            default: Returned when the stream does not have it.

        Returns:
            The attribute's value.
        """
        return self._stream.extra(attribute, default)

    # -- tasks ----------------------------------------------------------------------------
    def _start(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a task in its own cancel scope (cancelled when the connection closes)."""
        if self._tg is None:
            raise RPCError("enter the connection before starting tasks")
        scope = anyio.CancelScope()
        self._tasks.add(scope)
        if self._closed:
            scope.cancel()
        self._tg.start_soon(self._run_task, scope, fn, args)

    async def _run_task(
        self, scope: anyio.CancelScope, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        try:
            with scope:
                await fn(*args)
        finally:
            self._tasks.discard(scope)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a task in the connection's task group (cancelled when the connection closes).

        Args:
            fn: An async function.
            *args: Its arguments.
        """
        self._start(fn, *args)

    # -- sending --------------------------------------------------------------------------
    def send_nowait(self, payload: bytes) -> None:
        """Queue an encoded packet (event-loop thread only).

        Args:
            payload: An encoded packet (see :mod:`rpc.packets`).

        Raises:
            ConnectionClosedError: The connection is closed.
        """
        if self._closed:
            raise ConnectionClosedError("connection closed") from self._close_reason
        out = self._out
        out.append(_header(len(payload)))
        out.append(payload)
        self._out_bytes += len(payload) + 4
        if self._transport is not None:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._flush)
        else:
            self._wake.set()

    def send_frames_nowait(self, frames: bytes) -> None:
        """Queue packets already framed (``encode_frame`` results, concatenated).

        Args:
            frames: One or more complete frames.

        Raises:
            ConnectionClosedError: The connection is closed.
        """
        if self._closed:
            raise ConnectionClosedError("connection closed") from self._close_reason
        self._out.append(frames)
        self._out_bytes += len(frames)
        if self._transport is not None:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._flush)
        else:
            self._wake.set()

    def _flush(self) -> None:
        """Transport mode: write everything queued, coalesced."""
        self._flush_scheduled = False
        out = self._out
        if not out or self._closed:
            return
        self._out = []
        self._out_bytes = 0
        try:
            self._transport.write(b"".join(out))
        except Exception as exc:  # the transport is closing or broken
            self._shutdown(ConnectionClosedError(f"connection lost while sending: {exc}"))

    def _pause_writing(self) -> None:
        self._write_paused = True
        if not self._closed:
            self._transport.pause_reading()  # the peer must read its answers first

    def _resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain_waiters()
        if not self._closed and not self._transport.is_closing():
            self._transport.resume_reading()
            if self._backlog:
                assert self._loop is not None
                self._loop.call_soon(self._on_data, b"")

    def _release_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _wait_drained(self) -> None:
        if self._transport is not None:
            self._flush()
            while self._write_paused and not self._closed:
                assert self._loop is not None
                waiter = self._loop.create_future()
                self._drain_waiters.append(waiter)
                await waiter
            return
        while self._out_bytes > _HIGH_WATER and not self._closed:
            if self._drained.is_set():
                self._drained = anyio.Event()
            await self._drained.wait()

    async def _send_out(self) -> None:
        """Send everything queued, coalesced (one sender at a time: see ``_sending``)."""
        self._sending = True
        try:
            while self._out and not self._closed:
                out, self._out = self._out, []
                self._out_bytes = 0
                await self._stream.send(out[0] if len(out) == 1 else b"".join(out))
                if not self._drained.is_set():
                    self._drained.set()
        except (*_CLOSED_STREAM, OSError) as exc:
            self._shutdown(ConnectionClosedError(f"connection lost while sending: {exc}"))
        finally:
            self._sending = False

    async def _writer(self) -> None:
        while not self._closed:
            if self._out and not self._sending:
                await self._send_out()
                continue
            if self._close_after_flush is not None and not self._out and not self._sending:
                self._shutdown(self._close_after_flush)
                return
            await self._wake.wait()
            self._wake = anyio.Event()

    async def call(
        self, target: str, method: str, args: list[Any], *, timeout: float | None = None
    ) -> Any:
        """Send a request and wait for its wire result.

        Args:
            target: What the request addresses (``service``, ``pool:Tools`` ...).
            method: The method name.
            args: Wire values.
            timeout: Seconds to wait for the answer (None or 0: no limit). On expiry the
                request is cancelled on the peer (a CANCEL packet).

        Returns:
            The wire result.

        Raises:
            CallTimeoutError: No answer in time.
            ConnectionClosedError: The connection closed before the answer.
            Exception: The peer's error, rebuilt by :func:`rpc.errors.error_from_wire`.
        """
        if self._closed:
            raise ConnectionClosedError("connection closed") from self._close_reason
        call_id = next(self._ids)
        loop = self._loop
        waiter: Any = loop.create_future() if loop is not None else _Pending()
        payload = pack([REQUEST, call_id, target, method, args])
        self._pending[call_id] = waiter
        try:
            self.send_nowait(payload)
            if self._out_bytes > _HIGH_WATER or self._write_paused:
                await self._wait_drained()
            if timeout:
                with anyio.fail_after(timeout):
                    value = await waiter if loop is not None else await self._wait(waiter)
            else:
                value = await waiter if loop is not None else await self._wait(waiter)
        except TimeoutError:
            self._pending.pop(call_id, None)
            self._cancel_remote(call_id)
            raise CallTimeoutError(f"{target}.{method} timed out after {timeout} s") from None
        except BaseException:
            self._pending.pop(call_id, None)
            if not waiter.done() or (loop is not None and waiter.cancelled()):
                self._cancel_remote(call_id)
            raise
        # an answered waiter was removed from _pending by whoever answered it
        if type(value) is _Failure:
            raise value.error
        return value

    @property
    def asyncio_loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio event loop the connection runs on (None on other backends)."""
        return self._loop

    def call_from_thread(
        self,
        target: str,
        method: str,
        args: list[Any],
        *,
        frames: bytes = b"",
        waiter: concurrent.futures.Future[Any] | None = None,
    ) -> Any:
        """Make a call from a worker thread and block until it is answered.

        On asyncio the request is handed to the event loop with ``call_soon_threadsafe`` and
        the thread waits on a concurrent future (no task is created); elsewhere it goes
        through ``anyio.from_thread.run`` (the thread must then be an anyio worker thread).

        Args:
            target: What the request addresses.
            method: The method name.
            args: Wire values.
            frames: Already framed packets to send first, in order (e.g. notifications).
            waiter: The future the thread waits on; whoever holds it may fail it (with
                ``set_exception``) to release the thread early.

        Returns:
            The wire result.

        Raises:
            ConnectionClosedError: The connection closed first.
            Exception: The peer's error, or the error set on `waiter`.
        """
        loop = self._loop
        if loop is None:
            return anyio.from_thread.run(self._send_and_call, frames, target, method, args)
        cf: concurrent.futures.Future[Any] = waiter or concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._start_threaded_call, cf, target, method, args, frames)
        except RuntimeError:  # the event loop is closed
            raise ConnectionClosedError("the event loop is closed") from None
        return cf.result()

    async def _send_and_call(self, frames: bytes, target: str, method: str, args: list[Any]) -> Any:
        if frames:
            self.send_frames_nowait(frames)
        return await self.call(target, method, args)

    def _start_threaded_call(
        self,
        cf: concurrent.futures.Future[Any],
        target: str,
        method: str,
        args: list[Any],
        frames: bytes,
    ) -> None:
        if cf.done():  # failed by its owner meanwhile
            return
        assert self._loop is not None
        call_id = next(self._ids)
        fut = self._loop.create_future()
        try:
            payload = pack([REQUEST, call_id, target, method, args])
            if frames:
                self.send_frames_nowait(frames)
            self._pending[call_id] = fut
            self.send_nowait(payload)
        except BaseException as exc:
            self._pending.pop(call_id, None)
            _settle(cf, error=exc)
            return
        fut.add_done_callback(functools.partial(_deliver_to_thread, cf))

    @staticmethod
    async def _wait(p: _Pending) -> Any:
        await p.event.wait()
        return p.value

    def _cancel_remote(self, call_id: int) -> None:
        if not self._closed:
            try:
                self.send_nowait(encode_cancel(call_id))
            except ConnectionClosedError:
                pass

    async def notify(self, target: str, method: str, args: list[Any]) -> None:
        """Send a notification (waits while too much output is queued).

        Args:
            target: What the notification addresses.
            method: The method name.
            args: Wire values.
        """
        self.send_nowait(encode_notify(target, method, args))
        if self._out_bytes > _HIGH_WATER or self._write_paused:
            await self._wait_drained()

    def notify_nowait(self, target: str, method: str, args: list[Any]) -> None:
        """Queue a notification without waiting (event-loop thread only).

        Args:
            target: What the notification addresses.
            method: The method name.
            args: Wire values.
        """
        self.send_nowait(encode_notify(target, method, args))

    # -- receiving ------------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        """Transport mode: dispatch the frames now complete, write the inline answers."""
        if self._closed:
            return
        self._flush_scheduled = True  # what dispatching queues is written below
        try:
            frames: list[bytes] = []
            if self._parser.error is None:  # else: nothing more is read, the backlog is served
                try:
                    frames = self._parser.feed(data)
                except FrameTooLargeError as exc:
                    self._close_now(exc)
                    return
            if self._backlog:
                frames = self._backlog + frames
                self._backlog = []
            dispatch = self._dispatch
            every = self.flush_every
            done = 0
            for frame in frames:
                dispatch(frame)
                done += 1
                if self._close_after_flush is not None or self._closed:
                    break
                if done % every == 0 and self._out:
                    self._flush()
                    self._flush_scheduled = True
                    if self._write_paused:  # the rest waits until the peer reads
                        self._backlog = frames[done:]
                        break
            if self._closed:
                return
            if self._close_after_flush is not None:
                self._flush()
                self._shutdown(self._close_after_flush)
                return
            self._flush()
            if self._parser.error is not None and not self._backlog:
                self._close_now(self._parser.error)
        except Exception as exc:  # a bug in a handler must not leave callers hanging
            log.exception("%s: reader failed", self.name)
            self._shutdown(ConnectionClosedError(f"connection failed: {exc}"))
        finally:
            self._flush_scheduled = False
            if self._out and not self._closed:  # queued by a failing path above
                self._flush()

    def _close_now(self, exc: FrameTooLargeError) -> None:
        """Transport mode: report an oversized frame (error id 0), flush, close."""
        log.warning("%s: %s; closing the connection", self.name, exc)
        self._send_error_quietly(0, exc)
        self._flush()
        self._shutdown(ConnectionClosedError(f"connection closed: {exc}"))

    def _on_lost(self, exc: BaseException | None) -> None:
        if exc is None:
            reason = ConnectionClosedError("connection closed by the peer")
        else:
            reason = ConnectionClosedError(f"connection lost: {exc}")
        self._shutdown(reason)

    async def _reader(self) -> None:
        stream = self._stream
        parser = self._parser
        dispatch = self._dispatch
        reason: BaseException = ConnectionClosedError("connection closed by the peer")
        try:
            data = b""  # first, the bytes that followed the handshake
            while True:
                try:
                    frames = parser.feed(data)
                except FrameTooLargeError as exc:
                    await self._too_large(exc)
                    return
                for frame in frames:
                    dispatch(frame)
                    if self._close_after_flush is not None:
                        break
                    if self._out_bytes > _HIGH_WATER:
                        await self._wait_drained()  # the peer must read its answers first
                if self._closed:
                    return
                if self._close_after_flush is not None:
                    await self._finish_closing()
                    return
                if self._out and not self._sending:
                    # answers of inline requests: sent now, without waking the writer task
                    await self._send_out()
                if parser.error is not None:
                    await self._too_large(parser.error)
                    return
                data = await stream.receive(_RECEIVE_SIZE)
        except (*_CLOSED_STREAM, OSError):
            pass
        except Exception as exc:  # a bug in a handler must not leave callers hanging
            log.exception("%s: reader failed", self.name)
            reason = ConnectionClosedError(f"connection failed: {exc}")
        self._shutdown(reason)
        await self._close_stream()

    async def _close_stream(self) -> None:
        """Close the transport now (the peer sees the end at once)."""
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except Exception:  # already broken
                log.debug("closing a broken stream", exc_info=True)

    async def _too_large(self, exc: FrameTooLargeError) -> None:
        """Report an oversized frame (error id 0), then close: the stream is lost."""
        log.warning("%s: %s; closing the connection", self.name, exc)
        self._send_error_quietly(0, exc)
        self._close_after_flush = ConnectionClosedError(f"connection closed: {exc}")
        await self._finish_closing()

    async def _finish_closing(self) -> None:
        """Let the writer flush what is queued (at most a second), then close the stream.

        Shielded: the writer's shutdown cancels the reader, which must still close the stream.
        """
        assert self._close_after_flush is not None
        self._wake.set()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(1):
                await self.closed_event.wait()
            self._shutdown(self._close_after_flush)
            await self._close_stream()

    def _send_error_quietly(self, call_id: int, exc: BaseException) -> None:
        code, message, data = error_to_wire(exc, debug=self.debug)
        try:
            payload = encode_error(call_id, code, message, data)
        except Exception:  # data that cannot be encoded: send the message alone
            payload = encode_error(call_id, code, message, None)
        try:
            self.send_nowait(payload)
        except ConnectionClosedError:
            pass

    def _resolve(self, call_id: int, value: Any) -> None:
        waiter = self._pending.pop(call_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(value)

    def _dispatch(self, frame: bytes) -> None:
        # the two hot packets are recognized from the decoded array directly; anything else
        # (or anything unusual about them) goes through the validating decoder
        try:
            w = unpack(frame)
        except Exception:
            w = None
        if type(w) is list:
            n = len(w)
            kind = w[0] if n else None
            if kind == RESULT and n == 3 and type(w[1]) is int:
                waiter = self._pending.pop(w[1], None)
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(w[2])
                    return
            elif (
                kind == REQUEST
                and n == 5
                and type(w[1]) is int
                and 0 <= w[1] < _MAX_ID
                and type(w[2]) is str
                and type(w[3]) is str
                and type(w[4]) is list
            ):
                self._on_request(Request(w[1], w[2], w[3], w[4]))
                return
        try:
            pkt = decode_packet(frame) if w is None else packet_from_array(w)
        except ProtocolError as exc:
            self._protocol_errors += 1
            log.info("%s: protocol error: %s", self.name, exc)
            self._send_error_quietly(exc.request_id, exc)
            if self._protocol_errors > _MAX_PROTOCOL_ERRORS:
                self._close_after_flush = ConnectionClosedError("too many protocol errors")
                self._wake.set()
            return
        if type(pkt) is Result:
            self._resolve(pkt.id, pkt.value)
        elif type(pkt) is Request:
            self._on_request(pkt)
        elif type(pkt) is Error:
            if pkt.id == 0:
                log.info("%s: peer reported: [%s] %s", self.name, pkt.code, pkt.message)
                return
            self._resolve(pkt.id, _Failure(error_from_wire(pkt.code, pkt.message, pkt.data)))
        elif type(pkt) is Notify:
            self._on_notify(pkt)
        elif type(pkt) is Cancel:
            scope = self._inflight.get(pkt.id)
            if scope is not None:
                scope.cancel()
        else:
            self._protocol_errors += 1
            self._send_error_quietly(0, ProtocolError("unexpected handshake packet"))

    def _on_request(self, req: Request) -> None:
        handler = self.handler
        if handler is None:
            self._send_error_quietly(req.id, RPCError("this peer serves no requests"))
            return
        if req.id in self._inflight:
            self._send_error_quietly(
                req.id, ProtocolError(f"request id {req.id} is already in flight")
            )
            return
        try:
            result = handler.handle_request(self, req)
        except Exception as exc:
            self._send_error_quietly(req.id, exc)
            return
        kind = type(result)
        if kind in _PLAIN:  # the common case: a wire value, answered now
            pass
        elif kind is _ConcurrentFuture and self._loop is not None:
            answer = _ThreadAnswer(self, req.id, result)
            self._inflight[req.id] = answer
            result.add_done_callback(answer.done_in_thread)
            return
        elif inspect.isawaitable(result):
            assert self._tg is not None
            scope = anyio.CancelScope()
            self._inflight[req.id] = scope
            if self._closed:
                scope.cancel()
            self._tg.start_soon(self._serve_request, req.id, result, scope)
            return
        try:
            payload = pack([RESULT, req.id, result])
        except Exception as exc:  # the result could not be encoded
            self._send_error_quietly(req.id, exc)
            return
        if not self._closed:
            self.send_nowait(payload)

    async def _serve_request(
        self, call_id: int, work: Awaitable[Any], scope: anyio.CancelScope
    ) -> None:
        try:
            with scope:
                try:
                    value = await work
                except Exception as exc:
                    self._send_error_quietly(call_id, exc)
                    return
                try:
                    payload = pack([RESULT, call_id, value])
                except Exception as exc:
                    self._send_error_quietly(call_id, exc)
                    return
                if not self._closed:
                    self.send_nowait(payload)
            if scope.cancelled_caught and not self._closed:
                self._send_error_quietly(call_id, CallCancelledError("cancelled by the peer"))
        finally:
            if inspect.iscoroutine(work):
                work.close()  # never started (cancelled at once): no "never awaited" warning
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
        if _awaitable(result):
            self._start(self._serve_notify, result)

    async def _serve_notify(self, work: Awaitable[Any]) -> None:
        try:
            await work
        except Exception:
            log.exception("%s: notification handler failed", self.name)
        finally:
            if inspect.iscoroutine(work):
                work.close()
