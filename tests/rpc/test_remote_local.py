"""Remote-local attachment calls: the business logic runs on the server, every read and every
mutation lands in the client's own CommitMutableState (LMDB in tmp_path).

The central test runs one scripted Ge session twice — through the pools called locally and
through a live service — with the same deterministic uuids, and requires exactly the same
results, opcodes, documents and commit ids.
"""

from __future__ import annotations

import abc
import concurrent.futures
import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import tests.rpc.service_factory as factory
from commitdb.codec import encode, pack
from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions
from commitdb.errors import CommitError, DecodeError, UnknownAttachmentError, ValidationError
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.values import END, Key
from rpc.connection import Connection
from rpc.errors import CallCancelledError, CallTimeoutError, MethodNotFoundError, RemoteError
from rpc.examples.graph import ge_definitions, make_ge_pools
from rpc.packets import Notify, Request
from rpc.pools import AttachmentFunctionPool
from rpc.remote_local import BATCH_BYTES, BATCH_MUTATIONS, AttachmentMutatingRemote, Lender
from rpc.service import Service
from rpc.service_remote import ServiceRemote
from tests.rpc.conftest import Serving

pytestmark = pytest.mark.anyio

ATTACHMENTS = (
    "Graph::Graph.topology",
    "Graph::Graph.tags",
    "Graph::Graph.comments",
    "Graph::Graph.selection",
    "Graph::Graph.description",
    "Graph::Vertex.render2DAttributes",
    "Graph::Vertex.visualAttributes",
    "Graph::Edge.topology",
)


