"""The multiplexed connection, over memory streams, a Unix socketpair and TCP.

Every test builds two connected peers (``pair``), each with its own handler, and drives
calls in both directions. Raw-socket tests talk to a live connection frame by frame.
"""

from __future__ import annotations

import concurrent.futures
import operator
import random
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import msgpack
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import rpc.connection as connection_module
from commitdb.errors import CommitDBError, UnknownCommitError, ValidationError
from rpc.connection import Connection
from rpc.errors import (
    CallCancelledError,
    CallTimeoutError,
    ConnectionClosedError,
    MethodNotFoundError,
    ProtocolError,
    RemoteError,
    RPCError,
)
from rpc.framing import FrameParser, encode_frame
from rpc.packets import Notify, Request, encode_request

pytestmark = pytest.mark.anyio

KINDS = ("memory", "socketpair", "tcp")


# --------------------------------------------------------------------------------------------
# Streams


class MemoryByteStream(anyio.abc.ByteStream):
    """A byte stream over a pair of memory object streams (one direction each)."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._left = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = self._left or await self._receive.receive()
        self._left = data[max_bytes:]
        return data[:max_bytes]

    async def send(self, item: bytes) -> None:
        try:
            await self._send.send(bytes(item))
        except anyio.BrokenResourceError:
            raise anyio.BrokenResourceError from None

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def memory_pair() -> tuple[anyio.abc.ByteStream, anyio.abc.ByteStream]:
    a_send, b_receive = anyio.create_memory_object_stream[bytes](16)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](16)
    return MemoryByteStream(a_send, a_receive), MemoryByteStream(b_send, b_receive)


async def socket_pair(kind: str) -> tuple[anyio.abc.ByteStream, anyio.abc.ByteStream]:
    if kind == "memory":
        return memory_pair()
    if kind == "socketpair":
        a, b = socket.socketpair()
        return (
            await anyio.abc.UNIXSocketStream.from_socket(a),
            await anyio.abc.UNIXSocketStream.from_socket(b),
        )
    server = socket.create_server(("127.0.0.1", 0))
    try:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    finally:
        server.close()
    return (
        await anyio.abc.SocketStream.from_socket(client),
        await anyio.abc.SocketStream.from_socket(accepted),
    )


# --------------------------------------------------------------------------------------------
# A handler that exercises every path


class Handler:
    """Methods: echo (inline), slow_echo (task), block (task until released or cancelled),
    raise (the error named by args[0]), ask_peer (calls the peer back while serving),
    unencodable (inline result msgpack cannot encode)."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str, list[Any]]] = []
        self.cancelled: list[int] = []
        self.started: list[int] = []
        self.release = anyio.Event()
        self.entered = anyio.Event()

    def handle_request(self, conn: Connection, req: Request) -> Any:
        m = req.method
        if m == "echo":
            return [conn.name, req.args]
        if m == "slow_echo":
            return self._slow_echo(conn, req.args)
        if m == "block":
            return self._block(req.id)
        if m == "raise":
            raise _ERRORS[req.args[0]]()
        if m == "ask_peer":
            return self._ask_peer(conn, req.args)
        if m == "unencodable":
            return object()
        raise MethodNotFoundError(f"no method {m!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> Any:
        self.notes.append((notify.target, notify.method, notify.args))
        if notify.method == "boom":
            raise RuntimeError("notification handler bug")
        if notify.method == "async":
            return self._async_note(notify.args)
        return None

    async def _async_note(self, args: list[Any]) -> None:
        await anyio.sleep(0)
        self.notes.append(("async-done", "", args))

    async def _slow_echo(self, conn: Connection, args: list[Any]) -> Any:
        await anyio.sleep(random.random() / 200)
        return [conn.name, args]

    async def _block(self, call_id: int) -> str:
        self.started.append(call_id)
        self.entered.set()
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(call_id)
            raise
        return "released"

    async def _ask_peer(self, conn: Connection, args: list[Any]) -> Any:
        answer = await conn.call("peer", "echo", args)
        return ["asked", answer]


_ERRORS: dict[str, Callable[[], BaseException]] = {
    "unknown_commit": lambda: UnknownCommitError("no commit deadbeef"),
    "validation": lambda: ValidationError("int64", "str 'x'", "Tools.add a"),
    "value": lambda: ValueError("bad value"),
    "commitdb": lambda: CommitDBError("engine refused"),
    "method": lambda: MethodNotFoundError("no such thing"),
}


@asynccontextmanager
async def pair(
    kind: str,
    handler_a: Any = None,
    handler_b: Any = None,
    **options: Any,
) -> AsyncIterator[tuple[Connection, Connection]]:
    """Two connected, entered connections named "A" and "B"."""
    sa, sb = await socket_pair(kind)
    async with (
        Connection(sa, handler_a, name="A", **options) as a,
        Connection(sb, handler_b, name="B", **options) as b,
    ):
        yield a, b


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Yield to the loop until the predicate holds (at most 2000 polls of 5 ms)."""
    for _ in range(2000):
        if predicate():
            return
        await anyio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------
# Calls


async def test_a_call_returns_the_peers_result(kind: str) -> None:
    async with pair(kind, Handler(), Handler()) as (a, b):
        assert await a.call("x", "echo", [1, "two", b"3"]) == ["B", [1, "two", b"3"]]
        assert await b.call("x", "echo", []) == ["A", []]


async def test_many_calls_in_flight_in_both_directions_match_their_ids(kind: str) -> None:
    results: dict[tuple[str, int], Any] = {}

    async def one(conn: Connection, peer: str, i: int) -> None:
        method = "slow_echo" if i % 3 else "echo"
        results[(conn.name, i)] = await conn.call("x", method, [conn.name, i, "p" * (i % 50)])

    async with pair(kind, Handler(), Handler()) as (a, b):
        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(one, a, "B", i)
                tg.start_soon(one, b, "A", i)
        assert a.pending_calls == b.pending_calls == 0
    assert len(results) == 600
    for (name, i), value in results.items():
        peer = "B" if name == "A" else "A"
        assert value == [peer, [name, i, "p" * (i % 50)]]


async def test_a_handler_may_call_the_peer_back_while_serving(kind: str) -> None:
    async with pair(kind, Handler(), Handler()) as (a, b):
        assert await a.call("x", "ask_peer", [5]) == ["asked", ["A", [5]]]


async def test_inline_answers_are_not_blocked_by_a_running_task_handler(kind: str) -> None:
    hb = Handler()
    async with pair(kind, Handler(), hb) as (a, b), anyio.create_task_group() as tg:
        outcome: list[Any] = []

        async def blocked() -> None:
            outcome.append(await a.call("x", "block", []))

        tg.start_soon(blocked)
        await hb.entered.wait()
        assert b.inflight_requests == 1  # the task handler runs as a task
        assert await a.call("x", "echo", [1]) == ["B", [1]]  # inline, answered meanwhile
        assert b.inflight_requests == 1
        hb.release.set()
    assert outcome == ["released"]
    assert b.inflight_requests == 0


async def test_a_peer_without_handler_refuses_requests(kind: str) -> None:
    async with pair(kind, Handler(), None) as (a, b):
        with pytest.raises(RemoteError, match="this peer serves no requests"):
            await a.call("x", "echo", [])


# --------------------------------------------------------------------------------------------
# Errors


async def test_engine_errors_come_back_as_their_commitdb_class(kind: str) -> None:
    async with pair(kind, None, Handler()) as (a, _):
        with pytest.raises(UnknownCommitError, match="no commit deadbeef"):
            await a.call("x", "raise", ["unknown_commit"])
        with pytest.raises(CommitDBError, match="engine refused"):
            await a.call("x", "raise", ["commitdb"])
        with pytest.raises(ValidationError) as info:
            await a.call("x", "raise", ["validation"])
        assert (info.value.expected, info.value.given, info.value.where) == (
            "int64",
            "str 'x'",
            "Tools.add a",
        )
        with pytest.raises(MethodNotFoundError, match="no such thing"):
            await a.call("x", "raise", ["method"])
        with pytest.raises(MethodNotFoundError, match="no method 'nope'"):
            await a.call("x", "nope", [])


async def test_other_exceptions_come_back_as_remote_errors_with_the_message(kind: str) -> None:
    async with pair(kind, None, Handler()) as (a, _):
        with pytest.raises(RemoteError) as info:
            await a.call("x", "raise", ["value"])
        assert info.value.code == -32000
        assert info.value.message == "ValueError: bad value"
        assert info.value.data == {"type": "ValueError"}


async def test_without_debug_unexpected_errors_are_hidden(kind: str) -> None:
    sa, sb = await socket_pair(kind)
    async with Connection(sa, name="A") as a, Connection(sb, Handler(), debug=False) as _:
        with pytest.raises(RemoteError) as info:
            await a.call("x", "raise", ["value"])
        assert (info.value.code, info.value.message) == (-32603, "internal error")
        with pytest.raises(UnknownCommitError):  # engine errors are not hidden
            await a.call("x", "raise", ["unknown_commit"])


async def test_an_unencodable_result_is_answered_with_an_error(kind: str) -> None:
    async with pair(kind, None, Handler()) as (a, _):
        with pytest.raises(RemoteError, match="serialize"):
            await a.call("x", "unencodable", [])
        assert await a.call("x", "echo", [1]) == ["B", [1]]


async def test_an_unencodable_argument_fails_locally_and_the_connection_goes_on(kind: str) -> None:
    async with pair(kind, None, Handler()) as (a, _):
        with pytest.raises(TypeError):
            await a.call("x", "echo", [object()])
        assert a.pending_calls == 0
        assert await a.call("x", "echo", [2]) == ["B", [2]]


# --------------------------------------------------------------------------------------------
# Notifications


async def test_notifications_arrive_in_order_and_get_no_answer(kind: str) -> None:
    hb = Handler()
    async with pair(kind, None, hb) as (a, _):
        for i in range(50):
            a.notify_nowait("t", "note", [i])
        await a.notify("t", "boom", [])  # a failing handler is logged, the connection goes on
        await a.notify("t", "async", ["x"])
        assert await a.call("x", "echo", []) == ["B", []]  # after the notifications
        await wait_for(lambda: ("async-done", "", ["x"]) in hb.notes, "the async notification")
    assert [n for n in hb.notes if n[1] == "note"] == [("t", "note", [i]) for i in range(50)]
    assert ("t", "boom", []) in hb.notes


# --------------------------------------------------------------------------------------------
# Cancellation and timeouts


async def test_a_cancelled_call_cancels_the_peers_handler_task(kind: str) -> None:
    hb = Handler()
    async with pair(kind, None, hb) as (a, b):
        with anyio.move_on_after(30) as outer:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await a.call("x", "block", [])

                tg.start_soon(call)
                await hb.entered.wait()
                assert a.pending_calls == 1
                tg.cancel_scope.cancel()
        assert not outer.cancelled_caught
        await wait_for(lambda: b.inflight_requests == 0, "the handler to end")
        assert hb.cancelled == hb.started and len(hb.cancelled) == 1
        assert a.pending_calls == 0
        assert await a.call("x", "echo", ["after"]) == ["B", ["after"]]


async def test_a_timeout_raises_call_timeout_error_and_cancels_the_peer(kind: str) -> None:
    hb = Handler()
    async with pair(kind, None, hb) as (a, b):
        with pytest.raises(CallTimeoutError, match="x.block timed out after 0.05 s"):
            await a.call("x", "block", [], timeout=0.05)
        await wait_for(lambda: len(hb.cancelled) == 1, "the peer to cancel the handler")
        assert b.inflight_requests == 0
        assert isinstance(CallTimeoutError("t"), TimeoutError)
        assert await a.call("x", "echo", [], timeout=10) == ["B", []]


async def test_a_cancel_for_a_finished_or_unknown_request_is_ignored(kind: str) -> None:
    async with pair(kind, None, Handler()) as (a, _):
        a.send_nowait(msgpack.packb([4, 12345]))
        assert await a.call("x", "echo", [3]) == ["B", [3]]


# --------------------------------------------------------------------------------------------
# Closing


async def test_peer_closing_fails_pending_calls_and_the_owner_goes_on(kind: str) -> None:
    hb = Handler()
    reached: list[str] = []
    sa, sb = await socket_pair(kind)
    async with Connection(sa, name="A") as a:
        async with Connection(sb, hb, name="B") as b, anyio.create_task_group() as tg:
            errors: list[BaseException] = []

            async def call() -> None:
                try:
                    await a.call("x", "block", [])
                except ConnectionClosedError as exc:
                    errors.append(exc)

            tg.start_soon(call)
            tg.start_soon(call)
            await wait_for(lambda: len(hb.started) == 2, "two blocked calls")
            await b.aclose()  # the peer goes away
        await wait_for(lambda: a.closed, "A to notice")
        assert len(errors) == 2
        await anyio.sleep(0.01)  # the owner's code is not cancelled by the close
        reached.append("after close")
        with pytest.raises(ConnectionClosedError):
            await a.call("x", "echo", [])
        with pytest.raises(ConnectionClosedError):
            a.send_nowait(b"\x90")
        assert a.closed_event.is_set()
    assert reached == ["after close"]


async def test_closing_from_another_task_fails_the_owners_call(kind: str) -> None:
    hb = Handler()
    async with pair(kind, None, hb) as (a, b):
        async with anyio.create_task_group() as tg:

            async def closer() -> None:
                await hb.entered.wait()
                await a.aclose()  # not the task that entered `a`

            tg.start_soon(closer)
            with pytest.raises(ConnectionClosedError):
                await a.call("x", "block", [])
        assert a.closed
        await wait_for(lambda: b.closed, "the peer to see the close")
        await anyio.sleep(0)  # still running: nothing cancelled the owner


async def test_close_signal_from_another_task(kind: str) -> None:
    async with pair(kind, None, Handler()) as (a, _):
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, lambda: None)
            a.close()
            a.close()  # idempotent
        with pytest.raises(ConnectionClosedError):
            await a.call("x", "echo", [])


async def test_a_handler_bug_in_start_soon_tasks_ends_with_the_connection(kind: str) -> None:
    ran: list[str] = []
    async with pair(kind, None, Handler()) as (a, _):

        async def background(tag: str) -> None:
            ran.append(tag)
            await anyio.sleep_forever()

        a.start_soon(background, "bg")
        await wait_for(lambda: ran == ["bg"], "the background task")
    assert ran == ["bg"]  # the connection's exit cancelled it


# --------------------------------------------------------------------------------------------
# Raw frames against a live connection (over a socketpair)


@asynccontextmanager
async def raw_peer(
    handler: Any = None, kind: str = "socketpair", **options: Any
) -> AsyncIterator[tuple[Connection, RawPeer]]:
    """A served connection and a raw peer over a socketpair (the connection's stream mode) or
    TCP (its transport mode). The connection closes first: anyio's Unix socket stream on
    asyncio logs an InvalidStateError when a pending receive is woken by the peer's close and
    by its own close in the same loop iteration."""
    stream, raw = await socket_pair(kind)
    try:
        async with Connection(stream, handler or Handler(), name="served", **options) as conn:
            yield conn, RawPeer(raw)
            await conn.aclose()
    finally:
        await raw.aclose()


class RawPeer:
    """Writes raw frames, reads decoded packets."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.parser = FrameParser()
        self.frames: list[bytes] = []

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def packet(self) -> list[Any]:
        while not self.frames:
            with anyio.fail_after(30):
                self.frames += self.parser.feed(await self.stream.receive())
        return list(msgpack.unpackb(self.frames.pop(0)))

    async def closed(self) -> bool:
        """True once the peer closed its side (reads what remains)."""
        with anyio.fail_after(30):
            try:
                while True:
                    self.parser.feed(await self.stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return True


def packed(value: Any) -> bytes:
    return encode_frame(bytes(msgpack.packb(value, use_bin_type=True)))


@pytest.fixture(params=["socketpair", "tcp"])
def raw_kind(request: pytest.FixtureRequest) -> str:
    """The raw-peer tests run against both I/O modes of the connection."""
    return str(request.param)


async def test_malformed_packets_get_an_error_and_the_connection_keeps_serving(
    raw_kind: str,
) -> None:
    async with raw_peer(kind=raw_kind) as (conn, peer):
        await peer.send(encode_frame(b"\xc1"))
        assert (await peer.packet())[:3] == [2, 0, -32600]
        await peer.send(packed([0, 77, "x", "echo", "not a list"]))
        error = await peer.packet()
        assert error[:3] == [2, 77, -32600]  # the request's id could be read: it is answered
        assert "request args must be an array" in error[3]
        await peer.send(packed([0, 78, "x", "echo", [1]]))
        assert await peer.packet() == [1, 78, ["served", [1]]]
        assert not conn.closed


async def test_too_many_protocol_errors_close_the_connection(raw_kind: str) -> None:
    async with raw_peer(kind=raw_kind) as (conn, peer):
        await peer.send(b"".join(packed(["junk", i]) for i in range(17)))
        assert await peer.closed()
        await wait_for(lambda: conn.closed, "the connection to close")


async def test_an_oversized_frame_is_reported_then_the_connection_closes(raw_kind: str) -> None:
    async with raw_peer(kind=raw_kind, max_frame_size=1024) as (conn, peer):
        await peer.send(packed([0, 1, "x", "echo", [1]]) + struct.pack(">I", 1025) + b"x" * 10)
        assert await peer.packet() == [1, 1, ["served", [1]]]  # the frame before it is served
        error = await peer.packet()
        assert error[:3] == [2, 0, -32600]
        assert "exceeds the maximum of 1024" in error[3]
        assert await peer.closed()
        await wait_for(lambda: conn.closed, "the connection to close")


async def test_a_duplicate_request_id_in_flight_is_refused(raw_kind: str) -> None:
    handler = Handler()
    async with raw_peer(handler, raw_kind) as (conn, peer):
        await peer.send(packed([0, 5, "x", "block", []]))
        await handler.entered.wait()
        await peer.send(packed([0, 5, "x", "echo", []]))
        error = await peer.packet()
        assert error[:3] == [2, 5, -32600] and "already in flight" in error[3]
        await peer.send(packed([4, 5]))  # cancel it: answered -32013
        assert (await peer.packet())[:3] == [2, 5, -32013]
        assert conn.inflight_requests == 0


async def test_an_unexpected_handshake_packet_is_a_protocol_error(raw_kind: str) -> None:
    async with raw_peer(kind=raw_kind) as (_, peer):
        await peer.send(packed([5, 1, {}]))
        error = await peer.packet()
        assert error[:2] == [2, 0] and "unexpected handshake packet" in error[3]


async def test_results_for_unknown_ids_are_ignored(raw_kind: str) -> None:
    async with raw_peer(kind=raw_kind) as (conn, peer):
        await peer.send(packed([1, 999, "stray"]) + packed([2, 998, -1, "stray", None]))
        await peer.send(packed([2, 0, -32600, "peer says hi", None]))
        await peer.send(packed([0, 1, "x", "echo", []]))
        assert await peer.packet() == [1, 1, ["served", []]]


async def test_output_is_bounded_when_the_peer_does_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection_module, "_HIGH_WATER", 64 * 1024)
    big = "x" * 16 * 1024
    served = 0

    class Big:
        def handle_request(self, conn: Connection, req: Request) -> Any:
            nonlocal served
            served += 1
            assert conn._out_bytes <= 64 * 1024 + 32 * 1024
            return big

        def handle_notify(self, conn: Connection, notify: Notify) -> None:
            return None

    total = 2000  # 32 MB of answers: far more than the socket buffers hold
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.socket()  # a plain socket: it reads nothing until told to
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        peer.connect(listener.getsockname())
        accepted, _ = listener.accept()
    finally:
        listener.close()
    stream = await anyio.abc.SocketStream.from_socket(accepted)
    requests = b"".join(encode_frame(encode_request(i + 1, "x", "m", [])) for i in range(total))
    try:
        async with Connection(stream, Big(), name="served") as conn:
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, peer.sendall, requests)
                # the peer reads nothing: the connection stops reading once its output is full
                last, stable = -1, 0
                for _ in range(2000):
                    await anyio.sleep(0.005)
                    stable = stable + 1 if served == last else 0
                    last = served
                    if stable >= 40:
                        break
                assert served < total
                assert conn._out_bytes <= 64 * 1024 + 32 * 1024
                # now read everything: every answer comes
                parser = FrameParser()
                answered = 0
                with anyio.fail_after(60):
                    while answered < total:
                        data = await anyio.to_thread.run_sync(peer.recv, 1 << 20)
                        assert data
                        answered += len(parser.feed(data))
            assert served == total
    finally:
        peer.close()


async def test_read_frame_keeps_what_follows_the_frame() -> None:
    a_send, b_receive = anyio.create_memory_object_stream[bytes](4)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](4)
    stream = MemoryByteStream(b_send, b_receive)
    async with stream, a_send, a_receive:
        await a_send.send(packed([5, 1, {}]) + packed([0, 1, "x", "echo", [9]]))
        parser = FrameParser()
        first = await connection_module.read_frame(stream, parser)
        assert msgpack.unpackb(first) == [5, 1, {}]
        async with Connection(stream, Handler(), parser=parser, name="late"):
            with anyio.fail_after(30):
                answer = await a_receive.receive()
        assert msgpack.unpackb(FrameParser().feed(answer)[0]) == [1, 1, ["late", [9]]]


