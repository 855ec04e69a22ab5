"""Blocking facades over the async clients: one event loop thread and blocking calls into it.

One implementation (async); the blocking objects only forward. :class:`LoopThread` is the
mechanism every blocking facade of the project uses (service remotes here, the remote
databases in :mod:`rpc.db_remote`): an event loop in a daemon thread (uvloop when installed,
see :func:`rpc.transports.loop_options`), a cheap per-call hop (:meth:`LoopThread.call`),
async context managers entered on it (:meth:`LoopThread.enter`) and a clean stop.
:func:`shared_loop` is the process-wide one the facades share: connecting a blocking remote
starts no thread and no event loop.

A coroutine method becomes a plain method that runs on the loop, and the remote objects it
returns (pools, functions, ...) are wrapped the same way, so pools discovered at run time
need no hand-written synchronous code::

    with BlockingServiceRemote.connect("tcp://127.0.0.1:54320") as remote:
        assert remote.function_pool("Tools").check("add")(32, 10) == 42
        assert remote.pools.Tools.add(32, 10) == 42
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, TypeVar

import sniffio
from anyio.from_thread import BlockingPortal

from commitdb.definitions import Definitions
from rpc.transports import loop_options

__all__ = ("Blocking", "BlockingServiceRemote", "LoopThread", "blocking_context", "shared_loop")

T = TypeVar("T")

_ALIVE_CHECK = 1.0  # seconds between two checks that the loop of a waited-for call still runs


class LoopThread:
    """An event loop in a daemon thread, and blocking calls into it from other threads.

    A daemon thread (unlike ``anyio.from_thread.start_blocking_portal``'s): a facade the
    program forgot to close does not keep the interpreter from exiting. An anyio
    :class:`~anyio.from_thread.BlockingPortal` runs on the loop (:attr:`portal`) for what
    needs a task of its own (:meth:`enter`); :meth:`call` is the per-call hop.

    Args:
        name: The thread's name.
        backend_options: ``{"use_uvloop": True}`` runs the loop on uvloop (see
            :func:`rpc.transports.loop_options`); ``{}`` on the standard asyncio loop.
    """

    def __init__(self, name: str, backend_options: dict[str, Any] | None = None) -> None:
        started: Future[tuple[BlockingPortal, asyncio.AbstractEventLoop]] = Future()
        uvloop = bool((backend_options or {}).get("use_uvloop"))

        async def main() -> None:
            async with BlockingPortal() as portal:
                started.set_result((portal, asyncio.get_running_loop()))
                await portal.sleep_until_stopped()

        def run() -> None:
            # protocol callbacks run outside any task, where sniffio cannot see the loop:
            # this thread only ever runs asyncio
            sniffio.thread_local.name = "asyncio"
            loop: asyncio.AbstractEventLoop
            try:
                if uvloop:
                    import uvloop as uv

                    loop = uv.new_event_loop()
                else:
                    loop = asyncio.new_event_loop()
            except BaseException as exc:  # reported to the thread that started the loop
                started.set_exception(exc)
                return
            try:
                loop.run_until_complete(main())
                _cancel_remaining(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
            finally:
                loop.close()

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        self.portal, self.loop = started.result()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` (or ``fn(*args)`` if it returns no awaitable) on the loop.

        The same as ``BlockingPortal.call`` without its task-group bookkeeping (a third of
        its cost): the coroutine runs as a task of the loop and its result or exception
        comes back. The facades' calls are short and end with their connection, so nothing
        needs to track them.

        Raises:
            RuntimeError: Called from the loop's own thread (it would wait for itself), or
                the loop stopped.
        """
        if threading.current_thread() is self.thread:
            raise RuntimeError("a blocking call from its own event loop thread")

        async def run() -> T:
            result: Any = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result  # type: ignore[no-any-return]

        return self._wait(self._submit(run()))

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise

    def _wait(self, future: Future[T]) -> T:
        while True:
            try:
                return future.result(_ALIVE_CHECK)
            except TimeoutError:
                if future.done():  # raised by the coroutine itself
                    raise
                if not self.thread.is_alive():  # stopped before running it (a close race)
                    raise RuntimeError("the event loop stopped") from None

    def enter(self, cm: AbstractAsyncContextManager[T]) -> tuple[AbstractContextManager[T], T]:
        """Enter an async context manager in a task of the loop, exited by the same task.

        Two hops (cheaper than ``BlockingPortal.wrap_async_context_manager``): the task
        enters `cm` and waits for the exit request; the returned context manager's
        ``__exit__`` (from any thread) sends it and waits for the exit.

        Returns:
            The blocking context manager to exit (``__exit__``) and what `cm` yielded.
        """
        entered: Future[tuple[T, asyncio.Future[_ExcInfo]]] = Future()

        async def hold() -> bool | None:
            try:
                value = await cm.__aenter__()
            except BaseException as exc:
                entered.set_exception(exc)
                return None
            request: asyncio.Future[_ExcInfo] = asyncio.get_running_loop().create_future()
            entered.set_result((value, request))
            try:
                exc_info = await request
            except BaseException:  # cancelled (the loop stops): exit with the error
                if not await cm.__aexit__(*sys.exc_info()):
                    raise
                return None
            return await cm.__aexit__(*exc_info)

        done = self._submit(hold())
        try:
            value, request = self._wait(entered)
        except BaseException:
            if not entered.done():  # interrupted while waiting (KeyboardInterrupt)
                done.cancel()
            raise
        return _Held(self, request, done), value

    def is_alive(self) -> bool:
        """True while the loop runs."""
        return self.thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop (cancelling what still runs on it) and join the thread.

        Args:
            timeout: Seconds to wait for the thread at most (None: no limit).
        """
        if self.thread is threading.current_thread():
            return
        with contextlib.suppress(RuntimeError):  # stopped already
            self.portal.call(self.portal.stop, True)
        self.thread.join(timeout)


_ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


class _Held(AbstractContextManager[Any]):
    """An async context manager entered by :meth:`LoopThread.enter`; ``__exit__`` exits it."""

    def __init__(
        self, loop: LoopThread, request: asyncio.Future[_ExcInfo], done: Future[bool | None]
    ) -> None:
        self._loop = loop
        self._request = request
        self._done = done
        self._lock = threading.Lock()
        self._exiting = False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        with self._lock:
            if self._exiting:
                raise RuntimeError("exited already")
            self._exiting = True
        self._loop.loop.call_soon_threadsafe(_resolve, self._request, (exc_type, exc, tb))
        return self._loop._wait(self._done)


def _resolve(request: asyncio.Future[_ExcInfo], exc_info: _ExcInfo) -> None:
    if not request.done():
        request.set_result(exc_info)


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks left on a stopping loop and let them end (as ``asyncio.run`` does)."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


_shared: dict[bool, LoopThread] = {}
_shared_pid = os.getpid()
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """The process-wide :class:`LoopThread` of the blocking facades (started on first use).

    One per loop kind (uvloop or not, as :func:`rpc.transports.loop_options` says when
    called); restarted in a forked child, whose copy of the thread does not run.
    """
    global _shared_pid
    uv = bool(loop_options().get("use_uvloop"))
    loop = _shared.get(uv)
    if loop is not None and _shared_pid == os.getpid() and loop.is_alive():
        return loop
    with _shared_lock:
        if _shared_pid != os.getpid():
            _shared.clear()
            _shared_pid = os.getpid()
        loop = _shared.get(uv)
        if loop is None or not loop.is_alive():
            loop = _shared[uv] = LoopThread(
                "commitdb-loop" + ("" if uv else "-asyncio"), {"use_uvloop": True} if uv else {}
            )
        return loop


def _reset_shared_after_fork() -> None:
    # The child has no loop thread, and a lock held by another thread of the parent at the
    # fork would stay locked forever: start afresh.
    global _shared_lock, _shared_pid
    _shared_lock = threading.Lock()
    _shared.clear()
    _shared_pid = os.getpid()


os.register_at_fork(after_in_child=_reset_shared_after_fork)


@atexit.register
def _stop_shared_loops() -> None:
    # an orderly stop before the interpreter tears down (bounded: a stuck task is left behind)
    if _shared_pid != os.getpid():
        return
    for loop in list(_shared.values()):
        loop.stop(timeout=1.0)
    _shared.clear()


_WRAPPED_TYPES: tuple[type, ...] = ()


def _wrap_types() -> tuple[type, ...]:
    global _WRAPPED_TYPES
    if not _WRAPPED_TYPES:
        from rpc.service_remote import RemoteFunction, RemoteFunctionPool, ServiceRemote, _Pools

        _WRAPPED_TYPES = (RemoteFunction, RemoteFunctionPool, ServiceRemote, _Pools)
    return _WRAPPED_TYPES


class Blocking:
    """Forwards attribute access to an async object, running coroutines on an event loop
    thread (`portal`: a :class:`LoopThread` or an anyio blocking portal)."""

    __slots__ = ("_obj", "_portal")

    def __init__(self, portal: LoopThread | BlockingPortal, obj: Any) -> None:
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
    """Run an async context manager on the shared loop thread and yield its blocking facade.

    The loop is uvloop when installed (see :func:`rpc.transports.loop_options` and
    :func:`shared_loop`).
    """
    loop = shared_loop()
    held, obj = loop.enter(factory())
    try:
        yield Blocking(loop, obj)
    except BaseException:
        if not held.__exit__(*sys.exc_info()):
            raise
    else:
        held.__exit__(None, None, None)


class BlockingServiceRemote:
    """The blocking ServiceRemote: same names, plain calls."""

    @staticmethod
    @contextmanager
    def connect(url: str, definitions: Definitions | None = None, **kwargs: Any) -> Iterator[Any]:
        """Connect to a service; yields the blocking remote, closed on exit."""
        from rpc.service_remote import ServiceRemote

        with blocking_context(lambda: ServiceRemote.connect(url, definitions, **kwargs)) as remote:
            yield remote
