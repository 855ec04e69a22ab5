"""Tests of the flat Database: the shared contract on memory and LMDB, then LMDB specifics."""

from __future__ import annotations

import copy
import inspect
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from commitdb import database as database_module
from commitdb.blobs import BlobLayout, BlobStream
from commitdb.commit_database import CommitDatabase
from commitdb.database import DATABASE_TABLES, Database
from commitdb.definitions import Definitions
from commitdb.errors import (
    CorruptDatabaseError,
    DatabaseClosedError,
    ReadOnlyError,
    StorageError,
    TransactionError,
)
from commitdb.ids import blob_id_for
from commitdb.mutable_state import CommitMutableState
from commitdb.protocols import (
    AttachmentGetting,
    AttachmentMutating,
    BlobStreaming,
    CommitAttachmentMutating,
    CommitDatabasing,
    Databasing,
)
from commitdb.storage import LmdbStorage, MemoryStorage, ReadTxn, Storage, WriteTxn
from commitdb.types import INT64, STRING, Field, MapType, SetType, VectorType, XArrayType
from commitdb.values import Key
from tests.commitdb.database_contract import DatabaseContract, Tuto, tuto_definitions

REPO_ROOT = Path(__file__).resolve().parents[2]


class _StorageView:
    """A second handle on a memory storage, with its own ``closed`` flag.

    It lets two Database connections share one in-memory storage the way two LMDB
    connections share one file: closing one connection leaves the other working.
    """

    def __init__(self, base: Storage) -> None:
        self._base = base
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise DatabaseClosedError("the storage view was closed")

    def read(self) -> AbstractContextManager[ReadTxn]:
        self._check()
        return self._base.read()

    def write(self) -> AbstractContextManager[WriteTxn]:
        self._check()
        return self._base.write()

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readonly(self) -> bool:
        return self._base.readonly

    @property
    def path(self) -> str:
        return self._base.path

    @property
    def in_memory(self) -> bool:
        return self._base.in_memory

    @property
    def tables(self) -> tuple[str, ...]:
        return self._base.tables


