"""The gateway's methods: discovery, function pools, attachment pools and databases.

:func:`build_registry` registers, from the service's pool declarations and the served
databases, every method of ``docs/jsonrpc-gateway.md`` §3. The service is reached through a
backend: :class:`LocalBackend` (a :class:`~rpc.service.Service` in this process: functions
run in worker threads, inline ones on the event loop) or :class:`UpstreamBackend` (a
service over the native protocol: a remote attachment function lends it the local state).
Engine work runs in worker threads — reads through a shared limiter, writes one at a time per
database — and never holds an LMDB transaction across an ``await``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from commitdb import types as T
from commitdb.blobs import BlobLayout
from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitHeader
from commitdb.errors import MissingBlobError, UnknownCommitError
from commitdb.ids import BlobId, CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.prototypes import FunctionPrototype, PoolDeclaration
from rpc.gateway.openrpc import DB_SCHEMAS, SchemaBuilder
from rpc.gateway.security import Permission, Principal
from rpc.json_values import apply_mutation, from_json, key_from_json, key_to_json, to_json
from rpc.jsonrpc import (
    FORBIDDEN,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    UNAUTHORIZED,
    Bound,
    JsonRpcError,
    MethodSpec,
    Param,
    Registry,
)

if TYPE_CHECKING:
    from rpc.gateway.app import Gateway

__all__ = ("CallContext", "ServedDatabase", "build_registry", "header_json", "result_json")


@dataclass
class ServedDatabase:
    """A commit database the gateway serves under a name."""

    name: str
    path: str
    db: CommitDatabase
    write_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    wake: anyio.Event = field(default_factory=anyio.Event)

    def describe(self) -> dict[str, Any]:
        """What ``db.list`` and ``/health`` show."""
        return {
            "name": self.name,
            "kind": "commit",
            "uuid": str(self.db.uuid()),
            "documentation": self.db.documentation(),
        }


@dataclass
class CallContext:
    """Who calls and over what: passed to every handler."""

    transport: str  # "http" or "ws"
    client: str
    principal: Principal | None
    session: Any = None  # the WsSession over WebSocket

    def require(self, level: str) -> None:
        """Raise -32003/-32004 unless the caller may do `level` (read, write, admin)."""
        if self.principal is None:
            raise JsonRpcError(UNAUTHORIZED, "unauthorized", {"reason": "no valid token"})
        needed = Permission.of_method(level)
        if self.principal.permission < needed:
            raise JsonRpcError(
                FORBIDDEN,
                "forbidden",
                {"required": needed.label, "granted": self.principal.permission.label},
            )


def header_json(h: CommitHeader) -> dict[str, Any]:
    """A commit header as JSON (links that do not exist are null)."""
    parent, target = h.parent_commit_id, h.target_commit_id
    return {
        "commit": h.commit_id.hex(),
        "parent": parent.hex() if parent.is_valid else None,
        "target": target.hex() if target.is_valid else None,
        "kind": h.kind.label,
        "label": h.label,
        "timestamp": h.timestamp,
        "author": h.author,
    }


def _invalid(expected: str, given: Any, where: str) -> JsonRpcError:
    from rpc.json_values import describe_json

    data = {"expected": expected, "given": describe_json(given), "where": where}
    return JsonRpcError(INVALID_PARAMS, f"invalid params: expected {expected} at {where}", data)


def _string(b: Bound, name: str, default: str) -> str:
    value = b.get(name, default)
    if not isinstance(value, str):
        raise _invalid("a string", value, b.where[name])
    return value


def _integer(b: Bound, name: str, default: int, low: int, high: int) -> int:
    value = b.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise _invalid(f"an integer in [{low}, {high}]", value, b.where[name])
    return value


def _commit_id(db: CommitDatabase, value: Any, where: str) -> CommitId:
    cid: CommitId = from_json(value, T.COMMIT_ID, None, where)
    if not db.commit_exists(cid):
        raise UnknownCommitError(f"unknown commit {cid.hex()} (at {where})")
    return cid


def _commit_ref(db: CommitDatabase, value: Any, where: str) -> CommitId | None:
    """null or "head": the last commit (None when the database is empty); else a commit."""
    if value is None or value == "head":
        return db.last_commit_id()
    return _commit_id(db, value, where)


def _blob_id(value: Any, where: str) -> BlobId:
    blob: BlobId = from_json(value, T.BLOB_ID, None, where)
    return blob


def _attachment(db: CommitDatabase, b: Bound) -> T.Attachment:
    name = b["attachment"]
    if not isinstance(name, str):
        raise _invalid("an attachment identifier (NS::Concept.name)", name, b.where["attachment"])
    return db.definitions().check_attachment(name)


# --------------------------------------------------------------------------------------------
# Database methods: (database, bound params) -> JSON, run in a worker thread


@dataclass(frozen=True)
class _DbMethod:
    name: str
    run: Callable[[CommitDatabase, Bound], Any]
    params: tuple[Param, ...]
    result: str
    summary: str
    level: str


_DB_METHODS: list[_DbMethod] = []
_DEFAULTS: dict[str, Any] = {"limit": 100, "since": 0, "offset": 0, "layout": "uchar-1"}


def _params(spec: str) -> tuple[Param, ...]:
    """``"name:schema other?:schema"`` (``?`` marks an optional parameter)."""
    out = [Param("database", DB_SCHEMAS["database"])]
    for item in spec.split():
        name, _, schema = item.partition(":")
        optional = name.endswith("?")
        name = name.rstrip("?")
        out.append(Param(name, DB_SCHEMAS[schema], not optional, _DEFAULTS.get(name)))
    return tuple(out)


_DbFn = Callable[[CommitDatabase, Bound], Any]


def _db(
    name: str, params: str, result: str, summary: str, level: str = "read"
) -> Callable[[_DbFn], _DbFn]:
    def register(fn: _DbFn) -> _DbFn:
        _DB_METHODS.append(_DbMethod(name, fn, _params(params), result, summary, level))
        return fn

    return register


@_db("heads", "", "hexes", "The head commits.")
def _db_heads(db: CommitDatabase, b: Bound) -> Any:
    return sorted(c.hex() for c in db.head_commit_ids())


@_db("last", "", "opt_hex", "The last commit, or null when the database is empty.")
def _db_last(db: CommitDatabase, b: Bound) -> Any:
    last = db.last_commit_id()
    return None if last is None else last.hex()


@_db("header", "commit:hex", "header", "A commit header.")
def _db_header(db: CommitDatabase, b: Bound) -> Any:
    return header_json(db.commit_header(_commit_id(db, b["commit"], b.where["commit"])))


@_db("log", "limit?:count since?:count", "log", "Commits in creation order from a sequence.")
def _db_log(db: CommitDatabase, b: Bound) -> Any:
    since = _integer(b, "since", 0, 0, 2**62)
    limit = _integer(b, "limit", 100, 0, 10_000)
    return [
        {"seq": seq, **header_json(db.commit_header(c))}
        for seq, c in db.commits_since(since, limit)
    ]


def _state_and_attachment(db: CommitDatabase, b: Bound) -> tuple[Any, T.Attachment]:
    state = db.state(_commit_ref(db, b.get("commit"), b.where["commit"]))
    return state, _attachment(db, b)


@_db("keys", "commit?:commit_ref attachment:attachment", "keys", "Keys of an attachment.")
def _db_keys(db: CommitDatabase, b: Bound) -> Any:
    state, att = _state_and_attachment(db, b)
    return [key_to_json(k) for k in sorted(state.keys(att))]


@_db(
    "has", "commit?:commit_ref attachment:attachment key:key", "bool", "Whether a document exists."
)
def _db_has(db: CommitDatabase, b: Bound) -> Any:
    state, att = _state_and_attachment(db, b)
    return state.has(att, key_from_json(b["key"], att.key_type, db.definitions(), b.where["key"]))


@_db("get", "commit?:commit_ref attachment:attachment key:key", "document", "A document or null.")
def _db_get(db: CommitDatabase, b: Bound) -> Any:
    state, att = _state_and_attachment(db, b)
    key = key_from_json(b["key"], att.key_type, db.definitions(), b.where["key"])
    return to_json(state.get(att, key), T.OptionalType(att.document_type))


@_db(
    "commit",
    "base?:commit_ref label?:label mutations:mutations",
    "hex",
    "Commit mutations.",
    "write",
)
def _db_commit(db: CommitDatabase, b: Bound) -> Any:
    defs = db.definitions()
    state = CommitMutableState(db.state(_commit_ref(db, b.get("base"), b.where["base"])))
    mutations = b["mutations"]
    if not isinstance(mutations, list):
        raise _invalid("an array of mutation objects", mutations, b.where["mutations"])
    for i, m in enumerate(mutations):
        apply_mutation(state, m, defs, f"{b.where['mutations']}[{i}]")
    return db.commit_mutations(_string(b, "label", "db.commit"), state).hex()


@_db("merge", "parent:hex target:hex label?:label", "hex", "Merge target into parent.", "write")
def _db_merge(db: CommitDatabase, b: Bound) -> Any:
    parent = _commit_id(db, b["parent"], b.where["parent"])
    target = _commit_id(db, b["target"], b.where["target"])
    return db.merge_commit(_string(b, "label", "db.merge"), parent, target).hex()


def _masking(db: CommitDatabase, b: Bound, enable: bool) -> Any:
    parent = _commit_id(db, b["parent"], b.where["parent"])
    commit = _commit_id(db, b["commit"], b.where["commit"])
    label = _string(b, "label", "db.enable" if enable else "db.disable")
    method = db.enable_commit if enable else db.disable_commit
    return method(label, parent, commit).hex()


@_db("enable", "parent:hex commit:hex label?:label", "hex", "Unmask a commit.", "write")
def _db_enable(db: CommitDatabase, b: Bound) -> Any:
    return _masking(db, b, True)


@_db("disable", "parent:hex commit:hex label?:label", "hex", "Mask a commit.", "write")
def _db_disable(db: CommitDatabase, b: Bound) -> Any:
    return _masking(db, b, False)


@_db("reduce_heads", "", "opt_hex", "Merge every head into the last commit.", "write")
def _db_reduce_heads(db: CommitDatabase, b: Bound) -> Any:
    merged = db.reduce_heads()
    return None if merged is None else merged.hex()


@_db("blob.put", "data:base64 layout?:layout", "hex", "Store a blob.", "write")
def _db_blob_put(db: CommitDatabase, b: Bound) -> Any:
    data = from_json(b["data"], T.BLOB, None, b.where["data"])
    text = _string(b, "layout", "uchar-1")
    try:
        layout = BlobLayout.parse(text)
    except ValueError as exc:
        raise _invalid(
            f"a blob layout ('uchar-1', 'float-3'): {exc}", text, b.where["layout"]
        ) from None
    return db.create_blob(data, layout).hex()


@_db("blob.get", "blob:hex offset?:count size?:count", "base64", "Read a blob or a range.")
def _db_blob_get(db: CommitDatabase, b: Bound) -> Any:
    blob = _blob_id(b["blob"], b.where["blob"])
    info = db.blob_info(blob)
    if info is None:
        raise MissingBlobError(f"no blob {blob.hex()}")
    offset = _integer(b, "offset", 0, 0, info.size)
    size = _integer(b, "size", info.size - offset, 0, info.size - offset)
    return base64.b64encode(db.read_blob(blob, size, offset)).decode("ascii")


@_db("blob.info", "blob:hex", "blob_info", "Layout and size of a blob, or null.")
def _db_blob_info(db: CommitDatabase, b: Bound) -> Any:
    info = db.blob_info(_blob_id(b["blob"], b.where["blob"]))
    if info is None:
        return None
    return {"blob": info.blob_id.hex(), "layout": str(info.layout), "size": info.size}


def _db_handler(gw: Gateway, fn: Any, write: bool) -> Any:
    async def handler(ctx: CallContext, b: Bound) -> Any:
        served = gw.database(b["database"], b.where["database"])
        limiter = served.write_limiter if write else gw.read_limiter
        result = await anyio.to_thread.run_sync(fn, served.db, b, limiter=limiter)
        if write:
            served.wake.set()  # announce the commit without waiting for the poll
        return result

    return handler


# --------------------------------------------------------------------------------------------
# Pools


def _convert_args(proto: FunctionPrototype, raw: Any, where: str, defs: Any) -> list[Any]:
    params = proto.parameters
    names = [p.name for p in params]
    if raw is None:
        raw = []
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - set(names))
        missing = [n for n in names if n not in raw]
        if unknown or missing:
            data: dict[str, Any] = {
                "expected": names,
                "unknown": unknown,
                "missing": missing,
                "where": where,
            }
            raise JsonRpcError(
                INVALID_PARAMS, f"invalid params: the arguments of {proto.name}", data
            )
        return [from_json(raw[p.name], p.type, defs, f"{where}.{p.name}") for p in params]
    if not isinstance(raw, list):
        raise _invalid("an array or an object of arguments", raw, where)
    if len(raw) != len(params):
        data = {"expected": names, "given": len(raw), "where": where}
        raise JsonRpcError(
            INVALID_PARAMS, f"invalid params: {proto.name} takes {len(params)} argument(s)", data
        )
    return [
        from_json(v, p.type, defs, f"{where}[{i}]")
        for i, (v, p) in enumerate(zip(raw, params, strict=True))
    ]


def _pool_method(gw: Gateway, pool: PoolDeclaration, proto: FunctionPrototype) -> MethodSpec:
    builder: SchemaBuilder = gw.schemas
    params = tuple(Param(p.name, builder.schema(p.type)) for p in proto.parameters)

    async def handler(ctx: CallContext, b: Bound) -> Any:
        defs = gw.backend.definitions
        args = [from_json(b[p.name], p.type, defs, b.where[p.name]) for p in proto.parameters]
        result = await gw.backend.call(pool.name, proto, args)
        return result_json(result, proto.return_type)

    return MethodSpec(
        f"pool.{pool.name}.{proto.name}",
        handler,
        params,
        proto.name,
        builder.schema(proto.return_type),
        _summary(proto.documentation, f"{pool.name}.{proto.name}"),
        proto.documentation or "",
    )


def _apool_method(gw: Gateway, pool: PoolDeclaration, proto: FunctionPrototype) -> MethodSpec:
    builder: SchemaBuilder = gw.schemas
    result = builder.schema(proto.return_type)
    args_schema = {
        "oneOf": [
            {"type": "array", "items": [builder.schema(p.type) for p in proto.parameters]},
            {
                "type": "object",
                "properties": {p.name: builder.schema(p.type) for p in proto.parameters},
            },
        ]
    }
    params = (
        Param("database", DB_SCHEMAS["database"], False, None, "HTTP mode: the database"),
        Param("base", DB_SCHEMAS["commit_ref"], False, None, "HTTP mode: the base commit"),
        Param("label", DB_SCHEMAS["label"], False, None, "HTTP mode: the commit label"),
        Param("args", args_schema, False, None, "the function's arguments"),
        Param("lend", {"type": "boolean"}, False, False, "WebSocket: lend the client's state"),
    )

    async def handler(ctx: CallContext, b: Bound) -> Any:
        lend = b.get("lend", False)
        if lend is not False and lend is not True:
            raise _invalid("a boolean", lend, b.where["lend"])
        defs = gw.backend.definitions
        args = _convert_args(proto, b.get("args"), b.where["args"], defs)
        if lend:
            if ctx.session is None:
                raise _invalid("lend only over WebSocket", lend, b.where["lend"])
            value = await ctx.session.lend_call(gw.backend, pool.name, proto, args)
            return result_json(value, proto.return_type)
        ctx.require("write")
        if b.get("database") is None:
            raise _invalid("the name of a served database", None, b.where["database"])
        served = gw.database(b["database"], b.where["database"])
        label = _string(b, "label", f"apool.{pool.name}.{proto.name}")
        return await _apool_commit(gw, served, b, pool, proto, args, label)

    return MethodSpec(
        f"apool.{pool.name}.{proto.name}",
        handler,
        params,
        proto.name,
        {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"result": result, "commit": DB_SCHEMAS["opt_hex"]},
                    "required": ["result", "commit"],
                },
                result,
            ]
        },
        _summary(proto.documentation, f"{pool.name}.{proto.name}"),
        proto.documentation or "",
        "read",
        notes={
            "x-permission": "write (read with lend: true)",
            "x-mutable": proto.mutable,
        },
    )


async def _apool_commit(
    gw: Gateway,
    served: ServedDatabase,
    b: Bound,
    pool: PoolDeclaration,
    proto: FunctionPrototype,
    args: list[Any],
    label: str,
) -> Any:
    db = served.db

    def open_state() -> CommitMutableState:
        return CommitMutableState(db.state(_commit_ref(db, b.get("base"), b.where["base"])))

    state = await anyio.to_thread.run_sync(open_state, limiter=gw.read_limiter)
    value = await gw.backend.call_attachment(pool.name, proto, state, args)

    def commit() -> str | None:
        if not state.mutations():
            return None
        return db.commit_mutations(label, state).hex()

    commit_id = await anyio.to_thread.run_sync(commit, limiter=served.write_limiter)
    if commit_id is not None:
        served.wake.set()
    return {"result": result_json(value, proto.return_type), "commit": commit_id}


def result_json(value: Any, t: T.Type) -> Any:
    """A function's result as JSON (-32603 when its type has no JSON form)."""
    try:
        return to_json(value, t)
    except (TypeError, ValueError, AttributeError) as exc:
        reason = f"the result cannot be serialized to JSON ({type(exc).__name__})"
        raise JsonRpcError(INTERNAL_ERROR, "internal error", {"reason": reason}) from None