async def test_read_frame_on_a_closed_stream_raises_connection_closed() -> None:
    a, b = memory_pair()
    await b.aclose()
    with pytest.raises(ConnectionClosedError, match="during the handshake"):
        await connection_module.read_frame(a, FrameParser())
    await a.aclose()


async def test_starting_tasks_needs_an_entered_connection() -> None:
    a, b = memory_pair()
    conn = Connection(a)
    with pytest.raises(RPCError):
        conn.start_soon(anyio.sleep, 0)
    await a.aclose()
    await b.aclose()


def test_protocol_and_rpc_error_codes() -> None:
    assert ProtocolError("x").request_id == 0
    assert ProtocolError("x", 3).request_id == 3
    assert CallCancelledError("c").code == -32013


# --------------------------------------------------------------------------------------------
# I/O modes


async def gather(call: Callable[[int], Any], n: int) -> list[Any]:
    """Run call(0) .. call(n-1) concurrently; their results in order."""
    results: list[Any] = [None] * n

    async def one(i: int) -> None:
        results[i] = await call(i)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return results


async def test_tcp_runs_in_transport_mode_and_other_streams_in_stream_mode(kind: str) -> None:
    async with pair(kind, Handler(), Handler()) as (a, b):
        expected = "transport" if kind == "tcp" else "stream"
        assert (a.io_mode, b.io_mode) == (expected, expected)
        answers = await gather(lambda i: a.call("t", "echo", [i]), 200)
        assert answers == [["B", [i]] for i in range(200)]
        assert await b.call("t", "ask_peer", ["x"]) == ["asked", ["B", ["x"]]]


