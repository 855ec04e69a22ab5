"""Type descriptors of the DSM type system.

Every type is an immutable object with:

* ``check(value, where="")`` — validate a Python value and return its normalized form
  (e.g. a list becomes a set for ``set<T>``, ``"active"`` becomes an :class:`EnumCase`),
  raising :class:`~commitdb.errors.ValidationError` that says what was expected, what was
  given and where;
* ``default()`` — the zero value;
* ``runtime_id`` — a stable, content-derived 16-byte uuid (documentation never enters it);
* ``str(t)`` — the DSM spelling (``map<string, int64>``, ``Graph::Vertex``).

Named types (concept, club, enumeration, structure) and attachments belong to a
:class:`Namespace` and are registered in a :class:`~commitdb.definitions.Definitions`.
"""

from __future__ import annotations

import hashlib
import math
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, cast

from commitdb.errors import DefinitionError, ValidationError
from commitdb.ids import BlobId, CommitId
from commitdb.values import NIL_UUID, EnumCase, Key, StructValue, Typed, XArray

__all__ = (
    "ANY",
    "ANY_CONCEPT",
    "BLOB",
    "BLOB_ID",
    "BOOL",
    "COMMIT_ID",
    "DOUBLE",
    "FLOAT",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "PRIMITIVES",
    "STRING",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "UUID",
    "VOID",
    "AnyConceptType",
    "AnyType",
    "Attachment",
    "BlobIdType",
    "BlobType",
    "BoolType",
    "ClubType",
    "CommitIdType",
    "ConceptType",
    "DoubleType",
    "EnumerationType",
    "Field",
    "FloatType",
    "IntType",
    "KeyType",
    "MapType",
    "MatType",
    "NamedType",
    "Namespace",
    "OptionalType",
    "SetType",
    "StringType",
    "StructureType",
    "TupleType",
    "Type",
    "UUIDType",
    "VariantType",
    "VecType",
    "VectorType",
    "VoidType",
    "XArrayType",
    "describe",
    "is_hashable_type",
)


def _rid(*parts: bytes | str | int) -> uuid.UUID:
    """A runtime id: the first 16 bytes of SHA-256 over length-prefixed parts."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, str):
            b = p.encode()
        elif isinstance(p, int):
            b = p.to_bytes(8, "little", signed=True)
        else:
            b = p
        h.update(len(b).to_bytes(4, "little"))
        h.update(b)
    return uuid.UUID(bytes=h.digest()[:16])


def describe(value: object) -> str:
    """A short description of a value for error messages: its Python type and a preview."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


class Type:
    """Base of all type descriptors; equality and hashing follow the runtime id."""

    __slots__ = ("_dec", "_enc", "_rid")
    kind: ClassVar[str] = "type"

    def __init__(self) -> None:
        self._rid: uuid.UUID | None = None
        # compiled codec functions of this very object (commitdb.codec fills them in)
        self._enc: Any = None
        self._dec: Any = None

    @property
    def runtime_id(self) -> uuid.UUID:
        """Stable, content-derived identity of this type."""
        rid = self._rid
        if rid is None:
            rid = self._rid = self._compute_runtime_id()
        return rid

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Type):
            return NotImplemented
        return self is other or self.runtime_id == other.runtime_id

    def __hash__(self) -> int:
        return hash(self.runtime_id)

    def __repr__(self) -> str:
        return f"<type {self}>"

    def __str__(self) -> str:
        return self.kind

    def children(self) -> tuple[Type, ...]:
        """Directly referenced types."""
        return ()

    def check(self, value: object, where: str = "") -> Any:
        """Validate `value` and return its normalized form."""
        raise ValidationError(str(self), describe(value), where)

    def default(self) -> Any:
        """The zero value of the type."""
        return None

    def fail(self, value: object, where: str, expected: str | None = None) -> ValidationError:
        """Build the validation error for `value` at `where`."""
        return ValidationError(expected or str(self), describe(value), where)


