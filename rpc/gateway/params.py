"""Reading a method's bound parameters: typed values, or -32602 errors saying what and where.

Shared by the database methods (:mod:`rpc.gateway.db_methods`), the pool methods
(:mod:`rpc.gateway.pool_methods`) and the core methods (:mod:`rpc.gateway.methods`). Commit
ids must name commits of the database (``UnknownCommitError`` otherwise); a commit
reference may also be null or ``"head"`` for the last commit.
"""

from __future__ import annotations

from typing import Any

from commitdb import types as T
from commitdb.commit_database import CommitDatabase
from commitdb.errors import UnknownCommitError
from commitdb.ids import BlobId, CommitId
from commitdb.state import CommitState
from rpc.json_codec import describe_json, from_json
from rpc.jsonrpc import INVALID_PARAMS, Bound, JsonRpcError

__all__ = (
    "attachment_param",
    "blob_param",
    "commit_param",
    "integer_param",
    "invalid_param",
    "state_param",
    "string_param",
)


def invalid_param(expected: str, given: Any, where: str) -> JsonRpcError:
    """The -32602 error of a parameter value `given` at `where` that is not `expected`."""
    data = {"expected": expected, "given": describe_json(given), "where": where}
    return JsonRpcError(INVALID_PARAMS, f"invalid params: expected {expected} at {where}", data)


def string_param(b: Bound, name: str, default: str) -> str:
    """A string parameter (`default` when absent or null)."""
    value = b.get(name, default)
    if not isinstance(value, str):
        raise invalid_param("a string", value, b.where[name])
    return value


def integer_param(b: Bound, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter in [`low`, `high`] (`default` when absent or null)."""
    value = b.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise invalid_param(f"an integer in [{low}, {high}]", value, b.where[name])
    return value


def _commit_id(db: CommitDatabase, value: Any, where: str) -> CommitId:
    cid: CommitId = from_json(value, T.COMMIT_ID, None, where)
    if not db.commit_exists(cid):
        raise UnknownCommitError(f"unknown commit {cid.hex()} (at {where})")
    return cid


def commit_param(db: CommitDatabase, b: Bound, name: str) -> CommitId:
    """A parameter naming a commit of `db` (hexadecimal)."""
    return _commit_id(db, b[name], b.where[name])


def state_param(db: CommitDatabase, b: Bound, name: str) -> CommitState:
    """The state of `db` at a commit reference parameter: null (or absent) or ``"head"``
    for the last commit (the empty state when the database is empty), else a commit."""
    value = b.get(name)
    if value is None or value == "head":
        return db.state(db.last_commit_id())
    return db.state(_commit_id(db, value, b.where[name]))


def blob_param(b: Bound, name: str) -> BlobId:
    """A parameter naming a blob (hexadecimal)."""
    blob: BlobId = from_json(b[name], T.BLOB_ID, None, b.where[name])
    return blob


def attachment_param(db: CommitDatabase, b: Bound) -> T.Attachment:
    """The ``attachment`` parameter: an attachment of `db` (``NS::Concept.name``)."""
    name = b["attachment"]
    if not isinstance(name, str):
        raise invalid_param(
            "an attachment identifier (NS::Concept.name)", name, b.where["attachment"]
        )
    return db.definitions().check_attachment(name)
