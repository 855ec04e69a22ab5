"""CommitState: reads, immutability, tracing, eval actions — and the replay oracle.

The oracle test builds random histories (mutations, merges, disables, enables) and checks,
for every commit and document, that ``db.state(c).get`` equals a naive replay written here
straight from engine spec §5.2-§5.4: linearize by the formula, mask by the backward scan,
replay every enabled Mutations commit's opcodes (decoded from ``db.commit_data``) in order.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path as FsPath
from typing import Any

import pytest

from commitdb.codec import pack, unpack
from commitdb.commit_database import CommitDatabase, entry_fields
from commitdb.commits import CommitKind
from commitdb.errors import UnknownAttachmentError, ValidationError
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.opcodes import ABSENT, OpKind, ReplayFailure, apply_op, decode_ops, decode_program
from commitdb.state import CommitState, _entry_ops
from commitdb.types import Attachment
from commitdb.values import END, Key, XArray
from tests.commitdb.builders import Graph, Schema, build, disable, merge, open_db, schema

# --------------------------------------------------------------------------------------------
# Fixtures


# --------------------------------------------------------------------------------------------
# The reference: engine spec §5.2-§5.4, written as naively as possible

Lin = tuple[list[CommitId], dict[CommitId, set[CommitId]]]


class Reference:
    """Naive state reconstruction from headers and commit datas."""

    def __init__(self, db: CommitDatabase) -> None:
        self.db = db
        self.defs = db.definitions()
        self._lin: dict[CommitId, Lin] = {}
        self._programs: dict[CommitId, dict[bytes, bytes]] = {}
        self._masks: dict[tuple[CommitId, ...], dict[CommitId, bool]] = {}

    def lin(self, c: CommitId) -> Lin:
        """(sequence, introduced-by-merge) of a commit, by the §5.2 formula."""
        if not c.is_valid:
            return [], {}
        if c in self._lin:
            return self._lin[c]
        h = self.db.commit_header(c)
        if h.kind != CommitKind.MERGE:
            order, intro = self.lin(h.parent_commit_id)
            result: Lin = ([*order, c], intro)
        else:
            result = self._merge(h.parent_commit_id, h.target_commit_id, c)
        self._lin[c] = result
        return result

    def _merge(self, parent: CommitId, target: CommitId, m: CommitId | None) -> Lin:
        p_order, p_intro = self.lin(parent)
        t_order, t_intro = self.lin(target)
        seen = set(p_order)
        brought = [x for x in t_order if x not in seen]
        brought_set = set(brought)
        intro = dict(p_intro)
        # a merge of the target side introduces here only what it brought that P lacked
        for inner, xs in t_intro.items():
            if inner in brought_set:
                intro[inner] = xs & brought_set
        order = [*p_order, *brought]
        if m is not None:
            intro[m] = brought_set
            order.append(m)
        return order, intro

    def mask(self, lin: Lin) -> dict[CommitId, bool]:
        """§5.3: scan backwards, first decision wins."""
        order, intro = lin
        decided: dict[CommitId, bool] = {}
        for c in reversed(order):
            h = self.db.commit_header(c)
            if decided.get(c) is False:
                if h.kind == CommitKind.MERGE:
                    for x in intro.get(c, set()):
                        decided.setdefault(x, False)
                continue
            decided.setdefault(c, True)
            if h.kind == CommitKind.DISABLE:
                decided.setdefault(h.target_commit_id, False)
            elif h.kind == CommitKind.ENABLE:
                decided.setdefault(h.target_commit_id, True)
        return {c: decided.get(c, True) for c in order}

    def doc(self, name: tuple[CommitId, ...], lin: Lin, att: Attachment, key: Key) -> Any:
        """§5.4: every enabled Mutations commit's opcodes for the document, in order."""
        address = att.runtime_id.bytes + key.concept.runtime_id.bytes + key.id.bytes
        enabled = self._masks.get(name)
        if enabled is None:
            enabled = self._masks[name] = self.mask(lin)
        doc: Any = ABSENT
        for c in lin[0]:
            if not enabled[c] or self.db.commit_header(c).kind != CommitKind.MUTATIONS:
                continue
            program = self._programs.get(c)
            if program is None:
                program = self._programs[c] = self._split(self.db.commit_data(c).program)
            if address not in program:
                continue
            # decoded afresh each time: the evaluator owns the values it applies
            for op in decode_ops(program[address], att.document_type, self.defs):
                try:
                    doc = apply_op(doc, op)
                except ReplayFailure:
                    pass
        return None if doc is ABSENT else doc

    def _split(self, raw: bytes) -> dict[bytes, bytes]:
        """Per-document encoded opcodes of a program, checked against a full decode."""
        if not raw:
            return {}
        decode_program(raw, self.defs)  # the program decodes as a whole
        return {address: pack(ops) for address, ops in ((e[0], e[1]) for e in unpack(raw))}

    def state_doc(self, c: CommitId, att: Attachment, key: Key) -> Any:
        return self.doc((c,), self.lin(c), att, key)

    def merge_doc(self, ours: CommitId, theirs: CommitId, att: Attachment, key: Key) -> Any:
        return self.doc((ours, theirs), self._merge(ours, theirs, None), att, key)


