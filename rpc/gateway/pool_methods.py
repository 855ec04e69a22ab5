"""The pool methods: ``pool.<Pool>.<function>`` and ``apool.<Pool>.<function>``.

One method per function of the service's pools (from the backend's declarations), its
parameters and result typed by the function's prototype:

* ``pool.*`` — a function pool function; arguments are the method's parameters.
* ``apool.*`` — an attachment pool function, given its arguments in ``args``. Over HTTP it
  runs on the state of a served database at ``base`` and its mutations become a commit
  (``{"result", "commit"}``); over WebSocket with ``lend: true`` it runs on the state the
  client lends (:mod:`rpc.gateway.lending`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from commitdb import types as T
from commitdb.mutable_state import CommitMutableState
from commitdb.prototypes import FunctionPrototype, PoolDeclaration
from rpc.gateway.context import CallContext
from rpc.gateway.databases import ServedDatabase
from rpc.gateway.openrpc import DB_SCHEMAS, SchemaBuilder
from rpc.gateway.params import invalid_param, state_param, string_param
from rpc.json_codec import converter, from_json, to_json
from rpc.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, Bound, JsonRpcError, MethodSpec, Param

if TYPE_CHECKING:
    from rpc.gateway.app import Gateway

__all__ = ("pool_methods", "result_json")


def pool_methods(gw: Gateway) -> list[MethodSpec]:
    """The methods of the backend's function pools, then of its attachment pools."""
    backend = gw.backend
    return [
        *(
            _pool_method(gw, pool, proto)
            for pool in backend.function_declarations()
            for proto in pool.functions.values()
        ),
        *(
            _apool_method(gw, pool, proto)
            for pool in backend.attachment_declarations()
            for proto in pool.functions.values()
        ),
    ]


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
        raise invalid_param("an array or an object of arguments", raw, where)
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

    converters = [(p.name, converter(p.type)) for p in proto.parameters]
    returns = proto.return_type

    async def handler(ctx: CallContext, b: Bound) -> Any:
        defs = gw.backend.definitions
        values, where = b.values, b.where
        args = [convert(values[name], defs, where[name]) for name, convert in converters]
        result = await gw.backend.call(pool.name, proto, args)
        return result_json(result, returns)

    return MethodSpec(
        f"pool.{pool.name}.{proto.name}",
        handler,
        params,
        proto.name,
        builder.schema(proto.return_type),
        _summary(proto.documentation, f"{pool.name}.{proto.name}"),
        proto.documentation or "",
        inline=gw.backend.is_inline(pool.name, proto.name),
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
            raise invalid_param("a boolean", lend, b.where["lend"])
        defs = gw.backend.definitions
        args = _convert_args(proto, b.get("args"), b.where["args"], defs)
        if lend:
            if ctx.session is None:
                raise invalid_param("lend only over WebSocket", lend, b.where["lend"])
            value = await ctx.session.lend_call(gw.backend, pool.name, proto, args)
            return result_json(value, proto.return_type)
        ctx.require("write")
        if b.get("database") is None:
            raise invalid_param("the name of a served database", None, b.where["database"])
        served = gw.database(b["database"], b.where["database"])
        label = string_param(b, "label", f"apool.{pool.name}.{proto.name}")
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
        return CommitMutableState(state_param(db, b, "base"))

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
