"""Flat Database benchmarks (W7) on the Login document (bench/login.py), on LMDB.

Run::

    .venv/bin/pytest bench/bench_database.py --benchmark-only -o python_files='bench_*.py' -q

Writes are measured on durable databases (one fsync'd LMDB transaction per commit) unless
the test id says ``fast`` (``durable=False``, to separate CPU from flush cost). Pedantic mode:
each round gets a fresh database from its setup function, outside the timer. ``extra_info``
holds the figure of the target (tx/s, sets/s, gets/s) from the median round, the target,
the reference system's figure and ``met``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.bench_engine import report
from bench.conftest import Handles
from bench.login import make_definitions, make_login
from commitdb.database import Database

DEFS, LOGIN, ATT = make_definitions()
KEYS = [ATT.create_key(uuid.UUID(int=i + 1)) for i in range(10_000)]
TRANSACTIONS = 1_000
SETS = 10_000
GETS = 10_000


def fresh(factory: pytest.TempPathFactory, handles: Handles, durable: bool) -> Database:
    return handles.keep(Database.create(factory.mktemp("w7") / "db", DEFS, durable=durable))


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "fast"])
def test_w7_transactions_of_one_set(
    benchmark: BenchmarkFixture,
    tmp_path_factory: pytest.TempPathFactory,
    handles: Handles,
    durable: bool,
) -> None:
    benchmark.group = "W7 1,000 transactions of one set"
    values = [make_login(LOGIN, i) for i in range(TRANSACTIONS)]

    def setup() -> tuple[tuple[Database], dict[str, Any]]:
        return (fresh(tmp_path_factory, handles, durable),), {}

    def run(db: Database) -> None:
        for i, value in enumerate(values):
            db.begin_transaction()
            db.set(ATT, KEYS[i], value)
            db.commit()

    benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    report(
        benchmark,
        figure="tx/s" + ("" if durable else " (durable=False)"),
        unit="tx/s",
        target=5_000,
        reference="575 tx/s",
        per_round=TRANSACTIONS,
    )
    assert len(handles.last.keys(ATT)) == TRANSACTIONS


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "fast"])
def test_w7_one_transaction_of_10000_sets(
    benchmark: BenchmarkFixture,
    tmp_path_factory: pytest.TempPathFactory,
    handles: Handles,
    durable: bool,
) -> None:
    benchmark.group = "W7 one transaction of 10,000 sets"
    values = [make_login(LOGIN, i) for i in range(SETS)]

    def setup() -> tuple[tuple[Database], dict[str, Any]]:
        return (fresh(tmp_path_factory, handles, durable),), {}

    def run(db: Database) -> None:
        db.begin_transaction()
        for i, value in enumerate(values):
            db.set(ATT, KEYS[i], value)
        db.commit()

    benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    report(
        benchmark,
        figure="sets/s" + ("" if durable else " (durable=False)"),
        unit="sets/s",
        target=100_000,
        reference="151,000 sets/s",
        per_round=SETS,
    )
    assert len(handles.last.keys(ATT)) == SETS


@pytest.fixture(scope="module")
def w7_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w7r") / "db"
    with Database.create(path, DEFS, durable=False) as db, db.transaction():
        for i in range(GETS):
            db.set(ATT, KEYS[i], make_login(LOGIN, i))
    return path


def test_w7_gets(benchmark: BenchmarkFixture, w7_database: Path) -> None:
    """10,000 gets on an open database that has read them before (warm)."""
    benchmark.group = "W7 10,000 gets"
    with Database.open(w7_database) as db:

        def run() -> int:
            get = db.get
            return sum(get(ATT, k).level for k in KEYS[:GETS])

        total = benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    report(
        benchmark,
        figure="gets/s (warm handle)",
        unit="gets/s",
        target=150_000,
        reference="99,000 gets/s",
        per_round=GETS,
    )
    assert total == sum(range(GETS))


def test_w7_gets_after_reopen(
    benchmark: BenchmarkFixture, w7_database: Path, handles: Handles
) -> None:
    """The same 10,000 gets on a database opened just before (no document decoded yet)."""
    benchmark.group = "W7 10,000 gets"

    def setup() -> tuple[tuple[Database], dict[str, Any]]:
        handles.close_all()
        return (handles.keep(Database.open(w7_database)),), {}

    def run(db: Database) -> int:
        get = db.get
        return sum(get(ATT, k).level for k in KEYS[:GETS])

    total = benchmark.pedantic(run, setup=setup, rounds=10, iterations=1, warmup_rounds=1)
    report(
        benchmark,
        figure="gets/s after reopen",
        unit="gets/s",
        target=150_000,
        reference="99,000 gets/s",
        per_round=GETS,
    )
    assert total == sum(range(GETS))