# --------------------------------------------------------------------------------------------
# Random histories


class RandomHistory:
    """Writes a random history of commits, merges, disables and enables."""

    def __init__(
        self, db: CommitDatabase, s: Schema, rng: random.Random, narrow: bool = False
    ) -> None:
        self.db = db
        self.s = s
        self.rng = rng
        self.commits: list[CommitId] = []
        self.positions = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(5)]
        self.docs: list[tuple[Attachment, Key]] = [
            (s.nums, s.k1),
            (s.nums, s.k2),
            (s.rec, s.k1),
            (s.xs, s.k1),
            (s.counter, s.special),
        ]
        if narrow:  # few documents, so that concurrent commits collide on them
            self.docs = [(s.nums, s.k1), (s.counter, s.special)]
        self.live_views: list[tuple[CommitId, Attachment, Key, Any]] = []

    def small_set(self) -> set[int]:
        return {self.rng.randrange(6) for _ in range(self.rng.randrange(1, 3))}

    def pos(self) -> uuid.UUID:
        return self.rng.choice(self.positions)

    def xarray(self) -> XArray:
        xa = XArray()
        for p in self.rng.sample(self.positions, self.rng.randrange(0, 3)):
            xa.append(self.rng.choice("abc"), p)
        return xa

    def mutate(self, ms: CommitMutableState, att: Attachment, key: Key) -> None:
        rng = self.rng
        s = self.s
        r = rng.random()
        if att == s.nums:
            if r < 0.25:
                ms.set(att, key, self.small_set())
            elif r < 0.55:
                ms.union_in_set(att, key, ".", self.small_set())
            elif r < 0.85:
                ms.subtract_in_set(att, key, ".", self.small_set())
            elif r < 0.93:
                ms.diff(att, key, self.small_set())
            else:
                ms.delete(att, key)
        elif att == s.counter:
            if r < 0.9:
                ms.set(att, key, rng.randrange(100))
            else:
                ms.delete(att, key)
        elif att == s.xs:
            if r < 0.15:
                ms.set(att, key, self.xarray())
            elif r < 0.5:
                before = END if rng.random() < 0.3 else self.pos()
                ms.insert_in_xarray(att, key, ".", before, self.pos(), rng.choice("pqr"))
            elif r < 0.75:
                ms.update_in_xarray(att, key, ".", self.pos(), rng.choice("uvw"))
            else:
                ms.remove_in_xarray(att, key, ".", self.pos())
        else:
            self.mutate_rec(ms, att, key, r)

    def mutate_rec(self, ms: CommitMutableState, att: Attachment, key: Key, r: float) -> None:
        rng = self.rng
        names = ["a", "b", "c"]
        if r < 0.12:
            ms.set(att, key, {"name": rng.choice(names), "count": rng.randrange(9)})
        elif r < 0.25:
            ms.update(att, key, ".count", rng.randrange(9))
        elif r < 0.35:
            ms.union_in_set(att, key, ".tags", self.small_set())
        elif r < 0.42:
            ms.subtract_in_set(att, key, ".tags", self.small_set())
        elif r < 0.50:
            ms.union_in_map(att, key, ".scores", {rng.choice(names): rng.randrange(9)})
        elif r < 0.56:
            ms.update_in_map(att, key, ".scores", {rng.choice(names): rng.randrange(9)})
        elif r < 0.62:
            ms.subtract_in_map(att, key, ".scores", {rng.choice(names)})
        elif r < 0.68:
            ms.update(att, key, f".scores['{rng.choice(names)}']", rng.randrange(9))
        elif r < 0.76:
            before = END if rng.random() < 0.4 else self.pos()
            ms.insert_in_xarray(att, key, ".items", before, self.pos(), rng.choice("xyz"))
        elif r < 0.82:
            ms.remove_in_xarray(att, key, ".items", self.pos())
        elif r < 0.87:
            ms.update(att, key, ".maybe!.x", rng.randrange(9))
        elif r < 0.91:
            ms.update(att, key, ".maybe", {"x": 1, "y": rng.randrange(9)})
        elif r < 0.96:
            cur = ms.get(att, key)
            if cur is not None:
                cur.count = rng.randrange(9)
                cur.tags = self.small_set()
                ms.diff(att, key, cur, recursive=rng.random() < 0.5)
        else:
            ms.delete(att, key)

    def pick(self) -> CommitId:
        """A commit, preferring heads (so that branches grow and get merged)."""
        if self.rng.random() < 0.6:
            return self.rng.choice(sorted(self.db.head_commit_ids()))
        return self.rng.choice(self.commits)

    def add(self, cid: CommitId) -> None:
        if cid not in self.commits:
            self.commits.append(cid)

    def mutation(self, parent: CommitId | None) -> CommitId:
        """A Mutations commit of 0-3 random mutations on `parent`."""
        ms = CommitMutableState(self.db.state(parent))
        for _ in range(self.rng.randrange(0, 4)):
            att, key = self.rng.choice(self.docs)
            self.mutate(ms, att, key)
        views = [(att, key, ms.get(att, key)) for att, key in self.docs]
        cid = self.db.commit_mutations(f"m{len(self.commits)}", ms)
        self.live_views.extend((cid, att, key, v) for att, key, v in views)
        self.add(cid)
        return cid

    def step(self) -> None:
        rng = self.rng
        db = self.db
        r = rng.random()
        if not self.commits or r < 0.42:
            self.mutation(self.pick() if self.commits and rng.random() > 0.05 else None)
        elif r < 0.82:
            a, b = self.pick(), self.pick()
            if a == b or not db.is_mergeable(a, b):
                return
            m1 = db.merge_commit("merge", a, b)
            self.add(m1)
            if r < 0.62:
                return
            # a criss-cross: both merge orders, work on one side, then join them
            m2 = db.merge_commit("merge", b, a)
            self.add(m2)
            c = self.mutation(m2)
            self.add(db.merge_commit("merge", m1, c))
        else:
            make = db.disable_commit if r < 0.93 else db.enable_commit
            self.add(make("mask", self.pick(), rng.choice(self.commits)))


