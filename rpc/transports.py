"""Transports: TCP, Unix sockets, and TLS over either, named by URL.

``tcp://127.0.0.1:54321``, ``unix:///run/commitdb.sock``, ``tls://host:port`` and
``unix+tls:///path`` (TLS over a Unix socket). TLS uses anyio's TLS streams with a standard
:class:`ssl.SSLContext` (server: certificate and key, optionally a client CA that is enforced;
client: the CA to trust, optionally a client certificate).
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import ipaddress
import os
import socket
import ssl
import stat
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.streams.tls import TLSListener, TLSStream

__all__ = (
    "UVLOOP_ENV",
    "Endpoint",
    "client_ssl_context",
    "connect_stream",
    "create_listener",
    "loop_options",
    "parse_endpoint",
    "server_ssl_context",
)


UVLOOP_ENV = "COMMITDB_UVLOOP"
"""Environment variable: ``0`` keeps the standard asyncio event loop even when uvloop is
installed."""


def loop_options() -> dict[str, Any]:
    """The ``backend_options`` for ``anyio.run`` / ``start_blocking_portal`` (asyncio backend)
    where the application owns the event loop: uvloop when it is installed (the ``gateway``
    extra installs it) unless ``COMMITDB_UVLOOP=0``. uvloop removes about 40% of the event
    loop's cost per call (see bench/RESULTS.md).

    Returns:
        ``{"use_uvloop": True}`` or ``{}``.
    """
    if os.environ.get(UVLOOP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return {}
    if importlib.util.find_spec("uvloop") is None:
        return {}
    return {"use_uvloop": True}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect or listen."""

    scheme: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""
    tls: bool = False

    def __str__(self) -> str:
        s = self.scheme + ("+tls" if self.tls and self.scheme == "unix" else "")
        if self.scheme == "tcp":
            s = "tls" if self.tls else "tcp"
            return f"{s}://{self.host}:{self.port}"
        return f"{s}://{self.path}"


def parse_endpoint(url: str) -> Endpoint:
    """Parse a transport URL (ValueError says what is wrong)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("tcp", "tls"):
        if not parts.hostname or parts.port is None:
            raise ValueError(f"{url!r}: a TCP URL needs a host and a port (tcp://host:port)")
        return Endpoint("tcp", parts.hostname, parts.port, tls=scheme == "tls")
    if scheme in ("unix", "unix+tls"):
        path = parts.path or parts.netloc
        if not path:
            raise ValueError(f"{url!r}: a Unix URL needs a path (unix:///path/to.sock)")
        if len(os.fsencode(path)) > 107:
            raise ValueError(f"{url!r}: a Unix socket path is at most 107 bytes")
        return Endpoint("unix", path=path, tls=scheme == "unix+tls")
    raise ValueError(f"{url!r}: unknown scheme (use tcp://, tls://, unix:// or unix+tls://)")


def server_ssl_context(
    certfile: str, keyfile: str | None = None, client_ca: str | None = None
) -> ssl.SSLContext:
    """A server TLS context; with `client_ca`, clients must present a certificate it signed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(
    cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    """A client TLS context trusting `cafile` (or the system store), with an optional client
    certificate for mutual TLS."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


async def connect_stream(
    endpoint: Endpoint | str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> anyio.abc.ByteStream:
    """Open a byte stream to an endpoint (TLS when the endpoint says so)."""
    ep = parse_endpoint(endpoint) if isinstance(endpoint, str) else endpoint
    stream: anyio.abc.ByteStream
    if ep.scheme == "tcp":
        stream = await _connect_tcp(ep.host, ep.port)
    else:
        stream = await anyio.connect_unix(ep.path)
    if ep.tls:
        ctx = ssl_context or client_ssl_context()
        hostname = server_hostname or (ep.host if ep.scheme == "tcp" else "localhost")
        try:
            stream = await TLSStream.wrap(
                stream, hostname=hostname, ssl_context=ctx, standard_compatible=False
            )
        except BaseException:
            await stream.aclose()
            raise
    return stream


async def _connect_tcp(host: str, port: int) -> anyio.abc.ByteStream:
    """``anyio.connect_tcp``, with a shortcut for an IP address on asyncio: one connect, no
    task group and task per attempt (Happy Eyeballs needs them for host names only), a
    fifth of the CPU of a connect."""
    try:
        address = ipaddress.ip_address(host)
        asyncio.get_running_loop()
    except (ValueError, RuntimeError):  # a host name, or another event loop
        return await anyio.connect_tcp(host, port)
    from_socket = getattr(anyio.abc.SocketStream, "from_socket", None)  # anyio >= 4.7
    if from_socket is None:
        return await anyio.connect_tcp(host, port)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.get_running_loop().sock_connect(sock, (address.compressed, port))
        stream: anyio.abc.ByteStream = await from_socket(sock)
    except BaseException:
        sock.close()
        raise
    return stream


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a Unix socket: refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:  # nobody listens: a leftover of a stopped server
        os.unlink(path)
    else:
        raise OSError(errno.EADDRINUSE, f"a server already listens on {path}")
    finally:
        probe.close()


async def create_listener(
    endpoint: Endpoint | str, *, ssl_context: ssl.SSLContext | None = None
) -> anyio.abc.Listener[anyio.abc.ByteStream]:
    """Listen on an endpoint.

    Args:
        endpoint: Where to listen (port 0 picks a free port).
        ssl_context: The server TLS context (required for TLS endpoints).

    Returns:
        The listener.

    Raises:
        ValueError: A TLS endpoint without a context.
        OSError: The address is in use (a live server on that Unix socket), or the Unix path
            exists and is not a socket. A socket file left by a stopped server is replaced.
    """
    ep = parse_endpoint(endpoint) if isinstance(endpoint, str) else endpoint
    listener: anyio.abc.Listener[anyio.abc.ByteStream]
    if ep.scheme == "tcp":
        listener = await anyio.create_tcp_listener(local_host=ep.host, local_port=ep.port)
    else:
        _remove_stale_socket(ep.path)
        listener = await anyio.create_unix_listener(ep.path)
    if ep.tls:
        if ssl_context is None:
            await listener.aclose()
            raise ValueError(f"{ep}: TLS needs a server certificate (ssl_context)")
        listener = TLSListener(listener, ssl_context, standard_compatible=False)
    return listener
