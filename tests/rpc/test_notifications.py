"""Live commit notifications over real sockets, from real ``commitdb serve`` processes.

Events arrive for commits written through the server, through another server process on the
same file, and by a local process writing the file directly; the blocking facade delivers
them to an iterator or a callback. A subscriber that does not read never stalls a writer: it
is told what it missed (and can resync with ``commits_since``), then resumes. Unsubscribing,
a subscriber that disconnects or is killed, and a server that dies are handled.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.ids import CommitId
from rpc.db_remote import (
    AsyncCommitDatabaseRemote,
    CommitDatabaseRemote,
    CommitEvent,
    MissedEvents,
)
from rpc.errors import ConnectionClosedError
from tests.commitdb.builders import Schema, schema
from tests.rpc.test_db_remote import (
    WAIT,
    DbServerProcess,
    commit_counter,
    db_server,
    run_child,
)

__all__ = ("db_server",)  # the fixture, imported for this module's tests


@pytest.fixture
def s() -> Schema:
    return schema()


@pytest.fixture
def path(tmp_path: Path, s: Schema) -> Path:
    p = tmp_path / "main.cdb"
    CommitDatabase.create(p, s.defs).close()
    return p


@pytest.fixture
def server(db_server: Callable[..., DbServerProcess], path: Path) -> DbServerProcess:
    return db_server([f"main={path}"], "-v")


def chain(db: CommitDatabaseRemote, s: Schema, base: CommitId | None, count: int) -> list[CommitId]:
    """`count` commits, each on the previous one."""
    out = []
    for i in range(count):
        base = commit_counter(db, s, base, i)
        out.append(base)
    return out


def test_events_for_commits_through_the_server(server: DbServerProcess, s: Schema) -> None:
    with (
        CommitDatabaseRemote.connect(server.url, "main") as sub_db,
        CommitDatabaseRemote.connect(server.url, "main") as writer,
    ):
        before = chain(writer, s, None, 2)  # not announced: they precede the subscription
        with sub_db.subscribe() as events:
            assert events.first_seq == 2
            made = chain(writer, s, before[-1], 5)
            got = [events.get(timeout=WAIT) for _ in made]
        assert all(isinstance(e, CommitEvent) for e in got)
        assert [e.commit_id for e in got] == made
        assert [e.seq for e in got] == [2, 3, 4, 5, 6]
        for e in got:
            assert e.database == "main"
            assert e.header == writer.commit_header(e.commit_id)  # with its header
        assert writer.commits_since(2) == [(e.seq, e.commit_id) for e in got]


def test_events_from_another_server_on_the_same_file(
    db_server: Callable[..., DbServerProcess], server: DbServerProcess, path: Path, s: Schema
) -> None:
    other = db_server([f"main={path}"])
    with CommitDatabaseRemote.connect(server.url, "main") as sub_db, sub_db.subscribe() as events:
        with CommitDatabaseRemote.connect(other.url, "main") as writer:
            made = chain(writer, s, None, 3)
        got = [events.get(timeout=WAIT) for _ in made]
        assert [e.commit_id for e in got if isinstance(e, CommitEvent)] == made


LOCAL_WRITER = """
    import sys
    from commitdb.commit_database import CommitDatabase
    from commitdb.mutable_state import CommitMutableState
    from tests.commitdb.builders import schema

    s = schema()
    with CommitDatabase.open(sys.argv[1]) as db:
        head = db.last_commit_id()
        for i in range(int(sys.argv[2])):
            ms = CommitMutableState(db.state(head))
            ms.set(s.counter, s.k2, i)
            head = db.commit_mutations(f"local {i}", ms)
            print(head.hex(), flush=True)