def check_against_reference(db: CommitDatabase, h: RandomHistory, fresh: bool) -> int:
    """Every commit x document of the history against the reference; returns the count."""
    ref = Reference(db)
    checked = 0
    for c in h.commits:
        st = CommitState(db, c) if fresh else db.state(c)
        lin = ref.lin(c)
        assert db.linearization(c) == lin[0]
        assert st.enabled_by_commit_id() == ref.mask(lin)
        for att, key in h.docs:
            expected = ref.state_doc(c, att, key)
            assert st.get(att, key) == expected, (c, att, key)
            assert st.has(att, key) == (expected is not None)
            checked += 1
        for att in (h.s.nums, h.s.rec):
            want = {k for a, k in h.docs if a == att and ref.state_doc(c, a, k) is not None}
            assert st.keys(att) == want
    return checked


def run_random_history(db: CommitDatabase, s: Schema, seed: int, steps: int) -> RandomHistory:
    h = RandomHistory(db, s, random.Random(seed), narrow=seed % 3 == 2)
    for _ in range(steps):
        h.step()
    return h


ORACLE_SEEDS = range(200)


@pytest.mark.parametrize("kind", ["lmdb", "memory"])
def test_states_match_the_naive_reference_on_random_histories(kind: str, tmp_path: FsPath) -> None:
    """The most important test: snapshot fast paths and general replay against §5.2-§5.4."""
    total = 0
    merges = 0
    for seed in ORACLE_SEEDS:
        s = schema()
        db = open_db(kind, tmp_path, s.defs, name=f"db{seed}")
        try:
            h = run_random_history(db, s, seed, steps=28)
            total += check_against_reference(db, h, fresh=True)
            # the live view of each mutable state equals the replay of its commit
            for cid, att, key, view in h.live_views:
                assert CommitState(db, cid).get(att, key) == view
            # virtual merges equal the reference of a merge, and the written merge
            ref = Reference(db)
            rng = random.Random(seed)
            for _ in range(6):
                a, b = rng.sample(h.commits, 2)
                if db.is_mergeable(a, b):
                    merges += 1
                    st = db.merge_state(a, b)
                    for att, key in h.docs:
                        assert st.get(att, key) == ref.merge_doc(a, b, att, key)
        finally:
            db.close()
    assert total > 20_000 and merges > 400


