"""Benchmarks of the storage layer: one-put write transactions per second, for reference.

Run with ``pytest bench/bench_storage.py --benchmark-only`` (the file name is given
explicitly because it does not match pytest's default ``test_*.py`` pattern).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commitdb.storage import LmdbStorage, MemoryStorage, Storage

__all__ = ()

TABLES = ("objects",)


@pytest.fixture(params=["lmdb-durable", "lmdb-fast", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh storage of each kind: durable LMDB, ``durable=False`` LMDB, in-memory."""
    s: Storage
    if request.param == "memory":
        s = MemoryStorage(TABLES)
    else:
        s = LmdbStorage.create(tmp_path / "db", TABLES, durable=request.param == "lmdb-durable")
    yield s
    s.close()


def test_one_put_transactions(benchmark: Any, storage: Storage) -> None:
    """One write transaction holding a single 100-byte put (fsync'd when durable)."""
    keys = (b"key%012d" % i for i in itertools.count())
    value = b"v" * 100

    def one_put() -> None:
        with storage.write() as txn:
            txn.put("objects", next(keys), value)

    benchmark(one_put)


def test_point_reads(benchmark: Any, storage: Storage) -> None:
    """One read transaction holding a single get, on a table of 10,000 keys."""
    with storage.write() as txn:
        for i in range(10_000):
            txn.put("objects", b"key%012d" % i, b"v" * 100)
    keys = itertools.cycle([b"key%012d" % i for i in range(0, 10_000, 7)])

    def one_get() -> None:
        with storage.read() as txn:
            txn.get("objects", next(keys))

    benchmark(one_get)
