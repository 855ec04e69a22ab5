"""A test service: the Ge pools plus small pools for edge cases.

Served in process by the tests, and by ``python -m rpc service serve
tests.rpc.service_factory:make_service --listen URL`` in a child process (fault tests).

Pools:

* ``Lab`` (function pool): arithmetic, failures of every kind, and slow functions that run
  in a worker thread (``sleep``; ``sleep_marked`` first writes a marker file so a test knows
  the server is inside the call).
* ``Edit`` (attachment function pool over the Ge model): mutation edge cases, a bulk function
  doing 1 get and N sets (the round-trip test and the benchmark), and a slow function.
"""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path
from typing import Annotated, Any

from commitdb.definitions import Definitions
from commitdb.errors import NotFoundError, UnknownCommitError
from commitdb.values import Key
from rpc.examples.graph import ge_definitions, make_ge_pools
from rpc.pools import AttachmentFunctionPool, FunctionPool
from rpc.service import Service

__all__ = ("PROXIES", "SLOW_DONE", "make_edit_pool", "make_lab_pool", "make_service")

DEFS = ge_definitions()
TOPOLOGY = DEFS.check_attachment("Graph::Graph.topology")
VISUAL = DEFS.check_attachment("Graph::Vertex.visualAttributes")
GraphKey = Annotated[Key, TOPOLOGY.key_type]

#: Weak references to the states the ``Edit.remember`` calls received (the server must not
#: keep them alive after the call).
PROXIES: list[weakref.ref[Any]] = []
_LOCK = threading.Lock()

#: Set when an ``Edit.slow_tag`` call ends in the server (whatever happened to the client).
SLOW_DONE = threading.Event()


def make_lab_pool() -> FunctionPool:
    """The ``Lab`` function pool."""
    lab = FunctionPool("Lab", documentation="Test functions.")

    @lab.function(inline=True)
    def add(a: int, b: int) -> int:
        """Return a + b (inline)."""
        return a + b

    @lab.function
    def add_threaded(a: int, b: int) -> int:
        """Return a + b (in a worker thread)."""
        return a + b

    @lab.function(inline=True)
    def echo(value: Any) -> Any:
        """Return the value."""
        return value

    @lab.function(inline=True)
    def concat(words: list[str], sep: str) -> str:
        """Join words."""
        return sep.join(words)

    @lab.function
    def fail(message: str) -> None:
        """Raise ValueError(message)."""
        raise ValueError(message)

    @lab.function(inline=True)
    def fail_inline(message: str) -> None:
        """Raise KeyError(message) on the event loop."""
        raise LookupError(message)

    @lab.function
    def missing(name: str) -> None:
        """Raise the engine's NotFoundError."""
        raise NotFoundError(f"nothing named {name!r}")

    @lab.function
    def unknown_commit(name: str) -> None:
        """Raise the engine's UnknownCommitError."""
        raise UnknownCommitError(f"no commit {name}")

    @lab.function
    def bad_result(n: int) -> int:
        """Return a value of the wrong type."""
        return "not an int"  # type: ignore[return-value]

    @lab.function
    def sleep(seconds: float) -> float:
        """Sleep in the worker thread, then return the duration."""
        time.sleep(min(seconds, 30.0))
        return seconds

    @lab.function
    def sleep_marked(marker: str, seconds: float) -> float:
        """Write the marker file, then sleep."""
        Path(marker).write_text("inside")
        time.sleep(min(seconds, 30.0))
        return seconds

    return lab


