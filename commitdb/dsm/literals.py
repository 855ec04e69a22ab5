"""Default literals of structure fields, converted through the field types.

A literal is checked against the type it is written for, recursively (a brace list for a
container or a structure, ``.case`` or ``Enum.case`` for an enumeration ...); every error is a
:class:`~commitdb.errors.DSMError` located at the offending literal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from commitdb.dsm.ast import (
    BoolLit,
    EnumCaseLit,
    FloatLit,
    IntLit,
    ListLit,
    LiteralExpr,
    NameRef,
    StringLit,
)
from commitdb.dsm.diagnostics import _err, _suggest
from commitdb.errors import DSMError, ValidationError
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
    NamedType,
    Namespace,
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
    XArrayType,
)
from commitdb.values import Typed

__all__ = ()

#: Resolve a name to a declared type of one kind: (name, current namespace, kind, purpose).
_NamedLookup = Callable[[NameRef, Namespace | None, str, str], NamedType]


def _describe_literal(lit: LiteralExpr) -> str:
    if isinstance(lit, IntLit):
        return f"integer {lit.text}"
    if isinstance(lit, FloatLit):
        return f"number {lit.text}"
    if isinstance(lit, BoolLit):
        return "true" if lit.value else "false"
    if isinstance(lit, StringLit):
        text = lit.value if len(lit.value) <= 30 else lit.value[:27] + "..."
        return f'string "{text}"'
    if isinstance(lit, EnumCaseLit):
        prefix = "" if lit.enum is None else lit.enum.qualified
        return f"enum case '{prefix}.{lit.name}'"
    n = len(lit.items)
    return f"brace list of {n} value{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class _FieldCtx:
    """Where a default literal is being converted (for messages and enum lookup)."""

    field: str
    namespace: Namespace


class _LiteralConverter:
    """Converts default literals; `named` resolves the enumeration of ``Enum.case``."""

    def __init__(self, named: _NamedLookup) -> None:
        self._named = named

    def _bad(self, lit: LiteralExpr, ctx: _FieldCtx, expected: str) -> DSMError:
        return _err(
            lit.pos,
            f"invalid default for field '{ctx.field}': expected {expected}, "
            f"given {_describe_literal(lit)}",
        )

    def _leaf(self, t: Type, plain: object, lit: LiteralExpr, ctx: _FieldCtx) -> Any:
        try:
            return t.check(plain)
        except ValidationError as exc:
            raise self._bad(lit, ctx, exc.expected) from exc

    def value(self, lit: LiteralExpr, t: Type, ctx: _FieldCtx) -> Any:
        """Convert a default literal to a value of ``t`` (errors located at the literal)."""
        if isinstance(t, OptionalType):
            return self.value(lit, t.element, ctx)
        if isinstance(t, BoolType):
            if isinstance(lit, BoolLit):
                return lit.value
        elif isinstance(t, IntType):
            if isinstance(lit, IntLit):
                return self._leaf(t, lit.value, lit, ctx)
        elif isinstance(t, FloatType | DoubleType):
            if isinstance(lit, IntLit | FloatLit):
                return self._leaf(t, float(lit.value), lit, ctx)
        elif isinstance(t, StringType | UUIDType | BlobIdType | CommitIdType):
            if isinstance(lit, StringLit):
                return self._leaf(t, lit.value, lit, ctx)
        elif isinstance(t, BlobType):
            if isinstance(lit, ListLit):
                return bytes(self._byte(item, ctx) for item in lit.items)
            raise self._bad(lit, ctx, "blob (a brace list of byte values)")
        elif isinstance(t, EnumerationType):
            if isinstance(lit, EnumCaseLit):
                return self._case(lit, t, ctx)
            cases = ", ".join(f".{c.name}" for c in t.cases[:6])
            more = ", ..." if len(t.cases) > 6 else ""
            raise self._bad(lit, ctx, f"a case of enum '{t.qualified_name}' ({cases}{more})")
        elif isinstance(t, KeyType):
            raise _err(
                lit.pos,
                f"field '{ctx.field}' of type '{t}' cannot have a default value "
                "(the default of a key is the nil key)",
            )
        elif isinstance(t, VariantType):
            return self._variant(lit, t, ctx)
        elif isinstance(t, AnyType):
            return self._any(lit, ctx)
        elif isinstance(lit, ListLit):
            return self._list(lit, t, ctx)
        raise self._bad(lit, ctx, f"'{t}'")

    def _byte(self, item: LiteralExpr, ctx: _FieldCtx) -> int:
        if isinstance(item, IntLit) and 0 <= item.value <= 255:
            return item.value
        raise self._bad(item, ctx, "a byte value in [0, 255]")

    def _case(self, lit: EnumCaseLit, t: EnumerationType, ctx: _FieldCtx) -> Any:
        if lit.enum is not None:
            named = self._named(lit.enum, ctx.namespace, "enum", "expected an enum before '.'")
            if named != t:
                raise self._bad(lit, ctx, f"a case of enum '{t.qualified_name}'")
        names = [c.name for c in t.cases]
        if lit.name not in names:
            hint = _suggest(lit.name, names) or f" (cases: {', '.join(names)})"
            raise _err(
                lit.pos,
                f"invalid default for field '{ctx.field}': enum '{t.qualified_name}' has no "
                f"case '{lit.name}'{hint}",
            )
        return t.case(lit.name)

    def _list(self, lit: ListLit, t: Type, ctx: _FieldCtx) -> Any:
        items = lit.items
        if isinstance(t, VectorType | SetType):
            return self._leaf(t, [self.value(i, t.element, ctx) for i in items], lit, ctx)
        if isinstance(t, XArrayType):
            if items:
                raise _err(
                    lit.pos,
                    f"invalid default for field '{ctx.field}': a default of type '{t}' must be "
                    "empty ({}) because xarray positions are not deterministic",
                )
            return self._leaf(t, [], lit, ctx)
        if isinstance(t, MapType):
            out: dict[Any, Any] = {}
            for item in items:
                if not isinstance(item, ListLit) or len(item.items) != 2:
                    raise self._bad(item, ctx, f"a map entry {{key, value}} of '{t}'")
                key = self.value(item.items[0], t.key, ctx)
                if key in out:
                    raise _err(
                        item.items[0].pos,
                        f"invalid default for field '{ctx.field}': duplicate map key "
                        f"{_describe_literal(item.items[0])}",
                    )
                out[key] = self.value(item.items[1], t.value, ctx)
            return out
        if isinstance(t, TupleType):
            if len(items) != len(t.elements):
                raise self._bad(lit, ctx, f"'{t}' ({len(t.elements)} values)")
            return tuple(self.value(i, e, ctx) for i, e in zip(items, t.elements, strict=True))
        if isinstance(t, VecType):
            if len(items) != t.size:
                raise self._bad(lit, ctx, f"'{t}' ({t.size} values)")
            return tuple(self.value(i, t.element, ctx) for i in items)
        if isinstance(t, MatType):
            return self._matrix(lit, t, ctx)
        if isinstance(t, StructureType):
            if len(items) > len(t.fields):
                names = ", ".join(f.name for f in t.fields)
                raise self._bad(
                    lit,
                    ctx,
                    f"struct '{t.qualified_name}' (at most {len(t.fields)} "
                    f"value{'' if len(t.fields) == 1 else 's'} in field order: {names})",
                )
            values = {
                f.name: self.value(i, f.type, ctx)
                for i, f in zip(items, t.fields[: len(items)], strict=True)
            }
            return self._leaf(t, values, lit, ctx)
        raise self._bad(lit, ctx, f"'{t}'")

    def _matrix(self, lit: ListLit, t: MatType, ctx: _FieldCtx) -> Any:
        items = lit.items
        flat: list[LiteralExpr] = []
        if items and all(isinstance(i, ListLit) for i in items):
            if len(items) != t.columns:
                raise self._bad(lit, ctx, f"'{t}' ({t.columns} columns of {t.rows} values)")
            for column in items:
                assert isinstance(column, ListLit)
                if len(column.items) != t.rows:
                    raise self._bad(column, ctx, f"a column of {t.rows} values")
                flat.extend(column.items)
        else:
            flat = list(items)
            if len(flat) != t.columns * t.rows:
                raise self._bad(
                    lit, ctx, f"'{t}' ({t.columns * t.rows} values in column-major order)"
                )
        return tuple(self.value(i, t.element, ctx) for i in flat)

    def _variant(self, lit: LiteralExpr, t: VariantType, ctx: _FieldCtx) -> Any:
        order = list(range(len(t.alternatives)))
        if isinstance(lit, IntLit | FloatLit | BoolLit | StringLit):
            natural = t.natural_index(lit.value)
            if natural is not None:
                order.remove(natural)
                order.insert(0, natural)
        for index in order:
            alt = t.alternatives[index]
            try:
                value = self.value(lit, alt, ctx)
            except DSMError:
                continue
            if t.natural_index(value) == index:
                return value
            return Typed(alt, value)
        raise self._bad(lit, ctx, f"'{t}'")

    def _any(self, lit: LiteralExpr, ctx: _FieldCtx) -> Any:
        if isinstance(lit, IntLit | FloatLit | BoolLit | StringLit):
            return lit.value
        if isinstance(lit, EnumCaseLit) and lit.enum is not None:
            enum = self._named(lit.enum, ctx.namespace, "enum", "expected an enum before '.'")
            assert isinstance(enum, EnumerationType)
            return self._case(lit, enum, ctx)
        raise self._bad(
            lit, ctx, "'any' (a number, a string, true, false or a qualified Enum.case)"
        )
