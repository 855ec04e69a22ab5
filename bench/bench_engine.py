"""Commit engine benchmarks W1-W5 on the Login document (bench/login.py), on LMDB.

Run::

    .venv/bin/pytest bench/bench_engine.py --benchmark-only -o python_files='bench_*.py' -q

Measured operations use durable databases (``durable=True``: one fsync'd LMDB transaction
per commit) unless a test id says ``fast``; the ``fast`` variants (``durable=False``) are
there to separate the engine's CPU cost from the disk's flush cost. Databases that are only
*read* by a workload are built once with ``durable=False`` (the files are the same) and
reopened before measuring. Every workload runs in pedantic mode: a setup function prepares
each round outside the timer, so a round measures exactly the workload. Each test stores in
``extra_info`` the figure the target is stated in (commits/s, docs/s, ms, µs), computed
from the median round, with the target, the reference system's figure and ``met``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import Handles
from bench.login import make_definitions, make_login
from commitdb.commit_database import CommitDatabase
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState

DEFS, LOGIN, ATT = make_definitions()
KEYS = [ATT.create_key(uuid.UUID(int=i + 1)) for i in range(10_000)]

W1_COMMITS = 1_000
W2_DOCS = 10_000
W3_COMMITS = 2_000
W4_COMMITS = 1_000
W5_BRANCH = 500


# -- reporting --------------------------------------------------------------------------------
def report(
    benchmark: BenchmarkFixture,
    *,
    figure: str,
    unit: str,
    target: float,
    reference: str,
    per_round: int | None = None,
    scale: float = 1.0,
) -> float:
    """Store the workload's figure in extra_info and return it.

    With ``per_round`` the figure is a rate (``per_round / median``, higher is better);
    otherwise a latency (``median * scale``, lower is better).
    """
    median = benchmark.stats.stats.median
    if per_round is not None:
        value = per_round / median
        met = value >= target
    else:
        value = median * scale
        met = value <= target
    benchmark.extra_info.update(
        figure=figure,
        value=round(value, 3),
        unit=unit,
        target=target,
        reference=reference,
        met=met,
        loadavg_1min=round(os.getloadavg()[0], 2),
    )
    return value


def fresh_path(factory: pytest.TempPathFactory, name: str) -> Path:
    return factory.mktemp(name) / "db"


def commit_chain(
    db: CommitDatabase,
    count: int,
    mutate: Callable[[CommitMutableState, int], None],
    head: CommitId | None = None,
) -> CommitId:
    """``count`` commits, each on the previous one; returns the last."""
    for i in range(count):
        ms = CommitMutableState(db.state(head))
        mutate(ms, i)
        head = db.commit_mutations(f"commit {i}", ms)
    assert head is not None
    return head


# -- W1: 1,000 commits of one set each, each on the previous commit ---------------------------
@pytest.mark.parametrize("durable", [True, False], ids=["durable", "fast"])
def test_w1_commit_chain(
    benchmark: BenchmarkFixture,
    tmp_path_factory: pytest.TempPathFactory,
    handles: Handles,
    durable: bool,
) -> None:
    benchmark.group = "W1 1,000 commits of one set"
    values = [make_login(LOGIN, i) for i in range(W1_COMMITS)]

    def setup() -> tuple[tuple[CommitDatabase], dict[str, Any]]:
        path = fresh_path(tmp_path_factory, "w1")
        return (handles.keep(CommitDatabase.create(path, DEFS, durable=durable)),), {}

    def run(db: CommitDatabase) -> CommitId:
        def mutate(ms: CommitMutableState, i: int) -> None:
            ms.set(ATT, KEYS[i], values[i])

        return commit_chain(db, W1_COMMITS, mutate)

    head = benchmark.pedantic(run, setup=setup, rounds=5 if durable else 10, iterations=1)
    report(
        benchmark,
        figure="commits/s" + ("" if durable else " (durable=False)"),
        unit="commits/s",
        target=3_000,
        reference="288 commits/s",
        per_round=W1_COMMITS,
    )
    db = handles.last
    assert db.commit_count() == W1_COMMITS
    assert db.state(head).get(ATT, KEYS[W1_COMMITS - 1]).level == W1_COMMITS - 1


# -- W2: one commit of 10,000 sets; then reopen and read them all at head ----------------------
@pytest.mark.parametrize("durable", [True, False], ids=["durable", "fast"])
def test_w2_write_one_commit_of_10000_sets(
    benchmark: BenchmarkFixture,
    tmp_path_factory: pytest.TempPathFactory,
    handles: Handles,
    durable: bool,
) -> None:
    benchmark.group = "W2 one commit of 10,000 sets"
    values = [make_login(LOGIN, i) for i in range(W2_DOCS)]

    def setup() -> tuple[tuple[CommitDatabase], dict[str, Any]]:
        path = fresh_path(tmp_path_factory, "w2w")
        return (handles.keep(CommitDatabase.create(path, DEFS, durable=durable)),), {}

    def run(db: CommitDatabase) -> CommitId:
        ms = CommitMutableState(db.initial_state())
        for i, value in enumerate(values):
            ms.set(ATT, KEYS[i], value)
        return db.commit_mutations("bulk", ms)

    head = benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    report(
        benchmark,
        figure="docs/s written" + ("" if durable else " (durable=False)"),
        unit="docs/s",
        target=60_000,
        reference="143,000 docs/s",
        per_round=W2_DOCS,
    )
    assert handles.last.state(head).get(ATT, KEYS[123]).level == 123


@pytest.fixture(scope="module")
def w2_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = fresh_path(tmp_path_factory, "w2r")
    with CommitDatabase.create(path, DEFS, durable=False) as db:
        ms = CommitMutableState(db.initial_state())
        for i in range(W2_DOCS):
            ms.set(ATT, KEYS[i], make_login(LOGIN, i))
        db.commit_mutations("bulk", ms)
    return path


def reopen_setup(path: Path, handles: Handles) -> Callable[[], Any]:
    def setup() -> tuple[tuple[CommitDatabase], dict[str, Any]]:
        handles.close_all()
        return (handles.keep(CommitDatabase.open(path)),), {}

    return setup


def test_w2_read_10000_at_head_after_reopen(
    benchmark: BenchmarkFixture, w2_database: Path, handles: Handles
) -> None:
    benchmark.group = "W2 read 10,000 docs at head after reopen"

    def run(db: CommitDatabase) -> int:
        st = db.state(db.last_commit_id())
        get = st.get
        return sum(get(ATT, k).level for k in KEYS[:W2_DOCS])

    total = benchmark.pedantic(
        run, setup=reopen_setup(w2_database, handles), rounds=10, iterations=1, warmup_rounds=1
    )
    report(
        benchmark,
        figure="docs/s read",
        unit="docs/s",
        target=150_000,
        reference="252,000 docs/s",
        per_round=W2_DOCS,
    )
    assert total == sum(range(W2_DOCS))


# -- W3: one document updated by 2,000 successive commits ----------------------------------------
@pytest.fixture(scope="module")
def w3_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = fresh_path(tmp_path_factory, "w3")
    with CommitDatabase.create(path, DEFS, durable=False) as db:
        ms = CommitMutableState(db.initial_state())
        ms.set(ATT, KEYS[0], make_login(LOGIN, 0))
        root = db.commit_mutations("root", ms)

        def mutate(ms: CommitMutableState, i: int) -> None:
            ms.update(ATT, KEYS[0], ".level", i + 1)

        commit_chain(db, W3_COMMITS, mutate, root)
    return path


def test_w3_read_after_reopen(
    benchmark: BenchmarkFixture, w3_database: Path, handles: Handles
) -> None:
    benchmark.group = "W3 2,000 updates: read at head"

    def run(db: CommitDatabase) -> Any:
        return db.state(db.last_commit_id()).get(ATT, KEYS[0])

    doc = benchmark.pedantic(
        run, setup=reopen_setup(w3_database, handles), rounds=30, iterations=1, warmup_rounds=1
    )
    report(
        benchmark,
        figure="read after reopen",
        unit="ms",
        target=2.0,
        reference="27 ms",
        scale=1e3,
    )
    assert doc.level == W3_COMMITS


def test_w3_read_warm(benchmark: BenchmarkFixture, w3_database: Path) -> None:
    benchmark.group = "W3 2,000 updates: read at head"
    with CommitDatabase.open(w3_database) as db:
        st = db.state(db.last_commit_id())
        st.get(ATT, KEYS[0])  # materialized and cached: later reads are warm
        doc = benchmark(st.get, ATT, KEYS[0])
    report(
        benchmark,
        figure="warm read",
        unit="µs",
        target=5.0,
        reference="1.2 µs",
        scale=1e6,
    )
    assert doc.level == W3_COMMITS


# -- W4: 1,000 commits each adding one element to a set field ----------------------------------
@pytest.fixture(scope="module")
def w4_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = fresh_path(tmp_path_factory, "w4")
    with CommitDatabase.create(path, DEFS, durable=False) as db:
        ms = CommitMutableState(db.initial_state())
        ms.set(ATT, KEYS[0], make_login(LOGIN, 0))
        root = db.commit_mutations("root", ms)

        def mutate(ms: CommitMutableState, i: int) -> None:
            ms.union_in_set(ATT, KEYS[0], ".tags", {f"tag{i:04d}"})

        commit_chain(db, W4_COMMITS, mutate, root)
    return path


def test_w4_read_grown_set_after_reopen(
    benchmark: BenchmarkFixture, w4_database: Path, handles: Handles
) -> None:
    benchmark.group = "W4 1,000 set unions: read at head"

    def run(db: CommitDatabase) -> Any:
        return db.state(db.last_commit_id()).get(ATT, KEYS[0])

    doc = benchmark.pedantic(
        run, setup=reopen_setup(w4_database, handles), rounds=30, iterations=1, warmup_rounds=1
    )
    report(
        benchmark,
        figure="read after reopen",
        unit="ms",
        target=4.0,
        reference="40 ms",
        scale=1e3,
    )
    assert len(doc.tags) == W4_COMMITS + 3


# -- W5: two branches of 500 commits from a common commit ---------------------------------------
SHARED, ONLY_A, ONLY_B = KEYS[0], KEYS[1], KEYS[2]


@pytest.fixture(scope="module")
def w5_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root sets three documents; branch A then B, 500 commits each. Both touch the shared
    document's ``.level``; A alone its ``.scores`` and document ONLY_A, B alone its
    ``.password`` and document ONLY_B."""
    path = fresh_path(tmp_path_factory, "w5")
    with CommitDatabase.create(path, DEFS, durable=False) as db:
        ms = CommitMutableState(db.initial_state())
        for k in (SHARED, ONLY_A, ONLY_B):
            ms.set(ATT, k, make_login(LOGIN, 0))
        root = db.commit_mutations("root", ms)

        def branch_a(ms: CommitMutableState, i: int) -> None:
            ms.update(ATT, SHARED, ".level", i)
            ms.union_in_map(ATT, SHARED, ".scores", {f"a{i:03d}": i})
            ms.update(ATT, ONLY_A, ".level", i)

        def branch_b(ms: CommitMutableState, i: int) -> None:
            ms.update(ATT, SHARED, ".level", 10_000 + i)
            ms.update(ATT, SHARED, ".password", f"pw{i}")
            ms.update(ATT, ONLY_B, ".level", i)

        commit_chain(db, W5_BRANCH, branch_a, root)
        commit_chain(db, W5_BRANCH, branch_b, root)
        assert len(db.head_commit_ids()) == 2
    return path


