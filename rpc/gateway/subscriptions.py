"""Subscriptions: database commits and service events, pushed to WebSocket clients.

The :class:`Hub` holds the subscriptions by (kind, name) — ``("db", <database>)`` from
``db.subscribe``, ``("events", <topic>)`` from ``events.subscribe`` — and offers each event
to every one without waiting. A :class:`Subscription` has a bounded queue: when its client
does not keep up, events are dropped and counted, and the client is then told how many it
missed (``db.missed`` / ``events.missed``) before the next one. :func:`watch_database`
announces a database's new commits, from any writer, to the hub.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from rpc.gateway.databases import ServedDatabase, header_json
from rpc.gateway.metrics import Metrics

if TYPE_CHECKING:
    from rpc.gateway.ws import WsSession

__all__ = ("TOPICS", "Hub", "Subscription", "watch_database")

log = logging.getLogger("commitdb.gateway.ws")

#: Service event topics (``events.subscribe``): finished pool calls, WebSocket sessions.
TOPICS = ("calls", "connections")


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
