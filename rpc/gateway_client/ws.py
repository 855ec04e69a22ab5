"""The async WebSocket client of the JSON-RPC gateway (``GET /ws``), both directions.

::

    async with GatewayWebSocket("ws://127.0.0.1:8080/ws", token="s3cret") as ws:
        await ws.call("pool.Tools.add", [1, 2])                    # 3
        ws.on_notification("events.jobs", print)                   # sync or async handlers
        async with ws.subscribe_commits("main") as commits:
            async for event in commits:                            # CommitEvent(database, header)
                print(event.commit)
        # lend a local CommitMutableState to an attachment function running on the gateway
        ms = CommitMutableState(db.state(db.last_commit_id()))
        vertex = await ws.call("apool.ModelGraph.newVertex", [graph, 10, pos], lend=ms)
        db.commit_mutations("new vertex", ms)

One reader task receives everything: replies resolve their calls, ``state.*`` requests and
notifications of a lent call are applied to the lent state inline (so in arrival order), and
other notifications are queued to a dispatcher task that runs the handlers in order (a
handler may itself call the gateway). If the connection drops, calls in flight fail with
:class:`TransportError` and subscriptions end with it.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from rpc.gateway_client.http import (
    Call,
    Notification,
    Params,
    dumps,
    make_request,
    match_batch,
    result_of,
)
from rpc.gateway_client.resilience import (
    USE_DEFAULT,
    Forbidden,
    GatewayError,
    JsonRpcError,
    ProtocolViolation,
    Timeout,
    TransportError,
    Unauthorized,
    UseDefault,
    resolve_timeout,
    with_timeout,
)

if TYPE_CHECKING:
    from commitdb.definitions import Definitions

__all__ = (
    "CommitEvent",
    "GatewayWebSocket",
    "Handler",
    "ServiceEvent",
    "StateLender",
    "Subscription",
    "ws_url",
)

log = logging.getLogger("rpc.gateway_client")

#: A notification handler: called with the notification's params; may be a coroutine function.
Handler = Callable[[Any], Awaitable[None] | None]

_CLOSED = object()


def ws_url(url: str) -> str:
    """The WebSocket URL of a gateway given either its ``ws(s)://…/ws`` or ``http(s)://`` URL.

    Args:
        url: ``ws://host:port/ws``, or ``http://host:port`` (``/ws`` is appended).

    Returns:
        The ``ws://`` or ``wss://`` URL.
    """
    if url.startswith(("http://", "https://")):
        scheme, rest = url.split("://", 1)
        host, _, path = rest.partition("/")
        path = path.rstrip("/")
        return f"{'wss' if scheme == 'https' else 'ws'}://{host}/{path or 'ws'}"
    return url


def _expire(futures: Iterable[asyncio.Future[Any]], seconds: float) -> None:
    """Fail the calls still waiting when their timeout passes (as ``with_timeout`` does)."""
    for fut in futures:
        if not fut.done():
            fut.set_exception(
                Timeout(
                    -32001, f"no reply within {seconds:g} s", {"client": True, "timeout": seconds}
                )
            )


class _Connection(ClientConnection):
    """A client connection that offers each complete text message to :attr:`direct` as
    soon as it is parsed (in the protocol callback, no task switch); a message it declines
    (returns False) is queued for ``recv`` as usual."""

    direct: Callable[[str], bool] | None = None

    def process_event(self, event: Event) -> None:
        direct = self.direct
        if (
            direct is not None
            and type(event) is Frame
            and event.opcode is Opcode.TEXT
            and event.fin
            and self.response is not None
        ):
            try:
                text = bytes(event.data).decode("utf-8")
            except UnicodeDecodeError:
                pass  # recv reports it
            else:
                if direct(text):
                    return
        super().process_event(event)


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """A ``db.commit`` notification.

    Attributes:
        database: The database name.
        header: The commit header (``commit``, ``parent``, ``kind``, ``label`` ...).
    """

    database: str
    header: dict[str, Any]

    @property
    def commit(self) -> str:
        """The new commit's hex id."""
        return str(self.header.get("commit"))


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """An ``events.<topic>`` notification.

    Attributes:
        topic: The topic.
        params: The notification's params.
    """

    topic: str
    params: Any


