"""The interfaces shared by local and remote implementations, as ``typing.Protocol``s.

* :class:`AttachmentGetting`: reading documents (CommitState, CommitMutableState, Database,
  and their remotes).
* :class:`AttachmentMutating`: recording mutations (CommitMutableState, and the remote
  mutating state a server-side pool function receives).
* :class:`Databasing`: the flat :class:`~commitdb.database.Database` surface (local, or a
  DatabaseRemote).
* :class:`CommitDatabasing`: the driver-level surface of a
  :class:`~commitdb.commit_database.CommitDatabase` that CommitSynchronizer needs (local, or
  a CommitDatabaseRemote).
* :class:`BlobStreaming`: a streamed blob upload, as returned by ``blob_stream()``.

Every protocol is ``runtime_checkable``: ``isinstance`` checks that the methods exist (not
their signatures; mypy checks those).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from commitdb.blobs import BlobInfo, BlobLayout, BlobStatistics
    from commitdb.commits import CommitData, CommitHeader
    from commitdb.definitions import Definitions, ExtendInfo
    from commitdb.ids import BlobId, CommitId
    from commitdb.paths import Path
    from commitdb.types import Attachment
    from commitdb.values import Key

__all__ = (
    "AttachmentGetting",
    "AttachmentMutating",
    "BlobStreaming",
    "CommitAttachmentMutating",
    "CommitDatabasing",
    "Databasing",
)


@runtime_checkable
class AttachmentGetting(Protocol):
    """Read access to the documents of a state or a database."""

    def definitions(self) -> Definitions:
        """The definitions typing the documents."""

    def keys(self, attachment: Attachment | str) -> builtins.set[Key]:
        """The keys holding a document of ``attachment``."""

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """Whether the document of ``key`` exists."""

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document of ``key``, or None when it does not exist."""

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """``(key, document copy)`` for every document of ``attachment``, in key order."""


@runtime_checkable
class AttachmentMutating(AttachmentGetting, Protocol):
    """Recording mutations on documents; reads see the mutations already recorded."""

    def set(self, attachment: Attachment | str, key: Key, value: Any) -> None:
        """Replace (or create) the whole document."""

    def diff(
        self, attachment: Attachment | str, key: Key, value: Any, recursive: bool = False
    ) -> None:
        """Record only what turns the current document into ``value``."""

    def update(self, attachment: Attachment | str, key: Key, path: Path | str, value: Any) -> None:
        """Assign a value at a path."""

    def union_in_set(
        self, attachment: Attachment | str, key: Key, path: Path | str, elements: Iterable[Any]
    ) -> None:
        """Add elements to the set at ``path``."""

    def subtract_in_set(
        self, attachment: Attachment | str, key: Key, path: Path | str, elements: Iterable[Any]
    ) -> None:
        """Remove elements from the set at ``path``."""

    def union_in_map(
        self,
        attachment: Attachment | str,
        key: Key,
        path: Path | str,
        entries: Mapping[Any, Any],
    ) -> None:
        """Insert entries into the map at ``path``, overwriting existing keys."""

    def subtract_in_map(
        self, attachment: Attachment | str, key: Key, path: Path | str, keys: Iterable[Any]
    ) -> None:
        """Remove entries from the map at ``path`` by key."""

    def update_in_map(
        self,
        attachment: Attachment | str,
        key: Key,
        path: Path | str,
        entries: Mapping[Any, Any],
    ) -> None:
        """Overwrite the values of keys already present in the map at ``path``."""

    def insert_in_xarray(
        self,
        attachment: Attachment | str,
        key: Key,
        path: Path | str,
        before: uuid.UUID,
        new: uuid.UUID | None,
        value: Any,
    ) -> uuid.UUID:
        """Insert a value before a position of the xarray at ``path``; return its position."""

    def update_in_xarray(
        self,
        attachment: Attachment | str,
        key: Key,
        path: Path | str,
        position: uuid.UUID,
        value: Any,
    ) -> None:
        """Write the value at a position of the xarray at ``path``."""

    def remove_in_xarray(
        self, attachment: Attachment | str, key: Key, path: Path | str, position: uuid.UUID
    ) -> None:
        """Remove the element at a position of the xarray at ``path``."""

    def delete(self, attachment: Attachment | str, key: Key) -> None:
        """Delete the document."""


CommitAttachmentMutating = AttachmentMutating
"""The reference system's name for :class:`AttachmentMutating`."""


@runtime_checkable
class BlobStreaming(Protocol):
    """A streamed blob upload: ``write()`` the pieces, then ``close()`` for the id."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; return how many were written."""

    def close(self) -> BlobId:
        """Finish the upload and return the blob's id."""

    def abort(self) -> None:
        """Discard what was written."""


