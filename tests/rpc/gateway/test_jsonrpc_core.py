"""The sans-I/O JSON-RPC 2.0 core (``rpc.jsonrpc``) and the security helpers, in process."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from commitdb.errors import MissingBlobError, PathError, UnknownCommitError, ValidationError
from rpc.errors import RemoteError
from rpc.gateway.security import Permission, RateLimiter, TokenTable, bearer_token
from rpc.jsonrpc import (
    Bound,
    Call,
    Invalid,
    JsonRpcError,
    MethodSpec,
    Param,
    Registry,
    Reply,
    bind_params,
    encode_replies,
    error_from_exception,
    error_response,
    parse_message,
    result_response,
)


async def _noop(ctx: Any, bound: Bound) -> Any:
    return None


def one(data: bytes | str, **kwargs: Any) -> Call | Invalid | Reply:
    message = parse_message(data, **kwargs)
    assert not message.batch and len(message.items) == 1
    return message.items[0]


def invalid(data: bytes | str) -> Invalid:
    item = one(data)
    assert isinstance(item, Invalid)
    return item


# --------------------------------------------------------------------------------------------
# Parsing


def test_requests_and_notifications() -> None:
    call = one('{"jsonrpc": "2.0", "method": "m", "params": [1], "id": 3}')
    assert call == Call("m", [1], 3, notification=False)
    note = one('{"jsonrpc": "2.0", "method": "m", "params": {"a": 1}}')
    assert note == Call("m", {"a": 1}, None, notification=True)
    null_id = one('{"jsonrpc": "2.0", "method": "m", "id": null}')
    assert isinstance(null_id, Call) and not null_id.notification and null_id.params is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc3\x28", "invalid UTF-8"),
        ("{", "not valid JSON"),
        ('{"a": NaN}', "not valid JSON"),
        ('{"a": Infinity}', "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_parse_errors(data: bytes | str, reason: str) -> None:
    item = invalid(data)
    assert item.error.code == -32700 and item.error.data == {"reason": reason} and item.id is None


@pytest.mark.parametrize(
    ("obj", "answer_id", "needle"),
    [
        (1, None, "JSON object"),
        ({"jsonrpc": "2.0", "method": "m", "id": {}}, None, "not object"),
        ({"jsonrpc": "2.0", "method": "m", "id": [1]}, None, "not array"),
        ({"jsonrpc": "2.0", "method": "m", "id": True}, None, "not bool"),
        ('{"jsonrpc": "2.0", "method": "m", "id": 1e400}', None, "not float"),
        ({"jsonrpc": "2.1", "method": "m", "id": 4}, 4, '"jsonrpc"'),
        ({"method": "m", "id": 4}, 4, '"jsonrpc"'),
        ({"jsonrpc": "2.0", "method": None, "id": "x"}, "x", '"method"'),
        ({"jsonrpc": "2.0", "method": "m", "params": 1, "id": 4}, 4, '"params"'),
        ({"jsonrpc": "2.0", "method": "m", "id": 4, "x": 1}, 4, "'x'"),
        ({"jsonrpc": "2.0", "result": 1, "id": 4}, 4, "unknown member"),  # no replies on HTTP
    ],
)
def test_invalid_requests(obj: Any, answer_id: Any, needle: str) -> None:
    item = invalid(obj if isinstance(obj, str) else json.dumps(obj))
    assert item.error.code == -32600 and item.id == answer_id
    assert needle in item.error.data["reason"]


def test_batches() -> None:
    message = parse_message(
        '[{"jsonrpc": "2.0", "method": "a", "id": 1}, 5, {"jsonrpc": "2.0", "method": "b"}]'
    )
    assert message.batch and len(message.items) == 3
    first, second, third = message.items
    assert isinstance(first, Call) and isinstance(second, Invalid) and isinstance(third, Call)
    assert third.notification
    empty = parse_message("[]")
    assert not empty.batch and isinstance(empty.items[0], Invalid)
    assert empty.items[0].error.data == {"reason": "empty batch"}


def test_replies_are_read_only_when_accepted() -> None:
    ok = one('{"jsonrpc": "2.0", "result": [1], "id": "s:1"}', accept_replies=True)
    assert ok == Reply("s:1", [1])
    failed = one('{"jsonrpc": "2.0", "error": {"code": -1, "message": "no", "data": 2}, "id": "s:2"}', accept_replies=True)  # fmt: skip
    assert isinstance(failed, Reply) and failed.error is not None
    assert (failed.error.code, failed.error.message, failed.error.data) == (-1, "no", 2)
    both = one(
        '{"jsonrpc": "2.0", "result": 1, "error": {"code": 1}, "id": 1}', accept_replies=True
    )
    assert isinstance(both, Invalid)
    malformed = one('{"jsonrpc": "2.0", "error": "x", "id": 1}', accept_replies=True)
    assert isinstance(malformed, Invalid)


# --------------------------------------------------------------------------------------------
# Responses


def test_encode_replies() -> None:
    assert encode_replies([], batch=True) is None
    assert json.loads(encode_replies([result_response(1, "x")], batch=False) or "") == {
        "jsonrpc": "2.0",
        "result": "x",
        "id": 1,
    }
    text = encode_replies(
        [result_response(1, 1), error_response(None, JsonRpcError(-32600, "m"))], batch=True
    )
    assert json.loads(text or "") == [
        {"jsonrpc": "2.0", "result": 1, "id": 1},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "m"}, "id": None},
    ]


@pytest.mark.parametrize("bad", [object(), math.nan, {1j: 1}, b"bytes"])
def test_unserialisable_results_become_internal_errors_for_their_id(bad: Any) -> None:
    text = encode_replies([result_response("k", bad), result_response(2, "fine")], batch=True)
    first, second = json.loads(text or "")
    assert first["id"] == "k" and first["error"]["code"] == -32603
    assert second == {"jsonrpc": "2.0", "result": "fine", "id": 2}


# --------------------------------------------------------------------------------------------
# Errors


def test_error_mapping() -> None:
    v = error_from_exception(ValidationError("int64", "string 'x'", "params[0]"), debug=False)
    assert v.code == -32602 and v.data == {
        "expected": "int64",
        "given": "string 'x'",
        "where": "params[0]",
    }
    assert error_from_exception(UnknownCommitError("no"), debug=False).code == -32131
    assert error_from_exception(MissingBlobError("no"), debug=False).code == -32132
    path = error_from_exception(PathError("bad path"), debug=False)
    assert (path.code, path.message, path.data) == (-32110, "bad path", {"type": "PathError"})
    remote = error_from_exception(RemoteError(-32000, "upstream", {"type": "X"}), debug=False)
    assert (remote.code, remote.message) == (-32000, "upstream")
    assert error_from_exception(TimeoutError(), debug=False).code == -32001
    hidden = error_from_exception(RuntimeError("secret"), debug=False)
    assert hidden.to_dict() == {"code": -32603, "message": "internal error"}
    shown = error_from_exception(RuntimeError("secret"), debug=True)
    assert shown.code == -32603 and "RuntimeError: secret" in shown.message
    same = JsonRpcError(-32004, "forbidden")
    assert error_from_exception(same, debug=False) is same


# --------------------------------------------------------------------------------------------
# Registry and parameter binding

SPEC = MethodSpec(
    "m",
    _noop,
    (Param("a", {"type": "integer"}), Param("b", {}, required=False, default="dflt")),
)


def test_bind_by_position_and_by_name() -> None:
    bound = bind_params(SPEC, [1, 2])
    assert bound.values == {"a": 1, "b": 2} and bound.where == {"a": "params[0]", "b": "params[1]"}
    bound = bind_params(SPEC, [1])
    assert bound.values == {"a": 1, "b": "dflt"}
    bound = bind_params(SPEC, {"a": 1})
    assert bound.values == {"a": 1, "b": "dflt"} and bound.where["a"] == "params.a"
    assert bound.get("b") == "dflt" and bound["a"] == 1


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ([1, 2, 3], "given"),
        ({"a": 1, "c": 2}, "unknown"),
        ({"b": 1}, "missing"),
        (None, "missing"),
        ([], "missing"),
    ],
)
def test_bind_errors(params: Any, key: str) -> None:
    with pytest.raises(JsonRpcError) as caught:
        bind_params(SPEC, params)
    assert caught.value.code == -32602 and key in caught.value.data


def test_registry() -> None:
    registry = Registry([SPEC])
    assert registry.get("m") is SPEC and "m" in registry and len(registry) == 1
    assert registry.get("x") is None and list(registry) == [SPEC]
    with pytest.raises(ValueError):
        registry.register(SPEC)


# --------------------------------------------------------------------------------------------
# Security helpers


def test_tokens_and_permissions() -> None:
    table = TokenTable(["r:read", "w:read-write", "a:admin", "plain"])
    assert table.enabled
    assert table.lookup("r").permission is Permission.READ  # type: ignore[union-attr]
    assert table.lookup("w").name == "token#2"  # type: ignore[union-attr]
    assert table.lookup("plain").permission is Permission.WRITE  # type: ignore[union-attr]
    assert table.lookup("nope") is None and table.lookup(None) is None
    open_table = TokenTable()
    assert not open_table.enabled and open_table.lookup(None).permission is Permission.ADMIN  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown permission"):
        TokenTable(["s3cret:root"])
    assert Permission.of_method("write") is Permission.WRITE and Permission.ADMIN.label == "admin"
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert (
        bearer_token("Basic abc") is None
        and bearer_token(None) is None
        and bearer_token("Bearer") is None
    )


def test_rate_limiter_token_buckets() -> None:
    limiter = RateLimiter(2.0, 3)
    assert [limiter.acquire("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a", now=0.0) == pytest.approx(0.5)
    assert limiter.acquire("b", now=0.0) == 0.0  # another client, another bucket
    assert limiter.acquire("a", now=0.5) == 0.0  # refilled one call
    assert limiter.acquire("a", now=0.5) > 0
    assert RateLimiter(None).acquire("a") == 0.0
