"""Linearization (engine spec §5.2) and Enable/Disable masking (§5.3), on real databases and
on the pure functions of commitdb.dag."""

from __future__ import annotations

import hashlib

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitHeader, CommitKind
from commitdb.dag import Linearization, linearize, mask
from commitdb.ids import CommitId
from tests.commitdb.builders import (
    Graph,
    Schema,
    Spec,
    build,
    disable,
    enable,
    merge,
)


def lin(db: CommitDatabase, g: Graph, name: str) -> list[str]:
    return g.names(db.linearization(g[name]))


def disabled(db: CommitDatabase, g: Graph, name: str) -> set[str]:
    return g.disabled(db.enabled_by_commit_id(g[name]))


def two_branches(s: Schema) -> dict[str, Spec]:
    """r; a1 -> a2 and b1 -> b2 on r, each touching its own element of a set."""
    n = s.doc(s.nums)
    return {
        "r": (None, n.set({0})),
        "a1": ("r", n.union({1})),
        "a2": ("a1", n.union({2})),
        "b1": ("r", n.union({11})),
        "b2": ("b1", n.union({12})),
    }


# --------------------------------------------------------------------------------------------
# Linearization


def test_chain_linearizes_in_parent_order(db: CommitDatabase, s: Schema) -> None:
    g = build(db, two_branches(s))
    assert lin(db, g, "a2") == ["r", "a1", "a2"]
    assert lin(db, g, "r") == ["r"]


def test_diamond_merge_puts_parent_history_first_then_target_only(
    db: CommitDatabase, s: Schema
) -> None:
    g = build(db, {**two_branches(s), "m": merge("a2", "b2"), "n": merge("b2", "a2")})
    assert lin(db, g, "m") == ["r", "a1", "a2", "b1", "b2", "m"]
    assert lin(db, g, "n") == ["r", "b1", "b2", "a1", "a2", "n"]


def test_nested_merge_linearizes_target_in_its_own_order(db: CommitDatabase, s: Schema) -> None:
    c = s.doc(s.counter)
    g = build(
        db,
        {
            **two_branches(s),
            "c1": ("r", c.set(1)),
            "bc": merge("b2", "c1"),
            "m": merge("a2", "bc"),
        },
    )
    assert lin(db, g, "bc") == ["r", "b1", "b2", "c1", "bc"]
    assert lin(db, g, "m") == ["r", "a1", "a2", "b1", "b2", "c1", "bc", "m"]
    # without the merge commits: the reference's r,a1,a2,b1,b2,c1
    kinds = {c: db.commit_header(g[c]).kind for c in g}
    mutations = [x for x in lin(db, g, "m") if kinds[x] == CommitKind.MUTATIONS]
    assert mutations == ["r", "a1", "a2", "b1", "b2", "c1"]


def test_criss_cross_merge(db: CommitDatabase, s: Schema) -> None:
    g = build(
        db,
        {
            **two_branches(s),
            "x": merge("a2", "b2"),
            "y": merge("b2", "a2"),
            "x1": ("x", s.doc(s.counter).set(1)),
            "y1": ("y", s.doc(s.counter).set(2)),
            "m": merge("x1", "y1"),
        },
    )
    assert lin(db, g, "m") == ["r", "a1", "a2", "b1", "b2", "x", "x1", "y", "y1", "m"]
    kinds = {c: db.commit_header(g[c]).kind for c in g}
    mutations = [x for x in lin(db, g, "m") if kinds[x] == CommitKind.MUTATIONS]
    assert mutations == ["r", "a1", "a2", "b1", "b2", "x1", "y1"]
    # the target's later set wins the shared document
    assert db.state(g["m"]).get(s.counter, s.k1) == 2


def test_structural_commits_are_in_the_sequence(db: CommitDatabase, s: Schema) -> None:
    g = build(db, {**two_branches(s), "d": disable("a2", "a1"), "e": enable("d", "a1")})
    assert lin(db, g, "e") == ["r", "a1", "a2", "d", "e"]


