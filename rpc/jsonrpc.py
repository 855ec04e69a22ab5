"""Sans-I/O JSON-RPC 2.0: parsing with every validation rule, responses, errors, registry.

Nothing here does I/O: a transport hands :func:`parse_message` the bytes it received and
sends back what :func:`encode_replies` returns.

* :func:`parse_message` turns bytes into a :class:`Message`: its members are valid
  :class:`Call` objects (requests, and notifications when ``id`` is absent), :class:`Invalid`
  members to answer with an error (``id`` null unless it could be read), and — when the
  transport accepts them (WebSocket) — :class:`Reply` objects answering requests the server
  sent. Invalid UTF-8 or non-JSON is one parse error (-32700); an empty batch is one invalid
  request (-32600).
* :class:`JsonRpcError` is an error object; :func:`error_from_exception` maps any exception
  to one (engine errors through :data:`rpc.errors.CODES`, internal errors hidden unless
  ``debug``).
* :class:`MethodSpec` and :class:`Registry` describe methods with what OpenRPC needs
  (parameters with their JSON schemas, result, summary, permission);
  :func:`bind_params` matches ``params`` (by position or by name) to a method's parameters.
* :func:`encode_replies` serializes responses member by member: a result that cannot be
  serialized becomes a -32603 error for its id, never a failed response.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from commitdb.errors import CommitDBError, ValidationError
from rpc.errors import RemoteError, error_to_wire

__all__ = (
    "FORBIDDEN",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RATE_LIMITED",
    "SERVER_ERROR",
    "TIMEOUT",
    "UNAUTHORIZED",
    "Bound",
    "Call",
    "Handler",
    "Invalid",
    "JsonId",
    "JsonRpcError",
    "Message",
    "MethodSpec",
    "Param",
    "Registry",
    "Reply",
    "bind_params",
    "encode_json",
    "encode_replies",
    "error_from_exception",
    "error_response",
    "notification",
    "parse_message",
    "request",
    "result_response",
)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
TIMEOUT = -32001
RATE_LIMITED = -32002
UNAUTHORIZED = -32003
FORBIDDEN = -32004

JsonId = str | int | float | None
"""A request id: a string, a number or null."""

_REQUEST_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})
_REPLY_MEMBERS = frozenset({"jsonrpc", "result", "error", "id"})


class JsonRpcError(Exception):
    """A JSON-RPC error object, raised by handlers and the dispatcher.

    Attributes:
        code: The error code.
        message: A short description.
        data: Details (what is wrong, where), or None.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of a response."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out

    def __repr__(self) -> str:
        return f"JsonRpcError({self.code}, {self.message!r}, {self.data!r})"


# --------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True, slots=True)
class Call:
    """A valid request, or a notification (``notification`` True: never answered)."""

    method: str
    params: list[Any] | dict[str, Any] | None
    id: JsonId = None
    notification: bool = False


@dataclass(frozen=True, slots=True)
class Invalid:
    """A member that is not a valid request: answered with ``error`` for ``id``."""

    error: JsonRpcError
    id: JsonId = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A response from the peer to a request this side sent."""

    id: JsonId
    result: Any = None
    error: JsonRpcError | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One received message: its members, and whether it was a batch (array)."""

    items: tuple[Call | Invalid | Reply, ...]
    batch: bool = False


def _valid_id(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str) or type(value) is int


def _invalid(message: str, data: Any, id: JsonId = None) -> Invalid:
    return Invalid(JsonRpcError(INVALID_REQUEST, message, data), id)


