"""CommitMutableState.set_wire: a whole-document set given in wire form (what a peer sends),
validated like ``set`` and recorded by its canonical encoding."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from commitdb.codec import to_wire
from commitdb.commit_database import CommitDatabase
from commitdb.errors import CommitError, DecodeError, ValidationError
from commitdb.mutable_state import CommitMutableState
from commitdb.types import Attachment
from commitdb.values import Key
from tests.commitdb.builders import Schema


def wire_key(key: Key) -> bytes:
    return key.concept.runtime_id.bytes + key.id.bytes


def recorded(ms: CommitMutableState) -> list[Any]:
    return [(address, op.describe()) for address, op in ms.mutations().all_ops()]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nums", {3, 1, 2}),  # a type without blob ids: recorded by its bytes
        ("table", {"b": 2, "a": 1}),
        ("rec", None),  # a structure holding a blob_id: recorded with its value
    ],
)
def test_set_wire_records_what_set_records(
    db: CommitDatabase, s: Schema, name: str, value: Any
) -> None:
    att: Attachment = getattr(s, name)
    if value is None:
        value = s.rec_value(name="r", count=2, tags={5, 4}, scores={"x": 1})
    by_value = CommitMutableState(db.initial_state())
    by_value.set(att, s.k1, value)
    by_value.set(att, s.special, value)
    by_wire = CommitMutableState(db.initial_state())
    by_wire.set_wire(att, wire_key(s.k1), to_wire(value, att.document_type))
    by_wire.set_wire(att, wire_key(s.special), to_wire(value, att.document_type))  # sub-concept
    assert recorded(by_wire) == recorded(by_value)
    assert by_wire.get(att, s.k1) == by_value.get(att, s.k1)
    assert by_wire.keys(att) == {s.k1, s.special}
    cid = db.commit_mutations("by wire", by_wire)
    assert db.state(cid).get(att, s.special) == by_value.get(att, s.special)


def test_set_wire_records_the_canonical_encoding_of_another_layout(
    db: CommitDatabase, s: Schema
) -> None:
    canonical = CommitMutableState(db.initial_state())
    canonical.set(s.nums, s.k1, {1, 2, 3})
    canonical.set(s.table, s.k1, {"a": 1, "b": 2})
    other = CommitMutableState(db.initial_state())
    other.set_wire(s.nums, wire_key(s.k1), [3, 1, 2])  # a set out of order decodes ...
    other.set_wire(s.table, wire_key(s.k1), ["b", 2, "a", 1])
    assert recorded(other) == recorded(canonical)  # ... and is recorded canonically
    a = db.commit_mutations("canonical", canonical)
    b = db.commit_mutations("other layout", other)
    assert a == b  # the same program on the same base: the same commit


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"short", r"a key \(32 bytes\)"),
        ("not bytes" * 4, r"a key \(32 bytes\)"),
        (uuid.uuid4().bytes + uuid.uuid4().bytes, "a known concept"),
        (None, "the nil key"),
        ("other", "key of"),
    ],
)
def test_set_wire_refuses_a_bad_key_and_records_nothing(
    db: CommitDatabase, s: Schema, key: Any, expected: str
) -> None:
    if key is None:
        key = s.k1.concept.runtime_id.bytes + bytes(16)
    elif key == "other":
        key = wire_key(s.other)
    ms = CommitMutableState(db.initial_state())
    with pytest.raises(ValidationError, match=expected):
        ms.set_wire(s.nums, key, [1])
    assert len(ms.mutations()) == 0


@pytest.mark.parametrize("value", [[1, "two"], "not a set", [1, 1], [2**64]])
def test_set_wire_refuses_a_bad_value_and_records_nothing(
    db: CommitDatabase, s: Schema, value: Any
) -> None:
    ms = CommitMutableState(db.initial_state())
    with pytest.raises(DecodeError):
        ms.set_wire(s.nums, wire_key(s.k1), value)
    assert len(ms.mutations()) == 0
    assert not ms.has(s.nums, s.k1)


def test_set_wire_on_a_committed_state_raises(db: CommitDatabase, s: Schema) -> None:
    ms = CommitMutableState(db.initial_state())
    ms.set_wire(s.nums, wire_key(s.k1), [1])
    db.commit_mutations("sealed", ms)
    with pytest.raises(CommitError, match="was committed"):
        ms.set_wire(s.nums, wire_key(s.k2), [2])