# --------------------------------------------------------------------------------------------
# Primitives


class BoolType(Type):
    """``bool``: only True/False."""

    __slots__ = ()
    kind = "bool"

    def check(self, value: object, where: str = "") -> Any:
        if value is True or value is False:
            return value
        raise self.fail(value, where)

    def default(self) -> Any:
        return False


class IntType(Type):
    """``int8`` .. ``int64`` and ``uint8`` .. ``uint64`` with their ranges enforced."""

    __slots__ = ("bits", "high", "low", "name", "signed")

    def __init__(self, bits: int, signed: bool) -> None:
        super().__init__()
        self.bits = bits
        self.signed = signed
        self.name = f"{'' if signed else 'u'}int{bits}"
        self.low = -(1 << (bits - 1)) if signed else 0
        self.high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    kind = "int"

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.name)

    def __str__(self) -> str:
        return self.name

    def check(self, value: object, where: str = "") -> Any:
        if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
            if self.low <= value <= self.high:
                return int(value)
            raise ValidationError(
                f"{self.name} in [{self.low}, {self.high}]", describe(value), where
            )
        raise self.fail(value, where)

    def default(self) -> Any:
        return 0


_FLOAT32_MAX = 3.4028234663852886e38
_pack_f = struct.Struct("<f")


class FloatType(Type):
    """``float``: IEEE-754 binary32 semantics (values are rounded to the nearest float32)."""

    __slots__ = ()
    kind = "float"

    def check(self, value: object, where: str = "") -> Any:
        if type(value) is float or (isinstance(value, int | float) and not isinstance(value, bool)):
            try:
                v = float(value)
            except OverflowError:  # an int beyond the double range
                raise ValidationError("float (binary32 range)", describe(value), where) from None
            if math.isfinite(v) and abs(v) > _FLOAT32_MAX:
                raise ValidationError("float (binary32 range)", describe(value), where)
            return _pack_f.unpack(_pack_f.pack(v))[0]
        raise self.fail(value, where)

    def default(self) -> Any:
        return 0.0


class DoubleType(Type):
    """``double``: IEEE-754 binary64; ints widen to float."""

    __slots__ = ()
    kind = "double"

    def check(self, value: object, where: str = "") -> Any:
        if type(value) is float:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ValidationError("double", describe(value), where) from None
        raise self.fail(value, where)

    def default(self) -> Any:
        return 0.0


class StringType(Type):
    """``string``: text (it must be encodable as UTF-8)."""

    __slots__ = ()
    kind = "string"

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:  # lone surrogates
                    raise ValidationError("string (UTF-8 text)", describe(value), where) from None
            return value if type(value) is str else str(value)
        raise self.fail(value, where)

    def default(self) -> Any:
        return ""


class UUIDType(Type):
    """``uuid``: a :class:`uuid.UUID` (a canonical string is accepted)."""

    __slots__ = ()
    kind = "uuid"

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, uuid.UUID):
            return value
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError:
                raise ValidationError("uuid", describe(value), where) from None
        raise self.fail(value, where)

    def default(self) -> Any:
        return NIL_UUID


class BlobType(Type):
    """``blob``: inline bytes."""

    __slots__ = ()
    kind = "blob"

    def check(self, value: object, where: str = "") -> Any:
        if type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview) and not isinstance(
            value, BlobId | CommitId
        ):
            return bytes(value)
        raise self.fail(value, where)

    def default(self) -> Any:
        return b""


class BlobIdType(Type):
    """``blob_id``: the content address of a stored blob."""

    __slots__ = ()
    kind = "blob_id"

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, BlobId):
            return value
        if isinstance(value, str):
            try:
                return BlobId.from_hex(value)
            except ValueError:
                raise ValidationError("blob_id", describe(value), where) from None
        raise self.fail(value, where)

    def default(self) -> Any:
        return BlobId.INVALID


