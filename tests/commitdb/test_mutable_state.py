"""CommitMutableState: validation before recording, the recorded opcodes of every mutator,
``diff`` expansion (engine spec §3.3, §10.2 rows 13-20), the live view, and sealing."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.dsm import load_text
from commitdb.errors import CommitError, PathError, UnknownAttachmentError, ValidationError
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.opcodes import Op, OpKind, doc_address
from commitdb.paths import Path
from commitdb.values import END, Key, XArray
from tests.commitdb.builders import Schema, build


def fresh(db: CommitDatabase, commit_id: CommitId | None = None) -> CommitMutableState:
    return CommitMutableState(db.state(commit_id))


def ops(ms: CommitMutableState) -> list[Op]:
    return [op for _, op in ms.mutations().all_ops()]


def described(ms: CommitMutableState) -> list[str]:
    return [op.describe() for op in ops(ms)]


def P(text: str) -> Path:
    return Path.parse(text)


def with_rec(db: CommitDatabase, s: Schema, **fields: Any) -> CommitMutableState:
    """A mutable state over a commit holding a Rec document at k1."""
    ms = fresh(db)
    ms.set(s.rec, s.k1, s.rec_value(**fields))
    return fresh(db, db.commit_mutations("base", ms))


# --------------------------------------------------------------------------------------------
# Recording


def test_each_mutator_records_its_opcode(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s, scores={"x": 1})
    pos = uuid.UUID(int=7)
    ms.update(s.rec, s.k1, ".count", 3)
    ms.union_in_set(s.rec, s.k1, ".tags", {1, 2})
    ms.subtract_in_set(s.rec, s.k1, ".tags", [2])
    ms.union_in_map(s.rec, s.k1, ".scores", {"y": 2})
    ms.update_in_map(s.rec, s.k1, ".scores", {"x": 5})
    ms.subtract_in_map(s.rec, s.k1, ".scores", {"y"})
    assert ms.insert_in_xarray(s.rec, s.k1, ".items", END, pos, "a") == pos
    ms.update_in_xarray(s.rec, s.k1, ".items", pos, "b")
    ms.remove_in_xarray(s.rec, s.k1, ".items", pos)
    ms.set(s.nums, s.k2, {4})
    ms.delete(s.nums, s.k2)
    assert [(op.kind, str(op.path) if op.path else None) for op in ops(ms)] == [
        (OpKind.DOCUMENT_UPDATE, ".count"),
        (OpKind.SET_UNION, ".tags"),
        (OpKind.SET_SUBTRACT, ".tags"),
        (OpKind.MAP_UNION, ".scores"),
        (OpKind.MAP_UPDATE, ".scores"),
        (OpKind.MAP_SUBTRACT, ".scores"),
        (OpKind.XARRAY_INSERT, ".items"),
        (OpKind.XARRAY_UPDATE, ".items"),
        (OpKind.XARRAY_UPDATE, ".items"),
        (OpKind.XARRAY_REMOVE, ".items"),
        (OpKind.DOCUMENT_SET, None),
        (OpKind.DOCUMENT_DELETE, None),
    ]
    doc = ms.get(s.rec, s.k1)
    assert (doc.count, doc.tags, doc.scores, list(doc.items)) == (3, {1}, {"x": 5}, [])
    assert doc.items.tombstones() == [pos]
    assert not ms.has(s.nums, s.k2)


def test_mutations_are_grouped_by_document_in_first_touch_order(
    db: CommitDatabase, s: Schema
) -> None:
    ms = fresh(db)
    ms.set(s.nums, s.k2, {1})
    ms.set(s.counter, s.k1, 1)
    ms.union_in_set(s.nums, s.k2, ".", {2})
    prog = ms.mutations()
    assert prog.addresses() == [doc_address(s.nums, s.k2), doc_address(s.counter, s.k1)]
    assert [op.kind for op in prog.ops(doc_address(s.nums, s.k2))] == [
        OpKind.DOCUMENT_SET,
        OpKind.SET_UNION,
    ]


def test_recorded_opcodes_keep_their_values(db: CommitDatabase, s: Schema) -> None:
    """A later mutation must not show through an earlier opcode's value."""
    ms = fresh(db)
    ms.set(s.rec, s.k1, s.rec_value(name="a"))
    ms.update(s.rec, s.k1, ".count", 5)
    ms.union_in_map(s.rec, s.k1, ".places", {"h": s.point(1, 1)})
    ms.update(s.rec, s.k1, ".places['h'].x", 9)
    recorded = ops(ms)
    assert recorded[0].value == s.rec_value(name="a")
    assert recorded[2].value == {"h": s.point(1, 1)}
    assert ms.get(s.rec, s.k1).places == {"h": s.point(9, 1)}
    recorded[0].value.count = 77  # a caller changing what it got back changes nothing
    assert ops(ms)[0].value.count == 0