@runtime_checkable
class Databasing(Protocol):
    """The flat database surface (see :class:`~commitdb.database.Database`)."""

    # -- lifecycle and metadata --
    def close(self) -> None:
        """Close the database; idempotent; further calls raise DatabaseClosedError."""

    def is_closed(self) -> bool:
        """Whether the database was closed."""

    def __enter__(self) -> Databasing:
        """Use the database as a context manager (closed on exit)."""

    def __exit__(self, *exc_info: object) -> None:
        """Close the database."""

    def uuid(self) -> uuid.UUID:
        """The uuid generated at creation."""

    def path(self) -> str:
        """The database path, or ``"InMemory"``."""

    def documentation(self) -> str:
        """The documentation given at creation."""

    def in_memory(self) -> bool:
        """Whether the database lives in memory only."""

    def codec_name(self) -> str:
        """The name of the value codec."""

    # -- definitions --
    def definitions(self) -> Definitions:
        """A snapshot of the definitions, refreshed after extensions by others."""

    def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Merge definitions in (additive; refused while a transaction is open)."""

    def definitions_hexdigest(self) -> str:
        """The digest of the definitions."""

    # -- transactions --
    def begin_transaction(self, mode: str | None = "deferred") -> None:
        """Open a transaction (``deferred``, ``immediate`` or ``exclusive``)."""

    def commit(self) -> None:
        """Write the transaction's changes and end it."""

    def rollback(self) -> None:
        """Discard the transaction's changes and end it."""

    def in_transaction(self) -> bool:
        """Whether a transaction is open."""

    def transaction(self, mode: str | None = "deferred") -> AbstractContextManager[Databasing]:
        """A block in a transaction: commit on success, roll back on exception."""

    # -- documents --
    def keys(self, attachment: Attachment | str) -> builtins.set[Key]:
        """The keys holding a document of ``attachment``."""

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """Whether the document of ``key`` exists."""

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document of ``key``, or None when it does not exist."""

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """``(key, document copy)`` for every document of ``attachment``, in key order."""

    def set(self, attachment: Attachment | str, key: Key, value: Any) -> bool:
        """Create or replace a document in the open transaction; return True."""

    def delete(self, attachment: Attachment | str, key: Key) -> bool:
        """Delete a document in the open transaction; return whether it existed."""

    # -- blobs --
    def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob in the open transaction (idempotent); return its id."""

    def blob_stream(
        self, layout: BlobLayout | None = None, size: int | None = None
    ) -> BlobStreaming:
        """Start a streamed blob upload in the open transaction."""

    def del_blob(self, blob_id: BlobId) -> bool:
        """Delete a blob in the open transaction; return whether it existed."""

    def blob(self, blob_id: BlobId) -> bytes | None:
        """A whole blob, or None."""

    def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """A range of a blob."""

    def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None."""

    def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the stored blobs among ``blob_ids``."""

    def blob_ids(self) -> builtins.set[BlobId]:
        """Every stored blob id."""

    def blob_statistics(self) -> BlobStatistics:
        """Count and sizes of the stored blobs."""


@runtime_checkable
class CommitDatabasing(Protocol):
    """The driver-level commit database surface that CommitSynchronizer works with."""

    def definitions(self) -> Definitions:
        """A snapshot of the definitions."""

    def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Merge definitions in (additive)."""

    def definitions_hexdigest(self) -> str:
        """The digest of the definitions (the sync comparison key)."""

    def data_version(self) -> int:
        """A counter bumped by every write."""

    def commit_ids(self) -> builtins.set[CommitId]:
        """Every commit id."""

    def commit_ids_in_order(self) -> list[CommitId]:
        """Every commit id in creation order (parents before children)."""

    def head_commit_ids(self) -> builtins.set[CommitId]:
        """Commits that are neither a parent nor a merge target."""

    def commit_exists(self, commit_id: CommitId) -> bool:
        """Whether the commit is stored."""

    def commit_header(self, commit_id: CommitId) -> CommitHeader:
        """The header of a commit."""

    def commit_data(self, commit_id: CommitId) -> CommitData:
        """Header and program bytes of a commit."""

    def commit_datas(self, commit_ids: Iterable[CommitId]) -> list[CommitData]:
        """Commit datas of several commits."""

    def create_commit_data(self, data: CommitData) -> bool:
        """Store a commit received verbatim; False if it was already there."""

    def commit_blob_ids(self, data: CommitData) -> builtins.set[BlobId]:
        """The blob ids a commit's program references."""

    def unknown_blob_ids(self, blob_ids: Iterable[BlobId]) -> builtins.set[BlobId]:
        """The ids among ``blob_ids`` that are not stored."""

    def blob_datas(self, blob_ids: Iterable[BlobId]) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """``(id, layout, bytes)`` of the stored blobs among ``blob_ids``."""

    def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs; return the ids actually added."""

    def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None."""
