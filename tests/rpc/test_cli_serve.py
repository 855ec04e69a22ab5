"""``commitdb serve``: arguments, listeners, names, logs and verbosity, refusals."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from commitdb.commit_database import CommitDatabase
from commitdb.database import Database
from rpc.cli import main
from rpc.db_remote import CommitDatabaseRemote, DatabaseRemote
from tests.commitdb.builders import Schema, schema
from tests.commitdb.database_contract import tuto_definitions
from tests.rpc.test_db_remote import DbServerProcess, commit_counter, db_server

__all__ = ("db_server",)  # the fixture, imported for this module's tests


@pytest.fixture
def s() -> Schema:
    return schema()


@pytest.fixture
def dbs(tmp_path: Path, s: Schema) -> tuple[Path, Path]:
    main_path, notes_path = tmp_path / "main.cdb", tmp_path / "notes.db"
    CommitDatabase.create(main_path, s.defs).close()
    Database.create(notes_path, tuto_definitions().definitions).close()
    return main_path, notes_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["serve", *args])
    return result.exit_code, result.output


def test_refusals(dbs: tuple[Path, Path], tmp_path: Path) -> None:
    main_path, _ = dbs
    code, out = invoke()
    assert code == 2 and "Missing argument 'DATABASES" in out
    code, out = invoke(str(tmp_path / "missing"))
    assert code == 1 and "neither a commitdb commit database nor a flat database" in out
    plain = tmp_path / "plain"
    plain.mkdir()
    code, out = invoke(f"x={plain}")
    assert code == 1 and "neither" in out
    code, out = invoke(f"a={main_path}", f"a={main_path}")
    assert code == 2 and "same name" in out
    code, out = invoke(f"={main_path}")
    assert code == 2 and "NAME=PATH" in out
    code, out = invoke(str(main_path), "--listen", "tls://127.0.0.1:0")
    assert code == 2 and "--tls-cert" in out
    code, out = invoke(str(main_path), "--listen", "ftp://host:1")
    assert code == 2 and "unknown scheme" in out
    code, out = invoke("--help")
    assert code == 0
    for option in ("--listen", "--token", "--tls-cert", "--client-ca", "--no-durable", "-v"):
        assert option in out


def test_names_listeners_and_default_quiet_logs(
    db_server: Callable[..., DbServerProcess],
    dbs: tuple[Path, Path],
    short_tmp: Path,
    s: Schema,
) -> None:
    main_path, notes_path = dbs
    socket_path = short_tmp / "db.sock"
    server = db_server(
        [str(main_path), f"flat={notes_path}"],
        listen=("tcp://127.0.0.1:0", f"unix://{socket_path}"),
    )
    tcp_url, unix_url = server.urls
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", tcp_url)
    assert unix_url == f"unix://{socket_path}"
    assert server.lines[:2] == [
        f"serving main, flat on {tcp_url}",
        f"serving main, flat on {unix_url}",
    ]
    for url in (tcp_url, unix_url):
        assert {d.name: d.kind for d in CommitDatabaseRemote.databases(url)} == {
            "main": "commit",
            "flat": "flat",
        }
    with CommitDatabaseRemote.connect(unix_url, "main") as db:
        commit_counter(db, s, None, 1)
    with DatabaseRemote.connect(tcp_url, "flat") as flat:
        assert not flat.in_transaction()
    assert server.stop() == 0
    assert server.lines[2:] == ["received SIGTERM, shutting down", "stopped"]  # quiet by default
    assert not socket_path.exists()  # the socket file is removed


def test_verbosity(
    db_server: Callable[..., DbServerProcess], dbs: tuple[Path, Path], s: Schema
) -> None:
    main_path, _ = dbs
    info = db_server([f"main={main_path}"], "-v")
    with CommitDatabaseRemote.connect(info.url, "main") as db, db.subscribe():
        commit_counter(db, s, None, 1)
    info.wait_for_line(r"disconnected")
    assert info.stop() == 0
    text = "\n".join(info.lines)
    assert re.search(r"INFO rpc\.db_server: serving commit database 'main' from ", text)
    assert re.search(
        r"INFO rpc\.db_server: \S+: client 'commitdb-python' connected from 127\.0\.0\.1:\d+", text
    )
    assert "subscribed to main (from sequence 0)" in text
    assert "DEBUG" not in text
    debug = db_server([f"main={main_path}"], "-vv")
    with CommitDatabaseRemote.connect(debug.url, "main") as db:
        commit_counter(db, s, db.last_commit_id(), 2)
    debug.wait_for_line(r"DEBUG rpc\.db_server: commit requested: 'set 2'")
    assert debug.stop() == 0


def test_refused_credentials_are_logged(
    db_server: Callable[..., DbServerProcess], dbs: tuple[Path, Path]
) -> None:
    main_path, _ = dbs
    server = db_server([f"main={main_path}"], "--token", "t0ken")
    with pytest.raises(Exception, match="credentials refused"):
        CommitDatabaseRemote.connect(server.url, "main", credentials="nope")
    server.wait_for_line(r"WARNING rpc\.db_server: refused a client from 127\.0\.0\.1:\d+")


def test_no_durable_and_subscriber_queue_options(
    db_server: Callable[..., DbServerProcess], dbs: tuple[Path, Path], s: Schema
) -> None:
    main_path, _ = dbs
    server = db_server(
        [f"main={main_path}"], "--no-durable", "--subscriber-queue", "2", "--poll-interval", "0.01"
    )
    with CommitDatabaseRemote.connect(server.url, "main") as db:
        head = commit_counter(db, s, None, 1)
    assert server.stop() == 0  # a clean stop flushes: the commit is on disk
    with CommitDatabase.open(main_path, readonly=True) as local:
        assert local.commit_ids() == {head}


def test_a_busy_port_is_an_error(
    db_server: Callable[..., DbServerProcess], dbs: tuple[Path, Path]
) -> None:
    main_path, _ = dbs
    first = db_server([f"main={main_path}"])
    code, out = invoke(f"other={main_path}", "--listen", first.url)
    assert code == 1 and "Error:" in out and "address" in out.lower()


# --------------------------------------------------------------------------------------------
# docs/remote-and-replication.md: the walkthrough runs as written

DOC = Path(__file__).resolve().parents[2] / "docs" / "remote-and-replication.md"


def doc_blocks() -> dict[str, str]:
    """The Python blocks of the guide, by the file name on their first line."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return {b.splitlines()[0].removeprefix("# ").split()[0]: b for b in blocks}


