"""Database: the flat (non-versioned) keyed document store.

A :class:`Database` holds, per attachment, one document per key, and nothing else: no
history, no commits. It uses the same typed model as the commit engine (attachments,
concept keys, canonical encoding) and the same content-addressed blob storage.

Storage layout (one storage, four tables):

=========  =============================================  ==================================
table      key                                            value
=========  =============================================  ==================================
meta       name                                           format, uuid, documentation,
                                                          definitions
documents  attachment rid (16) ‖ concept rid (16) ‖       canonical encoding of the document
           instance id (16)
blobs      blob id                                        layout, size, chunk count
chunks     blob id ‖ u32be chunk index                    bytes
=========  =============================================  ==================================

Transactions
    Reads never need a transaction; each one sees the last committed state. Every write
    (``set``, ``delete``, blob writes) needs an open transaction, which is a Python overlay:
    writes are validated and encoded when they are made and kept in a dict; reads made
    inside the transaction look at the overlay first, so they see the transaction's own
    writes. :meth:`Database.commit` applies the overlay in **one** storage write
    transaction (durable when it returns, unless the database was opened with
    ``durable=False``); :meth:`Database.rollback` drops it. A transaction therefore never
    holds a storage lock while the caller works: LMDB serializes writers only for the
    duration of the commit itself, and readers, in this process or another, never wait.
    The isolation level is *read committed*: reads outside the overlay see what other
    connections committed meanwhile, and concurrent transactions on the same document end
    with the last commit's value. The three modes (``deferred``, ``immediate``,
    ``exclusive``) are accepted for compatibility with the reference and behave alike.

Reads
    Each read outside the overlay opens one storage read transaction. Decoded documents are
    kept in a bounded cache keyed by storage key; an entry is used only when the stored
    bytes are identical, so a repeated read costs a copy instead of a decode and is never
    stale (the first read of a document notes its bytes and hands out the decoded value;
    the value is kept from the second read on). Every read returns a private copy. Stored
    documents are decoded without the per-element checks of a foreign input (see
    :func:`commitdb.codec.decode_trusted`): :meth:`Database.set` checked them.

Definitions
    The definitions are stored in ``meta``. :meth:`Database.definitions` returns a snapshot
    that is refreshed whenever another connection (or process) has extended them; a
    document call naming an attachment the snapshot does not know refreshes it too.

Thread safety
    Reads may run from several threads at once. A transaction belongs to the
    :class:`Database` object, not to a thread: the caller serializes writes.
"""

from __future__ import annotations

import builtins
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Final
from uuid import UUID, uuid4

from commitdb.blobs import (
    BLOB_TABLES,
    CHUNK_SIZE,
    BlobInfo,
    BlobLayout,
    BlobStatistics,
    BlobStore,
    BlobStream,
)
from commitdb.codec import (
    decode,
    encode,
    may_hold_blob_ids,
    trusted_bytes_decoder,
    validated_copy,
)
from commitdb.copier import copier
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import (
    CommitDBError,
    CorruptDatabaseError,
    DatabaseClosedError,
    DecodeError,
    MissingBlobError,
    ReadOnlyError,
    TransactionError,
    UnknownAttachmentError,
    ValidationError,
)
from commitdb.ids import BlobId, blob_id_for
from commitdb.opcodes import collect_blob_ids
from commitdb.storage import LmdbStorage, MemoryStorage, ReadTxn, Storage
from commitdb.storage.base import getter
from commitdb.types import Attachment, ConceptType, Type
from commitdb.values import Key

__all__ = ("DATABASE_TABLES", "FORMAT", "TRANSACTION_MODES", "AttachmentRef", "Database")

DATABASE_TABLES: Final = ("meta", "documents", *BLOB_TABLES)
"""The tables of a flat database."""

FORMAT: Final = b"commitdb-database/1"
"""The format marker stored in ``meta`` (a commit database has another one)."""

TRANSACTION_MODES: Final = ("deferred", "immediate", "exclusive")
"""The accepted :meth:`Database.begin_transaction` modes (case-insensitive)."""

_DOCS: Final = "documents"
_META: Final = "meta"
_INLINE_BLOB: Final = 8 * CHUNK_SIZE  # larger streamed blobs wait in a temporary file
_CACHE_LIMIT: Final = 1024
# Decoded documents kept to answer repeated reads with a copy instead of a decode (copying
# is several times cheaper). An entry is used only when the stored bytes are identical, so
# it is never stale; the cache is emptied when it holds too many entries or bytes.
_DOC_CACHE_ENTRIES: Final = 16_384
_DOC_CACHE_BYTES: Final = 8 << 20
_DOC_CACHE_ENTRY_BYTES: Final = 64 << 10