class CommitIdType(Type):
    """``commit_id``: the content address of a commit."""

    __slots__ = ()
    kind = "commit_id"

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, CommitId):
            return value
        if isinstance(value, str):
            try:
                return CommitId.from_hex(value)
            except ValueError:
                raise ValidationError("commit_id", describe(value), where) from None
        raise self.fail(value, where)

    def default(self) -> Any:
        return CommitId.INVALID


class VoidType(Type):
    """``void``: only as a function return type."""

    __slots__ = ()
    kind = "void"

    def check(self, value: object, where: str = "") -> Any:
        if value is None:
            return None
        raise self.fail(value, where, "void (None)")


# --------------------------------------------------------------------------------------------
# Containers


def _is_seq(value: object) -> bool:
    return isinstance(value, list | tuple)


class VectorType(Type):
    """``vector<T>``: a list."""

    __slots__ = ("element",)
    kind = "vector"

    def __init__(self, element: Type) -> None:
        super().__init__()
        _require_storable(element, "vector element")
        self.element = element

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes)

    def __str__(self) -> str:
        return f"vector<{self.element}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, list | tuple):
            raise self.fail(value, where)
        chk = self.element.check
        return [chk(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def default(self) -> Any:
        return []


class SetType(Type):
    """``set<T>``: a Python set (elements must be hashable values)."""

    __slots__ = ("element",)
    kind = "set"

    def __init__(self, element: Type) -> None:
        super().__init__()
        _require_storable(element, "set element")
        if not is_hashable_type(element):
            raise DefinitionError(f"set element type {element} is not usable as a set element")
        self.element = element

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes)

    def __str__(self) -> str:
        return f"set<{self.element}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, set | frozenset | list | tuple):
            raise self.fail(value, where)
        chk = self.element.check
        return {chk(v, f"{where}.element") for v in value}

    def default(self) -> Any:
        return set()


class MapType(Type):
    """``map<K, V>``: a dict (keys must be hashable values)."""

    __slots__ = ("key", "value")
    kind = "map"

    def __init__(self, key: Type, value: Type) -> None:
        super().__init__()
        _require_storable(key, "map key")
        _require_storable(value, "map value")
        if not is_hashable_type(key):
            raise DefinitionError(f"map key type {key} is not usable as a map key")
        self.key = key
        self.value = value

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.key.runtime_id.bytes, self.value.runtime_id.bytes)

    def __str__(self) -> str:
        return f"map<{self.key}, {self.value}>"

    def children(self) -> tuple[Type, ...]:
        return (self.key, self.value)

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, Mapping):
            raise self.fail(value, where)
        kc = self.key.check
        vc = self.value.check
        out = {}
        for k, v in value.items():
            ck = kc(k, f"{where}.key")
            out[ck] = vc(v, f"{where}[{ck!r}]")
        return out

    def default(self) -> Any:
        return {}


class OptionalType(Type):
    """``optional<T>``: None (nil) or a T."""

    __slots__ = ("element",)
    kind = "optional"

    def __init__(self, element: Type) -> None:
        super().__init__()
        _require_storable(element, "optional element")
        self.element = element

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes)

    def __str__(self) -> str:
        return f"optional<{self.element}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        if value is None:
            return None
        return self.element.check(value, where)

    def default(self) -> Any:
        return None


class XArrayType(Type):
    """``xarray<T>``: an :class:`XArray` (a plain list becomes one with fresh positions)."""

    __slots__ = ("element",)
    kind = "xarray"

    def __init__(self, element: Type) -> None:
        super().__init__()
        _require_storable(element, "xarray element")
        self.element = element

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes)

    def __str__(self) -> str:
        return f"xarray<{self.element}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        chk = self.element.check
        if isinstance(value, XArray):
            values = {
                p: chk(v, f"{where}[{{{uuid.UUID(bytes=p)}}}]") for p, v in value._values.items()
            }
            return XArray._from_parts(list(value._order), values)
        if isinstance(value, list | tuple):
            return XArray(chk(v, f"{where}[{i}]") for i, v in enumerate(value))
        raise self.fail(value, where)

    def default(self) -> Any:
        return XArray()