def test_reference_agrees_after_reopening_lmdb(tmp_path: FsPath) -> None:
    for seed in range(4):
        s = schema()
        path = tmp_path / f"db{seed}"
        db = CommitDatabase.create(path, s.defs, durable=False)
        h = run_random_history(db, s, 1000 + seed, steps=25)
        db.close()
        db = CommitDatabase.open(path)
        try:
            h.db = db
            check_against_reference(db, h, fresh=False)
        finally:
            db.close()


def test_reference_agrees_on_a_copy_made_of_commit_datas(tmp_path: FsPath) -> None:
    """Copied commits carry no snapshot: reads replay, and commits on top compute new ones."""
    for seed in range(6):
        s = schema()
        src = open_db("memory", tmp_path, s.defs)
        h = run_random_history(src, s, 2000 + seed, steps=25)
        dst = open_db("lmdb", tmp_path, s.defs, name=f"copy{seed}")
        try:
            for c in src.commit_ids_in_order():
                dst.create_commit_data(src.commit_data(c))
            h.db = dst
            check_against_reference(dst, h, fresh=True)
            for _ in range(15):
                h.step()
            check_against_reference(dst, h, fresh=True)
        finally:
            dst.close()
            src.close()


def test_criss_cross_snapshot_is_not_reused_in_another_order(db: CommitDatabase, s: Schema) -> None:
    """Regression: c (on y = merge(b1, a1)) holds its document replayed as b1, a1, c. S =
    merge(x, c) with x = merge(a1, b1) has the same three commits in the order a1, b1, c;
    c's snapshot must not be taken for S's value."""
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, s.doc(s.counter).set(0)),
            "a1": ("r", n.set({1})),
            "b1": ("r", n.set({2})),
            "x": merge("a1", "b1"),
            "y": merge("b1", "a1"),
            "c": ("y", n.union({5})),
            "S": merge("x", "c"),
            "S1": ("S", n.union({6})),
        },
    )
    assert db.state(g["c"]).get(s.nums, s.k1) == {1, 5}
    assert db.state(g["S"]).get(s.nums, s.k1) == {2, 5}
    assert CommitState(db, g["S"]).trace(s.nums, s.k1).value == {2, 5}
    assert db.state(g["S1"]).get(s.nums, s.k1) == {2, 5, 6}
    assert db.merge_state(g["x"], g["c"]).get(s.nums, s.k1) == {2, 5}


# --------------------------------------------------------------------------------------------
# Reads


def test_initial_state_is_empty(db: CommitDatabase, s: Schema) -> None:
    build(db, {"r": (None, s.doc(s.nums).set({1}))})
    for st in (db.initial_state(), db.state(None), db.state(CommitId.INVALID)):
        assert st.commit_id() == CommitId.INVALID
        assert st.keys(s.nums) == set() and not st.has(s.nums, s.k1)
        assert st.get(s.nums, s.k1) is None and st.enumerate(s.nums) == []
        assert st.eval_actions() == [] and st.enabled_by_commit_id() == {}
        assert st.trace(s.nums, s.k1).value is None
    assert "initial" in repr(db.initial_state())


