"""Binding DSM pool declarations to Python implementations (:meth:`FunctionPool.bind
<rpc.pools.FunctionPool.bind>`): the prototypes are exactly the declared ones."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from commitdb.errors import DefinitionError
from commitdb.prototypes import PoolDeclaration
from rpc.pool_calls import _Impl

if TYPE_CHECKING:
    from rpc.pools import FunctionPool

__all__ = ()


def _bind_functions(
    pool: FunctionPool,
    declaration: PoolDeclaration,
    implementations: Mapping[str, _Impl] | object,
    inline: bool | Iterable[str],
    allow_extra: bool,
) -> None:
    """Add to `pool` a function per declared prototype, with the implementation of that name.

    Raises:
        DefinitionError: Every problem at once (see :meth:`FunctionPool.bind
            <rpc.pools.FunctionPool.bind>`).
    """
    names = declaration.functions
    if isinstance(inline, bool):
        inline_names = set(names) if inline else set()
    else:
        inline_names = {inline} if isinstance(inline, str) else set(inline)
    problems: list[str] = [
        f"{declaration.name}.{n} is named inline but is not declared"
        for n in sorted(inline_names - set(names))
    ]
    for fname, prototype in names.items():
        impl = _lookup(implementations, fname)
        if impl is None:
            problems.append(f"{declaration.name}.{fname} has no implementation")
            continue
        try:
            pool.add(
                pool._function_class(
                    prototype, impl, inline=fname in inline_names, pool_name=pool.name
                )
            )
        except DefinitionError as exc:
            problems.append(str(exc))
    if not allow_extra:
        problems += [
            f"{declaration.name} declares no function {extra!r} (an implementation was "
            "given for it; pass allow_extra=True to accept it)"
            for extra in sorted(_offered_names(implementations) - set(names))
        ]
    if problems:
        raise DefinitionError("; ".join(problems))


def _lookup(implementations: Mapping[str, _Impl] | object, name: str) -> _Impl | None:
    if isinstance(implementations, Mapping):
        found = implementations.get(name)
    else:
        found = getattr(implementations, name, None)
    return found if found is not None else None


def _offered_names(implementations: Mapping[str, _Impl] | object) -> set[str]:
    """The names an implementations object offers (for typo protection)."""
    if isinstance(implementations, Mapping):
        return {str(k) for k in implementations}
    if isinstance(implementations, types.ModuleType):
        exported = getattr(implementations, "__all__", None)
        if exported is not None:
            return set(exported)
        module = implementations.__name__
        return {
            n
            for n, v in vars(implementations).items()
            if not n.startswith("_")
            and callable(v)
            and getattr(v, "__module__", None) == module
            and not isinstance(v, type)
        }
    owner = implementations if isinstance(implementations, type) else type(implementations)
    names: set[str] = set()
    for klass in owner.__mro__:
        if klass is object:
            continue
        names |= {n for n, v in vars(klass).items() if not n.startswith("_") and _is_routine(v)}
    if not isinstance(implementations, type):
        names |= {
            n
            for n, v in getattr(implementations, "__dict__", {}).items()
            if not n.startswith("_") and callable(v)
        }
    return names


def _is_routine(value: object) -> bool:
    return isinstance(value, staticmethod | classmethod) or inspect.isfunction(value)
