"""Remote databases against real ``commitdb serve`` processes: listing and opening by name,
credentials, TLS, the async API, errors, and concurrency (several writers lose nothing; reads
proceed while a write is in progress).

Also home of the helpers the other database-server test modules use:
:func:`start_db_server` and the ``db_server`` fixture (every server a test starts is stopped
by the test).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from commitdb.codec import pack
from commitdb.commit_database import CommitDatabase
from commitdb.database import Database
from commitdb.errors import (
    CommitError,
    DatabaseClosedError,
    DecodeError,
    TransactionError,
    UnknownAttachmentError,
    UnknownCommitError,
    ValidationError,
)
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.values import Key
from rpc.db_remote import (
    AsyncCommitDatabaseRemote,
    AsyncDatabaseRemote,
    CommitDatabaseRemote,
    CommitEvent,
    DatabaseRemote,
    list_databases,
)
from rpc.errors import AuthenticationError, ConnectionClosedError, MethodNotFoundError
from rpc.transports import client_ssl_context
from tests.commitdb.builders import Schema, schema
from tests.commitdb.database_contract import Tuto, tuto_definitions

REPO = Path(__file__).resolve().parents[2]
WAIT = 60.0  # upper bound of every wait for a child process (never reached when all is well)


# --------------------------------------------------------------------------------------------
# Server processes


def child_env() -> dict[str, str]:
    """The environment of child processes: the repository on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    return env


