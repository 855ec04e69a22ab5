"""Content-addressed identifiers: CommitId and BlobId.

Both are 32-byte SHA-256 digests (the reference runtime uses SHA-1; we deliberately use a
modern hash). They subclass :class:`bytes`, so they hash, compare and slice like the raw digest,
and add a readable ``repr``, ``hex`` round trip and the all-zero ``INVALID`` sentinel.
"""

from __future__ import annotations

import hashlib
import struct
from typing import ClassVar, Self

__all__ = ("DIGEST_SIZE", "BlobId", "CommitId", "blob_id_for")

DIGEST_SIZE = 32


class _Digest(bytes):
    """A fixed-size digest; the all-zero value is the INVALID sentinel."""

    __slots__ = ()
    INVALID: ClassVar[Self]

    def __new__(cls, raw: bytes | bytearray | memoryview = b"\x00" * DIGEST_SIZE) -> Self:
        if len(raw) != DIGEST_SIZE:
            raise ValueError(f"{cls.__name__} needs {DIGEST_SIZE} bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    @classmethod
    def from_hex(cls, text: str) -> Self:
        """Parse the 64-character hexadecimal form (a ValueError names the problem)."""
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise ValueError(f"{cls.__name__}: {text!r} is not hexadecimal") from exc
        return cls(raw)

    @property
    def is_valid(self) -> bool:
        """False for the all-zero INVALID sentinel."""
        return any(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.hex()}')"

    def __str__(self) -> str:
        return self.hex()


class CommitId(_Digest):
    """Identifier of a commit: SHA-256 of its parent, kind, target and program."""

    __slots__ = ()


class BlobId(_Digest):
    """Identifier of a blob: SHA-256 of its layout and content."""

    __slots__ = ()


CommitId.INVALID = CommitId()
BlobId.INVALID = BlobId()


def blob_id_for(
    data: bytes | bytearray | memoryview, data_type_code: int = 0, components: int = 1
) -> BlobId:
    """Compute the content address of a blob: SHA-256(u64le(type) ‖ u64le(components) ‖ data)."""
    h = hashlib.sha256(struct.pack("<QQ", data_type_code, components))
    h.update(data)
    return BlobId(h.digest())
