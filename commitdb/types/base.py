"""The base of every type descriptor, and the content-derived runtime ids.

Every type is an immutable object with ``check(value, where="")``, ``default()``,
``runtime_id`` and ``str(t)`` (see :mod:`commitdb.types`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

from commitdb.errors import ValidationError

__all__ = ("Type", "describe")


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


def _first_duplicate(names: Sequence[str]) -> str | None:
    """The first name that occurs twice in `names` (None when all are distinct)."""
    if len(set(names)) == len(names):
        return None
    return next(n for n in names if names.count(n) > 1)


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
