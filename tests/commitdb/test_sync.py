"""CommitSynchronizer between two local LMDB databases: directions, blobs, definitions,
idempotence, change detection, interruption and resumption."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

import pytest

from commitdb.blobs import BlobLayout
from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitData
from commitdb.definitions import Definitions
from commitdb.dsm import load_text
from commitdb.errors import DefinitionConflictError
from commitdb.ids import BlobId, CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.sync import (
    MODE_FETCH,
    MODE_PUSH,
    MODE_SYNC,
    CommitSynchronizer,
    SyncInfo,
    normalize_mode,
)
from tests.commitdb.builders import Graph, Schema, build, disable, enable, merge, schema

ROOT = FsPath(__file__).resolve().parents[2]

EXTRA = """
namespace U {6a2f0000-0000-4000-8000-000000000002} {
concept Thing;
attachment<Thing, string> label;
};
"""

OTHER = """
namespace V {6a2f0000-0000-4000-8000-000000000003} {
concept Gadget;
attachment<Gadget, int64> weight;
};
"""

CONFLICT = """
namespace T {5e1f0000-0000-4000-8000-000000000001} {
struct Point { int64 x; int64 y; int64 z; };
};
"""


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture
def s() -> Schema:
    return schema()


@pytest.fixture
def a(tmp_path: FsPath, s: Schema) -> Iterator[CommitDatabase]:
    db = CommitDatabase.create(tmp_path / "a", s.defs, durable=False)
    yield db
    db.close()


@pytest.fixture
def b(tmp_path: FsPath, s: Schema) -> Iterator[CommitDatabase]:
    db = CommitDatabase.create(tmp_path / "b", s.defs, durable=False)
    yield db
    db.close()


class Diverged:
    """Two databases sharing a root, each with its own branch, merges, masks and blobs."""

    def __init__(self, a: CommitDatabase, b: CommitDatabase, s: Schema) -> None:
        n, r = s.doc(s.nums), s.doc(s.rec)
        x = s.doc(s.xs, s.k2)
        base = build(a, {"r": (None, n.set({0}), r.set(s.rec_value(name="root")))})
        CommitSynchronizer(a, b, MODE_FETCH).sync()
        self.blob_a = a.create_blob(b"A" * 3000)
        self.blob_b = b.create_blob(b"B" * 5000, BlobLayout("float", 2))
        self.orphan_a = a.create_blob(b"orphan of a")
        self.orphan_b = b.create_blob(b"orphan of b")
        self.ga = build(
            a,
            {
                "a1": ("r", n.union({1})),
                "a2": ("a1", r.update(".picture", self.blob_a), r.update(".count", 7)),
                "a3": ("r", n.union({2}), s.doc(s.counter).set(3)),
                "am": merge("a2", "a3"),
                "ad": disable("am", "a1"),
            },
            into=base,
        )
        self.gb = build(
            b,
            {
                "b1": ("r", x.set(["x", "y"])),
                "b2": ("b1", r.set(s.rec_value(name="b", picture=self.blob_b, tags={4}))),
                "b3": ("b1", n.subtract({0}), s.doc(s.note, s.other).set("hello")),
                "bm": merge("b2", "b3"),
                "bd": disable("bm", "b3"),
                "be": enable("bd", "b3"),
            },
            into=base,
        )
        self.a_only = {self.ga[k] for k in ("a1", "a2", "a3", "am", "ad")}
        self.b_only = {self.gb[k] for k in ("b1", "b2", "b3", "bm", "bd", "be")}


def assert_consistent(db: CommitDatabase) -> None:
    """Every stored commit has its parent, its target and the blobs it references."""
    blobs = db.blob_ids()
    for c in db.commit_ids():
        h = db.commit_header(c)
        for link in (h.parent_commit_id, h.target_commit_id):
            assert not link.is_valid or db.commit_exists(link), f"{c.hex()} lost {link.hex()}"
        assert db.commit_blob_ids(db.commit_data(c)) <= blobs, f"{c.hex()} lost a blob"


def assert_same_states(x: CommitDatabase, y: CommitDatabase, commits: set[CommitId]) -> None:
    """For each commit: same header, and the same document for every key of every attachment."""
    defs = x.definitions()
    for c in commits:
        assert x.commit_header(c) == y.commit_header(c)
        sx, sy = x.state(c), y.state(c)
        for att in defs.attachments():
            keys = sx.keys(att)
            assert keys == sy.keys(att)
            for k in keys:
                assert sx.get(att, k) == sy.get(att, k), f"{att.identifier} at {c.hex()[:8]}"


def moved(info: SyncInfo) -> tuple[int, int, int, int]:
    return info.fetch.commits, info.fetch.blobs, info.push.commits, info.push.blobs


class Recorder:
    """A receiver that records the order of blob and commit writes (no batched commits)."""

    def __init__(self, inner: CommitDatabase) -> None:
        self.inner = inner
        self.events: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if name == "create_commit_datas":  # record each commit: hide the batched path
            raise AttributeError(name)
        return getattr(self.inner, name)

    def create_blobs(self, blobs: Any) -> list[BlobId]:
        items = list(blobs)
        added = self.inner.create_blobs(items)
        self.events.append(("blobs", (set(added), sum(len(d) for _, d in items))))
        return added

    def create_commit_data(self, data: CommitData) -> bool:
        self.events.append(("commit", data))
        return self.inner.create_commit_data(data)


class Injected(RuntimeError):
    """The failure a test injects into a receiver."""


class Failing:
    """A receiver that fails after `limit` commits (or at the first blob pack)."""

    def __init__(self, inner: CommitDatabase, limit: int, where: str) -> None:
        self.inner = inner
        self.limit = limit
        self.where = where
        self.stored = 0
        if where == "batched":
            self.create_commit_datas = self._create_commit_datas

    def __getattr__(self, name: str) -> Any:
        if name == "create_commit_datas":  # only the batched variant offers it
            raise AttributeError(name)
        return getattr(self.inner, name)

    def create_blobs(self, blobs: Any) -> list[BlobId]:
        added = self.inner.create_blobs(blobs)
        if self.where == "blobs":
            raise Injected("the receiver failed right after storing a blob pack")
        return added

    def create_commit_data(self, data: CommitData) -> bool:
        if self.stored >= self.limit:
            raise Injected(f"the receiver failed after {self.stored} commits")
        self.stored += 1
        return self.inner.create_commit_data(data)

    def _create_commit_datas(self, datas: list[CommitData]) -> list[bool]:
        return [self.create_commit_data(d) for d in datas]


# --------------------------------------------------------------------------------------------
# Modes


def test_mode_constants_and_reference_spellings(a: CommitDatabase, b: CommitDatabase) -> None:
    assert (MODE_FETCH, MODE_PUSH, MODE_SYNC) == ("fetch", "push", "sync")
    for spelling, canonical in [("Fetch", "fetch"), ("Push", "push"), ("Sync", "sync")]:
        assert normalize_mode(spelling) == canonical
        assert CommitSynchronizer(a, b, spelling).mode == canonical
    assert CommitSynchronizer(a, b).mode == MODE_SYNC
    with pytest.raises(ValueError, match="unknown synchronization mode 'pull'"):
        CommitSynchronizer(a, b, "pull")
    with pytest.raises(ValueError, match="at least 1"):
        CommitSynchronizer(a, b, pack_size=0)


def test_fetch_carries_source_into_target_only(
    a: CommitDatabase, b: CommitDatabase, s: Schema
) -> None:
    d = Diverged(a, b, s)
    before_a = a.commit_ids()
    info = CommitSynchronizer(a, b, "Fetch").sync()
    assert moved(info) == (5, 1, 0, 0)
    assert info.fetch.blob_bytes == 3000 and info.fetch.commit_bytes > 0
    assert a.commit_ids() == before_a
    assert b.commit_ids() == before_a | d.b_only
    assert b.blob_ids() >= {d.blob_a} and d.orphan_a not in b.blob_ids()
    assert_consistent(b)
    assert_same_states(a, b, before_a)


def test_push_carries_target_into_source_only(
    a: CommitDatabase, b: CommitDatabase, s: Schema
) -> None:
    d = Diverged(a, b, s)
    before_b = b.commit_ids()
    info = CommitSynchronizer(a, b, MODE_PUSH).sync()
    assert moved(info) == (0, 0, 6, 1)
    assert info.push.blob_bytes == 5000
    assert b.commit_ids() == before_b
    assert a.commit_ids() == before_b | d.a_only
    assert d.blob_b in a.blob_ids() and d.orphan_b not in a.blob_ids()
    assert a.blob_info(d.blob_b) == b.blob_info(d.blob_b)
    assert a.blob(d.blob_b) == b"B" * 5000
    assert_consistent(a)
    assert_same_states(a, b, before_b)


def test_sync_gives_both_sides_the_union_and_keeps_divergent_heads(
    a: CommitDatabase, b: CommitDatabase, s: Schema
) -> None:
    d = Diverged(a, b, s)
    union = a.commit_ids() | b.commit_ids()
    info = CommitSynchronizer(a, b, MODE_SYNC).sync()
    assert moved(info) == (5, 1, 6, 1)
    assert info.need_transmit and not info.updated_definitions
    assert a.commit_ids() == b.commit_ids() == union
    assert a.head_commit_ids() == b.head_commit_ids() == {d.ga["ad"], d.gb["be"]}
    assert a.blob_ids() == {d.blob_a, d.blob_b, d.orphan_a}
    assert b.blob_ids() == {d.blob_a, d.blob_b, d.orphan_b}
    for db in (a, b):
        assert_consistent(db)
    assert_same_states(a, b, union)
    # the imported merge and masks replay the same on both sides
    assert a.state(d.gb["bd"]).get(s.nums, s.k1) == {0}
    assert b.state(d.ga["ad"]).get(s.nums, s.k1) == {0, 2}
    # the union can be reduced and the result synced back
    m = a.reduce_heads()
    assert m is not None
    assert moved(CommitSynchronizer(a, b).sync()) == (1, 0, 0, 0)
    assert b.head_commit_ids() == {m}
    assert_same_states(a, b, {m})


def test_commits_are_sent_parents_first_and_blobs_before_their_commits(
    a: CommitDatabase, b: CommitDatabase, s: Schema
) -> None:
    d = Diverged(a, b, s)
    stored, blobs = b.commit_ids(), b.blob_ids()
    receiver = Recorder(b)
    CommitSynchronizer(a, receiver, MODE_FETCH).sync()
    assert [kind for kind, _ in receiver.events] == ["blobs"] + ["commit"] * 5
    referencing = 0
    for kind, item in receiver.events:
        if kind == "blobs":
            blobs |= item[0]
            continue
        h = item.header
        assert h.parent_commit_id in stored
        assert not h.target_commit_id.is_valid or h.target_commit_id in stored
        needed = b.commit_blob_ids(item)
        assert needed <= blobs
        referencing += bool(needed)
        stored.add(h.commit_id)
    assert referencing == 1 and d.blob_a in blobs


def test_blobs_travel_in_packs_of_about_pack_size(
    a: CommitDatabase, b: CommitDatabase, s: Schema
) -> None:
    sizes = [1000, 1000, 1000, 4000, 500, 500]
    ids = [a.create_blob(bytes([i]) * n) for i, n in enumerate(sizes)]
    ms = CommitMutableState(a.initial_state())
    for blob_id in ids:
        ms.set(s.rec, s.rec.create_key(), s.rec_value(picture=blob_id))
    a.commit_mutations("blobs", ms)
    receiver = Recorder(b)
    info = CommitSynchronizer(a, receiver, MODE_FETCH, pack_size=2500).sync()
    packs = [item[1] for kind, item in receiver.events if kind == "blobs"]
    assert sum(packs) == sum(sizes) == info.fetch.blob_bytes
    assert info.fetch.blobs == len(sizes)
    assert all(p <= 2500 for p in packs if p != 4000)
    assert 4000 in packs  # larger than a pack: sent alone
    assert len(packs) >= 4
    assert b.blob_ids() == set(ids)


# --------------------------------------------------------------------------------------------
# Idempotence and change detection


def test_a_second_pass_moves_nothing(a: CommitDatabase, b: CommitDatabase, s: Schema) -> None:
    Diverged(a, b, s)
    sync = CommitSynchronizer(a, b)
    assert sync.sync().moved
    second = sync.sync()
    assert second.need_transmit and not second.moved  # compared the id sets: in agreement
    assert second.summary().startswith("up to date: nothing to move (")
    third = sync.sync()
    assert not third.need_transmit and not third.moved  # nobody wrote since: not even compared
    assert third.summary() == "up to date (no change since the last pass)"
    fresh = CommitSynchronizer(a, b).sync()  # a new synchronizer compares, and moves nothing
    assert fresh.need_transmit and moved(fresh) == (0, 0, 0, 0)
    assert not fresh.updated_definitions


def test_writes_from_another_process_are_noticed(
    a: CommitDatabase, b: CommitDatabase, s: Schema, tmp_path: FsPath
) -> None:
    build(a, {"r": (None, s.doc(s.nums).set({1}))})
    sync = CommitSynchronizer(a, b)
    assert sync.sync().moved and not sync.sync().moved  # moved, then found them in agreement
    assert not sync.sync().need_transmit
    script = textwrap.dedent(
        f"""
        from commitdb.commit_database import CommitDatabase
        from commitdb.mutable_state import CommitMutableState
        from tests.commitdb.builders import schema
        s = schema()
        with CommitDatabase.open({str(tmp_path / "b")!r}) as db:
            ms = CommitMutableState(db.state(db.last_commit_id()))
            ms.union_in_set(s.nums, s.k1, ".", {{2}})
            print(db.commit_mutations("elsewhere", ms).hex())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    new = CommitId.from_hex(out.stdout.strip())
    info = sync.sync()
    assert info.need_transmit and moved(info) == (0, 0, 1, 0)
    assert a.state(new).get(s.nums, s.k1) == {1, 2}


