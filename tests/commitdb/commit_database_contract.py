"""The behaviour every commit database shares: local (LMDB, memory) and remote (TCP, Unix).

Use it by subclassing :class:`CommitDatabaseContract` in a test module and providing a
``cdb_factory`` fixture that returns a :class:`CommitDatabaseFactory`::

    class TestMemoryCommitDatabase(CommitDatabaseContract):
        @pytest.fixture
        def cdb_factory(self) -> Iterator[CommitDatabaseFactory]:
            factory = MyFactory()
            yield factory
            factory.close_all()

The tests use only the public API of :class:`~commitdb.CommitDatabase`, its states and
:class:`~commitdb.CommitMutableState` built on them, so a remote database runs them unchanged.
The factory closes every database it opened at teardown.

Where a remote database differs from a local one on purpose, the difference is one of
:data:`REMOTE_EXCEPTIONS` and the tests below check the remote behaviour explicitly (a factory
says which kind it makes with ``remote``).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import uuid
from pathlib import Path as FsPath
from typing import Any, Protocol

import pytest

from commitdb.blobs import CHUNK_SIZE, BlobLayout
from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitData, CommitHeader, CommitKind, compute_commit_id
from commitdb.definitions import Definitions
from commitdb.dsm import load_text
from commitdb.errors import (
    CommitDBError,
    CommitError,
    DatabaseClosedError,
    DecodeError,
    DefinitionConflictError,
    MissingBlobError,
    UnknownAttachmentError,
    UnknownCommitError,
    ValidationError,
)
from commitdb.ids import BlobId, CommitId, blob_id_for
from commitdb.mutable_state import CommitMutableState
from commitdb.protocols import AttachmentGetting, CommitDatabasing
from commitdb.values import END, Key, XArray
from tests.commitdb.builders import Graph, Schema, build, disable, enable, merge, schema

__all__ = ("REMOTE_EXCEPTIONS", "CommitDatabaseContract", "CommitDatabaseFactory")

REMOTE_EXCEPTIONS = {
    "path": "path() returns the served name (a client never sees the server's filesystem)",
    "in_memory": "in_memory() is False (the database lives on the server)",
    "flatten": "flatten(commit, path) writes the flat copy to the client's path",
    "author": "the default author is the client's user; the timestamp is the server's clock",
    "metadata after close": "uuid(), documentation() and path() raise DatabaseClosedError "
    "after close() (a local database still answers from memory)",
}
"""The few places where a remote commit database differs from a local one, on purpose."""


class CommitDatabaseFactory(Protocol):
    """Makes the commit databases a contract test uses."""

    remote: bool

    def __call__(
        self, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> Any:
        """Create a fresh database (closed at teardown)."""

    def peer(self, db: Any) -> Any:
        """Open a second connection to the database of ``db`` (closed at teardown)."""


def sha256_id(parent: bytes, kind: int, target: bytes, program: bytes) -> bytes:
    return hashlib.sha256(
        parent + bytes([kind]) + target + struct.pack("<Q", len(program)) + program
    ).digest()


def history(db: Any, s: Schema) -> Graph:
    """r; a1 -> a2 and b1 on r; m = merge(a2, b1); d disables a1 on m; e re-enables it."""
    n = s.doc(s.nums)
    return build(
        db,
        {
            "r": (None, n.set({0})),
            "a1": ("r", n.union({1})),
            "a2": ("a1", n.union({2})),
            "b1": ("r", n.union({3})),
            "m": merge("a2", "b1"),
            "d": disable("m", "a1"),
            "e": enable("d", "a1"),
        },
    )


def four_heads(db: Any, s: Schema) -> tuple[Graph, list[CommitId]]:
    n = s.doc(s.counter)
    g = build(db, {"r": (None, n.set(0))})
    g = build(db, {f"h{i}": ("r", n.set(i)) for i in range(1, 5)}, into=g)
    return g, [g[f"h{i}"] for i in range(1, 5)]


def documents(db: Any, commit_id: CommitId) -> list[Any]:
    return sorted(
        ((att.identifier, key, repr(doc)) for att, key, doc in db.documents(commit_id)),
        key=repr,
    )


def copy_all(src: Any, dst: Any) -> int:
    """Copy every commit (and the blobs they need) from src to dst; returns how many were new."""
    copied = 0
    for c in src.commit_ids_in_order():
        data = src.commit_data(c)
        for b in dst.unknown_blob_ids(src.commit_blob_ids(data)):
            info = src.blob_info(b)
            blob = src.blob(b)
            assert info is not None and blob is not None
            dst.create_blob(blob, info.layout)
        copied += dst.create_commit_data(data)
    return copied


class CommitDatabaseContract:
    """Tests of the public commit database surface; a subclass provides ``cdb_factory``."""

    @pytest.fixture
    def s(self) -> Schema:
        return schema()

    @pytest.fixture
    def db(self, cdb_factory: CommitDatabaseFactory, s: Schema) -> Any:
        return cdb_factory(s.defs, documentation="the test database")

    # -- metadata and lifecycle -----------------------------------------------------------
    def test_protocol_and_metadata(
        self, db: Any, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        assert isinstance(db, CommitDatabasing)
        assert isinstance(db.uuid(), uuid.UUID) and db.uuid() == db.uuid()
        assert db.documentation() == "the test database"
        assert db.codec_name() == "msgpack-canonical"
        assert isinstance(db.path(), str) and db.path()
        if cdb_factory.remote:
            assert not db.in_memory()
        else:
            assert db.in_memory() == (db.path() == "InMemory")
        assert not db.is_closed()
        assert db.definitions().is_equal(s.defs)
        assert db.definitions_hexdigest() == s.defs.hexdigest()
        other = cdb_factory()
        assert other.uuid() != db.uuid()
        assert other.documentation() == ""
        assert other.definitions().attachments() == []
        assert isinstance(db.initial_state(), AttachmentGetting)

    def test_close(self, db: Any, s: Schema) -> None:
        r = build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        db.close()
        assert db.is_closed()
        db.close()  # idempotent
        calls: list[Any] = [
            db.commit_ids,
            db.commit_count,
            db.head_commit_ids,
            db.data_version,
            db.blob_ids,
            db.definitions,
            lambda: db.state(r),
            lambda: db.create_blob(b"x"),
            lambda: db.commit_mutations("x", CommitMutableState(db.initial_state())),
        ]
        for call in calls:
            with pytest.raises(DatabaseClosedError):
                call()

    def test_context_manager_closes(self, db: Any) -> None:
        with db as entered:
            assert entered is db
            assert not db.is_closed()
        assert db.is_closed()

    # -- commit ids -----------------------------------------------------------------------
    def test_commit_id_is_the_sha256_of_parent_kind_target_and_program(
        self, db: Any, s: Schema
    ) -> None:
        g = history(db, s)
        for name, cid in g.items():
            h = db.commit_header(cid)
            data = db.commit_data(cid)
            expected = sha256_id(h.parent_commit_id, int(h.kind), h.target_commit_id, data.program)
            assert cid == expected, name
            assert isinstance(cid, CommitId) and data.verify()
        assert db.commit_data(g["m"]).program == b""
        assert db.commit_header(g["r"]).parent_commit_id == CommitId.INVALID

    def test_same_program_on_same_parent_is_idempotent(self, db: Any, s: Schema) -> None:
        first = build(db, {"first": (None, s.doc(s.nums).set({1}))})["first"]
        header = db.commit_header(first)
        version = db.data_version()
        ms = CommitMutableState(db.initial_state())
        ms.set(s.nums, s.k1, {1})
        assert db.commit_mutations("other label", ms, author="someone else") == first
        assert db.commit_count() == 1
        assert db.commit_header(first) == header
        assert db.data_version() == version

    def test_empty_commit(self, db: Any, s: Schema) -> None:
        r = build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        empty = db.commit_mutations("empty", CommitMutableState(db.state(r)))
        assert empty != r
        h = db.commit_header(empty)
        assert (h.parent_commit_id, h.kind, h.commit_type) == (r, CommitKind.MUTATIONS, "Mutations")
        assert db.commit_data(empty).program == b"\x90"
        assert db.state(empty).get(s.nums, s.k1) == {1}
        root = db.commit_mutations("root", CommitMutableState(db.initial_state()))
        assert db.commit_header(root).parent_commit_id == CommitId.INVALID

    def test_structural_commits(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        ab = db.merge_commit("ab", g["a2"], g["b1"])
        ba = db.merge_commit("ba", g["b1"], g["a2"])
        assert ab == g["m"] and ab != ba
        assert db.commit_header(ab).label == "m"  # re-merging returns the existing merge
        d, e = db.commit_header(g["d"]), db.commit_header(g["e"])
        assert (d.kind, d.parent_commit_id, d.target_commit_id, d.label) == (
            CommitKind.DISABLE,
            g["m"],
            g["a1"],
            "d",
        )
        assert (e.kind, e.commit_type, e.target_commit_id) == (CommitKind.ENABLE, "Enable", g["a1"])
        a1 = db.commit_header(g["a1"])
        assert isinstance(a1.timestamp, float) and a1.timestamp > 1e9

    def test_author(self, db: Any, s: Schema, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("COMMITDB_AUTHOR", "ada")  # this process's default author
        r = build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        assert db.commit_header(r).author == "ada"
        ms = CommitMutableState(db.state(r))
        ms.set(s.nums, s.k1, {2})
        c = db.commit_mutations("explicit", ms, author="bob")
        assert db.commit_header(c).author == "bob"
        assert db.commit_header(db.disable_commit("d", c, r, author="carol")).author == "carol"
        assert db.commit_header(db.enable_commit("e", c, r)).author == "ada"

    def test_header_wire_round_trip(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        h = db.commit_header(g["m"])
        assert CommitHeader.from_wire(h.to_wire()) == h
        data = db.commit_data(g["a1"])
        assert CommitData.decode(data.encode()) == data

    # -- DAG queries ----------------------------------------------------------------------
    def test_heads_children_nephews(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        assert g.names(db.head_commit_ids()) == ["e"]
        assert g.names(db.children_commit_ids(g["r"])) == ["a1", "b1"]
        assert g.names(db.children_commit_ids(g["m"])) == ["d"]
        assert db.children_commit_ids(g["e"]) == set()
        assert g.names(db.nephew_commit_ids(g["b1"])) == ["m"]
        assert db.nephew_commit_ids(g["a1"]) == set()
        assert g.names(db.commit_ids()) == sorted(g)
        assert g.names(db.commit_ids_in_order()) == ["r", "a1", "a2", "b1", "m", "d", "e"]
        assert db.commit_count() == 7
        assert all(db.commit_exists(c) for c in g.values())
        assert not db.commit_exists(CommitId(bytes(range(32))))
        n = s.doc(s.counter)
        g2 = build(db, {"x": ("r", n.set(1)), "y": ("r", n.set(2))}, into=g)
        assert g2.names(db.head_commit_ids()) == ["e", "x", "y"]

    def test_commits_since_is_the_change_feed(self, db: Any, s: Schema) -> None:
        assert db.commits_since(0) == []
        g = history(db, s)
        order = db.commit_ids_in_order()
        assert db.commits_since(0) == list(enumerate(order))
        assert db.commits_since(5) == [(5, g["d"]), (6, g["e"])]
        assert db.commits_since(2, limit=2) == [(2, g["a2"]), (3, g["b1"])]
        assert db.commits_since(7) == []

    def test_first_and_last_commit(self, db: Any, s: Schema) -> None:
        assert db.first_commit_id() is None and db.last_commit_id() is None
        g = history(db, s)
        assert db.first_commit_id() == g["r"]
        assert db.last_commit_id() == g["e"]
        c = db.commit_mutations("on a2", CommitMutableState(db.state(g["a2"])))
        assert db.last_commit_id() == c

    def test_is_ancestor_and_is_mergeable(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        assert db.is_ancestor(g["r"], g["e"])
        assert db.is_ancestor(g["b1"], g["m"])
        assert db.is_ancestor(g["a2"], g["a2"])
        assert not db.is_ancestor(g["e"], g["r"])
        assert db.is_mergeable(g["a2"], g["b1"])
        assert not db.is_mergeable(g["r"], g["a2"])

    def test_linearization_and_flags(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        assert g.names(db.linearization(g["m"])) == ["r", "a1", "a2", "b1", "m"]
        assert g.disabled(db.enabled_by_commit_id(g["d"])) == {"a1"}
        assert g.disabled(db.enabled_by_commit_id(g["e"])) == set()
        assert set(db.enabled_by_commit_id(g["e"])) == set(g.values())

    def test_refusals_add_nothing(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        ghost = CommitId(hashlib.sha256(b"ghost").digest())
        count = db.commit_count()
        for parent, target in [("a2", "a1"), ("m", "b1"), ("a1", "a1")]:
            with pytest.raises(CommitError, match="not mergeable"):
                db.merge_commit("bad", g[parent], g[target])
        for make in (db.merge_commit, db.disable_commit, db.enable_commit):
            with pytest.raises(UnknownCommitError):
                make("x", ghost, g["a1"])
            with pytest.raises(UnknownCommitError):
                make("x", g["a1"], ghost)
        for read in (db.commit_header, db.state, db.commit_data, db.linearization):
            with pytest.raises(UnknownCommitError):
                read(ghost)
        with pytest.raises(UnknownCommitError):
            db.commit_header(CommitId.INVALID)
        with pytest.raises(CommitError):
            db.merge_state(g["a1"], g["a2"])
        assert db.commit_count() == count

    def test_a_mutable_state_over_a_foreign_commit_is_refused(
        self, db: Any, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        other = cdb_factory(s.defs)
        r = build(other, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        ms = CommitMutableState(other.state(r))
        ms.set(s.nums, s.k2, {2})
        with pytest.raises(UnknownCommitError):
            db.commit_mutations("foreign base", ms)
        assert db.commit_count() == 0

    def test_commit_ids_as_hex_or_bytes(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        assert db.commit_header(g["a1"].hex()) == db.commit_header(bytes(g["a1"]))
        assert db.state(g["a1"].hex()).get(s.nums, s.k1) == {0, 1}
        with pytest.raises(CommitError):
            db.commit_header("zz")
        with pytest.raises(CommitError):
            db.commit_header(42)

    # -- states ---------------------------------------------------------------------------
    def test_states_through_merges_and_masks(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        expected = {
            "r": {0},
            "a1": {0, 1},
            "a2": {0, 1, 2},
            "b1": {0, 3},
            "m": {0, 1, 2, 3},
            "d": {0, 2, 3},
            "e": {0, 1, 2, 3},
        }
        for name, value in expected.items():
            st = db.state(g[name])
            assert st.commit_id() == g[name]
            assert st.get(s.nums, s.k1) == value, name
            assert st.has(s.nums, s.k1)
            assert st.keys(s.nums) == {s.k1}
            assert st.enumerate(s.nums) == [(s.k1, value)]
            assert not st.has(s.nums, s.k2) and st.get(s.nums, s.k2) is None
        assert db.state(g["e"]).keys(s.counter) == set()
        assert db.state(g["e"]).enumerate(s.counter) == []

    def test_initial_state_and_none(self, db: Any, s: Schema) -> None:
        for st in (db.initial_state(), db.state(None), db.state(CommitId.INVALID)):
            assert st.commit_id() == CommitId.INVALID
            assert st.get(s.nums, s.k1) is None
            assert not st.has(s.nums, s.k1)
            assert st.keys(s.nums) == set() and st.enumerate(s.nums) == []
            assert st.definitions().is_equal(s.defs)

    def test_state_reads_return_copies(self, db: Any, s: Schema) -> None:
        r = build(db, {"r": (None, s.doc(s.rec).set(s.rec_value(name="a", tags={1})))})["r"]
        st = db.state(r)
        doc = st.get(s.rec, s.k1)
        doc.name = "changed"
        doc.tags.add(2)
        assert st.get(s.rec, s.k1) == s.rec_value(name="a", tags={1})
        ((_, listed),) = st.enumerate(s.rec)
        listed.tags.add(3)
        assert db.state(r).get(s.rec, s.k1).tags == {1}

    def test_state_argument_errors(self, db: Any, s: Schema) -> None:
        r = build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        st = db.state(r)
        with pytest.raises(UnknownAttachmentError):
            st.get("T::Doc.nothing", s.k1)
        with pytest.raises(UnknownAttachmentError):
            st.keys("T::Doc.nothing")
        with pytest.raises(ValidationError):
            st.get(s.nums, s.other)  # a key of another concept
        with pytest.raises(ValidationError):
            st.has(s.nums, "not a key")
        assert st.get("T::Doc.nums", s.k1) == {1}  # by identifier
        assert st.get(s.nums, s.special) is None  # a key of a sub-concept is accepted

    def test_all_value_kinds_round_trip(self, db: Any, s: Schema) -> None:
        p = uuid.UUID(int=7)
        value = s.rec_value(
            name="héllo",
            count=-(2**40),
            tags={3, 1, 2},
            scores={"a": 1, "b": -2},
            values=[5, 4],
            maybe=s.point(1, 2),
            p=s.point(-1, 0),
            places={"home": s.point(3, 4)},
        )
        g = build(
            db,
            {
                "r": (
                    None,
                    s.doc(s.rec).set(value),
                    s.doc(s.table).set({"x": 1}),
                    s.doc(s.opt).set(None),
                    s.doc(s.opt, s.k2).set(s.point(5, 6)),
                    s.doc(s.note, s.other).set("a note"),
                    s.doc(s.xs).set(XArray(["second"])),
                    s.doc(s.xs).insert(END, p, "first"),
                ),
            },
        )
        st = db.state(g["r"])
        assert st.get(s.rec, s.k1) == value
        assert st.get(s.table, s.k1) == {"x": 1}
        assert st.has(s.opt, s.k1) and st.get(s.opt, s.k1) is None
        assert st.get(s.opt, s.k2) == s.point(5, 6)
        assert st.get(s.note, s.other) == "a note"
        assert list(st.get(s.xs, s.k1)) == ["second", "first"]

    def test_merge_state(self, db: Any, s: Schema) -> None:
        n = s.doc(s.nums)
        g = build(
            db,
            {"r": (None, n.set({0})), "a": ("r", n.union({1})), "b": ("r", n.union({2}))},
        )
        virtual = db.merge_state(g["a"], g["b"])
        assert virtual.commit_id() == CommitId.INVALID
        assert virtual.get(s.nums, s.k1) == {0, 1, 2}
        m = db.merge_commit("m", g["a"], g["b"])
        assert db.state(m).get(s.nums, s.k1) == virtual.get(s.nums, s.k1)
        assert db.commit_count() == 4

    def test_eval_actions_trace_and_flags(self, db: Any, s: Schema) -> None:
        g = history(db, s)
        st = db.state(g["d"])
        actions = st.eval_actions()
        assert [g.name(a.header.commit_id) for a in actions] == ["b1", "a2", "a1", "r"]
        assert {g.name(a.header.commit_id): a.enabled for a in actions}["a1"] is False
        assert g.disabled(st.enabled_by_commit_id()) == {"a1"}
        trace = st.trace(s.nums, s.k1)
        assert trace.value == {0, 2, 3}
        assert g.names(trace.skipped_commits) == ["a1"]
        assert [g.name(step.commit_id) for step in trace.steps] == ["r", "a2", "b1"]
        assert all(step.error is None for step in trace.steps)
        assert db.initial_state().eval_actions() == []

    def test_documents(self, db: Any, s: Schema) -> None:
        g = build(
            db,
            {
                "r": (None, s.doc(s.nums).set({1}), s.doc(s.counter).set(3)),
                "a": ("r", s.doc(s.nums, s.k2).set({2}), s.doc(s.counter).delete()),
            },
        )
        listed = {(att.identifier, key, repr(doc)) for att, key, doc in db.documents(g["a"])}
        assert listed == {("T::Doc.nums", s.k1, "{1}"), ("T::Doc.nums", s.k2, "{2}")}
        assert list(db.documents(None)) == []

    # -- mutable states built on the database's states ------------------------------------
    def test_mutable_state_reads_and_commits(self, db: Any, s: Schema) -> None:
        r = build(db, {"r": (None, s.doc(s.nums).set({1}), s.doc(s.table).set({"a": 1}))})["r"]
        ms = CommitMutableState(db.state(r))
        assert ms.base_commit_id() == r
        assert ms.get(s.nums, s.k1) == {1}
        ms.union_in_set(s.nums, s.k1, ".", {2, 3})
        ms.update_in_map(s.table, s.k1, ".", {"a": 5, "zz": 9})
        ms.set(s.counter, s.k2, 42)
        ms.delete(s.table, s.k1)
        ms.set(s.table, s.k2, {"b": 2})
        assert ms.get(s.nums, s.k1) == {1, 2, 3}
        assert ms.keys(s.table) == {s.k2}
        c = db.commit_mutations("edit", ms)
        assert ms.sealed == c
        st = db.state(c)
        assert st.get(s.nums, s.k1) == {1, 2, 3}
        assert st.get(s.counter, s.k2) == 42
        assert st.keys(s.table) == {s.k2}
        assert not st.has(s.table, s.k1)
        with pytest.raises(CommitError):
            db.commit_mutations("again", ms)
        with pytest.raises(CommitError):
            ms.set(s.counter, s.k1, 1)
        # a second mutable state on the new commit sees the committed documents
        ms2 = CommitMutableState(db.state(c))
        ms2.union_in_set(s.nums, s.k1, ".", {4})
        c2 = db.commit_mutations("more", ms2)
        assert db.state(c2).get(s.nums, s.k1) == {1, 2, 3, 4}
        assert db.commit_header(c2).parent_commit_id == c

    def test_read_modify_commit_loop(self, db: Any, s: Schema) -> None:
        head = None
        for i in range(30):
            ms = CommitMutableState(db.state(head))
            before = ms.get(s.counter, s.k1)
            assert before == (None if i == 0 else i - 1)
            ms.set(s.counter, s.k1, i)
            if i == 0:
                ms.set(s.nums, s.k1, {0})
            else:
                ms.union_in_set(s.nums, s.k1, ".", {i})
            head = db.commit_mutations(f"c{i}", ms)
        assert db.commit_count() == 30
        assert db.state(head).get(s.counter, s.k1) == 29
        assert db.state(head).get(s.nums, s.k1) == set(range(30))
        assert db.head_commit_ids() == {head}

    def test_mutable_state_validation(self, db: Any, s: Schema) -> None:
        ms = CommitMutableState(db.initial_state())
        with pytest.raises(ValidationError):
            ms.set(s.counter, s.k1, "not an int")
        with pytest.raises(ValidationError):
            ms.set(s.nums, s.other, {1})
        with pytest.raises(UnknownAttachmentError):
            ms.set("T::Doc.nothing", s.k1, 1)
        assert not list(ms.mutations().all_ops())  # nothing refused was recorded
        c = db.commit_mutations("nothing", ms)
        assert db.commit_data(c).program == b"\x90"

    def test_a_commit_referencing_a_missing_blob_is_refused(self, db: Any, s: Schema) -> None:
        r = build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        missing = blob_id_for(b"not stored")
        ms = CommitMutableState(db.state(r))
        ms.set(s.rec, s.k1, s.rec_value(picture=missing))
        count, version = db.commit_count(), db.data_version()
        with pytest.raises(MissingBlobError, match=missing.hex()):
            db.commit_mutations("dangling", ms)
        assert db.commit_count() == count and db.data_version() == version
        assert ms.sealed is None
        assert db.create_blob(b"not stored") == missing
        c = db.commit_mutations("fixed", ms)
        assert db.state(c).get(s.rec, s.k1).picture == missing

    # -- blobs ----------------------------------------------------------------------------
    def test_blobs_are_content_addressed_and_idempotent(self, db: Any) -> None:
        version = db.data_version()
        data = bytes(range(256)) * 10
        b = db.create_blob(data)
        assert b == blob_id_for(data) and isinstance(b, BlobId)
        assert db.data_version() == version + 1
        assert db.create_blob(data) == b
        assert db.create_blob(bytearray(data)) == b
        assert db.data_version() == version + 1
        floats = db.create_blob(data, BlobLayout("float", 4))
        assert floats == blob_id_for(data, 9, 4) and floats != b
        assert db.blob_ids() == {b, floats}
        assert db.blob(b) == data
        info = db.blob_info(floats)
        assert info is not None and (info.layout, info.size) == (BlobLayout("float", 4), 2560)
        assert db.blob(BlobId.INVALID) is None and db.blob_info(BlobId.INVALID) is None
        assert db.blob_infos([b, BlobId.INVALID]) == [db.blob_info(b)]
        assert db.unknown_blob_ids([b, BlobId.INVALID]) == {BlobId.INVALID}
        assert db.blob_datas([floats, BlobId.INVALID]) == [(floats, BlobLayout("float", 4), data)]

    def test_ranged_reads(self, db: Any) -> None:
        data = bytes(range(200))
        b = db.create_blob(data)
        assert db.read_blob(b, 10, 5) == data[5:15]
        assert db.read_blob(b, 0, 200) == b""
        assert db.read_blob(b, 200) == data
        for size, offset in [(1, 200), (201, 0), (-1, 0), (1, -1)]:
            with pytest.raises(ValueError):
                db.read_blob(b, size, offset)
        with pytest.raises(MissingBlobError):
            db.read_blob(BlobId.INVALID, 1)

    def test_large_blob_spans_chunks(self, db: Any) -> None:
        data = bytes(range(256)) * (CHUNK_SIZE // 256) + b"tail!"
        b = db.create_blob(data)
        assert db.blob(b) == data
        assert db.read_blob(b, 10, CHUNK_SIZE - 5) == data[CHUNK_SIZE - 5 : CHUNK_SIZE + 5]

    def test_blob_stream(self, db: Any) -> None:
        with db.blob_stream(BlobLayout("uchar", 1), size=6) as stream:
            assert stream.write(b"abc") == 3
            stream.write(memoryview(b"def"))
            b = stream.close()
        assert b == db.create_blob(b"abcdef") and db.blob(b) == b"abcdef"
        over = db.blob_stream(size=2)
        with pytest.raises(CommitDBError, match="overflow"):
            over.write(b"abc")
        short = db.blob_stream(size=5)
        short.write(b"ab")
        with pytest.raises(CommitDBError, match="short"):
            short.close()
        with pytest.raises(CommitDBError, match="closed"):
            short.write(b"x")
        free = db.blob_stream()
        free.write(b"any size")
        assert db.blob(free.close()) == b"any size"
        aborted = db.blob_stream()
        aborted.write(b"dropped")
        aborted.abort()
        assert len(db.blob_ids()) == 2
        big = db.blob_stream()
        piece = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(3):
            big.write(piece)
        assert db.blob_info(big.close()).size == 3 * len(piece)

    def test_blob_statistics_and_create_blobs(self, db: Any) -> None:
        assert db.blob_statistics().count == 0
        a = db.create_blob(b"a")
        db.create_blob(b"abcd")
        db.create_blob(b"")
        st = db.blob_statistics()
        assert (st.count, st.total_size, st.min_size, st.max_size) == (3, 5, 0, 4)
        added = db.create_blobs(
            [(BlobLayout(), b"a"), (BlobLayout(), b"b"), (BlobLayout("int"), b"b")]
        )
        assert added == [blob_id_for(b"b"), blob_id_for(b"b", 6)]
        assert a in db.blob_ids() and set(added) <= db.blob_ids()

    # -- transport ------------------------------------------------------------------------
    def test_commit_datas_round_trip(
        self, db: Any, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        g = history(db, s)
        blob = db.create_blob(b"pixels")
        g = build(db, {"p": ("e", s.doc(s.rec).set(s.rec_value(picture=blob)))}, into=g)
        dst = cdb_factory(s.defs)
        assert copy_all(db, dst) == len(g)
        assert dst.commit_ids() == db.commit_ids()
        assert dst.head_commit_ids() == db.head_commit_ids()
        assert dst.blob_ids() == {blob}
        for name, c in g.items():
            assert dst.commit_header(c) == db.commit_header(c), name
            assert dst.commit_data(c) == db.commit_data(c), name
            assert documents(dst, c) == documents(db, c), name
        assert copy_all(db, dst) == 0
        assert db.commit_datas([g["r"], g["m"]]) == [db.commit_data(g["r"]), db.commit_data(g["m"])]
        ms = CommitMutableState(dst.state(g["p"]))
        ms.union_in_set(s.nums, s.k1, ".", {9})
        c = dst.commit_mutations("after sync", ms)
        assert dst.state(c).get(s.nums, s.k1) == {0, 1, 2, 3, 9}

    def test_create_commit_data_refuses_bad_data(
        self, db: Any, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        src = cdb_factory(s.defs)
        g = history(src, s)
        datas = {name: src.commit_data(c) for name, c in g.items()}
        tampered = CommitData(datas["r"].header, datas["r"].program + b"\x00")
        with pytest.raises(CommitError, match="does not match"):
            db.create_commit_data(tampered)
        with pytest.raises(UnknownCommitError):
            db.create_commit_data(datas["a1"])  # its parent is missing
        header = src.commit_header(g["d"])
        program = datas["a1"].program
        forged_id = compute_commit_id(
            header.parent_commit_id, header.kind, header.target_commit_id, program
        )
        import dataclasses

        forged = CommitData(dataclasses.replace(header, commit_id=forged_id), program)
        with pytest.raises(CommitError, match="carries no program"):
            db.create_commit_data(forged)
        assert db.commit_count() == 0
        bare = cdb_factory(Definitions())
        with pytest.raises(DecodeError):
            bare.create_commit_data(datas["r"])
        assert bare.commit_count() == 0
        assert [db.create_commit_data(datas[n]) for n in ("r", "a1", "r")] == [True, True, False]

    def test_create_commit_data_refuses_a_missing_blob(
        self, db: Any, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        src = cdb_factory(s.defs)
        blob = src.create_blob(b"pixels")
        g = build(src, {"r": (None, s.doc(s.rec).set(s.rec_value(picture=blob)))})
        data = src.commit_data(g["r"])
        assert src.commit_blob_ids(data) == {blob}
        with pytest.raises(MissingBlobError):
            db.create_commit_data(data)
        assert db.commit_count() == 0
        db.create_blob(b"pixels")
        assert db.create_commit_data(data)
        assert db.state(g["r"]).get(s.rec, s.k1).picture == blob

    # -- helpers --------------------------------------------------------------------------
    def test_reduce_heads(self, db: Any, s: Schema) -> None:
        assert db.reduce_heads() is None
        g, heads = four_heads(db, s)
        anchor = db.last_commit_id()
        assert anchor == g["h4"]
        with pytest.raises(CommitError, match="not a head"):
            db.reduce_heads(g["r"])
        others = sorted(set(heads) - {anchor}, key=bytes)
        final = db.reduce_heads(author="reducer")
        assert final is not None and db.head_commit_ids() == {final}
        chain = []
        c = final
        while db.commit_header(c).kind == CommitKind.MERGE:
            chain.append(db.commit_header(c))
            c = db.commit_header(c).parent_commit_id
        chain.reverse()
        assert c == anchor
        assert [h.target_commit_id for h in chain] == others
        assert [h.label for h in chain] == [f"merge of {o.hex()}" for o in others]
        assert {h.author for h in chain} == {"reducer"}
        assert db.reduce_heads() is None

    def test_forward_and_fast_forward(self, db: Any, s: Schema) -> None:
        n = s.doc(s.counter)
        g = build(db, {"r": (None, n.set(0))})
        g = build(db, {f"c{i}": ("r", n.set(i)) for i in range(1, 4)}, into=g)
        children = [g[f"c{i}"] for i in range(1, 4)]
        smallest = min(children, key=bytes)
        assert db.fast_forward(g["r"]) == smallest
        assert db.forward(g["r"]) == smallest
        final = db.reduce_heads()
        assert db.forward(g["r"]) == final

    def test_flatten(self, db: Any, s: Schema, tmp_path: FsPath) -> None:
        old = db.create_blob(b"old picture")
        new = db.create_blob(b"new picture")
        db.create_blob(b"orphan")
        rec = s.doc(s.rec)
        g = build(
            db,
            {
                "r": (None, rec.set(s.rec_value(name="a", picture=old)), s.doc(s.nums).set({1})),
                "a": ("r", rec.update(".picture", new), s.doc(s.nums, s.k2).set({2})),
                "b": ("a", s.doc(s.nums).delete()),
            },
        )
        flat = db.flatten(g["b"], tmp_path / "flat", label="flat")
        try:
            assert isinstance(flat, CommitDatabase)  # local, at the caller's path
            assert flat.path() == str(tmp_path / "flat")
            assert flat.commit_count() == 1
            (c,) = flat.commit_ids()
            assert flat.commit_header(c).label == "flat"
            assert flat.blob_ids() == {new}
            assert documents(flat, c) == documents(db, g["b"])
        finally:
            flat.close()

    # -- definitions ----------------------------------------------------------------------
    def test_extend_definitions(self, cdb_factory: CommitDatabaseFactory, s: Schema) -> None:
        db = cdb_factory(Definitions())
        version = db.data_version()
        info = db.extend_definitions(s.defs)
        assert info.count() > 0 and s.nums.runtime_id in info.attachments
        assert db.data_version() == version + 1
        assert db.definitions_hexdigest() == s.defs.hexdigest()
        r = build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        assert db.state(r).get(s.nums, s.k1) == {1}
        assert db.extend_definitions(s.defs).count() == 0
        assert db.data_version() == version + 2  # the commit
        clash = load_text(
            "namespace T {5e1f0000-0000-4000-8000-000000000001} { concept Doc2; "
            "struct Point { string z; }; };"
        )
        with pytest.raises(DefinitionConflictError):
            db.extend_definitions(clash)
        assert db.definitions().query_type("T::Doc2") is None

    def test_data_version_counts_writes(self, db: Any, s: Schema) -> None:
        v0 = db.data_version()
        g = history(db, s)
        assert db.data_version() == v0 + len(g)
        db.create_blobs([(BlobLayout(), b"a"), (BlobLayout(), b"b")])
        assert db.data_version() == v0 + len(g) + 1

    # -- several connections --------------------------------------------------------------
    def test_reads_follow_other_connections(
        self, db: Any, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        peer = cdb_factory.peer(db)
        assert peer.uuid() == db.uuid()
        r = build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"]
        assert peer.commit_exists(r) and peer.head_commit_ids() == {r}
        ms = CommitMutableState(peer.state(r))
        ms.union_in_set(s.nums, s.k1, ".", {2})
        c = peer.commit_mutations("by the peer", ms)
        assert db.head_commit_ids() == {c}
        assert db.state(c).get(s.nums, s.k1) == {1, 2}
        blob = peer.create_blob(b"shared")
        assert db.blob(blob) == b"shared"

    def test_definitions_extended_by_a_peer(
        self, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        db = cdb_factory(Definitions())
        peer = cdb_factory.peer(db)
        assert db.definitions().query_attachment("T::Doc.nums") is None
        peer.extend_definitions(s.defs)
        assert db.definitions().query_attachment("T::Doc.nums") is not None
        r = build(peer, {"r": (None, s.doc(s.nums).set({7}))})["r"]
        assert db.state(r).get("T::Doc.nums", s.k1) == {7}

    def test_concurrent_writers_lose_nothing(
        self, db: Any, cdb_factory: CommitDatabaseFactory, s: Schema
    ) -> None:
        root = build(db, {"r": (None, s.doc(s.counter).set(0))})["r"]
        peers = [cdb_factory.peer(db) for _ in range(3)]
        errors: list[BaseException] = []
        made: list[list[CommitId]] = [[] for _ in peers]

        def work(conn: Any, index: int) -> None:
            try:
                head = root
                key = Key(s.k1.concept, uuid.UUID(int=index + 1))
                for n in range(15):
                    ms = CommitMutableState(conn.state(head))
                    ms.set(s.counter, key, n)
                    head = conn.commit_mutations(f"{index}-{n}", ms)
                    made[index].append(head)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(p, i)) for i, p in enumerate(peers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert db.commit_count() == 1 + 3 * 15
        assert db.commit_ids() == {root} | {c for chain in made for c in chain}
        assert db.head_commit_ids() == {chain[-1] for chain in made}
        for index, chain in enumerate(made):
            key = Key(s.k1.concept, uuid.UUID(int=index + 1))
            assert db.state(chain[-1]).get(s.counter, key) == 14
