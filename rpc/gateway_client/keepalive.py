"""A small HTTP/1.1 keep-alive client for one plain-HTTP origin (the gateway).

:class:`GatewayClient <rpc.gateway_client.http.GatewayClient>` sends its requests through
:class:`KeepAlivePool` when the gateway's URL is ``http://`` with no proxy configured in the
environment and no custom transport: httpx costs ~10x more CPU per small request than the
request itself (its models, hooks and h11 state machine); this sends the request in one write
and parses the reply by hand. HTTPS, proxies and custom transports go through httpx.

Replies are read in full: ``Content-Length``, ``Transfer-Encoding: chunked`` or, without
either, until the server closes the connection. A connection goes back to the pool only after
a complete reply that does not say ``Connection: close``; one interrupted (a timeout, a
cancellation, an error) is closed. An idle connection the server has closed meanwhile is
noticed before reuse (a non-blocking peek) and replaced.
"""

from __future__ import annotations

import select
import socket
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc

__all__ = ("ConnectFailed", "HTTPProtocolError", "KeepAlivePool", "Reply", "direct_origin")

#: The most bytes one ``receive`` asks for.
_CHUNK = 65536
#: The largest header block accepted from the server.
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP reply: status, headers (lower-case names) and the whole body."""

    status: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")


class HTTPProtocolError(OSError):
    """The server's reply is not valid HTTP/1.1 or the connection ended before it did."""


class ConnectFailed(OSError):
    """No connection could be opened to the server."""


def direct_origin(url: str) -> tuple[str, int, str] | None:
    """``(host, port, path prefix)`` when `url` can be served by :class:`KeepAlivePool`:
    ``http://`` and no proxy for it in the environment (``HTTP_PROXY``, ``ALL_PROXY`` without
    a matching ``NO_PROXY``), as httpx would otherwise use one. None otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    proxies = urllib.request.getproxies_environment()
    if ("http" in proxies or "all" in proxies) and not urllib.request.proxy_bypass(parts.hostname):
        return None
    return parts.hostname, parts.port or 80, parts.path or "/"


class _Connection:
    """One TCP connection and the bytes received beyond the last reply."""

    __slots__ = ("buffer", "sock", "stream")

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.sock: Any = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        self.buffer = b""

    def usable(self) -> bool:
        """False when the server has closed the idle connection (or sent something)."""
        if self.buffer:
            return False
        try:  # readable while idle: closed by the server (or unexpected data)
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    async def receive(self) -> bytes:
        data = await self.stream.receive(_CHUNK)
        return data

    async def abort(self) -> None:
        """Close at once (also from a cancelled task)."""
        await anyio.aclose_forcefully(self.stream)


class KeepAlivePool:
    """Keep-alive connections to one origin; requests are sent on an idle one or a new one.

    Args:
        host: The server's host.
        port: Its port.
        headers: Headers sent with every request (besides ``Host`` and ``Content-Length``).
        max_connections: Connections open at once (more requests wait for one).
        max_idle: Idle connections kept for reuse.
    """

    def __init__(
        self,
        host: str,
        port: int,
        headers: Mapping[str, str],
        *,
        max_connections: int = 100,
        max_idle: int = 20,
    ) -> None:
        self.host = host
        self.port = port
        host_header = f"[{host}]" if ":" in host else host
        if port != 80:
            host_header += f":{port}"
        lines = [f"Host: {host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head_tail = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []
        self._max_idle = max_idle
        self._slots = anyio.Semaphore(max_connections)
        self._closed = False

    async def aclose(self) -> None:
        """Close the idle connections (and refuse new requests)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.abort()

    async def _connect(self) -> _Connection:
        try:
            stream = await anyio.connect_tcp(self.host, self.port)
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        conn = _Connection(stream)
        try:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return conn

    async def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            await conn.abort()
        return None

    async def request(self, method: str, path: str, body: bytes | None = None) -> Reply:
        """Send one request and read its whole reply.

        Raises:
            OSError: The connection failed or the reply is not valid HTTP/1.1
                (:class:`HTTPProtocolError`).
        """
        if self._closed:
            raise HTTPProtocolError("the client is closed")
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._slots.acquire()
        try:
            conn = await self._take_idle() or await self._connect()
            done = False
            try:
                head = f"{method} {path} HTTP/1.1\r\n".encode("latin-1") + self._head_tail
                if body is not None:
                    head += b"Content-Length: %d\r\n\r\n" % len(body)
                    await conn.stream.send(head + body)
                else:
                    await conn.stream.send(head + b"\r\n")
                reply, keep = await _read_reply(conn, method)
                done = True
            finally:
                if not done:
                    await conn.abort()
            if keep and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:
                await conn.abort()
            return reply
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise HTTPProtocolError(f"the connection ended: {exc!r}") from exc
        finally:
            self._slots.release()


