"""Python annotations as commitdb types, and prototypes read from Python signatures (the
``@pool.function`` decorator).

``int`` is ``int64``, ``float`` is ``double``, ``str``/``bool``/``bytes``/``uuid.UUID``/
``None`` are ``string``/``bool``/``blob``/``uuid``/``void``, ``list[T]``/``set[T]``/
``dict[K, V]``/``T | None`` are ``vector``/``set``/``map``/``optional`` and ``typing.Any``
is ``any``; ``Annotated[X, t]`` with ``t`` a commitdb type names any other type.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any

from commitdb.errors import DefinitionError
from commitdb.prototypes import Parameter
from commitdb.types import (
    ANY,
    BLOB,
    BOOL,
    DOUBLE,
    INT64,
    STRING,
    UUID,
    VOID,
    MapType,
    OptionalType,
    SetType,
    TupleType,
    Type,
    VariantType,
    VectorType,
)
from commitdb.values import EnumCase, Key, StructValue, XArray
from rpc.pool_calls import _Impl, _signature

__all__ = ("type_from_annotation",)


_SCALARS: dict[object, Type] = {
    int: INT64,
    float: DOUBLE,
    str: STRING,
    bytes: BLOB,
    uuid.UUID: UUID,
    typing.Any: ANY,
}

_SEQUENCES = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_SETS = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_MAPS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)

_NEEDS_ANNOTATED: dict[object, str] = {
    Key: "a key needs its key type: Annotated[Key, KeyType(concept)]",
    StructValue: "a structure needs its type: Annotated[StructValue, structure_type]",
    EnumCase: "an enumeration case needs its type: Annotated[EnumCase, enumeration_type]",
    XArray: "an xarray needs its type: Annotated[XArray, XArrayType(element)]",
}


def type_from_annotation(annotation: object) -> Type:
    """The commitdb type a (resolved) Python annotation stands for.

    Args:
        annotation: An annotation object (not a string): ``int``, ``list[str]``,
            ``Annotated[Key, key_type]``, a commitdb :class:`~commitdb.types.Type` ...

    Returns:
        The type descriptor.

    Raises:
        DefinitionError: The annotation has no commitdb equivalent.
    """
    if isinstance(annotation, Type):
        return annotation
    if annotation is None or annotation is type(None):
        return VOID
    if annotation is bool:  # before int: bool is an int subclass
        return BOOL
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return scalar
    if isinstance(annotation, type) and issubclass(annotation, StructValue):
        struct_type = getattr(annotation, "_type", None)
        if isinstance(struct_type, Type):
            return struct_type
    if isinstance(annotation, str | typing.ForwardRef):
        raise DefinitionError(f"unresolved annotation {annotation!r}")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        for meta in getattr(annotation, "__metadata__", ()):
            if isinstance(meta, Type):
                return meta
        return type_from_annotation(args[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        inner = (
            type_from_annotation(members[0])
            if len(members) == 1
            else VariantType(type_from_annotation(a) for a in members)
        )
        return OptionalType(inner) if len(members) < len(args) else inner
    if origin in _SEQUENCES and len(args) == 1:
        return VectorType(type_from_annotation(args[0]))
    if origin in _SETS and len(args) == 1:
        return SetType(type_from_annotation(args[0]))
    if origin in _MAPS and len(args) == 2:
        return MapType(type_from_annotation(args[0]), type_from_annotation(args[1]))
    if origin is tuple and args and args[-1] is not Ellipsis:
        return TupleType(type_from_annotation(a) for a in args)
    hint = _NEEDS_ANNOTATED.get(annotation)
    if hint is not None:
        raise DefinitionError(hint)
    if annotation in (*_SEQUENCES, *_SETS, *_MAPS, tuple):
        raise DefinitionError(f"{_describe(annotation)} needs its element type(s)")
    raise DefinitionError(f"{_describe(annotation)} has no commitdb type")


def _describe(annotation: object) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation)


def _resolve_annotation(raw: object, globalns: dict[str, Any]) -> object:
    """Evaluate a string (or string-containing) annotation against a module's globals."""
    if isinstance(raw, Type):
        return raw

    def holder() -> None:
        """Carry the annotation to ``typing.get_type_hints``."""

    holder.__annotations__ = {"annotation": raw}
    try:
        return typing.get_type_hints(holder, globalns=globalns, include_extras=True)["annotation"]
    except TypeError:
        if not isinstance(raw, str):
            raise
        value = eval(raw, dict(globalns))  # a commitdb type used directly: `x: INT32`
        if isinstance(value, Type):
            return value
        raise


