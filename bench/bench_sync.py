"""CommitSynchronizer benchmarks: replicate a 10,000-commit database into an empty replica.

Run::

    .venv/bin/pytest bench/bench_sync.py --benchmark-only -o python_files='bench_*.py' -q

The source database is a chain of 10,000 Mutations commits, each one ``set`` of a small
``set<int64>`` document (a new document per commit), built once with ``durable=False``.
Each round replicates it into a fresh, empty, *durable* replica (one fsync'd LMDB
transaction per stored commit, the default):

* ``tcp-fetch``: the source is served by a real ``commitdb serve`` process on TCP loopback;
  a local replica fetches it (a clone);
* ``tcp-push``: a local source pushes into an empty database served by ``commitdb serve``;
* ``local``: two local paths in this process.

Each comes ``durable`` and ``fast``: in ``fast`` rounds the replica is not flushed after
each commit (``durable=False``; ``commitdb serve --no-durable`` when it is served), which
separates the engine's and the protocol's cost from the disk's flush cost.

The server process is started in the round's setup (outside the timer); a round measures
connecting, comparing, and the transfer. ``extra_info`` holds the figure (seconds for the
10,000 commits, from the median round), the target (≤ 10 s over TCP) and ``met``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.bench_engine import report
from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions
from commitdb.mutable_state import CommitMutableState
from commitdb.sync import MODE_FETCH, MODE_PUSH, CommitSynchronizer, SyncInfo
from commitdb.types import INT64, SetType

COMMITS = 10_000
TARGET_SECONDS = 10.0
ROOT = Path(__file__).resolve().parents[1]
SERVING = re.compile(r"^serving \S+ on (\S+)$")


def make_definitions() -> tuple[Definitions, Any]:
    """Definitions with concept Item and attachment Item.tags: set<int64>."""
    defs = Definitions()
    ns = defs.namespace("BenchSync", "0c1d5a2e-7f3b-4e8a-9b6d-2a4c8e1f3b57")
    item = defs.create_concept(ns, "Item")
    att = defs.create_attachment(ns, "tags", item, SetType(INT64))
    return defs, att


DEFS, ATT = make_definitions()


def build_source(path: Path, count: int = COMMITS) -> None:
    """A chain of `count` commits, each setting one small set on a new document."""
    with CommitDatabase.create(path, DEFS, durable=False) as db:
        head = None
        for i in range(count):
            ms = CommitMutableState(db.state(head) if head is not None else db.initial_state())
            ms.set(ATT, ATT.create_key(uuid.UUID(int=i + 1)), {i, i + 1, i + 2})
            head = db.commit_mutations(f"commit {i}", ms)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sync-source") / "db"
    build_source(path)
    return path


class Server:
    """``python -m rpc serve NAME=PATH --listen tcp://127.0.0.1:0`` as a child process."""

    def __init__(self, name: str, path: Path, *, durable: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpc", "serve", f"{name}={path}"]
            + ["--listen", "tcp://127.0.0.1:0"]
            + ([] if durable else ["--no-durable"]),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        self.url = ""
        for line in self.proc.stderr:
            m = SERVING.match(line.strip())
            if m:
                self.url = f"{m.group(1)}#{name}"
                break
        if not self.url:
            self.proc.wait()
            raise RuntimeError("the server did not start")
        self._drain = threading.Thread(target=self.proc.stderr.read, daemon=True)
        self._drain.start()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class Resources:
    """Servers, connections and databases opened by setup functions; released before the
    next round and at the end."""

    def __init__(self) -> None:
        self._close: list[Any] = []

    def keep(self, closer: Any) -> None:
        self._close.append(closer)

    def release(self) -> None:
        while self._close:
            self._close.pop()()


@pytest.fixture
def resources() -> Iterator[Resources]:
    r = Resources()
    try:
        yield r
    finally:
        r.release()


def _connect(url: str, resources: Resources) -> Any:
    from rpc.db_remote import CommitDatabaseRemote

    cm = CommitDatabaseRemote.connect(*url.split("#"))
    remote = cm.__enter__()
    resources.keep(lambda: cm.__exit__(None, None, None))
    return remote


def _check(info: SyncInfo, replica: Any) -> None:
    moved = info.fetch.commits + info.push.commits
    assert moved == COMMITS, info
    assert replica.commit_count() == COMMITS


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "fast"])
@pytest.mark.parametrize("direction", ["fetch", "push"])
def test_sync_10000_commits_into_an_empty_replica_over_tcp(
    benchmark: BenchmarkFixture,
    tmp_path_factory: pytest.TempPathFactory,
    resources: Resources,
    source: Path,
    direction: str,
    durable: bool,
) -> None:
    benchmark.group = "sync 10,000 commits into an empty replica"
    replicas: list[Any] = []

    def setup() -> tuple[tuple[str, Path], dict[str, Any]]:
        resources.release()
        replica = tmp_path_factory.mktemp("sync-replica") / "db"
        CommitDatabase.create(replica, Definitions()).close()
        served = source if direction == "fetch" else replica
        server = Server("main", served, durable=durable or direction == "fetch")
        resources.keep(server.stop)
        return (server.url, replica), {}

    def run(url: str, replica: Path) -> SyncInfo:
        remote = _connect(url, resources)
        if direction == "fetch":
            local = CommitDatabase.open(replica, durable=durable)
            resources.keep(local.close)
            replicas[:] = [local]
            return CommitSynchronizer(remote, local, MODE_FETCH).sync()
        local = CommitDatabase.open(source)
        resources.keep(local.close)
        replicas[:] = [remote]
        return CommitSynchronizer(remote, local, MODE_PUSH).sync()

    info = benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    report(
        benchmark,
        figure=f"seconds for {COMMITS:,} commits over TCP ({direction})"
        + ("" if durable else " (replica durable=False)"),
        unit="s",
        target=TARGET_SECONDS,
        reference="-",
    )
    _check(info, replicas[0])


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "fast"])
def test_sync_10000_commits_between_two_local_paths(
    benchmark: BenchmarkFixture,
    tmp_path_factory: pytest.TempPathFactory,
    resources: Resources,
    source: Path,
    durable: bool,
) -> None:
    benchmark.group = "sync 10,000 commits into an empty replica"
    replicas: list[CommitDatabase] = []

    def setup() -> tuple[tuple[CommitDatabase, CommitDatabase], dict[str, Any]]:
        resources.release()
        replica = CommitDatabase.create(
            tmp_path_factory.mktemp("sync-local") / "db", Definitions(), durable=durable
        )
        resources.keep(replica.close)
        origin = CommitDatabase.open(source)
        resources.keep(origin.close)
        replicas[:] = [replica]
        return (origin, replica), {}

    def run(origin: CommitDatabase, replica: CommitDatabase) -> SyncInfo:
        return CommitSynchronizer(origin, replica, MODE_FETCH).sync()

    info = benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    report(
        benchmark,
        figure=f"seconds for {COMMITS:,} commits, local paths"
        + ("" if durable else " (durable=False)"),
        unit="s",
        target=TARGET_SECONDS,
        reference="-",
    )
    _check(info, replicas[0])
