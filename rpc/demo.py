"""The demo (``make demo``): a graph editor whose business logic runs on a server.

1. Starts the Ge graph-editor service in its own process, on a Unix socket.
2. Opens a local, embedded commit database (LMDB, in a temporary directory).
3. Builds a graph through remote attachment calls: the pool functions run on the server, and
   every read and mutation they make lands in this process's mutable state.
4. Commits each step locally (a CommitStore dispatch), prints the resulting documents and the
   commit log, undoes the last commit, and stops the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from commitdb import CommitDatabase, CommitStore, Key
from rpc.blocking import BlockingServiceRemote

__all__ = ("main",)

console = Console()


def _start_server(socket_path: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rpc",
            "service",
            "serve",
            "rpc.examples.graph:make_service",
            "--listen",
            f"unix://{socket_path}",
        ],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            proc.kill()
            raise SystemExit(f"the service did not start:\n{err}")
        time.sleep(0.05)
    return proc


def _show_state(store: CommitStore, graph: Key) -> None:
    st = store.state()
    topo = st.get("Graph::Graph.topology", graph)
    table = Table(title=f"graph {str(graph.id)[:8]} at commit {st.commit_id().hex()[:12]}")
    table.add_column("vertex")
    table.add_column("value")
    table.add_column("position")
    table.add_column("selected")
    selection = st.get("Graph::Graph.selection", graph)
    selected = selection.vertexKeys if selection else set()
    for v in sorted(topo.vertexKeys):
        visual = st.get("Graph::Vertex.visualAttributes", v)
        render = st.get("Graph::Vertex.render2DAttributes", v)
        pos = render.position if render else None
        table.add_row(
            str(v.id)[:8],
            str(visual.value if visual else "-"),
            f"({pos.x:g}, {pos.y:g})" if pos else "-",
            "yes" if v in selected else "",
        )
    console.print(table)
    for e in sorted(topo.edgeKeys):
        et = st.get("Graph::Edge.topology", e)
        console.print(f"  edge {str(e.id)[:8]}: {str(et.vaKey.id)[:8]} -> {str(et.vbKey.id)[:8]}")
    console.print(f"  tags: {st.get('Graph::Graph.tags', graph)}")
    comments = st.get("Graph::Graph.comments", graph)
    console.print(f"  comments: {comments.to_list() if comments else []}")


def _show_log(db: CommitDatabase, head: Any) -> None:
    table = Table(title="commit log (linearized, oldest first)")
    table.add_column("commit")
    table.add_column("kind")
    table.add_column("label")
    table.add_column("enabled")
    flags = db.enabled_by_commit_id(head)
    for c in db.linearization(head):
        h = db.commit_header(c)
        table.add_row(
            c.hex()[:12], h.commit_type, escape(h.label), "yes" if flags[c] else "no (undone)"
        )
    console.print(table)


def main() -> None:
    """Run the demo end to end."""
    with tempfile.TemporaryDirectory(prefix="commitdb-demo-") as tmp:
        socket_path = os.path.join(tmp, "graph-editor.sock")
        console.rule("[bold]commitdb demo: a graph editor served over the native protocol")
        server = _start_server(socket_path)
        console.print(f"service started (pid {server.pid}) on unix://{socket_path}")
        try:
            with BlockingServiceRemote.connect(f"unix://{socket_path}") as remote:
                defs = remote.definitions()
                pools = [
                    p.name for p in remote.function_pools() + remote.attachment_function_pools()
                ]
                console.print(f"discovered pools: {', '.join(pools)}")
                console.print(f"Tools.add(32, 10) on the server = {remote.pools.Tools.add(32, 10)}")

                db = CommitDatabase.create(Path(tmp) / "graph.cdb", defs, documentation="demo")
                store = CommitStore(db)
                graph = defs.check_attachment("Graph::Graph.topology").create_key()
                position = defs.check_type("Graph::Position")
                model = remote.attachment_pools.ModelGraph
                selection = remote.attachment_pools.ModelSelection

                vertices: list[Key] = []

                def add_vertices(ms: Any) -> None:
                    for i, (x, y) in enumerate([(0, 0), (100, 0), (50, 80)]):
                        vertices.append(
                            model.newVertex(ms, graph, 10 * (i + 1), position(x=x, y=y))
                        )

                store.dispatch("add three vertices", add_vertices)
                store.dispatch(
                    "connect them",
                    lambda ms: [
                        model.newEdge(ms, graph, vertices[0], vertices[1]),
                        model.newEdge(ms, graph, vertices[1], vertices[2]),
                    ],
                )

                def annotate(ms: Any) -> None:
                    model.setGraphTag(ms, graph, "owner", "demo")
                    model.setGraphTag(ms, graph, "kind", "triangle-ish")
                    model.appendGraphComment(ms, graph, "first comment")
                    model.appendGraphComment(ms, graph, "second comment")

                store.dispatch("tags and comments", annotate)
                store.dispatch("select all", lambda ms: selection.selectAll(ms, graph))
                store.dispatch(
                    "move the first vertex",
                    lambda ms: model.setVertexPosition(ms, vertices[0], position(x=-20, y=10)),
                )
                _show_state(store, graph)
                _show_log(db, store.commit_id())

                console.rule("undo the last commit")
                store.undo()
                _show_state(store, graph)
                _show_log(db, store.commit_id())
                console.print(f"heads: {[c.hex()[:12] for c in db.head_commit_ids()]}")
                db.close()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            console.print(f"service stopped (exit code {server.returncode})")


if __name__ == "__main__":
    main()