# --------------------------------------------------------------------------------------------
# Subscriptions


@dataclass(eq=False)
class Subscription:
    """An async iterator over the notifications of one subscription.

    Use it as an async context manager (subscribed on entry, so nothing committed after
    ``__aenter__`` returns is missed; unsubscribed on exit)::

        async with ws.subscribe_commits("main") as commits:
            event = await commits.next(timeout=5)
            async for event in commits:
                print(event.commit, event.header["label"])

    Iterating without entering it subscribes on the first ``__anext__`` and unsubscribes
    when the iteration is closed (``aclose``).

    Attributes:
        kind: ``"db"`` or ``"events"``.
        name: The database name or the event topic.
        max_buffer: Notifications kept while the consumer is behind; one more ends the
            subscription with a :class:`GatewayError` (events would be lost otherwise).
    """

    ws: GatewayWebSocket
    kind: Literal["db", "events"]
    name: str
    max_buffer: int = 10_000
    _send: MemoryObjectSendStream[Any] | None = field(default=None, repr=False)
    _recv: MemoryObjectReceiveStream[Any] | None = field(default=None, repr=False)
    _active: bool = False
    _ended: BaseException | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        if not self._active and self._recv is None:
            await self.start()
        assert self._recv is not None
        try:
            item = await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if item is _CLOSED:
            self._recv.close()
            if self._ended is not None:
                raise self._ended
            raise StopAsyncIteration
        return item

    async def next(self, timeout: float | None = None) -> Any:
        """The next notification.

        Args:
            timeout: Seconds to wait (None: forever).

        Returns:
            A :class:`CommitEvent` or :class:`ServiceEvent`.

        Raises:
            Timeout: Nothing arrived in time.
            StopAsyncIteration: The subscription ended.
            TransportError: The connection was lost.
        """
        return await with_timeout(timeout, self.__anext__)

    def _wrap(self, params: Any) -> Any:
        if self.kind == "db":
            header = params.get("header") if isinstance(params, Mapping) else None
            return CommitEvent(self.name, dict(header) if isinstance(header, Mapping) else {})
        return ServiceEvent(self.name, params)

    def _deliver(self, params: Any) -> None:
        """Called by the dispatcher with a matching notification."""
        if self._send is None or self._ended is not None:
            return
        if self.kind == "db" and not (
            isinstance(params, Mapping) and params.get("database") == self.name
        ):
            return
        try:
            self._send.send_nowait(self._wrap(params))
        except anyio.WouldBlock:
            self._finish(GatewayError(f"subscription {self.kind}:{self.name} overflowed"))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send = None

    def _finish(self, error: BaseException | None) -> None:
        """End the iteration (with ``error`` raised by ``__anext__`` when not None)."""
        if self._send is None:
            return
        if self._ended is None:
            self._ended = error
        send, self._send = self._send, None
        try:
            send.send_nowait(_CLOSED)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        send.close()

    async def start(self) -> None:
        """Subscribe (idempotent)."""
        if self._active:
            return
        # one slot more than max_buffer, for the end marker
        self._send, self._recv = anyio.create_memory_object_stream[Any](self.max_buffer + 1)
        self._active = True
        await self.ws._add_subscription(self)

    async def aclose(self) -> None:
        """Unsubscribe and end the iteration (idempotent)."""
        if not self._active:
            return
        self._active = False
        self._finish(None)
        await self.ws._remove_subscription(self)
        if self._recv is not None:
            self._recv.close()


# --------------------------------------------------------------------------------------------
# Lending


