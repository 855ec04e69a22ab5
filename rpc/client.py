"""Opening a client connection: transport, hello, welcome."""

from __future__ import annotations

import ssl
from typing import Any

import anyio

from rpc.connection import Connection, RequestHandler, read_frame
from rpc.errors import ConnectionClosedError, HandshakeError, ProtocolError, error_from_wire
from rpc.framing import DEFAULT_MAX_FRAME_SIZE, FrameParser, encode_frame
from rpc.packets import PROTOCOL_VERSION, Error, Hello, decode_packet, encode_hello
from rpc.transports import Endpoint, connect_stream, parse_endpoint

__all__ = ("open_connection",)


async def open_connection(
    url: str | Endpoint,
    hello: dict[str, Any],
    *,
    handler: RequestHandler | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float = 10.0,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    name: str = "client",
) -> tuple[Connection, dict[str, Any]]:
    """Connect and handshake.

    Args:
        url: Where the server listens.
        hello: The hello fields (``client``, ``definitions``, ``digest``, ``credentials``).
        handler: Serves the server's requests on this connection (callbacks).
        ssl_context: The client TLS context (TLS endpoints).
        server_hostname: The name to verify in the server certificate (default: the host).
        timeout: Seconds for connecting and for the welcome.
        max_frame_size: The largest frame accepted.
        name: A name for log messages.

    Returns:
        The connection (enter it with ``async with``) and the server's welcome fields.

    Raises:
        HandshakeError: The server refused the hello (AuthenticationError for credentials) or
            closed the connection before answering it.
        TimeoutError: No connection or no answer in time.
        OSError: The server cannot be reached.
    """
    ep = parse_endpoint(url) if isinstance(url, str) else url
    with anyio.fail_after(timeout):
        stream = await connect_stream(ep, ssl_context=ssl_context, server_hostname=server_hostname)
    try:
        parser = FrameParser(max_frame_size)
        try:
            await stream.send(encode_frame(encode_hello(PROTOCOL_VERSION, hello)))
            with anyio.fail_after(timeout):
                frame = await read_frame(stream, parser)
        except (ConnectionClosedError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            hint = " (a TLS refusal, e.g. a missing client certificate?)" if ep.tls else ""
            raise HandshakeError(
                f"the server closed the connection before answering the hello{hint}: {exc}"
            ) from None
        pkt = decode_packet(frame)
        if isinstance(pkt, Error):
            err = error_from_wire(pkt.code, pkt.message, pkt.data)
            if isinstance(err, HandshakeError):
                raise err
            raise HandshakeError(pkt.message)
        if not isinstance(pkt, Hello) or not pkt.welcome:
            raise ProtocolError("the server did not answer the hello with a welcome")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise
    conn = Connection(stream, handler, parser=parser, max_frame_size=max_frame_size, name=name)
    return conn, pkt.fields
