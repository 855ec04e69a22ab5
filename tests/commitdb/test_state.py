"""CommitState: reads, immutability, tracing, eval actions — and the replay oracle.

The oracle test builds random histories (mutations, merges, disables, enables) and checks,
for every commit and document, that ``db.state(c).get`` equals a naive replay written here
straight from engine spec §5.2-§5.4: linearize by the formula, mask by the backward scan,
replay every enabled Mutations commit's opcodes (decoded from ``db.commit_data``) in order.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitKind
from commitdb.errors import CommitError, UnknownAttachmentError, ValidationError
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.codec import pack, unpack
from commitdb.opcodes import ABSENT, OpKind, ReplayFailure, apply_op, decode_ops, decode_program
from commitdb.types import Attachment
from commitdb.values import END, Key, XArray
from tests.commitdb.builders import Schema, build, disable, merge, open_db, schema

# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def s() -> Schema:
    return schema()


@pytest.fixture(params=["lmdb", "memory"])
def db(request: pytest.FixtureRequest, tmp_path: FsPath, s: Schema) -> Iterator[CommitDatabase]:
    d = open_db(request.param, tmp_path, s.defs)
    yield d
    d.close()


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
        return {
            address: pack(ops)
            for address, ops in ((e[0], e[1]) for e in unpack(raw))
        }

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
        if not self.commits or r < 0.45:
            self.mutation(self.pick() if self.commits and rng.random() > 0.05 else None)
        elif r < 0.8:
            a, b = self.pick(), self.pick()
            if a == b or not db.is_mergeable(a, b):
                return
            m1 = db.merge_commit("merge", a, b)
            self.add(m1)
            if rng.random() < 0.4:  # a criss-cross: both merge orders, then work on one
                m2 = db.merge_commit("merge", b, a)
                self.add(m2)
                if rng.random() < 0.5:
                    c = self.mutation(m2)
                    self.add(db.merge_commit("merge", m1, c))
        else:
            make = db.disable_commit if r < 0.93 else db.enable_commit
            self.add(make("mask", self.pick(), rng.choice(self.commits)))


def check_against_reference(db: CommitDatabase, h: RandomHistory, fresh: bool) -> int:
    ref = Reference(db)
    checked = 0
    for c in h.commits:
        st = db.state(c) if not fresh else _fresh_state(db, c)
        for att, key in h.docs:
            expected = ref.state_doc(c, att, key)
            assert st.get(att, key) == expected, (db.linearization(c), att, key)
            assert st.has(att, key) == (expected is not None)
            checked += 1
        for att in (h.s.nums, h.s.rec):
            want = {k for a, k in h.docs if a == att and ref.state_doc(c, a, k) is not None}
            assert st.keys(att) == want
    return checked


def _fresh_state(db: CommitDatabase, c: CommitId) -> Any:
    from commitdb.state import CommitState

    return CommitState(db, c)


def run_random_history(db: CommitDatabase, s: Schema, seed: int, steps: int) -> RandomHistory:
    rng = random.Random(seed)
    h = RandomHistory(db, s, rng, narrow=seed % 2 == 1)
    for _ in range(steps):
        h.step()
    return h


ORACLE_SEEDS = range(70)


@pytest.mark.parametrize("kind", ["lmdb", "memory"])
def test_states_match_the_naive_reference_on_random_histories(
    kind: str, tmp_path: FsPath
) -> None:
    total = 0
    for seed in ORACLE_SEEDS:
        s = schema()
        db = open_db(kind, tmp_path, s.defs, name=f"db{seed}")
        try:
            h = run_random_history(db, s, seed, steps=28)
            total += check_against_reference(db, h, fresh=True)
            # the live view of each mutable state equals the replay of its commit
            for cid, att, key, view in h.live_views:
                assert _fresh_state(db, cid).get(att, key) == view
            # virtual merges equal the reference of a merge
            ref = Reference(db)
            rng = random.Random(seed)
            for _ in range(4):
                a, b = rng.sample(h.commits, 2)
                if db.is_mergeable(a, b):
                    st = db.merge_state(a, b)
                    for att, key in h.docs:
                        assert st.get(att, key) == ref.merge_doc(a, b, att, key)
        finally:
            db.close()
    assert total > 5000


def test_reference_agrees_after_reopening_lmdb(tmp_path: FsPath) -> None:
    for seed in range(5):
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


# silence "imported but unused" until the scenario tests below use them
_ = (copy, CommitError, UnknownAttachmentError, ValidationError, OpKind, build, disable, merge)