class StateLender:
    """Answers the gateway's ``state.*`` requests from a lent state and applies its mutations.

    Mutations arrive as notifications; a failure is kept and reported by the next request
    (a read, or the final ``state.flush``) so the pool function sees it where it happened.

    Args:
        state: The lent object: a ``CommitMutableState`` or anything with its read methods
            (``keys``, ``has``, ``get``) and, for mutating functions, its mutation methods.
        definitions: The definitions typing the documents (default: ``state.definitions()``).

    Raises:
        TypeError: No definitions were given and the state has none.
    """

    def __init__(self, state: Any, definitions: Definitions | None = None) -> None:
        if definitions is None:
            get_defs = getattr(state, "definitions", None)
            if not callable(get_defs):
                raise TypeError("lending needs definitions: pass definitions=, or lend a state")
            definitions = get_defs()
        self.state = state
        self.definitions: Definitions = definitions
        self.error: BaseException | None = None
        #: Mutations applied, reads answered.
        self.applied = 0
        self.answered = 0

    def request(self, method: str, params: Any) -> Any:
        """Answer ``state.keys/has/get/flush``.

        Args:
            method: The method without its ``state.`` prefix.
            params: The request's params (an object).

        Returns:
            The JSON result.

        Raises:
            Exception: A kept mutation failure, or the read's own failure.
        """
        from rpc import json_values as jv

        if self.error is not None:
            err, self.error = self.error, None
            raise err
        if method == "flush":
            return None
        if method not in ("keys", "has", "get"):
            raise _method_not_found(f"state.{method}")
        p = _named(params)
        name = p.get("attachment")
        if not isinstance(name, str):
            raise JsonRpcError(-32602, f"attachment must be a string, got {name!r:.100}")
        att = self.definitions.check_attachment(name)
        self.answered += 1
        if method == "keys":
            return [jv.key_to_json(k) for k in sorted(self.state.keys(att))]
        key = jv.key_from_json(p.get("key"), att.key_type, self.definitions, "params.key")
        if method == "has":
            return bool(self.state.has(att, key))
        doc = self.state.get(att, key)
        return None if doc is None else jv.to_json(doc, att.document_type)

    def notify(self, method: str, params: Any) -> None:
        """Apply a mutation notification (a failure is kept for the next request)."""
        from rpc import json_values as jv

        try:
            if method not in jv.MUTATION_FIELDS:
                raise _method_not_found(f"state.{method}")
            jv.apply_mutation(
                self.state, {**_named(params), "op": method}, self.definitions, "params"
            )
            self.applied += 1
        except Exception as exc:
            log.debug("lent state: %s failed: %r", method, exc)
            if self.error is None:
                self.error = exc


def _named(params: Any) -> Mapping[str, Any]:
    if not isinstance(params, Mapping):
        raise JsonRpcError(-32602, f"state.* params must be an object, got {params!r:.100}")
    return params


def _method_not_found(method: str) -> JsonRpcError:
    return JsonRpcError(-32601, f"method not found: {method}")


def _error_object(exc: BaseException) -> dict[str, Any]:
    """The JSON-RPC error object answering a server request that failed with ``exc``."""
    if isinstance(exc, JsonRpcError):
        return exc.to_json()
    from rpc.errors import error_to_wire

    code, message, data = error_to_wire(exc, debug=True)
    out: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        out["data"] = data
    return out


# --------------------------------------------------------------------------------------------
# The client


