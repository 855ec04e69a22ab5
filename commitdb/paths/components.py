"""The seven path components, and how messages name them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

from commitdb.errors import PathError
from commitdb.paths.text import _IDENT, _RESERVED, _literal, _quote

__all__ = (
    "Component",
    "Element",
    "Entry",
    "Field",
    "Index",
    "MapKey",
    "Position",
    "Unwrap",
)


class Component:
    """Base of the seven path components: immutable, hashable, equal by kind and payload."""

    __slots__ = ("_hash", "_token")
    kind: ClassVar[str] = "component"
    regular: ClassVar[bool] = True
    _token: tuple[object, ...]
    _hash: int

    def _seal(self, token: tuple[object, ...]) -> None:
        object.__setattr__(self, "_token", token)
        object.__setattr__(self, "_hash", hash((self.kind, token)))

    @property
    def value(self) -> Any:
        """The payload: a name, an index, a key, a position, or None for an unwrap."""
        return None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # Immutable: a copy is the object itself; pickling rebuilds it through the constructor.
    def __copy__(self) -> Component:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Component:
        return self

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return (type(self), (self.value,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Component):
            return NotImplemented
        return type(self) is type(other) and self._token == other._token

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class Field(Component):
    """A structure field, by name: ``.name``."""

    __slots__ = ("name",)
    kind = "field"
    name: str

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise PathError(f"a field name is a non-empty string, not {name!r}")
        object.__setattr__(self, "name", str(name))
        self._seal((self.name,))

    @property
    def value(self) -> str:
        """The field name."""
        return self.name

    def __str__(self) -> str:
        name = self.name
        if _IDENT.fullmatch(name) and name not in _RESERVED:
            return "." + name
        return "." + _quote(name)


def _check_index(i: object, what: str) -> int:
    if not isinstance(i, int) or isinstance(i, bool) or i < 0:
        raise PathError(f"{what} is an integer >= 0, not {i!r}")
    return int(i)


class _Indexed(Component):
    """Base of the components that carry an index >= 0 (:class:`Index`, :class:`Element`)."""

    __slots__ = ("index",)
    index: int
    _what: ClassVar[str]  # how an invalid index is named

    def __init__(self, index: int) -> None:
        object.__setattr__(self, "index", _check_index(index, self._what))
        self._seal((self.index,))

    @property
    def value(self) -> int:
        """The index."""
        return self.index


class Index(_Indexed):
    """An element of a vector, tuple, vec or mat (or of a map entry): ``[i]``."""

    __slots__ = ()
    kind = "index"
    _what = "an index"

    def __str__(self) -> str:
        return f"[{self.index}]"


def _key_token(key: object) -> object:
    """What map keys compare by inside a path: type-sensitive (1, 1.0 and True differ),
    floats by their text (so NaN equals NaN and -0.0 differs from 0.0)."""
    if isinstance(key, bool):
        return ("bool", key)
    if isinstance(key, int):
        return ("int", int(key))
    if isinstance(key, float):
        return ("float", repr(float(key)))
    if isinstance(key, str):
        return ("str", str(key))
    if isinstance(key, tuple):
        return ("tuple", tuple(_key_token(x) for x in key))
    return (type(key).__qualname__, key)


def _check_key(key: object) -> object:
    try:
        hash(key)
    except TypeError:
        raise PathError(f"a map key must be hashable, not {type(key).__name__}") from None
    return key


class _Keyed(Component):
    """Base of the components that carry a map key (:class:`MapKey`, :class:`Entry`)."""

    __slots__ = ("key",)
    key: Any

    def __init__(self, key: object) -> None:
        object.__setattr__(self, "key", _check_key(key))
        self._seal((_key_token(key),))

    @property
    def value(self) -> Any:
        """The map key."""
        return self.key


class MapKey(_Keyed):
    """The value of a map under a key (any hashable value): ``['k']``, ``[#3]``, ``[{uuid}]``."""

    __slots__ = ()
    kind = "key"

    def __str__(self) -> str:
        return f"[{_literal(self.key)}]"


class Position(Component):
    """An xarray element by its stable position: ``[@{uuid}]``."""

    __slots__ = ("position",)
    kind = "position"
    position: uuid.UUID

    def __init__(self, position: uuid.UUID | str | bytes) -> None:
        try:
            if isinstance(position, uuid.UUID):
                u = position
            elif isinstance(position, str):
                u = uuid.UUID(position)
            elif isinstance(position, bytes) and len(position) == 16:
                u = uuid.UUID(bytes=position)
            else:
                raise ValueError
        except ValueError:
            raise PathError(f"an xarray position is a uuid, not {position!r}") from None
        if u.int == 0:
            raise PathError("END (the nil uuid) is not the position of an element")
        object.__setattr__(self, "position", u)
        self._seal((u,))

    @property
    def value(self) -> uuid.UUID:
        """The position."""
        return self.position

    def __str__(self) -> str:
        return f"[@{{{self.position}}}]"


class Unwrap(Component):
    """The content of an optional, a variant or an any: ``!``."""

    __slots__ = ()
    kind = "unwrap"

    def __init__(self) -> None:
        self._seal(())

    def __repr__(self) -> str:
        return "Unwrap()"

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return (Unwrap, ())

    def __str__(self) -> str:
        return "!"


class Entry(_Keyed):
    """A map entry itself, followed by ``[0]`` (its key) or ``[1]`` (its value): irregular."""

    __slots__ = ()
    kind = "entry"
    regular = False

    def __str__(self) -> str:
        return f"[{_literal(self.key)}].entry"


class Element(_Indexed):
    """The i-th element of a set in canonical order (:func:`sorted_elements`): irregular."""

    __slots__ = ()
    kind = "element"
    regular = False
    _what = "an element index"

    def __str__(self) -> str:
        return f".element[{self.index}]"


# --------------------------------------------------------------------------------------------
# Naming components and paths in messages


def _text(comps: Iterable[Component]) -> str:
    """The text form of a sequence of components (``.`` for none: the root)."""
    return "".join(str(c) for c in comps) or "."


def _name(comp: Component) -> str:
    return "map key" if isinstance(comp, MapKey) else comp.kind


def _unknown_field(name: str, owner: object, fields: Iterable[str]) -> PathError:
    """The error for a field that a structure (type or value) does not have."""
    return PathError(f"unknown field {name!r} in {owner} (fields: {', '.join(fields)})")
