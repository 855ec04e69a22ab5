"""The :class:`Path` itself: an immutable sequence of components, its builders and queries.

Reading its text, resolving it against a type, reading and writing values and the wire form
are the modules beside this one; :class:`Path` gathers them under its methods.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from commitdb.errors import PathError
from commitdb.paths import access, wire as wire_form
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
from commitdb.paths.parser import _Parser
from commitdb.paths.resolution import analyze
from commitdb.types import Type

if TYPE_CHECKING:
    from commitdb.definitions import Definitions

__all__ = ("Path",)


class Path:
    """An immutable, hashable sequence of components; the empty path is the root.

    Builders (:meth:`field`, :meth:`index`, :meth:`key`, ...) return new paths; ``path / "x"``
    appends a field and ``path / other`` appends another path. Two paths are equal when their
    components are.
    """

    __slots__ = ("_components", "_hash")
    _components: tuple[Component, ...]
    _hash: int

    def __init__(self, components: Iterable[Component] = ()) -> None:
        """Build a path from components (``Path()`` is the root; text goes to :meth:`parse`)."""
        if isinstance(components, str):
            raise PathError("Path() takes components; use Path.parse(text) to read a path")
        comps = tuple(components)
        for c in comps:
            if not isinstance(c, Component):
                raise PathError(f"not a path component: {c!r}")
        self._init(comps)

    def _init(self, comps: tuple[Component, ...]) -> None:
        object.__setattr__(self, "_components", comps)
        object.__setattr__(self, "_hash", hash(comps))

    @classmethod
    def _of(cls, comps: tuple[Component, ...]) -> Path:
        new = object.__new__(cls)
        new._init(comps)
        return new

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Path is immutable")

    # Immutable: a copy is the path itself; pickling rebuilds it from its components.
    def __copy__(self) -> Path:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Path:
        return self

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return (Path, (self._components,))

    # -- building ------------------------------------------------------------------------
    @classmethod
    def root(cls) -> Path:
        """The root path ``.`` (the whole document)."""
        return cls._of(())

    def _plus(self, comp: Component) -> Path:
        return Path._of((*self._components, comp))

    def field(self, name: str) -> Path:
        """This path then a structure field."""
        return self._plus(Field(name))

    def index(self, index: int) -> Path:
        """This path then an element of a vector, tuple, vec or mat."""
        return self._plus(Index(index))

    def key(self, key: object) -> Path:
        """This path then the value of a map under `key`."""
        return self._plus(MapKey(key))

    def position(self, position: uuid.UUID | str | bytes) -> Path:
        """This path then the xarray element at `position`."""
        return self._plus(Position(position))

    def unwrap(self) -> Path:
        """This path then the content of an optional, a variant or an any."""
        return self._plus(Unwrap())

    def entry(self, key: object) -> Path:
        """This path then the map entry under `key` (follow with ``.index(0)`` or ``(1)``)."""
        return self._plus(Entry(key))

    def element(self, index: int) -> Path:
        """This path then the index-th element of a set in canonical order."""
        return self._plus(Element(index))

    def __truediv__(self, other: str | Path | Component) -> Path:
        """``path / "name"`` appends a field; ``path / other`` appends a path or a component."""
        if isinstance(other, str):
            return self.field(other)
        if isinstance(other, Path):
            return Path._of(self._components + other._components)
        if isinstance(other, Component):
            return self._plus(other)
        return NotImplemented

    # -- queries -------------------------------------------------------------------------
    @property
    def components(self) -> tuple[Component, ...]:
        """The components, in order."""
        return self._components

    @property
    def is_root(self) -> bool:
        """True for the root path ``.``."""
        return not self._components

    @property
    def last(self) -> Component | None:
        """The last component (None for the root)."""
        return self._components[-1] if self._components else None

    @property
    def is_regular(self) -> bool:
        """True when the path has no :class:`Entry` and no :class:`Element` (updatable)."""
        return all(c.regular for c in self._components)

    def parent(self) -> Path:
        """The path without its last component (PathError for the root)."""
        if not self._components:
            raise PathError("the root path has no parent")
        return Path._of(self._components[:-1])

    def ancestors(self) -> tuple[Path, ...]:
        """This path, its parent, ... down to the root."""
        comps = self._components
        return tuple(Path._of(comps[:n]) for n in range(len(comps), -1, -1))

    def has_prefix(self, prefix: Path) -> bool:
        """True if `prefix` is this path or one of its ancestors."""
        n = len(prefix._components)
        return self._components[:n] == prefix._components

    def regularized(self) -> Path:
        """The nearest regular path (engine spec §2.2).

        ``.element[i]`` becomes ``[i]`` and ``[k].entry[0]`` becomes ``[k]`` (what follows them
        addresses parts of a key, which no regular path reaches, and is dropped);
        ``[k].entry[1]`` becomes ``[k]`` and keeps what follows.
        """
        comps = self._components
        out: list[Component] = []
        i = 0
        while i < len(comps):
            c = comps[i]
            if isinstance(c, Element):
                out.append(Index(c.index))
                break
            if isinstance(c, Entry):
                out.append(MapKey(c.key))
                nxt = comps[i + 1] if i + 1 < len(comps) else None
                if isinstance(nxt, Index) and nxt.index == 0:
                    break
                i += 2 if isinstance(nxt, Index) and nxt.index == 1 else 1
                continue
            out.append(c)
            i += 1
        return Path._of(tuple(out))

    # -- text ----------------------------------------------------------------------------
    def __str__(self) -> str:
        return _text(self._components)

    def __repr__(self) -> str:
        return f"Path({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Path:
        """Read the text form (module docstring); PathError names the column of a mistake."""
        if not isinstance(text, str):
            raise PathError(f"a path text is a string, not {type(text).__name__}")
        return cls._of(_Parser(text).parse())

    # -- identity ------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._components == other._components

    def __hash__(self) -> int:
        return self._hash

    # -- types ---------------------------------------------------------------------------
    def resolve(self, doc_type: Type) -> Type:
        """The type this path reaches in a document of `doc_type`.

        Raises PathError when the path cannot exist for the type (the message says why and
        where). Beyond an unwrapped ``any`` nothing is known statically and the result is
        ``ANY``; an unwrapped variant gives the variant itself (a value written there is a
        value the variant accepts); steps after it go to the alternatives they fit, and when
        these reach different types the result is ``ANY``. ``[k].entry`` reaches
        ``tuple<K, V>``.
        """
        return analyze(self._components, doc_type)[0]

    def normalize(self, doc_type: Type) -> Path:
        """This path with its map keys checked and normalized by the key types of `doc_type`
        (a uuid string for ``map<uuid, …>``, a case name for an enumeration, an int for a
        ``double`` key, a uuid for ``key<C>``, a tuple for a structure key)."""
        _, steps = analyze(self._components, doc_type)
        return Path._of(tuple(s.comp for s in steps))

    # -- values --------------------------------------------------------------------------
    def at(self, value: Any) -> Any:
        """The value this path addresses in `value`.

        Raises PathError with the replay messages: ``Index 4 is out of range``, ``Try to
        unwrap empty optional``, ``Key 'zz' not found``, ``Position {…} not found`` (or ``is
        removed``), ``Element 2 is out of range``, ``unknown field …``. ``[k].entry`` gives
        the pair ``(k, value)``.
        """
        return access.read(self._components, value)

    def set_in(self, doc: Any, new_value: Any) -> Any:
        """Assign `new_value` at this path with the replay rules; returns the root.

        Containers are changed in place (structures, lists, dicts, xarrays); immutable ones
        (tuples for tuple/vec/mat, Typed wrappers) are rebuilt in their parent, so the root
        returned may be a new object. `new_value` is stored as given (normalize it first).

        Rules (engine spec §3.1-§3.2): the root path raises ``unexpected root Path``; a map
        key as the last step inserts a missing key, in the middle it raises ``Key … not
        found``; an unwrap as the last step(s) stores into the slot of the optional, variant
        or any (a nil optional becomes present), in the middle on nil it raises ``Try to
        unwrap empty optional``; a position as the last step writes and revives a removed
        element, an unknown one raises; an index out of range raises ``Index N is out of
        range``. Every failure is a PathError; nothing is changed by a failing call.
        """
        return access.write(self._components, doc, new_value)

    def patch(self, doc: Any, new_value: Any) -> Any:
        """Replace a value that is its own key; returns the root.

        The path ends with ``.element[i]`` (the set element is replaced by `new_value`; if
        it is already a member the set shrinks) or with ``[k].entry[0]`` (the map key ``k``
        becomes `new_value`, keeping its value; an existing entry under `new_value` is
        overwritten). Everything before must be regular.
        """
        return access.patch(self._components, doc, new_value)

    # -- wire ----------------------------------------------------------------------------
    def to_wire(self, doc_type: Type) -> list[Any]:
        """The compact, deterministic wire form of this path for documents of `doc_type`.

        One item per component: a field is its name (str), an index its int, a position its
        16 raw bytes, an unwrap nil, an element ``[2, i]``, a map key ``[0, key]`` and an
        entry ``[1, key]`` with the key in :func:`commitdb.codec.to_wire` form for the map's
        key type (inside an ``any``: in ``any`` form); when several variant alternatives
        could hold the map, a third item says which one's key type encodes the key.
        Raises PathError when the path does not fit `doc_type`.
        """
        return wire_form.to_wire(self._components, doc_type)

    @classmethod
    def from_wire(cls, wire: Any, doc_type: Type, definitions: Definitions | None = None) -> Path:
        """Rebuild a path from :meth:`to_wire` (raises DecodeError on malformed input).

        ``Path.from_wire(p.to_wire(t), t) == p.normalize(t)``. `definitions` are needed for
        keys of sub-concepts and named types inside an ``any``.
        """
        return cls._of(wire_form.from_wire(wire, doc_type, definitions))
