"""The JavaScript client (docs/examples/jsonrpc-client.mjs) against a real gateway, with Node.

``walkthrough.mjs`` runs with the runtime's own WebSocket (Node 22+, or Node 20 with
``--experimental-websocket``) and with the hand-written RFC 6455 client (``--mini``); a second
script exercises the rest of the client (batches, errors, large frames, handlers, tokens).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.rpc.gateway_clients.conftest import REPO, Gateway

NODE = shutil.which("node") or "node"
EXAMPLES = REPO / "docs" / "examples"


def node_major() -> int:
    out = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.match(r"v(\d+)", out.strip())
    assert found, out
    return int(found.group(1))


def builtin_websocket_flags() -> list[str]:
    """Node flags that give the runtime a global WebSocket."""
    return ["--experimental-websocket"] if node_major() < 22 else []


def run_node(
    *args: str, flags: list[str] | None = None, stdin: str | None = None
) -> list[dict[str, Any]]:
    """Run node and return the JSON lines it printed (fails with its stderr on error)."""
    proc = subprocess.run(
        [NODE, *(flags or []), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=EXAMPLES,
        timeout=120,
    )
    assert proc.returncode == 0, f"node failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def steps(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["step"]: line for line in lines}


@pytest.mark.parametrize("runtime", ["builtin", "mini"])
def test_walkthrough(gateway: Gateway, runtime: str) -> None:
    extra = ["--mini"] if runtime == "mini" else []
    flags = builtin_websocket_flags() if runtime == "builtin" else []
    lines = run_node("walkthrough.mjs", gateway.url, "main", *extra, flags=flags)
    assert [line["step"] for line in lines] == [
        "discover", "add", "subscribed", "commit", "get", "notification", "batch", "error", "done",
    ]  # fmt: skip
    s = steps(lines)
    assert s["discover"]["openrpc"].startswith("1.2") and s["discover"]["hasAdd"] is True
    assert s["discover"]["methods"] > 20
    assert s["add"] == {"step": "add", "byPosition": 42, "byName": 3}
    assert s["subscribed"]["runtime"] == runtime
    commit = s["commit"]["commit"]
    assert re.fullmatch(r"[0-9a-f]{64}", commit)
    assert s["get"]["document"] == {"owner": "walkthrough", "lang": "js"}
    assert s["notification"] == {
        "step": "notification",
        "database": "main",
        "commit": commit,
        "label": "walkthrough: tag a graph",
    }
    assert s["batch"]["results"] == ["pong", True, None]
    assert s["error"]["code"] == -32602 and s["error"]["where"]


def test_walkthrough_with_a_token(secured_gateway: Gateway) -> None:
    lines = run_node("walkthrough.mjs", secured_gateway.url, "main", "--token", "writer", "--mini")
    assert lines[-1] == {"step": "done"}
    assert steps(lines)["notification"]["commit"] == steps(lines)["commit"]["commit"]


FEATURES = r"""
import { HttpClient, WsClient, JsonRpcError, MiniWebSocket } from "./jsonrpc-client.mjs";
const url = process.argv.at(-1);
const print = (obj) => console.log(JSON.stringify(obj));
const http = new HttpClient(url);

const mixed = await http.batch([
  ["pool.Tools.add", [1, 2]],
  { method: "rpc.ping", notify: true },
  ["no.such.method"],
]);
print({ check: "http-batch", ok: mixed[0] === 3, notify: mixed[1] === undefined,
        code: mixed[2] instanceof JsonRpcError ? mixed[2].code : null });
print({ check: "all-notifications", out: (await http.batch([{ method: "rpc.ping", notify: true }])).length });
await http.notify("rpc.ping");
try { await http.call("db.header", { database: "main", commit: "0".repeat(64) }); }
catch (e) { print({ check: "engine-error", code: e.code }); }

const ws = await WsClient.connect(url, { forceMini: true });
print({ check: "runtime", runtime: ws.runtime, mini: ws.socket instanceof MiniWebSocket });
const big = "x".repeat(70000);
print({ check: "large-out", result: await ws.call("pool.Tools.isGreater", [big, "a"]) });
const word = await ws.call("pool.Tools.randomWord", [100000]);
print({ check: "large-in", length: word.length });
const seen = [];
ws.onNotification("*", (n) => seen.push(n.method));
const commits = await ws.subscribeCommits("main");
const graph = { concept: "Graph::Graph", id: crypto.randomUUID() };
const commit = await http.call("db.commit", { database: "main", label: "js features",
  mutations: [{ op: "set", attachment: "Graph::Graph.tags", key: graph, value: { k: "v" } }] });
for await (const event of commits) {
  print({ check: "subscription", same: event.header.commit === commit, seen });
  break;
}
const parallel = await Promise.all([1, 2, 3, 4, 5].map((i) => ws.call("pool.Tools.add", [i, i])));
print({ check: "parallel", parallel });
ws.notify("rpc.ping");
print({ check: "ws-notify-batch", out: (await ws.batch([{ method: "rpc.ping", notify: true }])).length });
try { await ws.call("pool.Tools.add", [1]); } catch (e) { print({ check: "ws-error", code: e.code }); }
ws.close();
print({ check: "end" });
"""


def test_js_client_features(gateway: Gateway) -> None:
    lines = run_node("--input-type=module", "-", gateway.url, stdin=FEATURES)
    checks = {line["check"]: line for line in lines}
    assert checks["http-batch"] == {
        "check": "http-batch",
        "ok": True,
        "notify": True,
        "code": -32601,
    }
    assert checks["all-notifications"]["out"] == 1
    assert checks["engine-error"]["code"] == -32131
    assert checks["runtime"] == {"check": "runtime", "runtime": "mini", "mini": True}
    assert checks["large-out"]["result"] is True
    assert checks["large-in"]["length"] == 100000
    assert checks["subscription"]["same"] is True
    assert "db.commit" in checks["subscription"]["seen"]
    assert checks["parallel"]["parallel"] == [2, 4, 6, 8, 10]
    assert checks["ws-notify-batch"]["out"] == 1
    assert checks["ws-error"]["code"] == -32602
    assert lines[-1] == {"check": "end"}