class LocalFactory:
    """Creates memory or LMDB databases and their peer connections; closes them all."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.opened: list[Database] = []

    def __call__(
        self, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> Database:
        if self.kind == "memory":
            db = Database.create_in_memory(definitions, documentation=documentation)
        else:
            path = self.root / f"db{len(self.opened)}"
            db = Database.create(path, definitions, documentation=documentation, durable=False)
        self.opened.append(db)
        return db

    def peer(self, db: Databasing) -> Database:
        assert isinstance(db, Database)
        if self.kind == "memory":
            # White box: a memory database has no path to open again, so share its storage.
            peer = Database(_StorageView(db._storage))
        else:
            peer = Database.open(db.path(), durable=False)
        self.opened.append(peer)
        return peer

    def close_all(self) -> None:
        for db in reversed(self.opened):
            db.close()


class TestMemoryDatabase(DatabaseContract):
    """The contract on an in-memory database."""

    @pytest.fixture
    def db_factory(self, tmp_path: Path) -> Iterator[LocalFactory]:
        factory = LocalFactory("memory", tmp_path)
        yield factory
        factory.close_all()

    def test_in_memory_metadata(self, db: Database) -> None:
        assert db.path() == "InMemory"
        assert db.in_memory()
        assert repr(db) == "<Database InMemory>"

    def test_memory_databases_are_independent(self, db_factory: LocalFactory, tuto: Tuto) -> None:
        first, second = db_factory(tuto.definitions), db_factory(tuto.definitions)
        key = self.commit_login(first, tuto)
        assert not second.has(tuto.login_att, key)


class TestLmdbDatabase(DatabaseContract):
    """The contract on an LMDB database."""

    @pytest.fixture
    def db_factory(self, tmp_path: Path) -> Iterator[LocalFactory]:
        factory = LocalFactory("lmdb", tmp_path)
        yield factory
        factory.close_all()

    def test_lmdb_metadata(self, db: Database, tmp_path: Path) -> None:
        assert db.path() == str(tmp_path / "db0")
        assert not db.in_memory()
        assert repr(db) == f"<Database {tmp_path / 'db0'}>"
        db.close()
        assert repr(db) == f"<Database {tmp_path / 'db0'} (closed)>"


# --------------------------------------------------------------------------------------------
# Behaviour of the local implementation on both storages.


@pytest.fixture(params=["memory", "lmdb"])
def local_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    factory = LocalFactory(request.param, tmp_path)
    yield factory(tuto_definitions().definitions)
    factory.close_all()


def test_protocols() -> None:
    tuto = tuto_definitions()
    with Database.create_in_memory(tuto.definitions) as db:
        assert isinstance(db, Databasing)
        assert isinstance(db, AttachmentGetting)
        assert not isinstance(db, AttachmentMutating)  # set/delete return values, no diff
        assert not isinstance(db, CommitDatabasing)
        with db.transaction():
            stream = db.blob_stream()
            assert isinstance(stream, BlobStream)
            assert isinstance(stream, BlobStreaming)
            stream.abort()
    cdb = CommitDatabase.create_in_memory(tuto.definitions)
    try:
        assert isinstance(cdb, CommitDatabasing)
        assert not isinstance(cdb, Databasing)
        state = cdb.initial_state()
        assert isinstance(state, AttachmentGetting)
        assert not isinstance(state, AttachmentMutating)
        mutable = CommitMutableState(state)
        assert isinstance(mutable, AttachmentMutating)
        assert isinstance(mutable, CommitAttachmentMutating)
        assert isinstance(mutable, AttachmentGetting)
    finally:
        cdb.close()


def _static_conformance(
    db: Database, cdb: CommitDatabase, mutable: CommitMutableState, stream: BlobStream
) -> tuple[Databasing, AttachmentGetting, CommitDatabasing, AttachmentMutating, BlobStreaming]:
    """Never called: mypy checks these conversions (signatures, not just names)."""
    return db, db, cdb, mutable, stream


def _parameters(function: object) -> list[tuple[str, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [
        (Databasing, Database),
        (AttachmentGetting, Database),
        (CommitDatabasing, CommitDatabase),
        (AttachmentMutating, CommitMutableState),
        (BlobStreaming, BlobStream),
    ],
)
def test_protocol_signatures(protocol: type, implementation: type) -> None:
    """Parameter names and defaults match, so keyword calls work on every implementation."""
    members = [
        name
        for klass in protocol.__mro__
        if klass.__module__ == "commitdb.protocols"
        for name, value in vars(klass).items()
        if callable(value) and (not name.startswith("_") or name in ("__enter__", "__exit__"))
    ]
    assert members
    for name in members:
        assert _parameters(getattr(protocol, name)) == _parameters(getattr(implementation, name)), (
            name
        )


def nested_model() -> tuple[Definitions, Any, Any]:
    """A document with containers, to check that reads never share them."""
    defs = Definitions()
    ns = defs.namespace("Nest", "6c0a4f0e-8f5b-4f7e-9a43-2c1d5e7b9f10")
    thing = defs.create_concept(ns, "Thing")
    doc = defs.create_structure(
        ns,
        "Doc",
        [
            Field("tags", SetType(STRING)),
            Field("scores", MapType(STRING, INT64)),
            Field("items", VectorType(STRING)),
            Field("history", XArrayType(STRING)),
        ],
    )
    return defs, doc, defs.create_attachment(ns, "doc", thing, doc)


@pytest.mark.parametrize("kind", ["memory", "lmdb"])
def test_reads_never_share_containers(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs, doc, att = nested_model()
    factory = LocalFactory(kind, tmp_path)
    try:
        db = factory(defs)
        key = att.create_key()
        value = doc(tags={"a"}, scores={"x": 1}, items=["i"], history=["h"])
        expected = copy.deepcopy(value)
        with db.transaction():
            db.set(att, key, value)
            inside = db.get(att, key)
            inside.tags.add("inside")
        value.tags.add("after set")
        for _ in range(3):
            first = db.get(att, key)
            assert first == expected
            first.tags.add("b")
            first.scores["y"] = 2
            first.items.append("j")
            first.history.append("k")
            ((_, listed),) = db.enumerate(att)
            assert listed.tags == {"a"}
            listed.items.clear()
        # Tiny cache limits: entries are dropped or never kept, reads stay right.
        monkeypatch.setattr(database_module, "_DOC_CACHE_ENTRIES", 2)
        monkeypatch.setattr(database_module, "_DOC_CACHE_ENTRY_BYTES", 40)
        keys = [att.create_key() for _ in range(10)]
        with db.transaction():
            for i, k in enumerate(keys):
                db.set(att, k, doc(items=[str(i)] * (1 + 10 * (i % 2))))
        for _ in range(2):
            for i, k in enumerate(keys):
                assert db.get(att, k).items == [str(i)] * (1 + 10 * (i % 2))
    finally:
        factory.close_all()


def test_large_streamed_blob(local_db: Database) -> None:
    """A streamed blob larger than the in-memory limit waits in a temporary file."""
    rng = random.Random(7)
    pieces = [rng.randbytes(3 << 20) for _ in range(3)] + [b"end"]
    content = b"".join(pieces)
    local_db.begin_transaction()
    stream = local_db.blob_stream(BlobLayout("uchar"), size=len(content))
    for piece in pieces:
        stream.write(piece)
    blob_id = stream.close()
    assert blob_id == blob_id_for(content)
    assert local_db.read_blob(blob_id, 10, (5 << 20) - 5) == content[(5 << 20) - 5 : (5 << 20) + 5]
    info = local_db.blob_info(blob_id)
    assert info is not None and info.size == len(content)
    local_db.commit()
    assert local_db.blob(blob_id) == content
    # The same in a transaction that is rolled back.
    local_db.begin_transaction()
    other = local_db.blob_stream()
    other.write(content[::-1])
    reversed_id = other.close()
    local_db.rollback()
    assert local_db.blob(reversed_id) is None


class _FlakyView(_StorageView):
    """A storage view whose next write transactions fail."""

    failures = 0

    def write(self) -> AbstractContextManager[WriteTxn]:
        if self.failures:
            self.failures -= 1
            raise StorageError("simulated storage failure")
        return super().write()


def test_failed_commit_keeps_transaction(tuto: Tuto) -> None:
    with Database.create_in_memory(tuto.definitions) as origin:
        view = _FlakyView(origin._storage)
        db = Database(view)
        key = tuto.login_att.create_key()
        db.begin_transaction()
        db.set(tuto.login_att, key, tuto.login(nickname="ada"))
        view.failures = 1
        with pytest.raises(StorageError, match="simulated"):
            db.commit()
        assert db.in_transaction()  # still open: retry or roll back
        assert db.get(tuto.login_att, key).nickname == "ada"
        assert not origin.has(tuto.login_att, key)
        db.commit()
        assert origin.get(tuto.login_att, key).nickname == "ada"
        # The context manager rolls back a transaction whose commit failed.
        view.failures = 1
        with pytest.raises(StorageError, match="simulated"), db.transaction():
            db.delete(tuto.login_att, key)
        assert not db.in_transaction()
        assert db.has(tuto.login_att, key)
        db.close()


def test_transaction_ended_inside_context_manager(local_db: Database, tuto: Tuto) -> None:
    key = tuto.login_att.create_key()
    with local_db.transaction():
        local_db.set(tuto.login_att, key, tuto.login(nickname="committed by hand"))
        local_db.commit()
        local_db.begin_transaction()
        local_db.set(tuto.login_att, key, tuto.login(nickname="left open"))
    # The block ended a transaction it did not own: the one begun inside is left alone.
    assert local_db.in_transaction()
    assert local_db.get(tuto.login_att, key).nickname == "left open"
    local_db.rollback()
    assert local_db.get(tuto.login_att, key).nickname == "committed by hand"


# --------------------------------------------------------------------------------------------
# LMDB: files, reopening, read-only, other processes, damaged files.


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter that imports this checkout."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


@pytest.fixture
def tuto() -> Tuto:
    return tuto_definitions()


def make_database(path: Path, tuto: Tuto, documents: int = 3) -> list[tuple[Key, str]]:
    with Database.create(path, tuto.definitions, documentation="docs", durable=False) as db:
        with db.transaction():
            pairs = []
            for i in range(documents):
                key = tuto.login_att.create_key()
                db.set(tuto.login_att, key, tuto.login(nickname=f"user{i}", password="x" * 200))
                pairs.append((key, f"user{i}"))
    return pairs


def test_create_and_open_failures(tmp_path: Path, tuto: Tuto) -> None:
    path = tmp_path / "db"
    make_database(path, tuto)
    with pytest.raises(StorageError):
        Database.create(path, tuto.definitions)
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(StorageError):
        Database.create(tmp_path / "file")
    with pytest.raises(StorageError, match="no database") as info:
        Database.open(tmp_path / "missing")
    assert not isinstance(info.value, CorruptDatabaseError)
    with pytest.raises(StorageError):
        Database.open(tmp_path / "missing", readonly=True)
    assert not (tmp_path / "missing").exists()


def test_data_survives_reopen(tmp_path: Path, tuto: Tuto) -> None:
    path = tmp_path / "db"
    with Database.create(path, tuto.definitions, documentation="kept") as db:  # durable
        identity = db.uuid()
        key = tuto.login_att.create_key()
        with db.transaction():
            db.set(tuto.login_att, key, tuto.login(nickname="ada"))
            db.set(tuto.account_att, key, tuto.account(state=tuto.status.completed))
            pixels = db.create_blob(b"\x01\x02\x03", BlobLayout("uchar", 3))
            db.set(tuto.portrait_att, key, tuto.texture(width=1, height=1, pixels=pixels))
    with Database.open(path) as db:
        assert db.uuid() == identity
        assert db.documentation() == "kept"
        assert db.path() == str(path)
        assert db.definitions_hexdigest() == tuto.definitions.hexdigest()
        assert db.get(tuto.login_att, key) == tuto.login(nickname="ada")
        assert db.get(tuto.account_att, key).state == tuto.status.completed
        assert db.get(tuto.portrait_att, key).pixels == pixels
        assert db.blob(pixels) == b"\x01\x02\x03"
        info = db.blob_info(pixels)
        assert info is not None and info.layout == BlobLayout("uchar", 3)
        with db.transaction():
            assert db.delete(tuto.login_att, key)
    with Database.open(path, readonly=True) as db:
        assert db.keys(tuto.login_att) == set()
        assert db.keys(tuto.account_att) == {key}


def test_open_read_only(tmp_path: Path, tuto: Tuto) -> None:
    path = tmp_path / "db"
    pairs = make_database(path, tuto)
    key = pairs[0][0]
    with Database.open(path, readonly=True) as db:
        assert len(db.keys(tuto.login_att)) == 3
        assert db.get(tuto.login_att, key).nickname == "user0"
        with pytest.raises(ReadOnlyError):
            db.begin_transaction()
        with pytest.raises(ReadOnlyError):
            db.transaction().__enter__()
        assert not db.in_transaction()
        with pytest.raises(ReadOnlyError):
            db.set(tuto.login_att, key, tuto.login())
        with pytest.raises(ReadOnlyError):
            db.delete(tuto.login_att, key)
        with pytest.raises(ReadOnlyError):
            db.create_blob(b"x")
        with pytest.raises(ReadOnlyError):
            db.blob_stream()
        with pytest.raises(ReadOnlyError):
            db.del_blob(blob_id_for(b"x"))
        with pytest.raises(ReadOnlyError):
            db.extend_definitions(Definitions())
        assert db.get(tuto.login_att, key).nickname == "user0"


def test_read_only_alongside_writer(tmp_path: Path, tuto: Tuto) -> None:
    path = tmp_path / "db"
    make_database(path, tuto, documents=0)
    with Database.open(path, durable=False) as writer, Database.open(path, readonly=True) as reader:
        key = tuto.login_att.create_key()
        with writer.transaction():
            writer.set(tuto.login_att, key, tuto.login(nickname="seen"))
        assert reader.get(tuto.login_att, key).nickname == "seen"
        writer.extend_definitions(tuto_definitions().definitions)
        assert reader.definitions_hexdigest() == writer.definitions_hexdigest()


def test_is_compatible(tmp_path: Path, tuto: Tuto) -> None:
    make_database(tmp_path / "db", tuto)
    assert Database.is_compatible(tmp_path / "db")
    assert Database.is_compatible(str(tmp_path / "db"))
    assert not Database.is_compatible(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not Database.is_compatible(tmp_path / "empty")
    (tmp_path / "file").write_bytes(b"garbage" * 1000)
    assert not Database.is_compatible(tmp_path / "file")
    CommitDatabase.create(tmp_path / "commits", tuto.definitions, durable=False).close()
    assert not Database.is_compatible(tmp_path / "commits")
    LmdbStorage.create(tmp_path / "other", ("things",), durable=False).close()
    assert not Database.is_compatible(tmp_path / "other")
    assert not CommitDatabase.is_compatible(tmp_path / "db")


def test_open_other_databases_refused(tmp_path: Path, tuto: Tuto) -> None:
    CommitDatabase.create(tmp_path / "commits", tuto.definitions, durable=False).close()
    for readonly in (False, True):
        with pytest.raises(CorruptDatabaseError, match="commit database"):
            Database.open(tmp_path / "commits", readonly=readonly)
    # The commit database was not touched: it gained no table and still opens.
    with LmdbStorage.open(tmp_path / "commits", ("documents",), readonly=True) as storage:
        with storage.read() as txn:
            assert txn.count("documents") == 0
    CommitDatabase.open(tmp_path / "commits").close()
    LmdbStorage.create(tmp_path / "other", ("things",), durable=False).close()
    with pytest.raises(CorruptDatabaseError, match="not a commitdb flat database"):
        Database.open(tmp_path / "other")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorruptDatabaseError):
        Database.open(tmp_path / "empty")


def test_garbage_file(tmp_path: Path) -> None:
    garbage = random.Random(3).randbytes(64 * 1024)
    (tmp_path / "file").write_bytes(garbage)
    with pytest.raises(CorruptDatabaseError):
        Database.open(tmp_path / "file")
    for size in (0, 100, 4096, 64 * 1024):
        path = tmp_path / f"garbage{size}"
        path.mkdir()
        (path / "data.mdb").write_bytes(garbage[:size])
        for readonly in (False, True):
            with pytest.raises(CorruptDatabaseError):
                Database.open(path, readonly=readonly)
        assert not Database.is_compatible(path)


def test_truncated_file(tmp_path: Path, tuto: Tuto) -> None:
    source = tmp_path / "db"
    make_database(source, tuto, documents=400)
    size = (source / "data.mdb").stat().st_size
    assert size > 64 * 1024
    for cut in (100, 4096, 3 * 4096, size // 2, size - 4096):
        copy = tmp_path / f"truncated{cut}"
        shutil.copytree(source, copy)
        with open(copy / "data.mdb", "r+b") as handle:
            handle.truncate(cut)
        with pytest.raises(CorruptDatabaseError):
            Database.open(copy)
        assert not Database.is_compatible(copy)


def test_other_process_sees_committed_data(tmp_path: Path, tuto: Tuto) -> None:
    path = tmp_path / "db"
    partial = tuto_definitions(with_account=False)
    with Database.create(path, partial.definitions, durable=False) as db:
        key = tuto.login_att.create_key()
        db.begin_transaction()
        db.set(tuto.login_att, key, tuto.login(nickname="ada"))
        script = """
            import sys, uuid
            from commitdb.database import Database
            from commitdb.values import Key
            from tests.commitdb.database_contract import tuto_definitions

            tuto = tuto_definitions()
            key = Key(tuto.user, uuid.UUID(sys.argv[2]))
            with Database.open(sys.argv[1], readonly=True) as db:
                doc = db.get(tuto.login_att, key)
                print(None if doc is None else doc.nickname)
        """
        # Not committed yet: the other process does not see it.
        assert finish(run_python(script, str(path), str(key.id))).strip() == "None"
        db.commit()
        assert finish(run_python(script, str(path), str(key.id))).strip() == "ada"
        # The other way round: a document and an extension written by another process.
        writer = """
            import sys
            from commitdb.database import Database
            from tests.commitdb.database_contract import tuto_definitions

            tuto = tuto_definitions()
            with Database.open(sys.argv[1]) as db:
                db.extend_definitions(tuto_definitions().definitions)
                key = tuto.account_att.create_key()
                with db.transaction():
                    db.set(tuto.account_att, key, tuto.account(state="active"))
                print(key.id)
        """
        assert db.definitions().query_attachment("Tuto::User.account") is None
        written = finish(run_python(writer, str(path))).strip()
        assert db.definitions_hexdigest() == tuto.definitions.hexdigest()
        keys = db.keys(tuto.account_att)
        assert [str(k.id) for k in keys] == [written]
        assert db.get(tuto.account_att, keys.pop()).state == tuto.status.active


def test_concurrent_writers_in_two_processes(tmp_path: Path, tuto: Tuto) -> None:
    path = tmp_path / "db"
    go = tmp_path / "go"
    count = 150
    script = """
        import os, sys, time
        from commitdb.database import Database
        from tests.commitdb.database_contract import tuto_definitions

        tuto = tuto_definitions()
        path, go, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        with Database.open(path, durable=False) as db:
            deadline = time.monotonic() + 60
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.005)
            for i in range(count):
                with db.transaction():
                    key = tuto.login_att.create_key()
                    db.set(tuto.login_att, key, tuto.login(nickname=f"{tag}-{i}"))
        print("done")
    """
    with Database.create(path, tuto.definitions, durable=False) as db:
        workers = [run_python(script, str(path), str(go), tag, str(count)) for tag in "ab"]
        try:
            time.sleep(0.5)
            go.write_text("go")
            for i in range(count):
                with db.transaction():
                    key = tuto.login_att.create_key()
                    db.set(tuto.login_att, key, tuto.login(nickname=f"p-{i}"))
            for worker in workers:
                assert finish(worker).strip() == "done"
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.communicate()
        names = {doc.nickname for _, doc in db.enumerate(tuto.login_att)}
    assert names == {f"{tag}-{i}" for tag in "abp" for i in range(count)}


def test_tables() -> None:
    assert DATABASE_TABLES == ("meta", "documents", "blobs", "chunks")
    storage = MemoryStorage(DATABASE_TABLES)
    with pytest.raises(CorruptDatabaseError):
        Database(storage)  # an empty storage is not a database
    storage.close()


def test_write_refused_message(local_db: Database) -> None:
    tuto = tuto_definitions()
    with pytest.raises(TransactionError, match="write outside a transaction"):
        local_db.set(tuto.login_att, tuto.login_att.create_key(), tuto.login())
