// A walk through the commitdb JSON-RPC gateway with the minimal JavaScript client.
//
//   node docs/examples/walkthrough.mjs http://127.0.0.1:8080 [database] [--token T] [--mini]
//
// It discovers the methods, calls a pool function, subscribes to a database's commits over
// WebSocket, commits a document over HTTP, reads it back, receives the commit notification,
// sends a batch and provokes an error. Each step prints one JSON line ({"step": ...}); the test
// tests/rpc/gateway_clients/test_js_client.py runs this script and checks those lines.
// The database must use the Ge model (rpc/examples/ge): the document is a Graph::Graph.tags map.
// --mini forces the hand-written WebSocket client even where a global WebSocket exists.

import crypto from "node:crypto";
import { HttpClient, JsonRpcError, WsClient } from "./jsonrpc-client.mjs";

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const [, value] = args.splice(i, 2);
  return value;
};
const forceMini = args.includes("--mini");
if (forceMini) args.splice(args.indexOf("--mini"), 1);
const token = flag("--token");
const [url = "http://127.0.0.1:8080", database = "main"] = args;
const print = (obj) => console.log(JSON.stringify(obj));

const http = new HttpClient(url, { token });

// 1. What does this gateway offer? (OpenRPC document)
const doc = await http.call("rpc.discover");
const names = doc.methods.map((m) => m.name);
print({ step: "discover", openrpc: doc.openrpc, methods: names.length, hasAdd: names.includes("pool.Tools.add") });

// 2. A pool function, by position and by name.
print({ step: "add", byPosition: await http.call("pool.Tools.add", [2, 40]), byName: await http.call("pool.Tools.add", { a: 1, b: 2 }) });

// 3. Subscribe to the database's commits over WebSocket.
const ws = await WsClient.connect(url, { token, forceMini });
const commits = await ws.subscribeCommits(database);
print({ step: "subscribed", database, runtime: ws.runtime });

// 4. Commit a document over HTTP: the tags of a new graph.
const graph = { concept: "Graph::Graph", id: crypto.randomUUID() };
const commit = await http.call("db.commit", {
  database,
  base: "head",
  label: "walkthrough: tag a graph",
  mutations: [{ op: "set", attachment: "Graph::Graph.tags", key: graph, value: { owner: "walkthrough", lang: "js" } }],
});
print({ step: "commit", commit });

// 5. Read it back at that commit.
const document = await http.call("db.get", { database, commit, attachment: "Graph::Graph.tags", key: graph });
print({ step: "get", document });

// 6. The commit notification arrives on the WebSocket.
const { value: event } = await commits.next();
print({ step: "notification", database: event.database, commit: event.header.commit, label: event.header.label });
await commits.return();

// 7. A batch over WebSocket: two calls and a notification.
const results = await ws.batch([["rpc.ping"], ["pool.Tools.isEven", [10]], { method: "rpc.ping", notify: true }]);
print({ step: "batch", results: results.map((r) => (r === undefined ? null : r)) });

// 8. Errors carry the gateway's code, message and data.
try {
  await http.call("pool.Tools.add", [1, "two"]);
} catch (err) {
  if (!(err instanceof JsonRpcError)) throw err;
  print({ step: "error", code: err.code, where: err.data?.where ?? null });
}

ws.close();
print({ step: "done" });
