r"""Paths into documents (engine spec §2.2): build, print, parse, resolve, read, write, encode.

A :class:`Path` is an immutable sequence of components; the empty path is the root. There are
seven components: :class:`Field`, :class:`Index`, :class:`MapKey`, :class:`Position` and
:class:`Unwrap` are *regular* (they may appear in an update); :class:`Entry` and
:class:`Element` are *irregular*: they address a value that is its own key (a map key, a set
element), which only :meth:`Path.at` and :meth:`Path.patch` accept.

Text form
---------
``str(path)`` prints, and :meth:`Path.parse` reads back, this grammar::

    path     := "."                            the root
              | step+
    step     := "." NAME                       field (NAME = [A-Za-z_][A-Za-z0-9_]*, except
              | "." STRING                       "entry" and "element"; other names are quoted)
              | "[" DIGITS "]"                 index (vector, tuple, vec, mat)
              | "[" "@" UUID "]"               xarray position
              | "[" LITERAL "]"                map key
              | "[" LITERAL "]" ".entry"       the map entry itself; then [0] key, [1] value
              | ".element" "[" DIGITS "]"      i-th element of a set in canonical order
              | "!"                            unwrap an optional, a variant or an any
    LITERAL  := STRING                         'text' or "text" (escapes: \\ \' \" \n \r \t
                                                 \0 \xHH \uHHHH \UHHHHHHHH)
              | "#" NUMBER                     integer (#3, #-1) or float (#1.5, #1e+16, #inf,
                                                 #-inf, #nan): a number key always has a "#"
              | "true" | "false" | "nil"
              | UUID                           {01234567-89ab-cdef-0123-456789abcdef}
              | "x" STRING                     bytes as hexadecimal: x'00ff'
              | "(" LITERAL ("," LITERAL)* [","] ")"    a tuple (spaces allowed inside)

so ``[3]`` is always an index and ``[#3]`` always an integer map key, ``[{uuid}]`` a uuid map
key and ``[@{uuid}]`` an xarray position. Examples: ``.topology.vertexKeys``,
``.scores['alice']``, ``.by_id[#42].name``, ``.maybe!``, ``.items[@{…}]``,
``.scores['alice'].entry[0]``, ``.tags.element[2]``, ``.'entry'`` (a field named entry).

``Path.parse(str(p)) == p`` for every path whose keys are strings, integers, floats, bools,
uuids, None, bytes or tuples of those. Other keys print in a form that normalizes back
(:meth:`Path.normalize`): an enumeration case as its name, a key as its instance uuid, a
structure as the tuple of its fields.

Values
------
Reads and writes follow the replay rules (engine spec §3.1-§3.2, §5.4): every failure is a
:class:`~commitdb.errors.PathError` (the replay records it and goes on). An unwrap (``!``)
checks that a value is present and keeps it as it is: the content of a variant or an ``any``
stays wrapped in its :class:`~commitdb.values.Typed` (the type :meth:`Path.resolve` gives
there is the variant, or ``any``), and the next step looks inside the wrapper.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from commitdb import codec
from commitdb.errors import DecodeError, PathError, ValidationError
from commitdb.ids import BlobId, CommitId
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
from commitdb.values import EnumCase, Key, StructValue, Typed, XArray

if TYPE_CHECKING:
    from commitdb.definitions import Definitions

__all__ = (
    "Component",
    "Element",
    "Entry",
    "Field",
    "Index",
    "MapKey",
    "Path",
    "Position",
    "Unwrap",
    "element_sort_key",
    "sorted_elements",
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = frozenset({"entry", "element"})
_DIGITS = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"-?(?:inf|nan|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)")
_WORD = re.compile(r"[A-Za-z]+")
_UUID = re.compile(
    r"\{([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}"
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "0": "\0"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_NO_VALUE = object()

# --------------------------------------------------------------------------------------------
# Components


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


class Index(Component):
    """An element of a vector, tuple, vec or mat (or of a map entry): ``[i]``."""

    __slots__ = ("index",)
    kind = "index"
    index: int

    def __init__(self, index: int) -> None:
        object.__setattr__(self, "index", _check_index(index, "an index"))
        self._seal((self.index,))

    @property
    def value(self) -> int:
        """The index."""
        return self.index

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


class MapKey(Component):
    """The value of a map under a key (any hashable value): ``['k']``, ``[#3]``, ``[{uuid}]``."""

    __slots__ = ("key",)
    kind = "key"
    key: Any

    def __init__(self, key: object) -> None:
        object.__setattr__(self, "key", _check_key(key))
        self._seal((_key_token(key),))

    @property
    def value(self) -> Any:
        """The map key."""
        return self.key

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

    def __str__(self) -> str:
        return "!"


class Entry(Component):
    """A map entry itself, followed by ``[0]`` (its key) or ``[1]`` (its value): irregular."""

    __slots__ = ("key",)
    kind = "entry"
    regular = False
    key: Any

    def __init__(self, key: object) -> None:
        object.__setattr__(self, "key", _check_key(key))
        self._seal((_key_token(key),))

    @property
    def value(self) -> Any:
        """The map key of the entry."""
        return self.key

    def __str__(self) -> str:
        return f"[{_literal(self.key)}].entry"


class Element(Component):
    """The i-th element of a set in canonical order (:func:`sorted_elements`): irregular."""

    __slots__ = ("index",)
    kind = "element"
    regular = False
    index: int

    def __init__(self, index: int) -> None:
        object.__setattr__(self, "index", _check_index(index, "an element index"))
        self._seal((self.index,))

    @property
    def value(self) -> int:
        """The element index."""
        return self.index

    def __str__(self) -> str:
        return f".element[{self.index}]"


# --------------------------------------------------------------------------------------------
# Canonical order of set elements


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


# --------------------------------------------------------------------------------------------
# Text


def _quote(text: str) -> str:
    out = ["'"]
    for ch in text:
        if ch == "\\" or ch == "'":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable():
            out.append(ch)
        else:
            o = ord(ch)
            out.append(
                f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
            )
    out.append("'")
    return "".join(out)


def _literal(key: object) -> str:
    """The text of a map key (see the grammar in the module docstring)."""
    if isinstance(key, str):
        return _quote(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "nil"
    if isinstance(key, int):
        return f"#{int(key)}"
    if isinstance(key, float):
        return f"#{float(key)!r}"
    if isinstance(key, uuid.UUID):
        return f"{{{key}}}"
    if isinstance(key, BlobId | CommitId):
        return _quote(key.hex())
    if isinstance(key, bytes):
        return f"x'{key.hex()}'"
    if isinstance(key, tuple):
        inner = ", ".join(_literal(x) for x in key)
        return f"({inner},)" if len(key) == 1 else f"({inner})"
    if isinstance(key, EnumCase):
        return _quote(key.name)
    if isinstance(key, Key):
        return f"{{{key.id}}}"
    if isinstance(key, Typed):
        return _literal(key.value)
    if isinstance(key, StructValue):
        return _literal(tuple(getattr(key, f) for f in key._fields))
    return f"<{key!r}>"


class _Parser:
    """A recursive-descent parser of the text form; errors name the 1-based column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> PathError:
        column = (self.pos if pos is None else pos) + 1
        return PathError(f"{message} at column {column} of path {self.text!r}")

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {ch!r}, found {found}")
        self.pos += 1

    def parse(self) -> Path:
        text = self.text
        if text == ".":
            return Path()
        if not text:
            raise self.error("empty path (the root is written '.')")
        comps: list[Component] = []
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == ".":
                self.dot(comps)
            elif ch == "[":
                self.bracket(comps)
            elif ch == "!":
                comps.append(Unwrap())
                self.pos += 1
            else:
                raise self.error(f"unexpected {ch!r} (a step starts with '.', '[' or '!')")
        return Path._of(tuple(comps))

    def dot(self, comps: list[Component]) -> None:
        start = self.pos
        self.pos += 1
        if self.peek() in ("'", '"'):
            comps.append(self.component(start, Field, self.parse_string()))
            return
        m = _IDENT.match(self.text, self.pos)
        if m is None:
            raise self.error("expected a field name after '.'")
        name = m.group()
        self.pos = m.end()
        if name == "element":
            if self.peek() != "[":
                raise self.error(
                    "'.element' must be followed by [i] (write a field named element as "
                    ".'element')",
                    start,
                )
            self.pos += 1
            i = self.digits()
            self.expect("]")
            comps.append(Element(i))
        elif name == "entry":
            if not comps or not isinstance(comps[-1], MapKey):
                raise self.error(
                    "'.entry' must follow a map key such as ['k'] (write a field named entry "
                    "as .'entry')",
                    start,
                )
            comps[-1] = Entry(comps[-1].key)
        else:
            comps.append(Field(name))

    def bracket(self, comps: list[Component]) -> None:
        start = self.pos
        self.pos += 1
        ch = self.peek()
        if ch.isdigit() and ch.isascii():
            comps.append(Index(self.digits()))
        elif ch == "@":
            self.pos += 1
            comps.append(self.component(start, Position, self.parse_uuid()))
        elif ch == "-" and self.peek(1).isdigit():
            raise self.error("an index is >= 0 (write an integer map key as [#-1])")
        else:
            comps.append(self.component(start, MapKey, self.parse_literal()))
        self.expect("]")

    def component(self, start: int, cls: Callable[[Any], Component], payload: object) -> Component:
        try:
            return cls(payload)
        except PathError as exc:
            raise self.error(str(exc), start) from None

    def digits(self) -> int:
        m = _DIGITS.match(self.text, self.pos)
        if m is None:
            raise self.error("expected digits")
        self.pos = m.end()
        return int(m.group())

    def parse_uuid(self) -> uuid.UUID:
        m = _UUID.match(self.text, self.pos)
        if m is None:
            raise self.error("expected a uuid in braces: {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}")
        self.pos = m.end()
        return uuid.UUID(m.group(1))

    def parse_literal(self) -> object:
        start = self.pos
        ch = self.peek()
        if ch in ("'", '"'):
            return self.parse_string()
        if ch == "#":
            self.pos += 1
            m = _NUMBER.match(self.text, self.pos)
            if m is None:
                raise self.error("expected a number after '#'")
            self.pos = m.end()
            text = m.group()
            if any(c in text for c in ".eEin"):
                return float(text)
            return int(text)
        if ch == "{":
            return self.parse_uuid()
        if ch == "(":
            return self.parse_tuple()
        if ch == "x" and self.peek(1) in ("'", '"'):
            self.pos += 1
            text = self.parse_string()
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise self.error("expected hexadecimal digits in x'…'", start) from None
        m = _WORD.match(self.text, self.pos)
        if m is not None and m.group() in ("true", "false", "nil"):
            self.pos = m.end()
            return {"true": True, "false": False, "nil": None}[m.group()]
        raise self.error(
            "expected a map key: 'text', #number, true, false, nil, {uuid}, x'hex' or (…)"
        )

    def parse_tuple(self) -> tuple[object, ...]:
        self.pos += 1
        items: list[object] = []
        self.spaces()
        while self.peek() != ")":
            items.append(self.parse_literal())
            self.spaces()
            if self.peek() == ",":
                self.pos += 1
                self.spaces()
            elif self.peek() != ")":
                raise self.error("expected ',' or ')' in a tuple")
        self.pos += 1
        return tuple(items)

    def spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def parse_string(self) -> str:
        start = self.pos
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.error("unterminated string", start)
            ch = text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            esc = self.peek()
            self.pos += 1
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
            elif esc in _HEX_ESCAPES:
                n = _HEX_ESCAPES[esc]
                digits = text[self.pos : self.pos + n]
                if len(digits) != n or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error(f"expected {n} hexadecimal digits after \\{esc}")
                code = int(digits, 16)
                if code > 0x10FFFF:
                    raise self.error(f"\\{esc}{digits} is not a unicode code point")
                out.append(chr(code))
                self.pos += n
            else:
                raise self.error(f"unknown escape \\{esc}", self.pos - 2)


# --------------------------------------------------------------------------------------------
# Resolution against a type


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


def _name(comp: Component) -> str:
    return "map key" if isinstance(comp, MapKey) else comp.kind


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
            fields = ", ".join(f.name for f in t.fields)
            raise PathError(f"unknown field {comp.name!r} in {t} (fields: {fields})")
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


# --------------------------------------------------------------------------------------------
# Values


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
            fields = ", ".join(c._fields)
            raise PathError(f"unknown field {comp.name!r} in {c._type} (fields: {fields})")
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
            fields = ", ".join(c._fields)
            raise PathError(f"unknown field {comp.name!r} in {c._type} (fields: {fields})")
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


# --------------------------------------------------------------------------------------------
# Path


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
        if not self._components:
            return "."
        return "".join(str(c) for c in self._components)

    def __repr__(self) -> str:
        return f"Path({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Path:
        """Read the text form (module docstring); PathError names the column of a mistake."""
        if not isinstance(text, str):
            raise PathError(f"a path text is a string, not {type(text).__name__}")
        return _Parser(text).parse()

    # -- identity ------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._components == other._components

    def __hash__(self) -> int:
        return self._hash

    # -- types ---------------------------------------------------------------------------
    def _located(self, exc: PathError, i: int) -> PathError:
        where = Path._of(self._components[: i + 1])
        at = f"at {where}" if i + 1 == len(self._components) else f"at {where} in {self}"
        return PathError(f"{exc} ({at})")

    def _analyze(self, doc_type: Type) -> tuple[Type, list[_Step]]:
        states = [_State(doc_type)]
        steps: list[_Step] = []
        for i, comp in enumerate(self._components):
            try:
                step = _advance(states, comp)
            except PathError as exc:
                raise self._located(exc, i) from None
            steps.append(step)
            states = step.states
        return _result_type(states), steps

    def resolve(self, doc_type: Type) -> Type:
        """The type this path reaches in a document of `doc_type`.

        Raises PathError when the path cannot exist for the type (the message says why and
        where). Beyond an unwrapped ``any`` nothing is known statically and the result is
        ``ANY``; an unwrapped variant gives the variant itself (a value written there is a
        value the variant accepts); steps after it go to the alternatives they fit, and when
        these reach different types the result is ``ANY``. ``[k].entry`` reaches
        ``tuple<K, V>``.
        """
        return self._analyze(doc_type)[0]

    def normalize(self, doc_type: Type) -> Path:
        """This path with its map keys checked and normalized by the key types of `doc_type`
        (a uuid string for ``map<uuid, …>``, a case name for an enumeration, an int for a
        ``double`` key, a uuid for ``key<C>``, a tuple for a structure key)."""
        _, steps = self._analyze(doc_type)
        return Path._of(tuple(s.comp for s in steps))

    # -- values --------------------------------------------------------------------------
    def _guarded(self, what: str, exc: Exception) -> PathError:
        return PathError(f"cannot {what} {self}: {type(exc).__name__}: {exc}")

    def at(self, value: Any) -> Any:
        """The value this path addresses in `value`.

        Raises PathError with the replay messages: ``Index 4 is out of range``, ``Try to
        unwrap empty optional``, ``Key 'zz' not found``, ``Position {…} not found`` (or ``is
        removed``), ``Element 2 is out of range``, ``unknown field …``. ``[k].entry`` gives
        the pair ``(k, value)``.
        """
        try:
            opened = False
            for comp in self._components:
                if isinstance(comp, Unwrap):
                    value, opened = _unwrap(value, opened)
                else:
                    value = _get(_strip(value), comp)
                    opened = False
            return value
        except PathError:
            raise
        except _GUARDED as exc:
            raise self._guarded("read", exc) from None

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
        comps = self._components
        if not comps:
            raise PathError("unexpected root Path")
        if not self.is_regular:
            raise PathError(f"cannot set at {self}: .entry and .element need patch()")
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
            raise self._guarded("set", exc) from None

    def patch(self, doc: Any, new_value: Any) -> Any:
        """Replace a value that is its own key; returns the root.

        The path ends with ``.element[i]`` (the set element is replaced by `new_value`; if
        it is already a member the set shrinks) or with ``[k].entry[0]`` (the map key ``k``
        becomes `new_value`, keeping its value; an existing entry under `new_value` is
        overwritten). Everything before must be regular.
        """
        comps = self._components
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
                f"cannot patch at {self}: patch addresses a set element (.element[i]) or a map "
                "key (['k'].entry[0])"
            )
        if not all(c.regular for c in prefix):
            raise PathError(f"cannot patch at {self}: only its last step may be irregular")
        try:
            return _modify(doc, False, prefix, 0, lambda c: _through_typed(c, op))
        except PathError:
            raise
        except _GUARDED as exc:
            raise self._guarded("patch", exc) from None

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
        _, steps = self._analyze(doc_type)
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
                    raise PathError(f"cannot encode the key of {c} in {self}: {exc}") from None
                item = [0 if isinstance(c, MapKey) else 1, w]
                if step.choice is not None:
                    item.append(step.choice)
                out.append(item)
        return out

    @classmethod
    def from_wire(cls, wire: Any, doc_type: Type, definitions: Definitions | None = None) -> Path:
        """Rebuild a path from :meth:`to_wire` (raises DecodeError on malformed input).

        ``Path.from_wire(p.to_wire(t), t) == p.normalize(t)``. `definitions` are needed for
        keys of sub-concepts and named types inside an ``any``.
        """
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
        return cls._of(tuple(comps))


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
