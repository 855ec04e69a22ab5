"""The async HTTP client of the JSON-RPC gateway, and the JSON-RPC message helpers.

::

    async with GatewayClient("http://127.0.0.1:8080", token="s3cret") as gw:
        await gw.call("pool.Tools.add", [1, 2])                  # 3
        await gw.call("db.heads", {"database": "main"})          # ["ab12…"]
        await gw.notify("rpc.ping")
        await gw.batch([Call("rpc.ping"), Call("pool.Tools.add", [2, 3])])  # ["pong", 5]

Read methods (:func:`is_idempotent`) are retried on transient failures; writes are sent once.
A plain ``http://`` gateway is reached through a small keep-alive connection pool
(:mod:`rpc.gateway_client.keepalive`: one write per request, the reply parsed by hand); HTTPS,
a proxy from the environment or a custom ``transport`` go through one ``httpx.AsyncClient``.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import anyio
import httpx

from rpc.gateway_client.keepalive import (
    ConnectFailed,
    HTTPProtocolError,
    KeepAlivePool,
    Reply,
    direct_origin,
)
from rpc.gateway_client.resilience import (
    USE_DEFAULT,
    CircuitBreaker,
    HTTPStatusError,
    JsonRpcError,
    ProtocolViolation,
    RetryPolicy,
    Sleep,
    TransportError,
    UseDefault,
    call_with_resilience,
    error_from_json,
    resolve_timeout,
)

__all__ = (
    "IDEMPOTENT_METHODS",
    "IDEMPOTENT_PREFIXES",
    "Call",
    "GatewayClient",
    "Notification",
    "Params",
    "dumps",
    "is_idempotent",
    "make_request",
    "match_batch",
    "result_of",
)

#: JSON-RPC params: by position, by name, or absent.
Params = Sequence[Any] | Mapping[str, Any] | None

#: Method prefixes whose calls are read-only (safe to send twice).
IDEMPOTENT_PREFIXES: tuple[str, ...] = ("rpc.", "pool.")

#: The read-only database methods.
IDEMPOTENT_METHODS: frozenset[str] = frozenset(
    {
        "db.list",
        "db.heads",
        "db.last",
        "db.header",
        "db.log",
        "db.keys",
        "db.has",
        "db.get",
        "db.blob.get",
        "db.blob.info",
    }
)


def is_idempotent(method: str) -> bool:
    """Whether a method only reads (the default ``idempotent`` of a call).

    Args:
        method: The JSON-RPC method name.

    Returns:
        True for ``rpc.*``, ``pool.*`` and the read methods of ``db.*``.
    """
    return method.startswith(IDEMPOTENT_PREFIXES) or method in IDEMPOTENT_METHODS


@dataclass(frozen=True, slots=True)
class Call:
    """A batch member that expects a reply."""

    method: str
    params: Params = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A batch member that gets no reply."""

    method: str
    params: Params = None


# --------------------------------------------------------------------------------------------
# Encoding


def _default(value: Any) -> Any:
    """JSON forms of the Python values a caller may naturally pass as params."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=lambda v: json.dumps(v, default=_default, sort_keys=True))
    concept = getattr(value, "concept", None)
    instance = getattr(value, "id", None)
    if concept is not None and isinstance(instance, uuid.UUID):  # a commitdb Key
        return {"concept": str(getattr(concept, "qualified_name", concept)), "id": str(instance)}
    hex_ = getattr(value, "hex", None)
    if callable(hex_) and type(value).__name__ in ("CommitId", "BlobId"):
        return hex_()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def _finite(value: Any) -> Any:
    """Replace non-finite floats by the strings the gateway reads (``"NaN"`` ...)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(message: Any) -> str:
    """Encode a JSON-RPC message compactly.

    UUIDs become strings, bytes base64, sets arrays, commitdb keys ``{"concept", "id"}``,
    commit and blob ids hex, and non-finite floats the strings ``"NaN"``/``"Infinity"``/
    ``"-Infinity"`` (the gateway's JSON forms).

    Args:
        message: A request, a batch, or a reply.

    Returns:
        The JSON text.
    """
    try:
        return _ENCODER.encode(message)
    except ValueError:
        return json.dumps(
            _finite(message), separators=(",", ":"), allow_nan=False, default=_default
        )


#: The encoder of :func:`dumps` (built once: ``json.dumps`` with options builds one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_default)


