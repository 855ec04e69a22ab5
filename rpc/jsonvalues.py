"""commitdb values as JSON, for the command line (``commitdb get``).

One direction only (values → JSON-ready Python objects), readable rather than reversible:

==========================  ==================================================================
value                       JSON
==========================  ==================================================================
None (empty optional)       ``null``
bool, int, str              themselves
float                       a number; NaN and infinities as ``"NaN"``, ``"Infinity"``,
                            ``"-Infinity"`` (JSON has no such numbers)
BlobId, CommitId            64 hexadecimal digits
bytes (``blob``)            hexadecimal digits
uuid                        its canonical text form
Key                         ``{"concept": "NS::Concept", "id": "<uuid>"}``
enumeration case            the case name
structure                   an object, fields in declaration order
vector, tuple, vec, mat     an array
set                         an array, elements sorted (by value where they order)
xarray                      an array of the live elements, in order
map                         an object when every key is a string, else an array of
                            ``[key, value]`` pairs
any / variant (Typed)       ``{"type": "<type>", "value": ...}``
==========================  ==================================================================
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from commitdb.ids import BlobId, CommitId
from commitdb.values import EnumCase, Key, StructValue, Typed, XArray

__all__ = ("commitdb_to_json", "dumps")


def commitdb_to_json(value: Any) -> Any:
    """Convert a document (or any commitdb value) to JSON-ready Python objects.

    Args:
        value: A value as read from a state or a flat database.

    Returns:
        Nested dicts, lists, strings, numbers, booleans and None that :func:`json.dumps`
        accepts with ``allow_nan=False``.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, BlobId | CommitId):
        return value.hex()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Key):
        return {"concept": value.concept.qualified_name, "id": str(value.id)}
    if isinstance(value, EnumCase):
        return value.name
    if isinstance(value, StructValue):
        return {f: commitdb_to_json(getattr(value, f)) for f in value._fields}
    if isinstance(value, XArray):
        return [commitdb_to_json(v) for v in value]
    if isinstance(value, Typed):
        return {"type": str(value.type), "value": commitdb_to_json(value.value)}
    if isinstance(value, set | frozenset):
        return [commitdb_to_json(v) for v in _sorted(value)]
    if isinstance(value, list | tuple):
        return [commitdb_to_json(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: commitdb_to_json(v) for k, v in value.items()}
        return [[commitdb_to_json(k), commitdb_to_json(v)] for k, v in value.items()]
    return str(value)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """The JSON text of a commitdb value (see :func:`commitdb_to_json`).

    Args:
        value: A value as read from a state or a flat database.
        indent: Indentation of nested levels (None: one line).

    Returns:
        Strict JSON text (no NaN literals), non-ASCII characters kept as they are.
    """
    return json.dumps(commitdb_to_json(value), indent=indent, ensure_ascii=False, allow_nan=False)


def _sorted(values: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda v: json.dumps(commitdb_to_json(v), sort_keys=True))
