"""Faults, with real ``commitdb serve`` processes: a server killed mid-commit, a client killed
mid-call, garbage bytes on the socket, and a graceful SIGTERM/SIGINT.

A commit id is the hash of its parent and program, so a client knows the id of the commit it
is sending before the server answers: after a crash, the database must hold every commit that
was acknowledged and nothing else but (possibly) the one in flight.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitKind, compute_commit_id
from commitdb.database import Database
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from rpc.db_remote import CommitDatabaseRemote, CommitEvent, DatabaseRemote
from rpc.errors import ConnectionClosedError
from rpc.framing import FrameParser, encode_frame
from rpc.packets import (
    PROTOCOL_VERSION,
    Error,
    Hello,
    Result,
    decode_packet,
    encode_hello,
    encode_request,
)
from tests.commitdb.builders import Schema, schema
from tests.commitdb.database_contract import Tuto, tuto_definitions
from tests.rpc.test_db_remote import (
    HOLD_WRITE_LOCK,
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
def tuto() -> Tuto:
    return tuto_definitions()


@pytest.fixture
def path(tmp_path: Path, s: Schema) -> Path:
    p = tmp_path / "main.cdb"
    CommitDatabase.create(p, s.defs).close()
    return p


@pytest.fixture
def flat_path(tmp_path: Path, tuto: Tuto) -> Path:
    p = tmp_path / "notes.db"
    Database.create(p, tuto.definitions).close()
    return p


def programs(s: Schema, count: int) -> list[bytes]:
    """The programs ``counter[k1] = i`` (a program does not depend on its base)."""
    out = []
    with CommitDatabase.create_in_memory(s.defs) as scratch:
        for i in range(count):
            ms = CommitMutableState(scratch.initial_state())
            ms.set(s.counter, s.k1, i)
            out.append(scratch.commit_data(scratch.commit_mutations("p", ms)).program)
    return out


def mutations_id(base: CommitId | None, program: bytes) -> CommitId:
    return compute_commit_id(
        base or CommitId.INVALID, CommitKind.MUTATIONS, CommitId.INVALID, program
    )


# --------------------------------------------------------------------------------------------
# The server dies


def test_server_killed_mid_commit_keeps_exactly_the_acknowledged_commits(
    db_server: Callable[..., DbServerProcess], path: Path, s: Schema
) -> None:
    server = db_server([f"main={path}"], "-vv")
    progs = programs(s, 11)
    acked: list[CommitId] = []
    db = CommitDatabaseRemote.connect(server.url, "main")
    head: CommitId | None = None
    for program in progs[:10]:
        head = db.commit_program("acked", head, program)
        acked.append(head)
    holder = run_child(HOLD_WRITE_LOCK, str(path))  # the next commit cannot finish
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "holding"
        outcome: list[Any] = []

        def send() -> None:
            try:
                outcome.append(db.commit_program("in flight", head, progs[10]))
            except BaseException as exc:  # checked below
                outcome.append(exc)

        mark = len(server.lines)
        t = threading.Thread(target=send)
        t.start()
        server.wait_for_line(r"commit requested: 'in flight'", mark)  # mid-commit
        server.kill()
        t.join(WAIT)
        assert len(outcome) == 1 and isinstance(outcome[0], ConnectionClosedError)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
    finally:
        holder.kill()
        holder.communicate(timeout=WAIT)
        db.close()
    restarted = db_server([f"main={path}"])
    with CommitDatabaseRemote.connect(restarted.url, "main") as again:
        assert again.commit_ids() == set(acked)
        assert again.commit_ids_in_order() == acked
        assert again.state(acked[-1]).get(s.counter, s.k1) == 9
        assert not again.commit_exists(mutations_id(head, progs[10]))


def test_server_killed_during_a_burst_loses_no_acknowledged_commit(
    db_server: Callable[..., DbServerProcess], path: Path, s: Schema
) -> None:
    server = db_server([f"main={path}"])
    progs = programs(s, 400)
    acked: list[CommitId] = []
    attempted: list[CommitId] = []
    failure: list[BaseException] = []
    enough = threading.Event()

    def burst() -> None:
        head: CommitId | None = None
        with CommitDatabaseRemote.connect(server.url, "main") as db:
            try:
                for i, program in enumerate(progs):
                    attempted.append(mutations_id(head, program))
                    head = db.commit_program(f"c{i}", head, program)
                    assert head == attempted[-1]  # the client knew the id beforehand
                    acked.append(head)
                    if len(acked) == 30:
                        enough.set()
            except ConnectionClosedError as exc:
                failure.append(exc)
            finally:
                enough.set()

    t = threading.Thread(target=burst)
    t.start()
    assert enough.wait(WAIT)
    server.kill()  # while the client is committing as fast as it can
    t.join(WAIT)
    assert failure, "the burst outlived the server"
    with CommitDatabase.open(path, readonly=True) as local:  # after the crash, on disk
        present = local.commit_ids()
    assert set(acked) <= present
    assert present - set(acked) <= {attempted[-1]}  # at most the one in flight
    restarted = db_server([f"main={path}"])
    with CommitDatabaseRemote.connect(restarted.url, "main") as again:
        assert again.commit_ids() == present
        assert again.commit_count() in (len(acked), len(acked) + 1)


# --------------------------------------------------------------------------------------------
# A client dies


FLAT_CLIENT = """
    import sys
    from rpc.db_remote import DatabaseRemote
    from tests.commitdb.database_contract import tuto_definitions

    t = tuto_definitions()
    db = DatabaseRemote.connect(sys.argv[1], "notes")
    db.begin_transaction()
    for i in range(50):
        db.set(t.login_att, t.login_att.create_key(), t.login(nickname=f"n{i}"))
    stream = db.blob_stream()
    stream.write(b"half a blob")
    print("ready", flush=True)
    while True:  # killed in the middle of one of these calls
        db.enumerate(t.login_att)