def test_writes_through_the_synchronizers_own_handles_are_noticed(
    a: CommitDatabase, b: CommitDatabase, s: Schema
) -> None:
    # the reference misses these (engine spec §8.2 step 1); data_version counts every write
    build(a, {"r": (None, s.doc(s.nums).set({1}))})
    sync = CommitSynchronizer(a, b, MODE_FETCH)
    sync.sync()
    ms = CommitMutableState(a.state(a.last_commit_id()))
    ms.union_in_set(s.nums, s.k1, ".", {5})
    c = a.commit_mutations("same handle", ms)
    assert moved(sync.sync()) == (1, 0, 0, 0)
    assert b.state(c).get(s.nums, s.k1) == {1, 5}


def test_progress_reports_commits_and_blob_bytes(
    a: CommitDatabase, b: CommitDatabase, s: Schema
) -> None:
    Diverged(a, b, s)
    calls: list[tuple[str, int, int]] = []
    CommitSynchronizer(a, b, progress=lambda *c: calls.append(c), batch_size=2).sync()
    fetch = [c for c in calls if c[0] == "fetch"]
    assert fetch[0] == ("fetch", 0, 5) and fetch[-1] == ("fetch", 5, 5)
    assert [d for _, d, _ in fetch] == sorted(d for _, d, _ in fetch)
    assert ("fetch blobs", 3000, 3000) in calls and ("push blobs", 5000, 5000) in calls
    assert [c for c in calls if c[0] == "push"][-1] == ("push", 6, 6)


