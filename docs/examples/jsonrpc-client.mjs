// A minimal JavaScript client of the commitdb JSON-RPC 2.0 gateway (docs/jsonrpc-gateway.md).
//
// No framework, no dependency: Node 20+ built-ins only. HTTP uses the global fetch (keep-alive
// by default); WebSocket uses the global WebSocket when the runtime has one (Node 22, or Node 20
// with --experimental-websocket, or a browser) and otherwise a small RFC 6455 client written
// here over node:net / node:tls and node:crypto.
//
//   import { HttpClient, WsClient, JsonRpcError } from "./jsonrpc-client.mjs";
//
//   const http = new HttpClient("http://127.0.0.1:8080", { token: "s3cret" });
//   await http.call("pool.Tools.add", [1, 2]);                       // 3
//   await http.notify("rpc.ping");                                    // no reply
//   await http.batch([["rpc.ping"], ["pool.Tools.add", [2, 3]], { method: "rpc.ping", notify: true }]);
//                                                                     // ["pong", 5, undefined]
//   const ws = await WsClient.connect("ws://127.0.0.1:8080/ws", { token: "s3cret" });
//   ws.onNotification("events.jobs", (params) => console.log(params));
//   const commits = await ws.subscribeCommits("main");
//   for await (const { database, header } of commits) { ... break; } // unsubscribes on break
//   ws.close();
//
// Errors are JsonRpcError instances with code, message and data (the gateway's error object);
// a missing reply within `timeout` milliseconds is a JsonRpcError with code -32001.

import crypto from "node:crypto";
import net from "node:net";
import tls from "node:tls";

/** A JSON-RPC error object raised as an exception. */
export class JsonRpcError extends Error {
  /**
   * @param {number} code
   * @param {string} message
   * @param {unknown} [data]
   */
  constructor(code, message, data) {
    super(`[${code}] ${message}`);
    this.name = "JsonRpcError";
    this.code = code;
    this.rpcMessage = message;
    this.data = data;
  }
}

/** Normalise a batch item: ["method", params] | {method, params, notify}. */
function member(item) {
  if (Array.isArray(item)) return { method: item[0], params: item[1], notify: false };
  return { method: item.method, params: item.params, notify: Boolean(item.notify) };
}

function request(method, params, id) {
  const msg = { jsonrpc: "2.0", method };
  if (params !== undefined && params !== null) msg.params = params;
  if (id !== undefined) msg.id = id;
  return msg;
}

function resultOf(reply) {
  if (reply === null || typeof reply !== "object" || reply.jsonrpc !== "2.0") {
    throw new JsonRpcError(-32603, `not a JSON-RPC 2.0 reply: ${JSON.stringify(reply)}`);
  }
  if (reply.error) throw new JsonRpcError(reply.error.code, reply.error.message, reply.error.data);
  return reply.result;
}

/** Line up batch replies with the ids sent: results, JsonRpcError objects, undefined. */
function matchBatch(replies, ids) {
  if (!Array.isArray(replies)) {
    if (replies && replies.error) throw new JsonRpcError(replies.error.code, replies.error.message, replies.error.data);
    throw new JsonRpcError(-32603, `a batch reply must be an array: ${JSON.stringify(replies)}`);
  }
  const byId = new Map();
  for (const r of replies) {
    if (r.id === null || r.id === undefined) {
      throw new JsonRpcError(r.error?.code ?? -32603, r.error?.message ?? "reply without id", r.error?.data);
    }
    byId.set(r.id, r.error ? new JsonRpcError(r.error.code, r.error.message, r.error.data) : r.result);
  }
  return ids.map((id) => (id === undefined ? undefined : byId.get(id)));
}

// ------------------------------------------------------------------------------------------
// HTTP

export class HttpClient {
  /**
   * @param {string} url  the gateway's base URL (http://host:port)
   * @param {{token?: string, timeout?: number}} [options]  timeout in milliseconds (30000)
   */
  constructor(url, { token, timeout = 30000 } = {}) {
    this.url = url.replace(/\/+$/, "") + "/";
    this.timeout = timeout;
    this.headers = { "content-type": "application/json" };
    if (token) this.headers.authorization = `Bearer ${token}`;
    this.nextId = 1;
  }

