"""Blocking facades over the async clients, built on an anyio blocking portal.

One implementation (async); the blocking objects only forward: a coroutine method becomes a
plain method that runs through the portal, and the remote objects it returns (pools,
functions, ...) are wrapped the same way, so pools discovered at run time need no hand-written
synchronous code::

    with BlockingServiceRemote.connect("tcp://127.0.0.1:54320") as remote:
        assert remote.function_pool("Tools").check("add")(32, 10) == 42
        assert remote.pools.Tools.add(32, 10) == 42
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from commitdb.definitions import Definitions
from rpc.transports import loop_options

__all__ = ("Blocking", "BlockingServiceRemote", "blocking_context")

_WRAPPED_TYPES: tuple[type, ...] = ()


def _wrap_types() -> tuple[type, ...]:
    global _WRAPPED_TYPES
    if not _WRAPPED_TYPES:
        from rpc.service_remote import RemoteFunction, RemoteFunctionPool, ServiceRemote, _Pools

        _WRAPPED_TYPES = (RemoteFunction, RemoteFunctionPool, ServiceRemote, _Pools)
    return _WRAPPED_TYPES


class Blocking:
    """Forwards attribute access to an async object, running coroutines through a portal."""

    __slots__ = ("_obj", "_portal")

    def __init__(self, portal: BlockingPortal, obj: Any) -> None:
        object.__setattr__(self, "_portal", portal)
        object.__setattr__(self, "_obj", obj)

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, _wrap_types()):
            return Blocking(self._portal, value)
        if isinstance(value, list) and value and isinstance(value[0], _wrap_types()):
            return [Blocking(self._portal, v) for v in value]
        return value

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        if inspect.iscoroutinefunction(value):
            portal = self._portal

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(portal.call(lambda: value(*args, **kwargs)))

            call.__name__ = name
            call.__doc__ = value.__doc__
            return call
        if callable(value) and not isinstance(value, type) and not isinstance(value, _wrap_types()):

            def plain(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(value(*args, **kwargs))

            plain.__name__ = name
            plain.__doc__ = getattr(value, "__doc__", None)
            return plain
        return self._wrap(value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._obj
        result = self._portal.call(lambda: obj(*args, **kwargs))
        return self._wrap(result)

    def __getitem__(self, key: Any) -> Any:
        return self._wrap(self._obj[key])

    def __dir__(self) -> list[str]:
        return dir(self._obj)

    def __len__(self) -> int:
        return len(self._obj)

    def __iter__(self) -> Iterator[Any]:
        return (self._wrap(v) for v in self._obj)

    def __repr__(self) -> str:
        return f"<blocking {self._obj!r}>"


@contextmanager
def blocking_context(
    factory: Callable[[], AbstractAsyncContextManager[Any]],
) -> Iterator[Blocking]:
    """Run an async context manager in a portal thread and yield its blocking facade.

    The portal's event loop is uvloop when installed (see :func:`rpc.transports.loop_options`).
    """
    with start_blocking_portal(backend_options=loop_options()) as portal:
        with portal.wrap_async_context_manager(factory()) as obj:
            yield Blocking(portal, obj)


class BlockingServiceRemote:
    """The blocking ServiceRemote: same names, plain calls."""

    @staticmethod
    @contextmanager
    def connect(url: str, definitions: Definitions | None = None, **kwargs: Any) -> Iterator[Any]:
        """Connect to a service; yields the blocking remote, closed on exit."""
        from rpc.service_remote import ServiceRemote

        with blocking_context(lambda: ServiceRemote.connect(url, definitions, **kwargs)) as remote:
            yield remote