def make_request(method: str, params: Params, id_: int | str | None) -> dict[str, Any]:
    """A request object (a notification when ``id_`` is None).

    Args:
        method: The method name.
        params: Positional (a sequence) or named (a mapping) params, or None.
        id_: The request id; None makes a notification.

    Returns:
        The request as a dict ready for :func:`dumps`.

    Raises:
        TypeError: ``params`` is neither a sequence nor a mapping (nor None).
    """
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        kind = type(params)
        if kind is list or kind is tuple:  # the usual forms, without the ABC checks below
            msg["params"] = list(params)
        elif kind is dict:
            msg["params"] = dict(params)
        elif isinstance(params, Mapping):
            msg["params"] = dict(params)
        elif isinstance(params, Sequence) and not isinstance(params, str | bytes):
            msg["params"] = list(params)
        else:
            raise TypeError(f"params must be a sequence or a mapping, got {type(params).__name__}")
    if id_ is not None:
        msg["id"] = id_
    return msg


def result_of(reply: Any, expected_id: int | str | None) -> Any:
    """The result of a reply, or raise its error.

    Args:
        reply: A decoded reply object.
        expected_id: The id of the request it answers (a reply with ``"id": null`` carrying
            an error is accepted too: the server could not read our id).

    Returns:
        The ``result`` member.

    Raises:
        JsonRpcError: The reply is an error (the class maps the code).
        ProtocolViolation: The reply is malformed or answers another id.
    """
    if (type(reply) is not dict and not isinstance(reply, Mapping)) or reply.get(
        "jsonrpc"
    ) != "2.0":
        raise ProtocolViolation(f"not a JSON-RPC 2.0 reply: {reply!r:.200}")
    rid = reply.get("id")
    if "error" in reply:
        if rid is not None and rid != expected_id:
            raise ProtocolViolation(f"reply for id {rid!r}, expected {expected_id!r}")
        raise error_from_json(reply["error"])
    if "result" not in reply:
        raise ProtocolViolation(f"a reply needs a result or an error: {reply!r:.200}")
    if rid != expected_id:
        raise ProtocolViolation(f"reply for id {rid!r}, expected {expected_id!r}")
    return reply["result"]


# --------------------------------------------------------------------------------------------
# The client


