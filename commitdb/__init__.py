"""commitdb: typed documents in an embedded, content-addressed commit DAG on LMDB.

The engine is synchronous and usable from a plain script (like SQLite); the ``rpc`` package
adds the network. Typical use::

    from commitdb import CommitDatabase, CommitMutableState, load_definitions

    defs = load_definitions(["model.dsm"])
    db = CommitDatabase.create("app.cdb", defs)
    ms = CommitMutableState(db.initial_state())
    ms.set(login, user_key, {"nickname": "ada"})
    commit_id = db.commit_mutations("first", ms)
"""

from __future__ import annotations

from commitdb.blobs import BlobInfo, BlobLayout, BlobStatistics, BlobStream
from commitdb.codec import decode, encode
from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitData, CommitHeader, CommitKind
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.errors import (
    CommitDBError,
    CommitError,
    CorruptDatabaseError,
    DatabaseClosedError,
    DecodeError,
    DefinitionConflictError,
    DefinitionError,
    DSMError,
    MissingBlobError,
    NotFoundError,
    PathError,
    ReadOnlyError,
    StorageError,
    StoreError,
    TransactionError,
    UnknownAttachmentError,
    UnknownCommitError,
    ValidationError,
)
from commitdb.ids import BlobId, CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.opcodes import Op, OpKind, Program
from commitdb.paths import Path
from commitdb.prototypes import FunctionPrototype, Parameter, PoolDeclaration
from commitdb.state import CommitState, DocumentTrace, EvalAction, TraceStep
from commitdb.store import CommitStore, CommitStoreNotifying
from commitdb.types import Attachment, Field, Namespace
from commitdb.values import END, EnumCase, Key, StructValue, Typed, XArray

__version__ = "0.1.0"

__all__ = (
    "END",
    "Attachment",
    "BlobId",
    "BlobInfo",
    "BlobLayout",
    "BlobStatistics",
    "BlobStream",
    "CommitDBError",
    "CommitData",
    "CommitDatabase",
    "CommitError",
    "CommitHeader",
    "CommitId",
    "CommitKind",
    "CommitMutableState",
    "CommitState",
    "CommitStore",
    "CommitStoreNotifying",
    "CorruptDatabaseError",
    "DSMError",
    "DatabaseClosedError",
    "DecodeError",
    "DefinitionConflictError",
    "DefinitionError",
    "Definitions",
    "DocumentTrace",
    "EnumCase",
    "EvalAction",
    "ExtendInfo",
    "Field",
    "FunctionPrototype",
    "Key",
    "MissingBlobError",
    "Namespace",
    "NotFoundError",
    "Op",
    "OpKind",
    "Parameter",
    "Path",
    "PathError",
    "PoolDeclaration",
    "Program",
    "ReadOnlyError",
    "StorageError",
    "StoreError",
    "StructValue",
    "TraceStep",
    "TransactionError",
    "Typed",
    "UnknownAttachmentError",
    "UnknownCommitError",
    "ValidationError",
    "XArray",
    "__version__",
    "decode",
    "encode",
)
