"""Fault tests: killed writers, concurrent writers, damaged files, refused mutations.

Every database is a real LMDB environment under ``tmp_path``. The writers run
``fault_child.py`` in child processes; the ``children`` fixture kills and reaps whatever a
test left running, and every test waits for (or kills, then waits for) each child it starts.
Randomness is seeded; every loop is bounded. Nothing here measures speed: the timeouts are
only there so that a hung child fails the test instead of hanging it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitData, CommitKind
from commitdb.database import Database
from commitdb.definitions import Definitions
from commitdb.errors import (
    MissingBlobError,
    PathError,
    TransactionError,
    UnknownAttachmentError,
    ValidationError,
)
from commitdb.ids import BlobId, CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.types import STRING, Field
from commitdb.values import END
from tests.commitdb.fault_child import FLAT_DOCS, Model, commit_digest, flat_digest, plain

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("fault_child.py")
WAIT = 60.0  # bound on any wait for a child (a hang fails the test, it is not a speed check)
CHAIN_KILLS = 22
FLAT_KILLS = 8
WORKERS = 4
WORKER_COMMITS = 40
CHILD_LIMIT = 100_000  # steps a killed child would take at most if nobody killed it


# -- child processes ------------------------------------------------------------------------
class Children:
    """Starts fault_child.py processes and guarantees that each one is reaped."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[str]] = []

    def spawn(self, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._procs.append(proc)
        return proc

    def reap_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WAIT)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None and not stream.closed:
                    stream.close()


@pytest.fixture
def children() -> Iterator[Children]:
    c = Children()
    try:
        yield c
    finally:
        c.reap_all()


def read_line(proc: subprocess.Popen[str]) -> str:
    """The next line a child printed (the child must print within WAIT seconds)."""
    assert proc.stdout is not None and proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], WAIT)
    assert ready, "the child printed nothing"
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=WAIT)
        pytest.fail(f"the child ended ({proc.returncode}): {proc.stderr.read()}")
    return line.rstrip("\n")


def complete_lines(text: str) -> list[str]:
    """Lines ended by a newline (a line cut by the kill is not a report)."""
    return text.split("\n")[:-1]


def kill(proc: subprocess.Popen[str]) -> list[str]:
    """SIGKILL a child, reap it, and return the complete lines it printed since last read."""
    assert proc.stdout is not None and proc.stderr is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=WAIT)
    out = proc.stdout.read()  # the child is gone: EOF comes at once
    err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, f"the child ended by itself: {err}"
    return complete_lines(out)


def finish(proc: subprocess.Popen[str]) -> list[str]:
    """Wait for a child to end by itself (exit status 0) and return its complete lines."""
    assert proc.stdout is not None and proc.stderr is not None
    if proc.stdin is not None:
        proc.stdin.close()
    proc.wait(timeout=WAIT)
    out = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    return complete_lines(out)


# -- independent checks -----------------------------------------------------------------------
def expected_heads(db: CommitDatabase) -> set[CommitId]:
    """Heads computed from commit_ids and headers only: commits that are neither a parent
    nor a merge target."""
    ids = db.commit_ids()
    covered: set[CommitId] = set()
    for c in ids:
        h = db.commit_header(c)
        covered.add(h.parent_commit_id)
        if h.kind == CommitKind.MERGE:
            covered.add(h.target_commit_id)
    return ids - covered


def check_dag(db: CommitDatabase) -> set[CommitId]:
    """Every commit verifies against its content; heads are consistent. Returns the heads."""
    ids = db.commit_ids()
    assert db.commit_count() == len(ids)
    for c in ids:
        data = db.commit_data(c)
        assert data.verify(), f"commit {c.hex()} does not match its content"
        h = data.header
        for link in (h.parent_commit_id, h.target_commit_id):
            assert not link.is_valid or link in ids, f"{c.hex()} links to a missing commit"
    heads = db.head_commit_ids()
    assert heads == expected_heads(db)
    assert all(db.commit_exists(h) for h in heads)
    if ids:
        assert db.last_commit_id() in ids
    return heads


