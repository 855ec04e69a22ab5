"""Commit records: kinds, headers, the content address, and the transport unit CommitData.

A commit id is ``SHA-256(parent ‖ u8(kind) ‖ target ‖ u64le(len(program)) ‖ program)`` —
the reference formula with SHA-256 instead of SHA-1. Label, timestamp and author are
metadata: not hashed, so committing the same program on the same parent is idempotent.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from commitdb.codec import pack, unpack
from commitdb.errors import DecodeError
from commitdb.ids import CommitId

__all__ = ("CommitData", "CommitHeader", "CommitKind", "compute_commit_id")


class CommitKind(IntEnum):
    """What a commit does (numeric codes as in the reference)."""

    MUTATIONS = 0
    DISABLE = 1
    ENABLE = 2
    MERGE = 3

    @property
    def label(self) -> str:
        """'Mutations', 'Disable', 'Enable' or 'Merge'."""
        return self.name.capitalize()


_U64 = struct.Struct("<Q")


def compute_commit_id(
    parent: CommitId, kind: CommitKind, target: CommitId, program: bytes
) -> CommitId:
    """The content address of a commit."""
    h = hashlib.sha256(parent)
    h.update(bytes((int(kind),)))
    h.update(target)
    h.update(_U64.pack(len(program)))
    h.update(program)
    return CommitId(h.digest())


@dataclass(frozen=True, slots=True)
class CommitHeader:
    """A commit's header: identity, links, kind and (unhashed) metadata."""

    commit_id: CommitId
    parent_commit_id: CommitId
    target_commit_id: CommitId
    kind: CommitKind
    label: str
    timestamp: float
    author: str = ""

    @property
    def commit_type(self) -> str:
        """The kind as text: 'Mutations', 'Disable', 'Enable' or 'Merge'."""
        return self.kind.label

    def to_wire(self) -> list[Any]:
        """Plain msgpack-ready form."""
        return [
            bytes(self.commit_id),
            bytes(self.parent_commit_id),
            bytes(self.target_commit_id),
            int(self.kind),
            self.label,
            self.timestamp,
            self.author,
        ]

    @classmethod
    def from_wire(cls, w: Any) -> CommitHeader:
        """Inverse of :meth:`to_wire` (DecodeError if malformed)."""
        try:
            cid, parent, target, kind, label, ts, author = w
            if not (isinstance(label, str) and isinstance(author, str)):
                raise TypeError("label/author")
            return cls(
                CommitId(cid),
                CommitId(parent),
                CommitId(target),
                CommitKind(kind),
                label,
                float(ts),
                author,
            )
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"malformed commit header: {exc}") from None


@dataclass(frozen=True, slots=True)
class CommitData:
    """The transport unit of a commit: header plus encoded program (verbatim bytes)."""

    header: CommitHeader
    program: bytes

    @property
    def commit_id(self) -> CommitId:
        """The commit's id."""
        return self.header.commit_id

    def verify(self) -> bool:
        """True if the id is the hash of the content."""
        h = self.header
        return (
            compute_commit_id(h.parent_commit_id, h.kind, h.target_commit_id, self.program)
            == h.commit_id
        )

    def encode(self) -> bytes:
        """Bytes for the wire."""
        return pack([self.header.to_wire(), self.program])

    @classmethod
    def decode(cls, data: bytes) -> CommitData:
        """Inverse of :meth:`encode`."""
        w = unpack(data)
        if type(w) is not list or len(w) != 2 or type(w[1]) is not bytes:
            raise DecodeError("malformed commit data")
        return cls(CommitHeader.from_wire(w[0]), w[1])
