"""Resolution of a path against a document type: what each step reaches, the normalized
map keys, and which variant alternative encodes a key."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

from commitdb.errors import PathError, ValidationError
from commitdb.paths.components import (
    Component,
    Element,
    Entry,
    Field,
    Index,
    MapKey,
    Position,
    Unwrap,
    _key_token,
    _name,
    _text,
    _unknown_field,
)
from commitdb.paths.text import _literal
from commitdb.types import (
    ANY,
    AnyType,
    ConceptType,
    KeyType,
    MapType,
    MatType,
    OptionalType,
    SetType,
    StructureType,
    TupleType,
    Type,
    VariantType,
    VectorType,
    VecType,
    XArrayType,
)
from commitdb.values import Key

__all__ = ("analyze",)


class _State(NamedTuple):
    """Where a walk over types stands."""

    type: Type | None  # None: not known statically (inside an any)
    opened: bool = False  # an unwrapped variant: the next step goes to its alternatives


class _Step(NamedTuple):
    """One resolved component."""

    states: list[_State]
    comp: Component  # with its map key normalized
    choice: int | None  # for a key when several candidates stand: the one whose type encodes it
    key_type: Type | None  # for a key: the type that encodes it


def _expand(states: list[_State]) -> list[_State]:
    out: list[_State] = []
    for s in states:
        if s.opened and isinstance(s.type, VariantType):
            out.extend(_State(a) for a in s.type.alternatives)
        else:
            out.append(s)
    return out


def _unique(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _no_fit(errors: list[str]) -> PathError:
    errors = _unique(errors)
    if len(errors) == 1:
        return PathError(errors[0])
    return PathError("no alternative of the variant fits: " + "; ".join(errors))


def _step(s: _State, comp: Component) -> _State:
    """The state after a non-key component (raises PathError)."""
    t = s.type
    if t is None:
        return s
    if isinstance(comp, Unwrap):
        if isinstance(t, OptionalType):
            return _State(t.element)
        if isinstance(t, VariantType):
            return _State(t, True)
        if isinstance(t, AnyType):
            return _State(None)
        raise PathError(f"unwrap '!' on {t}, which is not an optional, a variant or an any")
    if isinstance(t, OptionalType | VariantType | AnyType):
        raise PathError(f"{_name(comp)} {comp} on {t}: unwrap it first with '!'")
    if isinstance(comp, Field):
        if isinstance(t, StructureType):
            if t.has_field(comp.name):
                return _State(t.field(comp.name).type)
            raise _unknown_field(comp.name, t, (f.name for f in t.fields))
        raise PathError(f"field {comp.name!r} on {t}, which is not a structure")
    if isinstance(comp, Index):
        i = comp.index
        if isinstance(t, VectorType):
            return _State(t.element)
        size: int | None = None
        if isinstance(t, TupleType):
            size = len(t.elements)
            if i < size:
                return _State(t.elements[i])
        elif isinstance(t, VecType):
            size = t.size
        elif isinstance(t, MatType):
            size = t.columns * t.rows
        if size is not None:
            if i < size:
                return _State(t.children()[0])
            raise PathError(f"Index {i} is out of range for {t} (size {size})")
        hint = ""
        if isinstance(t, MapType):
            hint = f" (a map key is written [#{i}] or ['{i}'])"
        elif isinstance(t, XArrayType):
            hint = " (xarray elements are addressed by position: [@{uuid}])"
        elif isinstance(t, SetType):
            hint = f" (a set element is .element[{i}])"
        raise PathError(f"index [{i}] on {t}, which is not a vector, tuple, vec or mat{hint}")
    if isinstance(comp, Position):
        if isinstance(t, XArrayType):
            return _State(t.element)
        raise PathError(f"position {comp} on {t}, which is not an xarray")
    if isinstance(comp, Element):
        if isinstance(t, SetType):
            return _State(t.element)
        raise PathError(f"element .element[{comp.index}] on {t}, which is not a set")
    raise PathError(f"unexpected component {comp!r}")  # pragma: no cover - keys go elsewhere


def _coerce(value: object, t: Type) -> object:
    """Turn printable stand-ins back into values: a uuid into a key, a tuple into a structure."""
    if isinstance(t, KeyType) and isinstance(t.target, ConceptType):
        if isinstance(value, str):
            try:
                value = uuid.UUID(value)
            except ValueError:
                return value
        if isinstance(value, uuid.UUID):
            return Key(t.target, value)
    elif isinstance(t, StructureType) and isinstance(value, tuple):
        if len(value) == len(t.fields):
            return {f.name: _coerce(x, f.type) for f, x in zip(t.fields, value, strict=True)}
    elif isinstance(t, TupleType) and isinstance(value, tuple):
        if len(value) == len(t.elements):
            return tuple(_coerce(x, e) for x, e in zip(value, t.elements, strict=True))
    elif isinstance(t, OptionalType) and value is not None:
        return _coerce(value, t.element)
    return value


def _accept_key(s: _State, key: object, comp: Component) -> object:
    """The key normalized for a candidate map (raises PathError when it does not fit)."""
    t = s.type
    if t is None:
        return key
    if isinstance(t, MapType):
        try:
            return t.key.check(_coerce(key, t.key))
        except ValidationError as exc:
            raise PathError(f"map key {_literal(key)} does not fit {t}: {exc}") from None
    if isinstance(t, OptionalType | VariantType | AnyType):
        raise PathError(f"{_name(comp)} {comp} on {t}: unwrap it first with '!'")
    raise PathError(f"{_name(comp)} {comp} on {t}, which is not a map")


def _key_state(s: _State, comp: Component) -> _State:
    t = s.type
    if t is None:
        return s
    assert isinstance(t, MapType)
    if isinstance(comp, Entry):
        return _State(TupleType((t.key, t.value)))
    return _State(t.value)


def _first_fit(cands: list[_State], key: object, comp: Component) -> tuple[int, object]:
    """The first candidate map that accepts `key`, and the key normalized by it."""
    errors: list[str] = []
    for i, s in enumerate(cands):
        try:
            return i, _accept_key(s, key, comp)
        except PathError as exc:
            errors.append(str(exc))
    raise _no_fit(errors)


def _advance(states: list[_State], comp: Component) -> _Step:
    """Resolve one component against every candidate type (raises PathError)."""
    cands = _expand(states)
    if isinstance(comp, MapKey | Entry):
        choice, key = _first_fit(cands, comp.key, comp)
        # Settle on a key that its own first fitting candidate leaves unchanged, so that the
        # decoder, which sees the normalized key, picks the same candidate (canonical wire).
        for _ in range(len(cands)):
            again, norm = _first_fit(cands, key, comp)
            if again == choice and _key_token(norm) == _key_token(key):
                break
            choice, key = again, norm
        out: list[_State] = []
        for other in cands:
            try:
                _accept_key(other, key, comp)
            except PathError:
                continue
            out.append(_key_state(other, comp))
        norm_comp = MapKey(key) if isinstance(comp, MapKey) else Entry(key)
        t = cands[choice].type
        key_type = t.key if isinstance(t, MapType) else ANY
        return _Step(_unique(out), norm_comp, choice if len(cands) > 1 else None, key_type)
    errors: list[str] = []
    out = []
    for s in cands:
        try:
            out.append(_step(s, comp))
        except PathError as exc:
            errors.append(str(exc))
    if not out:
        raise _no_fit(errors)
    return _Step(_unique(out), comp, None, None)


def _result_type(states: list[_State]) -> Type:
    types = _unique(ANY if s.type is None else s.type for s in states)
    return types[0] if len(types) == 1 else ANY


def analyze(comps: tuple[Component, ...], doc_type: Type) -> tuple[Type, list[_Step]]:
    """The type `comps` reach in a document of `doc_type`, and each resolved step.

    Raises PathError saying why, located at the failing step (``at .a.b in .a.b.c``).
    """
    states = [_State(doc_type)]
    steps: list[_Step] = []
    for i, comp in enumerate(comps):
        try:
            step = _advance(states, comp)
        except PathError as exc:
            raise _located(exc, comps, i) from None
        steps.append(step)
        states = step.states
    return _result_type(states), steps


def _located(exc: PathError, comps: tuple[Component, ...], i: int) -> PathError:
    where = _text(comps[: i + 1])
    at = f"at {where}" if i + 1 == len(comps) else f"at {where} in {_text(comps)}"
    return PathError(f"{exc} ({at})")