class TupleType(Type):
    """``tuple<T0, T1, ...>``: a Python tuple of fixed length."""

    __slots__ = ("elements",)
    kind = "tuple"

    def __init__(self, elements: Iterable[Type]) -> None:
        super().__init__()
        self.elements = tuple(elements)
        if not self.elements:
            raise DefinitionError("tuple needs at least one element type")
        for e in self.elements:
            _require_storable(e, "tuple element")

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, *(e.runtime_id.bytes for e in self.elements))

    def __str__(self) -> str:
        return f"tuple<{', '.join(map(str, self.elements))}>"

    def children(self) -> tuple[Type, ...]:
        return self.elements

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(self.elements):
            raise self.fail(value, where, f"{self} (a sequence of {len(self.elements)})")
        return tuple(
            t.check(v, f"{where}[{i}]")
            for i, (t, v) in enumerate(zip(self.elements, value, strict=True))
        )

    def default(self) -> Any:
        return tuple(e.default() for e in self.elements)


class VariantType(Type):
    """``variant<T0, T1, ...>``: one alternative.

    A plain value goes to the alternative of its natural type (an int to an integer
    alternative, int64 first; a float to double, then float; ...). Wrap the value in
    :class:`Typed` to pick another alternative. The normalized value is plain when the
    natural choice is the chosen alternative, else a :class:`Typed`. A :class:`Typed` whose
    type is no alternative is a plain value (an ``any`` alternative may hold it).
    """

    __slots__ = ("alternatives",)
    kind = "variant"

    def __init__(self, alternatives: Iterable[Type]) -> None:
        super().__init__()
        self.alternatives = tuple(alternatives)
        if not self.alternatives:
            raise DefinitionError("variant needs at least one alternative")
        if len(set(self.alternatives)) != len(self.alternatives):
            raise DefinitionError(f"variant alternatives must be distinct: {self}")
        for a in self.alternatives:
            _require_storable(a, "variant alternative")

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, *(a.runtime_id.bytes for a in self.alternatives))

    def __str__(self) -> str:
        return f"variant<{', '.join(map(str, self.alternatives))}>"

    def children(self) -> tuple[Type, ...]:
        return self.alternatives

    def natural_index(self, value: object) -> int | None:
        """Index of the alternative a plain value goes to, or None."""
        for i in _natural_order(value, self.alternatives):
            try:
                self.alternatives[i].check(value)
            except (ValidationError, TypeError, ValueError):
                continue
            return i
        return None

    def select(self, value: object, where: str = "") -> tuple[int, Any]:
        """(alternative index, normalized inner value) for a variant value."""
        if isinstance(value, Typed):
            for i, a in enumerate(self.alternatives):
                if a == value.type:
                    return i, value.value
            # not an alternative's type: a plain value (an ``any`` alternative holds it)
        natural = self.natural_index(value)
        if natural is None:
            raise self.fail(value, where)
        return natural, self.alternatives[natural].check(value, where)

    def check(self, value: object, where: str = "") -> Any:
        i, inner = self.select(value, where)
        if self.natural_index(inner) == i:
            return inner
        return Typed(self.alternatives[i], inner)

    def default(self) -> Any:
        return self.check(Typed(self.alternatives[0], self.alternatives[0].default()))


class AnyType(Type):
    """``any``: empty (None) or any storable value with its type.

    Plain values are typed by deduction (bool, int → int64, float → double, str → string,
    bytes → blob, UUID, keys, enumeration cases, structures, ids); wrap others in
    :class:`Typed`. The normalized value is plain when deduction gives its type back.
    """

    __slots__ = ()
    kind = "any"

    def check(self, value: object, where: str = "") -> Any:
        if value is None:
            return None
        if isinstance(value, Typed):
            if not is_storable(value.type):
                raise self.fail(value, where, "a storable type inside any")
            if deduce_type(value.value) == value.type:
                return value.value
            return value
        t = deduce_type(value)
        if t is None:
            raise self.fail(value, where, "a value whose type can be deduced (or Typed)")
        return t.check(value, where)

    def default(self) -> Any:
        return None


