"""Remote database benchmarks: a ``commitdb serve`` process on TCP loopback, the blocking
client (:class:`~rpc.db_remote.CommitDatabaseRemote`) in this process.

Run::

    .venv/bin/pytest bench/bench_remote.py --benchmark-only -o python_files='bench_*.py' -q

Workloads (the Login document of ``bench/login.py``, as in W1/W2):

* **R1** — 1,000 remote commits of one ``set`` each, each on the previous commit, each one
  ``CommitMutableState(db.state(head))`` + ``set`` + ``db.commit_mutations``: on a new key
  every commit (as W1) and on the same key; against a durable server (one fsync per commit,
  the default) and a ``--no-durable`` one (to separate the round trip from the disk); with
  the blocking facade and with the async API (:class:`~rpc.db_remote.AsyncCommitDatabaseRemote`,
  the same loop with ``await``; a round connects, which is ~0.3 % of it).
* **R2** — reading 1,000 documents at head through a remote state, from a fresh connection
  (the client has nothing cached; the server is warm): ``state.enumerate`` (one round trip,
  the best public path), ``state.get_many`` (one round trip) and 1,000 ``state.get``.
* **R3** — connect latency: ``CommitDatabaseRemote.connect`` (TCP connect, handshake, the
  definitions) then ``close``.

Pedantic mode: each round gets what it needs from its setup function, outside the timer.
``extra_info`` holds the figure, the target, the reference system's figure, ``met`` and the
load average (other engineers run tests on the same machine: record it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.bench_engine import report
from bench.login import make_definitions, make_login
from commitdb.commit_database import CommitDatabase
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from rpc.db_remote import AsyncCommitDatabaseRemote, CommitDatabaseRemote

DEFS, LOGIN, ATT = make_definitions()
KEYS = [ATT.create_key(uuid.UUID(int=i + 1)) for i in range(1_000)]
COMMITS = 1_000
DOCS = 1_000
VALUES = [make_login(LOGIN, i) for i in range(COMMITS)]  # built outside the timer, as in W1
REPO = Path(__file__).resolve().parents[1]


class Server:
    """A ``python -m rpc serve`` process on TCP loopback."""

    def __init__(self, path: Path, *options: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rpc",
                "serve",
                f"main={path}",
                "--listen",
                "tcp://127.0.0.1:0",
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        found = re.search(r"serving main on (\S+)", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {line}")
        self.url = found.group(1)
        self._drain = threading.Thread(target=self.proc.stderr.read, daemon=True)
        self._drain.start()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self._drain.join(60)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def _serve(factory: pytest.TempPathFactory, *options: str) -> tuple[Server, Path]:
    path = factory.mktemp("remote") / "main.cdb"
    CommitDatabase.create(path, DEFS).close()
    return Server(path, *options), path


@pytest.fixture(scope="module")
def durable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default durability (one fsync per commit)."""
    srv, _ = _serve(tmp_path_factory)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A ``--no-durable`` server (no fsync: the round trip and the engine alone)."""
    srv, _ = _serve(tmp_path_factory, "--no-durable")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def read_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A default server holding only what R2 writes (the R1 runs add documents elsewhere)."""
    srv, _ = _serve(tmp_path_factory)
    yield srv
    srv.stop()


def commit_chain(db: CommitDatabaseRemote, base: CommitId | None, keys: list[Any]) -> CommitId:
    """COMMITS commits on `base`, one on another, the i-th setting the document of keys[i]."""
    head = base
    for i in range(COMMITS):
        ms = CommitMutableState(db.state(head))
        ms.set(ATT, keys[i], VALUES[i])
        head = db.commit_mutations(f"c{i}", ms)
    assert head is not None
    return head


# -- R1: 1,000 remote commits of one set each -----------------------------------------------
@pytest.mark.parametrize("same_key", [False, True], ids=["new-key", "same-key"])
@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_r1_remote_commits(
    benchmark: BenchmarkFixture, request: pytest.FixtureRequest, mode: str, same_key: bool
) -> None:
    srv: Server = request.getfixturevalue(f"{mode}_server")
    benchmark.group = "R1 1,000 remote commits of one set"
    db = CommitDatabaseRemote.connect(srv.url, "main")
    try:
        heads: list[CommitId] = []
        rounds: list[list[Any]] = []

        def setup() -> tuple[tuple[list[Any]], dict[str, Any]]:
            # each round goes on from the last head: on one key, or on new keys (as W1)
            keys = [KEYS[0]] * COMMITS if same_key else [ATT.create_key() for _ in range(COMMITS)]
            rounds.append(keys)
            return (keys,), {}

        def run(keys: list[Any]) -> None:
            heads.append(commit_chain(db, heads[-1] if heads else None, keys))

        benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
        report(
            benchmark,
            figure=f"remote commits/s ({mode}, {'same key' if same_key else 'new key'})",
            unit="commits/s",
            target=2_000,
            reference="234 commits/s",
            per_round=COMMITS,
        )
        fresh = CommitDatabaseRemote.connect(srv.url, "main")
        try:
            assert fresh.state(heads[-1]).get(ATT, rounds[-1][-1]).level == COMMITS - 1
        finally:
            fresh.close()
    finally:
        db.close()