def _summary(doc: str | None, fallback: str) -> str:
    return (doc or fallback).strip().splitlines()[0] if (doc or fallback).strip() else fallback


# --------------------------------------------------------------------------------------------
# Registry


def build_registry(gw: Gateway) -> Registry:
    """Every method the gateway offers (pools from the backend's declarations)."""
    reg = Registry()
    core = _core_methods(gw)
    for spec in core:
        reg.register(spec)
    for m in _DB_METHODS:
        handler = _db_handler(gw, m.run, m.level == "write")
        schema = DB_SCHEMAS[m.result]
        name = f"db.{m.name}"
        reg.register(
            MethodSpec(name, handler, m.params, m.name, schema, m.summary, permission=m.level)
        )
    backend = gw.backend
    for pool in backend.function_declarations():
        for proto in pool.functions.values():
            reg.register(_pool_method(gw, pool, proto))
    for pool in backend.attachment_declarations():
        for proto in pool.functions.values():
            reg.register(_apool_method(gw, pool, proto))
    return reg


def _core_methods(gw: Gateway) -> list[MethodSpec]:
    async def discover(ctx: CallContext, b: Bound) -> Any:
        return gw.openrpc()

    async def ping(ctx: CallContext, b: Bound) -> Any:
        return "pong"

    async def db_list(ctx: CallContext, b: Bound) -> Any:
        return [s.describe() for s in gw.databases.values()]

    async def stats(ctx: CallContext, b: Bound) -> Any:
        return gw.metrics.snapshot()

    async def auth(ctx: CallContext, b: Bound) -> Any:
        token = b["token"]
        principal = gw.tokens.lookup(token if isinstance(token, str) else None)
        if principal is None:
            raise JsonRpcError(UNAUTHORIZED, "unauthorized", {"reason": "invalid token"})
        ctx.session.principal = principal
        return {"permission": principal.permission.label}

    def subscription(kind: str, add: bool) -> Any:
        field_name = "database" if kind == "db" else "topic"

        async def handler(ctx: CallContext, b: Bound) -> Any:
            name = b[field_name]
            if kind == "db":
                name = gw.database(name, b.where[field_name]).name
            elif name not in gw.topics:
                raise _invalid(f"a topic among {', '.join(gw.topics)}", name, b.where["topic"])
            if add:
                ctx.session.subscribe(kind, name)
            else:
                ctx.session.unsubscribe(kind, name)
            return True

        return handler

    ws = frozenset({"ws"})
    db = (Param("database", DB_SCHEMAS["database"]),)
    topic = (Param("topic", {"type": "string", "enum": list(gw.topics)}),)
    ok: dict[str, Any] = {"const": True}
    token = (Param("token", {"type": "string"}),)
    perm = {"type": "object", "properties": {"permission": {"type": "string"}}}
    sub, unsub = "Notify new commits (db.commit).", "Stop db.commit notifications."
    on, off = "Notify the topic's events (events.<topic>).", "Stop events.<topic>."
    return [
        MethodSpec("rpc.discover", discover, (), "openrpc", {"type": "object"}, "OpenRPC."),
        MethodSpec("rpc.ping", ping, (), "pong", {"const": "pong"}, "A round trip."),
        MethodSpec("auth", auth, token, "auth", perm, "Authenticate.", transports=ws),
        MethodSpec("db.list", db_list, (), "databases", {"type": "array"}, "Served databases."),
        MethodSpec("db.subscribe", subscription("db", True), db, "ok", ok, sub, transports=ws),
        MethodSpec("db.unsubscribe", subscription("db", False), db, "ok", ok, unsub, transports=ws),
        MethodSpec(
            "events.subscribe", subscription("events", True), topic, "ok", ok, on, transports=ws
        ),
        MethodSpec(
            "events.unsubscribe", subscription("events", False), topic, "ok", ok, off, transports=ws
        ),
        MethodSpec(
            "admin.stats", stats, (), "stats", {"type": "object"}, "Counters.", permission="admin"
        ),
    ]
