"""JSON-RPC 2.0 over WebSocket: sessions, lent states, subscriptions and database watchers.

A :class:`WsSession` reads messages and runs each one's calls in a task of its own, so a slow
call never holds up a fast one; replies go out through one writer. Ids are the session's
own: two sessions using the same ids never see each other's results.

The server also sends requests (ids ``"s:1"``, ``"s:2"``… never collide with the client's):
with ``lend: true`` an attachment pool function runs against a :class:`LentState` whose
reads are ``state.keys/has/get`` requests answered from the client's own state and whose
mutations are ``state.set/update/…`` notifications, buffered and sent in order before each
read and before the call returns (then a final ``state.flush`` request confirms them) — the
design of :mod:`rpc.remote_local`, in JSON.

Subscriptions (``db.subscribe``, ``events.subscribe``) each have a bounded queue: when a
client does not keep up, events are dropped and counted, and the client is then told how
many it missed (``db.missed`` / ``events.missed``) before the next one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.to_thread

from commitdb.definitions import Definitions
from commitdb.errors import ValidationError
from commitdb.paths import Path
from commitdb.types import Attachment, MapType, OptionalType, SetType, Type, XArrayType
from commitdb.values import END, Key
from rpc.errors import CallCancelledError, ConnectionClosedError
from rpc.gateway.methods import CallContext, ServedDatabase, header_json
from rpc.gateway.metrics import Metrics
from rpc.json_values import describe_json, from_json, key_from_json, key_to_json, to_json
from rpc.jsonrpc import (
    INVALID_REQUEST,
    RATE_LIMITED,
    Call,
    JsonRpcError,
    Message,
    Reply,
    encode_json,
    encode_replies,
    error_response,
    notification,
    parse_message,
    request,
)

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from commitdb.prototypes import FunctionPrototype
    from rpc.gateway.app import Backend, Gateway
    from rpc.gateway.security import Principal

__all__ = ("Hub", "LentState", "Subscription", "WsSession", "watch_database")

log = logging.getLogger("commitdb.gateway.ws")

OUTGOING_QUEUE = 64

Att = Attachment | str
PathLike = Path | str


# --------------------------------------------------------------------------------------------
# Lent states


class LentState:
    """The attachment state a pool function gets when a WebSocket client lends its own.

    Runs in a worker thread: each read blocks the thread (never the event loop) until the
    client answers; mutations are validated here, buffered, and sent in order before the
    next read or at the end.
    """

    def __init__(
        self, session: WsSession, definitions: Definitions, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._session = session
        self._defs = definitions
        self._loop = loop
        self._buffer: list[str] = []
        self._unconfirmed = False
        self._cancelled = threading.Event()
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self.requests = 0
        self.notifications = 0

    def definitions(self) -> Definitions:
        """The definitions of the service."""
        return self._defs

    def cancel(self) -> None:
        """The call was cancelled or timed out: stop at the next read or mutation."""
        self._cancelled.set()
        for f in list(self._futures):
            f.cancel()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._cancelled.is_set():
            coro.close()
            raise CallCancelledError("the call was cancelled")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._futures.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            self._cancelled.set()
            raise CallCancelledError("the call was cancelled") from None
        finally:
            self._futures.discard(future)

    def _request(self, method: str, params: dict[str, Any]) -> Any:
        queued, self._buffer = self._buffer, []
        self._unconfirmed = False
        self.requests += 1
        return self._run(self._session.flush_and_request(queued, method, params))

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        if self._cancelled.is_set():
            raise CallCancelledError("the call was cancelled")
        self._buffer.append(encode_json(notification(f"state.{method}", params)))
        self._unconfirmed = True
        self.notifications += 1

    def finish(self) -> None:
        """Send what is buffered and confirm every mutation since the last read applied."""
        if self._unconfirmed:
            self._request("state.flush", {})

    def send_pending(self) -> None:
        """Send what is buffered without waiting (the function failed)."""
        queued, self._buffer = self._buffer, []
        if queued and not self._cancelled.is_set():
            try:
                self._run(self._session.send_many(queued))
            except Exception:  # the client is gone: nobody to tell
                log.debug("could not send the pending mutations", exc_info=True)

    # -- helpers --------------------------------------------------------------------------
    def _att(self, attachment: Att) -> Attachment:
        return self._defs.check_attachment(attachment)

    def _target(self, attachment: Att, key: Key, write: bool) -> dict[str, Any]:
        att = self._att(attachment)
        where = f"{att.identifier} key"
        if not isinstance(key, Key) or not att.key_type.accepts_concept(key.concept):
            raise ValidationError(str(att.key_type), repr(key), where)
        if write and key.is_nil:
            raise ValidationError("a key with a valid instance id", "the nil key", where)
        return {"attachment": att.identifier, "key": key_to_json(key)}

    def _path(self, attachment: Att, path: PathLike) -> tuple[str, Type]:
        doc = self._att(attachment).document_type
        p = (Path.parse(path) if isinstance(path, str) else path).normalize(doc)
        return str(p), p.resolve(doc)

    def _result(self, method: str, att: Attachment) -> str:
        return f"{method}({att.identifier}) result"

    # -- reads ----------------------------------------------------------------------------
    def keys(self, attachment: Att) -> set[Key]:
        """Keys of the client's documents."""
        att = self._att(attachment)
        answer = self._request("state.keys", {"attachment": att.identifier})
        where = self._result("state.keys", att)
        if not isinstance(answer, list):
            raise ValidationError("an array of keys", describe_json(answer), where)
        return {
            key_from_json(k, att.key_type, self._defs, f"{where}[{i}]")
            for i, k in enumerate(answer)
        }

    def has(self, attachment: Att, key: Key) -> bool:
        """Whether the client has the document."""
        answer = self._request("state.has", self._target(attachment, key, False))
        if answer is not True and answer is not False:
            where = self._result("state.has", self._att(attachment))
            raise ValidationError("boolean", describe_json(answer), where)
        return answer

    def get(self, attachment: Att, key: Key) -> Any:
        """The client's document, or None."""
        att = self._att(attachment)
        answer = self._request("state.get", self._target(att, key, False))
        doc = OptionalType(att.document_type)
        return from_json(answer, doc, self._defs, self._result("state.get", att))

    def enumerate(self, attachment: Att) -> list[tuple[Key, Any]]:
        """(key, document) of the client's documents (keys, then one get each)."""
        att = self._att(attachment)
        found = [(k, self.get(att, k)) for k in sorted(self.keys(att))]
        return [(k, d) for k, d in found if d is not None]

    # -- mutations ------------------------------------------------------------------------
    def set(self, attachment: Att, key: Key, value: Any) -> None:
        """Replace (or create) the client's document."""
        target = self._target(attachment, key, True)
        doc = self._att(attachment).document_type
        self._notify(
            "set", {**target, "value": to_json(doc.check(value, target["attachment"]), doc)}
        )

    def delete(self, attachment: Att, key: Key) -> None:
        """Delete the client's document."""
        self._notify("delete", self._target(attachment, key, True))

    def diff(self, attachment: Att, key: Key, value: Any, recursive: bool = False) -> None:
        """Record on the client only what turns its document into `value`."""
        target = self._target(attachment, key, True)
        doc = self._att(attachment).document_type
        value_json = to_json(doc.check(value, target["attachment"]), doc)
        self._notify("diff", {**target, "value": value_json, "recursive": bool(recursive)})

    def update(self, attachment: Att, key: Key, path: PathLike, value: Any) -> None:
        """Assign at a path in the client's document."""
        target = self._target(attachment, key, True)
        text, t = self._path(attachment, path)
        self._notify("update", {**target, "path": text, "value": to_json(t.check(value, text), t)})

    def _container(self, op: str, attachment: Att, key: Key, path: PathLike, operand: Any) -> None:
        target = self._target(attachment, key, True)
        text, t = self._path(attachment, path)
        kind = SetType if op.endswith("set") else MapType
        if not isinstance(t, kind):
            raise ValidationError(
                f"a path to a {kind.kind}", f"{text} of type {t}", target["attachment"]
            )
        field, vt = ("entries", t) if op in ("union_in_map", "update_in_map") else ("elements", t)
        if op == "subtract_in_map":
            assert isinstance(t, MapType)
            field, vt = "keys", SetType(t.key)
        if not isinstance(operand, Mapping | set | frozenset):
            operand = list(operand) if isinstance(operand, Iterable) else operand
        self._notify(op, {**target, "path": text, field: to_json(vt.check(operand, text), vt)})

    def union_in_set(
        self, attachment: Att, key: Key, path: PathLike, elements: Iterable[Any]
    ) -> None:
        """Add elements to a set of the client's document."""
        self._container("union_in_set", attachment, key, path, elements)

    def subtract_in_set(
        self, attachment: Att, key: Key, path: PathLike, elements: Iterable[Any]
    ) -> None:
        """Remove elements from a set of the client's document."""
        self._container("subtract_in_set", attachment, key, path, elements)

    def union_in_map(
        self, attachment: Att, key: Key, path: PathLike, entries: Mapping[Any, Any]
    ) -> None:
        """Insert entries into a map of the client's document."""
        self._container("union_in_map", attachment, key, path, entries)

    def update_in_map(
        self, attachment: Att, key: Key, path: PathLike, entries: Mapping[Any, Any]
    ) -> None:
        """Overwrite existing entries of a map of the client's document."""
        self._container("update_in_map", attachment, key, path, entries)

    def subtract_in_map(
        self, attachment: Att, key: Key, path: PathLike, keys: Iterable[Any]
    ) -> None:
        """Remove entries from a map of the client's document."""
        self._container("subtract_in_map", attachment, key, path, keys)

    def _xarray(
        self, attachment: Att, key: Key, path: PathLike
    ) -> tuple[dict[str, Any], XArrayType]:
        target = self._target(attachment, key, True)
        text, t = self._path(attachment, path)
        if not isinstance(t, XArrayType):
            raise ValidationError(
                "a path to an xarray", f"{text} of type {t}", target["attachment"]
            )
        return {**target, "path": text}, t

    def insert_in_xarray(
        self,
        attachment: Att,
        key: Key,
        path: PathLike,
        before: uuid.UUID,
        new: uuid.UUID | None,
        value: Any,
    ) -> uuid.UUID:
        """Insert before a position (END appends); returns the new position."""
        fields, t = self._xarray(attachment, key, path)
        new = new or uuid.uuid4()
        if new == END:
            raise ValidationError("a real xarray position", "END", "new")
        before_json = "END" if before == END else str(uuid.UUID(str(before)))
        value_json = to_json(t.element.check(value, fields["path"]), t.element)
        self._notify(
            "insert_in_xarray",
            {**fields, "before": before_json, "position": str(new), "value": value_json},
        )
        return new

    def update_in_xarray(
        self,
        attachment: Att,
        key: Key,
        path: PathLike,
        position: uuid.UUID,
        value: Any,
    ) -> None:
        """Write at a position."""
        fields, t = self._xarray(attachment, key, path)
        value_json = to_json(t.element.check(value, fields["path"]), t.element)
        self._notify("update_in_xarray", {**fields, "position": str(position), "value": value_json})

    def remove_in_xarray(
        self, attachment: Att, key: Key, path: PathLike, position: uuid.UUID
    ) -> None:
        """Remove at a position."""
        fields, _ = self._xarray(attachment, key, path)
        self._notify("remove_in_xarray", {**fields, "position": str(position)})