def copy_setup(
    template: Path, factory: pytest.TempPathFactory, handles: Handles, reduce: bool
) -> Callable[[], Any]:
    def setup() -> tuple[tuple[CommitDatabase, CommitId | None], dict[str, Any]]:
        handles.close_all()
        path = fresh_path(factory, "w5copy")
        shutil.copytree(template, path)
        db = handles.keep(CommitDatabase.open(path))
        merged = db.reduce_heads() if reduce else None
        return (db, merged), {}

    return setup


def check_merged(db: CommitDatabase, merged: CommitId) -> None:
    st = db.state(merged)
    shared = st.get(ATT, SHARED)
    assert len(shared.scores) == 3 + W5_BRANCH
    assert shared.password == f"pw{W5_BRANCH - 1}"
    assert shared.level in (W5_BRANCH - 1, 10_000 + W5_BRANCH - 1)
    assert st.get(ATT, ONLY_A).level == st.get(ATT, ONLY_B).level == W5_BRANCH - 1


def test_w5_reduce_heads(
    benchmark: BenchmarkFixture,
    w5_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    handles: Handles,
) -> None:
    benchmark.group = "W5 two branches of 500: reduce_heads, merged read"

    def run(db: CommitDatabase, _: None) -> CommitId | None:
        return db.reduce_heads()

    merged = benchmark.pedantic(
        run,
        setup=copy_setup(w5_template, tmp_path_factory, handles, reduce=False),
        rounds=10,
        iterations=1,
    )
    report(benchmark, figure="reduce_heads", unit="ms", target=10.0, reference="3.4 ms", scale=1e3)
    assert merged is not None
    check_merged(handles.last, merged)


