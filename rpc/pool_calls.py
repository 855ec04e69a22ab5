"""How a pool calls an implementation: which declared arguments go by position, which by
name, checked once against the implementation's signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from commitdb.errors import DefinitionError
from commitdb.prototypes import FunctionPrototype

__all__ = ()

#: An implementation: any Python callable.
_Impl = Callable[..., Any]


def _signature(fn: _Impl) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        return None


def _show_signature(fn: _Impl, sig: inspect.Signature | None) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return f"{name}{sig if sig is not None else '(...)'}"


class CallPlan:
    """How to pass the normalized arguments to an implementation."""

    __slots__ = ("keyword_names", "positional")

    def __init__(self, positional: int, keyword_names: tuple[str, ...]) -> None:
        self.positional = positional  # the first `positional` arguments go by position
        self.keyword_names = keyword_names  # the others by these names

    def call(self, fn: _Impl, prefix: tuple[Any, ...], args: Sequence[Any]) -> Any:
        """Call `fn` with `prefix` then `args` (the later ones by name if the plan says so)."""
        n = self.positional
        if not self.keyword_names:
            return fn(*prefix, *args)
        return fn(*prefix, *args[:n], **dict(zip(self.keyword_names, args[n:], strict=True)))


def _plan(fn: _Impl, prototype: FunctionPrototype, takes_state: bool, where: str) -> CallPlan:
    """Check that `fn` can take the declared parameters and decide how to pass them.

    Raises:
        DefinitionError: Saying what was declared and what was found.
    """
    declared = [p.name for p in prototype.parameters]
    sig = _signature(fn)
    if sig is None:
        return CallPlan(len(declared), ())
    params = list(sig.parameters.values())
    shown_declared = ", ".join((["state"] if takes_state else []) + declared)

    def fail(reason: str) -> DefinitionError:
        return DefinitionError(
            f"{where}: the implementation cannot take the declared parameters: "
            f"declared {prototype.name}({shown_declared}), "
            f"found {_show_signature(fn, sig)} ({reason})"
        )

    positional_kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if takes_state:
        if not params:
            raise fail("no parameter for the attachment state")
        if params[0].kind in positional_kinds:
            params = params[1:]
        elif params[0].kind is not inspect.Parameter.VAR_POSITIONAL:
            raise fail("the attachment state must be its first positional parameter")
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        before = [p for p in named if p.kind in positional_kinds]
        required = [p.name for p in before if p.default is p.empty]
        if len(required) > len(declared):
            raise fail(f"it requires {len(required)} positional arguments")
        kw_required = [p.name for p in named if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        if kw_required:
            raise fail(f"keyword-only parameter(s) {', '.join(map(repr, kw_required))}")
        return CallPlan(len(declared), ())
    only = [p for p in named if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if len(only) > len(declared):
        missing = [p.name for p in only[len(declared) :] if p.default is p.empty]
        if missing:
            raise fail(f"{len(declared)} argument(s) for {len(only)} positional-only parameters")
    by_name = {p.name: p for p in named if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    keywords = tuple(declared[len(only) :])
    unknown = [n for n in keywords if n not in by_name]
    if unknown and not var_kw:
        raise fail(f"no parameter named {', '.join(map(repr, unknown))}")
    left = [p.name for p in by_name.values() if p.name not in keywords and p.default is p.empty]
    if left:
        raise fail(f"parameter(s) {', '.join(map(repr, left))} would get no argument")
    return CallPlan(min(len(only), len(declared)), keywords)
