"""Live commit notifications: the async subscription, the handler that feeds it, and the
blocking :class:`Subscription` over it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from commitdb.errors import DatabaseClosedError
from rpc.connection import Connection
from rpc.db_remote.wire import CommitEvent, MissedEvents, event_from_notify, log
from rpc.errors import ConnectionClosedError, MethodNotFoundError
from rpc.packets import Notify, Request

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from rpc.db_remote.blocking import CommitDatabaseRemote
    from rpc.db_remote.commit import AsyncCommitDatabaseRemote

__all__ = ("AsyncSubscription", "Subscription")


class AsyncSubscription:
    """New commits of a served commit database, as they land (async iterator).

    Each item is a :class:`CommitEvent`, or a :class:`MissedEvents` when this subscriber fell
    behind. Obtained from :meth:`AsyncCommitDatabaseRemote.subscribe`.
    """

    def __init__(
        self,
        remote: AsyncCommitDatabaseRemote,
        tag: str,
        first_seq: int,
        window: int,
        receive: MemoryObjectReceiveStream[CommitEvent | MissedEvents],
    ) -> None:
        self._remote = remote
        self._target = tag
        self.first_seq = first_seq
        self._receive = receive
        self._ack_every = max(1, window // 4)
        self._consumed = 0

    async def receive(self) -> CommitEvent | MissedEvents:
        """The next event.

        Raises:
            EndOfStream: The subscription was closed.
            ConnectionClosedError: The connection was lost.
        """
        try:
            item = self._receive.receive_nowait()
        except anyio.WouldBlock:
            item = await self._wait()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise anyio.EndOfStream from None
        self._consumed += 1
        if self._consumed >= self._ack_every:
            n, self._consumed = self._consumed, 0
            conn = self._remote.connection
            if not conn.closed:
                conn.notify_nowait(self._target, "ack", [n])
        return item

    async def _wait(self) -> CommitEvent | MissedEvents:
        conn = self._remote.connection
        got: list[CommitEvent | MissedEvents] = []

        async with anyio.create_task_group() as tg:

            async def item() -> None:
                try:
                    got.append(await self._receive.receive())
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    pass
                tg.cancel_scope.cancel()

            async def lost() -> None:
                await conn.closed_event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(item)
            tg.start_soon(lost)
        if got:
            return got[0]
        if conn.closed and not self._remote._user_closed:
            raise ConnectionClosedError("connection lost")
        raise anyio.EndOfStream

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> CommitEvent | MissedEvents:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def next_event(self, timeout: float | None = None) -> CommitEvent | MissedEvents:
        """The next event, waiting `timeout` seconds at most (TimeoutError after)."""
        if timeout is None:
            return await self.receive()
        with anyio.move_on_after(timeout):
            return await self.receive()
        raise TimeoutError(f"no commit announced within {timeout} s")

    def pending(self) -> int:
        """Events received and not consumed yet."""
        return self._receive.statistics().current_buffer_used


class _AsyncHandler:
    """Client side of an async remote: receives subscription notifications."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.streams: dict[str, MemoryObjectSendStream[CommitEvent | MissedEvents]] = {}

    def handle_request(self, conn: Connection, req: Request) -> Any:
        raise MethodNotFoundError(f"this client serves no {req.target!r}")

    def handle_notify(self, conn: Connection, notify: Notify) -> None:
        stream = self.streams.get(notify.target)
        if stream is None:
            return
        item = event_from_notify(self.database, notify)
        if item is None:
            return
        try:
            stream.send_nowait(item)
        except anyio.WouldBlock:
            log.warning("subscription buffer full; an event was dropped")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.streams.pop(notify.target, None)


class Subscription:
    """New commits of a served commit database, as they land (blocking).

    Iterate (``for event in sub``), or call :meth:`get`; each item is a :class:`CommitEvent`,
    or a :class:`MissedEvents` when this subscriber fell behind. With a callback the events
    are delivered to it from a helper thread instead. :meth:`close` (or leaving the ``with``
    block) unsubscribes; an exception raised by the callback stops the delivery and is raised
    again by :meth:`close`. If the connection is lost, iteration raises
    :class:`~rpc.errors.ConnectionClosedError`.

    It forwards to an :class:`AsyncSubscription` through the remote's portal.
    """

    def __init__(
        self,
        db: CommitDatabaseRemote,
        cm: AbstractContextManager[AsyncSubscription],
        sub: AsyncSubscription,
        callback: Callable[[CommitEvent | MissedEvents], Any] | None,
    ) -> None:
        self._db = db
        self._cm = cm
        self._sub = sub
        self.first_seq = sub.first_seq
        self._lock = threading.Lock()
        self._ended = False  # unsubscribed (by close, or by the database's close)
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if callback is not None:
            self._thread = threading.Thread(
                target=self._run, args=(callback,), name=f"commitdb-{db.name}-{sub._target}"
            )
            self._thread.daemon = True
            self._thread.start()

    def get(self, timeout: float | None = None) -> CommitEvent | MissedEvents:
        """The next event.

        Args:
            timeout: Seconds to wait at most (None: no limit).

        Returns:
            The next event.

        Raises:
            TimeoutError: Nothing arrived in time.
            StopIteration: The subscription was closed.
            ConnectionClosedError: The connection was lost.
        """
        if self._ended:
            raise StopIteration
        try:
            return self._db._thread.call(self._sub.next_event, timeout)
        except anyio.EndOfStream:
            raise StopIteration from None
        except RuntimeError:  # the portal stopped: the database was closed
            if self._ended or self._db._closed:
                raise StopIteration from None
            raise

    def __iter__(self) -> Iterator[CommitEvent | MissedEvents]:
        return self

    def __next__(self) -> CommitEvent | MissedEvents:
        return self.get()

    def pending(self) -> int:
        """Events received and not consumed yet."""
        return 0 if self._ended else self._sub.pending()

    def _run(self, callback: Callable[[CommitEvent | MissedEvents], Any]) -> None:
        try:
            for event in self:
                callback(event)
        except ConnectionClosedError as exc:
            if not self._closed:
                self._error = exc
        except BaseException as exc:  # reported by close()
            log.warning("a subscription callback failed: %r", exc)
            self._error = exc

    def _end(self) -> None:
        """Unsubscribe (idempotent); a waiting :meth:`get` then stops."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self._db._subscriptions.discard(self)
        try:
            self._cm.__exit__(None, None, None)
        except (ConnectionClosedError, DatabaseClosedError, RuntimeError):
            pass  # the connection or the portal is gone: nothing left to unsubscribe

    def close(self) -> None:
        """Unsubscribe; wait for the callback thread; raise what the callback raised."""
        self._closed = True
        self._end()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
