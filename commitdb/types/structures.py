"""Structures: :class:`StructureType` and its :class:`Field` declarations."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from commitdb.errors import DefinitionError, ValidationError
from commitdb.types.base import Type, _first_duplicate, _rid
from commitdb.types.named import NamedType, Namespace
from commitdb.types.storable import _require_storable
from commitdb.values import StructValue, Typed, XArray

__all__ = ("Field", "StructureType")


class Field:
    """A structure field: name, type, default (None means the type's zero) and documentation."""

    __slots__ = ("default", "documentation", "name", "type")

    def __init__(
        self,
        name: str,
        type: Type,
        default: object = None,
        documentation: str | None = None,
    ) -> None:
        self.name = name
        self.type = type
        _require_storable(type, f"field {name}")
        if default is not None:
            default = type.check(default, f".{name}")
            _check_default(default, name)
            if default == type.default():
                default = None  # a default equal to the zero value is not retained
        self.default = default
        self.documentation = documentation

    def default_value(self) -> Any:
        """A fresh copy of the field's default (or the type's zero)."""
        if self.default is None:
            return self.type.default()
        return _fresh(self.default)

    def __repr__(self) -> str:
        d = f" = {self.default!r}" if self.default is not None else ""
        return f"<field {self.type} {self.name}{d}>"


def _check_default(value: object, name: str) -> None:
    """Refuse defaults that would make a structure's runtime id unstable or non-portable:
    non-finite floats (engine spec §1.3) and non-empty xarrays (fresh random positions)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DefinitionError(f"field {name}: a default may not be non-finite ({value})")
    elif isinstance(value, XArray):
        if value.positions()[:-1]:
            raise DefinitionError(f"field {name}: an xarray default must be empty")
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            _check_default(v, name)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_default(k, name)
            _check_default(v, name)
    elif isinstance(value, StructValue):
        for f in value._fields:
            _check_default(getattr(value, f), name)
    elif isinstance(value, Typed):
        _check_default(value.value, name)


def _fresh(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


class StructureType(NamedType):
    """A structure: at least one uniquely named field, in order, with optional defaults.

    Calling the type builds an instance: ``Login(nickname="ada")``; missing fields take
    their defaults. ``from_dict``/``to_dict`` convert from/to plain nested dicts.
    """

    __slots__ = ("_index", "fields", "value_class")
    kind = "struct"

    def __init__(
        self,
        namespace: Namespace,
        name: str,
        fields: Iterable[Field],
        documentation: str | None = None,
    ) -> None:
        super().__init__(namespace, name, documentation)
        self.fields = tuple(fields)
        if not self.fields:
            raise DefinitionError(f"structure {name} needs at least one field")
        names = [f.name for f in self.fields]
        for n in names:
            # field names become attributes of the value class; '_' names are its own
            if not isinstance(n, str) or not (n.isascii() and n.isidentifier()) or n[0] == "_":
                raise DefinitionError(f"structure {name}: invalid field name {n!r}")
        dup = _first_duplicate(names)
        if dup is not None:
            raise DefinitionError(f"structure {name} has field {dup!r} twice")
        self._index = {f.name: f for f in self.fields}
        self.value_class: type[StructValue] = type(
            name,
            (StructValue,),
            {
                "__slots__": tuple(names),
                "_type": self,
                "_fields": tuple(names),
                # the public home of the value classes, as before commitdb.types was split
                "__module__": "commitdb.types",
            },
        )

    def _compute_runtime_id(self) -> uuid.UUID:
        from commitdb.codec import encode

        parts: list[bytes | str] = [self.kind, self.namespace.uuid.bytes, self.name]
        for f in self.fields:
            default = b"" if f.default is None else encode(f.default, f.type)
            parts += [f.name, f.type.runtime_id.bytes, default]
        return _rid(*parts)

    def children(self) -> tuple[Type, ...]:
        return tuple(f.type for f in self.fields)

    def field(self, name: str) -> Field:
        """The field with this name (KeyError names the structure's fields)."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(
                f"{self.qualified_name} has no field {name!r} (fields: {', '.join(self._index)})"
            ) from None

    def has_field(self, name: str) -> bool:
        """True if the structure has this field."""
        return name in self._index

    def __call__(self, *args: object, **kwargs: object) -> Any:
        return self.value_class(*args, **kwargs)

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, StructValue):
            if value._type is not self and value._type != self:
                raise self.fail(value, where)
            new = object.__new__(self.value_class)
            for f in self.fields:
                object.__setattr__(
                    new, f.name, f.type.check(getattr(value, f.name), f"{where}.{f.name}")
                )
            return new
        if isinstance(value, Mapping):
            return self.from_dict(value, where)
        raise self.fail(value, where)

    def from_dict(self, data: Mapping[str, Any], where: str = "") -> Any:
        """Build an instance from a dict (missing fields take defaults; unknown fields fail)."""
        for name in data:
            if name not in self._index:
                raise ValidationError(
                    f"a field of {self.qualified_name} ({', '.join(self._index)})",
                    f"unknown field {name!r}",
                    where,
                )
        new = object.__new__(self.value_class)
        for f in self.fields:
            if f.name in data:
                v = f.type.check(data[f.name], f"{where}.{f.name}")
            else:
                v = f.default_value()
            object.__setattr__(new, f.name, v)
        return new

    def default(self) -> Any:
        new = object.__new__(self.value_class)
        for f in self.fields:
            object.__setattr__(new, f.name, f.default_value())
        return new