# --------------------------------------------------------------------------------------------
# Subscriptions


class Subscription:
    """A session's subscription to a database's commits or to an event topic."""

    def __init__(
        self, session: WsSession, kind: str, name: str, size: int, metrics: Metrics
    ) -> None:
        self.session = session
        self.kind = kind
        self.name = name
        self.metrics = metrics
        self._send, self._receive = anyio.create_memory_object_stream[dict[str, Any]](size)
        self.missed = 0
        self.scope = anyio.CancelScope()

    def offer(self, params: dict[str, Any]) -> None:
        """Queue an event, or count it as missed when the queue is full."""
        try:
            self._send.send_nowait(params)
        except anyio.WouldBlock:
            self.missed += 1
            self.metrics.missed_events += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return

    def depth(self) -> int:
        """Events queued."""
        return self._receive.statistics().current_buffer_used

    async def deliver(self) -> None:
        """Send the queued events to the client, each missed count before the next event."""
        method = "db.commit" if self.kind == "db" else f"events.{self.name}"
        field = "database" if self.kind == "db" else "topic"
        with self.scope:
            async for params in self._receive:
                if self.missed:
                    missed, self.missed = self.missed, 0
                    await self.session.send_notification(
                        f"{self.kind}.missed", {field: self.name, "missed": missed}
                    )
                await self.session.send_notification(method, params)

    def close(self) -> None:
        """Stop delivering."""
        self.scope.cancel()
        self._send.close()