# --------------------------------------------------------------------------------------------
# Definitions


def test_definitions_are_extended_both_ways(tmp_path: FsPath, s: Schema) -> None:
    extra = load_text(EXTRA, definitions=s.defs.copy())
    other = load_text(OTHER, definitions=s.defs.copy())
    with (
        CommitDatabase.create(tmp_path / "x", extra, durable=False) as x,
        CommitDatabase.create(tmp_path / "y", other, durable=False) as y,
    ):
        thing = extra.check_attachment("U::Thing.label")
        key = thing.create_key()
        ms = CommitMutableState(x.initial_state())
        ms.set(thing, key, "a thing")
        c = x.commit_mutations("thing", ms)
        info = CommitSynchronizer(x, y).sync()
        assert info.updated_definitions
        assert info.fetch.extend_info is not None and info.fetch.extend_info.attachments == [
            thing.runtime_id
        ]
        weight = other.check_attachment("V::Gadget.weight")
        assert info.push.extend_info is not None
        assert info.push.extend_info.attachments == [weight.runtime_id]
        assert x.definitions_hexdigest() == y.definitions_hexdigest()
        assert y.state(c).get("U::Thing.label", key) == "a thing"
        assert "fetch: 1 commit" in info.summary() and "2 definitions added" in info.summary()
        again = CommitSynchronizer(x, y).sync()
        assert not again.updated_definitions and again.fetch.extend_info is None


