"""The rpc error hierarchy and the one table that maps errors to wire codes.

::

    RPCError
    ├── ProtocolError              malformed frame or packet, unknown packet kind
    │   └── FrameTooLargeError     a frame over the negotiated maximum size
    ├── HandshakeError             version or definitions mismatch, bad credentials
    │   └── AuthenticationError
    ├── ConnectionClosedError      the peer went away (pending calls fail with it)
    ├── CallTimeoutError           no answer in time (the call is cancelled on the peer)
    ├── CallCancelledError         the peer cancelled the call
    └── RemoteError                the peer raised; carries code, message and data
        ├── MethodNotFoundError    unknown pool, function, database or method
        └── InvalidArgumentsError  wrong argument count or types

Engine errors (:mod:`commitdb.errors`) cross the wire with their own codes and are raised
again on the other side as the same commitdb class (so ``UnknownCommitError`` stays an
``UnknownCommitError`` through a remote database), carrying the peer's message.
"""

from __future__ import annotations

from typing import Any

from commitdb import errors as engine

__all__ = (
    "CODES",
    "AuthenticationError",
    "CallCancelledError",
    "CallTimeoutError",
    "ConnectionClosedError",
    "FrameTooLargeError",
    "HandshakeError",
    "InvalidArgumentsError",
    "MethodNotFoundError",
    "ProtocolError",
    "RPCError",
    "RemoteError",
    "error_from_wire",
    "error_to_wire",
)


class RPCError(Exception):
    """Root of the errors the rpc package raises."""

    code = -32000


class ProtocolError(RPCError):
    """A malformed frame or packet.

    Attributes:
        request_id: The id of the offending request when it could be read (its sender is
            then answered with an error for that id), else 0 (a connection-level error).
    """

    code = -32600

    def __init__(self, message: str, request_id: int = 0) -> None:
        super().__init__(message)
        self.request_id = request_id


class FrameTooLargeError(ProtocolError):
    """A frame larger than the maximum size (checked before allocating it)."""

    code = -32600


class HandshakeError(RPCError):
    """The connection could not be set up (version, definitions, credentials)."""

    code = -32010


class AuthenticationError(HandshakeError):
    """Credentials were missing or refused."""

    code = -32011


class ConnectionClosedError(RPCError, ConnectionError):
    """The connection is closed; calls in flight fail with this."""

    code = -32012


class CallTimeoutError(RPCError, TimeoutError):
    """The call did not complete in time (it was cancelled on the peer)."""

    code = -32001


class CallCancelledError(RPCError):
    """The call was cancelled."""

    code = -32013


class RemoteError(RPCError):
    """An error raised by the peer, with its wire code, message and data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"[{code}] {message}")


class MethodNotFoundError(RemoteError):
    """Unknown pool, function, database or method."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(-32601, message, data)


class InvalidArgumentsError(RemoteError):
    """Wrong argument count or types."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(-32602, message, data)


# One table: engine error classes <-> wire codes (JSON-RPC server range -32099..-32000 is
# used for transport errors; engine errors use -32100 and below, documented in docs/).
CODES: dict[type[BaseException], int] = {
    engine.ValidationError: -32602,
    engine.PathError: -32110,
    engine.DecodeError: -32111,
    engine.DefinitionConflictError: -32120,
    engine.DSMError: -32121,
    engine.DefinitionError: -32122,
    engine.UnknownAttachmentError: -32130,
    engine.UnknownCommitError: -32131,
    engine.MissingBlobError: -32132,
    engine.NotFoundError: -32133,
    engine.DatabaseClosedError: -32140,
    engine.ReadOnlyError: -32141,
    engine.CorruptDatabaseError: -32142,
    engine.StorageError: -32143,
    engine.TransactionError: -32150,
    engine.CommitError: -32151,
    engine.StoreError: -32152,
    engine.CommitDBError: -32100,
    ProtocolError: -32600,
    MethodNotFoundError: -32601,
    InvalidArgumentsError: -32602,
    HandshakeError: -32010,
    AuthenticationError: -32011,
    ConnectionClosedError: -32012,
    CallTimeoutError: -32001,
    CallCancelledError: -32013,
}
_ENGINE_BY_CODE: dict[int, type[engine.CommitDBError]] = {
    code: cls
    for cls, code in CODES.items()
    if issubclass(cls, engine.CommitDBError) and cls is not engine.ValidationError
}


def error_to_wire(exc: BaseException, *, debug: bool = True) -> tuple[int, str, Any]:
    """The wire form of an exception.

    Args:
        exc: The exception to report.
        debug: True to report unexpected exceptions as ``-32000`` with ``Type: message``;
            False hides them behind ``-32603 internal error``.

    Returns:
        ``(code, message, data)``; ``data`` names the class (``{"type": ...}``) and, for a
        ValidationError, carries ``expected``, ``given`` and ``where``.
    """
    if isinstance(exc, RemoteError):
        return exc.code, exc.message, exc.data
    for cls in type(exc).__mro__:
        code = CODES.get(cls)
        if code is not None:
            data: dict[str, Any] = {"type": type(exc).__name__}
            if isinstance(exc, engine.ValidationError):
                data.update(expected=exc.expected, given=exc.given, where=exc.where)
            return code, str(exc), data
    message = f"{type(exc).__name__}: {exc}" if debug else "internal error"
    return -32603 if not debug else -32000, message, {"type": type(exc).__name__}


def error_from_wire(code: int, message: str, data: Any = None) -> Exception:
    """Rebuild an exception from its wire form.

    Args:
        code: The wire code.
        message: The peer's message.
        data: The peer's data (``{"type": ...}`` for engine errors).

    Returns:
        The commitdb class for engine codes, the rpc class for transport codes, else a
        :class:`RemoteError` carrying code, message and data.
    """
    kind = data.get("type") if isinstance(data, dict) else None
    if code == -32602 and kind == "ValidationError":
        return engine.ValidationError(
            str(data.get("expected", "")), str(data.get("given", "")), str(data.get("where", ""))
        )
    if code == -32602:
        return InvalidArgumentsError(message, data)
    if code == -32601:
        return MethodNotFoundError(message, data)
    cls = _ENGINE_BY_CODE.get(code)
    if cls is not None:
        if cls is engine.DSMError:
            return engine.DSMError(message)
        err = cls(message)
        return err
    if code == -32600:
        return ProtocolError(message)
    if code == -32012:
        return ConnectionClosedError(message)
    if code == -32001:
        return CallTimeoutError(message)
    if code == -32013:
        return CallCancelledError(message)
    if code == -32011:
        return AuthenticationError(message)
    if code == -32010:
        return HandshakeError(message)
    return RemoteError(code, message, data)