  async post(body) {
    let response;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers: this.headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeout),
      });
    } catch (err) {
      if (err.name === "TimeoutError") throw new JsonRpcError(-32001, `no reply within ${this.timeout} ms`, { client: true });
      throw err;
    }
    if (response.status === 204) return undefined;
    const text = await response.text();
    if (text === "") return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
    }
  }

  /** Call a method; resolves to its result, rejects with JsonRpcError. */
  async call(method, params) {
    const id = this.nextId++;
    return resultOf(await this.post(request(method, params, id)));
  }

  /** Send a notification (no reply). */
  async notify(method, params) {
    const body = await this.post(request(method, params));
    if (body && body.error) throw new JsonRpcError(body.error.code, body.error.message, body.error.data);
  }

  /** Send a batch; one entry per item: result, JsonRpcError, or undefined (notification). */
  async batch(items) {
    const ids = [];
    const messages = items.map((item) => {
      const m = member(item);
      const id = m.notify ? undefined : this.nextId++;
      ids.push(id);
      return request(m.method, m.params, id);
    });
    const body = await this.post(messages);
    if (ids.every((id) => id === undefined)) return ids.map(() => undefined);
    return matchBatch(body, ids);
  }
}

// ------------------------------------------------------------------------------------------
// A minimal WebSocket client (RFC 6455) for runtimes without a global WebSocket

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export class MiniWebSocket {
  /**
   * @param {string} url  ws:// or wss://
   * @param {{headers?: Record<string, string>}} [options]
   */
  constructor(url, { headers = {} } = {}) {
    const u = new URL(url);
    this.readyState = 0; // CONNECTING
    this.listeners = { open: [], message: [], close: [], error: [] };
    this.key = crypto.randomBytes(16).toString("base64");
    this.buffer = Buffer.alloc(0);
    this.fragments = [];
    this.handshaken = false;
    const secure = u.protocol === "wss:";
    const port = Number(u.port || (secure ? 443 : 80));
    const connect = secure ? tls.connect : net.connect;
    this.socket = connect({ host: u.hostname, port, servername: secure ? u.hostname : undefined });
    this.socket.setNoDelay(true);
    this.socket.on(secure ? "secureConnect" : "connect", () => {
      const lines = [
        `GET ${u.pathname || "/"}${u.search} HTTP/1.1`,
        `Host: ${u.host}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${this.key}`,
        "Sec-WebSocket-Version: 13",
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ];
      this.socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
    this.socket.on("data", (chunk) => this.receive(chunk));
    this.socket.on("error", (err) => this.emit("error", { error: err, message: String(err) }));
    this.socket.on("close", () => this.closed(1006, ""));
  }

  addEventListener(type, fn) {
    this.listeners[type].push(fn);
  }

  removeEventListener(type, fn) {
    this.listeners[type] = this.listeners[type].filter((f) => f !== fn);
  }

  emit(type, event) {
    for (const fn of this.listeners[type]) fn(event);
  }

  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (!this.handshaken) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.buffer.subarray(0, end).toString("latin1").split("\r\n");
      this.buffer = this.buffer.subarray(end + 4);
      const expected = crypto.createHash("sha1").update(this.key + GUID).digest("base64");
      const accept = head.find((l) => l.toLowerCase().startsWith("sec-websocket-accept:"));
      if (!/^HTTP\/1\.1 101/.test(head[0]) || !accept || accept.split(":")[1].trim() !== expected) {
        this.emit("error", { message: `WebSocket upgrade refused: ${head[0]}` });
        this.socket.destroy();
        return;
      }
      this.handshaken = true;
      this.readyState = 1; // OPEN
      this.emit("open", {});
    }
    this.parseFrames();
  }

  parseFrames() {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let length = b[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      const maskKey = masked ? b.subarray(offset, offset + 4) : null;
      if (masked) offset += 4;
      if (b.length < offset + length) return;
      let payload = Buffer.from(b.subarray(offset, offset + length));
      if (maskKey) for (let i = 0; i < payload.length; i++) payload[i] ^= maskKey[i % 4];
      this.buffer = b.subarray(offset + length);
      if (opcode === 0x8) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        if (this.readyState === 1) this.sendFrame(0x8, payload.subarray(0, 2));
        this.socket.end();
        this.closed(code, payload.subarray(2).toString("utf8"));
        return;
      }
      if (opcode === 0x9) {
        this.sendFrame(0xa, payload);
        continue;
      }
      if (opcode === 0xa) continue;
      this.fragments.push(payload);
      if (fin) {
        const data = Buffer.concat(this.fragments);
        this.fragments = [];
        const first = opcode === 0 ? this.firstOpcode : opcode;
        this.emit("message", { data: first === 0x2 ? data : data.toString("utf8") });
      } else if (opcode !== 0) {
        this.firstOpcode = opcode;
      }
    }
  }

  sendFrame(opcode, payload) {
    const mask = crypto.randomBytes(4);
    const n = payload.length;
    const head = n < 126 ? Buffer.alloc(2) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    if (n < 126) head[1] = 0x80 | n;
    else if (n < 65536) {
      head[1] = 0x80 | 126;
      head.writeUInt16BE(n, 2);
    } else {
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(n), 2);
    }
    const body = Buffer.from(payload);
    for (let i = 0; i < n; i++) body[i] ^= mask[i % 4];
    this.socket.write(Buffer.concat([head, mask, body]));
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("WebSocket is not open");
    this.sendFrame(0x1, Buffer.from(text, "utf8"));
  }

  close(code = 1000) {
    if (this.readyState === 1) {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code, 0);
      this.sendFrame(0x8, payload);
      this.readyState = 2; // CLOSING
      this.socket.end();
    } else if (this.readyState === 0) {
      this.socket.destroy();
    }
  }

  closed(code, reason) {
    if (this.readyState === 3) return;
    this.readyState = 3; // CLOSED
    this.socket.destroy();
    this.emit("close", { code, reason });
  }
}