async def test_bytes_received_before_the_connection_is_entered_are_served() -> None:
    # a handshake reads one frame; the frames after it wait in the parser and in the stream
    sa, sb = await socket_pair("tcp")
    parser = FrameParser()
    await sb.send(b"".join(packed([0, i, "x", "echo", [i]]) for i in range(1, 6)))
    first = await connection_module.read_frame(sa, parser)
    assert msgpack.unpackb(first)[1] == 1
    await sb.send(packed([0, 6, "x", "echo", [6]]))
    await anyio.sleep(0.05)  # received by the transport, not read by anyone yet
    peer = RawPeer(sb)
    async with Connection(sa, Handler(), parser=parser, name="served") as conn:
        assert conn.io_mode == "transport"
        answers = [await peer.packet() for _ in range(5)]
        assert answers == [[1, i, ["served", [i]]] for i in range(2, 7)]
        await conn.aclose()
    await sb.aclose()


def test_transport_mode_on_uvloop() -> None:
    # uvloop comes with the gateway extra (installed in the development environment)
    async def main() -> None:
        async with pair("tcp", Handler(), Handler()) as (a, b):
            assert a.io_mode == "transport"
            answers = await gather(lambda i: a.call("t", "slow_echo", [i]), 100)
            assert answers == [["B", [i]] for i in range(100)]
            assert await a.call("t", "ask_peer", [1]) == ["asked", ["A", [1]]]
            await b.aclose()
            with pytest.raises(ConnectionClosedError):
                with anyio.fail_after(10):
                    await a.call("t", "echo", [])

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})