def check_chain(db: CommitDatabase, m: Model, reported: dict[int, CommitId]) -> int:
    """The database written by ``chain`` children: one chain ``commit 0 .. commit N-1``;
    every reported commit is on it at its place and reads back in full. Returns N."""
    heads = check_dag(db)
    ids = db.commit_ids()
    if not ids:
        assert not reported
        return 0
    assert len(heads) == 1
    head = next(iter(heads))
    assert db.last_commit_id() == head
    chain: list[CommitId] = []
    c = head
    for _ in range(len(ids) + 1):
        if not c.is_valid:
            break
        chain.append(c)
        c = db.commit_header(c).parent_commit_id
    chain.reverse()
    assert set(chain) == ids, "a commit is not on the chain"
    assert [db.commit_header(c).label for c in chain] == [f"commit {n}" for n in range(len(chain))]
    for n, c in reported.items():
        assert n < len(chain) and chain[n] == c, f"reported commit {n} is not on the chain"
        st = db.state(c)
        assert plain(st.get(m.att, m.doc_key(n))) == plain(m.content(n))
        shared = st.get(m.att, m.shared)
        assert shared.level == n
        assert shared.tags == {f"c{i}" for i in range(1, n + 1)}
    # the head holds every document ever written, reported or not
    last = len(chain) - 1
    st = db.state(head)
    assert st.keys(m.att) == {m.doc_key(n) for n in range(len(chain))} | {m.shared}
    for n in range(len(chain)):
        assert plain(st.get(m.att, m.doc_key(n))) == plain(m.content(n))
    assert st.get(m.att, m.shared).level == last
    return len(chain)


# -- (a) SIGKILL while committing ---------------------------------------------------------------
@pytest.mark.slow
def test_killed_committer_loses_nothing_it_reported(tmp_path: Path, children: Children) -> None:
    m = Model()
    path = tmp_path / "chain.cdb"
    CommitDatabase.create(path, m.defs).close()
    rng = random.Random(0xC0FFEE)
    reported: dict[int, CommitId] = {}
    length = 0
    for round_ in range(CHAIN_KILLS):
        proc = children.spawn("chain", str(path), str(CHILD_LIMIT))
        lines: list[str] = []
        if round_ % 6 == 5:
            # any moment at all: while starting, opening the database or committing
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            lines.append(read_line(proc))
            time.sleep(rng.uniform(0.0, 0.25))
        lines += kill(proc)
        for line in lines:
            word, rest = line.split(" ", 1)
            if word == "ready":
                assert int(rest) == length, "the child did not resume after the head"
                continue
            n = int(word)
            assert n not in reported
            reported[n] = CommitId.from_hex(rest)
        with CommitDatabase.open(path) as db:
            length = check_chain(db, m, reported)
        assert length >= len(reported)
        assert length <= len(reported) + round_ + 1  # at most one unreported commit per kill
    assert len(reported) > CHAIN_KILLS  # the kills did land between commits
    assert length > 0


# -- (b) four processes commit at once -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["own", "last"])
def test_four_processes_commit_concurrently(
    tmp_path: Path, children: Children, strategy: str
) -> None:
    m = Model()
    path = tmp_path / "shared.cdb"
    root: CommitId | None = None
    with CommitDatabase.create(path, m.defs) as db:
        if strategy == "last":
            ms = CommitMutableState(db.initial_state())
            ms.set(m.att, m.shared, m.shared_root())
            root = db.commit_mutations("root", ms)
    procs = [
        children.spawn("worker", str(path), str(w), str(WORKER_COMMITS), strategy, stdin=True)
        for w in range(WORKERS)
    ]
    for proc in procs:
        assert read_line(proc) == "ready"
    for proc in procs:  # start them together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reported: dict[int, list[CommitId]] = {}
    for w, proc in enumerate(procs):
        lines = [line.split(" ") for line in finish(proc)]
        assert [int(n) for n, _ in lines] == list(range(WORKER_COMMITS))
        reported[w] = [CommitId.from_hex(h) for _, h in lines]

    with CommitDatabase.open(path) as db:
        heads = check_dag(db)
        ids = db.commit_ids()
        assert len(ids) == WORKERS * WORKER_COMMITS + (root is not None)
        for w, commits in reported.items():
            for n, c in enumerate(commits):
                assert c in ids
                assert db.commit_header(c).label == f"w{w} {n}"
                st = db.state(c)
                assert plain(st.get(m.att, m.worker_key(w, n))) == plain(m.content(w * 1000 + n))
                if strategy == "own":  # its own chain, and nothing of the others
                    assert st.keys(m.att) == {m.worker_key(w, i) for i in range(n + 1)}
                else:
                    assert f"w{w}n{n}" in st.get(m.att, m.shared).tags
        if strategy == "own":
            assert heads == {commits[-1] for commits in reported.values()}
        # fold every head: the result holds everything every process wrote
        merged = db.reduce_heads()
        final = merged if merged is not None else next(iter(heads))
        assert check_dag(db) == {final}
        st = db.state(final)
        for w in range(WORKERS):
            for n in range(WORKER_COMMITS):
                assert plain(st.get(m.att, m.worker_key(w, n))) == plain(m.content(w * 1000 + n))
        if strategy == "last":
            assert st.get(m.att, m.shared).tags == {
                f"w{w}n{n}" for w in range(WORKERS) for n in range(WORKER_COMMITS)
            }