_UNREAD: Final[Any] = object()  # a cached document whose value was not kept yet

AttachmentRef = Attachment | str | UUID
"""How an attachment may be named: the object, its identifier ``NS::Concept.name``, or its
runtime id."""


class _AttachmentInfo:
    """What the hot paths need about one attachment, computed once."""

    __slots__ = (
        "attachment",
        "blobs",
        "concepts",
        "copy",
        "decode",
        "document_type",
        "identifier",
        "prefix",
    )

    def __init__(self, attachment: Attachment) -> None:
        self.attachment = attachment
        self.document_type = attachment.document_type
        self.copy = copier(attachment.document_type)
        self.decode = trusted_bytes_decoder(attachment.document_type)
        self.identifier = attachment.identifier
        self.prefix = attachment.runtime_id.bytes
        self.blobs = may_hold_blob_ids(attachment.document_type)
        # id(concept) -> (concept, attachment rid ‖ concept rid); the concept is kept so that
        # its id is never reused while the entry exists, and compared by identity on lookup.
        self.concepts: dict[int, tuple[ConceptType, bytes]] = {}


class _PendingBlob:
    """A blob written in an open transaction: bytes in memory or, when large, a temp file."""

    __slots__ = ("_data", "_file", "layout", "size")

    def __init__(
        self, layout: BlobLayout, size: int, data: bytes | None, file: IO[bytes] | None
    ) -> None:
        self.layout = layout
        self.size = size
        self._data = data
        self._file = file

    @classmethod
    def from_chunks(cls, layout: BlobLayout, size: int, chunks: Iterator[bytes]) -> _PendingBlob:
        """Take the pieces of a streamed blob."""
        if size <= _INLINE_BLOB:
            data = b"".join(chunks)
            return cls(layout, len(data), data, None)
        file = tempfile.TemporaryFile()
        try:
            written = sum(file.write(chunk) for chunk in chunks)
        except BaseException:
            file.close()
            raise
        return cls(layout, written, None, file)

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes from ``offset`` (the caller checked the range)."""
        if self._data is not None:
            return self._data[offset : offset + size]
        assert self._file is not None
        self._file.seek(offset)
        return self._file.read(size)

    def chunks(self) -> Iterator[bytes]:
        """The content in storage chunks."""
        for offset in range(0, self.size, CHUNK_SIZE):
            yield self.read(offset, CHUNK_SIZE)

    def discard(self) -> None:
        """Release the temporary file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None


class _Transaction:
    """The overlay of an open transaction."""

    __slots__ = ("blobs", "docs")

    def __init__(self) -> None:
        self.docs: dict[bytes, bytes | None] = {}  # storage key -> encoding (None: deleted)
        self.blobs: dict[BlobId, _PendingBlob | None] = {}  # None: deleted

    def discard(self) -> None:
        """Release what the pending blobs hold."""
        for pending in self.blobs.values():
            if pending is not None:
                pending.discard()


class _StagingBlobStore(BlobStore):
    """A BlobStore whose streams land in the open transaction of a database."""

    def __init__(self, database: Database, storage: Storage) -> None:
        super().__init__(storage)
        self._database = database

    def _store_chunks(
        self, blob_id: BlobId, layout: BlobLayout, size: int, chunks: Iterator[bytes]
    ) -> bool:
        return self._database._stage_blob(blob_id, layout, size, chunks)


def _check_mode(mode: object) -> str:
    if mode is None:
        return "deferred"
    if isinstance(mode, str) and mode.lower() in TRANSACTION_MODES:
        return mode.lower()
    raise ValueError(
        f"unknown transaction mode {mode!r}; expected one of {', '.join(TRANSACTION_MODES)}"
    )


def _read_format(path: str) -> bytes | None:
    """The format marker of the database at ``path``, read without modifying anything."""
    with LmdbStorage.open(path, (_META,), readonly=True) as storage, storage.read() as txn:
        return txn.get(_META, b"format")


def _format_error(path: str, found: bytes | None) -> CorruptDatabaseError:
    if found is not None and found.startswith(b"commitdb-commit/"):
        return CorruptDatabaseError(
            f"{path} is a commit database, not a flat database (open it with CommitDatabase)"
        )
    return CorruptDatabaseError(f"{path} is not a commitdb flat database (format {found!r})")