class DeterministicUUIDs:
    """A uuid4 replacement: version-4 uuids from a counter (reset per run)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> uuid.UUID:
        self.n += 1
        return uuid.UUID(int=(0x5EED << 96) | self.n, version=4)


@pytest.fixture
def uuids(monkeypatch: pytest.MonkeyPatch) -> Iterator[DeterministicUUIDs]:
    gen = DeterministicUUIDs()
    monkeypatch.setattr(uuid, "uuid4", gen)
    yield gen


@pytest.fixture(scope="module")
def service() -> Service:
    return factory.make_service()


@asynccontextmanager
async def remote_of(serving: Serving, service: Service) -> AsyncIterator[ServiceRemote]:
    async with serving(service) as (_, urls), ServiceRemote.connect(urls[0]) as remote:
        yield remote


# --------------------------------------------------------------------------------------------
# Runners: the same session locally and remotely


class Runner(abc.ABC):
    """Calls pool functions on a mutable state over a CommitDatabase and commits steps."""

    def __init__(self, db: CommitDatabase, defs: Definitions) -> None:
        self.db = db
        self.defs = defs
        self.ms = CommitMutableState(db.initial_state())
        self.commits: list[CommitId] = []
        self.snapshots: list[Any] = []

    async def call(self, pool: str, function: str, *args: Any) -> Any:
        return await self.call_on(self.ms, pool, function, *args)

    @abc.abstractmethod
    async def call_on(self, state: Any, pool: str, function: str, *args: Any) -> Any:
        """Call a pool function on a state."""

    def type(self, name: str, **fields: Any) -> Any:
        return self.defs.check_type(name)(**fields)

    def snapshot(self) -> Any:
        return {name: self.ms.enumerate(self.defs.check_attachment(name)) for name in ATTACHMENTS}

    def commit(self, label: str) -> None:
        ops = self.ms.mutations().all_ops()
        docs = self.snapshot()
        cid = self.db.commit_mutations(label, self.ms, author="test")
        self.commits.append(cid)
        self.snapshots.append((label, ops, docs))
        self.ms = CommitMutableState(self.db.state(cid))


class LocalRunner(Runner):
    def __init__(self, db: CommitDatabase, defs: Definitions) -> None:
        super().__init__(db, defs)
        tools, pools = make_ge_pools(defs)
        self.pools: dict[str, AttachmentFunctionPool] = {p.name: p for p in pools}
        self.pools["Edit"] = factory.make_edit_pool(defs)

    async def call_on(self, state: Any, pool: str, function: str, *args: Any) -> Any:
        return self.pools[pool].check(function)(state, *args)


class RemoteRunner(Runner):
    def __init__(self, db: CommitDatabase, remote: ServiceRemote) -> None:
        super().__init__(db, remote.definitions())
        self.remote = remote

    async def call_on(self, state: Any, pool: str, function: str, *args: Any) -> Any:
        return await self.remote.attachment_function_pool(pool).check(function)(state, *args)


def comment_positions(r: Runner, graph: Key) -> list[uuid.UUID]:
    comments = r.ms.get("Graph::Graph.comments", graph)
    return [] if comments is None else list(comments.live_positions())


async def session(r: Runner) -> list[Any]:
    """A scripted editing session covering every Ge pool; returns what the calls returned."""
    log: list[Any] = []
    topology = r.defs.check_attachment("Graph::Graph.topology")
    g, g2, g3, g4, g5 = (topology.create_key() for _ in range(5))
    rect = r.type("Graph::Rectangle", x=0.0, y=0.0, w=100.0, h=50.0)

    def pos(x: float, y: float) -> Any:
        return r.type("Graph::Position", x=x, y=y)

    # vertices and edges
    vs = [await r.call("ModelGraph", "newVertex", g, 10 * i, pos(i, -i)) for i in range(4)]
    log += vs
    log.append(await r.call("ModelGraph", "newEdge", g, vs[0], vs[1]))
    log.append(await r.call("ModelGraph", "newEdge", g, vs[1], vs[2]))
    log.append(await r.call("ModelGraph", "randomVertex", g, rect))
    log.append(await r.call("ModelGraph", "randomEdge", g))
    r.commit("vertices and edges")

    # tags and the description
    await r.call("ModelGraph", "setGraphTag", g, "owner", "ada")
    await r.call("ModelGraph", "setGraphTag", g, "kind", "demo")
    await r.call("ModelGraph", "updateGraphTag", g, "owner", "grace")
    await r.call("ModelGraph", "updateGraphTag", g, "missing", "ignored")
    await r.call("ModelGraph", "randomTag", g)
    await r.call("ModelGraph", "unsetGraphTags", g, {"kind", "nope"})
    await r.call("ModelGraph", "setGraphLabel", g, "first")
    await r.call("ModelGraph", "setGraphLabel", g, "second")
    r.commit("tags")

    # comments: xarray insert / update / remove
    for text in ("one", "two", "three"):
        await r.call("ModelGraph", "appendGraphComment", g, text)
    p = comment_positions(r, g)
    await r.call("ModelGraph", "insertGraphComment", g, p[1], "one and a half")
    await r.call("ModelGraph", "insertGraphComment", g, END, "last")
    await r.call("ModelGraph", "updateGraphComment", g, p[0], "ONE")
    await r.call("ModelGraph", "removeGraphComment", g, p[2])
    await r.call("ModelGraph", "randomComment", g)
    log.append(r.ms.get("Graph::Graph.comments", g).to_list())
    r.commit("comments")

    # vertex attributes
    await r.call("ModelGraph", "setVertexColor", vs[0], r.type("Graph::Color", red=1.0))
    await r.call("ModelGraph", "setVertexPosition", vs[1], pos(7.5, 8.5))
    await r.call("ModelGraph", "setVertexValue", vs[2], 99)
    await r.call("ModelGraph", "moveVertices", {vs[0], vs[3]}, pos(1.0, 2.0))
    fresh = r.defs.check_attachment("Graph::Vertex.visualAttributes").create_key()
    await r.call("ModelGraph", "setVertexValue", fresh, 5)  # creates the document
    r.commit("attributes")

    # selection
    await r.call("ModelSelection", "selectAll", g)
    log.append(await r.call("ModelSelection", "selectedVertices", g))
    await r.call("ModelSelection", "invertEdgesSelection", g)
    await r.call("ModelSelection", "invertSelection", g)
    await r.call("ModelSelection", "setSelectionToVertex", g, vs[1])
    await r.call("ModelSelection", "combineSelectionWithVertex", g, vs[2], True)
    await r.call("ModelSelection", "incrementVertexValue", g, 3)
    log.append(await r.call("ModelSelection", "selectedEdges", g))
    await r.call("ModelSelection", "selectAllEdges", g)
    await r.call("ModelSelection", "deselectAllEdges", g)
    await r.call("ModelSelection", "selectAllVertices", g)
    await r.call("ModelSelection", "invertVerticesSelection", g)
    await r.call("ModelSelection", "setSelection", g, {vs[0]}, set())
    log.append(await r.call("ModelSelection", "selectedVertices", g))
    r.commit("selection")

    # bigger graphs
    await r.call("ModelGraph", "randomGraph", g2, 12, 20, rect)
    await r.call("ModelGraph", "killer", g3, 6)
    await r.call("ModelSelection", "selectAll", g2)
    await r.call("ModelSelection", "deleteSelection", g2)
    await r.call("ModelGraph", "clearGraph", g3)
    await r.call("ModelGraph", "noArgs")
    r.commit("bigger graphs")

    # integrity
    await r.call("ModelGraph", "graphWithMissingVertex", g4)
    await r.call("ModelIntegrity", "restoreIntegrityByCreating", g4)
    await r.call("ModelGraph", "graphWithMissingVertexProperties", g5)
    await r.call("ModelSelection", "selectAllVertices", g5)
    await r.call("ModelIntegrity", "restoreVertexSelection", g5)
    await r.call("ModelIntegrity", "restoreIntegrityByDeleting", g5)
    await r.call("ModelSelection", "setSelectionToVertex", g, vs[1])
    await r.call("ModelGraph", "deleteSelectionBugged", g)
    await r.call("ModelIntegrity", "restoreIntegrityByRestoring", g)
    await r.call("ModelSelection", "deselectAll", g)
    r.commit("integrity")

    # a failing function: what it did before failing stays, for the client to keep
    try:
        await r.call("ModelGraph", "graphWithError", g4)
    except (ValueError, RemoteError) as exc:
        message = exc.message if isinstance(exc, RemoteError) else f"ValueError: {exc}"
        log.append(message)
    r.commit("kept after the error")
    return log


async def test_remote_calls_produce_exactly_the_local_documents_and_opcodes(
    tmp_path: Path, serving: Serving, service: Service, uuids: DeterministicUUIDs
) -> None:
    local_defs = ge_definitions()
    with CommitDatabase.create(tmp_path / "local.cdb", local_defs) as local_db:
        uuids.n = 0
        local = LocalRunner(local_db, local_defs)
        local_log = await session(local)
        async with remote_of(serving, service) as remote:
            with CommitDatabase.create(tmp_path / "remote.cdb", remote.definitions()) as db:
                uuids.n = 0
                remote_runner = RemoteRunner(db, remote)
                remote_log = await session(remote_runner)
                committed = [db.state(c) for c in remote_runner.commits]
                last_remote = {
                    name: committed[-1].enumerate(db.definitions().check_attachment(name))
                    for name in ATTACHMENTS
                }
        last_local = {
            name: local_db.state(local.commits[-1]).enumerate(local_defs.check_attachment(name))
            for name in ATTACHMENTS
        }
    assert remote_log == local_log
    assert any("graphWithError" in str(entry) for entry in remote_log)
    assert len(remote_runner.snapshots) == len(local.snapshots) == 8
    for (label, r_ops, r_docs), (_, l_ops, l_docs) in zip(
        remote_runner.snapshots, local.snapshots, strict=True
    ):
        assert r_ops == l_ops, label
        assert r_docs == l_docs, label
        assert r_ops, label
    assert remote_runner.commits == local.commits  # same programs on the same bases
    assert last_remote == last_local


# --------------------------------------------------------------------------------------------
# Reads, failures, read-only calls


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CommitDatabase]:
    with CommitDatabase.create(tmp_path / "client.cdb", ge_definitions()) as database:
        yield database


def graph_key(defs: Definitions) -> Key:
    return defs.check_attachment("Graph::Graph.topology").create_key()


async def test_reads_see_earlier_mutations_of_the_same_call(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    defs = db.definitions()
    g = graph_key(defs)
    local = CommitMutableState(db.initial_state())
    expected = factory.make_edit_pool(defs).check("read_your_writes")(local, g)
    assert expected == ["a", "a,b,c", "b,c", "1"]
    async with remote_of(serving, service) as remote:
        ms = CommitMutableState(db.initial_state())
        assert await remote.attachment_pools.Edit.read_your_writes(ms, g) == expected
        assert ms.mutations().all_ops() == local.mutations().all_ops()


async def test_a_wrong_typed_value_raises_inside_the_server_function(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    async with remote_of(serving, service) as remote:
        ms = CommitMutableState(db.initial_state())
        message = await remote.attachment_pools.Edit.wrong_type(ms, graph_key(db.definitions()))
        assert message.startswith("ValidationError: expected")
        assert len(ms.mutations()) == 0


async def test_a_mutation_the_client_refuses_raises_inside_the_server_function(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    g = graph_key(db.definitions())
    async with remote_of(serving, service) as remote:
        edit = remote.attachment_pools.Edit
        sealed = CommitMutableState(db.initial_state())
        await edit.tag(sealed, g, "first")
        db.commit_mutations("first", sealed)  # a sealed state refuses further mutations
        message = await edit.tag_then_read(sealed, g, "second")
        assert message.startswith("CommitError: this mutable state was committed")
        with pytest.raises(CommitError, match="this mutable state was committed"):
            await edit.tag(sealed, g, "third")  # the client raises it as the call's error
        fresh = CommitMutableState(db.state(db.last_commit_id()))
        assert await edit.tag_then_read(fresh, g, "fourth") == "ok"


async def test_a_server_exception_leaves_the_mutations_for_the_client_to_keep_or_drop(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    defs = db.definitions()
    g = graph_key(defs)
    local = CommitMutableState(db.initial_state())
    with pytest.raises(RuntimeError, match="failed after 10 mutations"):
        factory.make_edit_pool(defs).check("tag_and_fail")(local, g, 10)
    async with remote_of(serving, service) as remote:
        ms = CommitMutableState(db.initial_state())
        with pytest.raises(RemoteError) as info:
            await remote.attachment_pools.Edit.tag_and_fail(ms, g, 10)
        assert info.value.message == "RuntimeError: failed after 10 mutations"
        assert ms.mutations().all_ops() == local.mutations().all_ops()
        assert ms.get("Graph::Graph.tags", g) == {f"t{i}": str(i) for i in range(10)}
        kept = db.commit_mutations("keep what the failed call did", ms)  # keep ...
        assert db.state(kept).get("Graph::Graph.tags", g) == ms.get("Graph::Graph.tags", g)
        dropped = CommitMutableState(db.state(kept))  # ... or drop: a fresh state
        with pytest.raises(RemoteError):
            await remote.attachment_pools.Edit.tag_and_fail(dropped, g, 3)
    assert db.last_commit_id() == kept


async def test_a_read_only_function_works_on_a_plain_commit_state(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    defs = db.definitions()
    g = graph_key(defs)
    async with remote_of(serving, service) as remote:
        ms = CommitMutableState(db.initial_state())
        v = await remote.attachment_pools.ModelGraph.newVertex(
            ms, g, 1, defs.check_type("Graph::Position")(x=0.0, y=0.0)
        )
        await remote.attachment_pools.ModelSelection.selectAll(ms, g)
        cid = db.commit_mutations("select", ms)
        state = db.state(cid)  # a CommitState: no mutation API at all
        assert not hasattr(state, "set")
        assert await remote.attachment_pools.ModelSelection.selectedVertices(state, g) == {v}
        assert await remote.attachment_pools.Edit.count_tags(state, g) == 0
        with pytest.raises(TypeError, match="needs an attachment mutating state"):
            await remote.attachment_pools.ModelSelection.selectAll(state, g)
        with pytest.raises(ValidationError, match="a read-only call"):
            await remote.attachment_pools.Edit.sneaky_write(ms, g)


# --------------------------------------------------------------------------------------------
# Round trips, server state, timeouts, concurrency


class CountingHandler:
    """Wraps the client's callback handler and counts what the server sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[str] = []
        self.notifications = 0

    def handle_request(self, conn: Connection, req: Request) -> Any:
        self.requests.append(req.method)
        return self.inner.handle_request(conn, req)

    def handle_notify(self, conn: Connection, notify: Notify) -> Any:
        self.notifications += 1
        return self.inner.handle_notify(conn, notify)