"""


def test_events_from_a_local_process_writing_the_file(
    server: DbServerProcess, path: Path, s: Schema
) -> None:
    with CommitDatabaseRemote.connect(server.url, "main") as sub_db, sub_db.subscribe() as events:
        writer = run_child(LOCAL_WRITER, str(path), "4")
        out, err = writer.communicate(timeout=WAIT)
        assert writer.returncode == 0, err
        made = [CommitId.from_hex(line) for line in out.split()]
        got = [events.get(timeout=WAIT) for _ in made]
        assert [e.commit_id for e in got if isinstance(e, CommitEvent)] == made
        assert [e.header.label for e in got if isinstance(e, CommitEvent)] == [
            f"local {i}" for i in range(4)
        ]


def test_callback_delivery(server: DbServerProcess, s: Schema) -> None:
    received: queue.Queue[CommitEvent | MissedEvents] = queue.Queue()
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        sub = db.subscribe(received.put)
        try:
            made = chain(db, s, None, 5)  # the same connection calls while the helper reads
            got = [received.get(timeout=WAIT) for _ in made]
        finally:
            sub.close()
        assert [e.commit_id for e in got if isinstance(e, CommitEvent)] == made

        called = threading.Event()

        def fail(event: CommitEvent | MissedEvents) -> None:
            called.set()
            raise RuntimeError(f"callback failed on {event}")

        failing = db.subscribe(fail)
        commit_counter(db, s, made[-1], 99)
        assert called.wait(WAIT)
        with pytest.raises(RuntimeError, match="callback failed"):
            failing.close()  # the callback's exception is raised again here
        assert db.commit_count() == 6  # the connection is unharmed


def check_coverage(
    items: list[CommitEvent | MissedEvents], first: int, made: list[CommitId]
) -> int:
    """Every commit is announced or counted as missed, in order, without overlap; a missed
    range is what ``commits_since`` lists. Returns the next sequence expected."""
    seq = first
    for item in items:
        if isinstance(item, CommitEvent):
            assert (item.seq, item.commit_id) == (seq, made[seq - first])
            seq += 1
        else:
            assert item.first_seq == seq and item.count > 0
            seq += item.count
    return seq


def test_a_slow_subscriber_does_not_stall_writers_and_is_told_what_it_missed(
    db_server: Callable[..., DbServerProcess], path: Path, s: Schema
) -> None:
    server = db_server([f"main={path}"], "--subscriber-queue", "8")
    with (
        CommitDatabaseRemote.connect(server.url, "main") as sub_db,
        CommitDatabaseRemote.connect(server.url, "main") as writer,
    ):
        with sub_db.subscribe(window=4) as events:
            first = events.first_seq
            made = chain(writer, s, None, 40)  # the subscriber reads nothing meanwhile
            assert writer.commit_count() == 40  # every write went through
            assert events.pending() <= 4  # the client buffers at most a window
            items: list[CommitEvent | MissedEvents] = []
            while check_coverage(items, first, made) < first + 40:
                items.append(events.get(timeout=WAIT))
            notices = [i for i in items if isinstance(i, MissedEvents)]
            assert notices  # 40 commits > window (4) + server queue (8): some were missed
            for notice in notices:  # resync: the missed commits are listed by commits_since
                missed = writer.commits_since(notice.first_seq, notice.count)
                start = notice.first_seq - first
                assert [c for _, c in missed] == made[start : start + notice.count]
            more = chain(writer, s, made[-1], 3)  # then it resumes
            resumed = [events.get(timeout=WAIT) for _ in more]
            assert [e.commit_id for e in resumed if isinstance(e, CommitEvent)] == more


def test_unsubscribe(server: DbServerProcess, s: Schema) -> None:
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        sub = db.subscribe()
        mark = len(server.lines)
        head = chain(db, s, None, 1)[0]
        assert sub.get(timeout=WAIT).commit_id == head  # type: ignore[union-attr]
        sub.close()
        server.wait_for_line(r"unsubscribed from main", mark)
        with pytest.raises(StopIteration):
            sub.get(timeout=WAIT)
        assert list(sub) == []
        sub.close()  # idempotent
        head = commit_counter(db, s, head, 1)  # writes go on; a new subscription works
        with db.subscribe() as again:
            last = commit_counter(db, s, head, 2)
            assert again.get(timeout=WAIT).commit_id == last  # type: ignore[union-attr]


SUBSCRIBER = """
    import sys
    from rpc.db_remote import CommitDatabaseRemote
    db = CommitDatabaseRemote.connect(sys.argv[1], "main")
    sub = db.subscribe(window=2)
    print("subscribed", flush=True)
    sys.stdin.readline()  # reads nothing; killed here
"""


def test_a_killed_subscriber_is_cleaned_up(server: DbServerProcess, s: Schema) -> None:
    child = run_child(SUBSCRIBER, server.url)
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "subscribed"
        mark = len(server.lines)
        with CommitDatabaseRemote.connect(server.url, "main") as db, db.subscribe() as events:
            head = chain(db, s, None, 3)[-1]
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=WAIT)
            server.wait_for_line(r"disconnected", mark)
            made = chain(db, s, head, 20)  # nothing waits for the dead subscriber
            got = [events.get(timeout=WAIT) for _ in range(23)]
            assert [e.commit_id for e in got[3:] if isinstance(e, CommitEvent)] == made
    finally:
        child.kill()
        child.communicate(timeout=WAIT)
    assert not any("Traceback" in line or "ERROR" in line for line in server.lines)


def test_a_dead_server_ends_the_subscription_with_an_error(
    server: DbServerProcess, s: Schema
) -> None:
    db = CommitDatabaseRemote.connect(server.url, "main")
    try:
        with db.subscribe() as events:
            head = chain(db, s, None, 1)[0]
            assert events.get(timeout=WAIT).commit_id == head  # type: ignore[union-attr]
            server.kill()
            with pytest.raises(ConnectionClosedError):
                events.get(timeout=WAIT)
    finally:
        db.close()


def test_async_subscription_with_a_slow_consumer(
    db_server: Callable[..., DbServerProcess], path: Path, s: Schema
) -> None:
    server = db_server([f"main={path}"], "--subscriber-queue", "3")
    with CommitDatabaseRemote.connect(server.url, "main") as writer:
        head = chain(writer, s, None, 1)[0]

        async def main() -> tuple[int, list[CommitId], list[CommitEvent | MissedEvents]]:
            async with AsyncCommitDatabaseRemote.connect(server.url, "main") as db:
                async with db.subscribe(window=2) as events:
                    made = await anyio.to_thread.run_sync(chain, writer, s, head, 12)
                    items: list[CommitEvent | MissedEvents] = []
                    while check_coverage(items, events.first_seq, made) < 13:
                        items.append(await events.receive())
                    return events.first_seq, made, items

        first, made, items = anyio.run(main)
    assert first == 1
    assert any(isinstance(i, MissedEvents) for i in items)  # 12 > window 2 + queue 3
    assert check_coverage(items, first, made) == 13