def test_values_are_copied_in(db: CommitDatabase, s: Schema) -> None:
    ms = fresh(db)
    value = {1, 2}
    ms.set(s.nums, s.k1, value)
    value.add(3)
    assert ms.get(s.nums, s.k1) == {1, 2}
    assert ops(ms)[0].value == {1, 2}


def test_insert_in_xarray_records_insert_then_update(db: CommitDatabase, s: Schema) -> None:
    """Row 19: XArray_Insert(before, new) + XArray_Update(new, value)."""
    ms = fresh(db)
    ms.set(s.xs, s.k1, XArray())
    first = ms.insert_in_xarray(s.xs, s.k1, ".", END, None, "a")
    second = ms.insert_in_xarray(s.xs, s.k1, ".", first, None, "b")
    assert isinstance(first, uuid.UUID) and first != second
    recorded = ops(ms)[1:]
    assert [op.kind for op in recorded] == [OpKind.XARRAY_INSERT, OpKind.XARRAY_UPDATE] * 2
    assert recorded[0].position == END.bytes and recorded[0].position2 == first.bytes
    assert recorded[1].position == first.bytes and recorded[1].value == "a"
    assert recorded[2].position == first.bytes and recorded[2].position2 == second.bytes
    assert list(ms.get(s.xs, s.k1)) == ["b", "a"]


def test_mutations_on_an_absent_document_are_recorded_without_effect(
    db: CommitDatabase, s: Schema
) -> None:
    """Row 13."""
    ms = fresh(db)
    ms.update(s.rec, s.k1, ".count", 1)
    ms.union_in_set(s.rec, s.k1, ".tags", {1})
    ms.union_in_map(s.table, s.k1, ".", {"a": 1})
    ms.remove_in_xarray(s.xs, s.k1, ".", uuid.UUID(int=3))
    assert [op.kind for op in ops(ms)] == [
        OpKind.DOCUMENT_UPDATE,
        OpKind.SET_UNION,
        OpKind.MAP_UNION,
        OpKind.XARRAY_REMOVE,
    ]
    assert not ms.has(s.rec, s.k1) and ms.get(s.rec, s.k1) is None
    assert ms.keys(s.rec) == set() and ms.keys(s.table) == set()
    c = db.commit_mutations("absent", ms)
    st = db.state(c)
    assert not st.has(s.rec, s.k1) and st.keys(s.rec) == set()
    assert [e.error for e in st.trace(s.rec, s.k1).steps] == []  # nothing since a set


def test_unresolvable_paths_are_recorded_and_skipped(db: CommitDatabase, s: Schema) -> None:
    """Row 14 at record time: accepted, recorded, no effect."""
    ms = with_rec(db, s, values=[1, 2])
    before = ms.get(s.rec, s.k1)
    ms.update(s.rec, s.k1, ".values[4]", 9)
    ms.update(s.rec, s.k1, ".maybe!.x", 3)
    ms.update(s.rec, s.k1, ".places['zz'].x", 1)
    ms.update(s.rec, s.k1, ".", s.rec_value(name="root"))
    assert len(ops(ms)) == 4
    assert ms.get(s.rec, s.k1) == before


def test_update_on_a_missing_map_key_inserts(db: CommitDatabase, s: Schema) -> None:
    """Row 15."""
    ms = with_rec(db, s, scores={"x": 1})
    ms.update(s.rec, s.k1, ".scores['new']", 7)
    assert ms.get(s.rec, s.k1).scores == {"new": 7, "x": 1}
    st = db.state(db.commit_mutations("insert", ms))
    assert st.get(s.rec, s.k1).scores == {"new": 7, "x": 1}