_NUMERIC_KINDS = ("int", "float", "double")


class VecType(Type):
    """``vec<T, N>``: a tuple of N numbers."""

    __slots__ = ("element", "size")
    kind = "vec"

    def __init__(self, element: Type, size: int) -> None:
        super().__init__()
        if element.kind not in _NUMERIC_KINDS:
            raise DefinitionError(f"vec element must be numeric, not {element}")
        if size < 1:
            raise DefinitionError(f"vec size must be at least 1, not {size}")
        self.element = element
        self.size = size

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes, self.size)

    def __str__(self) -> str:
        return f"vec<{self.element}, {self.size}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        if not isinstance(value, list | tuple) or len(value) != self.size:
            raise self.fail(value, where, f"{self} (a sequence of {self.size} numbers)")
        chk = self.element.check
        return tuple(chk(v, f"{where}[{i}]") for i, v in enumerate(value))

    def default(self) -> Any:
        return (self.element.default(),) * self.size


class MatType(Type):
    """``mat<T, C, R>``: C columns of R numbers, a flat column-major tuple of C*R numbers."""

    __slots__ = ("columns", "element", "rows")
    kind = "mat"

    def __init__(self, element: Type, columns: int, rows: int) -> None:
        super().__init__()
        if element.kind not in _NUMERIC_KINDS:
            raise DefinitionError(f"mat element must be numeric, not {element}")
        if columns < 1 or rows < 1:
            raise DefinitionError(f"mat dimensions must be at least 1, not {columns}x{rows}")
        self.element = element
        self.columns = columns
        self.rows = rows

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.element.runtime_id.bytes, self.columns, self.rows)

    def __str__(self) -> str:
        return f"mat<{self.element}, {self.columns}, {self.rows}>"

    def children(self) -> tuple[Type, ...]:
        return (self.element,)

    def check(self, value: object, where: str = "") -> Any:
        n = self.columns * self.rows
        if isinstance(value, list | tuple) and value and all(_is_seq(c) for c in value):
            if len(value) != self.columns or any(len(c) != self.rows for c in value):
                raise self.fail(
                    value, where, f"{self} ({self.columns} columns of {self.rows} numbers)"
                )
            value = [x for col in value for x in col]
        if not isinstance(value, list | tuple) or len(value) != n:
            raise self.fail(value, where, f"{self} ({n} numbers, column-major)")
        chk = self.element.check
        return tuple(chk(v, f"{where}[{i}]") for i, v in enumerate(value))

    def default(self) -> Any:
        return (self.element.default(),) * (self.columns * self.rows)


# --------------------------------------------------------------------------------------------
# Named types


class Namespace:
    """A namespace: its uuid is its identity, its name is cosmetic."""

    __slots__ = ("name", "uuid")

    def __init__(self, name: str, namespace_uuid: uuid.UUID | str) -> None:
        self.name = name
        self.uuid = (
            namespace_uuid if isinstance(namespace_uuid, uuid.UUID) else uuid.UUID(namespace_uuid)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and self.uuid == other.uuid

    def __hash__(self) -> int:
        return hash(self.uuid)

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, {str(self.uuid)!r})"


class NamedType(Type):
    """A type registered under a name in a namespace (concept, club, enumeration, structure)."""

    __slots__ = ("documentation", "name", "namespace")

    def __init__(self, namespace: Namespace, name: str, documentation: str | None = None) -> None:
        super().__init__()
        self.namespace = namespace
        self.name = name
        self.documentation = documentation

    @property
    def qualified_name(self) -> str:
        """``Namespace::Name``."""
        return f"{self.namespace.name}::{self.name}"

    def __str__(self) -> str:
        return self.qualified_name