def _member(obj: Any, accept_replies: bool) -> Call | Invalid | Reply:
    if type(obj) is dict and obj.get("jsonrpc") == "2.0" and obj.keys() <= _REQUEST_MEMBERS:
        # the common case, checked in one go: a request or notification with valid members
        method = obj.get("method")
        params = obj.get("params")
        if (
            type(method) is str
            and method
            and (params is None or type(params) is list or type(params) is dict)
            and ("params" not in obj or params is not None)
        ):
            if "id" not in obj:
                return Call(method, params, None, True)
            ident = obj["id"]
            if ident is None or type(ident) is str or type(ident) is int:
                return Call(method, params, ident, False)
    if not isinstance(obj, dict):
        return _invalid("invalid request", {"reason": "a request must be a JSON object"})
    has_id = "id" in obj
    ident = obj.get("id")
    if has_id and not _valid_id(ident):
        kind = type(ident).__name__.replace("dict", "object").replace("list", "array")
        reason = f"id must be a string, a number or null, not {kind}"
        return _invalid("invalid request", {"reason": reason})
    answer_id: JsonId = ident if has_id else None
    if obj.get("jsonrpc") != "2.0":
        reason = 'the member "jsonrpc" must be exactly "2.0"'
        return _invalid("invalid request", {"reason": reason}, answer_id)
    if accept_replies and "method" not in obj and ("result" in obj or "error" in obj):
        return _reply(obj, answer_id)
    unknown = sorted(set(obj) - _REQUEST_MEMBERS)
    if unknown:
        reason = f"unknown member(s) {', '.join(map(repr, unknown))}"
        return _invalid("invalid request", {"reason": reason}, answer_id)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        reason = 'the member "method" must be a non-empty string'
        return _invalid("invalid request", {"reason": reason}, answer_id)
    params = obj.get("params")
    if "params" in obj and not isinstance(params, list | dict):
        reason = 'the member "params" must be an array or an object'
        return _invalid("invalid request", {"reason": reason}, answer_id)
    return Call(method, params, answer_id, notification=not has_id)