def test_map_union_update_subtract(db: CommitDatabase, s: Schema) -> None:
    """Row 16."""
    ms = with_rec(db, s, scores={"x": 1})
    ms.union_in_map(s.rec, s.k1, ".scores", {"x": 100, "y": 2})
    assert ms.get(s.rec, s.k1).scores == {"x": 100, "y": 2}
    ms.update_in_map(s.rec, s.k1, ".scores", {"x": 5, "z": 9})
    assert ms.get(s.rec, s.k1).scores == {"x": 5, "y": 2}
    ms.subtract_in_map(s.rec, s.k1, ".scores", {"y", "missing"})
    assert ms.get(s.rec, s.k1).scores == {"x": 5}


def test_empty_operands_record_nothing(db: CommitDatabase, s: Schema) -> None:
    """Row 17: and a commit of only such calls is the empty commit."""
    base = with_rec(db, s)
    base_id = base.base_commit_id()
    base.union_in_set(s.rec, s.k1, ".tags", set())
    base.subtract_in_set(s.rec, s.k1, ".tags", [])
    base.union_in_map(s.rec, s.k1, ".scores", {})
    base.subtract_in_map(s.rec, s.k1, ".scores", set())
    base.update_in_map(s.rec, s.k1, ".scores", {})
    assert ops(base) == []
    assert db.commit_mutations("empty ops", base) == db.commit_mutations(
        "empty", fresh(db, base_id)
    )


def test_delete_extension(db: CommitDatabase, s: Schema) -> None:
    g = build(db, {"r": (None, s.doc(s.nums).set({1}), s.doc(s.nums, s.k2).set({2}))})
    ms = fresh(db, g["r"])
    ms.delete(s.nums, s.k1)
    ms.union_in_set(s.nums, s.k1, ".", {5})  # no document: no effect
    assert ms.keys(s.nums) == {s.k2}
    assert not ms.has(s.nums, s.k1)
    c = db.commit_mutations("delete", ms)
    assert db.state(c).keys(s.nums) == {s.k2}
    again = fresh(db, c)
    again.set(s.nums, s.k1, {7})
    assert db.state(db.commit_mutations("again", again)).get(s.nums, s.k1) == {7}


# --------------------------------------------------------------------------------------------
# Validation: refused calls record nothing


def refused(ms: CommitMutableState, exc: type[Exception], call: Any, text: str = "") -> None:
    """The call raises `exc` mentioning `text`, and nothing was recorded."""
    before = described(ms)
    with pytest.raises(exc) as info:
        call()
    assert text in str(info.value)
    assert described(ms) == before


def test_unknown_attachment_is_refused(db: CommitDatabase, s: Schema) -> None:
    ms = fresh(db)
    other = load_text(
        "namespace O {5e1f0000-0000-4000-8000-0000000000ff} { concept C; attachment<C, int64> n; };"
    )
    att = other.check_attachment("O::C.n")
    refused(ms, UnknownAttachmentError, lambda: ms.set(att, att.create_key(), 1), "O::C.n")
    refused(ms, UnknownAttachmentError, lambda: ms.set("T::Doc.nope", s.k1, 1))


def test_an_attachment_added_after_the_state_was_built_is_found(
    db: CommitDatabase, s: Schema
) -> None:
    ms = fresh(db)
    extra = load_text(
        "namespace T {5e1f0000-0000-4000-8000-000000000001} { concept Doc; "
        "attachment<Doc, string> label; };"
    )
    db.extend_definitions(extra)
    label = db.definitions().check_attachment("T::Doc.label")
    ms.set(label, s.k1, "hello")
    assert db.state(db.commit_mutations("label", ms)).get(label, s.k1) == "hello"


def test_wrong_value_type_names_attachment_key_and_path(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s)
    where = f"T::Doc.rec[{s.k1.id}]"
    refused(ms, ValidationError, lambda: ms.set(s.rec, s.k1, {"count": "x"}), f"{where}.count")
    refused(ms, ValidationError, lambda: ms.update(s.rec, s.k1, ".count", "x"), f"{where}.count")
    refused(
        ms,
        ValidationError,
        lambda: ms.update(s.rec, s.k1, ".scores['a']", "x"),
        f"expected int64, got str 'x' at {where}.scores['a']",
    )
    refused(ms, ValidationError, lambda: ms.union_in_set(s.rec, s.k1, ".tags", {"x"}), where)
    refused(ms, ValidationError, lambda: ms.set(s.counter, s.k1, 2**70), "int64")


