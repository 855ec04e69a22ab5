"""The gateway's methods: the registry, and the core methods (discovery, auth, subscriptions).

:func:`build_registry` registers every method of ``docs/jsonrpc-gateway.md`` §3: the core
methods defined here (``rpc.discover``, ``rpc.ping``, ``auth``, ``db.list``,
``db.subscribe``/``events.subscribe`` and their opposites, ``admin.stats``), the database
methods (:mod:`rpc.gateway.db_methods`) and one method per pool function
(:mod:`rpc.gateway.pool_methods`, from the backend's declarations). Handlers receive a
:class:`~rpc.gateway.context.CallContext` and the bound parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpc.gateway.context import CallContext
from rpc.gateway.databases import ServedDatabase, header_json
from rpc.gateway.db_methods import db_methods
from rpc.gateway.openrpc import DB_SCHEMAS
from rpc.gateway.params import invalid_param
from rpc.gateway.pool_methods import pool_methods, result_json
from rpc.gateway.security import unauthorized
from rpc.jsonrpc import Bound, Handler, MethodSpec, Param, Registry

if TYPE_CHECKING:
    from rpc.gateway.app import Gateway

__all__ = ("CallContext", "ServedDatabase", "build_registry", "header_json", "result_json")


def build_registry(gw: Gateway) -> Registry:
    """Every method the gateway offers (pools from the backend's declarations)."""
    return Registry([*_core_methods(gw), *db_methods(gw), *pool_methods(gw)])


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
            raise unauthorized("invalid token")
        ctx.session.principal = principal
        return {"permission": principal.permission.label}

    def subscription(kind: str, add: bool) -> Handler:
        field_name = "database" if kind == "db" else "topic"

        async def handler(ctx: CallContext, b: Bound) -> Any:
            name = b[field_name]
            if kind == "db":
                name = gw.database(name, b.where[field_name]).name
            elif name not in gw.topics:
                raise invalid_param(f"a topic among {', '.join(gw.topics)}", name, b.where["topic"])
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
