"""A real Python implementation of the Ge ("Graph Editor") sample pools.

The Ge model (``rpc/examples/ge/*.dsm``, from the dsm-samples) declares three attachment function pools —
``ModelGraph``, ``ModelSelection``, ``ModelIntegrity`` — and one function pool, ``Tools``.
Every declared function is implemented here as a plain synchronous method over the attachment
state, using only its public methods (``get``/``has``/``keys`` and the mutations ``set``,
``update``, ``union_in_set``, ``subtract_in_set``, ``union_in_map``, ``subtract_in_map``,
``update_in_map``, ``insert_in_xarray``, ``update_in_xarray``, ``remove_in_xarray``), so the
same bodies run on a local ``CommitMutableState`` and on a server-side proxy that forwards each
call back to the client. :func:`make_ge_pools` binds them to the DSM declarations.

Conventions:

* Parameter names are the DSM ones (``graphKey``), so :meth:`FunctionPool.bind` checks them.
* A mutation on an absent document has no effect, so a function first creates the document it
  adds to (``_ensure``); whole-document ``set`` is used only where a function *creates* or
  *replaces* something (a vertex, an edge, "a new random graph").
* Documents are never deleted (there is no delete in the remote-local protocol): removing a
  vertex or an edge removes it from the graph topology; its attachments stay, which is exactly
  what the ModelIntegrity pool relies on to respawn vertices.
* ``random*`` functions draw from a ``random.Random`` seeded from their arguments and from the
  size of what they extend, so the same call on the same state writes the same contents (new
  keys and xarray positions are still fresh uuids, so concurrent clients never collide).
* Counts received from the wire are capped (:data:`MAX_COUNT`, :data:`MAX_WORD_SIZE`).
"""

from __future__ import annotations

import hashlib
import random
import string
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from commitdb.definitions import Definitions
from commitdb.dsm import load_definitions
from commitdb.protocols import AttachmentGetting, AttachmentMutating
from commitdb.types import INT64, Attachment, StructureType
from commitdb.values import END, Key, StructValue, Typed
from rpc.pools import AttachmentFunctionPool, FunctionPool

__all__ = (
    "GE_DIR",
    "MAX_COUNT",
    "MAX_WORD_SIZE",
    "ModelGraph",
    "ModelIntegrity",
    "ModelSelection",
    "Tools",
    "ge_definitions",
    "make_ge_pools",
)

#: The Ge model, shipped with the package (a copy of the MIT-licensed dsm-samples/Ge).
GE_DIR = Path(__file__).resolve().parent / "ge"

#: The largest vertex/edge count a function accepts (randomGraph, killer).
MAX_COUNT = 10_000

#: The largest word randomWord returns.
MAX_WORD_SIZE = 1 << 20

#: The Tools functions cheap enough to run on a server's event loop.
INLINE_TOOLS = ("add", "isEven", "isGreater")

#: A structure value (a commitdb ``StructValue``; its fields are dynamic attributes).
Struct = Any

_ROOT = "."
_VERTEX_KEYS = ".vertexKeys"
_EDGE_KEYS = ".edgeKeys"


def ge_definitions() -> Definitions:
    """Load the Ge model (types, attachments and the four pool declarations).

    Returns:
        Fresh definitions (callers may extend them).
    """
    return load_definitions(sorted(GE_DIR.glob("*.dsm")))


def make_ge_pools(
    defs: Definitions | None = None,
) -> tuple[FunctionPool, list[AttachmentFunctionPool]]:
    """Bind the Ge implementations to the DSM pool declarations.

    Args:
        defs: The Ge definitions (loaded when None).

    Returns:
        The ``Tools`` function pool and the attachment function pools, in declaration order
        (``ModelGraph``, ``ModelIntegrity``, ``ModelSelection``).
    """
    defs = defs if defs is not None else ge_definitions()
    implementations: dict[str, object] = {
        "ModelGraph": ModelGraph(defs),
        "ModelSelection": ModelSelection(defs),
        "ModelIntegrity": ModelIntegrity(defs),
    }
    declarations = {d.name: d for d in defs.pools()}
    missing = [n for n in ("Tools", *implementations) if n not in declarations]
    if missing:
        raise LookupError(f"the definitions do not declare the Ge pools {missing}")
    tools = FunctionPool.bind(declarations["Tools"], Tools(), inline=INLINE_TOOLS)
    attachment_pools = [
        AttachmentFunctionPool.bind(d, implementations[d.name])
        for d in defs.pools()
        if d.name in implementations
    ]
    return tools, attachment_pools


# --------------------------------------------------------------------------------------------
# Shared helpers