def make_edit_pool(defs: Definitions = DEFS) -> AttachmentFunctionPool:
    """The ``Edit`` attachment function pool (over the Ge model)."""
    topology = defs.check_attachment("Graph::Graph.topology")
    visual = defs.check_attachment("Graph::Vertex.visualAttributes")
    tags = defs.check_attachment("Graph::Graph.tags")
    color = defs.check_type("Graph::Color")
    edit = AttachmentFunctionPool("Edit", documentation="Edge cases of remote-local calls.")

    @edit.function
    def wrong_type(state: Any, graphKey: GraphKey) -> str:
        """Set a wrong-typed document through the state; return what was raised."""
        try:
            state.set(topology, graphKey, "not a topology")
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "accepted"

    @edit.function
    def tag_then_read(state: Any, graphKey: GraphKey, name: str) -> str:
        """Set a tag, then read: return the error the read raised (the client's refusal of
        the mutation), or "ok"."""
        state.set(tags, graphKey, {name: "v"})
        try:
            state.has(tags, graphKey)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok"

    @edit.function
    def tag(state: Any, graphKey: GraphKey, name: str) -> None:
        """Set a tag and return (the set travels with the result: the client raises its
        refusal as the call's error)."""
        state.set(tags, graphKey, {name: "v"})

    @edit.function
    def tag_and_fail(state: Any, graphKey: GraphKey, count: int) -> None:
        """Set `count` tags (one read in the middle), then raise."""
        state.set(tags, graphKey, {"t0": "0"})
        for i in range(1, count):
            state.union_in_map(tags, graphKey, ".", {f"t{i}": str(i)})
            if i == count // 2:
                state.has(tags, graphKey)
        raise RuntimeError(f"failed after {count} mutations")

    @edit.function
    def read_your_writes(state: Any, graphKey: GraphKey) -> list[str]:
        """Write tags and read them back between writes; return what each read saw."""
        seen: list[str] = []
        state.set(tags, graphKey, {"a": "1"})
        seen.append(",".join(sorted(state.get(tags, graphKey))))
        state.union_in_map(tags, graphKey, ".", {"b": "2"})
        state.union_in_map(tags, graphKey, ".", {"c": "3"})
        seen.append(",".join(sorted(state.get(tags, graphKey))))
        state.subtract_in_map(tags, graphKey, ".", {"a"})
        seen.append(",".join(sorted(state.get(tags, graphKey))))
        seen.append(str(len(state.keys(tags))))
        return seen

    @edit.function
    def bulk(state: Any, graphKey: GraphKey, count: int) -> int:
        """One get, then `count` sets of vertex attributes; return the vertex count read."""
        topo = state.get(topology, graphKey)
        before = 0 if topo is None else len(topo.vertexKeys)
        document = visual.document_type(value=7, color=color(red=0.1, green=0.2, blue=0.3))
        for _ in range(count):
            state.set(visual, visual.create_key(), document)
        return before

    @edit.function
    def remember(state: Any, graphKey: GraphKey) -> bool:
        """Keep a weak reference to the state (PROXIES), read and write once."""
        with _LOCK:
            PROXIES.append(weakref.ref(state))
        state.set(tags, graphKey, {"seen": "yes"})
        return bool(state.has(tags, graphKey))

    @edit.function
    def slow_tag(state: Any, graphKey: GraphKey, seconds: float) -> None:
        """Set a tag, read (so the client has it), sleep, then set another tag (SLOW_DONE is
        set when the call ends in the server, whatever happened to the client)."""
        try:
            state.set(tags, graphKey, {"before": "sleep"})
            state.has(tags, graphKey)
            time.sleep(min(seconds, 30.0))
            state.union_in_map(tags, graphKey, ".", {"after": "sleep"})
            state.has(tags, graphKey)
        finally:
            SLOW_DONE.set()

    @edit.function(mutable=False)
    def count_tags(state: Any, graphKey: GraphKey) -> int:
        """Read only: the number of tags."""
        found = state.get(tags, graphKey)
        return 0 if found is None else len(found)

    @edit.function(mutable=False)
    def sneaky_write(state: Any, graphKey: GraphKey) -> None:
        """Read only, but writes anyway (the client must refuse)."""
        state.set(tags, graphKey, {"sneaky": "yes"})

    return edit


def make_service(defs: Definitions | None = None) -> Service:
    """The Ge pools plus ``Lab`` and ``Edit``."""
    defs = defs if defs is not None else ge_definitions()
    tools, ge_pools = make_ge_pools(defs)
    return Service(
        defs, [tools, make_lab_pool()], [*ge_pools, make_edit_pool(defs)], name="test-service"
    )