class ConceptType(NamedType):
    """An abstract concept, known only through keys; may have a parent (``is a``)."""

    __slots__ = ("parent",)
    kind = "concept"

    def __init__(
        self,
        namespace: Namespace,
        name: str,
        parent: ConceptType | None = None,
        documentation: str | None = None,
    ) -> None:
        super().__init__(namespace, name, documentation)
        self.parent = parent

    def _compute_runtime_id(self) -> uuid.UUID:
        parent = self.parent.runtime_id.bytes if self.parent else b""
        return _rid(self.kind, self.namespace.uuid.bytes, self.name, parent)

    def is_a(self, other: Type) -> bool:
        """True if this concept is `other` or one of its descendants."""
        c: ConceptType | None = self
        while c is not None:
            if c == other:
                return True
            c = c.parent
        return False

    def ancestors(self) -> list[ConceptType]:
        """This concept then its parents up to the root."""
        out: list[ConceptType] = []
        c: ConceptType | None = self
        while c is not None:
            out.append(c)
            c = c.parent
        return out


class ClubType(NamedType):
    """A named set of unrelated concepts; membership may grow and is not part of the id."""

    __slots__ = ("members",)
    kind = "club"

    def __init__(self, namespace: Namespace, name: str, documentation: str | None = None) -> None:
        super().__init__(namespace, name, documentation)
        self.members: set[ConceptType] = set()

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.namespace.uuid.bytes, self.name)


class AnyConceptType(Type):
    """``any_concept``: accepts a key of any concept."""

    __slots__ = ()
    kind = "any_concept"