def test_keys_has_get_enumerate_across_commits(db: CommitDatabase, s: Schema) -> None:
    n1, n2, n3 = (s.doc(s.nums, k) for k in (s.k1, s.k2, s.special))
    g = build(
        db,
        {
            "r": (None, n1.set({1}), n2.set({2})),
            "a": ("r", n1.union({10}), n3.set({3})),
            "b": ("a", n2.delete()),
            "c": ("b", n2.union({5})),  # on a deleted document: no effect
            "d": ("c", n2.set({7}), n1.delete(), n1.set({8})),
        },
    )
    expect = {
        "r": {s.k1: {1}, s.k2: {2}},
        "a": {s.k1: {1, 10}, s.k2: {2}, s.special: {3}},
        "b": {s.k1: {1, 10}, s.special: {3}},
        "c": {s.k1: {1, 10}, s.special: {3}},
        "d": {s.k1: {8}, s.k2: {7}, s.special: {3}},
    }
    for name, docs in expect.items():
        st = db.state(g[name])
        assert st.keys(s.nums) == set(docs), name
        assert st.enumerate(s.nums) == sorted(docs.items()), name
        for key in (s.k1, s.k2, s.special):
            assert st.has(s.nums, key) == (key in docs)
            assert st.get(s.nums, key) == docs.get(key)
        assert st.keys(s.rec) == set()
        assert st.keys("T::Doc.nums") == set(docs)  # attachments by identifier too


def test_reads_refuse_unknown_attachments_and_wrong_keys(db: CommitDatabase, s: Schema) -> None:
    st = db.state(build(db, {"r": (None, s.doc(s.nums).set({1}))})["r"])
    with pytest.raises(UnknownAttachmentError):
        st.get("T::Doc.nope", s.k1)
    with pytest.raises(ValidationError):
        st.get(s.nums, s.other)
    with pytest.raises(ValidationError):
        st.has(s.nums, "k")  # type: ignore[arg-type]


def test_a_state_is_immutable_and_get_returns_a_copy(db: CommitDatabase, s: Schema) -> None:
    rec = s.doc(s.rec)
    g = build(db, {"r": (None, rec.set(s.rec_value(name="a", tags={1}, scores={"x": 1})))})
    st = db.state(g["r"])
    doc = st.get(s.rec, s.k1)
    doc.tags.add(99)
    doc.scores["y"] = 2
    doc.name = "changed"
    assert st.get(s.rec, s.k1) == s.rec_value(name="a", tags={1}, scores={"x": 1})
    # later commits do not change a state built before them
    g = build(db, {"a": ("r", rec.update(".name", "b"), s.doc(s.nums).set({1}))}, into=g)
    assert st.get(s.rec, s.k1).name == "a"
    assert st.keys(s.nums) == set()
    assert db.state(g["a"]).get(s.rec, s.k1).name == "b"
    fresh_old = CommitState(db, g["r"])
    assert fresh_old.get(s.rec, s.k1).name == "a" and fresh_old.keys(s.nums) == set()


def test_get_copies_structures_held_in_sets_and_map_keys(db: CommitDatabase, s: Schema) -> None:
    g = build(
        db,
        {
            "r": (
                None,
                s.doc(s.points).set({s.point(1, 1)}),
                s.doc(s.by_point).set({s.point(2, 2): 5}),
            )
        },
    )
    st = db.state(g["r"])
    for p in st.get(s.points, s.k1):
        p.x = 99
    for p in st.get(s.by_point, s.k1):
        p.x = 99
    assert st.get(s.points, s.k1) == {s.point(1, 1)}
    assert st.get(s.by_point, s.k1) == {s.point(2, 2): 5}


def test_mutable_state_writes_do_not_leak_into_the_base_state(
    db: CommitDatabase, s: Schema
) -> None:
    g = build(db, {"r": (None, s.doc(s.rec).set(s.rec_value(tags={1})))})
    base = db.state(g["r"])
    ms = CommitMutableState(base)
    ms.union_in_set(s.rec, s.k1, ".tags", {2})
    ms.update(s.rec, s.k1, ".name", "x")
    assert base.get(s.rec, s.k1) == s.rec_value(tags={1})
    db.commit_mutations("m", ms)
    assert base.get(s.rec, s.k1) == s.rec_value(tags={1})


