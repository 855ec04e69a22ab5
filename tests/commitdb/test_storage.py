"""Tests of the storage layer: one contract run against both implementations, then LMDB."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from commitdb.errors import CorruptDatabaseError, DatabaseClosedError, ReadOnlyError, StorageError
from commitdb.storage import LmdbStorage, MemoryStorage, ReadTxn, Storage, WriteTxn, lmdb_storage
from commitdb.storage.base import MAX_KEY_SIZE, prefix_successor

__all__ = ()

TABLES = ("objects", "refs")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["memory", "lmdb"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each contract test runs against both implementations."""
    s: Storage
    if request.param == "memory":
        s = MemoryStorage(TABLES)
    else:
        s = LmdbStorage.create(tmp_path / "db", TABLES, durable=False)
    yield s
    s.close()


def fill(storage: Storage, table: str, keys: list[bytes]) -> None:
    with storage.write() as txn:
        for key in keys:
            txn.put(table, key, b"v:" + key)


def run_python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter that imports this checkout; return its stdout."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestContract:
    """Behaviour every Storage shares."""

    def test_protocols(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)
        assert storage.tables == TABLES
        assert not storage.closed
        assert not storage.readonly
        assert storage.in_memory == (storage.path == "InMemory")
        with storage.read() as r:
            assert isinstance(r, ReadTxn)
        with storage.write() as w:
            assert isinstance(w, WriteTxn)

    def test_put_get_has(self, storage: Storage) -> None:
        with storage.read() as txn:
            assert txn.get("objects", b"a") is None
            assert not txn.has("objects", b"a")
        with storage.write() as txn:
            txn.put("objects", b"a", b"1")
            txn.put("objects", b"e", b"")
            assert txn.get("objects", b"a") == b"1"
            txn.put("objects", b"a", b"2")
            assert txn.get("objects", b"a") == b"2"
        with storage.read() as txn:
            assert txn.get("objects", b"a") == b"2"
            assert txn.has("objects", b"a")
            assert txn.get("objects", b"e") == b""
            assert txn.has("objects", b"e")
            assert txn.get("refs", b"a") is None

    def test_tables_are_separate(self, storage: Storage) -> None:
        with storage.write() as txn:
            txn.put("objects", b"k", b"o")
            txn.put("refs", b"k", b"r")
        with storage.read() as txn:
            assert txn.get("objects", b"k") == b"o"
            assert txn.get("refs", b"k") == b"r"
            assert txn.count("objects") == txn.count("refs") == 1

    def test_delete(self, storage: Storage) -> None:
        fill(storage, "objects", [b"a", b"b"])
        with storage.write() as txn:
            assert txn.delete("objects", b"a")
            assert not txn.delete("objects", b"a")
            assert not txn.delete("objects", b"zz")
            assert txn.get("objects", b"a") is None
            txn.put("objects", b"new", b"1")
            assert txn.delete("objects", b"new")
            assert txn.count("objects") == 1
        with storage.read() as txn:
            assert list(txn.keys("objects")) == [b"b"]

    def test_items_in_byte_order(self, storage: Storage) -> None:
        keys = [bytes([b]) + suffix for b in (0, 1, 0x7F, 0x80, 0xFF) for suffix in (b"", b"\x00")]
        shuffled = keys[:]
        random.Random(1).shuffle(shuffled)
        fill(storage, "objects", shuffled)
        with storage.read() as txn:
            assert [k for k, _ in txn.items("objects")] == sorted(keys)
            assert list(txn.keys("objects")) == sorted(keys)
            assert [k for k, _ in txn.items("objects", reverse=True)] == sorted(keys, reverse=True)
            assert dict(txn.items("objects")) == {k: b"v:" + k for k in keys}

    def test_items_prefix_start_reverse(self, storage: Storage) -> None:
        keys = [
            b"a",
            b"b",
            b"b\x00",
            b"b1",
            b"b2",
            b"b3",
            b"b\xff",
            b"b\xff\xff",
            b"c",
            b"\xff",
            b"\xff\xff",
        ]
        fill(storage, "objects", keys)

        def ks(**kwargs: object) -> list[bytes]:
            with storage.read() as txn:
                return [k for k, _ in txn.items("objects", **kwargs)]  # type: ignore[arg-type]

        bs = [b"b", b"b\x00", b"b1", b"b2", b"b3", b"b\xff", b"b\xff\xff"]
        assert ks(prefix=b"b") == bs
        assert ks(prefix=b"b", reverse=True) == bs[::-1]
        assert ks(prefix=b"b", start=b"b2") == [b"b2", b"b3", b"b\xff", b"b\xff\xff"]
        assert ks(prefix=b"b", start=b"b25") == [b"b3", b"b\xff", b"b\xff\xff"]
        assert ks(prefix=b"b", start=b"b2", reverse=True) == [b"b2", b"b1", b"b\x00", b"b"]
        assert ks(prefix=b"b", start=b"b25", reverse=True) == [b"b2", b"b1", b"b\x00", b"b"]
        assert ks(prefix=b"b", start=b"a") == bs  # start before the prefix range
        assert ks(prefix=b"b", start=b"z") == []  # start after it
        assert ks(prefix=b"b", start=b"z", reverse=True) == bs[::-1]
        assert ks(prefix=b"b", start=b"a", reverse=True) == []
        assert ks(prefix=b"b1") == [b"b1"]
        assert ks(prefix=b"nope") == []
        assert ks(prefix=b"\xff") == [b"\xff", b"\xff\xff"]
        assert ks(prefix=b"\xff", reverse=True) == [b"\xff\xff", b"\xff"]
        assert ks(start=b"b3") == [b"b3", b"b\xff", b"b\xff\xff", b"c", b"\xff", b"\xff\xff"]
        assert ks(start=b"b3", reverse=True) == [b"b3", b"b2", b"b1", b"b\x00", b"b", b"a"]
        assert ks(start=b"", reverse=True) == []
        assert ks(start=b"") == keys
        long = b"b" + b"\xff" * (MAX_KEY_SIZE + 10)  # longer than any key
        assert ks(start=long) == [b"c", b"\xff", b"\xff\xff"]
        assert ks(start=long, reverse=True)[:2] == [b"b\xff\xff", b"b\xff"]
        with storage.read() as txn:
            assert list(txn.keys("objects", b"b\xff")) == [b"b\xff", b"b\xff\xff"]

    def test_items_sees_own_writes(self, storage: Storage) -> None:
        fill(storage, "objects", [b"a", b"c", b"e"])
        with storage.write() as txn:
            txn.put("objects", b"b", b"new")
            txn.put("objects", b"c", b"changed")
            txn.delete("objects", b"e")
            txn.put("objects", b"f", b"new")
            assert list(txn.items("objects")) == [
                (b"a", b"v:a"),
                (b"b", b"new"),
                (b"c", b"changed"),
                (b"f", b"new"),
            ]
            assert list(txn.keys("objects", b"")) == [b"a", b"b", b"c", b"f"]
            assert [k for k, _ in txn.items("objects", reverse=True)] == [b"f", b"c", b"b", b"a"]
            assert [k for k, _ in txn.items("objects", start=b"bb")] == [b"c", b"f"]
            assert txn.count("objects") == 4

    def test_mutation_while_iterating(self, storage: Storage) -> None:
        keys = [b"k%03d" % i for i in range(50)]
        fill(storage, "objects", keys)
        with storage.write() as txn:
            seen = []
            for key, _ in txn.items("objects"):
                seen.append(key)
                if not key.startswith(b"z"):  # keys added ahead of the cursor are seen too
                    txn.delete("objects", key)
                    txn.put("objects", b"z" + key, b"")
            assert seen == keys + [b"z" + k for k in keys]
            assert txn.count("objects") == 50

    def test_count(self, storage: Storage) -> None:
        with storage.read() as txn:
            assert txn.count("objects") == 0
        fill(storage, "objects", [b"%d" % i for i in range(37)])
        with storage.read() as txn:
            assert txn.count("objects") == 37
            assert txn.count("refs") == 0

    def test_put_if_absent(self, storage: Storage) -> None:
        with storage.write() as txn:
            assert txn.put_if_absent("objects", b"k", b"first")
            assert not txn.put_if_absent("objects", b"k", b"second")
            assert txn.get("objects", b"k") == b"first"
        with storage.write() as txn:
            assert not txn.put_if_absent("objects", b"k", b"third")
            txn.delete("objects", b"k")
            assert txn.put_if_absent("objects", b"k", b"fourth")
        with storage.read() as txn:
            assert txn.get("objects", b"k") == b"fourth"

    def test_delete_prefix(self, storage: Storage) -> None:
        fill(storage, "objects", [b"a1", b"a2", b"a3", b"b1", b"b2", b"c"])
        fill(storage, "refs", [b"a1"])
        with storage.write() as txn:
            txn.put("objects", b"a4", b"")
            assert txn.delete_prefix("objects", b"a") == 4
            assert txn.delete_prefix("objects", b"a") == 0
            assert txn.delete_prefix("objects", b"zz") == 0
            assert list(txn.keys("objects")) == [b"b1", b"b2", b"c"]
        with storage.read() as txn:
            assert list(txn.keys("objects")) == [b"b1", b"b2", b"c"]
            assert list(txn.keys("refs")) == [b"a1"]
        with storage.write() as txn:
            assert txn.delete_prefix("objects", b"") == 3
            assert txn.count("objects") == 0
        with storage.read() as txn:
            assert txn.count("objects") == 0
            assert txn.count("refs") == 1

    def test_rollback_on_exception(self, storage: Storage) -> None:
        fill(storage, "objects", [b"keep"])
        with pytest.raises(RuntimeError, match="boom"), storage.write() as txn:
            txn.put("objects", b"new", b"1")
            txn.put("refs", b"new", b"1")
            txn.delete("objects", b"keep")
            txn.delete_prefix("objects", b"")
            raise RuntimeError("boom")
        with storage.read() as txn:
            assert list(txn.items("objects")) == [(b"keep", b"v:keep")]
            assert txn.count("refs") == 0
        with storage.write() as txn:  # the storage is still usable
            txn.put("objects", b"after", b"1")
        with storage.read() as txn:
            assert txn.count("objects") == 2

    def test_readers_see_a_snapshot(self, storage: Storage) -> None:
        fill(storage, "objects", [b"a"])
        with storage.read() as before:
            fill(storage, "objects", [b"b"])
            assert list(before.keys("objects")) == [b"a"]
            with storage.read() as after:
                assert list(after.keys("objects")) == [b"a", b"b"]
            assert before.count("objects") == 1

    def test_unknown_table(self, storage: Storage) -> None:
        with storage.read() as txn:
            with pytest.raises(StorageError, match="nope"):
                txn.get("nope", b"k")
            with pytest.raises(StorageError, match="nope"):
                txn.items("nope")
            with pytest.raises(StorageError, match="nope"):
                txn.count("nope")
        with storage.write() as txn, pytest.raises(StorageError, match="nope"):
            txn.put("nope", b"k", b"v")

    def test_bad_keys_and_values(self, storage: Storage) -> None:
        with storage.write() as txn:
            with pytest.raises(StorageError, match="1 to 511"):
                txn.put("objects", b"", b"v")
            with pytest.raises(StorageError, match="1 to 511"):
                txn.put("objects", b"x" * (MAX_KEY_SIZE + 1), b"v")
            with pytest.raises(TypeError):
                txn.put("objects", "str", b"v")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                txn.put("objects", b"k", "str")  # type: ignore[arg-type]
            txn.put("objects", b"x" * MAX_KEY_SIZE, b"v" * 100_000)
        with storage.read() as txn:
            assert txn.get("objects", b"x" * MAX_KEY_SIZE) == b"v" * 100_000

    def test_bad_table_declarations(self, storage: Storage, tmp_path: Path) -> None:
        for tables in ("objects", ("a", "a"), ("",)):
            with pytest.raises(StorageError):
                if storage.in_memory:
                    MemoryStorage(tables)
                else:
                    LmdbStorage.create(tmp_path / "other", tables)

    def test_closed(self, storage: Storage) -> None:
        fill(storage, "objects", [b"a"])
        storage.close()
        storage.close()  # idempotent
        assert storage.closed
        with pytest.raises(DatabaseClosedError), storage.read():
            pass
        with pytest.raises(DatabaseClosedError), storage.write():
            pass

    def test_close_during_transactions(self, storage: Storage) -> None:
        fill(storage, "objects", [b"a"])
        with pytest.raises(DatabaseClosedError), storage.read() as txn:
            storage.close()
            txn.get("objects", b"a")

    def test_close_aborts_open_write(self, storage: Storage) -> None:
        with pytest.raises(DatabaseClosedError), storage.write() as txn:
            txn.put("objects", b"a", b"1")
            storage.close()

    def test_finished_transaction_and_iterator(self, storage: Storage) -> None:
        fill(storage, "objects", [b"a", b"b"])
        with storage.read() as txn:
            it = txn.items("objects")
            assert next(it) == (b"a", b"v:a")
        with pytest.raises(StorageError, match="finished"):
            next(it)
        with pytest.raises(StorageError, match="finished"):
            txn.get("objects", b"a")
        with storage.write() as wtxn:
            pass
        with pytest.raises(StorageError, match="finished"):
            wtxn.put("objects", b"c", b"")

    def test_nested_write_in_one_thread(self, storage: Storage) -> None:
        with storage.write(), pytest.raises(StorageError, match="already open"), storage.write():
            pass
        with storage.write() as txn:  # still usable
            txn.put("objects", b"a", b"")

    def test_concurrent_writers_serialize(self, storage: Storage) -> None:
        with storage.write() as txn:
            txn.put("refs", b"counter", b"0")
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(25):
                    with storage.write() as txn:
                        value = int(txn.get("refs", b"counter") or b"0")
                        txn.put("refs", b"counter", b"%d" % (value + 1))
                    with storage.read() as rtxn:
                        assert int(rtxn.get("refs", b"counter") or b"0") > value
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        with storage.read() as txn:
            assert txn.get("refs", b"counter") == b"200"

    def test_failed_writes_while_readers_are_busy(self, storage: Storage) -> None:
        # py-lmdb 3 stalls aborting a write transaction while other threads have operations
        # in flight; a failed write must end promptly all the same.
        fill(storage, "objects", [b"%03d" % i for i in range(100)])
        stop = threading.Event()
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not stop.is_set():
                    with storage.read() as txn:
                        assert sum(1 for _ in txn.items("objects")) == 100
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        latencies: list[float] = []

        def write() -> None:
            try:
                for i in range(20):
                    started = time.monotonic()
                    with pytest.raises(KeyError), storage.write() as txn:
                        txn.put("objects", b"x%d" % i, b"")
                        raise KeyError(i)
                    latencies.append(time.monotonic() - started)
                    with storage.write() as txn:
                        txn.put("refs", b"%d" % i, b"")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(4)]
        writer = threading.Thread(target=write)
        for thread in readers:
            thread.start()
        writer.start()
        writer.join(timeout=10)
        stuck = writer.is_alive()  # before the readers stop, which would unblock it
        stop.set()
        for thread in readers:
            thread.join()
        writer.join()
        assert not stuck, "a failed write transaction did not end"
        assert not errors
        assert max(latencies) < 2.0, latencies
        with storage.read() as txn:
            assert txn.count("objects") == 100
            assert txn.count("refs") == 20

    def test_many_writes_in_one_transaction(self, storage: Storage) -> None:
        rng = random.Random(7)
        model: dict[bytes, bytes] = {}
        for _ in range(5):
            with storage.write() as txn:
                for _ in range(300):
                    key = b"%d" % rng.randrange(400)
                    if rng.random() < 0.3:
                        assert txn.delete("objects", key) == (key in model)
                        model.pop(key, None)
                    else:
                        txn.put("objects", key, key * 3)
                        model[key] = key * 3
                assert txn.count("objects") == len(model)
        with storage.read() as txn:
            assert list(txn.items("objects")) == sorted(model.items())
            assert txn.count("objects") == len(model)