def test_linearization_only_holds_reachable_commits(db: CommitDatabase, s: Schema) -> None:
    g = build(db, {**two_branches(s), "m": merge("a2", "b1")})
    assert lin(db, g, "m") == ["r", "a1", "a2", "b1", "m"]  # b2 is not reachable
    assert set(db.enabled_by_commit_id(g["m"])) == {g[x] for x in ["r", "a1", "a2", "b1", "m"]}


def pure_header(
    name: str, parent: str | None, kind: CommitKind = CommitKind.MUTATIONS, target: str = ""
) -> CommitHeader:
    def cid(n: str | None) -> CommitId:
        return CommitId(hashlib.sha256(n.encode()).digest()) if n else CommitId.INVALID

    return CommitHeader(cid(name), cid(parent), cid(target or None), kind, name, 0.0)


def test_pure_linearize_is_iterative_on_deep_histories() -> None:
    headers: dict[CommitId, CommitHeader] = {}
    prev: str | None = None
    for i in range(20_000):
        h = pure_header(f"c{i}", prev)
        headers[h.commit_id] = h
        prev = f"c{i}"
    side = pure_header("side", "c0")
    headers[side.commit_id] = side
    m = pure_header("m", prev, CommitKind.MERGE, "side")
    headers[m.commit_id] = m
    result = linearize(m.commit_id, headers.__getitem__, {})
    assert len(result) == 20_002
    assert result.order[0] == pure_header("c0", None).commit_id
    assert result.order[-2:] == [side.commit_id, m.commit_id]
    assert result.introduced[m.commit_id] == [side.commit_id]


def test_pure_linearize_of_invalid_is_empty() -> None:
    result = linearize(CommitId.INVALID, lambda c: pytest.fail("no lookup expected"))
    assert result.order == []
    assert isinstance(result, Linearization)


def test_pure_linearize_memo_gives_same_result_as_cold() -> None:
    hs = [
        pure_header("r", None),
        pure_header("a", "r"),
        pure_header("b", "r"),
        pure_header("x", "a", CommitKind.MERGE, "b"),
        pure_header("y", "b", CommitKind.MERGE, "a"),
        pure_header("z", "x", CommitKind.MERGE, "y"),
    ]
    headers = {h.commit_id: h for h in hs}
    memo: dict[CommitId, Linearization] = {}
    warm = [linearize(h.commit_id, headers.__getitem__, memo).order for h in hs]
    cold = [linearize(h.commit_id, headers.__getitem__).order for h in hs]
    assert warm == cold
    names = {h.commit_id: h.label for h in hs}
    assert [names[c] for c in cold[-1]] == ["r", "a", "b", "x", "y", "z"]


def test_pure_mask_latest_decision_wins() -> None:
    hs = [
        pure_header("r", None),
        pure_header("a", "r"),
        pure_header("d", "a", CommitKind.DISABLE, "a"),
        pure_header("e", "d", CommitKind.ENABLE, "a"),
        pure_header("d2", "e", CommitKind.DISABLE, "a"),
    ]
    headers = {h.commit_id: h for h in hs}
    names = {h.commit_id: h.label for h in hs}
    flags = mask(linearize(hs[3].commit_id, headers.__getitem__), headers.__getitem__)
    assert {names[c] for c, v in flags.items() if not v} == set()
    flags = mask(linearize(hs[4].commit_id, headers.__getitem__), headers.__getitem__)
    assert {names[c] for c, v in flags.items() if not v} == {"a"}


# --------------------------------------------------------------------------------------------
# Masking: §5.3 and §10.2 rows 8-10


def test_disable_masks_a_commit_and_its_effect(db: CommitDatabase, s: Schema) -> None:
    g = build(db, {**two_branches(s), "d": disable("a2", "a1")})
    assert disabled(db, g, "d") == {"a1"}
    assert db.state(g["d"]).get(s.nums, s.k1) == {0, 2}
    assert db.state(g["a2"]).get(s.nums, s.k1) == {0, 1, 2}  # history is not rewritten