def test_reads_in_key_order_are_served_ahead_and_stay_private(
    db: CommitDatabase, s: Schema
) -> None:
    # enough documents, read in index order, for the read-ahead windows to grow
    keys = [Key(s.k1.concept, uuid.UUID(int=i + 1)) for i in range(300)]
    ms = CommitMutableState(db.initial_state())
    for i, k in enumerate(keys):
        ms.set(s.rec, k, s.rec_value(name=f"n{i}", tags={i}))
    head = db.commit_mutations("bulk", ms)
    st = CommitState(db, head)
    firsts = [st.get(s.rec, k) for k in keys]
    assert [d.name for d in firsts] == [f"n{i}" for i in range(300)]
    for d in firsts:
        d.tags.add(-1)  # the caller owns what get returned
    assert st.has(s.rec, keys[299]) and not st.has(s.rec, Key(s.k1.concept, uuid.UUID(int=999)))
    again = [st.get(s.rec, k) for k in keys]
    assert [d.tags for d in again] == [{i} for i in range(300)]
    again[0].name = "changed"
    assert st.get(s.rec, keys[0]).name == "n0"
    assert st.keys(s.rec) == set(keys)
    # a state read ahead is a base for the next commit like any other
    st2 = CommitState(db, head)
    assert [st2.get(s.rec, k).name for k in keys[:20]] == [f"n{i}" for i in range(20)]
    ms2 = CommitMutableState(st2)
    ms2.union_in_set(s.rec, keys[10], ".tags", {7})
    ms2.update(s.rec, keys[15], ".name", "x")  # read ahead, never read
    nxt = db.commit_mutations("next", ms2)
    after = CommitState(db, nxt)
    assert after.get(s.rec, keys[10]).tags == {10, 7}
    assert after.get(s.rec, keys[15]).name == "x"
    assert after.get(s.rec, keys[16]).name == "n16"
    assert [after.get(s.rec, k).name for k in keys][20:] == [f"n{i}" for i in range(20, 300)]


def test_cache_counters_and_preload(db: CommitDatabase, s: Schema) -> None:
    g = build(
        db,
        {
            "r": (
                None,
                s.doc(s.nums).set({1}),
                s.doc(s.nums, s.k2).set({2}),
                s.doc(s.counter).set(1),
            )
        },
    )
    st = CommitState(db, g["r"])
    assert st.cache_hit_rate() == 0.0
    seconds = st.cache_preload()
    assert isinstance(seconds, float) and seconds >= 0
    requests, hits = st.cache_requests, st.cache_hits
    assert requests >= 3
    assert st.get(s.nums, s.k1) == {1}
    assert (st.cache_requests, st.cache_hits) == (requests + 1, hits + 1)
    assert 0 < st.cache_hit_rate() <= 1


# --------------------------------------------------------------------------------------------
# Concurrency outcomes (§10.2 rows 6, 7, 21, 22)


def test_merges_are_not_commutative_on_a_set(db: CommitDatabase, s: Schema) -> None:
    """Row 6: {1}; A: +10, +11; B: +20, -10, +21."""
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.set({1})),
            "a1": ("r", n.union({10})),
            "A": ("a1", n.union({11})),
            "b1": ("r", n.union({20})),
            "b2": ("b1", n.subtract({10})),
            "B": ("b2", n.union({21})),
            "AB": merge("A", "B"),
            "BA": merge("B", "A"),
        },
    )
    assert db.state(g["AB"]).get(s.nums, s.k1) == {1, 11, 20, 21}
    assert db.state(g["BA"]).get(s.nums, s.k1) == {1, 10, 11, 20, 21}


def test_set_versus_update_across_branches(db: CommitDatabase, s: Schema) -> None:
    """Row 7: A sets the whole document, B updates a field."""
    rec = s.doc(s.rec)
    g = build(
        db,
        {
            "r": (None, rec.set(s.rec_value(name="r", count=1))),
            "A": ("r", rec.set(s.rec_value(name="A-set", count=100))),
            "B": ("r", rec.update(".count", 2)),
            "AB": merge("A", "B"),
            "BA": merge("B", "A"),
            "U1": ("r", rec.update(".name", "U1")),
            "U2": ("r", rec.update(".count", 7)),
            "U": merge("U1", "U2"),
        },
    )

    def pair(name: str) -> tuple[str, int]:
        doc = db.state(g[name]).get(s.rec, s.k1)
        return doc.name, doc.count

    assert pair("AB") == ("A-set", 2)
    assert pair("BA") == ("A-set", 100)
    assert pair("U") == ("U1", 7)  # disjoint updates: both kept


