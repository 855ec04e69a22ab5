"""``rpc.json_codec.converter``: the same values and the same errors as ``from_json``."""

from __future__ import annotations

from typing import Any

import pytest

from commitdb import types as T
from commitdb.errors import ValidationError
from rpc.json_codec import converter, from_json

CASES: list[tuple[T.Type, list[Any]]] = [
    (T.INT32, [0, -5, 2**31 - 1, 2**31, "7", 1.5, True, None, [1]]),
    (T.UINT8, [0, 255, 256, -1, "x"]),
    (T.STRING, ["", "abc", 3, None, ["a"], True]),
    (T.BOOL, [True, False, 0, 1, "true", None]),
    (T.DOUBLE, [1.5, 2, "NaN", "Infinity", "1", True, None]),
    (T.OptionalType(T.INT64), [None, 3, "3"]),
    (T.VectorType(T.INT16), [[1, 2], [1, "2"], "12", None]),
]


def _outcome(fn: Any, data: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(data)
    except ValidationError as exc:
        return "error", (str(exc), exc.expected, exc.given, exc.where)


@pytest.mark.parametrize(
    ("t", "values"), CASES, ids=lambda v: str(v) if isinstance(v, T.Type) else ""
)
def test_converter_agrees_with_from_json(t: T.Type, values: list[Any]) -> None:
    convert = converter(t)
    for data in values:
        expected = _outcome(lambda d: from_json(d, t, None, "params[0]"), data)
        got = _outcome(lambda d: convert(d, None, "params[0]"), data)
        assert got == expected, data
        if got[0] == "ok":
            assert type(got[1]) is type(expected[1])