def test_disable_scope_depends_on_merge_side(db: CommitDatabase, s: Schema) -> None:
    """Row 8: a Disable only affects commits that precede it in the sequence."""
    g = build(
        db,
        {
            **two_branches(s),
            "dis": disable("a1", "b1"),  # on branch a, b1 not yet an ancestor
            "m1": merge("dis", "b2"),
            "m2": merge("b2", "dis"),
        },
    )
    assert lin(db, g, "m1") == ["r", "a1", "dis", "b1", "b2", "m1"]
    assert disabled(db, g, "m1") == set()
    assert db.state(g["m1"]).get(s.nums, s.k1) == {0, 1, 11, 12}
    assert lin(db, g, "m2") == ["r", "b1", "b2", "a1", "dis", "m2"]
    assert disabled(db, g, "m2") == {"b1"}
    assert db.state(g["m2"]).get(s.nums, s.k1) == {0, 1, 12}


def test_disable_of_a_commit_outside_the_history_does_nothing(
    db: CommitDatabase, s: Schema
) -> None:
    g = build(db, {**two_branches(s), "d": disable("a2", "b2")})
    assert disabled(db, g, "d") == set()
    assert db.state(g["d"]).get(s.nums, s.k1) == {0, 1, 2}


def test_competing_enable_disable_latest_in_linearization_wins(
    db: CommitDatabase, s: Schema
) -> None:
    """Row 9: A disables a1; B (containing a1) disables then re-enables a1."""
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.set({0})),
            "a1": ("r", n.union({1})),
            "A": disable("a1", "a1"),
            "x": ("a1", s.doc(s.counter).set(1)),
            "Bd": disable("x", "a1"),
            "B": enable("Bd", "a1"),
            "AB": merge("A", "B"),
            "BA": merge("B", "A"),
        },
    )
    assert lin(db, g, "AB") == ["r", "a1", "A", "x", "Bd", "B", "AB"]
    assert "a1" not in disabled(db, g, "AB")
    assert db.state(g["AB"]).get(s.nums, s.k1) == {0, 1}
    assert lin(db, g, "BA") == ["r", "a1", "x", "Bd", "B", "A", "BA"]
    assert "a1" in disabled(db, g, "BA")
    assert db.state(g["BA"]).get(s.nums, s.k1) == {0}


def test_disabling_a_merge_masks_what_it_brought(db: CommitDatabase, s: Schema) -> None:
    """Row 10: disable merge(a_name, b_count): b's commit masked, a's kept."""
    rec = s.doc(s.rec)
    g = build(
        db,
        {
            "r": (None, rec.set({"name": "r", "count": 1})),
            "a": ("r", rec.update(".name", "A")),
            "b": ("r", rec.update(".count", 2)),
            "m": merge("a", "b"),
            "d": disable("m", "m"),
        },
    )
    assert (db.state(g["m"]).get(s.rec, s.k1).name, db.state(g["m"]).get(s.rec, s.k1).count) == (
        "A",
        2,
    )
    assert disabled(db, g, "d") == {"m", "b"}
    doc = db.state(g["d"]).get(s.rec, s.k1)
    assert (doc.name, doc.count) == ("A", 1)


def test_enable_after_disabling_a_merge_revives_one_brought_commit(
    db: CommitDatabase, s: Schema
) -> None:
    g = build(
        db,
        {
            **two_branches(s),
            "m": merge("a2", "b2"),
            "d": disable("m", "m"),
            "e": enable("d", "b1"),
        },
    )
    assert disabled(db, g, "d") == {"m", "b1", "b2"}
    assert disabled(db, g, "e") == {"m", "b2"}
    assert db.state(g["e"]).get(s.nums, s.k1) == {0, 1, 2, 11}


def test_introduced_is_what_the_merge_brought_into_this_sequence(
    db: CommitDatabase, s: Schema
) -> None:
    """§5.3: r; a1, b1 on r; x = merge(a1, b1); q1 on b1; S = merge(q1, x); disable(S, x)
    leaves b1 enabled (it came from q1's side); when b1 arrives only through x, it is masked.

    What a merge masks is its *target-only* commits: a1, x's parent, arrives in S through x
    too but is not something x introduced, so it stays enabled in both cases.
    """
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.set({0})),
            "a1": ("r", n.union({1})),
            "b1": ("r", n.union({2})),
            "x": merge("a1", "b1"),
            "q1": ("b1", n.union({3})),
            "S": merge("q1", "x"),
            "dS": disable("S", "x"),
            "p1": ("r", n.union({4})),
            "T": merge("p1", "x"),
            "dT": disable("T", "x"),
        },
    )
    assert lin(db, g, "S") == ["r", "b1", "q1", "a1", "x", "S"]
    assert disabled(db, g, "dS") == {"x"}
    assert db.state(g["dS"]).get(s.nums, s.k1) == {0, 1, 2, 3}
    assert lin(db, g, "T") == ["r", "p1", "a1", "b1", "x", "T"]
    assert disabled(db, g, "dT") == {"x", "b1"}
    assert db.state(g["dT"]).get(s.nums, s.k1) == {0, 1, 4}


