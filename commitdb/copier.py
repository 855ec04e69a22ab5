"""Fast deep copies of typed values, compiled per type.

``copier(t)(value)`` returns a copy sharing nothing mutable with `value` (immutable leaves —
numbers, strings, bytes, uuids, keys, ids, enumeration cases, tuples of those — are shared).
It is several times faster than :func:`copy.deepcopy` because it knows the shape in advance.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from commitdb.types import (
    AnyType,
    BlobIdType,
    BlobType,
    BoolType,
    CommitIdType,
    DoubleType,
    EnumerationType,
    FloatType,
    IntType,
    KeyType,
    MapType,
    MatType,
    OptionalType,
    SetType,
    StringType,
    StructureType,
    TupleType,
    Type,
    UUIDType,
    VariantType,
    VectorType,
    VecType,
    VoidType,
    XArrayType,
)
from commitdb.values import XArray

__all__ = ("copier", "is_immutable_type")

Copier = Callable[[Any], Any]

_IMMUTABLE = (
    BoolType,
    IntType,
    FloatType,
    DoubleType,
    StringType,
    BlobType,
    UUIDType,
    BlobIdType,
    CommitIdType,
    KeyType,
    EnumerationType,
    VecType,
    MatType,
    VoidType,
)


def is_immutable_type(t: Type) -> bool:
    """True if values of `t` contain nothing mutable (they can be shared)."""
    if isinstance(t, _IMMUTABLE):
        return True
    if isinstance(t, OptionalType):
        return is_immutable_type(t.element)
    if isinstance(t, TupleType):
        return all(is_immutable_type(e) for e in t.elements)
    return False


def _same(v: Any) -> Any:
    return v


_copiers: dict[uuid.UUID, Copier] = {}


def copier(t: Type) -> Copier:
    """The compiled copy function of a type."""
    rid = t.runtime_id
    c = _copiers.get(rid)
    if c is None:
        c = _build(t)
        _copiers[rid] = c
    return c


def _build(t: Type) -> Copier:
    if is_immutable_type(t):
        return _same
    if isinstance(t, VectorType):
        if is_immutable_type(t.element):
            return list
        el = copier(t.element)
        return lambda v: [el(x) for x in v]
    if isinstance(t, SetType):
        if is_immutable_type(t.element):
            return set
        # elements such as structures are mutable objects: a copy must not share them
        ec = copier(t.element)
        return lambda v: {ec(x) for x in v}
    if isinstance(t, MapType):
        if not is_immutable_type(t.key):
            kc, vc = copier(t.key), copier(t.value)
            return lambda v: {kc(k): vc(x) for k, x in v.items()}
        if is_immutable_type(t.value):
            return dict
        vc = copier(t.value)
        return lambda v: {k: vc(x) for k, x in v.items()}
    if isinstance(t, OptionalType):
        el = copier(t.element)
        return lambda v: None if v is None else el(v)
    if isinstance(t, TupleType):
        els = [copier(e) for e in t.elements]
        return lambda v: tuple(c(x) for c, x in zip(els, v, strict=True))
    if isinstance(t, XArrayType):
        if is_immutable_type(t.element):
            return lambda v: XArray._from_parts(list(v._order), dict(v._values))
        el = copier(t.element)
        return lambda v: XArray._from_parts(
            list(v._order), {p: el(x) for p, x in v._values.items()}
        )
    if isinstance(t, StructureType):
        return _struct_copier(t)
    if isinstance(t, VariantType | AnyType):
        return copy.deepcopy
    return copy.deepcopy


def _struct_copier(t: StructureType) -> Copier:
    cls = t.value_class
    env: dict[str, Any] = {"new": object.__new__, "cls": cls}
    resolved: list[Copier] = []

    def resolve() -> Copier:
        lines = []
        for i, f in enumerate(t.fields):
            c = copier(f.type)
            if c is _same:
                lines.append(f"    o.{f.name} = v.{f.name}")
            else:
                env[f"c{i}"] = c
                lines.append(f"    o.{f.name} = c{i}(v.{f.name})")
        src = "def copy_struct(v):\n    o = new(cls)\n" + "\n".join(lines) + "\n    return o\n"
        exec(src, env)
        resolved.append(env["copy_struct"])
        _copiers[t.runtime_id] = resolved[0]
        return resolved[0]

    def first(v: Any) -> Any:
        return (resolved[0] if resolved else resolve())(v)

    return first
