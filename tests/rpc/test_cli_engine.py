"""The engine commands (init, log, show, get, reduce-heads, flatten, sync), run as real
processes, and the JSON projection behind ``get``."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.database import Database
from commitdb.dsm import load_text
from commitdb.ids import BlobId, CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.types import FLOAT
from commitdb.values import Typed, XArray
from rpc.jsonvalues import commitdb_to_json, dumps
from tests.commitdb.builders import SCHEMA, Graph, Schema, build, merge, schema
from tests.commitdb.test_sync import CONFLICT, assert_consistent, assert_same_states
from tests.rpc.test_sync_remote import serve_process

ROOT = Path(__file__).resolve().parents[2]
K1 = "00000000-0000-4000-8000-0000000000a1"
K3 = "00000000-0000-4000-8000-0000000000a3"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpc", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(*args: str | Path) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str | Path) -> str:
    """Run a command expected to fail cleanly: status 1, one message, no traceback."""
    result = run(*args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    return result.stderr


@pytest.fixture
def s() -> Schema:
    return schema()


@pytest.fixture
def dsm(tmp_path: Path) -> Path:
    path = tmp_path / "schema.dsm"
    path.write_text(SCHEMA)
    return path


def populate(path: Path, s: Schema) -> tuple[Graph, BlobId]:
    """r; a1 and b1 on r (two heads), with a structure holding a blob, an xarray, a set."""
    with CommitDatabase.open(path) as db:
        blob = db.create_blob(b"\x00\x01picture")
        rec = s.doc(s.rec)
        g = build(
            db,
            {
                "root": (
                    None,
                    rec.set(
                        s.rec_value(
                            name="first [bold]",
                            tags={3, 1, 2},
                            scores={"b": 2, "a": 1},
                            items=["x", "y"],
                            maybe=s.point(1, 2),
                            picture=blob,
                        )
                    ),
                    s.doc(s.nums, s.special).set({7}),
                ),
                "a1": ("root", rec.update(".count", 5), s.doc(s.nums).set({1, 2})),
                "b1": ("root", rec.update(".name", "second")),
            },
        )
    return g, blob


@pytest.fixture
def db(tmp_path: Path, dsm: Path, s: Schema) -> tuple[Path, Graph, BlobId]:
    path = tmp_path / "db"
    ok("init", path, dsm)
    g, blob = populate(path, s)
    return path, g, blob


# --------------------------------------------------------------------------------------------
# init


def test_init_creates_commit_and_flat_databases(tmp_path: Path, dsm: Path, s: Schema) -> None:
    counts = s.defs.counts()
    summary = (
        f"({counts['attachments']} attachments, {counts['concepts']} concepts, "
        f"{counts['structures']} structures)"
    )
    out = ok("init", tmp_path / "c", dsm, "--documentation", "my data")
    assert out == f"created commit database {tmp_path / 'c'} {summary}\n"
    with CommitDatabase.open(tmp_path / "c") as c:
        assert c.documentation() == "my data"
        assert c.definitions_hexdigest() == s.defs.hexdigest()
        assert c.commit_ids() == set()
    out = ok("init", tmp_path / "f", tmp_path, "--flat")  # a directory: its *.dsm files
    assert out == f"created flat database {tmp_path / 'f'} {summary}\n"
    assert Database.is_compatible(tmp_path / "f") and not CommitDatabase.is_compatible(
        tmp_path / "f"
    )
    assert ok("init", tmp_path / "empty").endswith("(0 attachments, 0 concepts, 0 structures)\n")


def test_init_refusals(tmp_path: Path, dsm: Path) -> None:
    ok("init", tmp_path / "c", dsm)
    assert f"{tmp_path / 'c'} already exists" in fails("init", tmp_path / "c", dsm)
    assert "cannot read file" in fails("init", tmp_path / "d", tmp_path / "missing.dsm")
    bad = tmp_path / "bad.dsm"
    bad.write_text(
        "namespace A {11111111-1111-1111-1111-111111111111} {\nstruct S { Vectr v; };\n};\n"
    )
    assert f"{bad}:2:" in fails("init", tmp_path / "e", bad)
    assert not (tmp_path / "e").exists()


# --------------------------------------------------------------------------------------------
# log and show


def test_log_lists_commits_in_creation_order_and_marks_heads(
    db: tuple[Path, Graph, BlobId],
) -> None:
    path, g, _ = db
    lines = ok("log", path).splitlines()
    assert lines[0].split()[:8] == [
        "#",
        "commit",
        "kind",
        "label",
        "author",
        "time",
        "parent",
        "target",
    ]
    rows = lines[1:4]
    assert [r.split()[0] for r in rows] == ["0", "*", "*"]
    for row, name in zip(rows, ["root", "a1", "b1"], strict=True):
        assert g[name].hex()[:12] in row and "Mutations" in row
    assert " a1 " in rows[1] and " b1 " in rows[2]
    assert rows[1].split()[-2] == g["root"].hex()[:12]  # the parent column
    assert lines[-1] == "3 commits, 2 heads"
    limited = ok("log", path, "--limit", "1").splitlines()
    assert len(limited) == 3 and g["b1"].hex()[:12] in limited[1]


def test_show_prints_the_header_and_one_opcode_per_line(
    db: tuple[Path, Graph, BlobId], s: Schema
) -> None:
    path, g, _ = db
    out = ok("show", path, g["a1"].hex()[:10]).splitlines()
    assert out[0] == f"commit {g['a1'].hex()}"
    assert out[1:3] == ["kind   Mutations", "label  a1"] and out[3].startswith("author ")
    assert f"parent {g['root'].hex()}" in out and "target -" in out and "head   yes" in out
    assert "2 documents, 2 opcodes" in out
    body = out[out.index("2 documents, 2 opcodes") + 1 :]
    assert body == [
        f"T::Doc.rec T::Doc {K1}",
        "  DOCUMENT_UPDATE, .count, 5",
        f"T::Doc.nums T::Doc {K1}",
        "  DOCUMENT_SET, {1, 2}",
    ]
    root = ok("show", path, g["root"].hex()).splitlines()
    assert "head   no" in root and f"T::Doc.nums T::Special {K3}" in root


def test_show_resolves_last_head_and_prefixes(db: tuple[Path, Graph, BlobId], s: Schema) -> None:
    path, g, _ = db
    assert ok("show", path, "last").splitlines()[0] == f"commit {g['b1'].hex()}"
    assert "'head' is ambiguous: 2 heads" in fails("show", path, "head")
    with CommitDatabase.open(path) as d:
        head = d.reduce_heads()
        assert head is not None
        for i in range(20):  # enough commits for two to share a first hex digit
            ms = CommitMutableState(d.state(head))
            ms.set(s.counter, s.k1, i)
            head = d.commit_mutations(f"c{i}", ms)
        ids = d.commit_ids()
    assert ok("show", path, "head").splitlines()[0] == f"commit {head.hex()}"
    digit, n = Counter(c.hex()[0] for c in ids).most_common(1)[0]
    assert n >= 2
    assert f"the prefix {digit} is ambiguous ({n} commits)" in fails("show", path, digit)
    unused = next(
        p for p in (f"{i:02x}" for i in range(256)) if not any(c.hex().startswith(p) for c in ids)
    )
    assert f"unknown commit {unused}" in fails("show", path, unused)
    assert "is not a commit" in fails("show", path, "zz")
    assert f"unknown commit {'0' * 64}" in fails("show", path, "0" * 64)


def test_show_a_merge_has_no_program(tmp_path: Path, dsm: Path, s: Schema) -> None:
    path = tmp_path / "db"
    ok("init", path, dsm)
    with CommitDatabase.open(path) as d:
        g = build(
            d,
            {
                "r": (None, s.doc(s.counter).set(1)),
                "x": ("r", s.doc(s.counter).set(2)),
                "y": ("r", s.doc(s.counter).set(3)),
                "m": merge("x", "y"),
            },
        )
    out = ok("show", path, "head").splitlines()
    assert out[:2] == [f"commit {g['m'].hex()}", "kind   Merge"]
    assert f"target {g['y'].hex()}" in out and len(out) == 8


def test_log_and_show_refuse_missing_and_flat_paths(tmp_path: Path, dsm: Path) -> None:
    assert f"{tmp_path / 'nope'}: no such database" in fails("log", tmp_path / "nope")
    ok("init", tmp_path / "f", dsm, "--flat")
    assert "a flat database, not a commit database" in fails("show", tmp_path / "f", "last")
    ok("init", tmp_path / "e", dsm)
    assert "the database has no commits" in fails("show", tmp_path / "e", "last")
    assert ok("log", tmp_path / "e") == "0 commits, 0 heads\n"


# --------------------------------------------------------------------------------------------
# get


def test_get_prints_documents_as_json(db: tuple[Path, Graph, BlobId]) -> None:
    path, g, blob = db
    doc = json.loads(ok("get", path, "T::Doc.rec", K1))  # at the last commit: b1
    assert doc == {
        "name": "second",
        "count": 0,
        "tags": [1, 2, 3],
        "scores": {"a": 1, "b": 2},
        "values": [],
        "maybe": {"x": 1, "y": 2},
        "items": ["x", "y"],
        "p": {"x": 0, "y": 0},
        "places": {},
        "picture": blob.hex(),
    }
    at_a1 = json.loads(ok("get", path, "T::Doc.rec", K1, "--commit", g["a1"].hex()[:8]))
    assert (at_a1["name"], at_a1["count"]) == ("first [bold]", 5)
    assert json.loads(ok("get", path, "T::nums", K1, "--commit", g["a1"].hex())) == [1, 2]
    special = ok("get", path, "T::Doc.nums", K3, "--concept", "T::Special", "--commit", "last")
    assert json.loads(special) == [7]


def test_get_refusals(db: tuple[Path, Graph, BlobId]) -> None:
    path, g, _ = db
    err = fails("get", path, "T::Doc.nope", K1)
    assert "unknown attachment 'T::Doc.nope' (attachments: " in err and "T::Doc.counter, " in err
    assert "'not-a-uuid' is not a uuid" in fails("get", path, "T::Doc.rec", "not-a-uuid")
    assert f"no document T::Doc.nums T::Doc {K1} at commit {g['root'].hex()[:12]}" in fails(
        "get", path, "T::Doc.nums", K1, "--commit", g["root"].hex()
    )
    assert "takes no key of T::Doc" in fails(
        "get", path, "T::Other.note", K1, "--concept", "T::Doc"
    )
    assert "unknown concept 'T::Nope'" in fails(
        "get", path, "T::Doc.rec", K1, "--concept", "T::Nope"
    )
    assert "unknown commit" in fails("get", path, "T::Doc.rec", K1, "--commit", "0" * 64)


def test_get_reads_a_flat_database(tmp_path: Path, dsm: Path, s: Schema) -> None:
    path = tmp_path / "flat"
    ok("init", path, dsm, "--flat")
    with Database.open(path) as flat:
        with flat.transaction():
            flat.set(s.note, s.other, "a note")
            flat.set(s.xs, s.k1, XArray(["p", "q", "r"]))
    assert json.loads(ok("get", path, "T::Other.note", K1)) == "a note"
    assert json.loads(ok("get", path, "T::Doc.xs", K1)) == ["p", "q", "r"]
    assert "--commit applies to commit databases" in fails(
        "get", path, "T::Doc.xs", K1, "--commit", "last"
    )
    assert f"no document T::Doc.rec T::Doc {K1}" in fails("get", path, "T::Doc.rec", K1)


def test_json_projection_of_every_kind_of_value() -> None:
    defs = load_text(
        """
        namespace J {7b000000-0000-4000-8000-000000000009} {
        concept Thing;
        enum Color { red, green };
        struct All {
            double d; float f; uuid u; blob raw; Color c; any a; map<int64, string> m;
            vector<tuple<int64, string>> t; optional<int64> o; variant<int64, string> v;
            set<key<Thing>> ks; blob_id b; map<string, set<double>> ms;
        };
        attachment<Thing, All> all;
        };
        """
    )
    att = defs.check_attachment("J::Thing.all")
    thing = att.create_key(uuid.UUID(int=5))
    color = next(e for e in defs.enumerations() if e.name == "Color")
    blob = BlobId(bytes(range(32)))
    value = att.document_type.check(
        {
            "d": math.inf,
            "f": 0.5,
            "u": uuid.UUID(int=1),
            "raw": b"\x00\xff",
            "c": color.check("green"),
            "a": Typed(FLOAT, math.nan),  # a float (not the deduced double): stays Typed
            "m": {1: "one", 2: "two"},
            "t": [(1, "a")],
            "o": None,
            "v": "text",
            "ks": {thing},
            "b": blob,
            "ms": {"x": {-math.inf, 1.0}},
        }
    )
    assert commitdb_to_json(value) == {
        "d": "Infinity",
        "f": 0.5,
        "u": "00000000-0000-0000-0000-000000000001",
        "raw": "00ff",
        "c": "green",
        "a": {"type": "float", "value": "NaN"},
        "m": [[1, "one"], [2, "two"]],
        "t": [[1, "a"]],
        "o": None,
        "v": "text",
        "ks": [{"concept": "J::Thing", "id": "00000000-0000-0000-0000-000000000005"}],
        "b": blob.hex(),
        "ms": {"x": ["-Infinity", 1.0]},
    }
    assert json.loads(dumps(value)) == commitdb_to_json(value)
    assert commitdb_to_json(CommitId.INVALID) == "0" * 64
    assert commitdb_to_json(XArray(["a", "b"])) == ["a", "b"]


# --------------------------------------------------------------------------------------------
# reduce-heads and flatten


def test_reduce_heads_merges_every_head(db: tuple[Path, Graph, BlobId], s: Schema) -> None:
    path, g, _ = db
    out = ok("reduce-heads", path, "--author", "ci")
    assert out.startswith("reduced 2 heads into ")
    merged = CommitId.from_hex(out.split()[-1])
    with CommitDatabase.open(path) as d:
        assert d.head_commit_ids() == {merged}
        h = d.commit_header(merged)
        assert (h.author, h.parent_commit_id, h.target_commit_id) == ("ci", g["b1"], g["a1"])
        assert d.state(merged).get(s.rec, s.k1).count == 5
    assert ok("reduce-heads", path) == "nothing to reduce: 1 head\n"
    assert "no such database" in fails("reduce-heads", path.parent / "nope")


def test_flatten_writes_one_commit_with_the_state_and_its_blobs(
    db: tuple[Path, Graph, BlobId], s: Schema
) -> None:
    path, g, blob = db
    target = path.parent / "flat"
    out = ok("flatten", path, g["a1"].hex()[:12], target)
    assert out.startswith(f"flattened {g['a1'].hex()[:12]} into {target}: commit ")
    assert out.endswith(", 1 blob\n")
    with CommitDatabase.open(path) as d, CommitDatabase.open(target) as f:
        (only,) = f.commit_ids()
        assert f.blob_ids() == {blob}
        for att in s.defs.attachments():
            assert f.state(only).enumerate(att) == d.state(g["a1"]).enumerate(att)
    assert f"{target} already exists" in fails("flatten", path, "last", target)
    assert "unknown commit" in fails("flatten", path, "f" * 64, path.parent / "other")
    assert not (path.parent / "other").exists()


# --------------------------------------------------------------------------------------------
# sync


def two_sides(tmp_path: Path, dsm: Path, s: Schema) -> tuple[Path, Path]:
    """ "local" with the populated history, "far" with a history of its own."""
    local, far = tmp_path / "local", tmp_path / "far"
    ok("init", local, dsm)
    ok("init", far, dsm)
    populate(local, s)
    with CommitDatabase.open(far) as d:
        build(d, {"far": (None, s.doc(s.note, s.other).set("far away"))})
    return local, far


def assert_in_sync(local: Path, far: Path) -> None:
    with CommitDatabase.open(local) as a, CommitDatabase.open(far) as b:
        assert a.commit_ids() == b.commit_ids()
        assert_consistent(a)
        assert_consistent(b)
        assert_same_states(a, b, a.commit_ids())


def test_sync_between_two_local_paths(tmp_path: Path, dsm: Path, s: Schema) -> None:
    local, far = two_sides(tmp_path, dsm, s)
    out = ok("sync", local, far, "--mode", "fetch")  # far -> local
    assert out.startswith("fetch: 1 commit (") and "push" not in out
    out = ok("sync", local, far, "--mode", "PUSH")  # local -> far
    assert out.startswith("push: 3 commits (") and ", 1 blob (9 B)" in out
    assert_in_sync(local, far)
    assert ok("sync", local, far).startswith("up to date: nothing to move (")


def test_sync_against_a_served_database(tmp_path: Path, dsm: Path, s: Schema) -> None:
    local, far = two_sides(tmp_path, dsm, s)
    with serve_process("far", far) as server:
        out = ok("sync", local, f"{server.endpoint}#far")
        assert out.startswith("fetch: 1 commit (") and "; push: 3 commits (" in out
        assert "the server has no commit database named 'main'" in fails(
            "sync", local, f"{server.endpoint}#main"
        )
        # a clone: an empty database (no definitions either) fetches everything
        ok("init", tmp_path / "clone")
        out = ok("sync", tmp_path / "clone", f"{server.endpoint}#far", "--mode", "fetch")
        assert out.startswith("fetch: 4 commits (") and ", 1 blob (9 B), " in out
        assert "definitions added" in out
    assert_in_sync(local, far)
    assert_in_sync(tmp_path / "clone", far)


def test_sync_against_a_tls_server_with_client_certificates(
    tmp_path: Path, dsm: Path, s: Schema
) -> None:
    from tests.rpc.test_db_remote import start_db_server
    from tests.rpc.tls import make_pki

    local, far = two_sides(tmp_path, dsm, s)
    pki = make_pki(tmp_path)
    server = start_db_server(
        [f"far={far}"],
        *("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)),
        *("--client-ca", str(pki.ca)),
        listen=("tls://127.0.0.1:0",),
    )
    try:
        target = f"{server.urls[0]}#far"
        assert "certificate" in fails("sync", local, target, "--ca", pki.ca)  # none presented
        server.wait_for_line(r"WARNING rpc\.server: TLS handshake with 127\.0\.0\.1:\d+ failed")
        assert "certificate" in fails("sync", local, target)  # the system store: untrusted
        tls = ("--ca", pki.ca, "--cert", pki.client_cert, "--key", pki.client_key)
        out = ok("sync", local, target, *tls)
        assert out.startswith("fetch: 1 commit (") and "; push: 3 commits (" in out
        assert "--key needs --cert" in fails("sync", local, target, "--key", pki.client_key)
        assert "tls:// or unix+tls://" in fails("sync", local, far, "--ca", pki.ca)
    finally:
        server.stop()
    assert_in_sync(local, far)


def test_sync_loop_stops_after_max_rounds(tmp_path: Path, dsm: Path, s: Schema) -> None:
    local, far = two_sides(tmp_path, dsm, s)
    out = ok("sync", local, far, "--loop", "--interval", "0.05", "--max-rounds", "3").splitlines()
    assert len(out) == 3
    assert out[0].startswith("round 1: fetch: 1 commit (") and "push: 3 commits" in out[0]
    assert out[1].startswith("round 2: up to date: nothing to move (")
    assert out[2] == "round 3: up to date (no change since the last pass)"
    two = ok("sync", local, far, "--max-rounds", "2", "--interval", "0").splitlines()
    assert [line.split(":")[0] for line in two] == ["round 1", "round 2"]
    assert_in_sync(local, far)


def test_sync_loop_reports_failed_rounds_and_retries(tmp_path: Path, dsm: Path, s: Schema) -> None:
    local, _ = two_sides(tmp_path, dsm, s)
    result = run("sync", local, "tcp://127.0.0.1:1#main", "--max-rounds", "2", "--interval", "0")
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        ["round 1", "failed"],
        ["round 2", "failed"],
    ]
    assert all("cannot open tcp://127.0.0.1:1#main: " in line for line in lines)


def test_sync_loop_stops_on_sigterm_and_picks_up_new_commits(
    tmp_path: Path, dsm: Path, s: Schema
) -> None:
    local, far = two_sides(tmp_path, dsm, s)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpc", "sync", str(local), str(far), "--loop", "--interval", "0.05"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("round 1: fetch: 1 commit")
        with CommitDatabase.open(far) as d:  # another writer, while the loop runs
            new = d.disable_commit("masked", d.last_commit_id(), d.last_commit_id())  # type: ignore[arg-type]
        for line in proc.stdout:  # "up to date" rounds, until the new commit moves
            if "fetch: 1 commit" in line:
                break
        with CommitDatabase.open(local) as a:
            assert a.commit_exists(new)
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "received SIGTERM, stopping after this round" in err
    assert_in_sync(local, far)


def test_sync_refusals(tmp_path: Path, dsm: Path, s: Schema) -> None:
    local, far = two_sides(tmp_path, dsm, s)
    assert "no such database" in fails("sync", tmp_path / "nope", far)
    assert "no such database" in fails("sync", local, tmp_path / "nope")
    assert "LOCAL and TARGET are the same database" in fails("sync", local, local)
    assert "a remote TARGET is URL#NAME" in fails("sync", local, "tcp://127.0.0.1:9")
    assert "bad URL" in fails("sync", local, "tcp://127.0.0.1#main")
    assert "bad URL" in fails("sync", local, "ftp://host:1#main")
    assert "cannot open tcp://127.0.0.1:1#main" in fails("sync", local, "tcp://127.0.0.1:1#main")
    conflicting = tmp_path / "conflict.dsm"
    conflicting.write_text(CONFLICT)
    ok("init", tmp_path / "c", conflicting)
    err = fails("sync", local, tmp_path / "c")
    assert "definitions conflict" in err and "T::Point" in err
    with CommitDatabase.open(tmp_path / "c") as c:
        assert c.commit_ids() == set()