# -- a flat Database killed mid-transaction ------------------------------------------------------
@pytest.mark.slow
def test_killed_flat_transactions_are_all_or_nothing(tmp_path: Path, children: Children) -> None:
    m = Model()
    path = tmp_path / "flat.db"
    Database.create(path, m.defs).close()
    rng = random.Random(0xF1A7)
    reported: set[int] = set()
    resume = 0
    for _ in range(FLAT_KILLS):
        proc = children.spawn("flat", str(path), str(CHILD_LIMIT))
        assert read_line(proc) == f"ready {resume}"
        time.sleep(rng.uniform(0.0, 0.25))
        for line in kill(proc):
            assert int(line) not in reported
            reported.add(int(line))
        with Database.open(path) as db:
            shared = db.get(m.att, m.shared)
            last = -1 if shared is None else shared.level
            top = max(reported, default=-1)
            assert top <= last <= top + 1  # every reported transaction, at most one more
            docs = dict(db.enumerate(m.att))
            committed = {m.flat_key(n, j) for n in range(last + 1) for j in range(FLAT_DOCS)}
            assert set(docs) == committed | ({m.shared} if last >= 0 else set())
            for n in range(last + 1):
                for j in range(FLAT_DOCS):
                    got = plain(docs[m.flat_key(n, j)])
                    assert got == plain(m.content(n * FLAT_DOCS + j))
            if last >= 0:
                assert plain(shared) == plain(m.content(last))
        resume = last + 1
    assert len(reported) > FLAT_KILLS