/** Open a WebSocket: the global one if the runtime has it, else MiniWebSocket. */
export function openWebSocket(url, { headers = {}, forceMini = false } = {}) {
  if (!forceMini && typeof globalThis.WebSocket === "function" && Object.keys(headers).length === 0) {
    return new globalThis.WebSocket(url);
  }
  return new MiniWebSocket(url, { headers });
}

// ------------------------------------------------------------------------------------------
// JSON-RPC over WebSocket

export class WsClient {
  /**
   * Connect and (with a token) authenticate.
   * @param {string} url  ws://host:port/ws (an http:// base URL is turned into it)
   * @param {{token?: string, auth?: "message"|"header", timeout?: number, forceMini?: boolean}} [options]
   *   auth "message" (default) sends a first `auth` request; "header" sends
   *   Authorization: Bearer on the upgrade (MiniWebSocket only: browsers cannot set headers).
   * @returns {Promise<WsClient>}
   */
  static async connect(url, { token, auth = "message", timeout = 30000, forceMini = false } = {}) {
    if (/^https?:/.test(url)) url = url.replace(/^http/, "ws").replace(/\/*$/, "") + "/ws";
    const headers = token && auth === "header" ? { authorization: `Bearer ${token}` } : {};
    const socket = openWebSocket(url, { headers, forceMini });
    const client = new WsClient(socket, timeout);
    await new Promise((resolve, reject) => {
      socket.addEventListener("open", resolve);
      socket.addEventListener("error", (ev) => reject(new Error(`cannot connect to ${url}: ${ev.message ?? "error"}`)));
      socket.addEventListener("close", (ev) => reject(new Error(`connection closed (${ev.code})`)));
    });
    if (token && auth === "message") await client.call("auth", { token });
    return client;
  }

  constructor(socket, timeout) {
    this.socket = socket;
    this.timeout = timeout;
    this.nextId = 1;
    this.pending = new Map();
    this.handlers = new Map();
    this.requestHandlers = new Map();
    this.runtime = socket instanceof MiniWebSocket ? "mini" : "builtin";
    socket.addEventListener("message", (ev) => this.receive(ev.data));
    socket.addEventListener("close", () => {
      for (const { reject } of this.pending.values()) reject(new JsonRpcError(-32000, "connection closed"));
      this.pending.clear();
      this.emit("ws.closed", {});
    });
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(typeof text === "string" ? text : Buffer.from(text).toString("utf8"));
    } catch {
      return;
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (typeof m.method === "string") {
        if ("id" in m) this.serve(m);
        else this.emit(m.method, m.params);
      } else {
        const waiter = this.pending.get(m.id);
        if (waiter) {
          this.pending.delete(m.id);
          waiter.resolve(m);
        }
      }
    }
  }

  emit(method, params) {
    for (const fn of this.handlers.get(method) ?? []) fn(params);
    for (const fn of this.handlers.get("*") ?? []) fn({ method, params });
  }

  async serve(m) {
    const handler = this.requestHandlers.get(m.method);
    let reply;
    try {
      if (!handler) throw new JsonRpcError(-32601, `method not found: ${m.method}`);
      reply = { jsonrpc: "2.0", result: (await handler(m.params)) ?? null, id: m.id };
    } catch (err) {
      const e = err instanceof JsonRpcError ? err : new JsonRpcError(-32000, String(err));
      reply = { jsonrpc: "2.0", error: { code: e.code, message: e.rpcMessage ?? e.message, data: e.data }, id: m.id };
    }
    this.socket.send(JSON.stringify(reply));
  }

  /** Wait for the replies to `ids` after sending `message`. */
  exchange(message, ids) {
    const waits = ids.map(
      (id) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            this.pending.delete(id);
            reject(new JsonRpcError(-32001, `no reply within ${this.timeout} ms`, { client: true }));
          }, this.timeout);
          this.pending.set(id, {
            resolve: (r) => {
              clearTimeout(timer);
              resolve(r);
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          });
        }),
    );
    this.socket.send(JSON.stringify(message));
    return Promise.all(waits);
  }

  /** Call a method; resolves to its result, rejects with JsonRpcError. */
  async call(method, params) {
    const id = this.nextId++;
    const [reply] = await this.exchange(request(method, params, id), [id]);
    return resultOf(reply);
  }

  /** Send a notification. */
  notify(method, params) {
    this.socket.send(JSON.stringify(request(method, params)));
  }

  /** Send a batch; one entry per item: result, JsonRpcError, or undefined (notification). */
  async batch(items) {
    const ids = [];
    const messages = items.map((item) => {
      const m = member(item);
      const id = m.notify ? undefined : this.nextId++;
      ids.push(id);
      return request(m.method, m.params, id);
    });
    const wanted = ids.filter((id) => id !== undefined);
    if (wanted.length === 0) {
      this.socket.send(JSON.stringify(messages));
      return ids.map(() => undefined);
    }
    return matchBatch(await this.exchange(messages, wanted), ids);
  }

  /** Run `handler(params)` for every notification `method` ("*": every one, as {method, params}). Returns an unsubscribe function. */
  onNotification(method, handler) {
    if (!this.handlers.has(method)) this.handlers.set(method, []);
    this.handlers.get(method).push(handler);
    return () => this.handlers.set(method, this.handlers.get(method).filter((h) => h !== handler));
  }

  /** Answer requests the gateway sends (e.g. state.get while a state is lent). */
  onRequest(method, handler) {
    this.requestHandlers.set(method, handler);
  }

  /**
   * Subscribe to a database's commits. Resolves (once subscribed) to an async iterator of
   * {database, header}; leaving a for-await loop (or calling return()) unsubscribes.
   */
  async subscribeCommits(database) {
    const queue = [];
    const waiters = [];
    let done = false;
    const push = (item) => (waiters.length ? waiters.shift()(item) : queue.push(item));
    const offCommit = this.onNotification("db.commit", (params) => {
      if (params && params.database === database) push({ value: params, done: false });
    });
    const offClose = this.onNotification("ws.closed", () => push({ value: undefined, done: true }));
    await this.call("db.subscribe", { database });
    const client = this;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      next() {
        if (done) return Promise.resolve({ value: undefined, done: true });
        if (queue.length) return Promise.resolve(queue.shift());
        return new Promise((resolve) => waiters.push(resolve));
      },
      async return() {
        if (!done) {
          done = true;
          offCommit();
          offClose();
          if (client.socket.readyState === 1) await client.call("db.unsubscribe", { database });
          for (const w of waiters.splice(0)) w({ value: undefined, done: true });
        }
        return { value: undefined, done: true };
      },
    };
  }

  close() {
    this.socket.close(1000);
  }
}
