"""CommitMutableState.set_wire / set_encoded: a whole-document set given in wire form or as
bytes (what a peer sends), validated like ``set`` and recorded by its canonical encoding (the
received bytes themselves when they are canonical: codec.decode_canonical)."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from commitdb.codec import decode, decode_canonical, encode, pack, strict_layout, to_wire, unpack
from commitdb.commit_database import CommitDatabase
from commitdb.errors import CommitError, DecodeError, ValidationError
from commitdb.mutable_state import CommitMutableState
from commitdb.types import ANY, INT64, STRING, Attachment, MapType, OptionalType, SetType, Type
from commitdb.values import Key
from tests.commitdb.builders import Schema
from tests.commitdb.strategies import (
    TypeAndValue,
    make_schema,
    same_value,
    types_and_values,
    values,
)


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
    ids=["short", "not-bytes", "unknown-concept", "nil", "other-concept"],
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


# --------------------------------------------------------------------------------------------
# set_encoded and codec.decode_canonical: bytes from a peer, kept as received when canonical

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def wide_pack(w: Any) -> bytes:
    """msgpack bytes of a plain structure in the widest layout (never the canonical one for
    small values): every int as int64/uint64, str as str32, bin as bin32, array as array32."""
    if w is None:
        return b"\xc0"
    if w is True or w is False:
        return b"\xc3" if w else b"\xc2"
    if type(w) is int:
        return (
            b"\xcf" + w.to_bytes(8, "big")
            if w >= 2**63
            else b"\xd3" + w.to_bytes(8, "big", signed=True)
        )
    if type(w) is float:
        return b"\xcb" + struct.pack(">d", w)
    if type(w) is str:
        raw = w.encode("utf-8", "surrogatepass")
        return b"\xdb" + len(raw).to_bytes(4, "big") + raw
    if type(w) is bytes:
        return b"\xc6" + len(w).to_bytes(4, "big") + w
    assert type(w) is list
    return b"\xdd" + len(w).to_bytes(4, "big") + b"".join(wide_pack(x) for x in w)


@PROPERTY
@given(types_and_values())
def test_decode_canonical_keeps_canonical_bytes_and_flags_other_layouts(tv: TypeAndValue) -> None:
    t, d = tv.type, tv.definitions
    data = encode(tv.value, t)
    value, canonical = decode_canonical(data, t, d)
    assert same_value(value, decode(data, t, d))
    assert canonical == strict_layout(t)  # the canonical bytes are known canonical if they can be
    wide = wide_pack(unpack(data))
    value, canonical = decode_canonical(wide, t, d)
    assert same_value(value, decode(wide, t, d))
    assert canonical == (strict_layout(t) and wide == data)  # another layout never is
    if canonical:
        assert encode(value, t) == wide


@PROPERTY
@given(types_and_values(), st.data())
def test_decode_canonical_refuses_exactly_what_decode_refuses(
    tv: TypeAndValue, data: st.DataObject
) -> None:
    t, d = tv.type, tv.definitions
    good = encode(tv.value, t)
    for raw in (
        data.draw(st.binary(max_size=40)),
        good[:-1],
        good + b"\x00",
        bytes([good[0] ^ data.draw(st.integers(1, 255))]) + good[1:],
    ):
        try:
            expected = decode(raw, t, d)
        except DecodeError:
            with pytest.raises(DecodeError):
                decode_canonical(raw, t, d)
        else:
            value, canonical = decode_canonical(raw, t, d)
            assert same_value(value, expected)
            if canonical:
                assert encode(value, t) == raw


@PROPERTY
@given(st.data())
def test_set_encoded_gives_the_commits_of_set(db: CommitDatabase, s: Schema, data: Any) -> None:
    att = data.draw(st.sampled_from([s.counter, s.vec, s.opt, s.nums, s.table, s.points, s.xs]))
    value = data.draw(values(att.document_type, make_schema(), nan=False))
    t = att.document_type
    value = t.check(value)  # once: an xarray given as a list gets its positions here
    by_value = CommitMutableState(db.initial_state())
    by_value.set(att, s.k1, value)
    canonical = CommitMutableState(db.initial_state())
    canonical.set_encoded(att, wire_key(s.k1), encode(value, t))
    wide = CommitMutableState(db.initial_state())
    wide.set_encoded(att, wire_key(s.k1), wide_pack(to_wire(value, t)))  # re-encoded
    assert recorded(canonical) == recorded(by_value) == recorded(wide)
    a = db.commit_mutations("by value", by_value)
    assert db.commit_mutations("canonical bytes", canonical) == a
    assert db.commit_mutations("another layout", wide) == a


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", pack("not an int"), pack(2**64 - 1), pack(1) + b"\x00", [1]]
)
def test_set_encoded_refuses_bad_bytes_and_records_nothing(
    db: CommitDatabase, s: Schema, data: Any
) -> None:
    ms = CommitMutableState(db.initial_state())
    with pytest.raises(ValidationError if type(data) is not bytes else DecodeError):
        ms.set_encoded(s.counter, wire_key(s.k1), data)
    with pytest.raises(ValidationError, match="the nil key"):
        ms.set_encoded(s.counter, s.k1.concept.runtime_id.bytes + bytes(16), pack(1))
    assert len(ms.mutations()) == 0
    assert not ms.has(s.counter, s.k1)


def test_set_encoded_on_a_committed_state_raises(db: CommitDatabase, s: Schema) -> None:
    ms = CommitMutableState(db.initial_state())
    ms.set_encoded(s.counter, wire_key(s.k1), pack(1))
    db.commit_mutations("sealed", ms)
    with pytest.raises(CommitError, match="was committed"):
        ms.set_encoded(s.counter, wire_key(s.k2), pack(2))


@pytest.mark.parametrize(
    ("t", "wire", "canonical_wire"),
    [
        (OptionalType(OptionalType(INT64)), [None], []),  # both decode to None
        (OptionalType(ANY), [None], []),
        (SetType(INT64), [2, 1], [1, 2]),
        (MapType(STRING, INT64), ["b", 1, "a", 2], ["a", 2, "b", 1]),
    ],
)
def test_decode_canonical_does_not_take_another_form_of_the_same_value_as_canonical(
    t: Type, wire: Any, canonical_wire: Any
) -> None:
    value, canonical = decode_canonical(pack(wire), t)
    assert not canonical and encode(value, t) == pack(canonical_wire)
    assert decode_canonical(pack(canonical_wire), t)[1] == strict_layout(t)