class GatewayWebSocket:
    """A JSON-RPC connection to the gateway over WebSocket.

    Use it as an async context manager (it runs a reader and a dispatcher task)::

        async with GatewayWebSocket(url, token=t) as ws:
            print(await ws.call("rpc.ping"))

    Args:
        url: ``ws://host:port/ws`` (an ``http://host:port`` URL is turned into it).
        token: A bearer token.
        auth: How the token is presented: ``"header"`` (``Authorization: Bearer`` on the
            upgrade request) or ``"message"`` (a first ``auth`` request).
        timeout: Default seconds a call waits for its reply (None: forever); also the
            connection's opening timeout.
        max_size: The largest message accepted, in bytes.
        max_queue: Notifications queued for the handlers and subscriptions while they are
            behind; beyond that they are dropped (counted in ``dropped``, logged).
        definitions: Definitions for lending states that do not carry their own.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        auth: Literal["header", "message"] = "header",
        timeout: float | None = 30.0,
        max_size: int = 16 * 1024 * 1024,
        max_queue: int = 100_000,
        definitions: Definitions | None = None,
    ) -> None:
        if auth not in ("header", "message"):
            raise ValueError(f"auth must be 'header' or 'message', got {auth!r}")
        self.url = ws_url(url)
        self.token = token
        self.auth = auth
        self.timeout = timeout
        self.max_size = max_size
        self.max_queue = max_queue
        self.definitions = definitions
        #: Notifications dropped because the handlers were behind.
        self.dropped = 0
        self._ids = itertools.count(1)
        #: The calls waiting for a reply: the reply object (or the error) is their result.
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._subs: dict[tuple[str, str], list[Subscription]] = {}
        self._conn: ClientConnection | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._queue_send: MemoryObjectSendStream[tuple[str, Any]] | None = None
        self._queue_recv: MemoryObjectReceiveStream[tuple[str, Any]] | None = None
        self._lender: StateLender | None = None
        self._lend_lock = anyio.Lock()
        self._closed: BaseException | None = None
        #: The reader is handling a message (replies then wait their turn behind it).
        self._reader_busy = False

    def __repr__(self) -> str:
        state = "open" if self._conn is not None and self._closed is None else "closed"
        return f"<GatewayWebSocket {self.url} {state}>"

    # -- lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        headers = {}
        if self.token is not None and self.auth == "header":
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            self._conn = await connect(
                self.url,
                additional_headers=headers,
                compression=None,
                max_size=self.max_size,
                open_timeout=self.timeout,
                proxy=None,
                user_agent_header="commitdb-gateway-client",
                create_connection=_Connection,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body or b""
            raise _handshake_error(status, body) from None
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise TransportError(f"{self.url}: {exc!r}") from exc
        self._queue_send, self._queue_recv = anyio.create_memory_object_stream[tuple[str, Any]](
            self.max_queue
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._reader)
        self._tg.start_soon(self._dispatcher)
        if isinstance(self._conn, _Connection):
            self._conn.direct = self._direct_reply
        if self.token is not None and self.auth == "message":
            try:
                await self.call("auth", {"token": self.token})
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Close the connection (calls in flight fail, subscriptions end)."""
        conn = self._conn
        if conn is not None:
            with anyio.move_on_after(5, shield=True):
                await conn.close()
        self._shutdown(None)

    def _shutdown(self, error: BaseException | None) -> None:
        """Fail calls in flight, end subscriptions and stop the dispatcher."""
        if self._closed is None:
            self._closed = error or TransportError("the connection is closed")
        for pending in self._pending.values():
            if not pending.done():
                pending.set_result(self._closed)
        self._pending.clear()
        for subs in self._subs.values():
            for sub in subs:
                sub._finish(error)
        if self._queue_send is not None:
            self._queue_send.close()

    @property
    def closed(self) -> bool:
        """True once the connection is closed or lost."""
        return self._closed is not None

    # -- I/O --------------------------------------------------------------------------------
    async def _send_text(self, text: str) -> None:
        if self._closed is not None:
            raise self._closed
        assert self._conn is not None, "use GatewayWebSocket as an async context manager"
        try:
            await self._conn.send(text)
        except ConnectionClosed as exc:
            raise TransportError(f"{self.url}: connection closed ({exc})") from exc

    def _direct_reply(self, raw: str) -> bool:
        """Take a reply to our calls as soon as it arrives (from the connection's protocol
        callback): True when handled. Only while the reader has nothing queued or in hand,
        so messages are still handled in order; anything but replies goes to the reader."""
        if self._reader_busy or not _nothing_queued(self._conn):
            return False
        try:
            msg = json.loads(raw)
        except ValueError:
            return False  # the reader logs it
        items = msg if type(msg) is list else [msg]
        if not items or any(type(m) is not dict or "method" in m for m in items):
            return False
        for m in items:
            self._resolve(m)
        return True

    async def _reader(self) -> None:
        assert self._conn is not None
        error: BaseException | None = None
        try:
            async for raw in self._conn:
                self._reader_busy = True
                try:
                    try:
                        msg = json.loads(raw)
                    except ValueError:
                        log.warning("gateway sent a message that is not JSON: %.200r", raw)
                        continue
                    for m in msg if isinstance(msg, list) else [msg]:
                        await self._handle(m)
                finally:
                    self._reader_busy = False
        except ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code not in (1000, 1001):
                error = TransportError(f"{self.url}: connection lost ({exc})")
        finally:
            self._shutdown(error)

    async def _handle(self, m: Any) -> None:
        if not isinstance(m, Mapping):
            log.warning("gateway sent a message that is not an object: %.200r", m)
            return
        method = m.get("method")
        if isinstance(method, str):
            if "id" in m:
                await self._serve_request(method, m.get("params"), m["id"])
            elif method.startswith("state."):
                if self._lender is not None:
                    self._lender.notify(method[6:], m.get("params"))
            elif self._queue_send is not None:
                try:
                    self._queue_send.send_nowait((method, m.get("params")))
                except anyio.WouldBlock:
                    self.dropped += 1
                    log.warning("notification %s dropped: the handlers are behind", method)
            return
        self._resolve(m)

    def _resolve(self, m: Mapping[str, Any]) -> None:
        """Hand a reply to the call waiting for it."""
        rid = m.get("id")
        pending = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if pending is not None:
            if not pending.done():
                pending.set_result(m)
        elif "error" in m and rid is None:
            log.warning("gateway error without id: %.200r", m)
        else:
            log.debug("reply for an unknown or abandoned id: %.200r", m)

    async def _serve_request(self, method: str, params: Any, id_: Any) -> None:
        """Answer a request from the gateway (``state.*`` of a lent call)."""
        try:
            if not method.startswith("state."):
                raise _method_not_found(method)
            if self._lender is None:
                raise JsonRpcError(-32600, f"{method}: no state is lent on this connection")
            reply: dict[str, Any] = {
                "jsonrpc": "2.0",
                "result": self._lender.request(method[6:], params),
                "id": id_,
            }
        except Exception as exc:
            reply = {"jsonrpc": "2.0", "error": _error_object(exc), "id": id_}
        try:
            await self._send_text(dumps(reply))
        except GatewayError as exc:
            log.debug("could not answer %s: %r", method, exc)

    async def _dispatcher(self) -> None:
        assert self._queue_recv is not None
        async with self._queue_recv:
            async for method, params in self._queue_recv:
                for handler in list(self._handlers.get(method, ())):
                    await _run_handler(handler, method, params)
                for handler in list(self._handlers.get("*", ())):
                    await _run_handler(handler, method, {"method": method, "params": params})
                self._route_subscriptions(method, params)

    def _route_subscriptions(self, method: str, params: Any) -> None:
        if method == "db.commit":
            name = params.get("database") if isinstance(params, Mapping) else None
            for sub in list(self._subs.get(("db", str(name)), ())):
                sub._deliver(params)
        elif method.startswith("events."):
            for sub in list(self._subs.get(("events", method[7:]), ())):
                sub._deliver(params)

    # -- calls ------------------------------------------------------------------------------
    async def _request(self, message: Any, ids: Sequence[int], timeout: float | None) -> Any:
        """Send a request (or batch) and wait for the replies to ``ids``."""
        # a future per call and one timer: cheaper than a cancel scope and an event per call
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in ids]
        self._pending.update(zip(ids, futures, strict=True))
        try:
            await self._send_text(dumps(message))
            timer = None if timeout is None else loop.call_later(timeout, _expire, futures, timeout)
            try:
                replies = [await fut for fut in futures]
            finally:
                if timer is not None:
                    timer.cancel()
        finally:
            for i in ids:
                self._pending.pop(i, None)
        for r in replies:
            if isinstance(r, BaseException):
                raise r
        return replies

    async def call(
        self,
        method: str,
        params: Params = None,
        *,
        timeout: float | None | UseDefault = USE_DEFAULT,
        lend: Any = None,
        definitions: Definitions | None = None,
    ) -> Any:
        """Call a method and return its result.

        Args:
            method: The method name.
            params: By position or by name. With ``lend``: the pool function's arguments
                (sent as ``{"lend": true, "args": params}``), or the whole params object.
            timeout: Seconds to wait for the reply (default: the connection's).
            lend: A state to lend to an ``apool.*`` call: the gateway's reads and mutations
                of the function's state are answered from and applied to it.
            definitions: Definitions for a lent state that carries none.

        Returns:
            The result.

        Raises:
            JsonRpcError: The gateway answered with an error.
            Timeout: No reply in time.
            TransportError: The connection is closed or was lost.
        """
        t = resolve_timeout(timeout, self.timeout)
        if lend is None:
            return await self._call(method, params, t)
        if isinstance(params, Mapping) and "args" in params:
            wrapped: dict[str, Any] = {**params, "lend": True}
        else:
            wrapped = {"lend": True, "args": [] if params is None else params}
        async with self.lend(lend, definitions=definitions):
            return await self._call(method, wrapped, t)

    async def _call(self, method: str, params: Params, timeout: float | None) -> Any:
        id_ = next(self._ids)
        (reply,) = await self._request(make_request(method, params, id_), [id_], timeout)
        return result_of(reply, id_)

    async def notify(self, method: str, params: Params = None) -> None:
        """Send a notification (no reply).

        Raises:
            TransportError: The connection is closed.
        """
        await self._send_text(dumps(make_request(method, params, None)))

    async def batch(
        self,
        items: Sequence[Call | Notification | tuple[str, Params]],
        *,
        timeout: float | None | UseDefault = USE_DEFAULT,
    ) -> list[Any]:
        """Send several requests in one message.

        Args:
            items: :class:`Call` / :class:`Notification` members (a tuple is a call).
            timeout: Seconds to wait for every reply (default: the connection's).

        Returns:
            One entry per item: the result, the :class:`JsonRpcError` it failed with, or None
            for a notification.

        Raises:
            ValueError: ``items`` is empty.
        """
        if not items:
            raise ValueError("a batch needs at least one member")
        ids: list[int | None] = []
        messages = []
        for m in items:
            member = Call(*m) if isinstance(m, tuple) else m
            id_ = next(self._ids) if isinstance(member, Call) else None
            ids.append(id_)
            messages.append(make_request(member.method, member.params, id_))
        wanted = [i for i in ids if i is not None]
        if not wanted:
            await self._send_text(dumps(messages))
            return [None] * len(ids)
        replies = await self._request(messages, wanted, resolve_timeout(timeout, self.timeout))
        whole = [r for r in replies if isinstance(r, Mapping) and r.get("id") is None]
        if whole:
            raise ProtocolViolation(f"batch refused: {whole[0]!r:.200}")
        return match_batch(replies, ids)

    # -- notifications and subscriptions ----------------------------------------------------
    def on_notification(self, method: str, handler: Handler) -> Callable[[], None]:
        """Run ``handler(params)`` for every notification ``method`` (in arrival order).

        Args:
            method: The notification method (``db.commit``, ``events.jobs`` ...); ``"*"``
                receives every notification as ``{"method", "params"}``.
            handler: A function or coroutine function; its exceptions are logged.

        Returns:
            A function that removes the handler.
        """
        self._handlers.setdefault(method, []).append(handler)

        def remove() -> None:
            handlers = self._handlers.get(method, [])
            if handler in handlers:
                handlers.remove(handler)

        return remove

    def subscribe_commits(self, database: str, *, max_buffer: int = 10_000) -> Subscription:
        """Commits made to a database (by anyone), as :class:`CommitEvent` items.

        Args:
            database: The database name.
            max_buffer: Events kept while the consumer is behind.

        Returns:
            A :class:`Subscription` (enter it, or iterate it).
        """
        return Subscription(self, "db", database, max_buffer)

    def subscribe_events(self, topic: str, *, max_buffer: int = 10_000) -> Subscription:
        """Service events of a topic, as :class:`ServiceEvent` items."""
        return Subscription(self, "events", topic, max_buffer)

    async def _add_subscription(self, sub: Subscription) -> None:
        subs = self._subs.setdefault((sub.kind, sub.name), [])
        subs.append(sub)
        if len(subs) == 1:
            try:
                await self._subscribe_call(sub, "subscribe")
            except BaseException:
                subs.remove(sub)
                sub._finish(None)
                raise

    async def _remove_subscription(self, sub: Subscription) -> None:
        subs = self._subs.get((sub.kind, sub.name), [])
        if sub in subs:
            subs.remove(sub)
        if not subs and self._closed is None:
            self._subs.pop((sub.kind, sub.name), None)
            try:
                await self._subscribe_call(sub, "unsubscribe")
            except GatewayError as exc:
                log.debug("unsubscribe %s:%s failed: %r", sub.kind, sub.name, exc)

    async def _subscribe_call(self, sub: Subscription, verb: str) -> None:
        if sub.kind == "db":
            await self.call(f"db.{verb}", {"database": sub.name})
        else:
            await self.call(f"events.{verb}", {"topic": sub.name})

    # -- lending ----------------------------------------------------------------------------
    @asynccontextmanager
    async def lend(
        self, state: Any, *, definitions: Definitions | None = None
    ) -> AsyncIterator[StateLender]:
        """Lend ``state`` to the ``apool.*`` calls made with ``lend: true`` in this block.

        One state is lent at a time per connection (the ``state.*`` requests do not say which
        call they belong to); a second ``lend`` waits for the first to end.

        Args:
            state: The lent object (a ``CommitMutableState``, or anything with its methods).
            definitions: Its definitions when it has no ``definitions()`` method (default:
                the connection's ``definitions``).

        Yields:
            The :class:`StateLender` (``applied``/``answered`` counters).

        Raises:
            Exception: A mutation failure the gateway did not collect (it is reported here
                rather than lost).
        """
        async with self._lend_lock:
            lender = StateLender(state, definitions or self._definitions_for(state))
            self._lender = lender
            try:
                yield lender
            finally:
                self._lender = None
            if lender.error is not None:
                raise lender.error

    def _definitions_for(self, state: Any) -> Definitions | None:
        return None if callable(getattr(state, "definitions", None)) else self.definitions


def _nothing_queued(conn: ClientConnection | None) -> bool:
    """Whether the connection has no received frame waiting for ``recv`` (False when that
    cannot be told: the message then takes the usual way)."""
    try:
        return not conn.recv_messages.frames.queue  # type: ignore[union-attr]
    except AttributeError:
        return False


async def _run_handler(handler: Handler, method: str, arg: Any) -> None:
    """Run a notification handler (sync or async); its exceptions are logged, not raised."""
    try:
        out = handler(arg)
        if inspect.isawaitable(out):
            await out
    except Exception:
        log.exception("notification handler for %s failed", method)


def _handshake_error(status: int, body: bytes | bytearray) -> GatewayError:
    """The error for a refused WebSocket upgrade (a JSON-RPC body if the gateway sent one)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping) and isinstance(doc.get("error"), Mapping):
        from rpc.gateway_client.resilience import error_from_json

        return error_from_json(doc["error"])
    if status == 401:
        return Unauthorized(-32003, "unauthorized (WebSocket upgrade refused)")
    if status == 403:
        return Forbidden(-32004, "forbidden (WebSocket upgrade refused)")
    return TransportError(f"WebSocket upgrade refused: HTTP {status}")