def xarray_base(db: CommitDatabase, s: Schema) -> tuple[Graph, list[uuid.UUID]]:
    xs = XArray()
    positions = [xs.append(v) for v in "abc"]
    return build(db, {"r": (None, s.doc(s.xs).set(xs))}), positions


def test_concurrent_xarray_inserts_before_the_same_anchor(db: CommitDatabase, s: Schema) -> None:
    """Row 21: merge(P, Q) -> a, P, Q, b, c; reversed -> a, Q, P, b, c."""
    g, (_, b, _) = xarray_base(db, s)
    x = s.doc(s.xs)
    g = build(
        db,
        {
            "P": ("r", x.insert(b, uuid.UUID(int=1), "P")),
            "Q": ("r", x.insert(b, uuid.UUID(int=2), "Q")),
            "PQ": merge("P", "Q"),
            "QP": merge("Q", "P"),
        },
        into=g,
    )
    assert list(db.state(g["PQ"]).get(s.xs, s.k1)) == ["a", "P", "Q", "b", "c"]
    assert list(db.state(g["QP"]).get(s.xs, s.k1)) == ["a", "Q", "P", "b", "c"]


def test_remove_versus_update_of_one_xarray_element(db: CommitDatabase, s: Schema) -> None:
    """Row 22: merge(remove, update) resurrects; merge(update, remove) removes."""
    g, (_, b, _) = xarray_base(db, s)
    x = s.doc(s.xs)
    g = build(
        db,
        {
            "rm": ("r", x.x_remove(b)),
            "up": ("r", x.x_update(b, "B-updated")),
            "rm_up": merge("rm", "up"),
            "up_rm": merge("up", "rm"),
        },
        into=g,
    )
    assert list(db.state(g["rm_up"]).get(s.xs, s.k1)) == ["a", "B-updated", "c"]
    assert list(db.state(g["up_rm"]).get(s.xs, s.k1)) == ["a", "c"]


def test_merge_state_equals_the_state_of_the_written_merge(db: CommitDatabase, s: Schema) -> None:
    rec, n = s.doc(s.rec), s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, rec.set(s.rec_value(name="r")), n.set({0})),
            "a1": ("r", rec.update(".count", 1), n.union({1})),
            "a2": ("a1", rec.union({5}, ".tags")),
            "d": disable("a2", "a1"),
            "b1": ("r", rec.update(".count", 2), n.delete()),
            "b2": ("b1", s.doc(s.counter).set(3)),
        },
    )
    for ours, theirs in [("d", "b2"), ("b2", "d"), ("a1", "b1")]:
        virtual = db.merge_state(g[ours], g[theirs])
        assert virtual.commit_id() == CommitId.INVALID
        written = db.state(db.merge_commit("m", g[ours], g[theirs]))
        for att in (s.rec, s.nums, s.counter):
            assert virtual.keys(att) == written.keys(att)
            assert virtual.enumerate(att) == written.enumerate(att)
        assert [a.header for a in virtual.eval_actions()] == [
            a.header for a in written.eval_actions()
        ]
        assert {
            c: f for c, f in written.enabled_by_commit_id().items() if c != written.commit_id()
        } == virtual.enabled_by_commit_id()


# --------------------------------------------------------------------------------------------
# History: eval_actions and trace


def test_eval_actions_lists_mutations_latest_first_with_flags(
    db: CommitDatabase, s: Schema
) -> None:
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.set({0})),
            "a1": ("r", n.union({1})),
            "b1": ("r", n.union({2})),
            "m": merge("a1", "b1"),
            "d": disable("m", "a1"),
            "c": ("d", n.union({3})),
        },
    )
    actions = db.state(g["c"]).eval_actions()
    assert [g.name(a.header.commit_id) for a in actions] == ["c", "b1", "a1", "r"]
    assert [a.enabled for a in actions] == [True, True, False, True]
    assert actions[0].header == db.commit_header(g["c"])