class EnumerationType(NamedType):
    """An enumeration of 1..256 named cases; the default is the first case."""

    __slots__ = ("_by_name", "case_documentation", "cases")
    kind = "enum"

    def __init__(
        self,
        namespace: Namespace,
        name: str,
        cases: Iterable[str],
        documentation: str | None = None,
        case_documentation: Mapping[str, str | None] | None = None,
    ) -> None:
        super().__init__(namespace, name, documentation)
        names = list(cases)
        if not names:
            raise DefinitionError(f"enumeration {name} needs at least one case")
        if len(names) > 256:
            raise DefinitionError(f"enumeration {name} has {len(names)} cases (at most 256)")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DefinitionError(f"enumeration {name} has case {dup!r} twice")
        self.cases: tuple[EnumCase, ...] = tuple(EnumCase(self, n, i) for i, n in enumerate(names))
        self._by_name = {c.name: c for c in self.cases}
        self.case_documentation = dict(case_documentation or {})

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.namespace.uuid.bytes, self.name, *(c.name for c in self.cases))

    def case(self, name: str) -> EnumCase:
        """The case with this name (KeyError if none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.qualified_name} has no case {name!r}") from None

    def __getattr__(self, name: str) -> EnumCase:
        by_name = object.__getattribute__(self, "_by_name")
        if name in by_name:
            return cast(EnumCase, by_name[name])
        raise AttributeError(name)

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, EnumCase):
            if value.enumeration == self:
                return self._by_name[value.name]
            raise self.fail(value, where)
        if isinstance(value, str):
            # 'a', '.a', 'Enum.a' or 'NS::Enum.a'
            prefix, _, name = value.rpartition(".")
            c = self._by_name.get(name)
            if c is not None and prefix in ("", self.name, self.qualified_name):
                return c
            raise ValidationError(
                f"a case of {self.qualified_name} ({', '.join(self._by_name)})",
                describe(value),
                where,
            )
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(self.cases):
                return self.cases[value]
            raise ValidationError(
                f"a case ordinal of {self.qualified_name} in [0, {len(self.cases) - 1}]",
                describe(value),
                where,
            )
        raise self.fail(value, where)

    def default(self) -> Any:
        return self.cases[0]


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
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DefinitionError(f"structure {name} has field {dup!r} twice")
        self._index = {f.name: f for f in self.fields}
        self.value_class: type[StructValue] = type(
            name,
            (StructValue,),
            {"__slots__": tuple(names), "_type": self, "_fields": tuple(names)},
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


class KeyType(Type):
    """``key<X>``: a key whose concept is X or a descendant (X a concept), a member of X
    (X a club), or any concept (X ``any_concept``)."""

    __slots__ = ("target",)
    kind = "key"

    def __init__(self, target: ConceptType | ClubType | AnyConceptType) -> None:
        super().__init__()
        if not isinstance(target, ConceptType | ClubType | AnyConceptType):
            raise DefinitionError(f"key<> needs a concept, a club or any_concept, not {target}")
        self.target = target

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.target.runtime_id.bytes)

    def __str__(self) -> str:
        return f"key<{self.target}>"

    def children(self) -> tuple[Type, ...]:
        return (self.target,)

    def accepts_concept(self, concept: ConceptType) -> bool:
        """True if a key of `concept` is a key of this type."""
        if not isinstance(concept, ConceptType):
            return False  # e.g. the club of the default key of a key<Club>
        t = self.target
        if isinstance(t, AnyConceptType):
            return True
        if isinstance(t, ClubType):
            return concept in t.members
        return concept.is_a(t)

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, Key):
            c = value.concept
            if isinstance(c, ConceptType) and self.accepts_concept(c):
                return value
            if value.is_nil and c == self.target:
                return value
            raise ValidationError(str(self), f"key of {c}", where)
        raise self.fail(value, where)

    def default(self) -> Any:
        return Key(cast(ConceptType, self.target), NIL_UUID)

    def create_key(self, instance_id: uuid.UUID | str | None = None) -> Key:
        """A key of the target concept (a fresh uuid when none is given)."""
        if not isinstance(self.target, ConceptType):
            raise DefinitionError(f"cannot mint a key of {self.target}: name a concrete concept")
        return Key(self.target, instance_id)


class Attachment:
    """Binds a key type to a document type: ``attachment<Concept, Document> name``.

    Its identifier ``NS::Concept.name`` is unique; its runtime id derives from namespace,
    name, key type and document type.
    """

    __slots__ = ("_rid", "document_type", "documentation", "key_type", "name", "namespace")

    def __init__(
        self,
        namespace: Namespace,
        name: str,
        key_type: KeyType,
        document_type: Type,
        documentation: str | None = None,
    ) -> None:
        _require_storable(document_type, f"attachment {name} document")
        self.namespace = namespace
        self.name = name
        self.key_type = key_type
        self.document_type = document_type
        self.documentation = documentation
        self._rid: uuid.UUID | None = None

    @property
    def runtime_id(self) -> uuid.UUID:
        """Stable, content-derived identity."""
        if self._rid is None:
            self._rid = _rid(
                "attachment",
                self.namespace.uuid.bytes,
                self.name,
                self.key_type.runtime_id.bytes,
                self.document_type.runtime_id.bytes,
            )
        return self._rid

    @property
    def identifier(self) -> str:
        """``NS::Concept.name``, the unique name of the attachment."""
        target = self.key_type.target
        if isinstance(target, NamedType):
            t = target.name if target.namespace == self.namespace else target.qualified_name
        else:
            t = "any_concept"
        return f"{self.namespace.name}::{t}.{self.name}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attachment) and self.runtime_id == other.runtime_id

    def __hash__(self) -> int:
        return hash(self.runtime_id)

    def __repr__(self) -> str:
        return f"<attachment {self.identifier}: {self.document_type}>"

    def create_key(self, instance_id: uuid.UUID | str | None = None) -> Key:
        """A key for an instance of the attachment's concept (fresh uuid if None)."""
        return self.key_type.create_key(instance_id)

    def create_document(self) -> Any:
        """The zero document."""
        return self.document_type.default()

    def check_key(self, key: object, where: str = "") -> Key:
        """Validate a key for this attachment (nil instance ids are refused)."""
        k = cast(Key, self.key_type.check(key, where or f"{self.identifier} key"))
        if k.is_nil:
            raise ValidationError(
                "a key with a valid instance id", "the nil key", where or self.identifier
            )
        return k