class Hub:
    """Subscriptions by (kind, name); events are offered to each without waiting."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._subs: dict[tuple[str, str], set[Subscription]] = {}

    def add(self, sub: Subscription) -> None:
        """Register a subscription."""
        self._subs.setdefault((sub.kind, sub.name), set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        """Unregister a subscription."""
        self._subs.get((sub.kind, sub.name), set()).discard(sub)

    def has(self, kind: str, name: str) -> bool:
        """True if anyone listens."""
        return bool(self._subs.get((kind, name)))

    def publish(self, kind: str, name: str, params: dict[str, Any]) -> None:
        """Offer an event to every subscriber."""
        for sub in list(self._subs.get((kind, name), ())):
            sub.offer(params)

    def depth(self) -> int:
        """Events queued over all subscriptions."""
        return sum(s.depth() for subs in self._subs.values() for s in subs)


def _headers(db: Any, ids: list[Any]) -> list[dict[str, Any]]:
    return [header_json(db.commit_header(c)) for c in ids]


async def watch_database(served: ServedDatabase, hub: Hub, poll_interval: float) -> None:
    """Announce the new commits of a database from any writer (run as a task).

    Polls the database's change counter (cheap), woken at once by the gateway's own writes.
    A failing turn (a storage hiccup) is logged and retried at the next one.
    """
    db = served.db
    cursor = [await anyio.to_thread.run_sync(db.commit_count), -1]  # next sequence, version
    while True:
        with anyio.move_on_after(poll_interval):
            await served.wake.wait()
        if served.wake.is_set():
            served.wake = anyio.Event()
        try:
            await _watch_turn(served, hub, cursor)
        except Exception:
            log.warning("watching %s failed; retrying", served.name, exc_info=True)


async def _watch_turn(served: ServedDatabase, hub: Hub, cursor: list[int]) -> None:
    db = served.db
    if not hub.has("db", served.name):
        cursor[0] = await anyio.to_thread.run_sync(db.commit_count)  # sequences: 0..count-1
        return
    version = await anyio.to_thread.run_sync(db.data_version)
    if version == cursor[1]:
        return
    new = await anyio.to_thread.run_sync(db.commits_since, cursor[0], 1000)
    cursor[1] = version if len(new) < 1000 else -1  # -1: more to read at the next turn
    if not new:
        return
    cursor[0] = new[-1][0] + 1
    headers = await anyio.to_thread.run_sync(_headers, db, [c for _, c in new])
    for h in headers:
        hub.publish("db", served.name, {"database": served.name, "header": h})


# --------------------------------------------------------------------------------------------
# Sessions


class _Waiter:
    __slots__ = ("error", "event", "result")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.result: Any = None
        self.error: Exception | None = None


class WsSession:
    """One WebSocket connection: concurrent calls, server requests, subscriptions."""

    def __init__(
        self, gateway: Gateway, websocket: WebSocket, principal: Principal | None, client: str
    ) -> None:
        self.gw = gateway
        self.ws = websocket
        self.principal = principal
        self.client = client
        self.pending: dict[str, _Waiter] = {}
        self._ids = itertools.count(1)
        self._subs: dict[tuple[str, str], Subscription] = {}
        self._in_flight = 0
        self._out, self._out_receive = anyio.create_memory_object_stream[str](OUTGOING_QUEUE)
        self._tg: anyio.abc.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def run(self) -> None:
        """Serve the connection until the client leaves."""
        await self.ws.accept()
        self._loop = asyncio.get_running_loop()
        gw = self.gw
        gw.sessions.add(self)
        gw.metrics.ws_sessions += 1
        gw.hub.publish(
            "events", "connections", {"event": "open", "websocket_clients": len(gw.sessions)}
        )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._writer)
                try:
                    await self._reader()
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._close()

    def _close(self) -> None:
        gw = self.gw
        self._closed = True
        for sub in self._subs.values():
            gw.hub.remove(sub)
            sub.close()
        self._subs.clear()
        for waiter in self.pending.values():
            waiter.error = ConnectionClosedError("the client disconnected")
            waiter.event.set()
        self._out.close()
        gw.sessions.discard(self)
        gw.metrics.ws_sessions -= 1
        gw.hub.publish(
            "events", "connections", {"event": "close", "websocket_clients": len(gw.sessions)}
        )

    async def _writer(self) -> None:
        try:
            async with self._out_receive:
                async for text in self._out_receive:
                    await self.ws.send_text(text)
        except Exception:  # the client went away
            log.debug("WebSocket send failed", exc_info=True)
            if self._tg is not None:
                self._tg.cancel_scope.cancel()

    async def _reader(self) -> None:
        limit = self.gw.config.max_request_bytes
        while True:
            received = await self.ws.receive()
            if received["type"] == "websocket.disconnect":
                return
            data: str | bytes = received.get("text") or received.get("bytes") or b""
            size = (
                len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
            )
            if size > limit:
                error = JsonRpcError(
                    INVALID_REQUEST,
                    "invalid request",
                    {"reason": "request too large", "max_bytes": limit},
                )
                self.gw._record("-", "(refused)", self.context(), error.code, 0.0)
                await self.send_text(encode_json(error_response(None, error)))
                continue
            parsed = parse_message(data, accept_replies=True)
            calls = []
            for item in parsed.items:
                if isinstance(item, Reply):
                    self._resolve(item)
                else:
                    calls.append(item)
            if calls:
                await self._dispatch(Message(tuple(calls), parsed.batch))

    async def _dispatch(self, message: Message) -> None:
        if self._in_flight >= self.gw.config.max_in_flight:
            busy = JsonRpcError(
                RATE_LIMITED,
                "rate limited",
                {"retry_after": 0.1, "reason": "too many calls in flight"},
            )
            replies = [
                error_response(c.id, busy)
                for c in message.items
                if not (isinstance(c, Call) and c.notification)
            ]
            text = encode_replies(replies, message.batch)
            if text:
                await self.send_text(text)
            return
        self._in_flight += 1
        only = message.items[0] if len(message.items) == 1 else None
        if isinstance(only, Call) and only.method == "auth":
            await self._handle(message)  # in order: the calls after it see the principal
        elif self._tg is not None:
            self._tg.start_soon(self._handle, message)

    async def _handle(self, message: Message) -> None:
        try:
            text = await self.gw.run_message(message, self.context())
        finally:
            self._in_flight -= 1
        if text:
            await self.send_text(text)

    def context(self) -> CallContext:
        """The context of the session's next call."""
        return CallContext("ws", self.client, self.principal, self)

    # -- sending --------------------------------------------------------------------------
    async def send_text(self, text: str) -> None:
        """Queue a message for the client (waits while the queue is full)."""
        try:
            await self._out.send(text)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.debug("dropped a message for a closed session")

    async def send_many(self, texts: list[str]) -> None:
        """Queue messages in order."""
        for text in texts:
            await self.send_text(text)

    async def send_notification(self, method: str, params: Any) -> None:
        """Send a notification."""
        await self.send_text(encode_json(notification(method, params)))

    async def server_request(self, method: str, params: Any) -> Any:
        """Send a request to the client and wait for its reply (raises its error)."""
        ident = f"s:{next(self._ids)}"
        waiter = _Waiter()
        self.pending[ident] = waiter
        try:
            await self.send_text(encode_json(request(method, params, ident)))
            if self._closed:
                raise ConnectionClosedError("the client disconnected")
            await waiter.event.wait()
        finally:
            self.pending.pop(ident, None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def flush_and_request(self, queued: list[str], method: str, params: Any) -> Any:
        """Send the buffered notifications, then a request; its result."""
        await self.send_many(queued)
        return await self.server_request(method, params)

    def _resolve(self, reply: Reply) -> None:
        waiter = self.pending.get(reply.id) if isinstance(reply.id, str) else None
        if waiter is None:
            log.debug("a reply to no pending request: %r", reply.id)
            return
        waiter.result, waiter.error = reply.result, reply.error
        waiter.event.set()

    # -- methods that need the session -------------------------------------------------------
    async def lend_call(
        self, backend: Backend, pool: str, proto: FunctionPrototype, args: list[Any]
    ) -> Any:
        """Run an attachment function on the state the client lends."""
        assert self._loop is not None
        lent = LentState(self, backend.definitions, self._loop)
        return await backend.call_lent(pool, proto, lent, args)

    def subscribe(self, kind: str, name: str) -> None:
        """Start (or keep) a subscription."""
        if (kind, name) in self._subs or self._tg is None:
            return
        sub = Subscription(self, kind, name, self.gw.config.queue_size, self.gw.metrics)
        self._subs[(kind, name)] = sub
        self.gw.hub.add(sub)
        self._tg.start_soon(sub.deliver)

    def unsubscribe(self, kind: str, name: str) -> None:
        """End a subscription (nothing if there is none)."""
        sub = self._subs.pop((kind, name), None)
        if sub is not None:
            self.gw.hub.remove(sub)
            sub.close()
