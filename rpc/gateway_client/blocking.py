"""Blocking facades over the async gateway clients (same method names), for scripts.

Each facade runs its async client in an anyio blocking portal (an event loop in a thread)::

    with BlockingGatewayClient("http://127.0.0.1:8080") as gw:
        gw.call("pool.Tools.add", [1, 2])   # 3

    with BlockingGatewayWebSocket("ws://127.0.0.1:8080/ws") as ws:
        with ws.subscribe_commits("main") as commits:
            event = commits.next(timeout=5)

Several facades may share one portal (``portal=``); the one that started a portal stops it.
Notification handlers of the blocking WebSocket run in a worker thread (one at a time, in
arrival order), so they may call the facade themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

from rpc.gateway_client.http import Call, GatewayClient, Notification, Params
from rpc.gateway_client.resilience import USE_DEFAULT, CircuitBreaker, UseDefault
from rpc.gateway_client.ws import GatewayWebSocket, StateLender, Subscription

if TYPE_CHECKING:
    from commitdb.definitions import Definitions

__all__ = ("BlockingGatewayClient", "BlockingGatewayWebSocket", "BlockingSubscription")


class _PortalOwner:
    """Holds a blocking portal (started here, or shared) and the contexts entered in it."""

    def __init__(self, portal: BlockingPortal | None) -> None:
        self._stack = ExitStack()
        if portal is None:
            portal = self._stack.enter_context(start_blocking_portal("asyncio"))
        self.portal = portal

    def close(self) -> None:
        """Close the client and stop the portal if this object started it."""
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BlockingGatewayClient(_PortalOwner):
    """A blocking :class:`~rpc.gateway_client.http.GatewayClient`.

    Args:
        url: The gateway's base URL.
        portal: A blocking portal to share (default: one of its own).
        **kwargs: The keyword arguments of :class:`GatewayClient` (token, timeout, retries,
            backoff, breaker ...).
    """

    def __init__(self, url: str, *, portal: BlockingPortal | None = None, **kwargs: Any) -> None:
        super().__init__(portal)
        try:
            self.client: GatewayClient = self.portal.call(
                functools.partial(GatewayClient, url, **kwargs)
            )
            self._stack.callback(self.portal.call, self.client.aclose)
        except BaseException:
            self._stack.close()
            raise

    @property
    def breaker(self) -> CircuitBreaker:
        """The client's circuit breaker."""
        return self.client.breaker

    @property
    def retry_log(self) -> list[tuple[int, float, BaseException]]:
        """The client's retries: ``(retry number, delay, error)``."""
        return self.client.retry_log

    def call(
        self,
        method: str,
        params: Params = None,
        *,
        idempotent: bool | None = None,
        timeout: float | None | UseDefault = USE_DEFAULT,
    ) -> Any:
        """See :meth:`GatewayClient.call`."""
        return self.portal.call(
            functools.partial(self.client.call, idempotent=idempotent, timeout=timeout),
            method,
            params,
        )

    def notify(self, method: str, params: Params = None) -> None:
        """See :meth:`GatewayClient.notify`."""
        self.portal.call(self.client.notify, method, params)

    def batch(
        self,
        items: Sequence[Call | Notification | tuple[str, Params]],
        *,
        idempotent: bool | None = None,
        timeout: float | None | UseDefault = USE_DEFAULT,
    ) -> list[Any]:
        """See :meth:`GatewayClient.batch`."""
        result: list[Any] = self.portal.call(
            functools.partial(self.client.batch, idempotent=idempotent, timeout=timeout), items
        )
        return result

    def health(self) -> Any:
        """See :meth:`GatewayClient.health`."""
        return self.portal.call(self.client.health)

    def metrics(self) -> str:
        """See :meth:`GatewayClient.metrics`."""
        text: str = self.portal.call(self.client.metrics)
        return text