"""


def test_client_killed_mid_call_rolls_back_its_transaction(
    db_server: Callable[..., DbServerProcess], flat_path: Path, path: Path, s: Schema, tuto: Tuto
) -> None:
    server = db_server([f"main={path}", f"notes={flat_path}"], "-v")
    with DatabaseRemote.connect(server.url, "notes") as watcher:
        child = run_child(FLAT_CLIENT, server.url)
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            assert watcher.keys(tuto.login_att) == set()  # not committed: invisible
            mark = len(server.lines)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=WAIT)
        finally:
            child.kill()
            child.communicate(timeout=WAIT)
        server.wait_for_line(r"disconnected", mark)
        assert watcher.keys(tuto.login_att) == set()
        assert watcher.blob_ids() == set()
        key = tuto.login_att.create_key()
        with watcher.transaction():  # the server keeps serving; writes go through
            watcher.set(tuto.login_att, key, tuto.login(nickname="after"))
        assert watcher.keys(tuto.login_att) == {key}
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        commit_counter(db, s, None, 1)
    assert server.stop() == 0
    with Database.open(flat_path, readonly=True) as local:
        assert local.keys(tuto.login_att) == {key}


COMMIT_CLIENT = """
    import sys
    from commitdb.mutable_state import CommitMutableState
    from rpc.db_remote import CommitDatabaseRemote
    from tests.commitdb.builders import schema

    s = schema()
    db = CommitDatabaseRemote.connect(sys.argv[1], "main")
    head = None
    for i in range(100000):
        ms = CommitMutableState(db.state(head))
        ms.set(s.counter, s.k2, i)
        head = db.commit_mutations(f"child {i}", ms)
        if i == 20:
            print("ready", flush=True)
