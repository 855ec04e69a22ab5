"""Types whose values pick their own type: ``variant<...>`` and ``any``, with the
deduction of the type of a plain value."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from commitdb.errors import DefinitionError, ValidationError
from commitdb.ids import BlobId, CommitId
from commitdb.types.base import Type, _rid
from commitdb.types.named import KeyType
from commitdb.types.primitives import (
    BLOB,
    BLOB_ID,
    BOOL,
    COMMIT_ID,
    DOUBLE,
    INT64,
    STRING,
    UUID,
    BoolType,
    DoubleType,
    FloatType,
    IntType,
)
from commitdb.types.storable import _require_storable, is_storable
from commitdb.values import EnumCase, Key, StructValue, Typed

__all__ = ("ANY", "AnyType", "VariantType", "deduce_type")


class VariantType(Type):
    """``variant<T0, T1, ...>``: one alternative.

    A plain value goes to the alternative of its natural type (an int to an integer
    alternative, int64 first; a float to double, then float; ...). Wrap the value in
    :class:`Typed` to pick another alternative. The normalized value is plain when the
    natural choice is the chosen alternative, else a :class:`Typed`. A :class:`Typed` whose
    type is no alternative is a plain value (an ``any`` alternative may hold it).
    """

    __slots__ = ("alternatives",)
    kind = "variant"

    def __init__(self, alternatives: Iterable[Type]) -> None:
        super().__init__()
        self.alternatives = tuple(alternatives)
        if not self.alternatives:
            raise DefinitionError("variant needs at least one alternative")
        if len(set(self.alternatives)) != len(self.alternatives):
            raise DefinitionError(f"variant alternatives must be distinct: {self}")
        for a in self.alternatives:
            _require_storable(a, "variant alternative")

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, *(a.runtime_id.bytes for a in self.alternatives))

    def __str__(self) -> str:
        return f"variant<{', '.join(map(str, self.alternatives))}>"

    def children(self) -> tuple[Type, ...]:
        return self.alternatives

    def natural_index(self, value: object) -> int | None:
        """Index of the alternative a plain value goes to, or None."""
        for i in _natural_order(value, self.alternatives):
            try:
                self.alternatives[i].check(value)
            except (ValidationError, TypeError, ValueError):
                continue
            return i
        return None

    def select(self, value: object, where: str = "") -> tuple[int, Any]:
        """(alternative index, normalized inner value) for a variant value."""
        if isinstance(value, Typed):
            for i, a in enumerate(self.alternatives):
                if a == value.type:
                    return i, value.value
            # not an alternative's type: a plain value (an ``any`` alternative holds it)
        natural = self.natural_index(value)
        if natural is None:
            raise self.fail(value, where)
        return natural, self.alternatives[natural].check(value, where)

    def check(self, value: object, where: str = "") -> Any:
        i, inner = self.select(value, where)
        if self.natural_index(inner) == i:
            return inner
        return Typed(self.alternatives[i], inner)

    def default(self) -> Any:
        return self.check(Typed(self.alternatives[0], self.alternatives[0].default()))


class AnyType(Type):
    """``any``: empty (None) or any storable value with its type.

    Plain values are typed by deduction (bool, int → int64, float → double, str → string,
    bytes → blob, UUID, keys, enumeration cases, structures, ids); wrap others in
    :class:`Typed`. The normalized value is plain when deduction gives its type back.
    """

    __slots__ = ()
    kind = "any"

    def check(self, value: object, where: str = "") -> Any:
        if value is None:
            return None
        if isinstance(value, Typed):
            if not is_storable(value.type):
                raise self.fail(value, where, "a storable type inside any")
            if deduce_type(value.value) == value.type:
                return value.value
            return value
        t = deduce_type(value)
        if t is None:
            raise self.fail(value, where, "a value whose type can be deduced (or Typed)")
        return t.check(value, where)

    def default(self) -> Any:
        return None


ANY = AnyType()


def _natural_order(value: object, alternatives: tuple[Type, ...]) -> list[int]:
    """Indices of alternatives in the order a plain value prefers them."""
    preferred: list[Callable[[Type], bool]]
    if value is True or value is False:
        preferred = [lambda t: isinstance(t, BoolType)]
    elif isinstance(value, int):
        preferred = [lambda t: t is INT64 or t == INT64, lambda t: isinstance(t, IntType)]
    elif isinstance(value, float):
        preferred = [lambda t: isinstance(t, DoubleType), lambda t: isinstance(t, FloatType)]
    else:
        preferred = []
    order: list[int] = []
    for pred in preferred:
        order += [i for i, t in enumerate(alternatives) if pred(t) and i not in order]
    order += [i for i in range(len(alternatives)) if i not in order]
    return order


def deduce_type(value: object) -> Type | None:
    """The type a plain value is given inside ``any`` (None if it cannot be deduced)."""
    if value is True or value is False:
        return BOOL
    if isinstance(value, int):
        return INT64
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, BlobId):
        return BLOB_ID
    if isinstance(value, CommitId):
        return COMMIT_ID
    if isinstance(value, bytes | bytearray):
        return BLOB
    if isinstance(value, uuid.UUID):
        return UUID
    if isinstance(value, Key):
        return KeyType(value.concept)
    if isinstance(value, EnumCase):
        return value.enumeration
    if isinstance(value, StructValue):
        return value._type
    return None