class GatewayClient:
    """Calls a JSON-RPC gateway over HTTP (``POST /``), with retries and a circuit breaker.

    Args:
        url: The gateway's base URL (``http://host:port``); requests go to its ``/``.
        token: A bearer token (sent as ``Authorization: Bearer …``).
        timeout: Seconds each attempt may take (connect + reply); None waits forever.
        retries: How many times an idempotent call is tried again after a transient failure.
        backoff: The first retry delay in seconds (doubled each retry, with jitter).
        breaker: The circuit breaker (None: a fresh ``CircuitBreaker()``; share one between
            clients of the same gateway to pool their view of its health).
        policy: A complete retry policy (overrides ``retries`` and ``backoff``).
        sleep: The sleep used between retries (inject a recorder in tests).
        headers: Extra HTTP headers.
        transport: An httpx transport (tests, ASGI apps).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        breaker: CircuitBreaker | None = None,
        policy: RetryPolicy | None = None,
        sleep: Sleep = anyio.sleep,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.timeout = timeout
        self.policy = policy if policy is not None else RetryPolicy(retries, backoff)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._sleep = sleep
        self._ids = itertools.count(1)
        hdrs = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        self._headers = hdrs
        self._transport = transport
        self._httpx: httpx.AsyncClient | None = None
        origin = direct_origin(self.url) if transport is None else None
        #: The keep-alive pool for a plain ``http://`` gateway (None: requests go via httpx).
        self._direct: KeepAlivePool | None = None
        self._path = "/"
        if origin is not None:
            host, port, self._path = origin
            self._direct = KeepAlivePool(
                host,
                port,
                {"User-Agent": "commitdb-gateway-client", **hdrs},
                max_connections=100,
                max_idle=20,
            )
        #: ``(retry number, delay, error)`` of every retry made (newest last, at most 1000).
        self.retry_log: list[tuple[int, float, BaseException]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def _http(self) -> httpx.AsyncClient:
        """The httpx client (HTTPS, proxies, custom transports; created when first used)."""
        if self._httpx is None:
            self._httpx = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                transport=self._transport,
            )
        return self._httpx

    async def aclose(self) -> None:
        """Close the keep-alive connections."""
        if self._direct is not None:
            await self._direct.aclose()
        if self._httpx is not None:
            await self._httpx.aclose()

    def __repr__(self) -> str:
        return f"<GatewayClient {self.url} breaker={self.breaker.state.value}>"

    def _on_retry(self, n: int, delay: float, error: BaseException) -> None:
        if len(self.retry_log) >= 1000:
            del self.retry_log[:500]
        self.retry_log.append((n, delay, error))

    async def _post(self, body: str) -> Reply:
        return await self._request("POST", "", body.encode("utf-8"))

    async def _request(self, method: str, path: str, body: bytes | None = None) -> Reply:
        """One HTTP request to ``url + path``; its reply (TransportError when none came)."""
        direct = self._direct
        if direct is not None:
            try:
                return await direct.request(method, self._path + path, body)
            except OSError as exc:
                cause = _as_httpx_error(exc)
                raise TransportError(f"{self.url}{path}: {cause!r}") from cause
        try:
            resp = await self._http.request(method, self.url + path, content=body)
        except httpx.TimeoutException as exc:
            raise TransportError(f"timed out talking to {self.url}{path}: {exc!r}") from exc
        except (httpx.TransportError, OSError) as exc:
            raise TransportError(f"{self.url}{path}: {exc!r}") from exc
        return Reply(resp.status_code, dict(resp.headers), resp.content)

    @staticmethod
    def _decode(resp: Reply) -> Any:
        """The JSON body of a reply that should carry one."""
        try:
            return json.loads(resp.content)
        except (ValueError, UnicodeDecodeError):
            if resp.status >= 400:
                raise HTTPStatusError(resp.status, resp.text[:200]) from None
            raise ProtocolViolation(
                f"HTTP {resp.status} with a body that is not JSON: {resp.text[:200]!r}"
            ) from None

    async def _send(self, message: Any, expect_body: bool) -> Any:
        """POST a message; returns the decoded body (None for 204)."""
        resp = await self._post(dumps(message))
        if resp.status == 204 or (not expect_body and not resp.content):
            if expect_body:
                raise ProtocolViolation("HTTP 204: no reply to a request")
            return None
        return self._decode(resp)

    async def call(
        self,
        method: str,
        params: Params = None,
        *,
        idempotent: bool | None = None,
        timeout: float | None | UseDefault = USE_DEFAULT,
    ) -> Any:
        """Call a method and return its result.

        Args:
            method: The method (``pool.Tools.add``, ``db.get`` ...).
            params: By position (sequence) or by name (mapping).
            idempotent: Whether the call may be sent again after a transient failure; None
                decides from the method name (:func:`is_idempotent`).
            timeout: Seconds this call's attempts may take each (default: the client's).

        Returns:
            The ``result`` member of the reply.

        Raises:
            JsonRpcError: The gateway answered with an error (subclass by code).
            TransportError: No answer after the allowed attempts.
            CircuitOpenError: The circuit breaker is open.
        """
        idem = is_idempotent(method) if idempotent is None else idempotent

        async def attempt() -> Any:
            id_ = next(self._ids)
            reply = await self._send(make_request(method, params, id_), True)
            return result_of(reply, id_)

        return await call_with_resilience(
            attempt,
            idempotent=idem,
            policy=self.policy,
            breaker=self.breaker,
            timeout=resolve_timeout(timeout, self.timeout),
            sleep=self._sleep,
            on_retry=self._on_retry,
        )

    async def notify(self, method: str, params: Params = None) -> None:
        """Send a notification (no reply; never retried).

        Args:
            method: The method name.
            params: Its params.

        Raises:
            JsonRpcError: The gateway refused the request as a whole (parse error, too large,
                unauthorized), which it reports even for a notification.
            TransportError: It could not be delivered.
        """

        async def attempt() -> None:
            body = await self._send(make_request(method, params, None), False)
            if isinstance(body, Mapping) and "error" in body:
                raise error_from_json(body["error"])

        await call_with_resilience(
            attempt,
            idempotent=False,
            policy=self.policy,
            breaker=self.breaker,
            timeout=self.timeout,
            sleep=self._sleep,
        )

    async def batch(
        self,
        items: Sequence[Call | Notification | tuple[str, Params]],
        *,
        idempotent: bool | None = None,
        timeout: float | None | UseDefault = USE_DEFAULT,
    ) -> list[Any]:
        """Send several requests in one HTTP request.

        Args:
            items: :class:`Call` and :class:`Notification` members; a ``(method, params)``
                tuple is a call.
            idempotent: Whether the whole batch may be sent again after a transient failure;
                None: only if every member is idempotent (:func:`is_idempotent`).
            timeout: Seconds each attempt may take (default: the client's).

        Returns:
            One entry per item, in the items' order: the result of a call, the
            :class:`JsonRpcError` it failed with (returned, not raised), or None for a
            notification.

        Raises:
            JsonRpcError: The gateway refused the batch as a whole (a single error reply).
            TransportError: No answer after the allowed attempts.
            ProtocolViolation: A call got no reply, or a reply answers no call.
            ValueError: ``items`` is empty (the gateway would refuse it).
        """
        if not items:
            raise ValueError("a batch needs at least one member")
        members = [Call(*m) if isinstance(m, tuple) else m for m in items]
        idem = all(is_idempotent(m.method) for m in members) if idempotent is None else idempotent

        async def attempt() -> list[Any]:
            ids: list[int | None] = []
            messages = []
            for m in members:
                id_ = next(self._ids) if isinstance(m, Call) else None
                ids.append(id_)
                messages.append(make_request(m.method, m.params, id_))
            body = await self._send(messages, any(i is not None for i in ids))
            return match_batch(body, ids)

        result: list[Any] = await call_with_resilience(
            attempt,
            idempotent=idem,
            policy=self.policy,
            breaker=self.breaker,
            timeout=resolve_timeout(timeout, self.timeout),
            sleep=self._sleep,
            on_retry=self._on_retry,
        )
        return result

    async def health(self) -> Any:
        """``GET /health`` (not retried, not counted by the breaker).

        Returns:
            The decoded JSON document.
        """
        return self._decode(await self._get("health"))

    async def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text exposition."""
        resp = await self._get("metrics")
        if resp.status != 200:
            body = self._decode(resp)
            if isinstance(body, Mapping) and "error" in body:
                raise error_from_json(body["error"])
            raise HTTPStatusError(resp.status, resp.text[:200])
        return resp.text

    async def _get(self, path: str) -> Reply:
        if self._direct is None or self.timeout is None:
            return await self._request("GET", path)
        try:
            with anyio.fail_after(self.timeout):
                return await self._request("GET", path)
        except TimeoutError as exc:
            raise TransportError(f"timed out talking to {self.url}{path}") from exc


def _as_httpx_error(exc: OSError) -> httpx.TransportError:
    """The httpx error matching a keep-alive pool failure (the ``__cause__`` of a
    :class:`TransportError`, whichever way the request went); chained to `exc`."""
    error: httpx.TransportError
    if isinstance(exc, ConnectFailed):
        error = httpx.ConnectError(str(exc))
    elif isinstance(exc, HTTPProtocolError):
        error = httpx.RemoteProtocolError(str(exc))
    else:
        error = httpx.NetworkError(str(exc) or repr(exc))
    error.__cause__ = exc
    return error


def match_batch(body: Any, ids: Sequence[int | str | None]) -> list[Any]:
    """Line up a batch reply with the request ids.

    Args:
        body: The decoded reply (an array, None for an all-notification batch, or a single
            error object when the batch was refused as a whole).
        ids: The request ids in item order (None for notifications).

    Returns:
        One entry per id: the result, the :class:`JsonRpcError`, or None for a notification.

    Raises:
        JsonRpcError: The whole batch was refused.
        ProtocolViolation: The reply does not match the requests.
    """
    wanted = [i for i in ids if i is not None]
    if not wanted:
        if body is None or body == []:
            return [None] * len(ids)
        raise ProtocolViolation(f"a reply to an all-notification batch: {body!r:.200}")
    if isinstance(body, Mapping):
        if "error" in body:
            raise error_from_json(body["error"])
        raise ProtocolViolation(f"a batch reply must be an array: {body!r:.200}")
    if not isinstance(body, list):
        raise ProtocolViolation(f"a batch reply must be an array: {body!r:.200}")
    by_id: dict[int | str, Any] = {}
    for reply in body:
        rid = reply.get("id") if type(reply) is dict or isinstance(reply, Mapping) else None
        if type(rid) is not int and (
            rid is None or isinstance(rid, bool) or not isinstance(rid, str)
        ):
            if isinstance(reply, Mapping) and "error" in reply:
                raise error_from_json(reply["error"])
            raise ProtocolViolation(f"a batch reply member without a usable id: {reply!r:.200}")
        try:
            by_id[rid] = result_of(reply, rid)
        except JsonRpcError as exc:
            by_id[rid] = exc
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise ProtocolViolation(f"no reply for ids {missing}")
    return [None if i is None else by_id[i] for i in ids]