def test_masked_merge_inside_a_masked_merge(db: CommitDatabase, s: Schema) -> None:
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.set({0})),
            "a1": ("r", n.union({1})),
            "b1": ("r", n.union({2})),
            "c1": ("r", n.union({3})),
            "bc": merge("b1", "c1"),
            "m": merge("a1", "bc"),
            "d": disable("m", "m"),
        },
    )
    assert disabled(db, g, "d") == {"m", "bc", "b1", "c1"}
    assert db.state(g["d"]).get(s.nums, s.k1) == {0, 1}


def test_disabling_a_disable_reenables_its_target(db: CommitDatabase, s: Schema) -> None:
    """How redo works: hiding the hider."""
    g = build(
        db,
        {**two_branches(s), "undo": disable("a2", "a2"), "redo": disable("undo", "undo")},
    )
    assert disabled(db, g, "undo") == {"a2"}
    assert disabled(db, g, "redo") == {"undo"}
    assert db.state(g["redo"]).get(s.nums, s.k1) == {0, 1, 2}


def test_masked_enable_has_no_effect(db: CommitDatabase, s: Schema) -> None:
    g = build(
        db,
        {
            **two_branches(s),
            "d": disable("a2", "a1"),
            "e": enable("d", "a1"),
            "de": disable("e", "e"),
        },
    )
    assert disabled(db, g, "e") == set()
    assert disabled(db, g, "de") == {"e", "a1"}
    assert db.state(g["de"]).get(s.nums, s.k1) == {0, 2}


def test_enable_of_a_never_disabled_commit_is_accepted(db: CommitDatabase, s: Schema) -> None:
    g = build(db, {**two_branches(s), "e": enable("a2", "a1")})
    assert disabled(db, g, "e") == set()
    assert db.state(g["e"]).get(s.nums, s.k1) == {0, 1, 2}


def test_disable_may_target_its_own_parent_or_a_non_ancestor(db: CommitDatabase, s: Schema) -> None:
    g = build(db, {**two_branches(s), "d1": disable("a2", "a2"), "d2": disable("a2", "b1")})
    assert disabled(db, g, "d1") == {"a2"}
    assert disabled(db, g, "d2") == set()


def test_disabling_the_root_set_makes_later_path_ops_no_ops(db: CommitDatabase, s: Schema) -> None:
    rec = s.doc(s.rec)
    g = build(
        db,
        {
            "r": (None, rec.set({"name": "r"}), s.doc(s.nums).set({0})),
            "a1": ("r", rec.update(".count", 5), s.doc(s.nums).union({1})),
            "d": disable("a1", "r"),
        },
    )
    st = db.state(g["d"])
    assert st.get(s.rec, s.k1) is None
    assert not st.has(s.nums, s.k1)
    assert st.keys(s.rec) == set()
    trace = st.trace(s.rec, s.k1)
    assert trace.value is None
    assert g.names(trace.skipped_commits) == ["r", "a1"]


def test_enabled_by_commit_id_lists_every_kind(db: CommitDatabase, s: Schema) -> None:
    g = build(
        db,
        {
            **two_branches(s),
            "m": merge("a2", "b2"),
            "d": disable("m", "a1"),
            "e": enable("d", "b1"),
        },
    )
    flags = g.flags(db.enabled_by_commit_id(g["e"]))
    assert flags == {
        "r": True,
        "a1": False,
        "a2": True,
        "b1": True,
        "b2": True,
        "m": True,
        "d": True,
        "e": True,
    }
    assert g.flags(db.state(g["e"]).enabled_by_commit_id()) == flags