def run_block(code: str, url: str) -> list[str]:
    """Run a block with `print` collecting its lines (thread-safe, unlike redirecting
    sys.stdout)."""
    lines: list[str] = []

    def collect(*args: object) -> None:
        lines.append(" ".join(str(a) for a in args))

    exec(compile(code.replace("tcp://127.0.0.1:54321", url), "doc", "exec"), {"print": collect})
    return lines


def test_the_walkthrough_runs(
    db_server: Callable[..., DbServerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    text = DOC.read_text(encoding="utf-8")
    (schema_text,) = re.findall(r"```\n(namespace Shop .*?)```", text, flags=re.S)
    Path("inventory.dsm").write_text(schema_text)
    runner = CliRunner()
    created = runner.invoke(
        main,
        ["init", "server/inventory.cdb", "inventory.dsm", "--documentation", "warehouse stock"],
    )
    assert created.exit_code == 0, created.output
    assert "created commit database server/inventory.cdb (1 attachments" in created.output
    assert runner.invoke(main, ["init", "replica/inventory.cdb"]).exit_code == 0
    server = db_server([f"inventory={tmp_path / 'server' / 'inventory.cdb'}"], "-v")
    blocks = doc_blocks()

    assert run_block(blocks["client.py"], server.url) == [
        "inventory commit warehouse stock",
        "Stock(name='bolt', count=70, tags={'metal'})",
        "['receive bolts', 'ship 30 bolts']",
    ]
    synced = runner.invoke(
        main, ["sync", "replica/inventory.cdb", f"{server.url}#inventory", "--max-rounds", "2"]
    )
    assert synced.exit_code == 0, synced.output
    assert "round 1: fetch: 2 commits" in synced.output
    assert "round 2: up to date" in synced.output
    assert run_block(blocks["read_replica.py"], server.url) == ["bolt 70"]

    watched: list[str] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            watched.extend(run_block(blocks["watch.py"], server.url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    mark = len(server.lines)
    watcher = threading.Thread(target=watch)
    watcher.start()
    server.wait_for_line(r"subscribed to inventory", mark)
    run_block(blocks["more_commits.py"], server.url)
    watcher.join(60)
    assert errors == [] and not watcher.is_alive()
    assert watched[0] == "watching from commit number 2"
    seqs_and_labels = [(seq, label) for seq, _, label in (x.split(maxsplit=2) for x in watched[1:])]
    assert seqs_and_labels == [("2", "restock"), ("3", "stop watching")]
    run_block(blocks["callback.py"], server.url)


def test_failed_tls_handshakes_are_one_warning_line(
    db_server: Callable[..., DbServerProcess], dbs: tuple[Path, Path], tmp_path: Path
) -> None:
    from rpc.transports import client_ssl_context
    from tests.rpc.tls import make_pki

    main_path, _ = dbs
    pki = make_pki(tmp_path)
    server = db_server(
        [f"main={main_path}"],
        *("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)),
        *("--client-ca", str(pki.ca)),
        listen=("tls://127.0.0.1:0",),
    )
    url = server.urls[0]
    no_certificate = client_ssl_context(str(pki.ca))
    with pytest.raises(Exception, match="TLS refusal"):
        CommitDatabaseRemote.connect(url, "main", ssl_context=no_certificate)
    line = server.wait_for_line(r"TLS handshake with 127\.0\.0\.1:\d+ failed")
    assert "WARNING rpc.server:" in line and "certificate" in line
    with pytest.raises(Exception, match="closed the connection"):  # plain TCP on a TLS port
        CommitDatabaseRemote.connect(url.replace("tls://", "tcp://"), "main")
    start = server.lines.index(line) + 1
    line = server.wait_for_line(r"TLS handshake with 127\.0\.0\.1:\d+ failed", start)
    assert "WARNING rpc.server:" in line and "not a TLS client?" in line
    assert server.stop() == 0
    assert not [x for x in server.lines if "ERROR" in x or "Traceback" in x]