async def _read_head(conn: _Connection) -> tuple[str, int, dict[str, str], bytes]:
    """Read a reply's header block: HTTP version, status, headers, the bytes after it."""
    buf = conn.buffer
    end = buf.find(b"\r\n\r\n")
    while end < 0:
        if len(buf) > _MAX_HEAD:
            raise HTTPProtocolError("the reply's header block is too large")
        buf += await conn.receive()
        end = buf.find(b"\r\n\r\n")
    lines = buf[:end].decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
        raise HTTPProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    try:
        status = int(status_line[1])
    except ValueError:
        raise HTTPProtocolError(f"bad status: {lines[0][:80]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HTTPProtocolError(f"bad header line: {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status_line[0], status, headers, buf[end + 4 :]


async def _read_reply(conn: _Connection, method: str) -> tuple[Reply, bool]:
    """Read one reply (skipping 1xx ones); the reply and whether the connection stays open."""
    version, status, headers, rest = await _read_head(conn)
    while 100 <= status < 200:
        conn.buffer = rest
        version, status, headers, rest = await _read_head(conn)
    keep = version != "HTTP/1.0" and "close" not in headers.get("connection", "").lower()
    if method == "HEAD" or status in (204, 304):
        conn.buffer = rest
        return Reply(status, headers, b""), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, conn.buffer = await _read_chunked(conn, rest)
        return Reply(status, headers, body), keep
    length_text = headers.get("content-length")
    if length_text is None:  # until the server closes
        chunks = [rest]
        try:
            while True:
                chunks.append(await conn.receive())
        except anyio.EndOfStream:
            pass
        conn.buffer = b""
        return Reply(status, headers, b"".join(chunks)), False
    if not length_text.isdigit():
        raise HTTPProtocolError(f"bad Content-Length: {length_text[:40]!r}")
    length = int(length_text)
    if len(rest) < length:
        parts = [rest]
        got = len(rest)
        while got < length:
            data = await conn.receive()
            parts.append(data)
            got += len(data)
        rest = b"".join(parts)
    conn.buffer = rest[length:]
    return Reply(status, headers, rest[:length]), keep


async def _read_chunked(conn: _Connection, buf: bytes) -> tuple[bytes, bytes]:
    """The body of a chunked reply (trailers skipped) and the bytes after it."""
    parts: list[bytes] = []
    while True:
        end = buf.find(b"\r\n")
        while end < 0:
            buf += await conn.receive()
            end = buf.find(b"\r\n")
        size_text = buf[:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HTTPProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
        buf = buf[end + 2 :]
        if size == 0:
            while True:  # trailers, then the empty line
                end = buf.find(b"\r\n")
                while end < 0:
                    buf += await conn.receive()
                    end = buf.find(b"\r\n")
                line, buf = buf[:end], buf[end + 2 :]
                if not line:
                    return b"".join(parts), buf
        while len(buf) < size + 2:
            buf += await conn.receive()
        parts.append(buf[:size])
        buf = buf[size + 2 :]
