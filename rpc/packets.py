"""Sans-I/O packets: what travels inside a frame (a msgpack array, kind first).

======== ==================================================== =================================
kind     form                                                 meaning
======== ==================================================== =================================
0        ``[0, id, target, method, args]``                    request; the peer answers it
1        ``[1, id, value]``                                   result of the peer's request `id`
2        ``[2, id, code, message, data]``                     error for the peer's request `id`
3        ``[3, target, method, args]``                        notification (no answer)
4        ``[4, id]``                                          cancel my request `id`
5        ``[5, version, fields]``                             hello (client → server, first)
6        ``[6, version, fields]``                             welcome (server → client)
======== ==================================================== =================================

Either peer sends requests; ids are allocated by the sender of the request, so a result or
an error always refers to a request of the receiving side. ``target`` names the service
object (``pool:Tools``, ``db:main``, ``cb:17`` ...); ``args`` are wire values (typed values
already converted by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commitdb.codec import pack, unpack
from commitdb.errors import DecodeError
from rpc.errors import ProtocolError

__all__ = (
    "CANCEL",
    "ERROR",
    "HELLO",
    "NOTIFY",
    "PROTOCOL_VERSION",
    "REQUEST",
    "RESULT",
    "WELCOME",
    "Cancel",
    "Error",
    "Hello",
    "Notify",
    "Packet",
    "Request",
    "Result",
    "decode_packet",
    "encode_cancel",
    "encode_error",
    "encode_hello",
    "encode_notify",
    "encode_request",
    "encode_result",
    "packet_from_array",
)

PROTOCOL_VERSION = 1
REQUEST, RESULT, ERROR, NOTIFY, CANCEL, HELLO, WELCOME = range(7)


@dataclass(slots=True)
class Request:
    """A call the peer expects an answer to.

    Not frozen, like :class:`Result`: one is built per call on the hot path, and a frozen
    dataclass's ``__init__`` costs several times more.
    """

    id: int
    target: str
    method: str
    args: list[Any]


@dataclass(slots=True)
class Result:
    """The result of one of our requests."""

    id: int
    value: Any


@dataclass(frozen=True, slots=True)
class Error:
    """The failure of one of our requests (id 0: a connection-level error)."""

    id: int
    code: int
    message: str
    data: Any


@dataclass(frozen=True, slots=True)
class Notify:
    """A one-way message."""

    target: str
    method: str
    args: list[Any]


@dataclass(frozen=True, slots=True)
class Cancel:
    """The peer gave up on its request `id`."""

    id: int


@dataclass(frozen=True, slots=True)
class Hello:
    """Handshake: protocol version and fields (definitions, digest, credentials...)."""

    welcome: bool
    version: int
    fields: dict[str, Any]


Packet = Request | Result | Error | Notify | Cancel | Hello


def encode_request(id: int, target: str, method: str, args: list[Any]) -> bytes:
    """Bytes of a request packet."""
    return pack([REQUEST, id, target, method, args])


def encode_result(id: int, value: Any) -> bytes:
    """Bytes of a result packet."""
    return pack([RESULT, id, value])


def encode_error(id: int, code: int, message: str, data: Any = None) -> bytes:
    """Bytes of an error packet."""
    return pack([ERROR, id, code, message, data])


def encode_notify(target: str, method: str, args: list[Any]) -> bytes:
    """Bytes of a notification packet."""
    return pack([NOTIFY, target, method, args])


def encode_cancel(id: int) -> bytes:
    """Bytes of a cancel packet."""
    return pack([CANCEL, id])


def encode_hello(version: int, fields: dict[str, Any], *, welcome: bool = False) -> bytes:
    """Bytes of a hello (client) or welcome (server) packet."""
    return pack([WELCOME if welcome else HELLO, version, fields])


def _str(v: Any, what: str, request_id: int = 0) -> str:
    if type(v) is not str:
        raise ProtocolError(f"packet {what} must be a string", request_id)
    return v


def _id(v: Any) -> int:
    if type(v) is not int or not 0 <= v < 2**63:
        raise ProtocolError("packet id must be a non-negative integer below 2**63")
    return v


def _request(w: list[Any]) -> Request:
    """A request, or a ProtocolError that carries its id when the id is readable."""
    call_id = _id(w[1]) if len(w) > 1 else 0
    if len(w) != 5:
        raise ProtocolError(
            f"malformed request ({len(w)} elements, expected [0, id, target, method, args])",
            call_id,
        )
    if type(w[4]) is not list:
        raise ProtocolError("request args must be an array", call_id)
    return Request(call_id, _str(w[2], "target", call_id), _str(w[3], "method", call_id), w[4])


def decode_packet(frame: bytes) -> Packet:
    """Decode one frame.

    Args:
        frame: The payload of one frame.

    Returns:
        The packet.

    Raises:
        ProtocolError: The frame is not a packet; the message says why, and
            ``request_id`` is the id of a malformed request when it could be read.
    """
    try:
        w = unpack(frame)
    except DecodeError as exc:
        raise ProtocolError(f"undecodable packet: {exc}") from None
    return packet_from_array(w)


def packet_from_array(w: Any) -> Packet:
    """The packet of an already decoded frame (see :func:`decode_packet`).

    Raises:
        ProtocolError: `w` is not a packet.
    """
    if type(w) is not list or not w or type(w[0]) is not int:
        raise ProtocolError("a packet is an array whose first element is its kind")
    kind = w[0]
    n = len(w)
    if kind == REQUEST:
        return _request(w)
    if kind == RESULT and n == 3:
        return Result(_id(w[1]), w[2])
    if kind == ERROR and n == 5:
        if type(w[2]) is not int:
            raise ProtocolError("error code must be an integer")
        return Error(_id(w[1]), w[2], _str(w[3], "message"), w[4])
    if kind == NOTIFY and n == 4:
        if type(w[3]) is not list:
            raise ProtocolError("notification args must be an array")
        return Notify(_str(w[1], "target"), _str(w[2], "method"), w[3])
    if kind == CANCEL and n == 2:
        return Cancel(_id(w[1]))
    if kind in (HELLO, WELCOME) and n == 3:
        if type(w[1]) is not int or type(w[2]) is not dict:
            raise ProtocolError("malformed handshake packet: expected [kind, version, {fields}]")
        return Hello(kind == WELCOME, w[1], w[2])
    if kind > WELCOME or kind < 0:
        raise ProtocolError(f"unknown packet kind {kind}")
    raise ProtocolError(f"malformed packet of kind {kind} ({n} elements)")