def _reply(obj: dict[str, Any], ident: JsonId) -> Reply | Invalid:
    unknown = sorted(set(obj) - _REPLY_MEMBERS)
    if unknown or ("result" in obj) == ("error" in obj):
        reason = 'a response has exactly one of "result" and "error", and an "id"'
        return _invalid("invalid response", {"reason": reason}, ident)
    if "result" in obj:
        return Reply(ident, obj["result"])
    err = obj["error"]
    if not isinstance(err, dict) or type(err.get("code")) is not int:
        return _invalid("invalid response", {"reason": "malformed error object"}, ident)
    message = err.get("message")
    return Reply(ident, None, JsonRpcError(err["code"], str(message), err.get("data")))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: The decoder of :func:`parse_message` (built once, like ``json.loads`` with options).
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def parse_message(data: bytes | str, *, accept_replies: bool = False) -> Message:
    """Parse a received message.

    Args:
        data: The bytes (or text) received.
        accept_replies: True to read responses (``result``/``error`` without ``method``) as
            :class:`Reply` members (a WebSocket, where the server also sends requests).

    Returns:
        The message; invalid UTF-8 or JSON gives one -32700 :class:`Invalid` member, an
        empty array one -32600 member (answered as a single object, not an array).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        decoded = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "invalid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON"
        return Message((Invalid(JsonRpcError(PARSE_ERROR, "parse error", {"reason": reason})),))
    if isinstance(decoded, list):
        if not decoded:
            return Message((_invalid("invalid request", {"reason": "empty batch"}),))
        return Message(tuple(_member(m, accept_replies) for m in decoded), batch=True)
    return Message((_member(decoded, accept_replies),))


# --------------------------------------------------------------------------------------------
# Responses


def result_response(id: JsonId, result: Any) -> dict[str, Any]:
    """``{"jsonrpc": "2.0", "result": result, "id": id}``."""
    return {"jsonrpc": "2.0", "result": result, "id": id}


def error_response(id: JsonId, error: JsonRpcError) -> dict[str, Any]:
    """``{"jsonrpc": "2.0", "error": {...}, "id": id}``."""
    return {"jsonrpc": "2.0", "error": error.to_dict(), "id": id}


def request(method: str, params: Any, id: JsonId) -> dict[str, Any]:
    """A request object (for requests a server sends its client)."""
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id}


def notification(method: str, params: Any) -> dict[str, Any]:
    """A notification object."""
    return {"jsonrpc": "2.0", "method": method, "params": params}


def encode_json(obj: Any) -> str:
    """Strict JSON text (no NaN/Infinity; TypeError/ValueError when not serializable)."""
    return _ENCODER.encode(obj)


#: The encoder of :func:`encode_json` (built once: ``json.dumps`` with options builds one per
#: call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _encode_reply(reply: dict[str, Any]) -> str:
    try:
        return encode_json(reply)
    except (TypeError, ValueError, RecursionError) as exc:
        error = JsonRpcError(
            INTERNAL_ERROR,
            "internal error",
            {"reason": f"the result cannot be serialized to JSON ({type(exc).__name__})"},
        )
        try:
            return encode_json(error_response(reply.get("id"), error))
        except (TypeError, ValueError):
            return encode_json(error_response(None, error))


def encode_replies(replies: list[dict[str, Any]], batch: bool) -> str | None:
    """The text to send for a message's replies (None: nothing to send).

    Args:
        replies: The responses to the non-notification members.
        batch: True if the message was a batch (an array is sent, unless it is empty).
    """
    if not replies:
        return None
    if batch and len(replies) > 1:
        try:  # one encoder pass (the same text as the joined parts)
            return _ENCODER.encode(replies)
        except (TypeError, ValueError, RecursionError):
            pass  # a member's result cannot be serialized: that member gets an error
    parts = [_encode_reply(r) for r in replies]
    return "[" + ",".join(parts) + "]" if batch else parts[0]


# --------------------------------------------------------------------------------------------
# Errors


def error_from_exception(exc: BaseException, *, debug: bool) -> JsonRpcError:
    """The error object for an exception raised while handling a call.

    Args:
        exc: The exception.
        debug: True to show the text of internal errors (hidden otherwise).

    Returns:
        :class:`JsonRpcError` as raised; an upstream's :class:`~rpc.errors.RemoteError`
        with its code; an engine error with its code (``ValidationError``: -32602 with
        ``expected``/``given``/``where``); ``TimeoutError`` -32001; anything else -32603.
    """
    if isinstance(exc, JsonRpcError):
        return exc
    if isinstance(exc, RemoteError):
        return JsonRpcError(exc.code, exc.message, exc.data)
    if isinstance(exc, ValidationError):
        data = {"expected": exc.expected, "given": exc.given, "where": exc.where}
        return JsonRpcError(INVALID_PARAMS, f"invalid params: {exc}", data)
    if isinstance(exc, CommitDBError):
        code, message, data = error_to_wire(exc, debug=False)
        return JsonRpcError(code, message, data)
    if isinstance(exc, TimeoutError):
        return JsonRpcError(TIMEOUT, "timeout", {"reason": str(exc) or "no result in time"})
    if debug:
        return JsonRpcError(
            INTERNAL_ERROR,
            f"internal error: {type(exc).__name__}: {exc}",
            {"type": type(exc).__name__},
        )
    return JsonRpcError(INTERNAL_ERROR, "internal error")


# --------------------------------------------------------------------------------------------
# Methods


Handler = Callable[[Any, "Bound"], Awaitable[Any]]
"""A method implementation: ``await handler(context, bound_params)`` returns the JSON result."""


@dataclass(frozen=True, slots=True)
class Param:
    """A method parameter as OpenRPC describes it."""

    name: str
    schema: dict[str, Any]
    required: bool = True
    default: Any = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A method: its handler and what discovery publishes about it.

    Attributes:
        name: The method name (``db.get``, ``pool.Tools.add``).
        handler: The implementation.
        params: The parameters, in positional order.
        result_name: The name of the result (OpenRPC ``result.name``).
        result_schema: The JSON schema of the result.
        summary: One line.
        description: More text, or empty.
        permission: ``read``, ``write`` or ``admin``: the least a caller needs.
        transports: Where the method is offered (``http``, ``ws``).
        notes: Extra OpenRPC fields (``x-...``).
        inline: The handler never suspends (it runs to its end at once, so no timeout can
            interrupt it): it runs without a timeout scope, in place within a batch.
    """

    name: str
    handler: Handler
    params: tuple[Param, ...] = ()
    result_name: str = "result"
    result_schema: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    description: str = ""
    permission: str = "read"
    transports: frozenset[str] = frozenset({"http", "ws"})
    notes: dict[str, Any] = field(default_factory=dict)
    inline: bool = False
    #: Where each parameter sits when all are given by position (``params[i]``); shared by
    #: the :class:`Bound` objects of such calls, never to be modified.
    positions: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = {p.name: f"params[{i}]" for i, p in enumerate(self.params)}
        object.__setattr__(self, "positions", where)