def _globals_of(fn: object) -> dict[str, Any]:
    """The module globals an implementation's string annotations refer to."""
    target = inspect.unwrap(fn) if callable(fn) else fn
    while isinstance(target, functools.partial):
        target = target.func
    found = getattr(target, "__globals__", None)
    if found is None and not inspect.isroutine(target):  # a callable object: its __call__
        found = getattr(inspect.getattr_static(type(target), "__call__", None), "__globals__", None)
    return found if isinstance(found, dict) else {}


# --------------------------------------------------------------------------------------------
# Prototypes from signatures


def _annotation_type(raw: object, globalns: dict[str, Any], what: str, where: str) -> Type:
    try:
        resolved = _resolve_annotation(raw, globalns)
    except Exception as exc:  # NameError, SyntaxError, TypeError from typing ...
        raise DefinitionError(
            f"{where}: cannot resolve the annotation {raw!r} of {what} "
            f"({type(exc).__name__}: {exc}); annotations are resolved against the function's "
            "module globals, pass parameters=/returns= for other types"
        ) from None
    try:
        return type_from_annotation(resolved)
    except DefinitionError as exc:
        raise DefinitionError(f"{where}: {what}: {exc}") from None


def _parameters_of(
    impl: _Impl, overrides: Mapping[str, Type], takes_state: bool, where: str
) -> list[Parameter]:
    sig = _signature(impl)
    if sig is None:
        raise DefinitionError(f"{where}: the signature of {impl!r} cannot be inspected")
    params = list(sig.parameters.values())
    if takes_state:
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise DefinitionError(
                f"{where}: an attachment function takes the attachment state as its first "
                "positional parameter"
            )
        params = params[1:]
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            star = "*" if p.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise DefinitionError(
                f"{where}: variadic parameter {star}{p.name} cannot be part of a prototype"
            )
    # keyword-only parameters with a default keep it (e.g. bound by functools.partial)
    params = [p for p in params if p.kind is not p.KEYWORD_ONLY or p.default is p.empty]
    unknown = set(overrides) - {p.name for p in params}
    if unknown:
        raise DefinitionError(
            f"{where}: parameters= names unknown parameter(s) "
            f"{', '.join(map(repr, sorted(unknown)))} (parameters: "
            f"{', '.join(p.name for p in params) or 'none'})"
        )
    globalns = _globals_of(impl)
    out: list[Parameter] = []
    for p in params:
        t = overrides.get(p.name)
        if t is None:
            if p.annotation is inspect.Parameter.empty:
                raise DefinitionError(
                    f"{where}: parameter {p.name!r} has no annotation (annotate it or pass "
                    f"parameters={{{p.name!r}: type}})"
                )
            t = _annotation_type(p.annotation, globalns, f"parameter {p.name!r}", where)
        if not isinstance(t, Type):
            raise DefinitionError(f"{where}: parameter {p.name!r}: {t!r} is not a commitdb type")
        if t is VOID or t == VOID:
            raise DefinitionError(f"{where}: parameter {p.name!r} cannot be void")
        out.append(Parameter(p.name, t))
    return out


def _return_of(impl: _Impl, where: str) -> Type:
    sig = _signature(impl)
    if sig is None or sig.return_annotation is inspect.Signature.empty:
        raise DefinitionError(
            f"{where}: the return has no annotation (annotate it, -> None for void, or pass "
            "returns=type)"
        )
    return _annotation_type(sig.return_annotation, _globals_of(impl), "the return", where)
