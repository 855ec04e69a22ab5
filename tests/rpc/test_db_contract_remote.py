"""The database contracts on remote databases, over TCP and over a Unix socket.

The same test classes run on local databases in ``tests/commitdb`` (``test_database.py`` for
the flat contract, ``test_commit_database_contract.py`` for the commit one). Here each test
gets a fresh :class:`~rpc.db_server.DatabaseServer` running in a helper thread; a factory
creates each database file, adds it to the server and opens it with the *blocking* remote
(:class:`~rpc.db_remote.DatabaseRemote`, :class:`~rpc.db_remote.CommitDatabaseRemote`),
exactly as an application would.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from commitdb.commit_database import CommitDatabase
from commitdb.database import Database
from commitdb.definitions import Definitions
from commitdb.errors import DatabaseClosedError
from rpc.db_remote import CommitDatabaseRemote, DatabaseRemote
from rpc.db_server import DatabaseServer
from rpc.server import RPCServer
from tests.commitdb.commit_database_contract import REMOTE_EXCEPTIONS, CommitDatabaseContract
from tests.commitdb.database_contract import DatabaseContract, Tuto


class InProcessServer:
    """A DatabaseServer listening in a helper thread (stopped by :meth:`stop`)."""

    def __init__(self, root: Path, transport: str) -> None:
        self.root = root
        self.app = DatabaseServer(durable=False, poll_interval=0.02)
        self._portal_cm = start_blocking_portal()
        self.portal: BlockingPortal = self._portal_cm.__enter__()
        self._sock_dir = tempfile.TemporaryDirectory(prefix="cdb-")
        listen = (
            "tcp://127.0.0.1:0"
            if transport == "tcp"
            else f"unix://{self._sock_dir.name}/server.sock"
        )
        self._serving_cm = self.portal.wrap_async_context_manager(self._serve(listen))
        self.url: str = self._serving_cm.__enter__()
        self._names = itertools.count()

    @asynccontextmanager
    async def _serve(self, listen: str) -> AsyncIterator[str]:
        import anyio

        async with anyio.create_task_group() as tg:
            await tg.start(self.app.run_watchers)
            async with RPCServer(self.app) as server:
                yield str(await server.listen(listen))
            tg.cancel_scope.cancel()

    def add(self, kind: str, definitions: Definitions | None, documentation: str | None) -> str:
        """Create a database file and serve it; returns its name."""
        name = f"{kind}{next(self._names)}"
        path = self.root / name
        if kind == "commit":
            CommitDatabase.create(path, definitions, documentation=documentation).close()
        else:
            Database.create(path, definitions, documentation=documentation).close()
        self.portal.call(self.app.add, name, str(path))
        return name

    def stop(self) -> None:
        self._serving_cm.__exit__(None, None, None)
        self._portal_cm.__exit__(None, None, None)
        self.app.close()
        self._sock_dir.cleanup()


@pytest.fixture(params=["tcp", "unix"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InProcessServer]:
    srv = InProcessServer(tmp_path, request.param)
    yield srv
    srv.stop()


class RemoteFlatFactory:
    """Flat databases served by the test's server, opened with DatabaseRemote."""

    def __init__(self, server: InProcessServer) -> None:
        self.server = server
        self.opened: list[DatabaseRemote] = []

    def __call__(
        self, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> DatabaseRemote:
        name = self.server.add("flat", definitions, documentation)
        db = DatabaseRemote.connect(self.server.url, name)
        self.opened.append(db)
        return db

    def peer(self, db: Any) -> DatabaseRemote:
        assert isinstance(db, DatabaseRemote)
        peer = DatabaseRemote.connect(self.server.url, db.name)
        self.opened.append(peer)
        return peer

    def close_all(self) -> None:
        for db in reversed(self.opened):
            db.close()


class RemoteCommitFactory:
    """Commit databases served by the test's server, opened with CommitDatabaseRemote."""

    remote = True

    def __init__(self, server: InProcessServer) -> None:
        self.server = server
        self.opened: list[CommitDatabaseRemote] = []

    def __call__(
        self, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> CommitDatabaseRemote:
        name = self.server.add("commit", definitions, documentation)
        db = CommitDatabaseRemote.connect(self.server.url, name)
        self.opened.append(db)
        return db

    def peer(self, db: Any) -> CommitDatabaseRemote:
        assert isinstance(db, CommitDatabaseRemote)
        peer = CommitDatabaseRemote.connect(self.server.url, db.name)
        self.opened.append(peer)
        return peer

    def close_all(self) -> None:
        for db in reversed(self.opened):
            db.close()


class TestRemoteDatabase(DatabaseContract):
    """The flat database contract through DatabaseRemote (TCP and Unix socket)."""

    @pytest.fixture
    def db_factory(self, server: InProcessServer) -> Iterator[RemoteFlatFactory]:
        factory = RemoteFlatFactory(server)
        yield factory
        factory.close_all()

    def test_remote_metadata(self, db: DatabaseRemote, server: InProcessServer) -> None:
        # REMOTE_EXCEPTIONS: the path is the served name; the database is not in memory
        assert db.path() == db.name and not db.in_memory()
        assert repr(db) == f"<DatabaseRemote {server.url}#{db.name}>"
        db.close()
        assert repr(db).endswith("(closed)>")

    def test_disconnect_rolls_back(
        self, db: DatabaseRemote, server: InProcessServer, tuto: Tuto
    ) -> None:
        key = tuto.login_att.create_key()
        other = DatabaseRemote.connect(server.url, db.name)
        other.begin_transaction()
        other.set(tuto.login_att, key, tuto.login(nickname="never committed"))
        assert other.in_transaction()
        other.close()
        assert not db.has(tuto.login_att, key)
        again = DatabaseRemote.connect(server.url, db.name)
        try:
            assert not again.in_transaction()  # a new session starts clean
            assert again.keys(tuto.login_att) == set()
        finally:
            again.close()


class TestRemoteCommitDatabase(CommitDatabaseContract):
    """The commit database contract through CommitDatabaseRemote (TCP and Unix socket)."""

    @pytest.fixture
    def cdb_factory(self, server: InProcessServer) -> Iterator[RemoteCommitFactory]:
        factory = RemoteCommitFactory(server)
        yield factory
        factory.close_all()

    def test_remote_metadata(self, db: CommitDatabaseRemote, server: InProcessServer) -> None:
        assert set(REMOTE_EXCEPTIONS) >= {"path", "in_memory", "flatten"}
        assert db.path() == db.name and not db.in_memory()
        assert repr(db) == f"<CommitDatabaseRemote {server.url}#{db.name}>"
        db.close()
        for call in (db.uuid, db.documentation, db.path):  # REMOTE_EXCEPTIONS
            with pytest.raises(DatabaseClosedError):
                call()
