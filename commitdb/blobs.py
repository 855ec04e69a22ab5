"""Content-addressed blob storage shared by Database and CommitDatabase.

A blob is bytes plus a layout (element data type and components per element). Its id is
``SHA-256(u64le(data type code) ‖ u64le(components) ‖ bytes)``; storing the same blob twice is
a no-op. Blobs are stored in chunks, so ranged reads and streamed uploads never need the
whole blob in memory.
"""

from __future__ import annotations

import hashlib
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from commitdb.codec import pack, unpack
from commitdb.errors import CommitDBError, CorruptDatabaseError, DecodeError, MissingBlobError
from commitdb.ids import BlobId

if TYPE_CHECKING:
    from commitdb.storage import ReadTxn, Storage, WriteTxn

__all__ = (
    "BLOB_TABLES",
    "BlobInfo",
    "BlobLayout",
    "BlobStatistics",
    "BlobStore",
    "BlobStream",
)

BLOB_TABLES = ("blobs", "chunks")
CHUNK_SIZE = 1 << 20

_DATA_TYPES = (
    "uchar", "ushort", "uint", "ulong", "char", "short", "int", "long", "half", "float", "double",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BlobLayout:
    """Element data type (``uchar`` … ``double``) and components per element."""

    data_type: str = "uchar"
    components: int = 1

    def __post_init__(self) -> None:
        if self.data_type not in _DATA_TYPES:
            raise ValueError(f"unknown blob data type {self.data_type!r} (one of {_DATA_TYPES})")
        if not 1 <= self.components <= 0xFFFF:
            raise ValueError(f"blob components must be in [1, 65535], not {self.components}")

    @property
    def code(self) -> int:
        """Numeric data type code (uchar 0 … double 10)."""
        return _DATA_TYPES.index(self.data_type)

    def __str__(self) -> str:
        return f"{self.data_type}-{self.components}"

    @classmethod
    def parse(cls, text: str) -> BlobLayout:
        """Parse ``'float-3'``."""
        name, _, comps = text.partition("-")
        return cls(name, int(comps or 1))


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What is known about a stored blob."""

    blob_id: BlobId
    layout: BlobLayout
    size: int


@dataclass(frozen=True, slots=True)
class BlobStatistics:
    """Count and sizes of stored blobs."""

    count: int
    total_size: int
    min_size: int
    max_size: int


def _hasher(layout: BlobLayout) -> hashlib._Hash:
    return hashlib.sha256(struct.pack("<QQ", layout.code, layout.components))


def _chunk_key(blob_id: bytes, index: int) -> bytes:
    return blob_id + index.to_bytes(4, "big")


class BlobStream:
    """A streamed upload: ``write()`` pieces, then ``close()`` returns the BlobId.

    Data is spooled to a temporary file (memory stays bounded) and stored in one
    transaction at close; ``abort()`` (or an exception in a ``with`` block) discards it.
    """

    def __init__(self, store: BlobStore, layout: BlobLayout, expected_size: int | None) -> None:
        self._store = store
        self._layout = layout
        self._expected = expected_size
        self._hash = _hasher(layout)
        self._file: IO[bytes] | None = tempfile.SpooledTemporaryFile(max_size=CHUNK_SIZE * 8)
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; returns how many were written."""
        if self._file is None:
            raise CommitDBError("the blob stream is closed")
        n = len(data)
        if self._expected is not None and self._size + n > self._expected:
            self.abort()
            raise CommitDBError(
                f"blob stream overflow: {self._size + n} bytes for a declared {self._expected}"
            )
        self._hash.update(data)
        self._file.write(data)
        self._size += n
        return n

    def close(self) -> BlobId:
        """Store the blob and return its id."""
        if self._file is None:
            raise CommitDBError("the blob stream is closed")
        if self._expected is not None and self._size != self._expected:
            self.abort()
            raise CommitDBError(
                f"blob stream short: {self._size} bytes for a declared {self._expected}"
            )
        blob_id = BlobId(self._hash.digest())
        f = self._file
        f.seek(0)
        self._store._store_chunks(
            blob_id, self._layout, self._size, iter(lambda: f.read(CHUNK_SIZE), b"")
        )
        self.abort()
        return blob_id

    def abort(self) -> None:
        """Discard what was written."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> BlobStream:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


class BlobStore:
    """Blob operations over a storage with the ``blobs`` and ``chunks`` tables."""

    def __init__(
        self, storage: Storage, on_write: Callable[[WriteTxn], None] | None = None
    ) -> None:
        self._storage = storage
        # called inside the write transaction that stored at least one new blob
        self._on_write = on_write

    # -- writing --------------------------------------------------------------------------
    def create(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob (idempotent) and return its id."""
        layout = layout or BlobLayout()
        h = _hasher(layout)
        h.update(data)
        blob_id = BlobId(h.digest())
        mv = memoryview(data)
        chunks = (bytes(mv[i : i + CHUNK_SIZE]) for i in range(0, len(mv), CHUNK_SIZE))
        self._store_chunks(blob_id, layout, len(mv), chunks)
        return blob_id

    def _store_chunks(
        self, blob_id: BlobId, layout: BlobLayout, size: int, chunks: Iterator[bytes]
    ) -> bool:
        with self._storage.write() as txn:
            added = self.put_chunks(txn, blob_id, layout, size, chunks)
            if added and self._on_write is not None:
                self._on_write(txn)
            return added

    @staticmethod
    def put_chunks(
        txn: WriteTxn, blob_id: BlobId, layout: BlobLayout, size: int, chunks: Iterable[bytes]
    ) -> bool:
        """Write a blob inside an open transaction; False if it was already stored."""
        if txn.has("blobs", blob_id):
            return False
        n = 0
        for n, chunk in enumerate(chunks, 1):
            txn.put("chunks", _chunk_key(blob_id, n - 1), chunk)
        txn.put("blobs", blob_id, pack([layout.data_type, layout.components, size, n]))
        return True

    def stream(self, layout: BlobLayout | None = None, size: int | None = None) -> BlobStream:
        """Start a streamed upload (optionally of a declared size)."""
        return BlobStream(self, layout or BlobLayout(), size)

    def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs in one transaction; returns the ids actually added."""
        added: list[BlobId] = []
        with self._storage.write() as txn:
            for layout, data in blobs:
                h = _hasher(layout)
                h.update(data)
                blob_id = BlobId(h.digest())
                mv = memoryview(data)
                chunks = (bytes(mv[i : i + CHUNK_SIZE]) for i in range(0, len(mv), CHUNK_SIZE))
                if self.put_chunks(txn, blob_id, layout, len(mv), chunks):
                    added.append(blob_id)
            if added and self._on_write is not None:
                self._on_write(txn)
        return added

    def delete(self, txn: WriteTxn, blob_id: BlobId) -> bool:
        """Delete a blob inside an open transaction; returns whether it existed."""
        if not txn.delete("blobs", blob_id):
            return False
        txn.delete_prefix("chunks", bytes(blob_id))
        return True

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def _info(txn: ReadTxn, blob_id: BlobId) -> tuple[BlobInfo, int] | None:
        raw = txn.get("blobs", blob_id)
        if raw is None:
            return None
        w = unpack(raw)
        if type(w) is not list or len(w) != 4:
            raise DecodeError(f"corrupt blob record {blob_id}")
        data_type, components, size, nchunks = w
        return BlobInfo(blob_id, BlobLayout(data_type, components), size), nchunks

    def info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None if unknown."""
        with self._storage.read() as txn:
            found = self._info(txn, blob_id)
        return found[0] if found else None

    def infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the known blobs among `blob_ids` (unknown ones are omitted)."""
        out: list[BlobInfo] = []
        with self._storage.read() as txn:
            for b in blob_ids:
                found = self._info(txn, b)
                if found:
                    out.append(found[0])
        return out

    def exists(self, blob_id: BlobId) -> bool:
        """True if the blob is stored."""
        with self._storage.read() as txn:
            return txn.has("blobs", blob_id)

    @staticmethod
    def exists_in(txn: ReadTxn, blob_id: BlobId) -> bool:
        """True if the blob is stored (inside an open transaction)."""
        return txn.has("blobs", blob_id)

    def get(self, blob_id: BlobId) -> bytes | None:
        """The whole blob, or None if unknown."""
        with self._storage.read() as txn:
            found = self._info(txn, blob_id)
            if found is None:
                return None
            _, n = found
            return b"".join(txn.get("chunks", _chunk_key(blob_id, i)) or b"" for i in range(n))

    def read(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """`size` bytes from `offset` (range-checked)."""
        with self._storage.read() as txn:
            found = self._info(txn, blob_id)
            if found is None:
                raise MissingBlobError(f"missing blob {blob_id}")
            info, _ = found
            if offset < 0 or size < 0 or offset + size > info.size:
                raise ValueError(
                    f"range [{offset}, {offset + size}) outside blob of {info.size} bytes"
                )
            out = bytearray()
            i = offset // CHUNK_SIZE
            skip = offset - i * CHUNK_SIZE
            while len(out) < size:
                chunk = txn.get("chunks", _chunk_key(blob_id, i))
                if not chunk:  # would loop forever
                    raise CorruptDatabaseError(f"blob {blob_id} lost its chunk {i}")
                out += chunk[skip : skip + size - len(out)]
                skip = 0
                i += 1
            return bytes(out)

    def ids(self) -> set[BlobId]:
        """Every stored blob id."""
        with self._storage.read() as txn:
            return {BlobId(k) for k in txn.keys("blobs")}

    def unknown(self, blob_ids: Iterable[BlobId]) -> set[BlobId]:
        """The ids among `blob_ids` that are not stored."""
        with self._storage.read() as txn:
            return {b for b in blob_ids if not txn.has("blobs", b)}

    def statistics(self) -> BlobStatistics:
        """Count, total, min and max size."""
        sizes: list[int] = []
        with self._storage.read() as txn:
            for _, raw in txn.items("blobs"):
                sizes.append(unpack(raw)[2])
        if not sizes:
            return BlobStatistics(0, 0, 0, 0)
        return BlobStatistics(len(sizes), sum(sizes), min(sizes), max(sizes))

    def datas(self, blob_ids: Iterable[BlobId]) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """(id, layout, bytes) of the known blobs among `blob_ids`."""
        out = []
        for b in blob_ids:
            info = self.info(b)
            data = self.get(b)
            if info is not None and data is not None:
                out.append((b, info.layout, data))
        return out
