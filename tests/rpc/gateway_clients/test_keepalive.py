"""The keep-alive HTTP/1.1 pool of ``GatewayClient`` against a scripted server on loopback.

The server is a real TCP listener (anyio) that reads each request and answers with the
bytes the test scripts: chunked bodies, ``Connection: close``, 1xx replies, replies split
across writes, a connection closed while idle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest

from rpc.gateway_client import GatewayClient, TransportError
from rpc.gateway_client.keepalive import (
    ConnectFailed,
    HTTPProtocolError,
    KeepAlivePool,
    direct_origin,
)

pytestmark = pytest.mark.anyio

#: Builds the reply bytes for the n-th request seen by the server (over all connections).
Script = Callable[[int, bytes], list[bytes]]


class Scripted:
    """What the scripted server saw: requests (head + body) and connections opened."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0


async def _read_request(stream: anyio.abc.SocketStream, buf: bytes) -> tuple[bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        buf += await stream.receive()
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += await stream.receive()
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


@asynccontextmanager
async def scripted(
    script: Script, close_after: bool = False
) -> AsyncIterator[tuple[int, Scripted]]:
    """A loopback server answering each request with ``script(n, request)``'s writes;
    ``close_after``: close each connection after one reply."""
    seen = Scripted()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        seen.connections += 1
        buf = b""
        async with stream:
            try:
                while True:
                    request, buf = await _read_request(stream, buf)
                    seen.requests.append(request)
                    for part in script(len(seen.requests) - 1, request):
                        await stream.send(part)
                        await anyio.sleep(0.005)
                    if close_after:
                        return
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield port, seen
        finally:
            tg.cancel_scope.cancel()


def _reply(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_requests_reuse_one_connection_and_send_the_headers() -> None:
    with anyio.fail_after(10):
        async with scripted(lambda n, _: [_reply(b'{"n": %d}' % n)]) as (port, seen):
            pool = KeepAlivePool("127.0.0.1", port, {"X-Test": "yes"})
            first = await pool.request("POST", "/", b'{"a": 1}')
            second = await pool.request("GET", "/health")
            await pool.aclose()
    assert (first.status, first.content, second.content) == (200, b'{"n": 0}', b'{"n": 1}')
    assert first.headers["content-length"] == "8"
    assert seen.connections == 1
    assert seen.requests[0].startswith(b"POST / HTTP/1.1\r\n")
    assert b"\r\nX-Test: yes\r\n" in seen.requests[0]
    assert b"\r\nContent-Length: 8\r\n" in seen.requests[0]
    assert seen.requests[0].endswith(b'\r\n\r\n{"a": 1}')
    assert seen.requests[1].startswith(b"GET /health HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}".encode() in seen.requests[1]


async def test_chunked_split_and_informational_replies() -> None:
    def script(n: int, _: bytes) -> list[bytes]:
        if n == 0:  # chunked, with an extension and a trailer, in pieces
            return [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nab",
                b"cd\r\n3\r\nefg\r\n0\r\nTrailer: 1\r\n\r\n",
            ]
        if n == 1:  # 100 Continue first, then the reply, its head split in two writes
            return [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Cre", _reply(b"ok")[13:]]
        return [b"HTTP/1.1 204 No Content\r\n\r\n"]

    with anyio.fail_after(10):
        async with scripted(script) as (port, seen):
            pool = KeepAlivePool("127.0.0.1", port, {})
            chunked = await pool.request("POST", "/", b"x")
            created = await pool.request("POST", "/", b"y")
            empty = await pool.request("POST", "/", b"z")
            await pool.aclose()
    assert chunked.content == b"abcdefg"
    assert (created.status, created.content) == (201, b"ok")
    assert (empty.status, empty.content) == (204, b"")
    assert seen.connections == 1


async def test_connection_close_and_idle_close_open_a_new_connection() -> None:
    with anyio.fail_after(10):
        async with scripted(
            lambda n, _: [_reply(b"%d" % n, "Connection: close")], close_after=True
        ) as (port, seen):
            pool = KeepAlivePool("127.0.0.1", port, {})
            assert (await pool.request("GET", "/")).content == b"0"
            assert (await pool.request("GET", "/")).content == b"1"
            await pool.aclose()
        assert seen.connections == 2
        # the server closes after each reply without saying so: the idle connection is
        # noticed as closed before reuse
        async with scripted(lambda n, _: [_reply(b"%d" % n)], close_after=True) as (port, seen):
            pool = KeepAlivePool("127.0.0.1", port, {})
            assert (await pool.request("GET", "/")).content == b"0"
            await anyio.sleep(0.05)
            assert (await pool.request("GET", "/")).content == b"1"
            await pool.aclose()
        assert seen.connections == 2


async def test_body_until_close_and_protocol_errors() -> None:
    with anyio.fail_after(10):
        async with scripted(
            lambda n, _: [b"HTTP/1.0 200 OK\r\n\r\nall of it"], close_after=True
        ) as (port, _):
            pool = KeepAlivePool("127.0.0.1", port, {})
            assert (await pool.request("GET", "/")).content == b"all of it"
            await pool.aclose()
        async with scripted(lambda n, _: [b"SMTP ready\r\n\r\n"]) as (port, _):
            pool = KeepAlivePool("127.0.0.1", port, {})
            with pytest.raises(HTTPProtocolError):
                await pool.request("GET", "/")
            await pool.aclose()
        async with scripted(
            lambda n, _: [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"], close_after=True
        ) as (port, _):
            pool = KeepAlivePool("127.0.0.1", port, {})
            with pytest.raises(HTTPProtocolError):
                await pool.request("GET", "/")
            await pool.aclose()


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool() -> None:
    def script(n: int, _: bytes) -> list[bytes]:
        return [] if n == 0 else [_reply(b"%d" % n)]  # the first request is never answered

    with anyio.fail_after(10):
        async with scripted(script) as (port, seen):
            pool = KeepAlivePool("127.0.0.1", port, {})
            with anyio.move_on_after(0.2):
                await pool.request("GET", "/")
            assert (await pool.request("GET", "/")).content == b"1"
            await pool.aclose()
    assert seen.connections == 2


async def test_gateway_client_maps_pool_failures_to_transport_errors() -> None:
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens on `port` any more
        with pytest.raises(ConnectFailed):
            await KeepAlivePool("127.0.0.1", port, {}).request("GET", "/")
        async with GatewayClient(f"http://127.0.0.1:{port}", retries=0) as gw:
            assert gw._direct is not None
            with pytest.raises(TransportError) as info:
                await gw.call("rpc.ping")
        assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_direct_origin_only_for_plain_http_without_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert direct_origin("http://127.0.0.1:8080/") == ("127.0.0.1", 8080, "/")
    assert direct_origin("http://gw.example/api/") == ("gw.example", 80, "/api/")
    assert direct_origin("https://gw.example/") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert direct_origin("http://gw.example/") is None
    monkeypatch.setenv("NO_PROXY", "gw.example")
    assert direct_origin("http://gw.example/") == ("gw.example", 80, "/")