@dataclass
class DbServerProcess:
    """A ``python -m rpc serve`` child process and what it printed on standard error."""

    proc: subprocess.Popen[bytes]
    urls: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    _drained: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        """The first URL it listens on."""
        return self.urls[0]

    def wait_for_line(self, pattern: str, start: int = 0) -> str:
        """Wait (at most WAIT seconds) for a stderr line matching `pattern`."""
        regex = re.compile(pattern)
        with self.cond:
            found = self.cond.wait_for(
                lambda: any(regex.search(x) for x in self.lines[start:]) or self._drained.is_set(),
                WAIT,
            )
            for line in self.lines[start:]:
                if regex.search(line):
                    return line
        raise AssertionError(
            f"no line matching {pattern!r} (found={found}):\n" + "\n".join(self.lines)
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` (SIGTERM by default) and wait for the exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=WAIT)
        self._drained.wait(WAIT)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the server and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)
        self._drained.wait(WAIT)


def start_db_server(
    databases: list[str], *options: str, listen: tuple[str, ...] = ("tcp://127.0.0.1:0",)
) -> DbServerProcess:
    """Start ``python -m rpc serve DATABASES --listen ... OPTIONS`` and wait until every
    listener is bound (the "serving NAMES on URL" lines).

    Args:
        databases: ``NAME=PATH`` or ``PATH`` arguments.
        *options: More command line options.
        listen: The URLs to listen on.

    Returns:
        The running server.
    """
    args = [sys.executable, "-m", "rpc", "serve", *databases]
    for url in listen:
        args += ["--listen", url]
    proc = subprocess.Popen(
        [*args, *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=child_env(),
    )
    server = DbServerProcess(proc)

    def pump() -> None:  # drains stderr, so the child never blocks on a full pipe
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            with server.cond:
                server.lines.append(line)
                found = re.search(r"^serving .* on (\S+)$", line)
                if found:
                    server.urls.append(found.group(1))
                server.cond.notify_all()
        proc.stderr.close()
        with server.cond:
            server._drained.set()
            server.cond.notify_all()

    threading.Thread(target=pump, daemon=True).start()
    with server.cond:
        server.cond.wait_for(
            lambda: len(server.urls) == len(listen) or server._drained.is_set(), WAIT
        )
        ready = len(server.urls) == len(listen)
    if not ready:
        server.kill()
        raise AssertionError("the server did not start:\n" + "\n".join(server.lines))
    return server


@pytest.fixture
def db_server() -> Iterator[Callable[..., DbServerProcess]]:
    """``db_server(databases, *options, listen=...)`` starts a server; all are stopped at
    teardown."""
    started: list[DbServerProcess] = []

    def start(
        databases: list[str], *options: str, listen: tuple[str, ...] = ("tcp://127.0.0.1:0",)
    ) -> DbServerProcess:
        server = start_db_server(databases, *options, listen=listen)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run_child(code: str, *args: str) -> subprocess.Popen[str]:
    """Start a Python child running `code` (dedented) with `args` in sys.argv."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=child_env(),
    )


def commit_counter(
    db: Any, s: Schema, base: CommitId | None, value: int, key: Key | None = None
) -> CommitId:
    """Commit ``counter[key] = value`` on `base`."""
    ms = CommitMutableState(db.state(base))
    ms.set(s.counter, key if key is not None else s.k1, value)
    return db.commit_mutations(f"set {value}", ms)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def s() -> Schema:
    return schema()


@pytest.fixture
def tuto() -> Tuto:
    return tuto_definitions()


@pytest.fixture
def paths(tmp_path: Path, s: Schema, tuto: Tuto) -> dict[str, Path]:
    """A commit database ``main`` and a flat database ``notes``."""
    main, notes = tmp_path / "main.cdb", tmp_path / "notes.db"
    CommitDatabase.create(main, s.defs, documentation="the main database").close()
    Database.create(notes, tuto.definitions, documentation="flat notes").close()
    return {"main": main, "notes": notes}


@pytest.fixture
def served(db_server: Callable[..., DbServerProcess], paths: dict[str, Path]) -> DbServerProcess:
    return db_server([f"main={paths['main']}", str(paths["notes"])])


# --------------------------------------------------------------------------------------------
# Listing and opening by name


def test_clients_list_the_served_databases(served: DbServerProcess, paths: dict[str, Path]) -> None:
    with CommitDatabase.open(paths["main"], readonly=True) as local:
        main_uuid = local.uuid()
    for listing in (
        CommitDatabaseRemote.databases(served.url),
        DatabaseRemote.databases(served.url),
        anyio.run(list_databases, served.url),
    ):
        by_name = {d.name: d for d in listing}
        assert set(by_name) == {"main", "notes"}  # "notes" is named after its file
        assert (by_name["main"].kind, by_name["notes"].kind) == ("commit", "flat")
        assert by_name["main"].uuid == main_uuid
        assert by_name["main"].documentation == "the main database"
        assert by_name["notes"].documentation == "flat notes"


def test_databases_are_opened_by_name_only(served: DbServerProcess, paths: dict[str, Path]) -> None:
    with pytest.raises(MethodNotFoundError, match="main, notes"):
        CommitDatabaseRemote.connect(served.url, "missing")
    with pytest.raises(MethodNotFoundError):
        CommitDatabaseRemote.connect(served.url, str(paths["main"]))  # a path is no name
    with pytest.raises(MethodNotFoundError):
        CommitDatabaseRemote.connect(served.url, "notes")  # a flat database
    with pytest.raises(MethodNotFoundError):
        DatabaseRemote.connect(served.url, "main")  # a commit database
    with CommitDatabaseRemote.connect(served.url, "main") as db:
        assert db.path() == "main"
        assert db.documentation() == "the main database"


def test_a_remote_commit_lands_in_the_served_file(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], s: Schema
) -> None:
    server = db_server([f"main={paths['main']}"])
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        c = commit_counter(db, s, None, 41)
        st = db.state(c)
        ms = CommitMutableState(st)  # a local mutable state on a remote state
        ms.set(s.counter, s.k1, ms.get(s.counter, s.k1) + 1)
        head = db.commit_mutations("increment", ms)
    assert server.stop() == 0
    with CommitDatabase.open(paths["main"], readonly=True) as local:
        assert local.commit_ids() == {c, head}
        assert local.state(head).get(s.counter, s.k1) == 42
        assert local.commit_header(head).parent_commit_id == c


def test_flat_sessions_are_isolated(served: DbServerProcess, tuto: Tuto) -> None:
    key = tuto.login_att.create_key()
    with (
        DatabaseRemote.connect(served.url, "notes") as a,
        DatabaseRemote.connect(served.url, "notes") as b,
    ):
        a.begin_transaction()
        a.set(tuto.login_att, key, tuto.login(nickname="ada"))
        assert a.in_transaction() and not b.in_transaction()
        assert not b.has(tuto.login_att, key)
        with pytest.raises(TransactionError):
            b.commit()  # b has no transaction: a's is not shared
        a.commit()
        assert b.get(tuto.login_att, key) == tuto.login(nickname="ada")


# --------------------------------------------------------------------------------------------
# Credentials and TLS


def test_tokens(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("# one per line\nfrom-a-file\n")
    server = db_server(
        [f"main={paths['main']}"], "--token", "s3cret", "--token-file", str(token_file)
    )
    with pytest.raises(AuthenticationError):
        CommitDatabaseRemote.connect(server.url, "main")
    with pytest.raises(AuthenticationError):
        CommitDatabaseRemote.connect(server.url, "main", credentials="wrong")
    with pytest.raises(AuthenticationError):
        DatabaseRemote.databases(server.url)
    for token in ("s3cret", "from-a-file"):
        with CommitDatabaseRemote.connect(server.url, "main", credentials=token) as db:
            assert db.commit_count() == 0
    assert [d.name for d in DatabaseRemote.databases(server.url, credentials="s3cret")] == ["main"]


def test_tls(
    db_server: Callable[..., DbServerProcess],
    paths: dict[str, Path],
    tmp_path: Path,
    s: Schema,
    short_tmp: Path,
) -> None:
    from tests.rpc.tls import make_pki

    pki = make_pki(tmp_path)
    server = db_server(
        [f"main={paths['main']}"],
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        listen=("tls://127.0.0.1:0", f"unix+tls://{short_tmp}/tls.sock"),
    )
    tcp_url, unix_url = server.urls
    assert tcp_url.startswith("tls://") and unix_url.startswith("unix+tls://")
    ctx = client_ssl_context(str(pki.ca))
    with CommitDatabaseRemote.connect(tcp_url, "main", ssl_context=ctx) as db:
        c = commit_counter(db, s, None, 7)
        with db.subscribe() as events:
            head = commit_counter(db, s, c, 8)
            event = events.get(timeout=WAIT)
            assert isinstance(event, CommitEvent) and event.commit_id == head
    with CommitDatabaseRemote.connect(unix_url, "main", ssl_context=ctx) as db:
        assert db.state(head).get(s.counter, s.k1) == 8

    async def use_async() -> int:
        async with AsyncCommitDatabaseRemote.connect(tcp_url, "main", ssl_context=ctx) as adb:
            return await adb.commit_count()

    assert anyio.run(use_async) == 2
    untrusted = client_ssl_context()  # the system store does not know the test CA
    with pytest.raises(Exception, match="(?i)certificate"):
        CommitDatabaseRemote.connect(tcp_url, "main", ssl_context=untrusted)


# --------------------------------------------------------------------------------------------
# Errors


def test_the_server_checks_every_opcode_of_a_program(served: DbServerProcess, s: Schema) -> None:
    """``commit_program``: refused programs write nothing; a value in another layout is
    stored by its canonical encoding (the commit id is that of the canonical program)."""
    address = s.nums.runtime_id.bytes + s.k1.concept.runtime_id.bytes + s.k1.id.bytes
    with CommitDatabaseRemote.connect(served.url, "main") as db:
        count = db.commit_count()
        with pytest.raises(DecodeError):
            db.commit_program("bad", None, pack([[address, [[0, ["not an int"]]]]]))
        with pytest.raises(UnknownAttachmentError):
            db.commit_program("bad", None, pack([[bytes(16) + address[16:], [[0, [1]]]]]))
        with pytest.raises(DecodeError):
            db.commit_program("bad", None, b"\xc1")
        assert db.commit_count() == count
        canonical = pack([[address, [[0, [1, 2]]]]])
        cid = db.commit_program("ok", None, pack([[address, [[0, [2, 1]]]]]))
        assert db.commit_data(cid).program == canonical
        assert db.state(cid).get(s.nums, s.k1) == {1, 2}


def test_engine_errors_cross_the_wire(served: DbServerProcess, s: Schema, tuto: Tuto) -> None:
    with CommitDatabaseRemote.connect(served.url, "main") as db:
        ghost = CommitId(bytes(range(32)))
        with pytest.raises(UnknownCommitError):
            db.state(ghost)
        with pytest.raises(UnknownCommitError):
            db.commit_header(ghost)
        with pytest.raises(UnknownAttachmentError):
            db.initial_state().get("T::Doc.nothing", s.k1)
        ms = CommitMutableState(db.initial_state())
        with pytest.raises(ValidationError, match="int64"):
            ms.set(s.counter, s.k1, "not an int")
        with pytest.raises(ValueError):
            db.read_blob(db.create_blob(b"abc"), 10)
        with pytest.raises(UnknownCommitError):  # a program on a base the server lacks
            db.commit_program("x", ghost, b"\x90")
        assert db.commit_count() == 0
    with DatabaseRemote.connect(served.url, "notes") as flat:
        with pytest.raises(TransactionError, match="outside a transaction"):
            flat.set(tuto.login_att, tuto.login_att.create_key(), tuto.login())
        with pytest.raises(ValueError, match="mode"):
            flat.begin_transaction("serializable")


def test_a_lost_server_is_a_connection_error(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path]
) -> None:
    server = db_server([f"main={paths['main']}"])
    db = CommitDatabaseRemote.connect(server.url, "main")
    try:
        assert db.commit_count() == 0
        server.kill()
        with pytest.raises(ConnectionClosedError):
            db.commit_count()
        assert db.is_closed()
    finally:
        db.close()


# --------------------------------------------------------------------------------------------
# The async API


def test_async_remotes(served: DbServerProcess, s: Schema, tuto: Tuto) -> None:
    async def main() -> None:
        async with AsyncCommitDatabaseRemote.connect(served.url, "main") as db:
            assert await db.commit_count() == 0
            root = await db.initial_state()

            def build() -> CommitMutableState:  # reads of a mutable state run in a thread
                ms = CommitMutableState(root)
                ms.set(s.counter, s.k1, 1)
                ms.set(s.nums, s.k1, {1, 2})
                return ms

            ms = await anyio.to_thread.run_sync(build)
            c = await db.commit_mutations("async", ms)
            st = await db.state(c)
            assert await st.get(s.counter, s.k1) == 1
            assert await st.keys(s.nums) == {s.k1}
            assert await st.enumerate(s.nums) == [(s.k1, {1, 2})]
            assert await st.get_many(s.counter, [s.k1, s.k2]) == [1, None]
            assert (await db.commit_header(c)).label == "async"
            with pytest.raises(UnknownCommitError):
                await db.state(CommitId(bytes(range(32))))
            async with db.subscribe() as events:
                ms2 = CommitMutableState(st)
                ms2.set(s.counter, s.k1, 2)  # the document is cached: no round trip needed
                head = await db.commit_mutations("second", ms2)
                event = await events.receive()
                assert isinstance(event, CommitEvent) and event.commit_id == head
            assert [d.name for d in await list_databases(served.url)] == ["main", "notes"]
        async with AsyncDatabaseRemote.connect(served.url, "notes") as flat:
            key = tuto.login_att.create_key()
            async with flat.transaction():
                await flat.set(tuto.login_att, key, tuto.login(nickname="async"))
            assert (await flat.get(tuto.login_att, key)).nickname == "async"
            with pytest.raises(RuntimeError, match="boom"):
                async with flat.transaction():
                    await flat.delete(tuto.login_att, key)
                    raise RuntimeError("boom")
            assert await flat.keys(tuto.login_att) == {key}

    anyio.run(main)


# --------------------------------------------------------------------------------------------
# Concurrency


def test_several_clients_committing_at_once_lose_nothing(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], s: Schema
) -> None:
    server = db_server([f"main={paths['main']}"])
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        root = commit_counter(db, s, None, 0)
    clients, rounds = 4, 25
    made: list[list[CommitId]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        key = Key(s.k1.concept, uuid.UUID(int=index + 1))
        try:
            with CommitDatabaseRemote.connect(server.url, "main") as conn:
                head = root
                for n in range(rounds):
                    head = commit_counter(conn, s, head, n, key)
                    made[index].append(head)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert server.stop() == 0
    with CommitDatabase.open(paths["main"], readonly=True) as local:
        assert local.commit_count() == 1 + clients * rounds
        assert local.commit_ids() == {root, *(c for chain in made for c in chain)}
        assert local.head_commit_ids() == {chain[-1] for chain in made}


HOLD_WRITE_LOCK = """
    import sys
    from commitdb.commit_database import CommitDatabase
    db = CommitDatabase.open(sys.argv[1])
    with db._storage.write():  # white box: hold LMDB's writer lock (no change is made)
        print("holding", flush=True)
        sys.stdin.readline()
    db.close()
    print("released", flush=True)
"""


def test_reads_proceed_while_a_write_is_in_progress(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], s: Schema
) -> None:
    server = db_server([f"main={paths['main']}"], "-vv")
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        base = commit_counter(db, s, None, 1)
        blob = db.create_blob(b"pixels")
    holder = run_child(HOLD_WRITE_LOCK, str(paths["main"]))
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "holding"
        outcome: list[Any] = []
        writer_db = CommitDatabaseRemote.connect(server.url, "main")
        mark = len(server.lines)
        writer = threading.Thread(
            target=lambda: outcome.append(commit_counter(writer_db, s, base, 2))
        )
        writer.start()
        server.wait_for_line(r"commit requested", mark)  # the write is in progress
        with CommitDatabaseRemote.connect(server.url, "main") as reader:
            for _ in range(20):
                assert reader.commit_count() == 1
                assert reader.state(base).get(s.counter, s.k1) == 1
                assert reader.state(base).enumerate(s.counter) == [(s.k1, 1)]
                assert reader.blob(blob) == b"pixels"
                assert reader.head_commit_ids() == {base}
        assert writer.is_alive() and outcome == []  # still waiting for the lock
        holder.stdin.write("go\n")
        holder.stdin.flush()
        writer.join(WAIT)
        assert not writer.is_alive()
        (head,) = outcome
        assert writer_db.state(head).get(s.counter, s.k1) == 2
        writer_db.close()
    finally:
        holder.kill()
        holder.communicate(timeout=WAIT)


def test_one_remote_shared_by_threads(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], s: Schema
) -> None:
    server = db_server([f"main={paths['main']}"])
    received: list[CommitId] = []
    arrived = threading.Condition()

    def collect(event: Any) -> None:
        if isinstance(event, CommitEvent):
            with arrived:
                received.append(event.commit_id)
                arrived.notify_all()

    with CommitDatabaseRemote.connect(server.url, "main") as db:
        root = commit_counter(db, s, None, 0)
        blob = db.create_blob(b"shared")
        sub = db.subscribe(collect)  # a helper thread reads the socket while idle
        errors: list[BaseException] = []
        made: list[list[CommitId]] = [[] for _ in range(4)]

        def work(index: int) -> None:
            key = Key(s.k1.concept, uuid.UUID(int=index + 1))
            try:
                head = root
                for n in range(20):
                    head = commit_counter(db, s, head, n, key)
                    made[index].append(head)
                    assert db.state(head).get(s.counter, key) == n
                    assert db.blob(blob) == b"shared"
                    assert db.commit_exists(head)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        everything = {c for chain in made for c in chain}
        last = commit_counter(db, s, root, 99)
        with arrived:  # the events of the 81 commits are on their way
            assert arrived.wait_for(lambda: last in received, WAIT)
        sub.close()
        assert set(received) == everything | {last}
        assert db.commit_count() == 1 + 80 + 1


def random_history(db: Any, s: Schema, seed: int, commits: int) -> list[CommitId]:
    """A chain of random sets, updates, unions and deletes over a few documents."""
    import random

    rng = random.Random(seed)
    keys = [Key(s.k1.concept, uuid.UUID(int=i + 1)) for i in range(6)]
    head: CommitId | None = None
    chain = []
    for _ in range(commits):
        ms = CommitMutableState(db.state(head))
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.35:
                ms.set(s.nums, key, {rng.randint(0, 9) for _ in range(3)})
            elif roll < 0.55 and ms.has(s.nums, key):
                ms.union_in_set(s.nums, key, ".", {rng.randint(10, 19)})
            elif roll < 0.7:
                ms.delete(s.nums, key)
            elif roll < 0.85:
                ms.set(s.counter, key, rng.randint(-5, 5))
            else:
                ms.set(s.opt, key, None if rng.random() < 0.5 else s.point(1, 2))
        head = db.commit_mutations("random", ms)
        chain.append(head)
    return chain


def test_cached_states_agree_with_a_fresh_connection(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], s: Schema
) -> None:
    server = db_server([f"main={paths['main']}", "--no-durable"])
    with (
        CommitDatabaseRemote.connect(server.url, "main") as db,
        CommitDatabaseRemote.connect(server.url, "main") as fresh,
    ):
        chain = random_history(db, s, seed=7, commits=60)  # every state seeded by its commit
        atts = (s.nums, s.counter, s.opt)
        for c in chain:
            mine, theirs = db.state(c), fresh.state(c)
            for att in atts:
                assert mine.keys(att) == theirs.keys(att)
                for key in [Key(s.k1.concept, uuid.UUID(int=i + 1)) for i in range(6)]:
                    assert mine.has(att, key) == theirs.has(att, key)
                    assert mine.get(att, key) == theirs.get(att, key)
                assert mine.enumerate(att) == theirs.enumerate(att)
    assert server.stop() == 0
    with CommitDatabase.open(paths["main"], readonly=True) as local:
        with CommitDatabaseRemote.connect(
            db_server([f"main={paths['main']}"]).url, "main"
        ) as again:
            for c in chain[::7]:
                for att in (s.nums, s.counter, s.opt):
                    assert again.state(c).enumerate(att) == local.state(c).enumerate(att)


def test_a_call_timeout(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], s: Schema
) -> None:
    from rpc.errors import CallTimeoutError

    server = db_server([f"main={paths['main']}"], "-vv")
    holder = run_child(HOLD_WRITE_LOCK, str(paths["main"]))
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "holding"
        with CommitDatabaseRemote.connect(server.url, "main", timeout=0.5) as db:
            with pytest.raises(CallTimeoutError):  # the write cannot get the lock
                commit_counter(db, s, None, 1)
            assert db.commit_count() == 0  # the connection goes on
            holder.stdin.write("go\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
            head = commit_counter(db, s, None, 1)  # the same commit: stored once
            assert db.commit_count() == 1 and db.commit_exists(head)
    finally:
        holder.kill()
        holder.communicate(timeout=WAIT)


def test_blobs_larger_than_a_frame(
    db_server: Callable[..., DbServerProcess], paths: dict[str, Path], tuto: Tuto
) -> None:
    server = db_server([f"main={paths['main']}", f"notes={paths['notes']}", "--no-durable"])
    data = os.urandom(1 << 20) * 70  # 70 MiB: more than one 64 MiB frame
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        blob_id = db.create_blob(data)
        assert db.blob_info(blob_id).size == len(data)  # type: ignore[union-attr]
        assert db.blob(blob_id) == data
        assert db.read_blob(blob_id, 10, len(data) - 10) == data[-10:]
    with DatabaseRemote.connect(server.url, "notes") as flat:
        with pytest.raises(TransactionError):
            flat.create_blob(data)
        with flat.transaction():
            staged = flat.create_blob(data)
            assert flat.blob(staged) == data  # staged in the transaction
        assert flat.blob(staged) == data


# --------------------------------------------------------------------------------------------
# The blocking facade over the async remotes


def test_the_blocking_remotes_share_one_daemon_loop_thread(
    served: DbServerProcess, s: Schema
) -> None:
    db = CommitDatabaseRemote.connect(served.url, "main")
    received: list[Any] = []
    arrived = threading.Event()
    sub = db.subscribe(lambda event: (received.append(event), arrived.set()))
    try:
        (loop,) = [t for t in threading.enumerate() if t.name == "commitdb-loop"]
        assert loop.daemon and loop.is_alive()
        with CommitDatabaseRemote.connect(served.url, "main") as other:
            assert other._thread is db._thread and db._thread.thread is loop
            assert other.commit_count() == 0
        head = commit_counter(db, s, None, 1)
        st = db.state(head)
        assert db.state(head) is st  # one blocking state per cached async state
        assert st.get(s.counter, s.k1) == 1 and st.cache_hit_rate() == 1.0  # seeded: no fetch
        assert arrived.wait(WAIT)
    finally:
        db.close()
    assert loop.is_alive() and db.is_closed()  # the loop is shared: it outlives the remote
    with pytest.raises(RuntimeError, match="its own event loop thread"):
        db._thread.call(db._thread.call, lambda: None)  # would wait for itself
    sub.close()  # ended by the database's close: nothing to raise
    assert [e.commit_id for e in received] == [head]
    with pytest.raises(DatabaseClosedError):
        db.commit_count()
    with pytest.raises(StopIteration):
        sub.get(timeout=1)


def test_a_forgotten_blocking_remote_does_not_keep_the_process_alive(
    served: DbServerProcess,
) -> None:
    code = textwrap.dedent(
        """
        import sys
        from rpc.db_remote import CommitDatabaseRemote
        db = CommitDatabaseRemote.connect(sys.argv[1], "main")
        print(db.commit_count())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, served.url],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_async_commits_on_the_event_loop_and_streamed_blobs(
    served: DbServerProcess, s: Schema
) -> None:
    async def main() -> None:
        async with AsyncCommitDatabaseRemote.connect(served.url, "main") as db:
            head = None
            for i in range(3):  # each state is the previous commit's, seeded: no fetch
                ms = CommitMutableState(await db.state(head))
                ms.set(s.counter, s.k1, i)
                head = await db.commit_mutations(f"c{i}", ms)
                with pytest.raises(CommitError, match="already committed"):
                    await db.commit_mutations("again", ms)
            assert head is not None
            st = await db.state(head)
            assert await st.get(s.counter, s.k1) == 2
            assert (await db.commit_header(head)).label == "c2"
            assert await db.commit_count() == 3
            stream = await db.blob_stream(None, 6)
            assert await stream.write(b"abc") == 3
            assert await stream.write(memoryview(b"def")) == 3
            blob_id = await stream.close()
            assert await db.blob(blob_id) == b"abcdef"
            async with db.subscribe() as events:
                with pytest.raises(TimeoutError):
                    await events.next_event(0.05)
                assert events.pending() == 0

    anyio.run(main)
