"""The blocking facade: the same names as the async ServiceRemote, plain calls.

These are plain synchronous tests: the service runs in a blocking portal's event loop thread
(stopped by the fixture), the client in another portal (BlockingServiceRemote.connect).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from commitdb import CommitDatabase, CommitStore
from commitdb.definitions import Definitions
from commitdb.errors import NotFoundError, ValidationError
from commitdb.mutable_state import CommitMutableState
from rpc.blocking import Blocking, BlockingServiceRemote, LoopThread, blocking_context, shared_loop
from rpc.errors import AuthenticationError, CallTimeoutError, RemoteError
from rpc.service_remote import RemoteFunctionPool, ServiceRemote
from rpc.transports import UVLOOP_ENV, loop_options
from tests.rpc.conftest import Serving
from tests.rpc.service_factory import make_service


@pytest.fixture
def url(serving: Serving) -> Iterator[str]:
    """A service in its own event loop thread, for the blocking clients."""
    service = make_service()
    service.authenticator = lambda credentials: credentials in (None, "token")
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serving(service)) as (_, urls),
    ):
        yield urls[0]


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and callable(value) and not isinstance(value, type)
    }


def test_the_same_calls_as_the_async_remote(url: str) -> None:
    with BlockingServiceRemote.connect(url) as remote:
        assert remote.function_pool("Tools").check("add")(32, 10) == 42
        assert remote.pools.Tools.add(32, 10) == 42
        assert remote.pools["Tools"].add(1, 1) == 2
        assert remote.ping() == "pong"
        assert {p.name for p in remote.function_pools()} == {"Tools", "Lab"}
        assert "ModelGraph" in {p.name for p in remote.attachment_function_pools()}
        assert {p.name for p in remote.pools} == {"Tools", "Lab"}
        assert remote.query_function_pool("Nope") is None
        assert not remote.is_closed()
    assert remote.is_closed()


def test_every_public_method_of_the_async_remote_exists_on_the_blocking_one(url: str) -> None:
    async_names = public_methods(ServiceRemote) - {"connect"}  # connect: the facade's own
    with BlockingServiceRemote.connect(url) as remote:
        assert isinstance(remote, Blocking)
        for name in sorted(async_names):
            method = getattr(remote, name)
            assert callable(method), name
            assert not inspect.iscoroutinefunction(method), name
        assert set(dir(remote)) >= async_names
        pool = remote.function_pool("Tools")
        for name in public_methods(RemoteFunctionPool):
            assert callable(getattr(pool, name)), name
        assert len(pool) == 4 and "add" in dir(pool)
        add = pool.check("add")
        assert isinstance(add, Blocking)
        assert add.name == "add" and add.prototype.name == "add"
        assert not inspect.iscoroutine(add(1, 2))
        assert all(isinstance(f, Blocking) for f in pool.functions())
        assert isinstance(remote.definitions(), Definitions)
        assert remote.ping() == "pong"


def test_errors_cross_the_portal_with_their_class(url: str) -> None:
    with BlockingServiceRemote.connect(url, timeout=30) as remote:
        with pytest.raises(ValidationError):
            remote.pools.Tools.add("x", 1)
        with pytest.raises(NotFoundError):
            remote.function_pool("Nope")
        with pytest.raises(RemoteError, match="ValueError: boom"):
            remote.pools.Lab.fail("boom")
        with pytest.raises(CallTimeoutError):
            remote.pools.Lab.sleep(1.0, timeout=0.05)
        assert remote.pools.Tools.add(2, 3) == 5


def test_credentials_through_the_facade(url: str) -> None:
    with BlockingServiceRemote.connect(url, credentials="token") as remote:
        assert remote.ping() == "pong"
    with pytest.raises(AuthenticationError), BlockingServiceRemote.connect(url, credentials="bad"):
        pass


def test_attachment_calls_and_a_commit_store_dispatch(url: str, tmp_path: Path) -> None:
    with BlockingServiceRemote.connect(url) as remote:
        defs = remote.definitions()
        with CommitDatabase.create(tmp_path / "b.cdb", defs) as db:
            store = CommitStore(db)
            graph = defs.check_attachment("Graph::Graph.topology").create_key()
            position = defs.check_type("Graph::Position")
            model = remote.attachment_pools.ModelGraph
            keys = []
            store.dispatch(
                "two vertices",
                lambda ms: keys.extend(
                    model.newVertex(ms, graph, v, position(x=v, y=0.0)) for v in (1, 2)
                ),
            )
            store.dispatch("an edge", lambda ms: model.newEdge(ms, graph, keys[0], keys[1]))
            state = store.state()
            topology = state.get("Graph::Graph.topology", graph)
            assert topology.vertexKeys == set(keys) and len(topology.edgeKeys) == 1
            ms = CommitMutableState(state)
            remote.attachment_pools.ModelSelection.selectAll(ms, graph)
            assert remote.attachment_pools.ModelSelection.selectedVertices(ms, graph) == set(keys)


def test_the_portal_runs_on_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvloop comes with the gateway extra (installed in the development environment)
    @asynccontextmanager
    async def loop_name() -> AsyncIterator[str]:
        yield type(asyncio.get_running_loop()).__module__

    assert loop_options() == {"use_uvloop": True}
    with blocking_context(loop_name) as name:
        assert name.startswith("uvloop")
    monkeypatch.setenv(UVLOOP_ENV, "0")
    assert loop_options() == {}
    with blocking_context(loop_name) as name:
        assert name.startswith("asyncio")


def test_one_loop_thread_runs_every_blocking_facade() -> None:
    loop = shared_loop()
    assert shared_loop() is loop and loop.thread.daemon and loop.is_alive()
    steps: list[str] = []

    @asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        steps.append(f"enter on {threading.current_thread().name}")
        try:
            yield "value"
        finally:
            steps.append("exit")

    async def thread_name() -> str:
        return threading.current_thread().name

    held, value = loop.enter(resource())
    assert value == "value" and steps == [f"enter on {loop.thread.name}"]
    assert loop.call(thread_name) == loop.thread.name
    held.__exit__(None, None, None)
    assert steps[-1] == "exit"
    with blocking_context(resource) as facade:  # the service remotes' facade, same thread
        assert isinstance(facade, Blocking) and facade.upper() == "VALUE"

    @asynccontextmanager
    async def refused() -> AsyncIterator[None]:
        raise AuthenticationError("no")
        yield

    with pytest.raises(AuthenticationError):
        loop.enter(refused())
    with pytest.raises(RuntimeError, match="exited already"):
        held.__exit__(None, None, None)


def test_a_loop_thread_stops_cleanly() -> None:
    own = LoopThread("test-loop", {})
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    assert type(own.loop).__module__.startswith("asyncio")
    own.loop.call_soon_threadsafe(own.loop.create_task, forever())
    own.stop(timeout=10)
    assert not own.is_alive() and cancelled.is_set()  # what still ran was cancelled
    with pytest.raises(RuntimeError):
        own.call(asyncio.sleep, 0)


def test_a_child_forked_while_the_shared_loop_lock_is_held_starts_its_own_loop() -> None:
    """Another thread inside shared_loop() at fork time (its lock held) must not leave the
    forked child waiting forever on the inherited lock."""
    import os
    import signal

    import rpc.blocking as blocking

    blocking._shared_lock.acquire()  # what a thread starting the shared loop holds
    try:
        pid = os.fork()
        if pid == 0:  # the child: a bounded try, then exit without running pytest's teardown
            code = 1
            try:
                signal.alarm(10)
                loop = blocking.shared_loop()
                code = 0 if loop.is_alive() else 2
                loop.stop(timeout=1.0)
            finally:
                os._exit(code)
    finally:
        blocking._shared_lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
