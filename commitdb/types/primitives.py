"""Primitive types: ``bool``, the integers, ``float``, ``double``, ``string``, ``uuid``,
``blob``, ``blob_id``, ``commit_id`` and ``void``, with their singletons."""

from __future__ import annotations

import math
import struct
import uuid
from typing import Any, ClassVar

from commitdb.errors import ValidationError
from commitdb.ids import BlobId, CommitId
from commitdb.types.base import Type, _rid, describe
from commitdb.values import NIL_UUID

__all__ = (
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
    "STRING",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "UUID",
    "VOID",
    "BlobIdType",
    "BlobType",
    "BoolType",
    "CommitIdType",
    "DoubleType",
    "FloatType",
    "IntType",
    "StringType",
    "UUIDType",
    "VoidType",
)


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


class _TextIdType(Type):
    """Base of the identifier types: an instance of the identifier class, or its canonical
    text (a ValueError from parsing it is a ValidationError naming the kind)."""

    __slots__ = ()
    _value_class: ClassVar[type]

    def _parse(self, text: str) -> Any:
        return self._value_class(text)

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, self._value_class):
            return value
        if isinstance(value, str):
            try:
                return self._parse(value)
            except ValueError:
                raise ValidationError(self.kind, describe(value), where) from None
        raise self.fail(value, where)


class UUIDType(_TextIdType):
    """``uuid``: a :class:`uuid.UUID` (a canonical string is accepted)."""

    __slots__ = ()
    kind = "uuid"
    _value_class = uuid.UUID

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


class BlobIdType(_TextIdType):
    """``blob_id``: the content address of a stored blob."""

    __slots__ = ()
    kind = "blob_id"
    _value_class = BlobId

    def _parse(self, text: str) -> Any:
        return BlobId.from_hex(text)

    def default(self) -> Any:
        return BlobId.INVALID


class CommitIdType(_TextIdType):
    """``commit_id``: the content address of a commit."""

    __slots__ = ()
    kind = "commit_id"
    _value_class = CommitId

    def _parse(self, text: str) -> Any:
        return CommitId.from_hex(text)

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
