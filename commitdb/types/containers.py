"""Container types: ``vector``, ``set``, ``map``, ``optional``, ``xarray``, ``tuple``,
``vec`` and ``mat``, and which types can be set elements or map keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from commitdb.errors import DefinitionError
from commitdb.types.base import Type, _rid
from commitdb.types.storable import _require_storable
from commitdb.types.structures import StructureType
from commitdb.types.variants import VariantType
from commitdb.values import XArray

__all__ = (
    "MapType",
    "MatType",
    "OptionalType",
    "SetType",
    "TupleType",
    "VecType",
    "VectorType",
    "XArrayType",
    "is_hashable_type",
)


def _is_seq(value: object) -> bool:
    return isinstance(value, list | tuple)


class _ElementType(Type):
    """Base of the containers of one storable element type, spelled ``kind<element>``."""

    __slots__ = ("element",)

    def __init__(self, element: Type) -> None:
        super().__init__()
        _require_storable(element, f"{self.kind} element")
        self.element = element

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes)

    def __str__(self) -> str:
        return f"{self.kind}<{self.element}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)


class VectorType(_ElementType):
    """``vector<T>``: a list."""

    __slots__ = ()
    kind = "vector"

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, list | tuple):
            raise self.fail(value, where)
        chk = self.element.check
        return [chk(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def default(self) -> Any:
        return []


class SetType(_ElementType):
    """``set<T>``: a Python set (elements must be hashable values)."""

    __slots__ = ()
    kind = "set"

    def __init__(self, element: Type) -> None:
        super().__init__(element)
        if not is_hashable_type(element):
            raise DefinitionError(f"set element type {element} is not usable as a set element")

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, set | frozenset | list | tuple):
            raise self.fail(value, where)
        chk = self.element.check
        return {chk(v, f"{where}.element") for v in value}

    def default(self) -> Any:
        return set()


class MapType(Type):
    """``map<K, V>``: a dict (keys must be hashable values)."""

    __slots__ = ("key", "value")
    kind = "map"

    def __init__(self, key: Type, value: Type) -> None:
        super().__init__()
        _require_storable(key, "map key")
        _require_storable(value, "map value")
        if not is_hashable_type(key):
            raise DefinitionError(f"map key type {key} is not usable as a map key")
        self.key = key
        self.value = value

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.key.runtime_id.bytes, self.value.runtime_id.bytes)

    def __str__(self) -> str:
        return f"map<{self.key}, {self.value}>"

    def children(self) -> tuple[Type, ...]:
        return (self.key, self.value)

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, Mapping):
            raise self.fail(value, where)
        kc = self.key.check
        vc = self.value.check
        out = {}
        for k, v in value.items():
            ck = kc(k, f"{where}.key")
            out[ck] = vc(v, f"{where}[{ck!r}]")
        return out

    def default(self) -> Any:
        return {}


class OptionalType(_ElementType):
    """``optional<T>``: None (nil) or a T."""

    __slots__ = ()
    kind = "optional"

    def check(self, value: object, where: str = "") -> Any:
        if value is None:
            return None
        return self.element.check(value, where)

    def default(self) -> Any:
        return None


class XArrayType(_ElementType):
    """``xarray<T>``: an :class:`XArray` (a plain list becomes one with fresh positions)."""

    __slots__ = ()
    kind = "xarray"

    def check(self, value: object, where: str = "") -> Any:
        chk = self.element.check
        if isinstance(value, XArray):
            values = {
                p: chk(v, f"{where}[{{{uuid.UUID(bytes=p)}}}]") for p, v in value._values.items()
            }
            return XArray._from_parts(list(value._order), values)
        if isinstance(value, list | tuple):
            return XArray(chk(v, f"{where}[{i}]") for i, v in enumerate(value))
        raise self.fail(value, where)

    def default(self) -> Any:
        return XArray()


class TupleType(Type):
    """``tuple<T0, T1, ...>``: a Python tuple of fixed length."""

    __slots__ = ("elements",)
    kind = "tuple"

    def __init__(self, elements: Iterable[Type]) -> None:
        super().__init__()
        self.elements = tuple(elements)
        if not self.elements:
            raise DefinitionError("tuple needs at least one element type")
        for e in self.elements:
            _require_storable(e, "tuple element")

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, *(e.runtime_id.bytes for e in self.elements))

    def __str__(self) -> str:
        return f"tuple<{', '.join(map(str, self.elements))}>"

    def children(self) -> tuple[Type, ...]:
        return self.elements

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(self.elements):
            raise self.fail(value, where, f"{self} (a sequence of {len(self.elements)})")
        return tuple(
            t.check(v, f"{where}[{i}]")
            for i, (t, v) in enumerate(zip(self.elements, value, strict=True))
        )

    def default(self) -> Any:
        return tuple(e.default() for e in self.elements)


_NUMERIC_KINDS = ("int", "float", "double")


def _require_numeric(element: Type, what: str) -> None:
    if element.kind not in _NUMERIC_KINDS:
        raise DefinitionError(f"{what} element must be numeric, not {element}")


class VecType(Type):
    """``vec<T, N>``: a tuple of N numbers."""

    __slots__ = ("element", "size")
    kind = "vec"

    def __init__(self, element: Type, size: int) -> None:
        super().__init__()
        _require_numeric(element, "vec")
        if size < 1:
            raise DefinitionError(f"vec size must be at least 1, not {size}")
        self.element = element
        self.size = size

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes, self.size)

    def __str__(self) -> str:
        return f"vec<{self.element}, {self.size}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, list | tuple) or len(value) != self.size:
            raise self.fail(value, where, f"{self} (a sequence of {self.size} numbers)")
        chk = self.element.check
        return tuple(chk(v, f"{where}[{i}]") for i, v in enumerate(value))

    def default(self) -> Any:
        return (self.element.default(),) * self.size


class MatType(Type):
    """``mat<T, C, R>``: C columns of R numbers, a flat column-major tuple of C*R numbers."""

    __slots__ = ("columns", "element", "rows")
    kind = "mat"

    def __init__(self, element: Type, columns: int, rows: int) -> None:
        super().__init__()
        _require_numeric(element, "mat")
        if columns < 1 or rows < 1:
            raise DefinitionError(f"mat dimensions must be at least 1, not {columns}x{rows}")
        self.element = element
        self.columns = columns
        self.rows = rows

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes, self.columns, self.rows)

    def __str__(self) -> str:
        return f"mat<{self.element}, {self.columns}, {self.rows}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        n = self.columns * self.rows
        if isinstance(value, list | tuple) and value and all(_is_seq(c) for c in value):
            if len(value) != self.columns or any(len(c) != self.rows for c in value):
                raise self.fail(
                    value, where, f"{self} ({self.columns} columns of {self.rows} numbers)"
                )
            value = [x for col in value for x in col]
        if not isinstance(value, list | tuple) or len(value) != n:
            raise self.fail(value, where, f"{self} ({n} numbers, column-major)")
        chk = self.element.check
        return tuple(chk(v, f"{where}[{i}]") for i, v in enumerate(value))

    def default(self) -> Any:
        return (self.element.default(),) * (self.columns * self.rows)


def is_hashable_type(t: Type) -> bool:
    """True if values of `t` can be set elements or map keys."""
    if isinstance(t, MapType | XArrayType):
        return False
    if isinstance(t, StructureType):
        return all(is_hashable_type(f.type) for f in t.fields)
    if isinstance(t, VectorType | SetType | OptionalType):
        return is_hashable_type(t.element) and not isinstance(t, VectorType | SetType)
    if isinstance(t, TupleType):
        return all(is_hashable_type(e) for e in t.elements)
    if isinstance(t, VariantType):
        return all(is_hashable_type(a) for a in t.alternatives)
    return True