# -- (c) damaged files ------------------------------------------------------------------------------
def _damaged_copies(src: Path, dest: Path, rng: random.Random) -> list[Path]:
    """Copies of a database directory with data.mdb truncated, or made of garbage."""
    data = (src / "data.mdb").read_bytes()
    assert len(data) > 64 * 1024
    out: list[Path] = []

    def make(name: str, content: bytes, lock: bytes | None = None) -> None:
        d = dest / name
        d.mkdir()
        (d / "data.mdb").write_bytes(content)
        if lock is not None:
            (d / "lock.mdb").write_bytes(lock)
        out.append(d)

    n = len(data)
    for size in (0, 1, 100, 4095, 4096, 8191, 8192, 8192 + 17, n // 3, n // 2, n - 4097, n - 1):
        make(f"truncated-{size}", data[:size])
    junk = rng.randbytes(n)
    for size in (16, 4096, 65536):
        make(f"garbage-{size}", junk[:size])
    make("meta-pages-then-garbage", data[:8192] + junk[8192:])
    make("garbage-lock", data, lock=junk[:8192])
    empty = dest / "empty-dir"
    empty.mkdir()
    out.append(empty)
    (dest / "a-file").write_bytes(junk[:4096])
    out.append(dest / "a-file")
    out.append(dest / "missing")
    return out


def _open_in_child(children: Children, kind: str, paths: list[Path]) -> list[dict[str, Any]]:
    """Open each path in a child (a crash there must not take the test runner down)."""
    proc = children.spawn("open-check", kind, *map(str, paths))
    assert proc.stdout is not None and proc.stderr is not None
    try:
        proc.wait(timeout=WAIT)
    finally:
        out, err = proc.stdout.read(), proc.stderr.read()
    results = [json.loads(line) for line in complete_lines(out)]
    attempted = {(r["path"], r["readonly"]) for r in results}
    pending = [(str(p), ro) for p in paths for ro in (False, True) if (str(p), ro) not in attempted]
    assert proc.returncode == 0, f"the child crashed ({proc.returncode}) at {pending[:1]}: {err}"
    assert not pending
    return results


@pytest.mark.parametrize("kind", ["commit", "flat"])
def test_damaged_files_raise_storage_errors(tmp_path: Path, children: Children, kind: str) -> None:
    m = Model()
    good = tmp_path / "good"
    if kind == "commit":
        with CommitDatabase.create(good, m.defs, durable=False) as cdb:
            head: CommitId | None = None
            for n in range(60):
                ms = CommitMutableState(cdb.state(head))
                for j in range(5):
                    ms.set(m.att, m.doc_key(n * 5 + j), m.content(n * 5 + j))
                head = cdb.commit_mutations(f"commit {n}", ms)
            digest = commit_digest(cdb, m)
        other = tmp_path / "other-kind"
        Database.create(other, m.defs).close()
    else:
        with Database.create(good, m.defs, durable=False) as fdb:
            for n in range(30):
                with fdb.transaction():
                    for j in range(FLAT_DOCS):
                        fdb.set(m.att, m.flat_key(n, j), m.content(n * FLAT_DOCS + j))
            digest = flat_digest(fdb, m)
        other = tmp_path / "other-kind"
        CommitDatabase.create(other, m.defs).close()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    paths = [*_damaged_copies(good, damaged, random.Random(0xBAD)), other]
    results = _open_in_child(children, kind, paths)

    opened = 0
    for r in results:
        where = f"{Path(r['path']).name} (readonly={r['readonly']})"
        if r["outcome"] == "ok":
            # only a cut that drops free pages may open, and then nothing is lost
            assert Path(r["path"]).name.startswith("truncated-") or r["path"].endswith(
                "garbage-lock"
            ), f"{where} opened"
            assert r["digest"] == digest, f"{where} opened with different content"
            opened += 1
        else:
            assert r["storage"], f"{where}: {r['type']}: {r['message']}"
            assert r["message"], where
    assert opened < len(results) // 2
    # the original is untouched and still reads back in full
    if kind == "commit":
        with CommitDatabase.open(good) as cdb:
            assert commit_digest(cdb, m) == digest
    else:
        with Database.open(good) as fdb:
            assert flat_digest(fdb, m) == digest


# -- (d) refused mutations write nothing ----------------------------------------------------------
def _foreign_attachment() -> Any:
    defs = Definitions()
    ns = defs.namespace("Elsewhere", "7d1e0c44-5b6a-4f3e-8a2b-1c0d9e8f7a6b")
    user = defs.create_concept(ns, "User")
    doc = defs.create_structure(ns, "Doc", [Field("name", STRING)])
    return defs.create_attachment(ns, "doc", user, doc), doc


Refusal = Callable[[CommitMutableState, Model], object]

REFUSALS: list[tuple[str, Refusal, type[Exception]]] = [
    ("set-a-string", lambda ms, m: ms.set(m.att, m.doc_key(0), "not a login"), ValidationError),
    (
        "set-a-dict-with-a-wrong-field",
        lambda ms, m: ms.set(m.att, m.doc_key(0), {"nickname": 3}),
        ValidationError,
    ),
    (
        "set-another-structure",
        lambda ms, m: ms.set(m.att, m.doc_key(0), m.avatar(blob=BlobId(b"\x01" * 32))),
        ValidationError,
    ),
    (
        "update-int-with-str",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".level", "high"),
        ValidationError,
    ),
    (
        "update-int-with-bool",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".level", True),
        ValidationError,
    ),
    (
        "update-int-out-of-range",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".level", 2**70),
        ValidationError,
    ),
    (
        "update-set-with-str",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".tags", "admin"),
        ValidationError,
    ),
    (
        "union-ints-into-string-set",
        lambda ms, m: ms.union_in_set(m.att, m.doc_key(0), ".tags", [1, 2]),
        ValidationError,
    ),
    (
        "union-in-set-on-a-map",
        lambda ms, m: ms.union_in_set(m.att, m.doc_key(0), ".scores", ["a"]),
        ValidationError,
    ),
    (
        "union-in-map-wrong-value",
        lambda ms, m: ms.union_in_map(m.att, m.doc_key(0), ".scores", {"a": "b"}),
        ValidationError,
    ),
    (
        "insert-int-in-string-xarray",
        lambda ms, m: ms.insert_in_xarray(m.att, m.doc_key(0), ".history", END, None, 5),
        ValidationError,
    ),
    ("key-not-a-key", lambda ms, m: ms.set(m.att, "k", m.content(1)), ValidationError),
    (
        "nil-key",
        lambda ms, m: ms.set(m.att, m.att.create_key(uuid.UUID(int=0)), m.content(1)),
        ValidationError,
    ),
    (
        "unknown-attachment-name",
        lambda ms, m: ms.set("Fault::User.nope", m.doc_key(0), m.content(1)),
        UnknownAttachmentError,
    ),
    (
        "unknown-attachment-uuid",
        lambda ms, m: ms.update(uuid.uuid4(), m.doc_key(0), ".level", 1),
        UnknownAttachmentError,
    ),
    (
        "attachment-of-other-definitions",
        lambda ms, m: ms.set(
            _foreign_attachment()[0],
            _foreign_attachment()[0].create_key(),
            _foreign_attachment()[1](name="x"),
        ),
        UnknownAttachmentError,
    ),
    (
        "path-unknown-field",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".nope", 1),
        PathError,
    ),
    (
        "path-into-an-int",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".level.x", 1),
        PathError,
    ),
    ("path-malformed", lambda ms, m: ms.update(m.att, m.doc_key(0), ".level[", 1), PathError),
    (
        "path-map-key-on-a-set",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".tags['a']", "x"),
        PathError,
    ),
    (
        "path-map-key-of-wrong-type",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".scores[#1]", 1),
        PathError,
    ),
    (
        "path-irregular",
        lambda ms, m: ms.update(m.att, m.doc_key(0), ".tags.element[0]", "x"),
        PathError,
    ),
    (
        "union-at-unknown-path",
        lambda ms, m: ms.union_in_set(m.att, m.doc_key(0), ".nope", ["a"]),
        PathError,
    ),
]


