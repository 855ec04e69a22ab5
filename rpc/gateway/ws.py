"""JSON-RPC 2.0 over WebSocket: one :class:`WsSession` per connection.

A session reads messages and runs each one's calls in a task of its own, so a slow call
never holds up a fast one; a message whose calls complete at once (inline pool functions) is
answered by the reader itself. Replies go out in order: directly when nothing is queued, else
through one writer. Ids are the session's own: two
sessions using the same ids never see each other's results.

The server also sends requests (ids ``"s:1"``, ``"s:2"``… never collide with the client's)
and reads their replies: the reads of a lent state (:mod:`rpc.gateway.lending`). The
session's subscriptions deliver notifications (:mod:`rpc.gateway.subscriptions`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from rpc.errors import ConnectionClosedError
from rpc.gateway.context import CallContext
from rpc.gateway.lending import Att as Att, LentState, PathLike as PathLike
from rpc.gateway.security import too_large
from rpc.gateway.subscriptions import Hub, Subscription, watch_database
from rpc.jsonrpc import (
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
    from commitdb.prototypes import FunctionPrototype
    from rpc.gateway.app import Gateway
    from rpc.gateway.backends import Backend
    from rpc.gateway.routes import RawWebSocket
    from rpc.gateway.security import Principal

__all__ = ("Hub", "LentState", "Subscription", "WsSession", "watch_database")

log = logging.getLogger("commitdb.gateway.ws")

OUTGOING_QUEUE = 64


class _Waiter:
    __slots__ = ("error", "event", "result")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.result: Any = None
        self.error: Exception | None = None


class WsSession:
    """One WebSocket connection: concurrent calls, server requests, subscriptions."""

    def __init__(
        self, gateway: Gateway, websocket: RawWebSocket, principal: Principal | None, client: str
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
        #: Messages queued or being sent; one is sent directly only when this is 0.
        self._backlog = 0
        self._sending = asyncio.Lock()  # one send at a time (no suspension when free)

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
                    async with self._sending:  # after a direct send in progress
                        await self.ws.send_text(text)
                    self._backlog -= 1
        except Exception:  # the client went away
            self._send_failed()

    def _send_failed(self) -> None:
        log.debug("WebSocket send failed", exc_info=True)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _reader(self) -> None:
        limit = self.gw.config.max_request_bytes
        receive = self.ws.receive
        while True:
            received = await receive()
            if received["type"] == "websocket.disconnect":
                return
            data: str | bytes = received.get("text") or received.get("bytes") or b""
            # a text's UTF-8 form is at most 4 bytes a character: encode only when it matters
            size = (
                len(data)
                if isinstance(data, bytes) or len(data) * 4 <= limit
                else len(data.encode("utf-8", "surrogatepass"))
            )
            if size > limit:
                await self.send_text(self.gw.refuse(too_large(limit), self.context()))
                continue
            parsed = parse_message(data, accept_replies=True)
            if not any(isinstance(item, Reply) for item in parsed.items):
                await self._dispatch(parsed)
                continue
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
        items = message.items
        only = items[0] if len(items) == 1 else None
        if isinstance(only, Call) and only.method == "auth":
            await self._handle(message)  # in order: the calls after it see the principal
        elif (
            self.gw.is_immediate(only)
            if only is not None
            else all(self.gw.is_immediate(item) for item in items)
        ):
            await self._handle(message)  # the answer is immediate: no task needed
        elif self._tg is not None:
            self._tg.start_soon(self._handle, message)

    async def _handle(self, message: Message) -> None:
        try:
            text = await self.gw.run_message(message, self.context())
        finally:
            self._in_flight -= 1
        if text:
            await self._reply(text)

    def context(self) -> CallContext:
        """The context of the session's next call."""
        return CallContext("ws", self.client, self.principal, self)

    # -- sending --------------------------------------------------------------------------
    async def _reply(self, text: str) -> None:
        """Send a reply: at once when nothing is queued or being sent (only from the reader
        or a call's task, outside any timeout, so the send is never cut short), else queued
        for the writer. Messages go out in order."""
        if self._backlog == 0 and not self._closed and self._tg is not None:
            self._backlog = 1
            try:
                async with self._sending:
                    await self.ws.send_text(text)
            except Exception:  # the client went away
                self._send_failed()
            finally:
                self._backlog -= 1
            return
        await self.send_text(text)

    async def send_text(self, text: str) -> None:
        """Queue a message for the client (waits while the queue is full)."""
        self._backlog += 1
        try:
            await self._out.send(text)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._backlog -= 1
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