def test_container_kind_mismatch_is_refused(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s)
    refused(ms, ValidationError, lambda: ms.union_in_set(s.rec, s.k1, ".name", {1}), "set")
    refused(ms, ValidationError, lambda: ms.union_in_map(s.rec, s.k1, ".tags", {1: 1}), "map")
    refused(
        ms,
        ValidationError,
        lambda: ms.remove_in_xarray(s.rec, s.k1, ".tags", uuid.uuid4()),
        "xarray",
    )


def test_unresolvable_and_irregular_paths_are_refused(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s)
    refused(ms, PathError, lambda: ms.update(s.rec, s.k1, ".nope", 1), "unknown field 'nope'")
    refused(ms, PathError, lambda: ms.update(s.rec, s.k1, ".count.x", 1))
    refused(ms, PathError, lambda: ms.update(s.rec, s.k1, ".tags.element[0]", 1), "not a regular")
    refused(
        ms, PathError, lambda: ms.update(s.rec, s.k1, ".scores['a'].entry[0]", "b"), "not a regular"
    )
    refused(ms, PathError, lambda: ms.update(s.rec, s.k1, 5, 1), "Path")  # type: ignore[arg-type]


def test_end_is_refused_where_a_real_position_is_needed(db: CommitDatabase, s: Schema) -> None:
    """Row 20: update END raises at call time."""
    ms = with_rec(db, s)
    refused(ms, ValidationError, lambda: ms.update_in_xarray(s.rec, s.k1, ".items", END, "x"))
    refused(ms, ValidationError, lambda: ms.remove_in_xarray(s.rec, s.k1, ".items", END))
    refused(ms, ValidationError, lambda: ms.insert_in_xarray(s.rec, s.k1, ".items", END, END, "x"))
    refused(
        ms,
        ValidationError,
        lambda: ms.insert_in_xarray(s.rec, s.k1, ".items", "end", None, "x"),  # type: ignore[arg-type]
    )


def test_nil_and_foreign_keys_are_refused(db: CommitDatabase, s: Schema) -> None:
    ms = fresh(db)
    nil = Key(s.k1.concept, uuid.UUID(int=0))
    refused(ms, ValidationError, lambda: ms.set(s.nums, nil, {1}), "nil key")
    refused(ms, ValidationError, lambda: ms.set(s.nums, s.other, {1}), "T::Other")
    refused(ms, ValidationError, lambda: ms.set(s.nums, "k", {1}))  # type: ignore[arg-type]
    assert ms.get(s.nums, nil) is None  # reads accept the nil key


def test_a_sub_concept_key_is_accepted_and_is_its_own_document(
    db: CommitDatabase, s: Schema
) -> None:
    ms = fresh(db)
    ms.set(s.nums, s.special, {1})
    same_id_as_doc = Key(s.k1.concept, s.special.id)
    assert ms.get(s.nums, s.special) == {1}
    assert ms.get(s.nums, same_id_as_doc) is None
    st = db.state(db.commit_mutations("sub", ms))
    assert st.keys(s.nums) == {s.special}
    assert st.get(s.nums, s.special) == {1}


# --------------------------------------------------------------------------------------------
# diff (row 18, §3.3)


def test_diff_on_an_absent_document_sets_it(db: CommitDatabase, s: Schema) -> None:
    ms = fresh(db)
    ms.diff(s.rec, s.k1, s.rec_value(name="a"))
    assert [op.kind for op in ops(ms)] == [OpKind.DOCUMENT_SET]


def test_diff_of_an_equal_value_records_nothing(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s, name="a", tags={1}, scores={"x": 1})
    ms.diff(s.rec, s.k1, ms.get(s.rec, s.k1))
    ms.diff(s.rec, s.k1, ms.get(s.rec, s.k1), recursive=True)
    assert ops(ms) == []


def test_diff_of_a_struct_records_one_update_per_changed_field(
    db: CommitDatabase, s: Schema
) -> None:
    ms = with_rec(db, s, name="a", count=1, values=[1], p={"x": 1, "y": 1})
    new = ms.get(s.rec, s.k1)
    new.count = 2
    new.values = [1, 2]
    new.maybe = s.point(3, 3)
    new.p.x = 5
    ms.diff(s.rec, s.k1, new)
    assert described(ms) == [
        "DOCUMENT_UPDATE, .count, 2",
        "DOCUMENT_UPDATE, .values, [1, 2]",
        "DOCUMENT_UPDATE, .maybe, Point(x=3, y=3)",
        "DOCUMENT_UPDATE, .p, Point(x=5, y=1)",  # a nested struct, whole
    ]
    assert ms.get(s.rec, s.k1) == new