class Database:
    """A flat keyed document store on LMDB (or in memory), with explicit transactions.

    Build one with :meth:`create`, :meth:`open` or :meth:`create_in_memory`.

    Example:
        >>> from commitdb.definitions import Definitions
        >>> from commitdb.types import STRING, Field
        >>> defs = Definitions()
        >>> ns = defs.namespace("Tuto", "f529bc42-0618-4f54-a3fb-d55f95c5ad03")
        >>> user = defs.create_concept(ns, "User")
        >>> login = defs.create_structure(ns, "Login", [Field("nickname", STRING)])
        >>> att = defs.create_attachment(ns, "login", user, login)
        >>> db = Database.create_in_memory(defs)
        >>> key = att.create_key()
        >>> with db.transaction():
        ...     db.set(att, key, login(nickname="ada"))
        True
        >>> db.get(att, key).nickname
        'ada'
    """

    def __init__(self, storage: Storage) -> None:
        """Wrap an initialized storage; use the factories instead.

        Args:
            storage: A storage with :data:`DATABASE_TABLES` holding a flat database.

        Raises:
            CorruptDatabaseError: The storage does not hold a flat database.
        """
        self._storage = storage
        self._get = getter(storage)  # one-key reads, each in a read transaction of its own
        self._blobs = BlobStore(storage)
        self._staging = _StagingBlobStore(self, storage)
        self._readonly = storage.readonly
        self._closed = False
        self._tx: _Transaction | None = None
        self._infos: dict[UUID, _AttachmentInfo] = {}
        self._by_ref: dict[int, tuple[object, _AttachmentInfo]] = {}
        self._concepts: dict[bytes, ConceptType] = {}
        self._documents: dict[bytes, tuple[bytes, Any]] = {}  # address -> (encoding, value)
        self._documents_bytes = 0
        with storage.read() as txn:
            found = txn.get(_META, b"format")
            if found != FORMAT:
                raise _format_error(storage.path, found)
            self._uuid = UUID(bytes=txn.get(_META, b"uuid") or bytes(16))
            self._documentation = (txn.get(_META, b"documentation") or b"").decode()
            self._defs_raw = txn.get(_META, b"definitions") or b""
        self._defs = decode_definitions(self._defs_raw) if self._defs_raw else Definitions()

    # -- factories ------------------------------------------------------------------------
    @classmethod
    def _initialize(
        cls, storage: Storage, definitions: bytes, documentation: str | None
    ) -> Database:
        with storage.write() as txn:
            txn.put(_META, b"format", FORMAT)
            txn.put(_META, b"uuid", uuid4().bytes)
            txn.put(_META, b"documentation", (documentation or "").encode())
            txn.put(_META, b"definitions", definitions)
        return cls(storage)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        definitions: Definitions | None = None,
        *,
        documentation: str | None = None,
        durable: bool = True,
    ) -> Database:
        """Create a new database in the directory ``path``.

        Args:
            path: A directory that does not exist yet (or is empty).
            definitions: The initial definitions (none by default; extend them later).
            documentation: Free text stored with the database.
            durable: Flush every commit to disk (``False``: fast, for bulk loads and tests).

        Returns:
            The open database.

        Raises:
            StorageError: ``path`` exists and is not an empty directory, or LMDB refused.
        """
        raw = encode_definitions(definitions if definitions is not None else Definitions())
        storage = LmdbStorage.create(os.fspath(path), DATABASE_TABLES, durable=durable)
        try:
            return cls._initialize(storage, raw, documentation)
        except BaseException:
            storage.close()
            raise

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, readonly: bool = False, durable: bool = True
    ) -> Database:
        """Open an existing database.

        Args:
            path: The database directory.
            readonly: Refuse every write (they raise :class:`ReadOnlyError`).
            durable: Flush every commit to disk (``False``: fast, for bulk loads and tests).

        Returns:
            The open database.

        Raises:
            StorageError: Nothing exists at ``path``, or (read-write) this process already
                has it open read-only.
            CorruptDatabaseError: ``path`` is not a flat database, or it is damaged.
        """
        shown = os.fspath(path)
        if not readonly:
            # A read-write open creates missing tables: make sure this is ours first.
            found = _read_format(shown)
            if found != FORMAT:
                raise _format_error(shown, found)
        storage = LmdbStorage.open(shown, DATABASE_TABLES, readonly=readonly, durable=durable)
        try:
            return cls(storage)
        except BaseException:
            storage.close()
            raise

    @classmethod
    def create_in_memory(
        cls, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> Database:
        """Create a database that lives in this process's memory only.

        Args:
            definitions: The initial definitions.
            documentation: Free text stored with the database.

        Returns:
            The open database; its :meth:`path` is ``"InMemory"``.
        """
        raw = encode_definitions(definitions if definitions is not None else Definitions())
        return cls._initialize(MemoryStorage(DATABASE_TABLES), raw, documentation)

    @staticmethod
    def is_compatible(path: str | os.PathLike[str]) -> bool:
        """Tell whether ``path`` holds a flat database this version can open.

        Args:
            path: A candidate database directory.

        Returns:
            True for an undamaged flat database; False otherwise (never raises).
        """
        try:
            return _read_format(os.fspath(path)) == FORMAT
        except (CommitDBError, OSError):
            return False

    # -- lifecycle and metadata -----------------------------------------------------------
    def _closed_error(self) -> DatabaseClosedError:
        return DatabaseClosedError(f"{self._storage.path}: the database is closed")

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    def close(self) -> None:
        """Close the database; idempotent. An open transaction is rolled back."""
        if self._closed:
            return
        self._closed = True
        tx, self._tx = self._tx, None
        if tx is not None:
            tx.discard()
        self._by_ref.clear()
        self._documents.clear()
        self._storage.close()

    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Database:
        """Use the database as a context manager; it is closed on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the database."""
        self.close()

    def __repr__(self) -> str:
        """``<Database path>``, marked when closed."""
        state = " (closed)" if self._closed else ""
        return f"<Database {self._storage.path}{state}>"

    def uuid(self) -> UUID:
        """The uuid generated when the database was created."""
        self._check_open()
        return self._uuid

    def path(self) -> str:
        """The database directory, or ``"InMemory"``."""
        self._check_open()
        return self._storage.path

    def documentation(self) -> str:
        """The documentation given at creation (empty when none was given)."""
        self._check_open()
        return self._documentation

    def in_memory(self) -> bool:
        """Whether the database lives in memory only."""
        self._check_open()
        return self._storage.in_memory

    def codec_name(self) -> str:
        """The value codec: ``"msgpack-canonical"``."""
        self._check_open()
        return "msgpack-canonical"

    # -- definitions ----------------------------------------------------------------------
    def _refresh(self, txn: ReadTxn) -> bool:
        raw = txn.get(_META, b"definitions") or b""
        if raw == self._defs_raw:
            return False
        self._defs = decode_definitions(raw)
        self._defs_raw = raw
        return True

    def _reload_definitions(self) -> bool:
        """Adopt definitions extended by another connection; True if they changed."""
        with self._storage.read() as txn:
            return self._refresh(txn)

    def definitions(self) -> Definitions:
        """The definitions typing the documents.

        Returns:
            A snapshot, refreshed when another connection extended the definitions. Do not
            mutate it: extend the database with :meth:`extend_definitions`.
        """
        self._check_open()
        self._reload_definitions()
        return self._defs

    def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Add the types and attachments of ``definitions`` that the database lacks.

        Extension is additive and atomic: a name defined with a divergent runtime id raises
        and nothing is added. Like the reference, it runs in its own storage transaction and
        is refused while a transaction is open.

        Args:
            definitions: The definitions to merge in.

        Returns:
            What was added.

        Raises:
            TransactionError: A transaction is open.
            ReadOnlyError: The database was opened read-only.
            DefinitionConflictError: A name is defined with a divergent runtime id.
        """
        self._check_open()
        if self._tx is not None:
            raise TransactionError("extend_definitions is refused while a transaction is open")
        if self._readonly:
            raise ReadOnlyError(f"{self._storage.path} was opened read-only")
        with self._storage.write() as txn:
            raw = txn.get(_META, b"definitions") or b""
            # Decode the stored bytes rather than trusting the snapshot, which a caller may
            # have mutated: the count must be relative to what is really stored.
            merged = decode_definitions(raw) if raw else Definitions()
            info = merged.extend(definitions)
            if info.count():
                raw = encode_definitions(merged)
                txn.put(_META, b"definitions", raw)
        self._defs, self._defs_raw = merged, raw
        return info

    def definitions_hexdigest(self) -> str:
        """The digest of the definitions (see :meth:`Definitions.hexdigest`)."""
        return self.definitions().hexdigest()

    # -- argument resolution (hot paths) ----------------------------------------------------
    def _info(self, attachment: AttachmentRef) -> _AttachmentInfo:
        hit = self._by_ref.get(id(attachment))
        if hit is not None and hit[0] is attachment:
            return hit[1]
        return self._resolve(attachment)

    def _resolve(self, attachment: AttachmentRef) -> _AttachmentInfo:
        try:
            att = self._defs.check_attachment(attachment)
        except UnknownAttachmentError:
            if not self._reload_definitions():
                raise
            att = self._defs.check_attachment(attachment)
        info = self._infos.get(att.runtime_id)
        if info is None:
            info = self._infos[att.runtime_id] = _AttachmentInfo(att)
        if len(self._by_ref) >= _CACHE_LIMIT:
            self._by_ref.clear()
        self._by_ref[id(attachment)] = (attachment, info)
        return info

    @staticmethod
    def _address(info: _AttachmentInfo, key: Key, write: bool) -> bytes:
        """The storage key of a document (validates the key)."""
        if type(key) is Key:
            concept = key.concept
            hit = info.concepts.get(id(concept))
            if hit is not None and hit[0] is concept and (key.id.int or not write):
                return hit[1] + key._id_bytes
        return Database._address_slow(info, key, write)

    @staticmethod
    def _address_slow(info: _AttachmentInfo, key: object, write: bool) -> bytes:
        att = info.attachment
        where = f"{info.identifier} key"
        if not isinstance(key, Key):
            raise ValidationError(str(att.key_type), f"{type(key).__name__} {key!r}", where)
        concept = key.concept
        if not isinstance(concept, ConceptType) or not att.key_type.accepts_concept(concept):
            raise ValidationError(str(att.key_type), f"key of {concept}", where)
        if write and key.is_nil:
            raise ValidationError("a key with a valid instance id", "the nil key", where)
        if len(info.concepts) >= _CACHE_LIMIT:
            info.concepts.clear()
        prefix = info.prefix + concept.runtime_id.bytes
        info.concepts[id(concept)] = (concept, prefix)
        return prefix + key._id_bytes

    def _concept(self, raw: bytes) -> ConceptType:
        concept = self._concepts.get(raw)
        if concept is None:
            found = self._defs.query_type(UUID(bytes=raw))
            if not isinstance(found, ConceptType) and self._reload_definitions():
                found = self._defs.query_type(UUID(bytes=raw))
            if not isinstance(found, ConceptType):
                raise CorruptDatabaseError(
                    f"{self._storage.path}: a document has an unknown concept {UUID(bytes=raw)}"
                )
            concept = self._concepts[raw] = found
        return concept

    def _key_of(self, address: bytes) -> Key:
        return Key(self._concept(address[16:32]), UUID(bytes=address[32:48]))

    def _document(self, info: _AttachmentInfo, address: bytes, raw: bytes) -> Any:
        """A private copy of the document stored as ``raw`` under ``address``.

        The first read of some bytes hands out the decoded value itself and only notes the
        bytes (a document read once is decoded once); a second read decodes them again and
        keeps the value, later ones copy it.
        """
        hit = self._documents.get(address)
        if hit is not None and hit[0] == raw:
            kept = hit[1]
            if kept is not _UNREAD:
                return info.copy(kept)
            value = self._decode(info, raw)
            self._documents[address] = (raw, value)
            return info.copy(value)
        try:
            value = info.decode(raw, self._defs)  # self._decode(), inlined for its common case
        except DecodeError:
            value = self._decode(info, raw)
        size = len(raw)
        if size > _DOC_CACHE_ENTRY_BYTES:
            return value
        if (
            len(self._documents) >= _DOC_CACHE_ENTRIES
            or self._documents_bytes + size > _DOC_CACHE_BYTES
        ):
            self._documents.clear()
            self._documents_bytes = 0
        self._documents[address] = (raw, _UNREAD)
        self._documents_bytes += size
        return value

    def _decode(self, info: _AttachmentInfo, raw: bytes) -> Any:
        try:
            # bytes this module encoded (set() validates): see codec.decode_trusted
            return info.decode(raw, self._defs)
        except DecodeError:
            # A value may name a type (inside ``any``) that another connection just added.
            if not self._reload_definitions():
                raise
            return decode(raw, info.document_type, self._defs)

    # -- transactions ---------------------------------------------------------------------
    def begin_transaction(self, mode: str | None = "deferred") -> None:
        """Open a transaction; every write needs one.

        Args:
            mode: ``"deferred"``, ``"immediate"`` or ``"exclusive"`` (any case; ``None`` is
                ``"deferred"``). Writes are buffered until :meth:`commit`, so the modes
                behave alike.

        Raises:
            ValueError: Unknown mode.
            TransactionError: A transaction is already open (it is left untouched).
            ReadOnlyError: The database was opened read-only.
        """
        self._check_open()
        _check_mode(mode)
        if self._tx is not None:
            raise TransactionError("a transaction is already open (transactions do not nest)")
        if self._readonly:
            raise ReadOnlyError(f"{self._storage.path} was opened read-only")
        self._tx = _Transaction()

    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        self._check_open()
        return self._tx is not None

    def commit(self) -> None:
        """Write the transaction's changes in one storage transaction and end it.

        The changes are durable when this returns (unless opened with ``durable=False``).
        If the storage refuses, the transaction stays open: retry, or roll back.

        Raises:
            TransactionError: No transaction is open.
        """
        self._check_open()
        tx = self._tx
        if tx is None:
            raise TransactionError("commit without a transaction")
        if tx.docs or tx.blobs:
            with self._storage.write() as txn:
                # Blobs first: documents may reference them (one transaction either way).
                for blob_id, pending in tx.blobs.items():
                    if pending is None:
                        self._blobs.delete(txn, blob_id)
                    else:
                        BlobStore.put_chunks(
                            txn, blob_id, pending.layout, pending.size, pending.chunks()
                        )
                put, delete = txn.put, txn.delete
                for address, raw in tx.docs.items():
                    if raw is None:
                        delete(_DOCS, address)
                    else:
                        put(_DOCS, address, raw)
        self._tx = None
        tx.discard()

    def rollback(self) -> None:
        """Discard the transaction's changes and end it.

        Raises:
            TransactionError: No transaction is open.
        """
        self._check_open()
        tx = self._tx
        if tx is None:
            raise TransactionError("rollback without a transaction")
        self._tx = None
        tx.discard()

    @contextmanager
    def transaction(self, mode: str | None = "deferred") -> Iterator[Database]:
        """Run a block in a transaction: commit on success, roll back on exception.

        Args:
            mode: As for :meth:`begin_transaction`.

        Yields:
            This database.
        """
        self.begin_transaction(mode)
        tx = self._tx
        try:
            yield self
        except BaseException:
            if self._tx is tx and not self._closed:
                self.rollback()
            raise
        if self._tx is tx and not self._closed:
            try:
                self.commit()
            except BaseException:
                self.rollback()
                raise

    def _open_transaction(self) -> _Transaction:
        """The open transaction, or the error a write outside one deserves."""
        self._check_open()
        tx = self._tx
        if tx is None:
            if self._readonly:
                raise ReadOnlyError(f"{self._storage.path} was opened read-only")
            raise TransactionError("write outside a transaction: call begin_transaction() first")
        return tx

    # -- documents: reads -----------------------------------------------------------------
    def keys(self, attachment: AttachmentRef) -> builtins.set[Key]:
        """The keys holding a document of an attachment.

        Args:
            attachment: The attachment (object, identifier or runtime id).

        Returns:
            A new set of keys.

        Raises:
            UnknownAttachmentError: The attachment is not registered.
        """
        self._check_open()
        info = self._info(attachment)
        prefix = info.prefix
        with self._storage.read() as txn:
            addresses = builtins.set(txn.keys(_DOCS, prefix))
        tx = self._tx
        if tx is not None:
            for address, raw in tx.docs.items():
                if address.startswith(prefix):
                    if raw is None:
                        addresses.discard(address)
                    else:
                        addresses.add(address)
        return {self._key_of(address) for address in addresses}

    def has(self, attachment: AttachmentRef, key: Key) -> bool:
        """Whether a document exists.

        Args:
            attachment: The attachment (object, identifier or runtime id).
            key: The document's key.

        Returns:
            True when the document exists.

        Raises:
            UnknownAttachmentError: The attachment is not registered.
            ValidationError: The key does not fit the attachment.
        """
        if self._closed:
            raise self._closed_error()
        address = self._address(self._info(attachment), key, False)
        tx = self._tx
        if tx is not None and address in tx.docs:
            return tx.docs[address] is not None
        return self._get(_DOCS, address) is not None

    def get(self, attachment: AttachmentRef, key: Key) -> Any:
        """Read a document.

        Args:
            attachment: The attachment (object, identifier or runtime id).
            key: The document's key.

        Returns:
            A copy of the document (the caller may change it freely), or None if absent.

        Raises:
            UnknownAttachmentError: The attachment is not registered.
            ValidationError: The key does not fit the attachment.
        """
        if self._closed:
            raise self._closed_error()
        # _info() and _address() inlined for their common cases: the hot path
        hit = self._by_ref.get(id(attachment))
        info = hit[1] if hit is not None and hit[0] is attachment else self._resolve(attachment)
        if type(key) is Key:
            known = info.concepts.get(id(key.concept))
            if known is not None and known[0] is key.concept:
                address = known[1] + key._id_bytes
            else:
                address = self._address_slow(info, key, False)
        else:
            address = self._address_slow(info, key, False)
        tx = self._tx
        if tx is not None and address in tx.docs:
            raw = tx.docs[address]
        else:
            raw = self._get(_DOCS, address)  # a read transaction of its own
        return None if raw is None else self._document(info, address, raw)

    def enumerate(self, attachment: AttachmentRef) -> list[tuple[Key, Any]]:
        """Every document of an attachment.

        Args:
            attachment: The attachment (object, identifier or runtime id).

        Returns:
            ``(key, document copy)`` pairs in key order.

        Raises:
            UnknownAttachmentError: The attachment is not registered.
        """
        self._check_open()
        info = self._info(attachment)
        prefix = info.prefix
        with self._storage.read() as txn:
            pairs = list(txn.items(_DOCS, prefix))
        tx = self._tx
        if tx is not None and tx.docs:
            merged: dict[bytes, bytes | None] = dict(pairs)
            merged.update((a, r) for a, r in tx.docs.items() if a.startswith(prefix))
            pairs = sorted((a, r) for a, r in merged.items() if r is not None)
        return [(self._key_of(a), self._document(info, a, raw)) for a, raw in pairs]

    # -- documents: writes ----------------------------------------------------------------
    def set(self, attachment: AttachmentRef, key: Key, value: Any) -> bool:
        """Create or replace a document (in the open transaction).

        Args:
            attachment: The attachment (object, identifier or runtime id).
            key: The document's key (not the nil key).
            value: The document; it is validated and encoded now, so later changes to the
                object do not affect the database.

        Returns:
            True.

        Raises:
            TransactionError: No transaction is open (nothing is written).
            ReadOnlyError: The database was opened read-only.
            UnknownAttachmentError: The attachment is not registered.
            ValidationError: The key or the value does not fit; the message names the
                attachment, the key and the path of the offending part.
            MissingBlobError: The document references a blob that is not stored.
        """
        tx = self._tx
        if tx is None or self._closed:
            tx = self._open_transaction()
        info = self._info(attachment)
        address = self._address(info, key, True)
        t = info.document_type
        if info.blobs:
            document = validated_copy(value, t, f"{info.identifier}[{key.id}]")
            blob_ids = collect_blob_ids((document,))
            if blob_ids:
                self._require_blobs(tx, blob_ids)
            raw = encode(document, t)
        else:
            try:
                raw = encode(value, t)
            except ValidationError as exc:
                raise self._invalid(exc, value, t, f"{info.identifier}[{key.id}]") from None
        tx.docs[address] = raw
        return True

    @staticmethod
    def _invalid(exc: ValidationError, value: Any, t: Type, where: str) -> ValidationError:
        """The error of a refused value, located (checking again names the failing path)."""
        try:
            t.check(value, where)
        except ValidationError as located:
            return located
        return ValidationError(exc.expected, exc.given, where)

    def delete(self, attachment: AttachmentRef, key: Key) -> bool:
        """Delete a document (in the open transaction).

        Args:
            attachment: The attachment (object, identifier or runtime id).
            key: The document's key.

        Returns:
            Whether the document existed.

        Raises:
            TransactionError: No transaction is open (nothing is written).
            ReadOnlyError: The database was opened read-only.
            UnknownAttachmentError: The attachment is not registered.
            ValidationError: The key does not fit the attachment.
        """
        tx = self._open_transaction()
        address = self._address(self._info(attachment), key, True)
        if address in tx.docs:
            existed = tx.docs[address] is not None
        else:
            with self._storage.read() as txn:
                existed = txn.has(_DOCS, address)
        tx.docs[address] = None
        return existed

    # -- blobs: writes --------------------------------------------------------------------
    def _blob_visible(self, tx: _Transaction | None, blob_id: BlobId) -> bool:
        if tx is not None and blob_id in tx.blobs:
            return tx.blobs[blob_id] is not None
        return self._blobs.exists(blob_id)

    def _require_blobs(self, tx: _Transaction, blob_ids: builtins.set[BlobId]) -> None:
        missing = [b for b in blob_ids if b in tx.blobs and tx.blobs[b] is None]
        if not missing:
            unknown = self._blobs.unknown(b for b in blob_ids if b not in tx.blobs)
            missing = sorted(unknown)
        if missing:
            raise MissingBlobError(f"the document references a missing blob {missing[0].hex()}")

    def _stage_blob(
        self, blob_id: BlobId, layout: BlobLayout, size: int, chunks: Iterator[bytes]
    ) -> bool:
        """Add a blob to the open transaction (called by :class:`BlobStream`)."""
        tx = self._open_transaction()
        if self._blob_visible(tx, blob_id):
            return False
        tx.blobs[blob_id] = _PendingBlob.from_chunks(layout, size, chunks)
        return True

    def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob (in the open transaction); storing it again changes nothing.

        Args:
            data: The content.
            layout: Element data type and components (``uchar-1`` by default).

        Returns:
            The blob's content address.

        Raises:
            TransactionError: No transaction is open.
            ReadOnlyError: The database was opened read-only.
        """
        tx = self._open_transaction()
        layout = layout or BlobLayout()
        blob_id = blob_id_for(data, layout.code, layout.components)
        if not self._blob_visible(tx, blob_id):
            content = bytes(data)
            tx.blobs[blob_id] = _PendingBlob(layout, len(content), content, None)
        return blob_id

    def blob_stream(self, layout: BlobLayout | None = None, size: int | None = None) -> BlobStream:
        """Start a streamed blob upload; its ``close()`` stages the blob and returns its id.

        The stream must be closed while a transaction is open; the blob is written when
        that transaction commits.

        Args:
            layout: Element data type and components (``uchar-1`` by default).
            size: The declared size, if known (overflow and short streams raise).

        Returns:
            A stream: ``write()`` pieces, then ``close()``.

        Raises:
            TransactionError: No transaction is open.
            ReadOnlyError: The database was opened read-only.
        """
        self._open_transaction()
        return self._staging.stream(layout, size)

    def del_blob(self, blob_id: BlobId) -> bool:
        """Delete a blob (in the open transaction); documents referencing it are kept.

        Args:
            blob_id: The blob to delete.

        Returns:
            Whether the blob existed.

        Raises:
            TransactionError: No transaction is open.
            ReadOnlyError: The database was opened read-only.
        """
        tx = self._open_transaction()
        existed = self._blob_visible(tx, blob_id)
        pending = tx.blobs.get(blob_id)
        if pending is not None:
            pending.discard()
        tx.blobs[blob_id] = None
        return existed

    # -- blobs: reads ---------------------------------------------------------------------
    def _pending(self, blob_id: BlobId) -> tuple[bool, _PendingBlob | None]:
        """``(True, blob or None if deleted)`` when the open transaction wrote ``blob_id``."""
        self._check_open()
        tx = self._tx
        if tx is not None and blob_id in tx.blobs:
            return True, tx.blobs[blob_id]
        return False, None

    def blob(self, blob_id: BlobId) -> bytes | None:
        """Read a whole blob.

        Args:
            blob_id: The blob's id.

        Returns:
            Its content, or None if it is not stored.
        """
        staged, pending = self._pending(blob_id)
        if staged:
            return None if pending is None else pending.read(0, pending.size)
        return self._blobs.get(blob_id)

    def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """Read a range of a blob.

        Args:
            blob_id: The blob's id.
            size: How many bytes.
            offset: From where.

        Returns:
            The bytes of the range.

        Raises:
            MissingBlobError: The blob is not stored.
            ValueError: The range lies outside the blob.
        """
        staged, pending = self._pending(blob_id)
        if not staged:
            return self._blobs.read(blob_id, size, offset)
        if pending is None:
            raise MissingBlobError(f"missing blob {blob_id}")
        if offset < 0 or size < 0 or offset + size > pending.size:
            raise ValueError(
                f"range [{offset}, {offset + size}) outside blob of {pending.size} bytes"
            )
        return pending.read(offset, size)

    def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob.

        Args:
            blob_id: The blob's id.

        Returns:
            Its info, or None if it is not stored.
        """
        staged, pending = self._pending(blob_id)
        if staged:
            return None if pending is None else BlobInfo(blob_id, pending.layout, pending.size)
        return self._blobs.info(blob_id)

    def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the stored blobs among ``blob_ids`` (unknown ids are left out).

        Args:
            blob_ids: The blobs to describe.

        Returns:
            One info per stored blob, in the order asked.
        """
        self._check_open()
        if self._tx is None or not self._tx.blobs:
            return self._blobs.infos(blob_ids)
        return [info for info in map(self.blob_info, blob_ids) if info is not None]

    def blob_ids(self) -> builtins.set[BlobId]:
        """The ids of every stored blob."""
        self._check_open()
        ids = self._blobs.ids()
        tx = self._tx
        if tx is not None:
            for blob_id, pending in tx.blobs.items():
                if pending is None:
                    ids.discard(blob_id)
                else:
                    ids.add(blob_id)
        return ids

    def blob_statistics(self) -> BlobStatistics:
        """Count, total, smallest and largest size of the stored blobs."""
        self._check_open()
        tx = self._tx
        if tx is None or not tx.blobs:
            return self._blobs.statistics()
        sizes = {info.blob_id: info.size for info in self._blobs.infos(self._blobs.ids())}
        for blob_id, pending in tx.blobs.items():
            if pending is None:
                sizes.pop(blob_id, None)
            else:
                sizes[blob_id] = pending.size
        if not sizes:
            return BlobStatistics(0, 0, 0, 0)
        values = sizes.values()
        return BlobStatistics(len(sizes), sum(values), min(values), max(values))
