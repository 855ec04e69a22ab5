"""The commit database contract on local databases: LMDB files and memory.

The same contract runs against remote databases (TCP and Unix sockets) in
``tests/rpc/test_db_contract_remote.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions
from commitdb.errors import DatabaseClosedError
from commitdb.storage import Storage
from tests.commitdb.commit_database_contract import CommitDatabaseContract


class _SharedMemory:
    """A second handle on a memory storage with its own ``closed`` flag, so that a peer
    connection can be closed without closing the database it shares (as two LMDB handles on
    one file). Everything else is the shared storage's."""

    def __init__(self, base: Storage) -> None:
        self._base = base
        self._closed = False

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._base, name)
        if not callable(found):
            return found

        def checked(*args: Any, **kwargs: Any) -> Any:
            if self._closed:
                raise DatabaseClosedError("the storage view was closed")
            return found(*args, **kwargs)

        return checked


class LocalCommitFactory:
    """Creates LMDB or memory commit databases and peer handles; closes them all."""

    remote = False

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.opened: list[CommitDatabase] = []
        self._storages: dict[int, Storage] = {}

    def __call__(
        self, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> CommitDatabase:
        if self.kind == "memory":
            db = CommitDatabase.create_in_memory(definitions, documentation=documentation)
        else:
            path = self.root / f"cdb{len(self.opened)}"
            db = CommitDatabase.create(
                path, definitions, documentation=documentation, durable=False
            )
        self.opened.append(db)
        return db

    def peer(self, db: Any) -> CommitDatabase:
        assert isinstance(db, CommitDatabase)
        if self.kind == "memory":
            # White box: a memory database has no path to open again, so share its storage.
            peer = CommitDatabase(_SharedMemory(db._storage))
        else:
            peer = CommitDatabase.open(db.path(), durable=False)
        self.opened.append(peer)
        return peer

    def close_all(self) -> None:
        for db in reversed(self.opened):
            db.close()


class TestLmdbCommitDatabase(CommitDatabaseContract):
    """The contract on LMDB files."""

    @pytest.fixture
    def cdb_factory(self, tmp_path: Path) -> Iterator[LocalCommitFactory]:
        factory = LocalCommitFactory("lmdb", tmp_path)
        yield factory
        factory.close_all()

    def test_lmdb_path(self, db: CommitDatabase, tmp_path: Path) -> None:
        assert db.path() == str(tmp_path / "cdb0")
        assert not db.in_memory()


class TestMemoryCommitDatabase(CommitDatabaseContract):
    """The contract on memory databases."""

    @pytest.fixture
    def cdb_factory(self, tmp_path: Path) -> Iterator[LocalCommitFactory]:
        factory = LocalCommitFactory("memory", tmp_path)
        yield factory
        factory.close_all()

    def test_memory_path(self, db: CommitDatabase) -> None:
        assert db.path() == "InMemory" and db.in_memory()