class Registry:
    """Methods by name."""

    def __init__(self, methods: Iterable[MethodSpec] = ()) -> None:
        self._methods: dict[str, MethodSpec] = {}
        for m in methods:
            self.register(m)

    def register(self, spec: MethodSpec) -> MethodSpec:
        """Add a method (ValueError if the name is taken)."""
        if spec.name in self._methods:
            raise ValueError(f"the method {spec.name!r} is registered twice")
        self._methods[spec.name] = spec
        return spec

    def get(self, name: str) -> MethodSpec | None:
        """The method with this name, or None."""
        return self._methods.get(name)

    def methods(self) -> list[MethodSpec]:
        """Every method, in registration order."""
        return list(self._methods.values())

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(self.methods())

    def __len__(self) -> int:
        return len(self._methods)


@dataclass(frozen=True, slots=True)
class Bound:
    """Parameters matched to a method: values by name and where each came from."""

    values: dict[str, Any]
    where: dict[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        """The value of a parameter, or `default` when absent or null."""
        value = self.values.get(name)
        return default if value is None else value


#: ``params[i]`` for the first positions (built once).
_POSITIONS = tuple(f"params[{i}]" for i in range(32))


def bind_params(spec: MethodSpec, params: list[Any] | dict[str, Any] | None) -> Bound:
    """Match ``params`` to a method's parameters.

    Returns:
        The values (absent optional parameters take their defaults) and, for each, where it
        sits (``params[1]`` or ``params.name``).

    Raises:
        JsonRpcError: -32602 with ``data`` saying what is missing, unknown or in excess.
    """
    declared = spec.params
    if type(params) is list and len(params) == len(declared):
        # the common case: every parameter by position (``where`` is the same every time)
        return Bound({p.name: v for p, v in zip(declared, params, strict=True)}, spec.positions)
    given = {}
    where: dict[str, str] = {}
    if isinstance(params, list):
        if len(params) > len(spec.params):
            names = [p.name for p in spec.params]
            raise JsonRpcError(
                INVALID_PARAMS,
                f"invalid params: {spec.name} takes at most {len(spec.params)} parameter(s), "
                f"got {len(params)}",
                {"expected": names, "given": len(params)},
            )
        for i, (p, value) in enumerate(zip(spec.params, params, strict=False)):
            given[p.name] = value
            where[p.name] = _POSITIONS[i] if i < len(_POSITIONS) else f"params[{i}]"
    elif isinstance(params, dict):
        names = [p.name for p in spec.params]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise JsonRpcError(
                INVALID_PARAMS,
                f"invalid params: {spec.name} has no parameter(s) {', '.join(unknown)}",
                {"unknown": unknown, "expected": names},
            )
        given = dict(params)
        where = {n: f"params.{n}" for n in params}
    missing = [p.name for p in spec.params if p.required and p.name not in given]
    if missing:
        names = [p.name for p in spec.params]
        raise JsonRpcError(
            INVALID_PARAMS,
            f"invalid params: {spec.name} needs {', '.join(missing)}",
            {"missing": missing, "expected": names},
        )
    for p in spec.params:
        if p.name not in given:
            given[p.name] = p.default
            where[p.name] = f"params.{p.name}"
    return Bound(given, where)
