"""Reading and writing the value a path addresses, with the replay rules (engine spec
§3.1-§3.2, §5.4): every failure is a :class:`~commitdb.errors.PathError`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commitdb.errors import PathError
from commitdb.paths.components import (
    Component,
    Element,
    Entry,
    Field,
    Index,
    MapKey,
    Position,
    Unwrap,
    _name,
    _text,
    _unknown_field,
)
from commitdb.paths.order import sorted_elements
from commitdb.paths.text import _literal
from commitdb.values import StructValue, Typed, XArray

__all__ = ("patch", "read", "write")

_NO_VALUE = object()


def _describe(value: object) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, StructValue):
        return f"a {value._type.name} structure"
    return f"a {type(value).__name__}"


def _unwrap(value: Any, opened: bool) -> tuple[Any, bool]:
    """``!``: check presence; a Typed wrapper is kept (opened), the next step looks inside."""
    if opened:
        value = value.value
    if value is None:
        raise PathError("Try to unwrap empty optional")
    return value, isinstance(value, Typed)


def _strip(value: Any) -> Any:
    while isinstance(value, Typed):
        value = value.value
    return value


def _retyped(wrapper: Typed, inner: Any) -> Typed:
    # The caller validated the new content; Typed() would check it again (and could raise).
    new = object.__new__(Typed)
    object.__setattr__(new, "type", wrapper.type)
    object.__setattr__(new, "value", inner)
    return new


def _through_typed(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, Typed):
        inner = value.value
        new = _through_typed(inner, fn)
        return value if new is inner else _retyped(value, new)
    return fn(value)


def _position_error(xa: XArray, comp: Position) -> PathError:
    if xa.has_position(comp.position):
        return PathError(f"Position {{{comp.position}}} is removed")
    return PathError(f"Position {{{comp.position}}} not found")


def _get(c: Any, comp: Component) -> Any:
    """The child of a container (raises PathError with the replay messages)."""
    if isinstance(comp, Field):
        if isinstance(c, StructValue):
            if comp.name in c._fields:
                return getattr(c, comp.name)
            raise _unknown_field(comp.name, c._type, c._fields)
    elif isinstance(comp, Index):
        if isinstance(c, list | tuple):
            if comp.index < len(c):
                return c[comp.index]
            raise PathError(f"Index {comp.index} is out of range")
    elif isinstance(comp, MapKey | Entry):
        if isinstance(c, dict):
            v = c.get(comp.key, _NO_VALUE)
            if v is _NO_VALUE:
                raise PathError(f"Key {_literal(comp.key)} not found")
            return (comp.key, v) if isinstance(comp, Entry) else v
    elif isinstance(comp, Position):
        if isinstance(c, XArray):
            v = c.get(comp.position, _NO_VALUE)
            if v is _NO_VALUE:
                raise _position_error(c, comp)
            return v
    elif isinstance(comp, Element):
        if isinstance(c, set | frozenset):
            if comp.index < len(c):
                return sorted_elements(c)[comp.index]
            raise PathError(f"Element {comp.index} is out of range")
    raise PathError(f"{_name(comp)} {comp} on {_describe(c)}")


def _put(c: Any, comp: Component, v: Any) -> Any:
    """Store a child; returns the container (a new one when it is immutable)."""
    if isinstance(comp, Field):
        if isinstance(c, StructValue):
            if comp.name in c._fields:
                object.__setattr__(c, comp.name, v)
                return c
            raise _unknown_field(comp.name, c._type, c._fields)
    elif isinstance(comp, Index):
        i = comp.index
        if isinstance(c, list | tuple):
            if i >= len(c):
                raise PathError(f"Index {i} is out of range")
            if isinstance(c, list):
                c[i] = v
                return c
            return (*c[:i], v, *c[i + 1 :])
    elif isinstance(comp, MapKey):
        if isinstance(c, dict):
            c[comp.key] = v
            return c
    elif isinstance(comp, Position):
        if isinstance(c, XArray):
            if not c.apply_update(comp.position, v):
                raise _position_error(c, comp)
            return c
    raise PathError(f"{_name(comp)} {comp} on {_describe(c)}")


def _modify(
    value: Any, opened: bool, comps: tuple[Component, ...], i: int, fn: Callable[[Any], Any]
) -> Any:
    """Walk ``comps[i:]`` and apply `fn` to the value reached; returns the new `value`
    (itself when changed in place; rebuilt when an immutable container changed)."""
    if i == len(comps):
        return fn(value)
    comp = comps[i]
    if isinstance(comp, Unwrap):
        inner, inner_opened = _unwrap(value, opened)
        new = _modify(inner, inner_opened, comps, i + 1, fn)
        if new is inner:
            return value
        return _retyped(value, new) if opened else new
    if isinstance(value, Typed):
        inner = value.value
        new = _modify(inner, False, comps, i, fn)
        return value if new is inner else _retyped(value, new)
    child = _get(value, comp)
    new = _modify(child, False, comps, i + 1, fn)
    return value if new is child else _put(value, comp, new)


def _replace_element(c: Any, index: int, new: Any) -> Any:
    if not isinstance(c, set | frozenset):
        raise PathError(f"element .element[{index}] on {_describe(c)}")
    if index >= len(c):
        raise PathError(f"Element {index} is out of range")
    old = sorted_elements(c)[index]
    hash(new)  # an unhashable element raises here, before the set changes
    if isinstance(c, frozenset):
        return (c - {old}) | {new}
    c.discard(old)
    c.add(new)
    return c


def _replace_key(c: Any, key: Any, new: Any) -> Any:
    if not isinstance(c, dict):
        raise PathError(f"entry [{_literal(key)}].entry on {_describe(c)}")
    hash(new)  # an unhashable key raises here, before the map changes
    v = c.pop(key, _NO_VALUE)
    if v is _NO_VALUE:
        raise PathError(f"Key {_literal(key)} not found")
    c[new] = v
    return c


_GUARDED = (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError)


def _guarded(what: str, comps: tuple[Component, ...], exc: Exception) -> PathError:
    """A Python error met on the way (a malformed document), as a PathError."""
    return PathError(f"cannot {what} {_text(comps)}: {type(exc).__name__}: {exc}")


def read(comps: tuple[Component, ...], value: Any) -> Any:
    """The value `comps` address in `value` (see :meth:`Path.at <commitdb.paths.Path.at>`)."""
    try:
        opened = False
        for comp in comps:
            if isinstance(comp, Unwrap):
                value, opened = _unwrap(value, opened)
            else:
                value = _get(_strip(value), comp)
                opened = False
        return value
    except PathError:
        raise
    except _GUARDED as exc:
        raise _guarded("read", comps, exc) from None


def write(comps: tuple[Component, ...], doc: Any, new_value: Any) -> Any:
    """Assign `new_value` at `comps` in `doc`; returns the root (see :meth:`Path.set_in
    <commitdb.paths.Path.set_in>`)."""
    if not comps:
        raise PathError("unexpected root Path")
    if not all(c.regular for c in comps):
        raise PathError(f"cannot set at {_text(comps)}: .entry and .element need patch()")
    try:
        cut = len(comps)
        while cut and isinstance(comps[cut - 1], Unwrap):
            cut -= 1
        trailing = len(comps) - cut
        if cut == 0:
            state = (doc, False)
            for _ in range(trailing - 1):
                state = _unwrap(*state)
            return new_value
        last = comps[cut - 1]

        def put(container: Any) -> Any:
            if trailing:
                state = (_get(container, last), False)
                for _ in range(trailing - 1):
                    state = _unwrap(*state)
            return _put(container, last, new_value)

        return _modify(doc, False, comps[: cut - 1], 0, lambda c: _through_typed(c, put))
    except PathError:
        raise
    except _GUARDED as exc:
        raise _guarded("set", comps, exc) from None


def patch(comps: tuple[Component, ...], doc: Any, new_value: Any) -> Any:
    """Replace a value that is its own key; returns the root (see :meth:`Path.patch
    <commitdb.paths.Path.patch>`)."""
    op: Callable[[Any], Any]
    last = comps[-1] if comps else None
    before = comps[-2] if len(comps) >= 2 else None
    if isinstance(last, Element):
        prefix = comps[:-1]
        index = last.index
        op = lambda c: _replace_element(c, index, new_value)  # noqa: E731
    elif isinstance(before, Entry) and last == Index(0):
        prefix = comps[:-2]
        key = before.key
        op = lambda c: _replace_key(c, key, new_value)  # noqa: E731
    else:
        raise PathError(
            f"cannot patch at {_text(comps)}: patch addresses a set element (.element[i]) or a "
            "map key (['k'].entry[0])"
        )
    if not all(c.regular for c in prefix):
        raise PathError(f"cannot patch at {_text(comps)}: only its last step may be irregular")
    try:
        return _modify(doc, False, prefix, 0, lambda c: _through_typed(c, op))
    except PathError:
        raise
    except _GUARDED as exc:
        raise _guarded("patch", comps, exc) from None
