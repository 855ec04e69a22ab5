"""The commitdb error hierarchy.

Every refusal of the engine raises a subclass of :class:`CommitDBError`. Each class carries a
stable ``code`` (a short dotted string) that the RPC layer maps to wire codes in one place.

::

    CommitDBError
    ├── DefinitionError              bad or conflicting type definitions
    │   ├── DSMError                 DSM text that does not parse (file:line:col: message)
    │   └── DefinitionConflictError  same qualified name, divergent runtime id
    ├── ValidationError (TypeError)  a value that does not fit its type (expected/given/where)
    ├── PathError                    a path that cannot exist for a type, or a malformed path
    ├── DecodeError (ValueError)     bytes that are not a canonical encoding of the type
    ├── NotFoundError (LookupError)
    │   ├── UnknownAttachmentError
    │   ├── UnknownCommitError
    │   └── MissingBlobError
    ├── StorageError                 the storage layer refused (corrupt file, closed, read-only)
    │   ├── DatabaseClosedError
    │   ├── ReadOnlyError
    │   └── CorruptDatabaseError
    ├── TransactionError             write outside a transaction, nested begin, ...
    ├── CommitError                  a commit the DAG refuses (not mergeable, sealed state, ...)
    └── StoreError                   CommitStore used without a database
"""

from __future__ import annotations

__all__ = (
    "CommitDBError",
    "CommitError",
    "CorruptDatabaseError",
    "DSMError",
    "DatabaseClosedError",
    "DecodeError",
    "DefinitionConflictError",
    "DefinitionError",
    "MissingBlobError",
    "NotFoundError",
    "PathError",
    "ReadOnlyError",
    "StorageError",
    "StoreError",
    "TransactionError",
    "UnknownAttachmentError",
    "UnknownCommitError",
    "ValidationError",
)


class CommitDBError(Exception):
    """Root of every error the engine raises on purpose."""

    code = "commitdb"


class DefinitionError(CommitDBError):
    """A type definition is malformed, or refers to something unknown."""

    code = "definition"


class DSMError(DefinitionError):
    """DSM text that does not parse or does not make sense, located as file:line:col."""

    code = "definition.dsm"

    def __init__(self, message: str, file: str = "<string>", line: int = 0, col: int = 0) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        super().__init__(f"{file}:{line}:{col}: {message}")


class DefinitionConflictError(DefinitionError):
    """A qualified name is defined twice with two divergent runtime ids."""

    code = "definition.conflict"


class ValidationError(CommitDBError, TypeError):
    """A value does not fit its type; the message says what was expected, given and where."""

    code = "validation"

    def __init__(self, expected: str, given: str, where: str = "") -> None:
        self.expected = expected
        self.given = given
        self.where = where
        at = f" at {where}" if where else ""
        super().__init__(f"expected {expected}, got {given}{at}")


class PathError(CommitDBError, ValueError):
    """A path that is malformed or cannot exist for the type it is resolved against."""

    code = "path"


class DecodeError(CommitDBError, ValueError):
    """Bytes that are not a valid canonical encoding of the expected type."""

    code = "decode"


class NotFoundError(CommitDBError, LookupError):
    """Something named does not exist."""

    code = "not_found"


class UnknownAttachmentError(NotFoundError):
    """The attachment is not registered in the definitions in use."""

    code = "not_found.attachment"


class UnknownCommitError(NotFoundError):
    """No commit has this id."""

    code = "not_found.commit"


class MissingBlobError(NotFoundError):
    """A blob id names no stored blob."""

    code = "not_found.blob"


class StorageError(CommitDBError):
    """The storage layer refused an operation."""

    code = "storage"


class DatabaseClosedError(StorageError):
    """The database was closed."""

    code = "storage.closed"


class ReadOnlyError(StorageError):
    """A write was attempted on a database opened read-only."""

    code = "storage.readonly"


class CorruptDatabaseError(StorageError):
    """The file is not a commitdb database, or is damaged."""

    code = "storage.corrupt"


class TransactionError(CommitDBError):
    """Transaction misuse: write outside a transaction, nested begin, commit without begin."""

    code = "transaction"


class CommitError(CommitDBError):
    """The commit DAG refuses an operation (not mergeable, sealed mutable state, ...)."""

    code = "commit"


class StoreError(CommitDBError):
    """A CommitStore was used without a database."""

    code = "store"