async def test_one_get_and_fifty_sets_cost_two_round_trips_and_one_batch(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    g = graph_key(db.definitions())
    async with remote_of(serving, service) as remote:
        counting = CountingHandler(remote.connection.handler)
        remote.connection.handler = counting
        ms = CommitMutableState(db.initial_state())
        assert await remote.attachment_pools.Edit.bulk(ms, g, 50) == 0
        round_trips = 1 + len(counting.requests)  # the call, then each callback request
        assert counting.requests == ["get"]  # no flush: the batch arrives before the result
        assert round_trips == 2
        assert counting.notifications == 1  # the 50 sets, as one ``apply`` batch
        assert len(ms.keys("Graph::Vertex.visualAttributes")) == 50
        counting.requests.clear()
        counting.notifications = 0
        await remote.attachment_pools.Edit.bulk(ms, g, 0)  # no mutation: no batch
        assert counting.requests == ["get"]
        assert counting.notifications == 0


async def test_the_server_keeps_nothing_after_the_call(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    g = graph_key(db.definitions())
    async with serving(service) as (server, urls), ServiceRemote.connect(urls[0]) as remote:
        ms = CommitMutableState(db.initial_state())
        assert await remote.attachment_pools.Edit.remember(ms, g) is True
        (conn,) = server.connections
        assert conn.inflight_requests == 0
        assert remote._lenders == {}
        for _ in range(100):  # the worker thread drops its references once it is idle
            gc.collect()
            if factory.PROXIES[-1]() is None:
                break
            await anyio.sleep(0.01)
        assert factory.PROXIES[-1]() is None  # the proxy (and the lent state) are gone
        assert ms.get("Graph::Graph.tags", g) == {"seen": "yes"}


async def test_a_timeout_raises_and_leaves_the_mutable_state_usable(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    g = graph_key(db.definitions())
    factory.SLOW_DONE.clear()
    async with serving(service) as (server, urls), ServiceRemote.connect(urls[0]) as remote:
        edit = remote.attachment_pools.Edit
        ms = CommitMutableState(db.initial_state())
        with pytest.raises(CallTimeoutError):
            await edit.slow_tag(ms, g, 0.5, timeout=0.1)
        assert ms.get("Graph::Graph.tags", g) == {"before": "sleep"}
        assert remote._lenders == {}
        (conn,) = server.connections
        for _ in range(1000):  # the CANCEL packet reaches the server
            if conn.inflight_requests == 0:
                break
            await anyio.sleep(0.005)
        assert conn.inflight_requests == 0  # cancelled on the server
        assert await anyio.to_thread.run_sync(factory.SLOW_DONE.wait, 30)
        # the cancelled function's later mutation never reached the state
        assert ms.get("Graph::Graph.tags", g) == {"before": "sleep"}
        await edit.tag_then_read(ms, g, "next")  # the state is still usable
        assert ms.get("Graph::Graph.tags", g) == {"next": "v"}
        cid = db.commit_mutations("after the timeout", ms)
        assert db.state(cid).get("Graph::Graph.tags", g) == {"next": "v"}


async def test_concurrent_calls_each_mutate_their_own_state(
    serving: Serving, service: Service, db: CommitDatabase
) -> None:
    defs = db.definitions()
    position = defs.check_type("Graph::Position")
    states = [CommitMutableState(db.initial_state()) for _ in range(12)]
    graphs = [graph_key(defs) for _ in states]
    async with remote_of(serving, service) as remote:
        new_vertex = remote.attachment_pools.ModelGraph.newVertex
        keys: dict[int, Key] = {}

        async def one(i: int) -> None:
            keys[i] = await new_vertex(states[i], graphs[i], i, position(x=i, y=0.0))

        async with anyio.create_task_group() as tg:
            for i in range(len(states)):
                tg.start_soon(one, i)
    for i, ms in enumerate(states):
        assert ms.get("Graph::Graph.topology", graphs[i]).vertexKeys == {keys[i]}
        assert ms.get("Graph::Vertex.visualAttributes", keys[i]).value == i
        assert ms.keys("Graph::Graph.topology") == {graphs[i]}


# --------------------------------------------------------------------------------------------
# Batches: the mutations between two reads travel as one ``apply`` notification


def make_numbered_service() -> Service:
    """``Numbered.write``: `count` tag documents {"n": i} on fresh graph keys, in order; a
    read of every key right after mutation `readAt` (its error, if any, is returned)."""
    defs = ge_definitions()
    tags = defs.check_attachment("Graph::Graph.tags")
    numbered = AttachmentFunctionPool("Numbered")

    @numbered.function
    def write(state: Any, count: int, readAt: int) -> str:
        """Write `count` numbered tag documents, reading once after mutation `readAt`."""
        seen = "ok"
        for i in range(count):
            state.set(tags, tags.create_key(), {"n": str(i)})
            if i == readAt:
                try:
                    state.keys(tags)
                except Exception as exc:
                    seen = f"{type(exc).__name__}: {exc}"
        return seen

    @numbered.function
    def big(state: Any, count: int, size: int) -> None:
        """Write `count` tag documents {"n": i followed by `size` x}."""
        for i in range(count):
            state.set(tags, tags.create_key(), {"n": f"{i}:{'x' * size}"})

    tools, ge_pools = make_ge_pools(defs)
    return Service(defs, [tools], [*ge_pools, numbered], name="numbered")


class Refusing:
    """A lent state (not a CommitMutableState) that refuses the tag document {"n": bad}."""

    def __init__(self, inner: CommitMutableState, bad: str) -> None:
        self.inner = inner
        self.bad = bad

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def set(self, attachment: Any, key: Key, value: Any) -> None:
        if value == {"n": self.bad}:
            raise ValidationError("a document the client accepts", repr(value), "Refusing")
        self.inner.set(attachment, key, value)


def numbers(state: Any) -> list[str]:
    tags = state.definitions().check_attachment("Graph::Graph.tags")
    return sorted(doc["n"] for _, doc in state.enumerate(tags))


async def test_a_refused_mutation_in_the_final_batch_fails_the_call_and_stops_the_batch(
    serving: Serving, db: CommitDatabase
) -> None:
    async with remote_of(serving, make_numbered_service()) as remote:
        counting = CountingHandler(remote.connection.handler)
        remote.connection.handler = counting
        state = Refusing(CommitMutableState(db.initial_state()), bad="2")
        with pytest.raises(ValidationError, match="a document the client accepts"):
            await remote.attachment_pools.Numbered.write(state, 5, -1)
        assert counting.notifications == 1 and counting.requests == []  # one batch of 5
        # applied in order up to the refused one; the rest of the batch is not applied
        assert numbers(state.inner) == ["0", "1"]
        assert remote._lenders == {}
        fresh = Refusing(CommitMutableState(db.initial_state()), bad="none")
        assert await remote.attachment_pools.Numbered.write(fresh, 5, -1) == "ok"
        assert numbers(fresh.inner) == ["0", "1", "2", "3", "4"]


async def test_a_refused_mutation_before_a_read_raises_at_the_read_then_mutations_resume(
    serving: Serving, db: CommitDatabase
) -> None:
    async with remote_of(serving, make_numbered_service()) as remote:
        counting = CountingHandler(remote.connection.handler)
        remote.connection.handler = counting
        state = Refusing(CommitMutableState(db.initial_state()), bad="1")
        seen = await remote.attachment_pools.Numbered.write(state, 6, 3)
        assert seen.startswith("ValidationError: expected a document the client accepts")
        assert counting.requests == ["keys"]
        assert counting.notifications == 2  # 0..3 before the read, 4..5 before the result
        # 0 applied; 1 refused; 2 and 3 (same batch, before the read reported it) skipped;
        # 4 and 5 came after the function saw the error
        assert numbers(state.inner) == ["0", "4", "5"]


async def test_batches_apply_in_order_on_the_engine_fast_path(
    serving: Serving, db: CommitDatabase
) -> None:
    async with remote_of(serving, make_numbered_service()) as remote:
        ms = CommitMutableState(db.initial_state())
        assert await remote.attachment_pools.Numbered.write(ms, 30, 9) == "ok"
    # the program lists documents in first-touch order: the order the client applied them,
    # across the two batches (before the read, before the result)
    recorded = [[op.value for op in ops] for _, ops in ms.mutations().items()]
    assert recorded == [[{"n": str(i)}] for i in range(30)]
    assert db.state(db.commit_mutations("numbered", ms)).keys("Graph::Graph.tags") == ms.keys(
        "Graph::Graph.tags"
    )


# --------------------------------------------------------------------------------------------
# The lender's batches, without a network


def wire_set(att: Any, key: Key, value: Any) -> list[Any]:
    """The ``[method, args]`` of a set, as the server sends it."""
    return [
        "set",
        [
            att.runtime_id.bytes,
            key.concept.runtime_id.bytes + key.id.bytes,
            encode(value, att.document_type),
        ],
    ]


def test_a_batch_applies_in_order_and_stops_at_the_first_refused_mutation(
    db: CommitDatabase,
) -> None:
    defs = db.definitions()
    tags = defs.check_attachment("Graph::Graph.tags")
    a, b, c = (tags.create_key() for _ in range(3))
    ms = CommitMutableState(db.initial_state())
    lender = Lender(ms, defs, mutable=True)
    bad = wire_set(tags, b, {})
    bad[1][2] = pack(["not", "a", "map", 7])  # decodes to no map<string, string>
    lender.notify(
        "apply",
        [
            wire_set(tags, a, {"v": "1"}),
            wire_set(tags, a, {"v": "2"}),  # same document: the later set wins
            bad,
            wire_set(tags, c, {"v": "3"}),  # after the refused one: not applied
        ],
    )
    assert ms.get(tags, a) == {"v": "2"} and not ms.has(tags, b) and not ms.has(tags, c)
    assert lender.applied == 2
    lender.notify("apply", [wire_set(tags, c, {"v": "4"})])  # the error is not reported yet
    assert not ms.has(tags, c)
    with pytest.raises(DecodeError):  # the next read reports the first refusal
        lender.request("has", [tags.runtime_id.bytes, bad[1][1]])
    lender.notify("apply", [wire_set(tags, c, {"v": "5"})])  # reported: applied again
    assert ms.get(tags, c) == {"v": "5"}
    assert lender.request("flush", []) is None


@pytest.mark.parametrize(
    ("batch", "error"),
    [
        ("not a list", ValidationError),
        ([["set"]], ValidationError),
        ([["set", [b"x"]]], ValidationError),
        ([["drop_everything", []]], MethodNotFoundError),
        ([["set", [b"\0" * 16, b"\0" * 32, {}]]], UnknownAttachmentError),
    ],
)
def test_a_malformed_batch_is_reported_as_a_typed_error(
    db: CommitDatabase, batch: Any, error: type[Exception]
) -> None:
    ms = CommitMutableState(db.initial_state())
    lender = Lender(ms, db.definitions(), mutable=True)
    lender.notify("apply", batch)
    assert isinstance(lender.error, error)
    with pytest.raises(error):
        lender.request("flush", [])
    assert len(ms.mutations()) == 0


def test_a_read_only_lender_refuses_a_batch(db: CommitDatabase) -> None:
    defs = db.definitions()
    tags = defs.check_attachment("Graph::Graph.tags")
    ms = CommitMutableState(db.initial_state())
    lender = Lender(ms, defs, mutable=False)
    lender.notify("apply", [wire_set(tags, tags.create_key(), {"v": "1"})])
    with pytest.raises(ValidationError, match="a read-only call"):
        lender.request("flush", [])
    assert len(ms.mutations()) == 0


async def test_long_runs_of_mutations_are_split_in_bounded_batches(
    serving: Serving, db: CommitDatabase
) -> None:
    async with remote_of(serving, make_numbered_service()) as remote:
        counting = CountingHandler(remote.connection.handler)
        remote.connection.handler = counting
        ms = CommitMutableState(db.initial_state())
        count = 2 * BATCH_MUTATIONS + 7
        assert await remote.attachment_pools.Numbered.write(ms, count, -1) == "ok"
        assert counting.notifications == 3  # two full batches, then the rest
        recorded = [[op.value for op in ops] for _, ops in ms.mutations().items()]
        assert recorded == [[{"n": str(i)}] for i in range(count)]
        # by size: three documents of half a batch's bytes cannot share one notification
        counting.notifications = 0
        big = CommitMutableState(db.initial_state())
        await remote.attachment_pools.Numbered.big(big, 3, BATCH_BYTES // 2)
        assert counting.notifications == 3
        values = [ops[0].value["n"] for _, ops in big.mutations().items()]
        assert [v.split(":")[0] for v in values] == ["0", "1", "2"]
        assert all(len(v) == BATCH_BYTES // 2 + 2 for v in values)


def test_a_cancelled_call_future_cancels_the_proxy_and_its_buffered_mutations_stay_unsent() -> None:
    defs = ge_definitions()
    visual = defs.check_attachment("Graph::Vertex.visualAttributes")
    proxy = AttachmentMutatingRemote(None, 1, defs)  # type: ignore[arg-type]  # never sends
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()
    done.add_done_callback(proxy.cancel_if_cancelled)
    done.set_result(None)
    assert not proxy.cancelled  # a settled call leaves the proxy alone
    document = visual.document_type(
        value=1, color=visual.document_type.field("color").type.default()
    )
    proxy.set(visual, visual.create_key(), document)
    proxy.set(visual, visual.create_key(), document)  # the cached path
    frames = proxy.take_frames()
    assert frames and proxy.take_frames() == b""  # taken once
    call: concurrent.futures.Future[Any] = concurrent.futures.Future()
    call.add_done_callback(proxy.cancel_if_cancelled)
    assert call.cancel()
    assert proxy.cancelled
    with pytest.raises(CallCancelledError):
        proxy.set(visual, visual.create_key(), document)
