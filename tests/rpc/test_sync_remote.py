"""CommitSynchronizer over the network: a local database against one served by
``commitdb serve`` (a real server process) or by an in-process RPCServer, over TCP and Unix
sockets — including a server killed in the middle of a transfer."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions
from commitdb.dsm import load_text
from commitdb.errors import DefinitionConflictError
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.sync import MODE_FETCH, MODE_PUSH, MODE_SYNC, CommitSynchronizer
from rpc.db_remote import CommitDatabaseRemote
from rpc.db_server import DatabaseServer
from rpc.server import RPCServer
from tests.commitdb.builders import Schema, schema
from tests.commitdb.test_sync import (
    CONFLICT,
    Diverged,
    assert_consistent,
    assert_same_states,
    moved,
)

ROOT = Path(__file__).resolve().parents[2]
SERVING = re.compile(r"^serving (\S+) on (\S+)$")


# --------------------------------------------------------------------------------------------
# Servers


class ServeProcess:
    """``python -m rpc serve NAME=PATH --listen URL`` as a child process."""

    def __init__(self, name: str, path: Path, listen: str) -> None:
        self.name = name
        self.path = path
        self.listen = listen
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = ""
        self.stderr: list[str] = []
        self._drain: threading.Thread | None = None

    def start(self) -> str:
        """Start the server; return the bound endpoint it prints on standard error."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpc", "serve", f"{self.name}={self.path}"]
            + ["--listen", self.listen],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            m = SERVING.match(line.strip())
            if m:
                assert m.group(1) == self.name
                self.endpoint = m.group(2)
                break
        else:
            self.proc.wait()
            raise AssertionError("the server did not start:\n" + "".join(self.stderr))
        # keep reading, so that the server never blocks on a full pipe
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()
        return self.endpoint

    def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown at all."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait (a server that does not stop is killed); the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._drain is not None:
            self._drain.join()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        assert self.proc.returncode is not None
        return self.proc.returncode


@contextmanager
def serve_process(
    name: str, path: Path, listen: str = "tcp://127.0.0.1:0"
) -> Iterator[ServeProcess]:
    """A running ``commitdb serve`` process, stopped on exit."""
    server = ServeProcess(name, path, listen)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve_in_process(databases: dict[str, Path], listen: str) -> Iterator[str]:
    """An RPCServer + DatabaseServer in a portal thread; yields the bound endpoint."""
    with start_blocking_portal() as portal:
        app = DatabaseServer({n: str(p) for n, p in databases.items()})
        try:
            with portal.wrap_async_context_manager(RPCServer(app)) as server:
                yield str(portal.call(server.listen, listen))
        finally:
            app.close()


@contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a short path, for Unix socket files (about 107 bytes at most)."""
    d = Path(tempfile.mkdtemp(prefix="cdb", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def s() -> Schema:
    return schema()


def diverged(tmp_path: Path, s: Schema) -> tuple[Diverged, set[CommitId]]:
    """Local database "a" and served database "b" with diverged histories (both closed)."""
    with (
        CommitDatabase.create(tmp_path / "a", s.defs, durable=False) as a,
        CommitDatabase.create(tmp_path / "b", s.defs, durable=False) as b,
    ):
        d = Diverged(a, b, s)
        return d, a.commit_ids() | b.commit_ids()


def check_final(tmp_path: Path, union: set[CommitId]) -> None:
    """Both files hold the union, consistently, with the same states."""
    with (
        CommitDatabase.open(tmp_path / "a") as a,
        CommitDatabase.open(tmp_path / "b") as b,
    ):
        assert a.commit_ids() == b.commit_ids() == union
        assert_consistent(a)
        assert_consistent(b)
        assert_same_states(a, b, union)


# --------------------------------------------------------------------------------------------
# A real server process


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_fetch_push_and_sync_against_a_serve_process(
    tmp_path: Path, s: Schema, transport: str
) -> None:
    d, union = diverged(tmp_path, s)
    with short_dir() as sock_dir:
        listen = "tcp://127.0.0.1:0" if transport == "tcp" else f"unix://{sock_dir}/s.sock"
        with serve_process("main", tmp_path / "b", listen) as server:
            assert server.endpoint.startswith(f"{transport}://")
            with (
                CommitDatabaseRemote.connect(server.endpoint, "main") as remote,
                CommitDatabase.open(tmp_path / "a") as local,
            ):
                before_local = local.commit_ids()
                # fetch: source (the server) -> target (the local replica)
                info = CommitSynchronizer(remote, local, MODE_FETCH).sync()
                assert moved(info) == (6, 1, 0, 0)
                assert local.commit_ids() == union
                assert remote.commit_ids() == union - d.a_only
                assert d.blob_b in local.blob_ids() and d.orphan_b not in local.blob_ids()
                # push: target (the local replica) -> source (the server)
                info = CommitSynchronizer(remote, local, MODE_PUSH).sync()
                assert moved(info) == (0, 0, 5, 1)
                assert remote.commit_ids() == union
                assert remote.blob_info(d.blob_a) is not None
                assert remote.blob_info(d.orphan_a) is None
                # sync: nothing left either way
                sync = CommitSynchronizer(local, remote, MODE_SYNC)
                assert moved(sync.sync()) == (0, 0, 0, 0)
                assert not sync.sync().need_transmit
                assert before_local <= local.commit_ids()
                # the server evaluates the imported history like the local engine
                head = d.gb["be"]
                assert remote.state(head).get(s.nums, s.k1) == local.state(head).get(s.nums, s.k1)
        assert server.stop() == 0
    check_final(tmp_path, union)


def test_a_server_killed_mid_transfer_leaves_both_consistent_and_the_next_sync_completes(
    tmp_path: Path, s: Schema
) -> None:
    # a long history with a blob every 100 commits, pushed into an empty served database
    count = 1100  # three batches: 500, 500 and 100 commits
    with CommitDatabase.create(tmp_path / "a", s.defs, durable=False) as a:
        head = None
        for i in range(count):
            ms = CommitMutableState(a.state(head) if head is not None else a.initial_state())
            if i % 100 == 50:
                blob = a.create_blob(f"blob {i}".encode() * 200)
                ms.set(s.rec, s.k1, s.rec_value(name=f"r{i}", picture=blob))
            else:
                ms.set(s.nums, s.k2, {i, i + 1})
            head = a.commit_mutations(f"c{i}", ms)
        ids = a.commit_ids()
    CommitDatabase.create(tmp_path / "b", Definitions()).close()

    kills: list[tuple[str, int]] = []
    server = ServeProcess("main", tmp_path / "b", "tcp://127.0.0.1:0")
    server.start()
    try:
        commits = [0]

        def progress(stage: str, done: int, total: int) -> None:
            # after two batches (1000 commits), once the third batch's blobs are in
            if stage == "fetch":
                commits[0] = done
            elif stage == "fetch blobs" and commits[0] >= 1000 and not kills:
                kills.append((stage, done))
                server.kill()

        with (
            CommitDatabaseRemote.connect(server.endpoint, "main") as remote,
            CommitDatabase.open(tmp_path / "a") as local,
        ):
            sync = CommitSynchronizer(local, remote, MODE_FETCH, progress=progress)
            with pytest.raises((ConnectionError, OSError)):
                sync.sync()
    finally:
        server.stop()
    assert kills, "the server was never killed"

    # the server's file: a prefix of the history, consistent; the third batch's blobs only
    with CommitDatabase.open(tmp_path / "b") as b:
        partial = b.commit_ids()
        assert len(partial) == 1000 and partial < ids
        assert_consistent(b)
        assert len(b.blob_ids()) == 11  # 10 referenced, and the third batch's blob,
        # sent before the commits that would have referenced it

    with serve_process("main", tmp_path / "b") as server:
        with (
            CommitDatabaseRemote.connect(server.endpoint, "main") as remote,
            CommitDatabase.open(tmp_path / "a") as local,
        ):
            info = CommitSynchronizer(local, remote, MODE_SYNC).sync()
            assert info.fetch.commits == count - 1000 and info.fetch.blobs == 0
            assert info.push.commits == 0
            assert remote.commit_ids() == ids
    with CommitDatabase.open(tmp_path / "a") as a, CommitDatabase.open(tmp_path / "b") as b:
        assert_consistent(b)
        assert b.blob_ids() == a.blob_ids()
        last = a.last_commit_id()
        assert last is not None
        assert b.state(last).get(s.rec, s.k1) == a.state(last).get(s.rec, s.k1)
        assert b.state(last).get(s.nums, s.k2) == {count - 1, count}


# --------------------------------------------------------------------------------------------
# In-process servers (faster)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_sync_both_ways_with_an_in_process_server(
    tmp_path: Path, s: Schema, transport: str
) -> None:
    d, union = diverged(tmp_path, s)
    with short_dir() as sock_dir:
        listen = "tcp://127.0.0.1:0" if transport == "tcp" else f"unix://{sock_dir}/s.sock"
        with (
            serve_in_process({"main": tmp_path / "b"}, listen) as endpoint,
            CommitDatabaseRemote.connect(endpoint, "main") as remote,
            CommitDatabase.open(tmp_path / "a") as local,
        ):
            sync = CommitSynchronizer(local, remote, "Sync")
            info = sync.sync()
            assert moved(info) == (5, 1, 6, 1)
            assert remote.head_commit_ids() == local.head_commit_ids()
            assert moved(sync.sync()) == (0, 0, 0, 0)
            assert not sync.sync().need_transmit
            # another client of the server writes: the next pass notices and fetches it back
            with CommitDatabaseRemote.connect(endpoint, "main") as other:
                new = other.disable_commit("elsewhere", d.gb["be"], d.gb["b2"])
            info = sync.sync()
            assert info.need_transmit and moved(info) == (0, 0, 1, 0)
            assert local.head_commit_ids() == {d.ga["ad"], new}
            assert local.state(new).get(s.rec, s.k1) == s.rec_value(name="root")
            union.add(new)
    check_final(tmp_path, union)


def test_a_definition_conflict_with_a_server_moves_nothing(tmp_path: Path, s: Schema) -> None:
    with CommitDatabase.create(tmp_path / "a", s.defs, durable=False) as a:
        ms = CommitMutableState(a.initial_state())
        ms.set(s.nums, s.k1, {1})
        a.commit_mutations("r", ms)
    CommitDatabase.create(tmp_path / "b", load_text(CONFLICT)).close()
    with (
        serve_in_process({"main": tmp_path / "b"}, "tcp://127.0.0.1:0") as endpoint,
        CommitDatabaseRemote.connect(endpoint, "main") as remote,
        CommitDatabase.open(tmp_path / "a") as local,
    ):
        digest = remote.definitions_hexdigest()
        for mode in (MODE_FETCH, MODE_PUSH, MODE_SYNC):
            with pytest.raises(DefinitionConflictError, match="T::Point"):
                CommitSynchronizer(remote, local, mode).sync()
        assert remote.commit_ids() == set() and remote.definitions_hexdigest() == digest
        assert len(local.commit_ids()) == 1


def test_large_blobs_travel_in_packs_over_the_network(tmp_path: Path, s: Schema) -> None:
    sizes = [300_000, 300_000, 700_000, 100_000]
    with CommitDatabase.create(tmp_path / "a", s.defs, durable=False) as a:
        ms = CommitMutableState(a.initial_state())
        blobs = []
        for i, n in enumerate(sizes):
            blob = a.create_blob(os.urandom(n))
            blobs.append(blob)
            ms.set(s.rec, s.rec.create_key(), s.rec_value(name=f"b{i}", picture=blob))
        c = a.commit_mutations("blobs", ms)
    CommitDatabase.create(tmp_path / "b", s.defs).close()
    calls: list[Any] = []
    with (
        serve_in_process({"main": tmp_path / "b"}, "tcp://127.0.0.1:0") as endpoint,
        CommitDatabaseRemote.connect(endpoint, "main") as remote,
        CommitDatabase.open(tmp_path / "a") as local,
    ):
        info = CommitSynchronizer(
            local, remote, MODE_FETCH, pack_size=650_000, progress=lambda *a: calls.append(a)
        ).sync()
        assert info.fetch.blobs == 4 and info.fetch.blob_bytes == sum(sizes)
        done = [0] + [d for stage, d, _ in calls if stage == "fetch blobs" and d]
        packs = [y - x for x, y in zip(done, done[1:], strict=False)]
        assert sum(packs) == sum(sizes) and len(packs) >= 3
        assert all(p <= 650_000 or p == 700_000 for p in packs)
        for blob in blobs:
            assert remote.blob(blob) == local.blob(blob)
        assert remote.commit_exists(c)