def _canonical(part: object) -> str:
    """A stable text for seeding (keys by uuid, structures by fields)."""
    if isinstance(part, Key):
        return f"K{part.concept.name}:{part.id.hex}"
    if isinstance(part, StructValue):
        return "S(" + ",".join(_canonical(v) for v in part._asdict().values()) + ")"
    if isinstance(part, list | tuple):
        return "T(" + ",".join(_canonical(v) for v in part) + ")"
    if isinstance(part, set | frozenset):
        return "{" + ",".join(sorted(_canonical(v) for v in part)) + "}"
    return f"{type(part).__name__}:{part!r}"


def _rng(*parts: object) -> random.Random:
    """A generator seeded from the parts (reproducible across runs and processes)."""
    digest = hashlib.sha256("\x1f".join(_canonical(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _word(rng: random.Random, size: int) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=size))


def _check_count(what: str, count: int, limit: int = MAX_COUNT) -> None:
    if count > limit:
        raise ValueError(f"{what} is {count}, at most {limit} is accepted")


class _GraphModel:
    """The Ge attachments and helpers shared by the pools (no public methods on purpose:
    ``bind`` offers every public method as an implementation)."""

    def __init__(self, defs: Definitions) -> None:
        self._defs = defs
        self._topology = defs.check_attachment("Graph::Graph.topology")
        self._tags = defs.check_attachment("Graph::Graph.tags")
        self._comments = defs.check_attachment("Graph::Graph.comments")
        self._selection = defs.check_attachment("Graph::Graph.selection")
        self._description = defs.check_attachment("Graph::Graph.description")
        self._render = defs.check_attachment("Graph::Vertex.render2DAttributes")
        self._visual = defs.check_attachment("Graph::Vertex.visualAttributes")
        self._edge = defs.check_attachment("Graph::Edge.topology")
        self._position = self._struct("Graph::Position")
        self._color = self._struct("Graph::Color")
        self._rectangle = self._struct("Graph::Rectangle")

    def _struct(self, name: str) -> StructureType:
        t = self._defs.check_type(name)
        if not isinstance(t, StructureType):
            raise TypeError(f"{name} is not a structure")
        return t

    def _new(self, attachment: Attachment, **fields: Any) -> StructValue:
        """A document of a structure attachment (missing fields take their defaults)."""
        document_type = attachment.document_type
        assert isinstance(document_type, StructureType)
        value: StructValue = document_type(**fields)
        return value

    # -- reads ----------------------------------------------------------------------------
    def _graph(self, state: AttachmentGetting, graph_key: Key) -> tuple[set[Key], set[Key]]:
        """(vertex keys, edge keys) of the graph topology (empty if absent)."""
        topology = state.get(self._topology, graph_key)
        if topology is None:
            return set(), set()
        return set(topology.vertexKeys), set(topology.edgeKeys)

    def _selected(self, state: AttachmentGetting, graph_key: Key) -> tuple[set[Key], set[Key]]:
        """(selected vertex keys, selected edge keys) (empty if absent)."""
        selection = state.get(self._selection, graph_key)
        if selection is None:
            return set(), set()
        return set(selection.vertexKeys), set(selection.edgeKeys)

    def _ends(self, state: AttachmentGetting, edge_key: Key) -> tuple[Key, Key] | None:
        edge = state.get(self._edge, edge_key)
        return None if edge is None else (edge.vaKey, edge.vbKey)

    def _valid_vertices(self, state: AttachmentGetting) -> set[Key]:
        """Vertices having both their render and their visual attributes."""
        return state.keys(self._render) & state.keys(self._visual)

    def _live_comments(self, state: AttachmentGetting, graph_key: Key) -> list[uuid.UUID]:
        comments = state.get(self._comments, graph_key)
        return [] if comments is None else list(comments.live_positions())

    def _content_order(self, state: AttachmentGetting, vertices: Iterable[Key]) -> list[Key]:
        """The vertices ordered by position and value (keys only break ties), so a random
        choice among them does not depend on the fresh uuids of their keys."""

        def rank(vertex_key: Key) -> tuple[float, float, int, Key]:
            render = state.get(self._render, vertex_key)
            visual = state.get(self._visual, vertex_key)
            x, y = (render.position.x, render.position.y) if render is not None else (0.0, 0.0)
            return x, y, visual.value if visual is not None else 0, vertex_key

        return sorted(vertices, key=rank)

    def _next_value(self, state: AttachmentGetting, vertices: Iterable[Key]) -> int:
        """One more than the largest value of the vertices (0 when none has one)."""
        values = [
            attrs.value
            for v in vertices
            if (attrs := state.get(self._visual, v)) is not None and attrs.value < INT64.high
        ]
        return max(values) + 1 if values else 0

    # -- mutations ------------------------------------------------------------------------
    def _ensure(self, state: AttachmentMutating, attachment: Attachment, key: Key) -> None:
        """Create the zero document so that mutations inside it take effect."""
        if not state.has(attachment, key):
            state.set(attachment, key, attachment.create_document())

    def _adjust(
        self,
        state: AttachmentMutating,
        attachment: Attachment,
        key: Key,
        path: str,
        current: set[Key],
        wanted: set[Key],
    ) -> None:
        """Turn the set at `path` from `current` into `wanted` with a subtract and a union."""
        gone, added = current - wanted, wanted - current
        if not gone and not added:
            return
        self._ensure(state, attachment, key)
        if gone:
            state.subtract_in_set(attachment, key, path, gone)
        if added:
            state.union_in_set(attachment, key, path, added)

    def _select(
        self,
        state: AttachmentMutating,
        graph_key: Key,
        vertices: set[Key] | None = None,
        edges: set[Key] | None = None,
    ) -> None:
        """Make the selection exactly `vertices` / `edges` (None leaves that part alone)."""
        current_vertices, current_edges = self._selected(state, graph_key)
        if vertices is not None:
            self._adjust(
                state, self._selection, graph_key, _VERTEX_KEYS, current_vertices, vertices
            )
        if edges is not None:
            self._adjust(state, self._selection, graph_key, _EDGE_KEYS, current_edges, edges)

    def _prune_selection(self, state: AttachmentMutating, graph_key: Key) -> None:
        """Deselect what the topology no longer holds."""
        vertices, edges = self._graph(state, graph_key)
        selected_vertices, selected_edges = self._selected(state, graph_key)
        self._select(state, graph_key, selected_vertices & vertices, selected_edges & edges)

    def _random_color(self, rng: random.Random) -> StructValue:
        value: StructValue = self._color(red=rng.random(), green=rng.random(), blue=rng.random())
        return value

    def _random_position(self, rng: random.Random, rect: Struct) -> StructValue:
        value: StructValue = self._position(
            x=rect.x + rng.random() * rect.w, y=rect.y + rng.random() * rect.h
        )
        return value

    def _create_vertex(
        self, state: AttachmentMutating, value: int, position: Struct, color: Struct
    ) -> Key:
        """A new vertex with its attributes (not yet in any graph)."""
        vertex_key = self._render.create_key()
        state.set(self._render, vertex_key, self._new(self._render, position=position))
        state.set(self._visual, vertex_key, self._new(self._visual, value=value, color=color))
        return vertex_key

    def _create_edge(self, state: AttachmentMutating, va_key: Key, vb_key: Key) -> Key:
        """A new edge between two vertices (not yet in any graph)."""
        edge_key = self._edge.create_key()
        state.set(self._edge, edge_key, self._new(self._edge, vaKey=va_key, vbKey=vb_key))
        return edge_key

    def _add_vertex(
        self,
        state: AttachmentMutating,
        graph_key: Key,
        value: int,
        position: Struct,
        color: Struct,
    ) -> Key:
        vertex_key = self._create_vertex(state, value, position, color)
        self._ensure(state, self._topology, graph_key)
        state.union_in_set(self._topology, graph_key, _VERTEX_KEYS, {vertex_key})
        return vertex_key

    def _add_edge(self, state: AttachmentMutating, graph_key: Key, va: Key, vb: Key) -> Key:
        edge_key = self._create_edge(state, va, vb)
        self._ensure(state, self._topology, graph_key)
        state.union_in_set(self._topology, graph_key, _EDGE_KEYS, {edge_key})
        return edge_key

    def _respawn(
        self,
        state: AttachmentMutating,
        vertex_key: Key,
        counters: dict[str, int],
    ) -> None:
        """Give a vertex the attributes it lacks: the next value, a color derived from its key,
        and a position on a row (``counters`` holds the next value and the row index)."""
        if not state.has(self._visual, vertex_key):
            color = self._random_color(_rng("respawn", vertex_key))
            visual = self._new(self._visual, value=counters["value"], color=color)
            state.set(self._visual, vertex_key, visual)
            counters["value"] += 1
        if not state.has(self._render, vertex_key):
            position = self._position(x=10.0 + counters["row"] * 30.0, y=200.0)
            state.set(self._render, vertex_key, self._new(self._render, position=position))
            counters["row"] += 1


# --------------------------------------------------------------------------------------------
# ModelGraph


class ModelGraph(_GraphModel):
    """The ``ModelGraph`` attachment function pool: edit the graph topology."""

    def appendGraphComment(self, state: AttachmentMutating, graphKey: Key, comment: str) -> None:
        """Append a new comment."""
        self._ensure(state, self._comments, graphKey)
        state.insert_in_xarray(self._comments, graphKey, _ROOT, END, uuid.uuid4(), comment)

    def clearGraph(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Clear the graph: no vertex, no edge, nothing selected (description, tags and
        comments stay)."""
        vertices, edges = self._graph(state, graphKey)
        self._adjust(state, self._topology, graphKey, _VERTEX_KEYS, vertices, set())
        self._adjust(state, self._topology, graphKey, _EDGE_KEYS, edges, set())
        self._select(state, graphKey, set(), set())

    def deleteSelectionBugged(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Delete the selected vertices without deleting connected edges (on purpose: the
        edges keep referring to vertices the graph no longer has)."""
        vertices, _ = self._graph(state, graphKey)
        selected, _ = self._selected(state, graphKey)
        self._adjust(state, self._topology, graphKey, _VERTEX_KEYS, vertices, vertices - selected)
        self._select(state, graphKey, vertices=set())

    def graphWithError(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Start creating a graph, then throw (the mutations made so far stay recorded)."""
        position = self._position(x=50.0, y=50.0)
        va = self._add_vertex(state, graphKey, 1, position, self._random_color(_rng(graphKey)))
        position = self._position(x=150.0, y=50.0)
        vb = self._add_vertex(state, graphKey, 2, position, self._random_color(_rng(graphKey)))
        self._add_edge(state, graphKey, va, vb)
        raise ValueError("graphWithError: the graph creation failed on purpose after 2 vertices")

    def graphWithMissingVertex(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Create a 4-cycle whose topology lists only 2 of its 4 vertices."""
        rng = _rng("missing vertex", graphKey)
        corners = [(100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)]
        v = [
            self._create_vertex(state, i + 1, self._position(x=x, y=y), self._random_color(rng))
            for i, (x, y) in enumerate(corners)
        ]
        e = [self._create_edge(state, v[i], v[(i + 1) % 4]) for i in range(4)]
        topology = self._new(self._topology, vertexKeys={v[0], v[1]}, edgeKeys=set(e))
        state.set(self._topology, graphKey, topology)
        state.set(self._selection, graphKey, self._selection.create_document())

    def graphWithMissingVertexProperties(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Create a graph whose first 4 vertices have no attributes (a 4-cycle of edges joins
        them) next to 3 complete vertices."""
        rng = _rng("missing properties", graphKey)
        bare = [self._render.create_key() for _ in range(4)]
        edges = {self._create_edge(state, bare[i], bare[(i + 1) % 4]) for i in range(4)}
        spots = [(100.0, 100.0), (200.0, 100.0), (300.0, 150.0)]
        complete = [
            self._create_vertex(state, i + 1, self._position(x=x, y=y), self._random_color(rng))
            for i, (x, y) in enumerate(spots)
        ]
        topology = self._new(self._topology, vertexKeys={*bare, *complete}, edgeKeys=edges)
        state.set(self._topology, graphKey, topology)
        state.set(self._selection, graphKey, self._selection.create_document())

    def insertGraphComment(
        self, state: AttachmentMutating, graphKey: Key, position: uuid.UUID, comment: str
    ) -> None:
        """Insert a new comment before the comment at `position` (END appends)."""
        if position != END and position not in self._live_comments(state, graphKey):
            raise ValueError(f"insertGraphComment: no comment at position {position}")
        self._ensure(state, self._comments, graphKey)
        state.insert_in_xarray(self._comments, graphKey, _ROOT, position, uuid.uuid4(), comment)

    def killer(self, state: AttachmentMutating, graphKey: Key, vertexCount: int) -> None:
        """Create a huge number of small mutations: vertexCount vertices, a chain of edges,
        and every vertex moved and revalued ten times."""
        _check_count("vertexCount", vertexCount)
        rng = _rng("killer", graphKey, vertexCount)
        rect = self._rectangle(x=0.0, y=0.0, w=1000.0, h=1000.0)
        vertices: list[Key] = []
        for i in range(vertexCount):
            position = self._random_position(rng, rect)
            vertex_key = self._add_vertex(state, graphKey, i, position, self._random_color(rng))
            if vertices:
                self._add_edge(state, graphKey, vertices[-1], vertex_key)
            vertices.append(vertex_key)
        for step in range(10):
            for vertex_key in vertices:
                position = self._random_position(rng, rect)
                state.update(self._render, vertex_key, ".position", position)
                state.update(self._visual, vertex_key, ".value", step)

    def moveVertices(self, state: AttachmentMutating, vertexKeys: set[Key], offset: Struct) -> None:
        """Move the vertices by the offset (vertices without a position are skipped)."""
        for vertex_key in sorted(vertexKeys):
            attrs = state.get(self._render, vertex_key)
            if attrs is None:
                continue
            moved = self._position(x=attrs.position.x + offset.x, y=attrs.position.y + offset.y)
            state.update(self._render, vertex_key, ".position", moved)

    def newEdge(self, state: AttachmentMutating, graphKey: Key, vaKey: Key, vbKey: Key) -> Key:
        """Create a new edge from vaKey to vbKey and add it to the graph."""
        return self._add_edge(state, graphKey, vaKey, vbKey)

    def newVertex(
        self, state: AttachmentMutating, graphKey: Key, value: int, position: Struct
    ) -> Key:
        """Create a vertex with the value, the position and a color derived from both."""
        color = self._random_color(_rng("vertex color", value, position))
        return self._add_vertex(state, graphKey, value, position, color)

    def randomComment(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Append a random comment (a sentence of 3 to 8 words)."""
        rng = _rng("comment", graphKey, len(self._live_comments(state, graphKey)))
        words = [_word(rng, rng.randint(2, 9)) for _ in range(rng.randint(3, 8))]
        sentence = " ".join(words).capitalize() + "."
        self._ensure(state, self._comments, graphKey)
        state.insert_in_xarray(self._comments, graphKey, _ROOT, END, uuid.uuid4(), sentence)

    def randomEdge(self, state: AttachmentMutating, graphKey: Key) -> Key:
        """Create an edge between two random unconnected vertices.

        Raises:
            ValueError: The graph is complete (every pair of vertices is connected).
        """
        vertices, edges = self._graph(state, graphKey)
        connected = {frozenset(ends) for e in edges if (ends := self._ends(state, e)) is not None}
        ordered = self._content_order(state, vertices)
        candidates = [
            (a, b)
            for i, a in enumerate(ordered)
            for b in ordered[i + 1 :]
            if frozenset((a, b)) not in connected
        ]
        if not candidates:
            raise ValueError(
                f"randomEdge: the graph is complete ({len(vertices)} vertices, "
                f"{len(edges)} edges): no edge can be added"
            )
        rng = _rng("edge", graphKey, len(edges))
        va, vb = rng.choice(candidates)
        if rng.random() < 0.5:
            va, vb = vb, va
        return self._add_edge(state, graphKey, va, vb)

    def randomGraph(
        self,
        state: AttachmentMutating,
        graphKey: Key,
        vertexCount: int,
        edgeCount: int,
        rect: Struct,
    ) -> None:
        """Replace the graph by vertexCount random vertices inside rect joined by edgeCount
        distinct random edges (the selection is cleared).

        Raises:
            ValueError: More edges than vertex pairs, or counts above :data:`MAX_COUNT`.
        """
        _check_count("vertexCount", vertexCount)
        _check_count("edgeCount", edgeCount)
        pairs = vertexCount * (vertexCount - 1) // 2
        if edgeCount > pairs:
            raise ValueError(
                f"randomGraph: {edgeCount} edges cannot join {vertexCount} vertices "
                f"(at most {pairs})"
            )
        rng = _rng("graph", graphKey, vertexCount, edgeCount, rect)
        vertices = [
            self._create_vertex(
                state,
                rng.randint(0, 99),
                self._random_position(rng, rect),
                self._random_color(rng),
            )
            for _ in range(vertexCount)
        ]
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < edgeCount:
            a, b = rng.sample(range(vertexCount), 2)
            if (a, b) not in chosen and (b, a) not in chosen:
                chosen.add((a, b))
        edges = {self._create_edge(state, vertices[a], vertices[b]) for a, b in sorted(chosen)}
        state.set(
            self._topology,
            graphKey,
            self._new(self._topology, vertexKeys=set(vertices), edgeKeys=edges),
        )
        self._select(state, graphKey, set(), set())

    def randomTag(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Insert a new random tag (a key the graph does not have yet, a random value)."""
        tags = state.get(self._tags, graphKey) or {}
        rng = _rng("tag", graphKey, len(tags))
        name = _word(rng, 6)
        while name in tags:
            name = _word(rng, 6)
        self._ensure(state, self._tags, graphKey)
        state.union_in_map(self._tags, graphKey, _ROOT, {name: _word(rng, 8)})

    def randomVertex(self, state: AttachmentMutating, graphKey: Key, rect: Struct) -> Key:
        """Create a vertex at a random position inside rect, with a random value and color."""
        vertices, _ = self._graph(state, graphKey)
        rng = _rng("vertex", graphKey, rect, len(vertices))
        position = self._random_position(rng, rect)
        value = rng.randint(0, 99)
        return self._add_vertex(state, graphKey, value, position, self._random_color(rng))

    def removeGraphComment(
        self, state: AttachmentMutating, graphKey: Key, position: uuid.UUID
    ) -> None:
        """Remove the comment at `position`."""
        if position not in self._live_comments(state, graphKey):
            raise ValueError(f"removeGraphComment: no comment at position {position}")
        state.remove_in_xarray(self._comments, graphKey, _ROOT, position)

    def setGraphLabel(self, state: AttachmentMutating, graphKey: Key, label: str) -> None:
        """Set the label (the ``name`` field) of the graph description."""
        if state.has(self._description, graphKey):
            state.update(self._description, graphKey, ".name", label)
        else:
            state.set(self._description, graphKey, self._new(self._description, name=label))

    def setGraphTag(self, state: AttachmentMutating, graphKey: Key, key: str, value: str) -> None:
        """Replace or insert the tag."""
        self._ensure(state, self._tags, graphKey)
        state.union_in_map(self._tags, graphKey, _ROOT, {key: value})

    def setVertexColor(self, state: AttachmentMutating, vertexKey: Key, color: Struct) -> None:
        """Set the vertex color."""
        if state.has(self._visual, vertexKey):
            state.update(self._visual, vertexKey, ".color", color)
        else:
            state.set(self._visual, vertexKey, self._new(self._visual, color=color))

    def setVertexPosition(
        self, state: AttachmentMutating, vertexKey: Key, position: Struct
    ) -> None:
        """Set the vertex position."""
        if state.has(self._render, vertexKey):
            state.update(self._render, vertexKey, ".position", position)
        else:
            state.set(self._render, vertexKey, self._new(self._render, position=position))

    def setVertexValue(self, state: AttachmentMutating, vertexKey: Key, value: int) -> None:
        """Set the vertex value."""
        if state.has(self._visual, vertexKey):
            state.update(self._visual, vertexKey, ".value", value)
        else:
            state.set(self._visual, vertexKey, self._new(self._visual, value=value))

    def unsetGraphTags(self, state: AttachmentMutating, graphKey: Key, keys: set[str]) -> None:
        """Remove the tags with these keys (missing ones are ignored)."""
        if keys and state.has(self._tags, graphKey):
            state.subtract_in_map(self._tags, graphKey, _ROOT, keys)

    def updateGraphComment(
        self, state: AttachmentMutating, graphKey: Key, position: uuid.UUID, comment: str
    ) -> None:
        """Update the comment at `position`."""
        if position not in self._live_comments(state, graphKey):
            raise ValueError(f"updateGraphComment: no comment at position {position}")
        state.update_in_xarray(self._comments, graphKey, _ROOT, position, comment)

    def updateGraphTag(
        self, state: AttachmentMutating, graphKey: Key, key: str, value: str
    ) -> None:
        """Update a tag that exists (an unknown key is ignored: use setGraphTag to insert)."""
        if state.has(self._tags, graphKey):
            state.update_in_map(self._tags, graphKey, _ROOT, {key: value})

    def noArgs(self, state: AttachmentMutating) -> None:
        """Test no args: touch nothing."""


# --------------------------------------------------------------------------------------------
# ModelSelection


class ModelSelection(_GraphModel):
    """The ``ModelSelection`` attachment function pool: edit the selection."""

    def combineSelectionWithEdge(
        self, state: AttachmentMutating, graphKey: Key, edgeKey: Key, selected: bool
    ) -> None:
        """Add the edge to the selection (selected) or remove it from it."""
        _, edges = self._selected(state, graphKey)
        wanted = edges | {edgeKey} if selected else edges - {edgeKey}
        self._select(state, graphKey, edges=wanted)

    def combineSelectionWithVertex(
        self, state: AttachmentMutating, graphKey: Key, vertexKey: Key, selected: bool
    ) -> None:
        """Add the vertex to the selection (selected) or remove it from it."""
        vertices, _ = self._selected(state, graphKey)
        wanted = vertices | {vertexKey} if selected else vertices - {vertexKey}
        self._select(state, graphKey, vertices=wanted)

    def deleteSelection(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Remove the selected vertices, every edge touching them and the selected edges from
        the graph; the selection ends empty of them."""
        vertices, edges = self._graph(state, graphKey)
        selected_vertices, selected_edges = self._selected(state, graphKey)
        doomed_edges = selected_edges & edges
        for edge_key in edges - doomed_edges:
            ends = self._ends(state, edge_key)
            if ends is not None and (ends[0] in selected_vertices or ends[1] in selected_vertices):
                doomed_edges.add(edge_key)
        self._adjust(state, self._topology, graphKey, _EDGE_KEYS, edges, edges - doomed_edges)
        self._adjust(
            state, self._topology, graphKey, _VERTEX_KEYS, vertices, vertices - selected_vertices
        )
        self._select(state, graphKey, set(), selected_edges - doomed_edges)

    def deselectAll(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Deselect all edges and vertices."""
        self._select(state, graphKey, set(), set())

    def deselectAllEdges(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Deselect all edges."""
        self._select(state, graphKey, edges=set())

    def deselectAllVertices(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Deselect all vertices."""
        self._select(state, graphKey, vertices=set())

    def incrementVertexValue(self, state: AttachmentMutating, graphKey: Key, value: int) -> None:
        """Add `value` to the value of every selected vertex that has one.

        Raises:
            ValueError: A value would leave the int64 range (nothing is changed then).
        """
        selected, _ = self._selected(state, graphKey)
        updates: list[tuple[Key, int]] = []
        for vertex_key in sorted(selected):
            attrs = state.get(self._visual, vertex_key)
            if attrs is None:
                continue
            new = attrs.value + value
            if not INT64.low <= new <= INT64.high:
                raise ValueError(f"incrementVertexValue: {attrs.value} + {value} overflows int64")
            updates.append((vertex_key, new))
        for vertex_key, new in updates:
            state.update(self._visual, vertex_key, ".value", new)

    def invertEdgesSelection(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Select exactly the graph edges that were not selected."""
        _, edges = self._graph(state, graphKey)
        _, selected = self._selected(state, graphKey)
        self._select(state, graphKey, edges=edges - selected)

    def invertSelection(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Invert the selection of both vertices and edges."""
        vertices, edges = self._graph(state, graphKey)
        selected_vertices, selected_edges = self._selected(state, graphKey)
        self._select(state, graphKey, vertices - selected_vertices, edges - selected_edges)

    def invertVerticesSelection(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Select exactly the graph vertices that were not selected."""
        vertices, _ = self._graph(state, graphKey)
        selected, _ = self._selected(state, graphKey)
        self._select(state, graphKey, vertices=vertices - selected)

    def selectAll(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Select all edges and vertices of the graph."""
        vertices, edges = self._graph(state, graphKey)
        self._select(state, graphKey, vertices, edges)

    def selectAllEdges(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Select all edges of the graph (the vertex selection is kept)."""
        _, edges = self._graph(state, graphKey)
        self._select(state, graphKey, edges=edges)

    def selectAllVertices(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Select all vertices of the graph (the edge selection is kept)."""
        vertices, _ = self._graph(state, graphKey)
        self._select(state, graphKey, vertices=vertices)

    def selectedEdges(self, state: AttachmentGetting, graphKey: Key) -> set[Key]:
        """Return the selected edges."""
        return self._selected(state, graphKey)[1]

    def selectedVertices(self, state: AttachmentGetting, graphKey: Key) -> set[Key]:
        """Return the selected vertices."""
        return self._selected(state, graphKey)[0]

    def setSelection(
        self,
        state: AttachmentMutating,
        graphKey: Key,
        vertexKeys: set[Key],
        edgeKeys: set[Key],
    ) -> None:
        """Make the selection exactly these vertices and edges."""
        self._select(state, graphKey, set(vertexKeys), set(edgeKeys))

    def setSelectionToEdge(self, state: AttachmentMutating, graphKey: Key, edgeKey: Key) -> None:
        """Reduce the edge selection to the edge (the vertex selection is kept, as declared)."""
        self._select(state, graphKey, edges={edgeKey})

    def setSelectionToVertex(
        self, state: AttachmentMutating, graphKey: Key, vertexKey: Key
    ) -> None:
        """Reduce the selection to the vertex (no edge stays selected)."""
        self._select(state, graphKey, {vertexKey}, set())


# --------------------------------------------------------------------------------------------
# ModelIntegrity


class ModelIntegrity(_GraphModel):
    """The ``ModelIntegrity`` attachment function pool: repair dangling references.

    A vertex is *valid* when it has both its render and its visual attributes. Each repair
    also deselects what the topology no longer holds.
    """

    def restoreIntegrityByCreating(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Create what is missing: attributes of the graph's vertices and of the vertices its
        edges join (those join the graph); edges without a topology leave the graph."""
        vertices, edges = self._graph(state, graphKey)
        counters = {"value": self._next_value(state, vertices), "row": 0}
        valid = self._valid_vertices(state)
        respawned: set[Key] = set()
        dead_edges: set[Key] = set()
        for vertex_key in sorted(vertices - valid):
            self._respawn(state, vertex_key, counters)
        for edge_key in sorted(edges):
            ends = self._ends(state, edge_key)
            if ends is None:
                dead_edges.add(edge_key)
                continue
            for vertex_key in ends:
                self._respawn(state, vertex_key, counters)
                respawned.add(vertex_key)
        self._adjust(state, self._topology, graphKey, _VERTEX_KEYS, vertices, vertices | respawned)
        self._adjust(state, self._topology, graphKey, _EDGE_KEYS, edges, edges - dead_edges)
        self._prune_selection(state, graphKey)

    def restoreIntegrityByDeleting(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Remove what is broken: invalid vertices, edges without a topology, and edges joining
        a vertex that is invalid or not in the graph."""
        vertices, edges = self._graph(state, graphKey)
        valid = self._valid_vertices(state)
        dead_vertices = vertices - valid
        dead_edges: set[Key] = set()
        for edge_key in edges:
            ends = self._ends(state, edge_key)
            if ends is None:
                dead_edges.add(edge_key)
                continue
            for vertex_key in ends:
                if vertex_key not in vertices or vertex_key not in valid:
                    dead_edges.add(edge_key)
                if vertex_key not in valid:
                    dead_vertices.add(vertex_key)
        self._adjust(state, self._topology, graphKey, _EDGE_KEYS, edges, edges - dead_edges)
        self._adjust(
            state, self._topology, graphKey, _VERTEX_KEYS, vertices, vertices - dead_vertices
        )
        self._prune_selection(state, graphKey)

    def restoreIntegrityByRestoring(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Respawn what can be: a vertex an edge joins comes back into the graph when it is
        still valid; invalid vertices leave, with the edges joining them."""
        vertices, edges = self._graph(state, graphKey)
        restorable = self._valid_vertices(state)
        dead_vertices = vertices - restorable
        restored: set[Key] = set()
        dead_edges: set[Key] = set()
        for edge_key in edges:
            ends = self._ends(state, edge_key)
            if ends is None:
                dead_edges.add(edge_key)
                continue
            for vertex_key in ends:
                if vertex_key in restorable:
                    restored.add(vertex_key)
                else:
                    dead_vertices.add(vertex_key)
                    dead_edges.add(edge_key)
        wanted_vertices = (vertices - dead_vertices) | restored
        self._adjust(state, self._topology, graphKey, _VERTEX_KEYS, vertices, wanted_vertices)
        self._adjust(state, self._topology, graphKey, _EDGE_KEYS, edges, edges - dead_edges)
        self._prune_selection(state, graphKey)

    def restoreVertexSelection(self, state: AttachmentMutating, graphKey: Key) -> None:
        """Give the selected vertices the attributes they lack."""
        vertices, _ = self._graph(state, graphKey)
        selected, _ = self._selected(state, graphKey)
        counters = {"value": self._next_value(state, vertices | selected), "row": 0}
        for vertex_key in sorted(selected):
            self._respawn(state, vertex_key, counters)


# --------------------------------------------------------------------------------------------
# Tools


class Tools:
    """The ``Tools`` function pool: stateless utilities."""

    @staticmethod
    def add(a: int, b: int) -> int:
        """Return a + b."""
        return a + b

    @staticmethod
    def isEven(a: int) -> bool:
        """Return true if a is even."""
        return a % 2 == 0

    @staticmethod
    def isGreater(a: Any, b: Any) -> bool:
        """Return true if a > b (numbers with numbers, strings with strings, ...).

        Raises:
            TypeError: The two values cannot be ordered (different kinds, empty any ...).
        """
        left = a.value if isinstance(a, Typed) else a
        right = b.value if isinstance(b, Typed) else b
        try:
            return bool(left > right)
        except TypeError:
            raise TypeError(
                f"isGreater cannot order {type(left).__name__} {left!r} and "
                f"{type(right).__name__} {right!r}"
            ) from None

    @staticmethod
    def randomWord(size: int) -> str:
        """Return a random word of `size` lowercase letters (the same size gives the same
        word).

        Raises:
            ValueError: size above :data:`MAX_WORD_SIZE`.
        """
        _check_count("size", size, MAX_WORD_SIZE)
        return _word(_rng("word", size), size)


def make_service(defs: Definitions | None = None) -> Any:
    """The Ge graph-editor service (``commitdb service serve rpc.examples.graph:make_service``)."""
    from rpc.service import Service

    defs = defs or ge_definitions()
    tools, pools = make_ge_pools(defs)
    return Service(defs, [tools], pools, name="graph-editor")