def test_prefix_successor() -> None:
    assert prefix_successor(b"") is None
    assert prefix_successor(b"\xff\xff") is None
    assert prefix_successor(b"a") == b"b"
    assert prefix_successor(b"a\xff") == b"b"
    assert prefix_successor(b"a\x00") == b"a\x01"


class TestMemory:
    def test_path_and_flags(self) -> None:
        s = MemoryStorage(TABLES)
        assert s.path == "InMemory"
        assert s.in_memory and not s.readonly
        assert "open" in repr(s)


class TestLmdb:
    def test_layout_and_flags(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES) as s:
            assert s.path == str(path)
            assert not s.in_memory and not s.readonly and s.durable
            assert s.map_size == lmdb_storage.DEFAULT_MAP_SIZE
            flags = s._shared.env.flags()
            assert flags["sync"] and flags["metasync"]
        assert sorted(os.listdir(path)) == ["data.mdb", "lock.mdb"]
        with LmdbStorage.open(path, TABLES, durable=False) as s:
            flags = s._shared.env.flags()
            assert not flags["sync"] and not flags["metasync"] and not s.durable
        assert LmdbStorage.is_compatible(path)

    def test_reopen_keeps_data(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES) as s:
            fill(s, "objects", [b"a", b"b"])
        with LmdbStorage.open(path, (*TABLES, "extra")) as s:
            with s.read() as txn:
                assert list(txn.keys("objects")) == [b"a", b"b"]
                assert txn.count("extra") == 0
            fill(s, "extra", [b"x"])
        with LmdbStorage.open(path, ("extra",), readonly=True) as s:
            with s.read() as txn:
                assert list(txn.keys("extra")) == [b"x"]
                with pytest.raises(StorageError, match="objects"):
                    txn.count("objects")

    def test_create_refuses_existing(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        LmdbStorage.create(path, TABLES).close()
        with pytest.raises(StorageError, match="not empty"):
            LmdbStorage.create(path, TABLES)
        (tmp_path / "file").write_bytes(b"x")
        with pytest.raises(StorageError, match="file"):
            LmdbStorage.create(tmp_path / "file", TABLES)
        (tmp_path / "empty").mkdir()
        LmdbStorage.create(tmp_path / "empty", TABLES).close()

    def test_open_missing(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match="no database"):
            LmdbStorage.open(tmp_path / "missing", TABLES)
        (tmp_path / "empty").mkdir()
        with pytest.raises(CorruptDatabaseError, match="data.mdb"):
            LmdbStorage.open(tmp_path / "empty", TABLES)
        assert not LmdbStorage.is_compatible(tmp_path / "missing")
        assert not LmdbStorage.is_compatible(tmp_path / "empty")

    def test_read_only(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES) as s:
            fill(s, "objects", [b"a"])
        with LmdbStorage.open(path, (*TABLES, "missing"), readonly=True) as s:
            assert s.readonly
            with pytest.raises(ReadOnlyError), s.write():
                pass
            with s.read() as txn:
                assert txn.get("objects", b"a") == b"v:a"
                assert txn.count("missing") == 0
                assert list(txn.items("missing")) == []
                assert txn.get("missing", b"a") is None
            with pytest.raises(StorageError, match="read-only"):
                LmdbStorage.open(path, TABLES)

    def test_read_only_view_of_a_writable_environment(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with (
            LmdbStorage.create(path, TABLES) as rw,
            LmdbStorage.open(path, TABLES, readonly=True) as ro,
        ):
            with pytest.raises(ReadOnlyError), ro.write():
                pass
            fill(rw, "objects", [b"a"])
            with ro.read() as txn:
                assert txn.get("objects", b"a") == b"v:a"

    def test_two_storages_on_one_path(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        first = LmdbStorage.create(path, TABLES, durable=False)
        second = LmdbStorage.open(tmp_path / "." / "db", ("refs",), durable=False)
        assert first._shared is second._shared  # one LMDB environment
        fill(first, "refs", [b"a"])
        with second.read() as txn:
            assert txn.get("refs", b"a") == b"v:a"
            with pytest.raises(StorageError, match="objects"):
                txn.get("objects", b"a")
        first.close()
        assert first.closed and not second.closed
        with pytest.raises(DatabaseClosedError), first.read():
            pass
        fill(second, "refs", [b"b"])  # the environment outlives the first storage
        with second.read() as txn:
            assert list(txn.keys("refs")) == [b"a", b"b"]
        second.close()
        assert path.as_posix() not in {Path(k).as_posix() for k in lmdb_storage._REGISTRY}
        with LmdbStorage.open(path, TABLES) as third, third.read() as txn:
            assert txn.count("refs") == 2

    def test_durable_commit_visible_to_another_process(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES) as s:
            with s.write() as txn:
                txn.put("objects", b"from-parent", b"hello")
            out = run_python(
                """
                import sys
                from commitdb.storage import LmdbStorage
                with LmdbStorage.open(sys.argv[1], ("objects",)) as s:
                    with s.read() as txn:
                        print(txn.get("objects", b"from-parent").decode())
                    with s.write() as txn:
                        txn.put("objects", b"from-child", b"world")
                """,
                str(path),
            )
            assert out.strip() == "hello"
            with s.read() as txn:  # the parent sees the child's commit at once
                assert txn.get("objects", b"from-child") == b"world"

    def test_writers_in_two_processes_serialize(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        script = """
            import sys
            from commitdb.storage import LmdbStorage
            with LmdbStorage.open(sys.argv[1], ("refs",), durable=False) as s:
                for _ in range(200):
                    with s.write() as txn:
                        n = int(txn.get("refs", b"n") or b"0")
                        txn.put("refs", b"n", b"%d" % (n + 1))
            """
        LmdbStorage.create(path, TABLES, durable=False).close()
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        children = [
            subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(path)], env=env)
            for _ in range(2)
        ]
        with LmdbStorage.open(path, TABLES, durable=False) as s:
            for _ in range(200):
                with s.write() as txn:
                    n = int(txn.get("refs", b"n") or b"0")
                    txn.put("refs", b"n", b"%d" % (n + 1))
            assert [child.wait(timeout=60) for child in children] == [0, 0]
            with s.read() as txn:
                assert txn.get("refs", b"n") == b"600"

    def test_reader_in_another_process_does_not_block_writer(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES) as s:
            fill(s, "objects", [b"a"])
            with s.read() as txn:  # a long reader in this process...
                out = run_python(  # ...while another process writes and reads
                    """
                    import sys
                    from commitdb.storage import LmdbStorage
                    with LmdbStorage.open(sys.argv[1], ("objects",)) as s:
                        with s.write() as txn:
                            txn.put("objects", b"b", b"")
                        with s.read() as txn:
                            print(txn.count("objects"))
                    """,
                    str(path),
                )
                assert out.strip() == "2"
                assert txn.count("objects") == 1

    def test_map_grows(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        chunk = bytes(range(256)) * 400  # 100 KiB
        with LmdbStorage.create(path, TABLES, durable=False, map_size=1 << 20) as s:
            assert s.map_size == 1 << 20
            for i in range(50):  # 5 MiB in small transactions
                with s.write() as txn:
                    txn.put("objects", b"small%03d" % i, chunk)
            assert s.map_size > 5 << 20
            with s.read() as txn:
                assert txn.count("objects") == 50
                assert all(v == chunk for _, v in txn.items("objects"))
        with LmdbStorage.open(path, TABLES, durable=False) as s:
            with s.read() as txn:
                assert txn.get("objects", b"small049") == chunk

    def test_map_grows_inside_one_transaction(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        chunk = b"x" * 100_000
        with LmdbStorage.create(path, TABLES, durable=False, map_size=1 << 20) as s:
            fill(s, "refs", [b"r%d" % i for i in range(100)])
            with s.write() as txn:
                txn.delete_prefix("refs", b"r1")
                it = txn.items("objects")
                for i in range(60):  # 6 MiB: the map doubles several times meanwhile
                    txn.put("objects", b"big%03d" % i, chunk)
                    if i == 0:
                        assert next(it)[0] == b"big000"
                    assert txn.put_if_absent("objects", b"once%03d" % i, b"1")
                    assert txn.get("objects", b"big000") == chunk
                # the iterator opened before the growth goes on after it
                assert next(it)[0] == b"big001"
                assert txn.count("objects") == 120
                assert txn.count("refs") == 89
            assert s.map_size >= 6 << 20
            with s.read() as txn:
                assert txn.count("objects") == 120
                assert txn.get("objects", b"big059") == chunk
                assert not txn.has("refs", b"r10")
                assert txn.has("refs", b"r20")

    def test_growth_while_readers_run_in_other_threads(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        stop = threading.Event()
        errors: list[BaseException] = []
        with LmdbStorage.create(path, TABLES, durable=False, map_size=1 << 20) as s:
            fill(s, "refs", [b"r%d" % i for i in range(50)])

            def read() -> None:
                try:
                    while not stop.is_set():
                        with s.read() as txn:
                            assert sum(1 for _ in txn.items("refs")) == 50
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            readers = [threading.Thread(target=read) for _ in range(4)]
            for thread in readers:
                thread.start()
            try:
                for i in range(40):
                    with s.write() as txn:
                        txn.put("objects", b"%d" % i, b"y" * 100_000)
            finally:
                stop.set()
                for thread in readers:
                    thread.join()
            assert not errors
            assert s.map_size >= 4 << 20

    def test_growth_refused_while_this_thread_reads(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES, durable=False, map_size=1 << 20) as s:
            with s.read(), pytest.raises(StorageError, match="grow"), s.write() as txn:
                for i in range(30):
                    txn.put("objects", b"%d" % i, b"z" * 100_000)
            with s.read() as txn:
                assert txn.count("objects") == 0
            with s.write() as txn:  # without the reader, the map grows
                for i in range(30):
                    txn.put("objects", b"%d" % i, b"z" * 100_000)

    def test_map_grown_by_another_process_is_adopted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "db"
        monkeypatch.setattr(lmdb_storage, "DEFAULT_MAP_SIZE", 1 << 20)
        with LmdbStorage.create(path, TABLES, durable=False, map_size=1 << 20) as s:
            with s.read() as txn:
                assert txn.count("objects") == 0
            run_python(
                """
                import sys
                from commitdb.storage import LmdbStorage
                with LmdbStorage.open(sys.argv[1], ("objects",), durable=False) as s:
                    for i in range(40):
                        with s.write() as txn:
                            txn.put("objects", b"%d" % i, b"c" * 100_000)
                """,
                str(path),
            )
            with s.read() as txn:  # beyond this process's map: it adopts the new size
                assert txn.count("objects") == 40
                assert txn.get("objects", b"39") == b"c" * 100_000
            with s.write() as txn:
                txn.put("objects", b"parent", b"p")
            assert s.map_size > 1 << 20

    def test_garbage_file(self, tmp_path: Path) -> None:
        garbage = random.Random(3).randbytes(64 * 1024)
        (tmp_path / "file").write_bytes(garbage)
        with pytest.raises(CorruptDatabaseError, match="not a directory"):
            LmdbStorage.open(tmp_path / "file", TABLES)
        for size in (0, 10, 5000, 64 * 1024):
            db = tmp_path / f"garbage{size}"
            db.mkdir()
            (db / "data.mdb").write_bytes(garbage[:size])
            with pytest.raises(CorruptDatabaseError, match="not a valid commitdb database"):
                LmdbStorage.open(db, TABLES)
            assert not LmdbStorage.is_compatible(db)

    def test_truncated_copy(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES, durable=False) as s:
            for n in range(5):
                with s.write() as txn:
                    for i in range(400):
                        txn.put("objects", b"%d-%d" % (n, i), b"q" * 300)
        data = (path / "data.mdb").read_bytes()
        assert len(data) > 100_000
        for size in (len(data) // 2, len(data) - 4096, 4096 + 100, 3000):
            copy = tmp_path / f"truncated{size}"
            copy.mkdir()
            (copy / "data.mdb").write_bytes(data[:size])
            with pytest.raises(CorruptDatabaseError, match="truncated|too short|beyond the end"):
                LmdbStorage.open(copy, TABLES)
            assert not LmdbStorage.is_compatible(copy)
        whole = tmp_path / "whole"
        whole.mkdir()
        (whole / "data.mdb").write_bytes(data)
        assert LmdbStorage.is_compatible(whole)

    def test_file_shorter_than_its_free_tail_is_fine(self, tmp_path: Path) -> None:
        # LMDB may end a file before pages that were allocated and freed in one transaction.
        lmdb = lmdb_storage.lmdb  # the binding itself, imported by the storage module only
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES, durable=False) as s:
            fill(s, "objects", [b"k%d" % i for i in range(500)])
        env = lmdb.open(str(path), max_dbs=8, map_size=1 << 26, sync=False)
        refs = env.open_db(b"refs")
        for _ in range(3):
            with env.begin(write=True) as txn:
                for i in range(3000):
                    txn.put(b"z%05d" % i, b"v" * 300, db=refs)
                for i in range(3000):
                    txn.delete(b"z%05d" % i, db=refs)
                txn.put(b"big", b"w" * 500_000, db=refs)
                txn.delete(b"big", db=refs)
        env.close()
        header = lmdb_storage._check_data_file(str(path))
        assert (path / "data.mdb").stat().st_size < (header.last_pg + 1) * header.psize
        with LmdbStorage.open(path, TABLES) as s, s.read() as txn:
            assert txn.count("objects") == 500
            assert txn.count("refs") == 0

    def test_plain_lmdb_environment_is_not_compatible(self, tmp_path: Path) -> None:
        lmdb = lmdb_storage.lmdb  # the binding itself, imported by the storage module only
        env = lmdb.open(str(tmp_path / "plain"), max_dbs=2)
        with env.begin(write=True) as txn:
            txn.put(b"k", b"v")
        env.close()
        with pytest.raises(CorruptDatabaseError, match="not a commitdb"):
            LmdbStorage.open(tmp_path / "plain", TABLES)
        assert not LmdbStorage.is_compatible(tmp_path / "plain")

    def test_durable_storage_on_a_fast_environment(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with (
            LmdbStorage.create(path, TABLES, durable=False) as fast,
            LmdbStorage.open(path, TABLES) as durable,
        ):
            assert durable.durable and not fast.durable
            fill(durable, "objects", [b"a"])
            with fast.read() as txn:
                assert txn.has("objects", b"a")

    def test_concurrent_threads_on_two_storages(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        first = LmdbStorage.create(path, TABLES, durable=False)
        second = LmdbStorage.open(path, TABLES, durable=False)
        errors: list[BaseException] = []

        def work(s: LmdbStorage, tag: bytes) -> None:
            try:
                for i in range(50):
                    with s.write() as txn:
                        txn.put("objects", tag + b"%03d" % i, b"")
                        txn.put("refs", b"last", tag)
                    with s.read() as rtxn:
                        assert rtxn.has("objects", tag + b"%03d" % i)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=work, args=(s, b"%c" % c))
            for s, c in ((first, 97), (second, 98), (first, 99), (second, 100))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        with second.read() as txn:
            assert txn.count("objects") == 200
        first.close()
        second.close()

    def test_copy_of_open_database_opens(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LmdbStorage.create(path, TABLES, durable=False) as s:
            fill(s, "objects", [b"a"])
            shutil.copytree(path, tmp_path / "copy")
        with LmdbStorage.open(tmp_path / "copy", TABLES) as c, c.read() as txn:
            assert txn.get("objects", b"a") == b"v:a"
