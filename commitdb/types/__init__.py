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

The package, by role (each module imports only the ones above it):

* :mod:`~commitdb.types.base` — :class:`Type` and the runtime ids;
* :mod:`~commitdb.types.primitives` — ``bool``, the integers, ``float`` ... ``void``;
* :mod:`~commitdb.types.named` — namespaces, concepts, clubs, enumerations and keys;
* :mod:`~commitdb.types.storable` — which types a value can be stored as;
* :mod:`~commitdb.types.structures` — structures and their fields;
* :mod:`~commitdb.types.variants` — ``variant``, ``any`` and type deduction;
* :mod:`~commitdb.types.containers` — ``vector`` ... ``mat`` and hashability;
* :mod:`~commitdb.types.attachments` — attachments.

This module re-exports all of them and holds :data:`PRIMITIVES`.
"""

from __future__ import annotations

from commitdb.types.attachments import Attachment
from commitdb.types.base import Type, _rid as _rid, describe
from commitdb.types.containers import (
    MapType,
    MatType,
    OptionalType,
    SetType,
    TupleType,
    VectorType,
    VecType,
    XArrayType,
    is_hashable_type,
)
from commitdb.types.named import (
    ANY_CONCEPT,
    AnyConceptType,
    ClubType,
    ConceptType,
    EnumerationType,
    KeyType,
    NamedType,
    Namespace,
)
from commitdb.types.primitives import (
    BLOB,
    BLOB_ID,
    BOOL,
    COMMIT_ID,
    DOUBLE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    UUID,
    VOID,
    BlobIdType,
    BlobType,
    BoolType,
    CommitIdType,
    DoubleType,
    FloatType,
    IntType,
    StringType,
    UUIDType,
    VoidType,
)
from commitdb.types.storable import is_storable as is_storable
from commitdb.types.structures import Field, StructureType
from commitdb.types.variants import ANY, AnyType, VariantType, deduce_type as deduce_type

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

#: The built-in types by their DSM names (``any`` included, ``any_concept`` not).
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