"""


def test_client_killed_mid_commit_leaves_the_server_serving(
    db_server: Callable[..., DbServerProcess], path: Path, s: Schema
) -> None:
    server = db_server([f"main={path}"], "-v")
    with CommitDatabaseRemote.connect(server.url, "main") as db, db.subscribe() as events:
        child = run_child(COMMIT_CLIENT, server.url)
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            mark = len(server.lines)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=WAIT)
        finally:
            child.kill()
            child.communicate(timeout=WAIT)
        # logged once the connection's requests ended: the commit in flight has settled
        server.wait_for_line(r"disconnected", mark)
        assert db.commit_count() >= 21
        mine = commit_counter(db, s, None, 5)  # the server goes on serving
        seen: set[CommitId] = set()
        while mine not in seen:
            event = events.get(timeout=WAIT)
            if isinstance(event, CommitEvent):
                seen.add(event.commit_id)
        # the child's commits (the one in flight when it died may or may not have landed:
        # it could not know) form one chain; its tip replays to its value
        theirs = db.commit_ids() - {mine}
        tip = max(theirs, key=lambda c: len(db.linearization(c)))
        assert set(db.linearization(tip)) == theirs
        assert db.state(tip).get(s.counter, s.k2) == len(theirs) - 1
        assert db.head_commit_ids() == {tip, mine}


# --------------------------------------------------------------------------------------------
# Garbage on the socket


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock


def _read_packets(sock: socket.socket, parser: FrameParser, count: int) -> list[Any]:
    """Read `count` packets, or fewer if the server closes the connection."""
    out: list[Any] = []
    while len(out) < count:
        data = sock.recv(65536)
        if not data:
            break
        out.extend(decode_packet(f) for f in parser.feed(data))
    return out


def _until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_garbage_bytes_do_not_disturb_other_clients(
    db_server: Callable[..., DbServerProcess], path: Path, s: Schema
) -> None:
    server = db_server([f"main={path}"])
    with CommitDatabaseRemote.connect(server.url, "main") as db, db.subscribe() as events:
        head = commit_counter(db, s, None, 0)

        # 1. garbage instead of a hello: refused, connection closed
        with _raw(server.url) as sock:
            sock.sendall(os.urandom(64) + b"\x00\x00\x00\x03abc")
            _until_closed(sock)

        # 2. a valid handshake, then malformed packets: answered with errors, still served
        with _raw(server.url) as sock:
            parser = FrameParser()
            sock.sendall(encode_frame(encode_hello(PROTOCOL_VERSION, {"client": "raw"})))
            (welcome,) = _read_packets(sock, parser, 1)
            assert isinstance(welcome, Hello) and welcome.welcome
            sock.sendall(encode_frame(b"\xc1 not msgpack") + encode_frame(b"\x93\x09\x01\x02"))
            sock.sendall(encode_frame(encode_request(7, "cdb:main", "commit_count", [])))
            packets = _read_packets(sock, parser, 3)
            assert [type(p) for p in packets] == [Error, Error, Result]
            assert packets[2].id == 7 and packets[2].value == 1
            sock.sendall(encode_frame(encode_request(8, "cdb:main", "commit_header", [b"x"])))
            sock.sendall(encode_frame(encode_request(9, "cdb:main", "no_such_method", [])))
            errors = _read_packets(sock, parser, 2)
            assert [(p.id, p.code) for p in errors] == [(8, -32602), (9, -32601)]

        # 3. a frame announcing 4 GiB: refused before anything is buffered, closed
        with _raw(server.url) as sock:
            parser = FrameParser()
            sock.sendall(encode_frame(encode_hello(PROTOCOL_VERSION, {"client": "raw"})))
            _read_packets(sock, parser, 1)
            sock.sendall(struct.pack(">I", 0xFFFFFFFF) + os.urandom(1024))
            tail = _until_closed(sock)
            (err,) = [decode_packet(f) for f in parser.feed(tail)]
            assert isinstance(err, Error) and err.code == -32600

        # 4. a hello that stops half-way, then the peer vanishes
        sock = _raw(server.url)
        sock.sendall(encode_frame(encode_hello(PROTOCOL_VERSION, {"client": "raw"}))[:5])
        sock.close()

        # meanwhile and afterwards, the well-behaved client is served and notified
        head = commit_counter(db, s, head, 1)
        got: list[CommitId] = []
        while head not in got:
            event = events.get(timeout=WAIT)
            if isinstance(event, CommitEvent):
                got.append(event.commit_id)
        assert db.state(head).get(s.counter, s.k1) == 1
    assert server.proc.poll() is None
    assert server.stop() == 0


# --------------------------------------------------------------------------------------------
# Graceful shutdown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown(
    db_server: Callable[..., DbServerProcess],
    path: Path,
    flat_path: Path,
    s: Schema,
    tuto: Tuto,
    sig: signal.Signals,
) -> None:
    server = db_server([f"main={path}", f"notes={flat_path}"])
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        heads = [commit_counter(db, s, None, 0)]
        for i in range(1, 10):
            heads.append(commit_counter(db, s, heads[-1], i))
    flat = DatabaseRemote.connect(server.url, "notes")
    key = tuto.login_att.create_key()
    with flat.transaction():
        flat.set(tuto.login_att, key, tuto.login(nickname="kept"))
    flat.begin_transaction()  # left open at shutdown: rolled back
    flat.set(tuto.login_att, tuto.login_att.create_key(), tuto.login(nickname="dropped"))
    assert server.stop(sig) == 0
    server.wait_for_line(rf"received {sig.name}, shutting down")
    server.wait_for_line(r"^stopped$")
    with pytest.raises(ConnectionClosedError):
        flat.commit()
    flat.close()
    with CommitDatabase.open(path, readonly=True) as local:
        assert local.commit_ids_in_order() == heads
        assert local.state(heads[-1]).get(s.counter, s.k1) == 9
    with Database.open(flat_path, readonly=True) as local_flat:
        assert [d.nickname for _, d in local_flat.enumerate(tuto.login_att)] == ["kept"]


def test_sigterm_lets_a_commit_in_progress_finish(
    db_server: Callable[..., DbServerProcess], path: Path, s: Schema
) -> None:
    server = db_server([f"main={path}"], "-vv")
    db = CommitDatabaseRemote.connect(server.url, "main")
    base = commit_counter(db, s, None, 0)
    holder = run_child(HOLD_WRITE_LOCK, str(path))
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "holding"
        outcome: list[Any] = []
        mark = len(server.lines)
        t = threading.Thread(target=lambda: outcome.append(commit_counter(db, s, base, 1)))
        t.start()
        server.wait_for_line(r"commit requested", mark)
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line(r"received SIGTERM", mark)
        holder.stdin.write("go\n")  # the commit can finish now: it is acknowledged
        holder.stdin.flush()
        t.join(WAIT)
        (head,) = outcome
        # it stops by itself (a second SIGTERM once its handler is gone would kill it)
        assert server.proc.wait(timeout=WAIT) == 0
        assert server.stop() == 0
    finally:
        holder.kill()
        holder.communicate(timeout=WAIT)
        db.close()
    with CommitDatabase.open(path, readonly=True) as local:
        assert local.commit_ids() == {base, head}
        assert local.state(head).get(s.counter, s.k1) == 1
