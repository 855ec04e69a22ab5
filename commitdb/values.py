"""Value classes for what Python has no natural type for.

Plain Python values are used wherever they fit (bool, int, float, str, bytes, list, dict, set,
tuple, :class:`uuid.UUID`, ``None`` for an empty optional). This module adds:

* :class:`Key` — a reference to an instance: a concrete concept and an instance uuid.
* :class:`EnumCase` — one case of an enumeration.
* :class:`StructValue` — base of the per-structure classes (attribute access, equality, copy,
  conversion from/to plain dicts). Each structure type builds its own subclass.
* :class:`XArray` — a list addressed by stable uuid positions, with tombstones and the
  :data:`END` sentinel (engine spec §3.5).
* :class:`Typed` — a value tagged with its type, for ``any`` and to pick a variant alternative.
"""

from __future__ import annotations

import copy as _copy
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commitdb.types import ConceptType, EnumerationType, StructureType, Type

__all__ = ("END", "NIL_UUID", "EnumCase", "Key", "StructValue", "Typed", "XArray")

NIL_UUID = uuid.UUID(int=0)
END = NIL_UUID
"""The xarray sentinel position that stands after the last element (the nil uuid)."""


class Key:
    """A reference to an instance of a concept: (concrete concept, instance uuid).

    Two keys are equal when they name the same instance of the same concrete concept; the
    same uuid under another concept is another document.
    """

    __slots__ = ("_hash", "_id_bytes", "concept", "id")

    concept: ConceptType
    id: uuid.UUID
    _hash: int
    _id_bytes: bytes  # id.bytes, computed once: every storage address of the key needs it

    def __init__(self, concept: ConceptType, id: uuid.UUID | str | None = None) -> None:
        if id is None:
            id = uuid.uuid4()
        elif not isinstance(id, uuid.UUID):
            id = uuid.UUID(id)
        object.__setattr__(self, "concept", concept)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "_hash", hash((concept.runtime_id, id)))
        object.__setattr__(self, "_id_bytes", id.bytes)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Key is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return self.id == other.id and self.concept.runtime_id == other.concept.runtime_id

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: Key) -> bool:
        return (self.concept.runtime_id.bytes, self._id_bytes) < (
            other.concept.runtime_id.bytes,
            other._id_bytes,
        )

    def __repr__(self) -> str:
        # str(): the default key of key<Club> / key<any_concept> carries the club or any_concept
        return f"Key({self.concept}, {self.id})"

    def __copy__(self) -> Key:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Key:
        return self

    @property
    def is_nil(self) -> bool:
        """True for the nil instance id (the default key, never writable)."""
        return self.id.int == 0

    def to_parent_key(self) -> Key:
        """The same instance; kept for API familiarity (a key of a child is a key of its parent)."""
        return self