async def test_a_handler_may_answer_with_a_concurrent_future(raw_kind: str) -> None:
    release = threading.Event()

    class Threaded:
        def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
            self.pool = pool

        def handle_request(self, conn: Connection, req: Request) -> Any:
            if req.method == "double":
                return self.pool.submit(lambda: req.args[0] * 2)
            if req.method == "fail":
                return self.pool.submit(operator.truediv, 1, 0)
            return self.pool.submit(release.wait, 30)  # "wait"

        def handle_notify(self, conn: Connection, notify: Notify) -> None:
            return None

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        async with raw_peer(Threaded(pool), raw_kind) as (conn, peer):
            await peer.send(packed([0, 1, "x", "double", [21]]))
            assert await peer.packet() == [1, 1, 42]
            await peer.send(packed([0, 2, "x", "fail", []]))
            error = await peer.packet()
            assert error[:2] == [2, 2] and "division by zero" in error[3]
            await peer.send(packed([0, 3, "x", "wait", []]))
            await wait_for(lambda: conn.inflight_requests == 1, "the request in flight")
            await peer.send(packed([4, 3]))  # cancelled: answered at once
            assert (await peer.packet())[:3] == [2, 3, -32013]
            assert conn.inflight_requests == 0
            release.set()
            await peer.send(packed([0, 4, "x", "double", ["ab"]]))
            assert await peer.packet() == [1, 4, "abab"]  # the abandoned result was dropped