class BlockingSubscription:
    """A blocking :class:`~rpc.gateway_client.ws.Subscription` (a context manager and iterator)."""

    def __init__(self, portal: BlockingPortal, sub: Subscription) -> None:
        self._portal = portal
        self.subscription = sub

    def __enter__(self) -> Self:
        self._portal.call(self.subscription.start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Unsubscribe."""
        self._portal.call(self.subscription.aclose)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next event (see :meth:`Subscription.next`).

        Raises:
            StopIteration: The subscription ended.
            Timeout: Nothing arrived within ``timeout``.
        """
        try:
            return self._portal.call(self.subscription.next, timeout)
        except StopAsyncIteration:
            raise StopIteration from None


class BlockingGatewayWebSocket(_PortalOwner):
    """A blocking :class:`~rpc.gateway_client.ws.GatewayWebSocket` (connected on creation).

    Args:
        url: ``ws://host:port/ws`` or ``http://host:port``.
        token: A bearer token.
        auth: ``"header"`` or ``"message"``.
        portal: A blocking portal to share (default: one of its own).
        **kwargs: The other keyword arguments of :class:`GatewayWebSocket`.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        auth: Literal["header", "message"] = "header",
        portal: BlockingPortal | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(portal)
        try:
            self.ws: GatewayWebSocket = self.portal.call(
                functools.partial(GatewayWebSocket, url, token=token, auth=auth, **kwargs)
            )
            self._stack.enter_context(self.portal.wrap_async_context_manager(self.ws))
        except BaseException:
            self._stack.close()
            raise

    @property
    def closed(self) -> bool:
        """True once the connection is closed or lost."""
        return self.ws.closed

    def call(
        self,
        method: str,
        params: Params = None,
        *,
        timeout: float | None | UseDefault = USE_DEFAULT,
        lend: Any = None,
        definitions: Definitions | None = None,
    ) -> Any:
        """See :meth:`GatewayWebSocket.call` (a lent state is used from the portal's thread
        while this thread waits)."""
        return self.portal.call(
            functools.partial(self.ws.call, timeout=timeout, lend=lend, definitions=definitions),
            method,
            params,
        )

    def notify(self, method: str, params: Params = None) -> None:
        """See :meth:`GatewayWebSocket.notify`."""
        self.portal.call(self.ws.notify, method, params)

    def batch(
        self,
        items: Sequence[Call | Notification | tuple[str, Params]],
        *,
        timeout: float | None | UseDefault = USE_DEFAULT,
    ) -> list[Any]:
        """See :meth:`GatewayWebSocket.batch`."""
        result: list[Any] = self.portal.call(
            functools.partial(self.ws.batch, timeout=timeout), items
        )
        return result

    def on_notification(self, method: str, handler: Callable[[Any], Any]) -> Callable[[], None]:
        """See :meth:`GatewayWebSocket.on_notification`; ``handler`` runs in a worker thread.

        Returns:
            A function that removes the handler.
        """

        async def in_thread(params: Any) -> None:
            await anyio.to_thread.run_sync(handler, params)

        remove: Callable[[], None] = self.portal.call(self.ws.on_notification, method, in_thread)
        return lambda: self.portal.call(remove)

    def subscribe_commits(self, database: str, *, max_buffer: int = 10_000) -> BlockingSubscription:
        """See :meth:`GatewayWebSocket.subscribe_commits` (enter the result to subscribe)."""
        return BlockingSubscription(
            self.portal, self.ws.subscribe_commits(database, max_buffer=max_buffer)
        )

    def subscribe_events(self, topic: str, *, max_buffer: int = 10_000) -> BlockingSubscription:
        """See :meth:`GatewayWebSocket.subscribe_events`."""
        return BlockingSubscription(
            self.portal, self.ws.subscribe_events(topic, max_buffer=max_buffer)
        )

    def lend(
        self, state: Any, *, definitions: Definitions | None = None
    ) -> AbstractContextManager[StateLender]:
        """See :meth:`GatewayWebSocket.lend` (a blocking context manager)."""
        return self._lend(state, definitions)

    @contextmanager
    def _lend(self, state: Any, definitions: Definitions | None) -> Iterator[StateLender]:
        with self.portal.wrap_async_context_manager(
            self.ws.lend(state, definitions=definitions)
        ) as lender:
            yield lender