async def async_commit_chain(url: str, base: CommitId | None, keys: list[Any]) -> CommitId:
    """:func:`commit_chain` with the async API, on a new connection."""
    async with AsyncCommitDatabaseRemote.connect(url, "main") as db:
        head = base
        for i in range(COMMITS):
            state = await db.state(head)
            if i == 0:  # a state not seeded by a commit: learn its key set (one round trip)
                await state.keys(ATT)
            ms = CommitMutableState(state)
            ms.set(ATT, keys[i], VALUES[i])
            head = await db.commit_mutations(f"c{i}", ms)
        assert head is not None
        return head


@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_r1_remote_commits_async(
    benchmark: BenchmarkFixture, request: pytest.FixtureRequest, mode: str
) -> None:
    srv: Server = request.getfixturevalue(f"{mode}_server")
    benchmark.group = "R1 1,000 remote commits of one set"
    heads: list[CommitId] = []

    def setup() -> tuple[tuple[list[Any]], dict[str, Any]]:
        return ([ATT.create_key() for _ in range(COMMITS)],), {}

    def run(keys: list[Any]) -> None:
        heads.append(anyio.run(async_commit_chain, srv.url, heads[-1] if heads else None, keys))

    benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    report(
        benchmark,
        figure=f"remote commits/s ({mode}, new key, async API)",
        unit="commits/s",
        target=2_000,
        reference="234 commits/s",
        per_round=COMMITS,
    )
    with CommitDatabaseRemote.connect(srv.url, "main") as fresh:
        assert fresh.commit_exists(heads[-1])


# -- R2: reading 1,000 documents at head ----------------------------------------------------
@pytest.mark.parametrize("how", ["enumerate", "get_many", "get"])
def test_r2_read_1000_documents_at_head(
    benchmark: BenchmarkFixture, read_server: Server, how: str
) -> None:
    srv = read_server
    benchmark.group = "R2 read 1,000 documents at head"
    with CommitDatabaseRemote.connect(srv.url, "main") as writer:
        ms = CommitMutableState(writer.state(writer.last_commit_id()))
        for i, key in enumerate(KEYS[:DOCS]):
            ms.set(ATT, key, VALUES[i])
        head = writer.commit_mutations("1,000 documents", ms)
    opened: list[CommitDatabaseRemote] = []

    def setup() -> tuple[tuple[CommitDatabaseRemote], dict[str, Any]]:
        for db in opened:
            db.close()
        opened.clear()
        db = CommitDatabaseRemote.connect(srv.url, "main")  # nothing cached on the client
        opened.append(db)
        return (db,), {}

    def run(db: CommitDatabaseRemote) -> int:
        state = db.state(db.last_commit_id())
        if how == "enumerate":
            return len(state.enumerate(ATT))
        if how == "get_many":
            return len(state.get_many(ATT, KEYS[:DOCS]))
        return len([state.get(ATT, key) for key in KEYS[:DOCS]])

    try:
        count = benchmark.pedantic(run, setup=setup, rounds=20, iterations=1)
        assert count == DOCS and opened[0].last_commit_id() == head
    finally:
        for db in opened:
            db.close()
    report(
        benchmark,
        figure=f"docs/s at head through a remote state ({how})",
        unit="docs/s",
        target=50_000,
        reference="58,000 docs/s",
        per_round=DOCS,
    )


# -- R3: connect latency --------------------------------------------------------------------
def test_r3_connect(benchmark: BenchmarkFixture, durable_server: Server) -> None:
    srv = durable_server
    benchmark.group = "R3 connect"

    def run() -> None:
        CommitDatabaseRemote.connect(srv.url, "main").close()

    rounds = 200
    client, server = time.process_time(), srv.cpu_seconds()
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=5)
    # CPU per connect (the wall figures are noisy on a shared machine)
    benchmark.extra_info["client_cpu_ms"] = (time.process_time() - client) / (rounds + 5) * 1e3
    benchmark.extra_info["server_cpu_ms"] = (srv.cpu_seconds() - server) / (rounds + 5) * 1e3
    report(
        benchmark,
        figure="connect + close, ms",
        unit="ms",
        target=5.0,
        reference="1.3 ms",
        scale=1000,
    )