def test_w5_read_merged_state(
    benchmark: BenchmarkFixture,
    w5_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    handles: Handles,
) -> None:
    benchmark.group = "W5 two branches of 500: reduce_heads, merged read"

    def run(db: CommitDatabase, merged: CommitId) -> list[Any]:
        st = db.state(merged)
        return [st.get(ATT, k) for k in (SHARED, ONLY_A, ONLY_B)]

    docs = benchmark.pedantic(
        run,
        setup=copy_setup(w5_template, tmp_path_factory, handles, reduce=True),
        rounds=10,
        iterations=1,
    )
    report(
        benchmark,
        figure="merged read (3 docs, right after reduce_heads)",
        unit="ms",
        target=5.0,
        reference="15.6 ms state build",
        scale=1e3,
    )
    assert len(docs[0].scores) == 3 + W5_BRANCH


@pytest.fixture(scope="module")
def w5_merged(w5_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = fresh_path(tmp_path_factory, "w5merged")
    shutil.copytree(w5_template, path)
    with CommitDatabase.open(path, durable=False) as db:
        merged = db.reduce_heads()
        assert merged is not None
        check_merged(db, merged)
    return path


def test_w5_read_merged_state_after_reopen(
    benchmark: BenchmarkFixture, w5_merged: Path, handles: Handles
) -> None:
    benchmark.group = "W5 two branches of 500: reduce_heads, merged read"

    def run(db: CommitDatabase) -> list[Any]:
        st = db.state(db.last_commit_id())
        return [st.get(ATT, k) for k in (SHARED, ONLY_A, ONLY_B)]

    docs = benchmark.pedantic(
        run, setup=reopen_setup(w5_merged, handles), rounds=20, iterations=1, warmup_rounds=1
    )
    report(
        benchmark,
        figure="merged read (3 docs) after reopen",
        unit="ms",
        target=5.0,
        reference="15.6 ms state build",
        scale=1e3,
    )
    assert len(docs[0].scores) == 3 + W5_BRANCH