# --------------------------------------------------------------------------------------------
# Singletons and helpers

BOOL = BoolType()
INT8 = IntType(8, True)
INT16 = IntType(16, True)
INT32 = IntType(32, True)
INT64 = IntType(64, True)
UINT8 = IntType(8, False)
UINT16 = IntType(16, False)
UINT32 = IntType(32, False)
UINT64 = IntType(64, False)
FLOAT = FloatType()
DOUBLE = DoubleType()
STRING = StringType()
UUID = UUIDType()
BLOB = BlobType()
BLOB_ID = BlobIdType()
COMMIT_ID = CommitIdType()
VOID = VoidType()
ANY = AnyType()
ANY_CONCEPT = AnyConceptType()

PRIMITIVES: dict[str, Type] = {
    "bool": BOOL,
    "int8": INT8,
    "int16": INT16,
    "int32": INT32,
    "int64": INT64,
    "uint8": UINT8,
    "uint16": UINT16,
    "uint32": UINT32,
    "uint64": UINT64,
    "float": FLOAT,
    "double": DOUBLE,
    "string": STRING,
    "uuid": UUID,
    "blob": BLOB,
    "blob_id": BLOB_ID,
    "commit_id": COMMIT_ID,
    "void": VOID,
    "any": ANY,
}


def is_storable(t: Type) -> bool:
    """False for types that cannot be stored (void, bare concepts and clubs)."""
    return not isinstance(t, VoidType | ConceptType | ClubType | AnyConceptType)


def _require_storable(t: Type, what: str) -> None:
    if not isinstance(t, Type):
        raise DefinitionError(f"{what}: {t!r} is not a type")
    if not is_storable(t):
        raise DefinitionError(f"{what} cannot be of type {t} (use key<{t}> for a reference)")


def is_hashable_type(t: Type) -> bool:
    """True if values of `t` can be set elements or map keys."""
    if isinstance(t, MapType | XArrayType):
        return False
    if isinstance(t, StructureType):
        return all(is_hashable_type(f.type) for f in t.fields)
    if isinstance(t, VectorType | SetType | OptionalType):
        return is_hashable_type(t.element) and not isinstance(t, VectorType | SetType)
    if isinstance(t, TupleType):
        return all(is_hashable_type(e) for e in t.elements)
    if isinstance(t, VariantType):
        return all(is_hashable_type(a) for a in t.alternatives)
    return True


def _natural_order(value: object, alternatives: tuple[Type, ...]) -> list[int]:
    """Indices of alternatives in the order a plain value prefers them."""
    preferred: list[Callable[[Type], bool]]
    if value is True or value is False:
        preferred = [lambda t: isinstance(t, BoolType)]
    elif isinstance(value, int):
        preferred = [lambda t: t is INT64 or t == INT64, lambda t: isinstance(t, IntType)]
    elif isinstance(value, float):
        preferred = [lambda t: isinstance(t, DoubleType), lambda t: isinstance(t, FloatType)]
    else:
        preferred = []
    order: list[int] = []
    for pred in preferred:
        order += [i for i, t in enumerate(alternatives) if pred(t) and i not in order]
    order += [i for i in range(len(alternatives)) if i not in order]
    return order


def deduce_type(value: object) -> Type | None:
    """The type a plain value is given inside ``any`` (None if it cannot be deduced)."""
    if value is True or value is False:
        return BOOL
    if isinstance(value, int):
        return INT64
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, BlobId):
        return BLOB_ID
    if isinstance(value, CommitId):
        return COMMIT_ID
    if isinstance(value, bytes | bytearray):
        return BLOB
    if isinstance(value, uuid.UUID):
        return UUID
    if isinstance(value, Key):
        return KeyType(value.concept)
    if isinstance(value, EnumCase):
        return value.enumeration
    if isinstance(value, StructValue):
        return value._type
    return None
