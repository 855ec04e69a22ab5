"""The ``db.*`` methods: reads, commits, merges and blobs of the served databases.

Each method is a function ``(database, bound params) -> JSON`` registered with :func:`_db`
(name, parameters, result schema, summary, permission level) and run in a worker thread —
reads through the gateway's shared limiter, writes one at a time per database — so no LMDB
transaction is ever held across an ``await``. A write wakes the database's watcher, which
announces the new commit at once. :func:`db_methods` turns them into method specs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from commitdb import types as T
from commitdb.blobs import BlobLayout
from commitdb.commit_database import CommitDatabase
from commitdb.errors import MissingBlobError
from commitdb.mutable_state import CommitMutableState
from commitdb.state import CommitState
from rpc.gateway.context import CallContext
from rpc.gateway.databases import header_json
from rpc.gateway.openrpc import DB_SCHEMAS
from rpc.gateway.params import (
    attachment_param,
    blob_param,
    commit_param,
    integer_param,
    invalid_param,
    state_param,
    string_param,
)
from rpc.json_codec import from_json, key_from_json, key_to_json, to_json
from rpc.json_mutations import apply_mutation
from rpc.jsonrpc import Bound, Handler, MethodSpec, Param

if TYPE_CHECKING:
    from rpc.gateway.app import Gateway

__all__ = ("db_methods",)


_DbFn = Callable[[CommitDatabase, Bound], Any]
"""A database method: (database, bound params) -> JSON, run in a worker thread."""


@dataclass(frozen=True)
class _DbMethod:
    name: str
    run: _DbFn
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
    return header_json(db.commit_header(commit_param(db, b, "commit")))


@_db("log", "limit?:count since?:count", "log", "Commits in creation order from a sequence.")
def _db_log(db: CommitDatabase, b: Bound) -> Any:
    since = integer_param(b, "since", 0, 0, 2**62)
    limit = integer_param(b, "limit", 100, 0, 10_000)
    return [
        {"seq": seq, **header_json(db.commit_header(c))}
        for seq, c in db.commits_since(since, limit)
    ]


def _state_and_attachment(db: CommitDatabase, b: Bound) -> tuple[CommitState, T.Attachment]:
    state = state_param(db, b, "commit")
    return state, attachment_param(db, b)


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
    state = CommitMutableState(state_param(db, b, "base"))
    mutations = b["mutations"]
    if not isinstance(mutations, list):
        raise invalid_param("an array of mutation objects", mutations, b.where["mutations"])
    for i, m in enumerate(mutations):
        apply_mutation(state, m, defs, f"{b.where['mutations']}[{i}]")
    return db.commit_mutations(string_param(b, "label", "db.commit"), state).hex()


@_db("merge", "parent:hex target:hex label?:label", "hex", "Merge target into parent.", "write")
def _db_merge(db: CommitDatabase, b: Bound) -> Any:
    parent = commit_param(db, b, "parent")
    target = commit_param(db, b, "target")
    return db.merge_commit(string_param(b, "label", "db.merge"), parent, target).hex()


def _masking(db: CommitDatabase, b: Bound, enable: bool) -> Any:
    parent = commit_param(db, b, "parent")
    commit = commit_param(db, b, "commit")
    label = string_param(b, "label", "db.enable" if enable else "db.disable")
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
    text = string_param(b, "layout", "uchar-1")
    try:
        layout = BlobLayout.parse(text)
    except ValueError as exc:
        raise invalid_param(
            f"a blob layout ('uchar-1', 'float-3'): {exc}", text, b.where["layout"]
        ) from None
    return db.create_blob(data, layout).hex()


@_db("blob.get", "blob:hex offset?:count size?:count", "base64", "Read a blob or a range.")
def _db_blob_get(db: CommitDatabase, b: Bound) -> Any:
    blob = blob_param(b, "blob")
    info = db.blob_info(blob)
    if info is None:
        raise MissingBlobError(f"no blob {blob.hex()}")
    offset = integer_param(b, "offset", 0, 0, info.size)
    size = integer_param(b, "size", info.size - offset, 0, info.size - offset)
    return base64.b64encode(db.read_blob(blob, size, offset)).decode("ascii")


@_db("blob.info", "blob:hex", "blob_info", "Layout and size of a blob, or null.")
def _db_blob_info(db: CommitDatabase, b: Bound) -> Any:
    info = db.blob_info(blob_param(b, "blob"))
    if info is None:
        return None
    return {"blob": info.blob_id.hex(), "layout": str(info.layout), "size": info.size}


def _db_handler(gw: Gateway, fn: _DbFn, write: bool) -> Handler:
    async def handler(ctx: CallContext, b: Bound) -> Any:
        served = gw.database(b["database"], b.where["database"])
        limiter = served.write_limiter if write else gw.read_limiter
        result = await anyio.to_thread.run_sync(fn, served.db, b, limiter=limiter)
        if write:
            served.wake.set()  # announce the commit without waiting for the poll
        return result

    return handler


def db_methods(gw: Gateway) -> list[MethodSpec]:
    """The ``db.*`` methods (but ``db.list`` and the subscriptions) of the gateway `gw`."""
    return [
        MethodSpec(
            f"db.{m.name}",
            _db_handler(gw, m.run, m.level == "write"),
            m.params,
            m.name,
            DB_SCHEMAS[m.result],
            m.summary,
            permission=m.level,
        )
        for m in _DB_METHODS
    ]
