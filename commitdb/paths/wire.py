"""The compact, deterministic wire form of a path (see :meth:`Path.to_wire
<commitdb.paths.Path.to_wire>`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commitdb import codec
from commitdb.errors import DecodeError, PathError, ValidationError
from commitdb.paths.components import (
    Component,
    Element,
    Entry,
    Field,
    Index,
    MapKey,
    Position,
    Unwrap,
    _text,
)
from commitdb.paths.resolution import _advance, _expand, _State, analyze
from commitdb.types import ANY, MapType, Type

if TYPE_CHECKING:
    from commitdb.definitions import Definitions

__all__ = ("from_wire", "to_wire")


def to_wire(comps: tuple[Component, ...], doc_type: Type) -> list[Any]:
    """The wire items of `comps` for documents of `doc_type` (PathError when they do not fit)."""
    _, steps = analyze(comps, doc_type)
    out: list[Any] = []
    for step in steps:
        c = step.comp
        if isinstance(c, Field):
            out.append(c.name)
        elif isinstance(c, Index):
            out.append(c.index)
        elif isinstance(c, Position):
            out.append(c.position.bytes)
        elif isinstance(c, Unwrap):
            out.append(None)
        elif isinstance(c, Element):
            out.append([2, c.index])
        elif isinstance(c, MapKey | Entry):
            assert step.key_type is not None
            try:
                w = codec.to_wire(c.key, step.key_type)
            except ValidationError as exc:
                raise PathError(f"cannot encode the key of {c} in {_text(comps)}: {exc}") from None
            item = [0 if isinstance(c, MapKey) else 1, w]
            if step.choice is not None:
                item.append(step.choice)
            out.append(item)
    return out


def from_wire(
    wire: Any, doc_type: Type, definitions: Definitions | None = None
) -> tuple[Component, ...]:
    """The components of a path in wire form (DecodeError on malformed input)."""
    if type(wire) is not list:
        raise DecodeError(f"a path is an array, not {type(wire).__name__}")
    states = [_State(doc_type)]
    comps: list[Component] = []
    for n, item in enumerate(wire):
        try:
            comp, choice = _component_from_wire(item, _expand(states), definitions)
            step = _advance(states, comp)
        except PathError as exc:
            raise DecodeError(f"path item {n} does not fit {doc_type}: {exc}") from None
        if step.choice != choice:
            raise DecodeError(f"path item {n} names the wrong alternative for its key")
        states = step.states
        comps.append(comp)
    return tuple(comps)


def _component_from_wire(
    item: Any, cands: list[_State], definitions: Definitions | None
) -> tuple[Component, int | None]:
    """One component from its wire item, with the alternative a key names (DecodeError, or
    PathError for a bad payload)."""
    kind = type(item)
    if kind is str:
        return Field(item), None
    if kind is int:
        return Index(item), None
    if kind is bytes:
        if len(item) != 16:
            raise DecodeError(f"a position is 16 bytes, not {len(item)}")
        return Position(item), None
    if item is None:
        return Unwrap(), None
    if kind is not list or not item or type(item[0]) is not int:
        raise DecodeError(f"malformed path item {item!r}")
    tag = item[0]
    if tag == 2:
        if len(item) != 2 or type(item[1]) is not int:
            raise DecodeError("an element is [2, index]")
        return Element(item[1]), None
    if tag not in (0, 1):
        raise DecodeError(f"unknown path item tag {tag}")
    choice: int | None = None
    if len(cands) > 1:
        if len(item) != 3 or type(item[2]) is not int or not 0 <= item[2] < len(cands):
            raise DecodeError("a key under a variant is [tag, key, alternative]")
        choice = item[2]
    elif len(item) != 2:
        raise DecodeError("a key is [tag, key]")
    t = cands[choice or 0].type
    if t is not None and not isinstance(t, MapType):
        raise DecodeError(f"a map key on {t}, which is not a map")
    key = codec.from_wire(item[1], ANY if t is None else t.key, definitions)
    return (MapKey(key) if tag == 0 else Entry(key)), choice
