"""DSM type spellings as types: the ``type`` member of ``{"type", "value"}`` JSON objects.

:func:`parse_type` reads what ``str(type)`` prints — ``int32``, ``Graph::Position``,
``vector<string>``, ``map<string, key<Graph::Vertex>>``, ``vec<float, 3>`` — looking named
types up in the definitions. Used by :mod:`rpc.json_codec` for ``variant`` and ``any`` values.
"""

from __future__ import annotations

import re

from commitdb import types as T
from commitdb.definitions import Definitions

__all__ = ("parse_type",)

_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)|(\d+)|([<>,]))")
_GENERICS = {"vector", "set", "map", "optional", "xarray", "tuple", "variant", "key", "vec", "mat"}


def parse_type(text: str, definitions: Definitions | None) -> T.Type:
    """The type a DSM spelling names (``int32``, ``map<string, Graph::Position>``).

    Args:
        text: The spelling, as ``str(type)`` prints it.
        definitions: Where named types (``NS::Name``) are looked up.

    Returns:
        The type.

    Raises:
        ValueError: The text is not a type spelling, or names an unknown type.
    """
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unexpected {text[pos:]!r} in the type {text!r}")
        tokens.append(m.group(m.lastindex or 1))
        pos = m.end()
    out, rest = _parse_type_tokens(tokens, definitions, text)
    if rest:
        raise ValueError(f"unexpected {' '.join(rest)!r} after the type in {text!r}")
    if not isinstance(out, T.Type):
        raise ValueError(f"{text!r} is a number, not a type")
    return out


def _parse_type_tokens(
    tokens: list[str], defs: Definitions | None, text: str
) -> tuple[T.Type | int, list[str]]:
    if not tokens:
        raise ValueError(f"incomplete type {text!r}")
    head, rest = tokens[0], tokens[1:]
    if head.isdigit():
        return int(head), rest
    if head in _GENERICS and rest[:1] == ["<"]:
        args: list[T.Type | int] = []
        rest = rest[1:]
        while True:
            arg, rest = _parse_type_tokens(rest, defs, text)
            args.append(arg)
            if rest[:1] == [","]:
                rest = rest[1:]
                continue
            if rest[:1] == [">"]:
                return _generic(head, args, text), rest[1:]
            raise ValueError(f"expected ',' or '>' in {text!r}")
    if head in T.PRIMITIVES:
        return T.PRIMITIVES[head], rest
    if head == "any_concept":
        return T.ANY_CONCEPT, rest
    found = defs.query_type(head) if defs is not None and head not in "<>," else None
    if found is None:
        raise ValueError(f"unknown type {head!r} in {text!r}")
    return found, rest


def _generic(name: str, args: list[T.Type | int], text: str) -> T.Type:
    types = [a for a in args if isinstance(a, T.Type)]
    ints = [a for a in args if isinstance(a, int)]
    shape = (len(types), len(ints))
    single = {
        "vector": T.VectorType,
        "set": T.SetType,
        "optional": T.OptionalType,
        "xarray": T.XArrayType,
    }
    try:
        if name == "vec" and shape == (1, 1):
            return T.VecType(types[0], ints[0])
        if name == "mat" and shape == (1, 2):
            return T.MatType(types[0], ints[0], ints[1])
        if name == "key" and shape == (1, 0):
            target = types[0]
            if isinstance(target, T.ConceptType | T.ClubType | T.AnyConceptType):
                return T.KeyType(target)
        if name == "map" and shape == (2, 0):
            return T.MapType(types[0], types[1])
        if name in ("tuple", "variant") and types and not ints:
            return T.TupleType(types) if name == "tuple" else T.VariantType(types)
        if name in single and shape == (1, 0):
            return single[name](types[0])
    except Exception as exc:  # DefinitionError: not storable, not hashable ...
        raise ValueError(f"{text!r}: {exc}") from None
    raise ValueError(f"wrong type arguments for {name}<...> in {text!r}")
