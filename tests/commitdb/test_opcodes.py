"""Opcodes: the replay evaluator (engine spec §3.2, §3.5, §10.2 rows 13-16, 20), the
canonical encoding of opcodes and programs, and blob id collection."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from commitdb.codec import pack, unpack
from commitdb.errors import DecodeError, UnknownAttachmentError
from commitdb.ids import BlobId, blob_id_for
from commitdb.opcodes import (
    ABSENT,
    Op,
    OpKind,
    Program,
    ReplayFailure,
    apply_op,
    collect_blob_ids,
    decode_ops,
    decode_program,
    doc_address,
    encode_ops,
    program_bytes,
    split_address,
    split_program,
)
from commitdb.paths import Path
from commitdb.types import ANY, INT64, MapType
from commitdb.values import END, Key, Typed, XArray
from tests.commitdb.builders import Schema, schema


@pytest.fixture
def s() -> Schema:
    return schema()


def P(text: str) -> Path:
    return Path.parse(text)


def apply(doc: Any, *ops: Op) -> tuple[Any, list[str]]:
    """Replay opcodes like a state does: failures are skipped and reported."""
    errors = []
    for op in ops:
        try:
            # the evaluator owns the values it applies: give it a private copy
            fresh = Op(op.kind, op.path, copy.deepcopy(op.value), op.position, op.position2)
            doc = apply_op(doc, fresh)
        except ReplayFailure as exc:
            errors.append(str(exc))
    return doc, errors


def upd(path: str, value: Any) -> Op:
    return Op(OpKind.DOCUMENT_UPDATE, P(path), value)


# --------------------------------------------------------------------------------------------
# The evaluator


def test_document_set_replaces_and_delete_removes(s: Schema) -> None:
    doc, errors = apply(ABSENT, Op(OpKind.DOCUMENT_SET, value={1, 2}))
    assert doc == {1, 2} and errors == []
    doc, errors = apply(doc, Op(OpKind.DOCUMENT_SET, value={3}))
    assert doc == {3}
    doc, errors = apply(doc, Op(OpKind.DOCUMENT_DELETE))
    assert doc is ABSENT and errors == []


def test_every_path_opcode_on_an_absent_document_fails_without_effect() -> None:
    """Row 13: recorded but no effect."""
    pos = uuid.uuid4().bytes
    ops = [
        upd(".count", 1),
        Op(OpKind.SET_UNION, P(".tags"), {1}),
        Op(OpKind.SET_SUBTRACT, P(".tags"), {1}),
        Op(OpKind.MAP_UNION, P(".scores"), {"a": 1}),
        Op(OpKind.MAP_SUBTRACT, P(".scores"), {"a"}),
        Op(OpKind.MAP_UPDATE, P(".scores"), {"a": 1}),
        Op(OpKind.XARRAY_INSERT, P(".items"), position=END.bytes, position2=pos),
        Op(OpKind.XARRAY_UPDATE, P(".items"), "v", position=pos),
        Op(OpKind.XARRAY_REMOVE, P(".items"), position=pos),
    ]
    doc, errors = apply(ABSENT, *ops)
    assert doc is ABSENT
    assert errors == ["the document is absent"] * len(ops)


def test_unresolvable_paths_report_the_reference_messages(s: Schema) -> None:
    """Row 14: index out of range, unwrap nil, key not found, root path update."""
    doc = s.rec.document_type.default()
    doc.values = [1, 2]
    before = copy.deepcopy(doc)
    _, errors = apply(
        doc,
        upd(".values[4]", 9),
        upd(".maybe!.x", 3),
        upd(".places['zz'].x", 1),
        upd(".", s.rec.document_type.default()),
    )
    assert errors == [
        "Index 4 is out of range",
        "Try to unwrap empty optional",
        "Key 'zz' not found",
        "unexpected root Path",
    ]
    assert doc == before


def test_update_with_trailing_unwrap_fills_a_nil_optional(s: Schema) -> None:
    doc = s.rec.document_type.default()
    doc, errors = apply(doc, upd(".maybe!", s.point(1, 2)))
    assert errors == []
    assert doc.maybe.x == 1 and doc.maybe.y == 2
    doc, errors = apply(doc, upd(".maybe!.x", 7))
    assert errors == [] and doc.maybe.x == 7


def test_update_on_a_missing_map_key_inserts_it(s: Schema) -> None:
    """Row 15: .scores['new'] = 7 inserts the entry."""
    doc = s.rec.document_type.default()
    doc.scores = {"x": 1}
    doc, errors = apply(doc, upd(".scores['new']", 7))
    assert errors == [] and doc.scores == {"new": 7, "x": 1}


def test_map_union_update_subtract_semantics() -> None:
    """Row 16: union overwrites and adds; update writes existing keys only; subtract ignores
    missing keys."""
    root = Path()
    doc, errors = apply(
        {"x": 1},
        Op(OpKind.MAP_UNION, root, {"x": 100, "y": 2}),
    )
    assert doc == {"x": 100, "y": 2}
    doc, errors = apply({"x": 1}, Op(OpKind.MAP_UPDATE, root, {"x": 5, "z": 9}))
    assert doc == {"x": 5}
    doc, errors = apply({"x": 1, "y": 2}, Op(OpKind.MAP_SUBTRACT, root, {"y", "missing"}))
    assert doc == {"x": 1}
    assert errors == []


def test_set_union_and_subtract() -> None:
    root = Path()
    doc, errors = apply({1, 2}, Op(OpKind.SET_UNION, root, {2, 3}))
    assert doc == {1, 2, 3}
    doc, errors = apply(doc, Op(OpKind.SET_SUBTRACT, root, {1, 7}))
    assert doc == {2, 3} and errors == []


def test_container_opcode_on_the_wrong_container_fails(s: Schema) -> None:
    doc = s.rec.document_type.default()
    _, errors = apply(doc, Op(OpKind.SET_UNION, P(".scores"), {1}))
    assert errors == [".scores does not hold a set"]
    _, errors = apply(doc, Op(OpKind.MAP_UNION, P(".tags"), {"a": 1}))
    assert errors == [".tags does not hold a dict"]


def xa(*pairs: tuple[bytes, str]) -> XArray:
    x = XArray()
    for p, v in pairs:
        x.append(v, uuid.UUID(bytes=p))
    return x


A, B, C, N, Q = (uuid.UUID(int=i).bytes for i in (1, 2, 3, 4, 5))
ROOT = Path()


def ins(before: bytes, new: bytes, value: str) -> tuple[Op, Op]:
    return (
        Op(OpKind.XARRAY_INSERT, ROOT, position=before, position2=new),
        Op(OpKind.XARRAY_UPDATE, ROOT, value, position=new),
    )


def test_xarray_insert_before_an_anchor_and_at_end() -> None:
    doc, errors = apply(xa((A, "a"), (B, "b")), *ins(B, N, "n"), *ins(END.bytes, Q, "q"))
    assert errors == []
    assert list(doc) == ["a", "n", "b", "q"]


def test_xarray_insert_before_an_unknown_position_inserts_nothing() -> None:
    """Row 20: unknown `before` -> nothing inserted."""
    doc, errors = apply(xa((A, "a")), *ins(C, N, "n"))
    assert list(doc) == ["a"]
    assert not doc.has_position(N)
    assert len(errors) == 2  # the insert, then the paired update of a position never created


def test_xarray_insert_of_an_existing_position_overwrites_in_place() -> None:
    """Row 20: existing `new` -> value overwritten in place, `before` ignored."""
    doc, errors = apply(xa((A, "a"), (B, "b")), *ins(END.bytes, A, "A!"))
    assert errors == []
    assert list(doc) == ["A!", "b"]


def test_xarray_update_resurrects_a_removed_position() -> None:
    """Row 20: update of a removed position -> resurrected; remove keeps a tombstone."""
    doc, errors = apply(
        xa((A, "a"), (B, "b")),
        Op(OpKind.XARRAY_REMOVE, ROOT, position=A),
    )
    assert list(doc) == ["b"]
    assert doc.tombstones() == [uuid.UUID(bytes=A)]
    doc, errors = apply(doc, Op(OpKind.XARRAY_UPDATE, ROOT, "again", position=A))
    assert list(doc) == ["again", "b"] and errors == []


def test_xarray_update_or_remove_of_an_unknown_position_is_a_no_op() -> None:
    """Row 20: update/remove of an unknown position -> no-op."""
    before = xa((A, "a"))
    doc, errors = apply(
        copy.deepcopy(before),
        Op(OpKind.XARRAY_UPDATE, ROOT, "x", position=C),
        Op(OpKind.XARRAY_REMOVE, ROOT, position=C),
        Op(OpKind.XARRAY_REMOVE, ROOT, position=C),
    )
    assert doc == before
    assert len(errors) == 1 and "not found" in errors[0]


def test_xarray_remove_is_idempotent() -> None:
    doc, errors = apply(
        xa((A, "a"), (B, "b")),
        Op(OpKind.XARRAY_REMOVE, ROOT, position=A),
        Op(OpKind.XARRAY_REMOVE, ROOT, position=A),
    )
    assert list(doc) == ["b"] and errors == []


def test_concurrent_inserts_before_the_same_anchor_keep_both() -> None:
    """Row 21 at the evaluator: the later insert sits closest to the anchor."""
    base = xa((A, "a"), (B, "b"), (C, "c"))
    pq, _ = apply(copy.deepcopy(base), *ins(B, N, "P"), *ins(B, Q, "Q"))
    qp, _ = apply(copy.deepcopy(base), *ins(B, Q, "Q"), *ins(B, N, "P"))
    assert list(pq) == ["a", "P", "Q", "b", "c"]
    assert list(qp) == ["a", "Q", "P", "b", "c"]


def test_path_update_at_a_removed_position_revives_it(s: Schema) -> None:
    doc = s.rec.document_type.default()
    pos = doc.items.append("a")
    doc.items.remove(pos)
    doc, errors = apply(doc, Op(OpKind.DOCUMENT_UPDATE, Path().field("items").position(pos), "b"))
    assert errors == [] and list(doc.items) == ["b"]


# --------------------------------------------------------------------------------------------
# Encoding


def all_kinds(s: Schema) -> list[Op]:
    point = s.point(1, 2)
    return [
        Op(OpKind.DOCUMENT_SET, value=s.rec.document_type.check({"name": "n", "count": 3})),
        Op(OpKind.DOCUMENT_UPDATE, P(".count"), 4),
        Op(OpKind.DOCUMENT_UPDATE, P(".maybe"), point),
        Op(OpKind.SET_UNION, P(".tags"), {1, 2}),
        Op(OpKind.SET_SUBTRACT, P(".tags"), {2}),
        Op(OpKind.MAP_UNION, P(".scores"), {"a": 1}),
        Op(OpKind.MAP_SUBTRACT, P(".scores"), {"a"}),
        Op(OpKind.MAP_UPDATE, P(".scores"), {"b": 2}),
        Op(OpKind.XARRAY_INSERT, P(".items"), position=END.bytes, position2=A),
        Op(OpKind.XARRAY_UPDATE, P(".items"), "v", position=A),
        Op(OpKind.XARRAY_REMOVE, P(".items"), position=A),
        Op(OpKind.DOCUMENT_DELETE),
    ]


def test_opcodes_round_trip_through_the_canonical_encoding(s: Schema) -> None:
    ops = all_kinds(s)
    data = encode_ops(ops, s.rec.document_type)
    back = decode_ops(data, s.rec.document_type, s.defs)
    assert back == ops
    assert encode_ops(back, s.rec.document_type) == data
    assert {op.kind for op in back} == set(OpKind)


def test_encoding_is_canonical_for_sets_and_maps(s: Schema) -> None:
    t = s.rec.document_type
    a = encode_ops([Op(OpKind.SET_UNION, P(".tags"), {3, 1, 2})], t)
    b = encode_ops([Op(OpKind.SET_UNION, P(".tags"), {2, 3, 1})], t)
    assert a == b
    c = encode_ops([Op(OpKind.MAP_UNION, P(".scores"), {"b": 1, "a": 2})], t)
    d = encode_ops([Op(OpKind.MAP_UNION, P(".scores"), {"a": 2, "b": 1})], t)
    assert c == d


@pytest.mark.parametrize(
    "wire",
    [
        "not a list",
        [[]],
        [["x"]],
        [[99]],
        [[0]],
        [[0, 1, 2]],
        [[10, 1]],
        [[1, []]],
        [[7, ["items"], b"short", bytes(16)]],
        [[7, ["items"], bytes(16)]],
        [[9, ["items"]]],
        [[8, ["items"], bytes(16)]],
        [[2, ["count"], [1]]],
        [[4, ["tags"], {"a": 1}]],
        [[1, ["nope"], 1]],
        [[1, ["count"], 1, 2]],
    ],
)
def test_malformed_opcodes_are_refused(s: Schema, wire: Any) -> None:
    with pytest.raises(DecodeError):
        decode_ops(pack(wire), s.rec.document_type, s.defs)


def test_program_groups_by_document_in_first_touch_order(s: Schema) -> None:
    a1 = doc_address(s.nums, s.k1)
    a2 = doc_address(s.nums, s.k2)
    prog = Program()
    prog.record(a2, Op(OpKind.DOCUMENT_SET, value={1}))
    prog.record(a1, Op(OpKind.DOCUMENT_SET, value={2}))
    prog.record(a2, Op(OpKind.SET_UNION, Path(), {3}))
    assert prog.addresses() == [a2, a1]
    assert [op.kind for op in prog.ops(a2)] == [OpKind.DOCUMENT_SET, OpKind.SET_UNION]
    assert [a for a, _ in prog.all_ops()] == [a2, a2, a1]
    assert len(prog) == 3 and bool(prog)
    assert prog.has_document_set(a1) and not Program().has_document_set(a1)
    assert prog.ops(doc_address(s.nums, s.special)) == []
    copied = prog.copy()
    copied.record(a1, Op(OpKind.DOCUMENT_DELETE))
    assert len(prog) == 3 and len(copied) == 4
    assert not Program() and len(Program()) == 0


def test_program_bytes_decode_and_split(s: Schema) -> None:
    a1 = doc_address(s.nums, s.k1)
    a2 = doc_address(s.rec, s.k2)
    ops1 = [Op(OpKind.DOCUMENT_SET, value={1, 2})]
    ops2 = all_kinds(s)[:3]
    raw1 = encode_ops(ops1, s.nums.document_type)
    raw2 = encode_ops(ops2, s.rec.document_type)
    data = program_bytes([(a1, raw1), (a2, raw2)])
    assert data == pack([[a1, unpack(raw1)], [a2, unpack(raw2)]])
    prog = decode_program(data, s.defs)
    assert prog.addresses() == [a1, a2]
    assert prog.ops(a1) == ops1 and prog.ops(a2) == ops2
    assert split_program(data) == [(a1, raw1), (a2, raw2)]
    assert program_bytes([]) == pack([])


def test_program_with_many_documents_uses_long_array_headers(s: Schema) -> None:
    entries = []
    for i in range(20):
        key = Key(s.k1.concept, uuid.UUID(int=i + 1))
        entries.append(
            (doc_address(s.counter, key), encode_ops([Op(OpKind.DOCUMENT_SET, value=i)], INT64))
        )
    data = program_bytes(entries)
    assert len(decode_program(data, s.defs).addresses()) == 20
    assert split_program(data) == entries


def test_malformed_programs_are_refused(s: Schema) -> None:
    a1 = doc_address(s.nums, s.k1)
    for bad in [pack("x"), pack([["x", []]]), pack([[a1]]), pack([[a1, "ops"]])]:
        with pytest.raises(DecodeError):
            decode_program(bad, s.defs)
    with pytest.raises(DecodeError):
        split_program(pack([[b"short", []]]))
    unknown = uuid.uuid4().bytes + a1[16:]
    with pytest.raises(UnknownAttachmentError):
        decode_program(pack([[unknown, []]]), s.defs)


def test_document_addresses(s: Schema) -> None:
    a = doc_address(s.rec, s.special)
    assert len(a) == 48
    att, key = split_address(a, s.defs)
    assert att == s.rec and key == s.special and key.concept.name == "Special"
    # the concrete concept is part of the address: same instance id, other document
    assert doc_address(s.rec, Key(s.k1.concept, s.special.id)) != a
    with pytest.raises(DecodeError):
        split_address(a[:47], s.defs)
    with pytest.raises(DecodeError):
        split_address(a[:16] + uuid.uuid4().bytes + a[32:], s.defs)


def test_op_equality_repr_and_describe(s: Schema) -> None:
    op = Op(OpKind.SET_UNION, P(".tags"), {1})
    assert op == Op(OpKind.SET_UNION, P(".tags"), {1})
    assert op != Op(OpKind.SET_UNION, P(".tags"), {2})
    assert op != "Op"
    assert hash(op) == hash(Op(OpKind.SET_UNION, P(".tags"), {5}))
    assert repr(op) == "Op(SET_UNION, .tags, {1})"
    assert op.describe() == "SET_UNION, .tags, {1}"
    ins_op = Op(OpKind.XARRAY_INSERT, P(".items"), position=END.bytes, position2=A)
    assert repr(ins_op) == f"Op(XARRAY_INSERT, .items, {END}, {uuid.UUID(bytes=A)})"
    assert repr(Op(OpKind.DOCUMENT_DELETE)) == "Op(DOCUMENT_DELETE)"
    assert repr(ABSENT) == "ABSENT" and not ABSENT


def test_collect_blob_ids_finds_nested_ids(s: Schema) -> None:
    b1, b2, b3, b4 = (blob_id_for(bytes([i])) for i in range(4))
    doc = s.rec.document_type.default()
    doc.picture = b1
    xs = XArray()
    xs.append(b2)
    found = collect_blob_ids(
        [
            doc,
            {"k": [b3]},
            xs,
            Typed(ANY, 5),
            (b4, "text", 1, 2.0, None, s.k1),
            BlobId.INVALID,
            frozenset({b1}),
        ]
    )
    assert found == {b1, b2, b3, b4}
    assert collect_blob_ids([Typed(MapType(INT64, INT64), {1: 2})]) == set()
