"""The canonical order of set elements, which :class:`~commitdb.paths.Element` indices use."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from commitdb.values import EnumCase, Key, StructValue, Typed

__all__ = ("element_sort_key", "sorted_elements")


def element_sort_key(value: object) -> tuple[Any, ...]:
    """A total-order sort key over hashable values: the order :class:`Element` indices use.

    Values of one kind compare naturally (numbers by value with NaN first, strings by code
    points, uuids and bytes by their bytes, enumeration cases by case name as engine spec §1.3
    says, keys by concept then instance id, tuples and structures element by element); the
    empty optional (None) comes first; different kinds order by kind.
    """
    if value is None:
        return (0,)
    if value is True or value is False:
        return (1, int(value))
    if isinstance(value, int):
        return (2, value)
    if isinstance(value, float):
        return (3, 0, 0.0) if value != value else (3, 1, value)
    if isinstance(value, str):
        return (4, value)
    if isinstance(value, bytes):
        return (5, type(value).__name__, bytes(value))
    if isinstance(value, uuid.UUID):
        return (6, value.bytes)
    if isinstance(value, EnumCase):
        return (7, value.enumeration.runtime_id.bytes, value.name)
    if isinstance(value, Key):
        return (8, value.concept.runtime_id.bytes, value.id.bytes)
    if isinstance(value, tuple):
        return (9, tuple(element_sort_key(x) for x in value))
    if isinstance(value, StructValue):
        fields = tuple(element_sort_key(getattr(value, f)) for f in value._fields)
        return (10, value._type.runtime_id.bytes, fields)
    if isinstance(value, Typed):
        return (11, value.type.runtime_id.bytes, element_sort_key(value.value))
    return (12, type(value).__qualname__, repr(value))


def sorted_elements(elements: Iterable[Any]) -> list[Any]:
    """The elements of a set in canonical order: ``.element[i]`` is ``sorted_elements(s)[i]``."""
    return sorted(elements, key=element_sort_key)
