"""Typed values as plain JSON, both directions.

The JSON form of every DSM type (``docs/jsonrpc-gateway.md`` §1)::

    bool, int8…uint64, string   boolean, number, string
    float, double               number; "NaN", "Infinity", "-Infinity" when not finite
    uuid                        "8-4-4-4-12"
    blob                        base64 string
    blob_id, commit_id          64 hexadecimal digits
    vector, tuple, vec, mat     array (mat: column-major, flat)
    set                         array in canonical order
    map                         object when the key type is string, else [[key, value], ...]
    optional                    null or the value
    enum                        the case name
    struct                      object of fields (missing fields take defaults; unknown refused)
    key                         {"concept": "NS::Concept", "id": "uuid"}
    xarray                      [{"position": "uuid", "value": v}, ...]; input: also plain array
    variant                     {"type": "<DSM type>", "value": v}; input: also a plain value
    any                         null or {"type": "<DSM type>", "value": v}; input: also a plain
                                boolean, number or string

:func:`to_json` writes a (normalized) value; :func:`from_json` validates while it converts: a
value that does not fit raises :class:`~commitdb.errors.ValidationError` whose ``where``
locates it (``params.args[1].x``). ``{"type", "value"}`` tags name their type in DSM spelling
(:func:`rpc.json_types.parse_type`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

from commitdb import types as T
from commitdb.codec import pack, to_wire
from commitdb.definitions import Definitions
from commitdb.errors import ValidationError
from commitdb.values import END, EnumCase, Key, Typed, XArray
from rpc.json_types import parse_type

__all__ = (
    "Converter",
    "converter",
    "describe_json",
    "from_json",
    "key_from_json",
    "key_to_json",
    "mismatch",
    "to_json",
)

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def describe_json(data: Any) -> str:
    """A short description of a JSON value for error messages (``string "abc"``)."""
    if data is None:
        return "null"
    if data is True or data is False:
        return f"boolean {'true' if data else 'false'}"
    if isinstance(data, int | float):
        return f"number {data!r}"
    if isinstance(data, str):
        text = data if len(data) <= 40 else data[:37] + "..."
        return f"string {json.dumps(text)}"
    if isinstance(data, list):
        return f"array of {len(data)} item{'' if len(data) == 1 else 's'}"
    if isinstance(data, dict):
        keys = ", ".join(sorted(map(str, data))[:6])
        return f"object {{{keys}}}" if keys else "empty object"
    return type(data).__name__


def mismatch(expected: str, data: Any, where: str) -> ValidationError:
    """The error of JSON `data` that is not the `expected` value at `where`."""
    return ValidationError(expected, describe_json(data), where)


# --------------------------------------------------------------------------------------------
# Values -> JSON


def to_json(value: Any, t: T.Type) -> Any:
    """The JSON form of a (normalized) value of type `t`.

    Raises:
        TypeError: `t` has no JSON form (a type foreign to the DSM type system).
    """
    if isinstance(t, T.BoolType | T.IntType | T.StringType | T.VoidType):
        return value
    if isinstance(t, T.FloatType | T.DoubleType):
        if math.isfinite(value):
            return float(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(t, T.UUIDType):
        return str(value)
    if isinstance(t, T.BlobType):
        return base64.b64encode(value).decode("ascii")
    if isinstance(t, T.BlobIdType | T.CommitIdType):
        return bytes(value).hex()
    if isinstance(t, T.VectorType | T.VecType | T.MatType):
        return [to_json(v, t.element) for v in value]
    if isinstance(t, T.TupleType):
        return [to_json(v, e) for v, e in zip(value, t.elements, strict=True)]
    if isinstance(t, T.SetType):
        return [to_json(v, t.element) for v in _canonical(value, t.element)]
    if isinstance(t, T.MapType):
        keys = _canonical(value.keys(), t.key)
        if isinstance(t.key, T.StringType):
            return {k: to_json(value[k], t.value) for k in keys}
        return [[to_json(k, t.key), to_json(value[k], t.value)] for k in keys]
    if isinstance(t, T.OptionalType):
        return None if value is None else to_json(value, t.element)
    if isinstance(t, T.EnumerationType):
        return value.name if isinstance(value, EnumCase) else t.check(value).name
    if isinstance(t, T.StructureType):
        return {f.name: to_json(getattr(value, f.name), f.type) for f in t.fields}
    if isinstance(t, T.KeyType):
        return key_to_json(value)
    if isinstance(t, T.XArrayType):
        return [{"position": str(p), "value": to_json(v, t.element)} for p, v in value.items()]
    if isinstance(t, T.VariantType):
        index, inner = t.select(value)
        alt = t.alternatives[index]
        return {"type": str(alt), "value": to_json(inner, alt)}
    if isinstance(t, T.AnyType):
        if value is None:
            return None
        inner_type = value.type if isinstance(value, Typed) else T.deduce_type(value)
        inner = value.value if isinstance(value, Typed) else value
        if inner_type is None:
            raise TypeError(f"no type can be deduced for {type(value).__name__} inside any")
        return {"type": str(inner_type), "value": to_json(inner, inner_type)}
    raise TypeError(f"the type {t} has no JSON form")


def key_to_json(key: Key) -> dict[str, str]:
    """``{"concept": "NS::Concept", "id": "uuid"}``."""
    return {"concept": key.concept.qualified_name, "id": str(key.id)}


def _canonical(values: Any, t: T.Type) -> list[Any]:
    """Set elements / map keys in the canonical (codec) order."""
    items = list(values)
    simple = isinstance(t, T.IntType | T.StringType | T.BoolType | T.EnumerationType)
    if isinstance(t, T.FloatType | T.DoubleType):
        return sorted(items, key=lambda v: (not math.isnan(v), 0.0 if math.isnan(v) else v))
    if simple or isinstance(t, T.UUIDType | T.BlobType | T.BlobIdType | T.CommitIdType | T.KeyType):
        return sorted(items, key=lambda v: to_wire(v, t))
    return sorted(items, key=lambda v: pack(to_wire(v, t)))


# --------------------------------------------------------------------------------------------
# JSON -> values


Converter = Callable[[Any, "Definitions | None", str], Any]
"""``convert(data, definitions, where)``: :func:`from_json` for one type (see :func:`converter`)."""


def converter(t: T.Type) -> Converter:
    """:func:`from_json` for values of type `t`, with the usual JSON forms of integers,
    strings and booleans taken without walking the type tests (the same result and errors).

    Args:
        t: The expected type.

    Returns:
        ``convert(data, definitions, where)``.
    """
    if isinstance(t, T.IntType | T.StringType):
        check = t.check
        exact = int if isinstance(t, T.IntType) else str

        def convert_simple(data: Any, definitions: Definitions | None, where: str) -> Any:
            if type(data) is exact:
                return check(data, where)
            return from_json(data, t, definitions, where)

        return convert_simple
    if isinstance(t, T.BoolType):

        def convert_bool(data: Any, definitions: Definitions | None, where: str) -> Any:
            if data is True or data is False:
                return data
            return from_json(data, t, definitions, where)

        return convert_bool

    def convert(data: Any, definitions: Definitions | None, where: str) -> Any:
        return from_json(data, t, definitions, where)

    return convert


def from_json(data: Any, t: T.Type, definitions: Definitions | None, where: str) -> Any:
    """Convert (and validate) the JSON form of a value of type `t`.

    Args:
        data: The decoded JSON.
        t: The expected type.
        definitions: Where the named types of keys and ``any``/``variant`` tags are found.
        where: Where the value sits (``params.args[1]``), for error messages.

    Returns:
        The normalized value.

    Raises:
        ValidationError: The value does not fit; ``where`` locates the offending part.
    """
    if isinstance(t, T.BoolType):
        if data is True or data is False:
            return data
        raise mismatch("boolean", data, where)
    if isinstance(t, T.IntType):
        if type(data) is int:
            return t.check(data, where)
        raise mismatch(f"{t} (an integer)", data, where)
    if isinstance(t, T.FloatType | T.DoubleType):
        if isinstance(data, str) and data in _NON_FINITE:
            return t.check(_NON_FINITE[data], where)
        if isinstance(data, int | float) and not isinstance(data, bool):
            return t.check(data, where)
        raise mismatch(f'{t} (a number, "NaN", "Infinity" or "-Infinity")', data, where)
    if isinstance(t, T.StringType | T.EnumerationType):
        if isinstance(data, str):
            return t.check(data, where)
        raise mismatch(
            str(t) if isinstance(t, T.StringType) else f"a case name of {t}", data, where
        )
    if isinstance(t, T.UUIDType | T.BlobIdType | T.CommitIdType):
        if isinstance(data, str) and (isinstance(t, T.UUIDType) or len(data) == 64):
            return t.check(data, where)
        what = "uuid string" if isinstance(t, T.UUIDType) else "64 hexadecimal digits"
        raise mismatch(f"{t} ({what})", data, where)
    if isinstance(t, T.BlobType):
        if isinstance(data, str):
            try:
                return base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                pass
        raise mismatch("blob (a base64 string)", data, where)
    if isinstance(t, T.VoidType):
        if data is None:
            return None
        raise mismatch("null (void)", data, where)
    if isinstance(t, T.OptionalType):
        return None if data is None else from_json(data, t.element, definitions, where)
    converter = _CONTAINERS.get(type(t))
    if converter is not None:
        return converter(data, t, definitions, where)
    raise mismatch(f"{t} (a type without a JSON form)", data, where)


def _array(data: Any, t: T.Type, where: str, size: int | None = None) -> list[Any]:
    if not isinstance(data, list):
        raise mismatch(f"{t} (an array)", data, where)
    if size is not None and len(data) != size:
        raise mismatch(f"{t} (an array of {size})", data, where)
    return data


def _vector(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    items = _array(data, t, where)
    return [from_json(v, t.element, defs, f"{where}[{i}]") for i, v in enumerate(items)]


def _set(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    items = _array(data, t, where)
    return {from_json(v, t.element, defs, f"{where}[{i}]") for i, v in enumerate(items)}


def _tuple(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    items = _array(data, t, where, len(t.elements))
    return tuple(
        from_json(v, e, defs, f"{where}[{i}]")
        for i, (v, e) in enumerate(zip(items, t.elements, strict=True))
    )


def _vec(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    size = t.size if isinstance(t, T.VecType) else t.columns * t.rows
    if isinstance(t, T.MatType) and isinstance(data, list) and data:
        if all(isinstance(c, list) for c in data):  # columns of rows
            return t.check([from_json(v, t.element, defs, where) for c in data for v in c], where)
    items = _array(data, t, where, size)
    return tuple(from_json(v, t.element, defs, f"{where}[{i}]") for i, v in enumerate(items))


def _map(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    if isinstance(data, dict) and isinstance(t.key, T.StringType):
        return {
            t.key.check(k, f"{where}.key"): from_json(v, t.value, defs, f"{where}[{json.dumps(k)}]")
            for k, v in data.items()
        }
    expected = f"{t} (an object)" if isinstance(t.key, T.StringType) else f"{t} ([[key, value]...])"
    if not isinstance(data, list):
        raise mismatch(expected, data, where)
    out: dict[Any, Any] = {}
    for i, pair in enumerate(data):
        if not isinstance(pair, list) or len(pair) != 2:
            raise mismatch("a [key, value] pair", pair, f"{where}[{i}]")
        k = from_json(pair[0], t.key, defs, f"{where}[{i}][0]")
        out[k] = from_json(pair[1], t.value, defs, f"{where}[{i}][1]")
    return out


def _struct(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    if not isinstance(data, dict):
        raise mismatch(f"{t} (an object of its fields)", data, where)
    for name in data:
        if not t.has_field(name):
            fields = ", ".join(f.name for f in t.fields)
            raise ValidationError(f"a field of {t} ({fields})", f"unknown field {name!r}", where)
    values = {
        f.name: from_json(data[f.name], f.type, defs, f"{where}.{f.name}")
        for f in t.fields
        if f.name in data
    }
    return t.from_dict(values, where)


def key_from_json(data: Any, t: T.KeyType, defs: Definitions | None, where: str) -> Key:
    """A key from ``{"concept": "NS::Concept", "id": "uuid"}`` (``concept`` may be left
    out when the key type names a concrete concept)."""
    if not isinstance(data, dict) or not {"id"} <= set(data) <= {"id", "concept"}:
        raise mismatch(f'{t} ({{"concept": "NS::Concept", "id": "uuid"}})', data, where)
    name = data.get("concept")
    concept: object = t.target if name is None else None
    if isinstance(name, str) and defs is not None:
        concept = defs.query_type(name)
    if not isinstance(concept, T.ConceptType):
        raise mismatch("the qualified name of a known concept", name, f"{where}.concept")
    ident = data["id"]
    try:
        instance = uuid.UUID(ident) if isinstance(ident, str) else None
    except ValueError:
        instance = None
    if instance is None:
        raise mismatch("uuid string", ident, f"{where}.id")
    return t.check(Key(concept, instance), where)  # type: ignore[no-any-return]


def _key(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    return key_from_json(data, t, defs, where)


def _xarray(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    items = _array(data, t, where)
    positional = bool(items) and all(
        isinstance(i, dict) and set(i) == {"position", "value"} for i in items
    )
    if not positional:
        return XArray(from_json(v, t.element, defs, f"{where}[{i}]") for i, v in enumerate(items))
    out = XArray()
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        position = from_json(item["position"], T.UUID, defs, f"{at}.position")
        value = from_json(item["value"], t.element, defs, f"{at}.value")
        if position == END or out.has_position(position):
            raise mismatch("a distinct position (not the nil uuid)", item["position"], at)
        out.insert(END, value, position)
    return out


def _tagged(data: Any, defs: Definitions | None, where: str) -> tuple[T.Type, Any] | None:
    """(type, JSON value) of a ``{"type", "value"}`` object, or None for another value."""
    if not isinstance(data, dict) or set(data) != {"type", "value"}:
        return None
    name = data["type"]
    if not isinstance(name, str):
        raise mismatch("a DSM type name", name, f"{where}.type")
    try:
        return parse_type(name, defs), data["value"]
    except ValueError as exc:
        raise ValidationError("a DSM type name", str(exc), f"{where}.type") from None


def _variant(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    tagged = _tagged(data, defs, where)
    if tagged is not None:
        alt, raw = tagged
        if alt not in t.alternatives:
            raise ValidationError(f"an alternative of {t}", str(alt), f"{where}.type")
        return t.check(Typed(alt, from_json(raw, alt, defs, f"{where}.value")), where)
    for alt in _preferred(data, t.alternatives):
        try:
            inner = from_json(data, alt, defs, where)
        except ValidationError:
            continue
        return t.check(Typed(alt, inner), where)
    raise mismatch(f'{t} (a plain alternative or {{"type", "value"}})', data, where)


def _preferred(data: Any, alternatives: tuple[T.Type, ...]) -> list[T.Type]:
    def rank(alt: T.Type) -> int:
        if data is True or data is False:
            return 0 if isinstance(alt, T.BoolType) else 1
        if type(data) is int:
            return 0 if alt == T.INT64 else 1 if isinstance(alt, T.IntType) else 2
        if isinstance(data, float):
            return 0 if isinstance(alt, T.DoubleType) else 1 if isinstance(alt, T.FloatType) else 2
        if isinstance(data, str):
            return 0 if isinstance(alt, T.StringType) else 1
        return 0

    return sorted(alternatives, key=rank)


def _any(data: Any, t: Any, defs: Definitions | None, where: str) -> Any:
    if data is None:
        return None
    tagged = _tagged(data, defs, where)
    if tagged is not None:
        inner_type, raw = tagged
        return t.check(Typed(inner_type, from_json(raw, inner_type, defs, f"{where}.value")))
    if data is True or data is False or isinstance(data, int | float | str):
        return t.check(data, where)
    raise mismatch('any (null, a boolean, number or string, or {"type", "value"})', data, where)


_CONTAINERS: dict[type, Any] = {
    T.VectorType: _vector,
    T.SetType: _set,
    T.TupleType: _tuple,
    T.VecType: _vec,
    T.MatType: _vec,
    T.MapType: _map,
    T.StructureType: _struct,
    T.KeyType: _key,
    T.XArrayType: _xarray,
    T.VariantType: _variant,
    T.AnyType: _any,
}