def test_trace_reports_each_opcode_since_the_last_set(db: CommitDatabase, s: Schema) -> None:
    """Row 14: the trace messages of unresolvable paths."""
    rec = s.doc(s.rec)
    g = build(
        db,
        {
            "old": (None, rec.set(s.rec_value(name="old")), rec.update(".count", 1)),
            "r": ("old", rec.set(s.rec_value(values=[1, 2]))),
            "a": (
                "r",
                rec.update(".values[4]", 9),
                rec.update(".maybe!.x", 3),
                rec.update(".places['zz'].x", 1),
                rec.update(".", s.rec_value(name="root")),
                rec.update(".count", 5),
            ),
        },
    )
    trace = db.state(g["a"]).trace(s.rec, s.k1)
    assert trace.attachment == s.rec and trace.key == s.k1
    assert trace.value == s.rec_value(values=[1, 2], count=5)
    assert [(g.name(t.commit_id), t.op.kind, t.error) for t in trace.steps] == [
        ("r", OpKind.DOCUMENT_SET, None),
        ("a", OpKind.DOCUMENT_UPDATE, "Index 4 is out of range"),
        ("a", OpKind.DOCUMENT_UPDATE, "Try to unwrap empty optional"),
        ("a", OpKind.DOCUMENT_UPDATE, "Key 'zz' not found"),
        ("a", OpKind.DOCUMENT_UPDATE, "unexpected root Path"),
        ("a", OpKind.DOCUMENT_UPDATE, None),
    ]
    assert len(trace.failures) == 4
    # the traced opcodes are intact after replay (the evaluator did not keep them)
    assert trace.steps[0].op.value == s.rec_value(values=[1, 2])


def test_trace_of_an_absent_document_and_of_disabled_commits(db: CommitDatabase, s: Schema) -> None:
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.union({1})),
            "a": ("r", n.set({2})),
            "b": ("a", n.union({3})),
            "d": disable("b", "b"),
        },
    )
    assert [t.error for t in db.state(g["r"]).trace(s.nums, s.k1).steps] == []
    assert db.state(g["r"]).trace(s.nums, s.k1).skipped_commits == [g["r"]]
    trace = db.state(g["d"]).trace(s.nums, s.k1)
    assert trace.value == {2}
    assert g.names(trace.skipped_commits) == ["b"]
    assert [g.name(t.commit_id) for t in trace.steps] == ["a"]


def test_merge_snapshots_onto_a_clean_parent_equal_the_general_replay(tmp_path: FsPath) -> None:
    """A merge onto a clean parent computes its derived entries from the parent's document
    and the brought entries: they equal the general replay of the merged history."""
    compared = read_in_place = 0
    for seed in range(40):
        s = schema()
        db = open_db("lmdb", tmp_path, s.defs, name=f"ms{seed}")
        try:
            h = run_random_history(db, s, 3000 + seed, steps=28)
            rng = random.Random(seed)
            for _ in range(40):
                a, b = rng.sample(h.commits, 2)
                if not db.is_mergeable(a, b) or not db._record(a).clean:
                    continue
                st = CommitState(db, CommitId.INVALID, virtual_merge=(a, b))
                snaps = st._merge_snapshots()
                if snaps is None:
                    continue
                for address, snap, touches, all_enabled, history in snaps:
                    att = db.definitions().query_attachment(uuid.UUID(bytes=address[:16]))
                    assert att is not None
                    r = st._resolve_general(address, att, None)
                    general = (r.encoding(att.document_type), r.touches, r.all_enabled)
                    assert (snap, touches, all_enabled) == general
                    assert history == r.history()
                    compared += 1
            # the in-place read of an entry's opcodes agrees with the full decode
            with db._read() as txn:
                for _, raw in txn.items("docs"):
                    found = _entry_ops(raw)
                    e = entry_fields(raw)
                    assert found is None or found == (e[1], bool(e[5]))
                    read_in_place += found is not None
        finally:
            db.close()
    assert compared > 100 and read_in_place > 100