def test_recursive_diff_reaches_nested_struct_leaves_only(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(
        db,
        s,
        values=[1],
        p={"x": 1, "y": 1},
        places={"h": {"x": 1, "y": 1}},
        maybe={"x": 0, "y": 0},
    )
    new = ms.get(s.rec, s.k1)
    new.p.x = 5
    new.values[0] = 9
    new.places["h"].x = 9
    new.maybe.y = 4
    ms.diff(s.rec, s.k1, new, recursive=True)
    assert described(ms) == [
        "DOCUMENT_UPDATE, .values, [9]",  # vectors whole
        "DOCUMENT_UPDATE, .maybe, Point(x=0, y=4)",  # optionals whole
        "DOCUMENT_UPDATE, .p.x, 5",
        "MAP_UPDATE, .places, {'h': Point(x=9, y=1)}",  # map values whole
    ]
    assert ms.get(s.rec, s.k1) == new


def test_diff_of_a_set_field_subtracts_then_unites(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s, tags={1, 2})
    new = ms.get(s.rec, s.k1)
    new.tags = {2, 3}
    ms.diff(s.rec, s.k1, new)
    assert described(ms) == ["SET_SUBTRACT, .tags, {1}", "SET_UNION, .tags, {3}"]
    ms2 = with_rec(db, s, name="other", tags={1, 2})
    new2 = ms2.get(s.rec, s.k1)
    new2.tags = {1}
    ms2.diff(s.rec, s.k1, new2)
    assert described(ms2) == ["SET_SUBTRACT, .tags, {2}"]


def test_diff_of_a_map_field_subtracts_updates_unites(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s, scores={"a": 1, "b": 2})
    new = ms.get(s.rec, s.k1)
    new.scores = {"b": 3, "c": 4}
    ms.diff(s.rec, s.k1, new)
    assert described(ms) == [
        "MAP_SUBTRACT, .scores, {'a'}",
        "MAP_UPDATE, .scores, {'b': 3}",
        "MAP_UNION, .scores, {'c': 4}",
    ]
    assert ms.get(s.rec, s.k1).scores == {"b": 3, "c": 4}


def test_diff_of_an_xarray_field_per_position(db: CommitDatabase, s: Schema) -> None:
    items = XArray()
    p1, p2, p3 = (items.append(v) for v in ("one", "two", "three"))
    ms = with_rec(db, s, items=items)
    new = ms.get(s.rec, s.k1)
    new.items.remove(p2)
    p_new = new.items.insert(p3, "new")
    new.items.set(p1, "ONE")
    p_end = new.items.append("end")
    ms.diff(s.rec, s.k1, new)
    recorded = ops(ms)
    kinds = [(op.kind, op.position, op.position2) for op in recorded]
    assert kinds == [
        (OpKind.XARRAY_REMOVE, p2.bytes, None),
        (OpKind.XARRAY_INSERT, END.bytes, p_end.bytes),
        (OpKind.XARRAY_UPDATE, p_end.bytes, None),
        (OpKind.XARRAY_INSERT, p3.bytes, p_new.bytes),
        (OpKind.XARRAY_UPDATE, p_new.bytes, None),
        (OpKind.XARRAY_UPDATE, p1.bytes, None),
    ]
    assert [op.value for op in recorded if op.kind == OpKind.XARRAY_UPDATE] == ["end", "new", "ONE"]
    assert list(ms.get(s.rec, s.k1).items) == ["ONE", "new", "three", "end"]
    # inserting several new positions in a row: each anchor exists when it is used
    ms2 = with_rec(db, s, name="two", items=items)
    new2 = ms2.get(s.rec, s.k1)
    for v in ("x", "y", "z"):
        new2.items.insert(p2, v)
    ms2.diff(s.rec, s.k1, new2)
    assert list(ms2.get(s.rec, s.k1).items) == ["one", "x", "y", "z", "two", "three"]


def test_diff_of_a_reordered_xarray_replaces_it_whole(db: CommitDatabase, s: Schema) -> None:
    items = XArray(["a", "b", "c"])
    ms = with_rec(db, s, items=items)
    positions = items.live_positions()
    reordered = XArray()
    for p in reversed(positions):
        reordered.append(items.at(p), p)
    new = ms.get(s.rec, s.k1)
    new.items = reordered
    ms.diff(s.rec, s.k1, new)
    assert [(op.kind, str(op.path)) for op in ops(ms)] == [(OpKind.DOCUMENT_UPDATE, ".items")]
    assert list(ms.get(s.rec, s.k1).items) == ["c", "b", "a"]
    # at the root of an xarray document: Document_Set
    ms2 = fresh(db)
    ms2.set(s.xs, s.k1, items)
    ms2 = fresh(db, db.commit_mutations("xs", ms2))
    ms2.diff(s.xs, s.k1, reordered)
    assert [op.kind for op in ops(ms2)] == [OpKind.DOCUMENT_SET]


def test_diff_revives_a_removed_position_in_place(db: CommitDatabase, s: Schema) -> None:
    items = XArray()
    a, b = items.append("a"), items.append("b")
    items.remove(a)
    ms = fresh(db)
    ms.set(s.xs, s.k1, items)
    base = db.commit_mutations("xs", ms)
    back = XArray()
    back.append("A", a)
    back.append("b", b)
    ms = fresh(db, base)
    ms.diff(s.xs, s.k1, back)
    assert described(ms) == [f"XARRAY_UPDATE, ., {a}, 'A'"]
    assert ms.get(s.xs, s.k1).items() == back.items()
    # the removed position coming back elsewhere is a reorder: whole replacement
    moved = XArray()
    moved.append("b", b)
    moved.append("A", a)
    ms = fresh(db, base)
    ms.diff(s.xs, s.k1, moved)
    assert [op.kind for op in ops(ms)] == [OpKind.DOCUMENT_SET]
    assert ms.get(s.xs, s.k1).items() == moved.items()


def test_diff_turns_the_document_into_the_value_on_random_values(
    db: CommitDatabase, s: Schema
) -> None:
    rng = random.Random(7)
    pool = [uuid.UUID(int=i + 1) for i in range(6)]

    def xarray() -> XArray:
        x = XArray()
        for p in rng.sample(pool, rng.randrange(0, 5)):
            x.append(rng.choice("abc"), p)
            if rng.random() < 0.2:
                x.remove(p)
        return x

    def value() -> Any:
        return s.rec_value(
            name=rng.choice(["", "a", "b"]),
            count=rng.randrange(3),
            tags=set(rng.sample(range(5), rng.randrange(4))),
            scores={k: rng.randrange(3) for k in rng.sample("xyz", rng.randrange(3))},
            values=[rng.randrange(3) for _ in range(rng.randrange(3))],
            maybe=rng.choice([None, {"x": 1, "y": rng.randrange(2)}]),
            items=xarray(),
            p={"x": rng.randrange(2), "y": rng.randrange(2)},
            places={k: {"x": rng.randrange(2), "y": 0} for k in rng.sample("uv", rng.randrange(3))},
        )

    for i in range(150):
        ms = fresh(db)
        ms.set(s.rec, s.k1, value())
        ms = fresh(db, db.commit_mutations(f"cur {i}", ms))
        new = value()
        ms.diff(s.rec, s.k1, new, recursive=rng.random() < 0.5)
        got = ms.get(s.rec, s.k1)
        assert got.items.items() == new.items.items()
        got.items = new.items
        assert got == new
        live = ms.get(s.rec, s.k1)
        assert db.state(db.commit_mutations(f"diff {i}", ms)).get(s.rec, s.k1) == live


def test_diff_of_an_xarray_rebuilt_from_a_list_removes_and_inserts_all(
    db: CommitDatabase, s: Schema
) -> None:
    ms = fresh(db)
    ms.set(s.xs, s.k1, XArray(["a", "b"]))
    ms = fresh(db, db.commit_mutations("xs", ms))
    ms.diff(s.xs, s.k1, XArray(["a", "b"]))
    assert [op.kind for op in ops(ms)] == [OpKind.XARRAY_REMOVE] * 2 + [
        OpKind.XARRAY_INSERT,
        OpKind.XARRAY_UPDATE,
    ] * 2
    assert list(ms.get(s.xs, s.k1)) == ["a", "b"]


def test_diff_at_the_root_of_sets_maps_and_scalars(db: CommitDatabase, s: Schema) -> None:
    ms = fresh(db)
    ms.set(s.nums, s.k1, {1, 2})
    ms.set(s.table, s.k1, {"a": 1, "b": 2})
    ms.set(s.counter, s.k1, 1)
    ms.set(s.vec, s.k1, [1])
    ms.set(s.opt, s.k1, None)
    ms = fresh(db, db.commit_mutations("docs", ms))
    ms.diff(s.nums, s.k1, {2, 3})
    ms.diff(s.table, s.k1, {"b": 3, "c": 1})
    ms.diff(s.counter, s.k1, 2)
    ms.diff(s.counter, s.k2, 5)  # absent: set
    ms.diff(s.vec, s.k1, [1, 2])
    ms.diff(s.opt, s.k1, s.point(1, 2))
    ms.diff(s.vec, s.k1, [1, 2])  # equal now: nothing
    assert described(ms) == [
        "SET_SUBTRACT, ., {1}",
        "SET_UNION, ., {3}",
        "MAP_SUBTRACT, ., {'a'}",
        "MAP_UPDATE, ., {'b': 3}",
        "MAP_UNION, ., {'c': 1}",
        "DOCUMENT_SET, 2",
        "DOCUMENT_SET, 5",
        "DOCUMENT_SET, [1, 2]",
        "DOCUMENT_SET, Point(x=1, y=2)",
    ]


# --------------------------------------------------------------------------------------------
# Reads, live view, sealing


def test_reads_see_the_working_copy(db: CommitDatabase, s: Schema) -> None:
    g = build(db, {"r": (None, s.doc(s.nums).set({1}), s.doc(s.counter).set(1))})
    base = db.state(g["r"])
    ms = CommitMutableState(base)
    view = ms.attachment_getting()
    assert view is ms and ms.attachment_mutating() is ms
    assert ms.commit_state() is base and ms.base_commit_id() == g["r"]
    assert ms.definitions() is base.definitions()
    ms.union_in_set(s.nums, s.k1, ".", {2})
    ms.set(s.nums, s.k2, {9})
    assert view.get(s.nums, s.k1) == {1, 2}
    assert view.keys(s.nums) == {s.k1, s.k2}
    assert view.enumerate(s.nums) == sorted([(s.k1, {1, 2}), (s.k2, {9})])
    assert base.get(s.nums, s.k1) == {1} and base.keys(s.nums) == {s.k1}  # base untouched
    got = ms.get(s.nums, s.k1)
    got.add(99)
    assert ms.get(s.nums, s.k1) == {1, 2}  # get returns a copy


def test_live_view_equals_the_replayed_commit(db: CommitDatabase, s: Schema) -> None:
    ms = with_rec(db, s, scores={"x": 1}, values=[1, 2])
    p = ms.insert_in_xarray(s.rec, s.k1, ".items", END, None, "a")
    ms.insert_in_xarray(s.rec, s.k1, ".items", p, None, "b")
    ms.update(s.rec, s.k1, ".values[1]", 7)
    ms.update(s.rec, s.k1, ".values[9]", 7)
    ms.update(s.rec, s.k1, ".maybe!", s.point(1, 1))
    ms.update(s.rec, s.k1, ".maybe!.y", 5)
    ms.update(s.rec, s.k1, ".places['h']", s.point(2, 2))
    ms.update(s.rec, s.k1, ".places['h'].y", 3)
    ms.remove_in_xarray(s.rec, s.k1, ".items", p)
    ms.update(s.rec, s.k1, Path().field("items").position(p), "a again")
    live = ms.get(s.rec, s.k1)
    assert live.maybe == s.point(1, 5) and live.places == {"h": s.point(2, 3)}
    assert list(live.items) == ["b", "a again"] and live.values == [1, 7]
    c = db.commit_mutations("live", ms)
    assert db.state(c).get(s.rec, s.k1) == live
    from commitdb.state import CommitState

    assert CommitState(db, c).trace(s.rec, s.k1).value == live


def test_committing_seals_the_mutable_state(db: CommitDatabase, s: Schema) -> None:
    ms = fresh(db)
    ms.set(s.nums, s.k1, {1})
    assert ms.sealed is None
    c = db.commit_mutations("first", ms)
    assert ms.sealed == c
    with pytest.raises(CommitError, match="committed"):
        db.commit_mutations("again", ms)
    with pytest.raises(CommitError, match="committed"):
        ms.union_in_set(s.nums, s.k1, ".", {2})
    with pytest.raises(CommitError):
        ms.set(s.counter, s.k1, 1)
    assert ms.get(s.nums, s.k1) == {1}  # reads still work
    assert db.commit_count() == 1
    assert "opcodes" in repr(ms)


def test_an_idempotent_commit_still_seals(db: CommitDatabase, s: Schema) -> None:
    a = fresh(db)
    a.set(s.nums, s.k1, {1})
    b = fresh(db)
    b.set(s.nums, s.k1, {1})
    assert db.commit_mutations("a", a) == db.commit_mutations("b", b)
    assert b.sealed is not None
    with pytest.raises(CommitError):
        b.set(s.nums, s.k1, {2})


def test_prepare_commit_and_seal_are_the_two_phases_of_a_commit(
    db: CommitDatabase, s: Schema
) -> None:
    base = build(db, {"r": (None, s.doc(s.nums).set({0}))})["r"]
    ms = fresh(db, base)
    ms.set(s.nums, s.k1, {1})
    ms.union_in_set(s.nums, s.k1, ".", {2})
    first = ms.prepare_commit()
    assert first.base == base and [e[0] for e in first.entries] == [doc_address(s.nums, s.k1)]
    assert first.blob_ids == set() and "PreparedCommit" in repr(first)
    # preparing writes and seals nothing: the state may still change
    assert db.commit_count() == 1 and ms.sealed is None
    ms.union_in_set(s.nums, s.k1, ".", {3})
    prepared = ms.prepare_commit()
    assert prepared.program() != first.program()
    cid = db.commit_program("two phases", prepared.base, prepared.program())
    assert ms.seal(cid) == cid and ms.sealed == cid
    assert db.state(cid).get(s.nums, s.k1) == {1, 2, 3}
    with pytest.raises(CommitError, match="committed"):
        ms.prepare_commit()
    with pytest.raises(CommitError, match="committed"):
        ms.seal(cid)
    with pytest.raises(CommitError, match="committed"):
        ms.set(s.nums, s.k1, {4})
    # a one-phase commit of the same mutations is the same commit
    again = fresh(db, base)
    again.set(s.nums, s.k1, {1})
    again.union_in_set(s.nums, s.k1, ".", {2})
    again.union_in_set(s.nums, s.k1, ".", {3})
    assert db.commit_mutations("one phase", again) == cid


def test_prepare_commit_refuses_a_virtual_merge_state(db: CommitDatabase, s: Schema) -> None:
    n = s.doc(s.nums)
    g = build(db, {"r": (None, n.set({0})), "a": ("r", n.union({1})), "b": ("r", n.union({2}))})
    ms = CommitMutableState(db.merge_state(g["a"], g["b"]))
    ms.union_in_set(s.nums, s.k1, ".", {3})
    with pytest.raises(CommitError, match="virtual merge"):
        ms.prepare_commit()
    assert ms.sealed is None


def test_a_virtual_merge_state_can_be_edited_but_not_committed(
    db: CommitDatabase, s: Schema
) -> None:
    n = s.doc(s.nums)
    g = build(db, {"r": (None, n.set({0})), "a": ("r", n.union({1})), "b": ("r", n.union({2}))})
    ms = CommitMutableState(db.merge_state(g["a"], g["b"]))
    ms.union_in_set(s.nums, s.k1, ".", {3})
    assert ms.get(s.nums, s.k1) == {0, 1, 2, 3}
    count = db.commit_count()
    with pytest.raises(CommitError, match="virtual merge"):
        db.commit_mutations("on a virtual merge", ms)
    assert db.commit_count() == count and ms.sealed is None


def test_path_given_as_path_object_or_text_records_the_same(db: CommitDatabase, s: Schema) -> None:
    a = with_rec(db, s)
    b = with_rec(db, s)
    a.update(s.rec, s.k1, ".scores['k']", 1)
    b.update(s.rec, s.k1, Path().field("scores").key("k"), 1)
    assert ops(a) == ops(b)
    assert db.commit_mutations("a", a) == db.commit_mutations("b", b)