def test_a_definition_conflict_raises_and_moves_nothing(
    a: CommitDatabase, tmp_path: FsPath, s: Schema
) -> None:
    conflicting = load_text(CONFLICT)
    with CommitDatabase.create(tmp_path / "c", conflicting, durable=False) as c:
        build(a, {"r": (None, s.doc(s.nums).set({1}))})
        blob = c.create_blob(b"c's blob")
        before = (a.commit_ids(), a.blob_ids(), a.definitions_hexdigest())
        before_c = (c.commit_ids(), c.blob_ids(), c.definitions_hexdigest())
        for mode in MODES_ALL:
            with pytest.raises(DefinitionConflictError, match="T::Point"):
                CommitSynchronizer(a, c, mode).sync()
        assert (a.commit_ids(), a.blob_ids(), a.definitions_hexdigest()) == before
        assert (c.commit_ids(), c.blob_ids(), c.definitions_hexdigest()) == before_c
        assert blob in c.blob_ids()


MODES_ALL = (MODE_FETCH, MODE_PUSH, MODE_SYNC)


# --------------------------------------------------------------------------------------------
# Interruption and resumption


@pytest.mark.parametrize(
    ("where", "limit"),
    [("single", 0), ("single", 3), ("batched", 2), ("batched", 4), ("blobs", 0)],
)
def test_an_interrupted_pass_leaves_both_sides_consistent_and_the_next_completes_it(
    a: CommitDatabase, b: CommitDatabase, s: Schema, where: str, limit: int
) -> None:
    d = Diverged(a, b, s)
    union = a.commit_ids() | b.commit_ids()
    before_b = b.commit_ids()
    failing = Failing(b, limit, where)
    with pytest.raises(Injected):
        CommitSynchronizer(a, failing, MODE_SYNC, batch_size=2).sync()
    stored = b.commit_ids() - before_b
    assert len(stored) == (0 if where == "blobs" else limit)
    assert stored <= d.a_only
    assert a.commit_ids() == before_b - d.b_only | d.a_only  # the push never started
    assert d.blob_a in b.blob_ids()  # sent with the first batch, before its commit
    for db in (a, b):
        assert_consistent(db)
    info = CommitSynchronizer(a, b, MODE_SYNC).sync()
    assert info.fetch.commits == 5 - len(stored)
    assert info.fetch.blobs == 0  # not sent again
    assert info.push.commits == 6
    assert a.commit_ids() == b.commit_ids() == union
    for db in (a, b):
        assert_consistent(db)
    assert_same_states(a, b, union)


def test_sync_with_a_memory_database(a: CommitDatabase, s: Schema) -> None:
    g: Graph = build(
        a,
        {
            "r": (None, s.doc(s.xs).set(["p", "q"])),
            "c": ("r", s.doc(s.counter).set(1)),
            "d": ("r", s.doc(s.counter).set(2)),
            "m": merge("c", "d"),
        },
    )
    mem = CommitDatabase.create_in_memory(Definitions())
    try:
        info = CommitSynchronizer(mem, a, MODE_PUSH).sync()
        assert info.push.commits == 4 and info.push.extend_info is not None
        assert mem.state(g["m"]).get(s.counter, s.k1) == 2
        assert_same_states(a, mem, set(g.values()))
    finally:
        mem.close()