@pytest.fixture
def commit_db(tmp_path: Path) -> Iterator[tuple[CommitDatabase, Model, CommitId]]:
    m = Model()
    db = CommitDatabase.create(tmp_path / "refusals.cdb", m.defs)
    ms = CommitMutableState(db.initial_state())
    ms.set(m.att, m.doc_key(0), m.content(0))
    head = db.commit_mutations("root", ms)
    yield db, m, head
    db.close()


def _footprint(db: CommitDatabase) -> tuple[int, int, set[CommitId], set[CommitId]]:
    return db.commit_count(), db.data_version(), db.commit_ids(), db.head_commit_ids()


@pytest.mark.parametrize(("name", "call", "error"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_mutation_records_and_writes_nothing(
    commit_db: tuple[CommitDatabase, Model, CommitId],
    name: str,
    call: Refusal,
    error: type[Exception],
) -> None:
    db, m, head = commit_db
    before = _footprint(db)
    ms = CommitMutableState(db.state(head))
    ms.update(m.att, m.doc_key(0), ".level", 41)  # one accepted opcode before the refusal
    with pytest.raises(error):
        call(ms, m)
    assert _footprint(db) == before
    assert len(ms.mutations()) == 1
    expected = plain(m.content(0)) | {"level": 41}
    assert plain(ms.get(m.att, m.doc_key(0))) == expected
    assert ms.keys(m.att) == {m.doc_key(0)}
    # The commit holds the accepted opcode only: a clean state with just that opcode has the
    # same content address.
    c = db.commit_mutations(f"after {name}", ms)
    clean = CommitMutableState(db.state(head))
    clean.update(m.att, m.doc_key(0), ".level", 41)
    assert db.commit_mutations("clean", clean) == c
    assert db.commit_count() == before[0] + 1
    assert plain(db.state(c).get(m.att, m.doc_key(0))) == expected


def test_commit_with_a_missing_blob_writes_nothing(
    commit_db: tuple[CommitDatabase, Model, CommitId],
) -> None:
    db, m, head = commit_db
    before = _footprint(db)
    content = b"avatar bytes"
    missing = BlobId(hashlib.sha256(b"never stored").digest())
    key = m.att.create_key(uuid.UUID(int=77))
    ms = CommitMutableState(db.state(head))
    ms.set(m.avatar_att, key, m.avatar(blob=missing))
    with pytest.raises(MissingBlobError):
        db.commit_mutations("missing blob", ms)
    assert _footprint(db) == before
    assert ms.sealed is None
    assert db.blob(missing) is None
    # a refused commit leaves the working copy usable: store the blob it needs, commit again
    ms2 = CommitMutableState(db.state(head))
    blob_id = db.create_blob(content)
    ms2.set(m.avatar_att, key, m.avatar(blob=blob_id))
    c = db.commit_mutations("with blob", ms2)
    assert db.state(c).get(m.avatar_att, key) == m.avatar(blob=blob_id)
    assert db.commit_count() == before[0] + 1


def test_received_commit_with_a_missing_blob_writes_nothing(
    tmp_path: Path, commit_db: tuple[CommitDatabase, Model, CommitId]
) -> None:
    db, m, _ = commit_db
    key = m.att.create_key(uuid.UUID(int=78))
    with CommitDatabase.create(tmp_path / "source.cdb", m.defs) as src:
        blob_id = src.create_blob(b"only in the source")
        ms = CommitMutableState(src.initial_state())
        ms.set(m.avatar_att, key, m.avatar(blob=blob_id))
        data: CommitData = src.commit_data(src.commit_mutations("avatar", ms))
    before = _footprint(db)
    with pytest.raises(MissingBlobError):
        db.create_commit_data(data)
    assert _footprint(db) == before
    db.create_blob(b"only in the source")
    assert db.create_commit_data(data) is True
    assert db.state(data.commit_id).get(m.avatar_att, key) == m.avatar(blob=blob_id)


def test_flat_database_refusals_write_nothing(tmp_path: Path) -> None:
    m = Model()
    with Database.create(tmp_path / "flat.db", m.defs) as db:
        with db.transaction():
            db.set(m.att, m.doc_key(0), m.content(0))
        before = flat_digest(db, m)
        with pytest.raises(TransactionError):  # a write outside a transaction
            db.set(m.att, m.doc_key(1), m.content(1))
        db.begin_transaction()
        db.set(m.att, m.doc_key(2), m.content(2))  # accepted
        missing = BlobId(bytes(range(32)))
        refusals: list[tuple[Callable[[], object], type[Exception]]] = [
            (lambda: db.set(m.att, m.doc_key(0), "not a login"), ValidationError),
            (lambda: db.set(m.att, m.doc_key(0), {"nickname": 3}), ValidationError),
            (lambda: db.set(m.att, "k", m.content(3)), ValidationError),
            (
                lambda: db.set("Fault::User.nope", m.doc_key(3), m.content(3)),
                UnknownAttachmentError,
            ),
            (
                lambda: db.set(m.avatar_att, m.doc_key(3), m.avatar(blob=missing)),
                MissingBlobError,
            ),
        ]
        for call, error in refusals:
            with pytest.raises(error):
                call()
        assert db.in_transaction()
        db.commit()
        assert flat_digest(db, m) != before
        docs = dict(db.enumerate(m.att))
        assert set(docs) == {m.doc_key(0), m.doc_key(2)}
        assert plain(docs[m.doc_key(0)]) == plain(m.content(0))
        assert db.enumerate(m.avatar_att) == []
    with Database.open(tmp_path / "flat.db") as db:
        assert {k for k, _ in db.enumerate(m.att)} == {m.doc_key(0), m.doc_key(2)}
