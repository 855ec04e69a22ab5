"""CommitStore: dispatch, undo/redo via Disable commits (§10.2 row 30), navigation, DAG actions
and the notifications of engine spec §6.5."""

from __future__ import annotations

from typing import Any

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitKind
from commitdb.errors import MissingBlobError, StoreError, UnknownCommitError, ValidationError
from commitdb.ids import CommitId, blob_id_for
from commitdb.mutable_state import CommitMutableState
from commitdb.store import CommitStore, UndoEntry
from tests.commitdb.builders import Schema, build


class Recorder:
    """Records every notification, as (name, *args)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("notify_"):
            raise AttributeError(name)
        return lambda *args: self.events.append((name.removeprefix("notify_"), *args))

    def names(self) -> list[str]:
        return [e[0] for e in self.events]

    def take(self) -> list[str]:
        names = self.names()
        self.events.clear()
        return names


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def store(db: CommitDatabase, rec: Recorder) -> CommitStore:
    st = CommitStore(notifier=rec)
    st.use(db)
    rec.events.clear()
    return st


def nums(store: CommitStore, s: Schema) -> Any:
    return store.state().get(s.nums, s.k1)


def add(s: Schema, *values: int) -> Any:
    """A dispatch function adding values to the set (creating it when absent)."""

    def fn(ms: CommitMutableState) -> None:
        if ms.has(s.nums, s.k1):
            ms.union_in_set(s.nums, s.k1, ".", set(values))
        else:
            ms.set(s.nums, s.k1, set(values))

    return fn


def start(store: CommitStore, s: Schema) -> CommitId:
    store.dispatch_set("start", s.nums, s.k1, {0})
    return store.commit_id()


# --------------------------------------------------------------------------------------------
# Lifecycle


def test_use_moves_to_the_last_commit_and_notifies_open_only(
    db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    g = build(db, {"r": (None, s.doc(s.nums).set({1})), "a": ("r", s.doc(s.nums).union({2}))})
    store = CommitStore(notifier=rec)
    assert not store.has_database() and not store.has_state()
    store.use(db)
    assert rec.take() == ["database_did_open"]
    assert store.database() is db and store.has_database() and store.has_state()
    assert store.commit_id() == g["a"]
    assert store.state().get(s.nums, s.k1) == {1, 2}
    assert store.attachment_getting() is store.state()
    assert store.definitions().hexdigest() == s.defs.hexdigest()
    ms = store.mutable_state()
    assert isinstance(ms, CommitMutableState) and ms.base_commit_id() == g["a"]
    assert store.undo_stack_ids() == ([], None)


def test_use_on_an_empty_database_starts_at_the_initial_state(
    db: CommitDatabase, s: Schema
) -> None:
    store = CommitStore(db)
    assert store.commit_id() == CommitId.INVALID
    assert store.state().keys(s.nums) == set()


def test_close_drops_database_and_state(store: CommitStore, rec: Recorder, s: Schema) -> None:
    store.close()
    assert rec.take() == ["database_did_close"]
    assert not store.has_database() and not store.has_state()
    with pytest.raises(StoreError):
        store.state()
    with pytest.raises(StoreError):
        store.database()
    with pytest.raises(StoreError):
        store.dispatch("x", add(s, 1))
    with pytest.raises(StoreError):
        store.reset_undo_redo()
    store.clear_undo_redo()  # never raises


def test_raw_setters_do_not_notify(store: CommitStore, db: CommitDatabase, rec: Recorder) -> None:
    state = db.initial_state()
    store.set_state(state)
    store.set_database(db)
    assert store.state() is state and store.database() is db
    assert rec.take() == []
    store.set_state(None)
    assert not store.has_state()


def test_extend_definitions_notifies(store: CommitStore, rec: Recorder) -> None:
    from commitdb.dsm import load_text

    extra = load_text(
        "namespace T {5e1f0000-0000-4000-8000-000000000001} { concept Doc; "
        "attachment<Doc, string> label; };"
    )
    info = store.extend_definitions(extra)
    assert info.count() == 1
    assert rec.take() == ["definitions_did_change"]
    assert store.definitions().query_attachment("T::Doc.label") is not None


# --------------------------------------------------------------------------------------------
# Dispatch


def test_dispatch_commits_moves_notifies_and_returns_the_result(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    def fn(ms: CommitMutableState, value: int, extra: str) -> str:
        ms.set(s.nums, s.k1, {value})
        return f"done {extra}"

    assert store.dispatch("set 1", fn, 1, "now") == "done now"
    c = store.commit_id()
    h = db.commit_header(c)
    assert (h.label, h.kind, h.parent_commit_id) == (
        "set 1",
        CommitKind.MUTATIONS,
        CommitId.INVALID,
    )
    assert nums(store, s) == {1}
    assert rec.take() == ["state_did_change"]
    assert store.undo_stack_ids() == ([c], 0)
    assert store.can_undo() and not store.can_redo()


def test_an_empty_dispatch_still_commits(store: CommitStore, db: CommitDatabase, s: Schema) -> None:
    before = start(store, s)
    assert store.dispatch("nothing", lambda ms: None) is None
    assert store.commit_id() != before
    assert db.commit_header(store.commit_id()).parent_commit_id == before
    store.dispatch_diff("no change", s.nums, s.k1, {0})
    assert db.commit_count() == 3
    assert len(store.undo_stack_ids()[0]) == 3


def test_a_raising_dispatch_commits_nothing_notifies_and_re_raises(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    start(store, s)
    rec.events.clear()
    state, count, stack = store.state(), db.commit_count(), store.undo_stack_ids()
    boom = RuntimeError("boom")

    def fails(ms: CommitMutableState) -> None:
        ms.union_in_set(s.nums, s.k1, ".", {5})
        raise boom

    with pytest.raises(RuntimeError, match="boom"):
        store.dispatch("fails", fails)
    assert rec.events == [("dispatch_error", boom)]
    assert store.state() is state and db.commit_count() == count
    assert store.undo_stack_ids() == stack
    assert nums(store, s) == {0}


def test_a_refused_write_or_commit_inside_dispatch_is_a_dispatch_error(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    start(store, s)
    rec.events.clear()
    count = db.commit_count()
    with pytest.raises(ValidationError):
        store.dispatch_set("bad value", s.nums, s.k1, {"x"})
    missing = blob_id_for(b"never stored")
    with pytest.raises(MissingBlobError):
        store.dispatch_set("dangling", s.rec, s.k1, s.rec_value(picture=missing))
    assert rec.names() == ["dispatch_error", "dispatch_error"]
    assert isinstance(rec.events[1][1], MissingBlobError)
    assert db.commit_count() == count


def test_dispatch_shortcuts(store: CommitStore, s: Schema) -> None:
    store.dispatch_set("set", s.rec, s.k1, s.rec_value(name="a", p={"x": 1, "y": 1}))
    store.dispatch_update("update", s.rec, s.k1, ".count", 3)
    new = store.state().get(s.rec, s.k1)
    new.p.x = 9
    store.dispatch_diff("diff", s.rec, s.k1, new, recursive=True)
    doc = store.state().get(s.rec, s.k1)
    assert (doc.name, doc.count, doc.p.x) == ("a", 3, 9)
    data = store.database().commit_data(store.commit_id())
    ops = store.database().commit_blob_ids(data)
    assert ops == set()
    from commitdb.opcodes import decode_program

    prog = decode_program(data.program, store.definitions())
    assert [str(op.path) for _, op in prog.all_ops()] == [".p.x"]
    labels = [store.database().commit_header(c).label for c in store.undo_stack_ids()[0]]
    assert labels == ["set", "update", "diff"]


def test_observer_errors_are_swallowed(store: CommitStore, s: Schema) -> None:
    class Broken:
        def notify_state_did_change(self) -> None:
            raise RuntimeError("observer bug")

    store.set_notifier(Broken())
    assert store.dispatch("x", lambda ms: 42) == 42
    assert store.can_undo()


def test_a_partial_notifier_and_no_notifier(db: CommitDatabase, s: Schema) -> None:
    class OnlyOpen:
        def __init__(self) -> None:
            self.opened = 0

        def notify_database_did_open(self) -> None:
            self.opened += 1

    n = OnlyOpen()
    store = CommitStore(db, n)
    assert n.opened == 1 and store.notifier() is n
    store.dispatch("x", add(s, 1))
    store.set_notifier(None)
    assert store.notifier() is None
    store.dispatch("y", add(s, 2))
    store.close()


def test_re_broadcast_sends_every_notification(store: CommitStore, rec: Recorder) -> None:
    error = ValueError("e")
    store.notify_database_did_open()
    store.notify_database_did_close()
    store.notify_state_did_change()
    store.notify_definitions_did_change()
    store.notify_dispatch_error(error)
    store.notify_stop_live()
    store.notify_reset_database()
    store.notify_database_will_reset()
    store.notify_database_did_reset()
    assert rec.events == [
        ("database_did_open",),
        ("database_did_close",),
        ("state_did_change",),
        ("definitions_did_change",),
        ("dispatch_error", error),
        ("stop_live",),
        ("reset_database",),
        ("database_will_reset",),
        ("database_did_reset",),
    ]


# --------------------------------------------------------------------------------------------
# Undo / redo (row 30)


def test_undo_and_redo_append_disable_commits_with_exact_labels(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    store.dispatch("set A", add(s, 1))
    a = store.commit_id()
    store.dispatch("set B", add(s, 2))
    b = store.commit_id()
    rec.events.clear()
    assert nums(store, s) == {1, 2}

    undo_b = store.undo()
    assert undo_b == store.commit_id()
    h = db.commit_header(undo_b)
    assert (h.kind, h.label, h.parent_commit_id, h.target_commit_id) == (
        CommitKind.DISABLE,
        "Undo [set B]",
        b,
        b,
    )
    assert nums(store, s) == {1}
    assert store.undo_stack_ids() == ([a, b], 0)
    assert store.can_undo() and store.can_redo()

    undo_a = store.undo()
    assert undo_a is not None
    assert db.commit_header(undo_a).label == "Undo [set A]"
    assert nums(store, s) is None
    assert store.undo_stack_ids() == ([a, b], None)
    assert not store.can_undo() and store.undo() is None

    redo_a = store.redo()
    assert redo_a is not None
    h = db.commit_header(redo_a)
    assert (h.kind, h.label, h.parent_commit_id, h.target_commit_id) == (
        CommitKind.DISABLE,
        "Redo [set A]",
        undo_a,
        undo_a,
    )
    assert nums(store, s) == {1}
    redo_b = store.redo()
    assert redo_b is not None and db.commit_header(redo_b).label == "Redo [set B]"
    assert db.commit_header(redo_b).target_commit_id == undo_b
    assert nums(store, s) == {1, 2}
    assert not store.can_redo() and store.redo() is None
    assert store.undo_stack_ids() == ([a, b], 1)
    assert rec.take() == ["state_did_change"] * 4
    # history is never rewritten: the dispatched commits still read the same
    assert db.state(b).get(s.nums, s.k1) == {1, 2}


def test_undo_after_redo_undoes_again(store: CommitStore, s: Schema) -> None:
    store.dispatch("set A", add(s, 1))
    store.undo()
    store.redo()
    store.undo()
    assert nums(store, s) is None
    store.redo()
    assert nums(store, s) == {1}


def test_dispatch_after_undo_drops_the_redo_tail(
    store: CommitStore, db: CommitDatabase, s: Schema
) -> None:
    """[A, B] + undo + undo + redo + dispatch C -> stack [A, C]."""
    store.dispatch("A", add(s, 1))
    a = store.commit_id()
    store.dispatch("B", add(s, 2))
    store.undo()
    store.undo()
    store.redo()
    store.dispatch("C", add(s, 3))
    c = store.commit_id()
    assert store.undo_stack_ids() == ([a, c], 1)
    assert not store.can_redo()
    assert nums(store, s) == {1, 3}
    store.undo()
    assert nums(store, s) == {1}
    assert db.commit_header(store.commit_id()).label == "Undo [C]"


def test_dispatch_enable_commit_is_undoable(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    start(store, s)
    store.dispatch("A", add(s, 1))
    a = store.commit_id()
    store.dispatch("B", add(s, 2))
    rec.events.clear()
    d = store.dispatch_enable_commit(a, False)
    assert db.commit_header(d).label == "Disable [A]"
    assert db.commit_header(d).kind == CommitKind.DISABLE
    assert nums(store, s) == {0, 2}
    assert rec.take() == ["state_did_change"]
    e = store.dispatch_enable_commit(a, True)
    assert (db.commit_header(e).label, db.commit_header(e).kind) == (
        "Enable [A]",
        CommitKind.ENABLE,
    )
    assert nums(store, s) == {0, 1, 2}
    store.undo()  # undoes the Enable
    assert nums(store, s) == {0, 2}
    store.undo()  # undoes the Disable
    assert nums(store, s) == {0, 1, 2}
    assert len(store.undo_stack_ids()[0]) == 5
    with pytest.raises(UnknownCommitError):
        store.dispatch_enable_commit(CommitId(bytes(range(32))), True)
    assert rec.names()[-1] == "dispatch_error"


def test_clear_and_reset_undo_redo(store: CommitStore, s: Schema) -> None:
    store.dispatch("A", add(s, 1))
    store.clear_undo_redo()
    assert store.undo_stack_ids() == ([], None) and not store.can_undo()
    store.dispatch("B", add(s, 2))
    store.reset_undo_redo()
    assert store.undo() is None
    assert nums(store, s) == {1, 2}


def test_undo_entries_remember_their_undo_commit(store: CommitStore, s: Schema) -> None:
    store.dispatch("A", add(s, 1))
    a = store.commit_id()
    entry = UndoEntry(a, "A")
    assert entry.undo_commit_id is None
    undo = store.undo()
    assert undo is not None
    assert store.undo_stack_ids() == ([a], None)
    assert store.database().commit_header(undo).target_commit_id == a


# --------------------------------------------------------------------------------------------
# Navigation and DAG actions


def test_use_commit_moves_silently_and_keeps_the_stack(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    first = start(store, s)
    store.dispatch("A", add(s, 1))
    a = store.commit_id()
    rec.events.clear()
    store.use_commit(first)
    assert rec.take() == []
    assert nums(store, s) == {0}
    assert store.undo_stack_ids() == ([first, a], 1)
    # a following undo is written on top of the commit in use: a second head
    undo = store.undo()
    assert undo is not None and db.commit_header(undo).parent_commit_id == first
    assert len(db.head_commit_ids()) == 2


def test_commit_mutations_disable_enable_move_and_notify(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    start(store, s)
    ms = store.mutable_state()
    ms.union_in_set(s.nums, s.k1, ".", {7})
    rec.events.clear()
    c = store.commit_mutations("direct", ms)
    assert store.commit_id() == c and nums(store, s) == {0, 7}
    d = store.disable_commit(c)
    assert db.commit_header(d).label == "Disable [direct]" and nums(store, s) == {0}
    e = store.enable_commit(c)
    assert db.commit_header(e).label == "Enable [direct]" and nums(store, s) == {0, 7}
    assert rec.take() == ["state_did_change"] * 3
    assert len(store.undo_stack_ids()[0]) == 1  # only the dispatch


def test_merge_commit_joins_the_current_head_with_a_commit(
    store: CommitStore, db: CommitDatabase, s: Schema, rec: Recorder
) -> None:
    base = start(store, s)
    store.dispatch("A", add(s, 1))
    a = store.commit_id()
    store.use_commit(base)
    store.dispatch("B", add(s, 2))
    b = store.commit_id()
    rec.events.clear()
    m = store.merge_commit(a)
    h = db.commit_header(m)
    assert (h.kind, h.parent_commit_id, h.target_commit_id) == (CommitKind.MERGE, b, a)
    assert h.label == f"merge of {a.hex()}"
    assert store.commit_id() == m and nums(store, s) == {0, 1, 2}
    assert store.state().get(s.nums, s.k1) == db.merge_state(b, a).get(s.nums, s.k1)
    assert rec.take() == ["state_did_change"]


def test_forward_and_reduce_heads(store: CommitStore, db: CommitDatabase, s: Schema) -> None:
    base = start(store, s)
    heads = []
    for i in range(1, 4):
        store.use_commit(base)
        store.dispatch(f"h{i}", lambda ms, i=i: ms.set(s.counter, s.k1, i))
        heads.append(store.commit_id())
    store.use_commit(base)
    assert store.forward() == min(heads, key=bytes)  # several heads: the smallest id child
    assert store.commit_id() == min(heads, key=bytes)
    last = db.last_commit_id()
    merged = store.reduce_heads()
    assert merged is not None and store.commit_id() == merged
    assert db.head_commit_ids() == {merged}
    others = sorted(set(heads) - {last}, key=bytes)
    assert store.state().get(s.counter, s.k1) == db.state(others[-1]).get(s.counter, s.k1)
    assert store.reduce_heads() is None and store.commit_id() == merged
    store.use_commit(base)
    assert store.forward() == merged  # one head: forward goes there


def test_two_stores_on_one_database(db: CommitDatabase, s: Schema) -> None:
    one = CommitStore(db)
    one.dispatch_set("one", s.nums, s.k1, {1})
    two = CommitStore(db)
    assert two.state().get(s.nums, s.k1) == {1}
    two.dispatch("two", add(s, 2))
    assert one.state().get(s.nums, s.k1) == {1}  # a store's state does not move by itself
    assert one.forward() == two.commit_id()
    assert one.state().get(s.nums, s.k1) == {1, 2}