class EnumCase:
    """One case of an enumeration; compares by enumeration and case name."""

    __slots__ = ("enumeration", "index", "name")

    enumeration: EnumerationType
    name: str
    index: int

    def __init__(self, enumeration: EnumerationType, name: str, index: int) -> None:
        object.__setattr__(self, "enumeration", enumeration)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("EnumCase is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnumCase):
            return NotImplemented
        return (
            self.name == other.name and self.enumeration.runtime_id == other.enumeration.runtime_id
        )

    def __hash__(self) -> int:
        return hash((self.enumeration.runtime_id, self.name))

    def __lt__(self, other: EnumCase) -> bool:
        # Cases order by name, not ordinal (engine spec §1.3); cases of different
        # enumerations order by enumeration runtime id first.
        mine, theirs = self.enumeration.runtime_id, other.enumeration.runtime_id
        if mine != theirs:
            return mine.bytes < theirs.bytes
        return self.name < other.name

    def __repr__(self) -> str:
        return f"{self.enumeration.name}.{self.name}"

    def __copy__(self) -> EnumCase:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> EnumCase:
        return self


class StructValue:
    """Base class of structure instances (each structure type makes its own subclass).

    Fields are attributes (``login.nickname``). Methods carry a leading underscore, as in
    :func:`collections.namedtuple`, so that they never collide with field names.
    """

    __slots__ = ()
    _type: StructureType
    _fields: tuple[str, ...]

    def __init__(self, *args: object, **kwargs: object) -> None:
        if len(args) > len(self._fields):
            raise TypeError(
                f"{self._type.name}() takes at most {len(self._fields)} positional arguments"
            )
        given = dict(zip(self._fields, args, strict=False))
        for name, value in kwargs.items():
            if name in given:
                raise TypeError(f"{self._type.name}() got multiple values for field {name!r}")
            given[name] = value
        unknown = set(given) - set(self._fields)
        if unknown:
            raise TypeError(
                f"{self._type.name} has no field {sorted(unknown)[0]!r}; fields: "
                + ", ".join(self._fields)
            )
        for field in self._type.fields:
            if field.name in given:
                value = field.type.check(given[field.name], f".{field.name}")
            else:
                value = field.default_value()
            object.__setattr__(self, field.name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StructValue):
            return NotImplemented
        if self._type.runtime_id != other._type.runtime_id:
            return False
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __hash__(self) -> int:
        # Structures may be set elements or map keys; do not mutate one while it is held there.
        return hash((self._type.runtime_id, *(_hashable(getattr(self, f)) for f in self._fields)))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{self._type.name}({inner})"

    def __copy__(self) -> StructValue:
        new = object.__new__(type(self))
        for f in self._fields:
            object.__setattr__(new, f, getattr(self, f))
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> StructValue:
        new = object.__new__(type(self))
        for f in self._fields:
            object.__setattr__(new, f, _copy.deepcopy(getattr(self, f), memo))
        return new

    def _copy(self) -> StructValue:
        """A deep copy."""
        return _copy.deepcopy(self)

    def _asdict(self) -> dict[str, Any]:
        """Field values as a dict (shallow: nested values keep their classes)."""
        return {f: getattr(self, f) for f in self._fields}

    def _replace(self, **changes: object) -> StructValue:
        """A copy with some fields changed (validated)."""
        values = self._asdict()
        values.update(changes)
        return type(self)(**values)


def _hashable(value: object) -> object:
    if isinstance(value, list | tuple):
        # tuples too: a tuple<vector<T>> value is a tuple holding lists
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        # keys are hashable; no sorting (values of equal key hashes may not be orderable)
        return frozenset((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, set):
        return frozenset(value)
    if isinstance(value, XArray):
        return tuple(value._order)
    return value


class XArray:
    """A list addressed by stable uuid positions.

    Positions are never reused: removing an element leaves a tombstone (the position stays in
    the order, without a value) so that concurrent edits keep their anchors. :data:`END`
    stands after the last position. Equality compares positions, tombstones and values.
    Positions are :class:`uuid.UUID` in the API (16 raw bytes are accepted too) and are kept
    as raw bytes inside, which keeps encoding and decoding cheap.
    """

    __slots__ = ("_order", "_values")

    def __init__(self, values: Iterable[object] = ()) -> None:
        self._order: list[bytes] = []
        self._values: dict[bytes, Any] = {}
        for v in values:
            self.append(v)

    @staticmethod
    def create_position() -> uuid.UUID:
        """A fresh random position."""
        return uuid.uuid4()

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        values = self._values
        return (values[p] for p in self._order if p in values)

    def __contains__(self, position: object) -> bool:
        if isinstance(position, uuid.UUID):
            position = position.bytes
        return position in self._values

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, XArray):
            return NotImplemented
        return self._order == other._order and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(self._order))

    def __repr__(self) -> str:
        return f"XArray({list(self)!r})"

    def positions(self) -> list[uuid.UUID]:
        """Every position ever created, tombstones included, in order, then END."""
        return [*(uuid.UUID(bytes=p) for p in self._order), END]

    def live_positions(self) -> list[uuid.UUID]:
        """Positions that hold a value, in order."""
        values = self._values
        return [uuid.UUID(bytes=p) for p in self._order if p in values]

    def tombstones(self) -> list[uuid.UUID]:
        """Removed positions, in order."""
        values = self._values
        return [uuid.UUID(bytes=p) for p in self._order if p not in values]

    def items(self) -> list[tuple[uuid.UUID, Any]]:
        """(position, value) pairs of live elements, in order."""
        values = self._values
        return [(uuid.UUID(bytes=p), values[p]) for p in self._order if p in values]

    def at(self, position: uuid.UUID | bytes) -> Any:
        """The value at a live position (KeyError otherwise)."""
        try:
            return self._values[_raw(position)]
        except KeyError:
            raise KeyError(f"no element at position {_show(position)}") from None

    def get(self, position: uuid.UUID | bytes, default: Any = None) -> Any:
        """The value at a live position, or `default`."""
        return self._values.get(_raw(position), default)

    def position(self, index: int) -> uuid.UUID:
        """The position of the index-th live element."""
        return self.live_positions()[index]

    def index(self, position: uuid.UUID | bytes) -> int:
        """The index among live elements of a position (ValueError if not live)."""
        raw = _raw(position)
        values = self._values
        return [p for p in self._order if p in values].index(raw)

    def position_of(self, value: object) -> uuid.UUID | None:
        """The first live position holding an equal value, or None."""
        for p, v in self.items():
            if v == value:
                return p
        return None

    def has_position(self, position: uuid.UUID | bytes) -> bool:
        """True if the position exists, live or tombstoned."""
        raw = _raw(position)
        return raw in self._values or raw in self._order

    def to_list(self) -> list[Any]:
        """Live values in order."""
        return list(self)

    # -- writing (user API) ----------------------------------------------------------------
    def append(self, value: object, position: uuid.UUID | None = None) -> uuid.UUID:
        """Add a value at the end; returns its new position."""
        return self.insert(END, value, position)

    def insert(
        self, before: uuid.UUID | bytes, value: object, new: uuid.UUID | None = None
    ) -> uuid.UUID:
        """Insert a value before a position (END appends); returns the new position."""
        new = new or uuid.uuid4()
        raw_new = new.bytes
        if raw_new == _END_RAW:
            raise ValueError("END is not a valid new position")
        if self.has_position(raw_new):
            raise ValueError(f"position {new} already exists")
        raw_before = _raw(before)
        if raw_before != _END_RAW and not self.has_position(raw_before):
            raise KeyError(f"unknown position {_show(before)}")
        self.apply_insert(raw_before, raw_new)
        self._values[raw_new] = value
        return new

    def set(self, position: uuid.UUID | bytes, value: object) -> None:
        """Write a value at an existing live position (END or unknown raise)."""
        raw = _raw(position)
        if raw not in self._values:
            raise KeyError(f"no element at position {_show(position)}")
        self._values[raw] = value

    def remove(self, position: uuid.UUID | bytes) -> None:
        """Remove the element at a live position, leaving a tombstone."""
        raw = _raw(position)
        if raw not in self._values:
            raise KeyError(f"no element at position {_show(position)}")
        del self._values[raw]

    # -- replay semantics (engine spec §3.5); never raise ---------------------------------
    def apply_insert(self, before: uuid.UUID | bytes, new: uuid.UUID | bytes) -> bool:
        """XArray_Insert: place `new` before `before`; returns False when nothing changed."""
        raw_new = _raw(new)
        if raw_new == _END_RAW or self.has_position(raw_new):
            return False
        raw_before = _raw(before)
        if raw_before == _END_RAW:
            self._order.append(raw_new)
            return True
        try:
            i = self._order.index(raw_before)
        except ValueError:
            return False
        self._order.insert(i, raw_new)
        return True

    def apply_update(self, position: uuid.UUID | bytes, value: object) -> bool:
        """XArray_Update: write (and revive) an existing position; False if unknown."""
        raw = _raw(position)
        if raw in self._values or (raw != _END_RAW and raw in self._order):
            self._values[raw] = value
            return True
        return False

    def apply_remove(self, position: uuid.UUID | bytes) -> bool:
        """XArray_Remove: tombstone a position; False if it holds no value."""
        return self._values.pop(_raw(position), _MISSING) is not _MISSING

    def __copy__(self) -> XArray:
        new = XArray()
        new._order = list(self._order)
        new._values = dict(self._values)
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> XArray:
        new = XArray()
        new._order = list(self._order)
        new._values = {p: _copy.deepcopy(v, memo) for p, v in self._values.items()}
        return new

    @classmethod
    def _from_parts(cls, order: list[bytes], values: dict[bytes, Any]) -> XArray:
        new = cls.__new__(cls)
        new._order = order
        new._values = values
        return new


_END_RAW = bytes(16)


def _raw(position: uuid.UUID | bytes) -> bytes:
    if isinstance(position, uuid.UUID):
        return position.bytes
    if isinstance(position, bytes) and len(position) == 16:
        return position
    raise TypeError(f"an xarray position is a uuid, not {type(position).__name__}")


def _show(position: uuid.UUID | bytes) -> str:
    return str(uuid.UUID(bytes=position) if isinstance(position, bytes) else position)


_MISSING = object()


class Typed:
    """A value tagged with its type: the content of an ``any``, or a chosen variant alternative."""

    __slots__ = ("type", "value")

    type: Type
    value: Any

    def __init__(self, type: Type, value: object) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "value", type.check(value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Typed is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Typed):
            return NotImplemented
        return self.type == other.type and self.value == other.value

    def __hash__(self) -> int:
        return hash((self.type, _hashable(self.value)))

    def __repr__(self) -> str:
        return f"Typed({self.type}, {self.value!r})"

    def __copy__(self) -> Typed:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Typed:
        # the default reconstruction would go through the refusing __setattr__
        new = object.__new__(Typed)
        object.__setattr__(new, "type", self.type)
        object.__setattr__(new, "value", _copy.deepcopy(self.value, memo))
        return new
