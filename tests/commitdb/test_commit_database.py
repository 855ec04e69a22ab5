"""CommitDatabase: commit ids, headers, DAG queries, refusals, blobs, transport, helpers
(reduce_heads, forward, flatten), reopening — on LMDB files and in memory."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import uuid
from pathlib import Path as FsPath
from typing import Any

import pytest

from commitdb.blobs import BlobLayout
from commitdb.codec import pack
from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitData, CommitHeader, CommitKind, compute_commit_id
from commitdb.definitions import Definitions
from commitdb.errors import (
    CommitDBError,
    CommitError,
    CorruptDatabaseError,
    DatabaseClosedError,
    DecodeError,
    MissingBlobError,
    ReadOnlyError,
    StorageError,
    UnknownAttachmentError,
    UnknownCommitError,
)
from commitdb.ids import BlobId, CommitId, blob_id_for
from commitdb.mutable_state import CommitMutableState
from commitdb.opcodes import doc_address
from commitdb.storage import LmdbStorage
from tests.commitdb.builders import Graph, Schema, build, disable, enable, merge, open_db


def sha256_id(parent: bytes, kind: int, target: bytes, program: bytes) -> bytes:
    return hashlib.sha256(
        parent + bytes([kind]) + target + struct.pack("<Q", len(program)) + program
    ).digest()


def set_nums(s: Schema, value: set[int], key: Any = None) -> Any:
    return s.doc(s.nums, key).set(value)


def history(db: CommitDatabase, s: Schema) -> Graph:
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


# --------------------------------------------------------------------------------------------
# Commit ids


def test_commit_id_is_the_sha256_of_parent_kind_target_and_program(
    db: CommitDatabase, s: Schema
) -> None:
    g = history(db, s)
    for name, cid in g.items():
        h = db.commit_header(cid)
        data = db.commit_data(cid)
        expected = sha256_id(h.parent_commit_id, int(h.kind), h.target_commit_id, data.program)
        assert cid == expected, name
        assert data.verify()
    assert db.commit_data(g["m"]).program == b""
    assert db.commit_header(g["r"]).parent_commit_id == CommitId.INVALID
    assert compute_commit_id(CommitId.INVALID, CommitKind.MUTATIONS, CommitId.INVALID, b"") == (
        sha256_id(bytes(32), 0, bytes(32), b"")
    )


def test_same_program_on_same_parent_is_idempotent_and_keeps_the_first_label(
    db: CommitDatabase, s: Schema
) -> None:
    """Row 2: labels and timestamps are not part of the identity."""
    first = build(db, {"first": (None, set_nums(s, {1}))})["first"]
    header = db.commit_header(first)
    version = db.data_version()
    ms = CommitMutableState(db.initial_state())
    ms.set(s.nums, s.k1, {1})
    assert db.commit_mutations("first-other-label", ms, author="someone else") == first
    assert db.commit_count() == 1
    assert db.commit_header(first) == header
    assert db.commit_header(first).label == "first"
    assert db.data_version() == version


def test_empty_commit_is_legal_and_distinct_from_its_parent(db: CommitDatabase, s: Schema) -> None:
    """Row 3."""
    r = build(db, {"r": (None, set_nums(s, {1}))})["r"]
    empty = db.commit_mutations("empty", CommitMutableState(db.state(r)))
    assert empty != r
    h = db.commit_header(empty)
    assert (h.parent_commit_id, h.kind, h.commit_type) == (r, CommitKind.MUTATIONS, "Mutations")
    assert db.commit_data(empty).program == b"\x90"
    assert db.state(empty).get(s.nums, s.k1) == {1}
    again = db.commit_mutations("empty again", CommitMutableState(db.state(r)))
    assert again == empty
    on_empty = db.commit_mutations("empty on empty", CommitMutableState(db.state(empty)))
    assert on_empty not in (r, empty)
    root_empty = db.commit_mutations("root", CommitMutableState(db.initial_state()))
    assert db.commit_header(root_empty).parent_commit_id == CommitId.INVALID


def test_merge_is_not_commutative_and_re_merging_returns_the_existing_merge(
    db: CommitDatabase, s: Schema
) -> None:
    g = history(db, s)
    ab = db.merge_commit("ab", g["a2"], g["b1"])
    ba = db.merge_commit("ba", g["b1"], g["a2"])
    assert ab != ba
    assert ab == g["m"]  # the same pair was merged by the builder
    assert db.commit_header(ab).label == "m"
    h = db.commit_header(ba)
    assert (h.parent_commit_id, h.target_commit_id, h.commit_type) == (g["b1"], g["a2"], "Merge")


def test_structural_headers(db: CommitDatabase, s: Schema) -> None:
    g = history(db, s)
    d = db.commit_header(g["d"])
    e = db.commit_header(g["e"])
    assert (d.kind, d.commit_type, d.parent_commit_id, d.target_commit_id, d.label) == (
        CommitKind.DISABLE,
        "Disable",
        g["m"],
        g["a1"],
        "d",
    )
    assert (e.kind, e.commit_type, e.target_commit_id) == (CommitKind.ENABLE, "Enable", g["a1"])
    a1 = db.commit_header(g["a1"])
    assert a1.target_commit_id == CommitId.INVALID
    assert isinstance(a1.timestamp, float) and a1.timestamp > 1e9
    assert [k.label for k in CommitKind] == ["Mutations", "Disable", "Enable", "Merge"]


def test_author_is_metadata(db: CommitDatabase, s: Schema, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMITDB_AUTHOR", "ada")
    r = build(db, {"r": (None, set_nums(s, {1}))})["r"]
    assert db.commit_header(r).author == "ada"
    ms = CommitMutableState(db.state(r))
    ms.set(s.nums, s.k1, {2})
    c = db.commit_mutations("explicit", ms, author="bob")
    assert db.commit_header(c).author == "bob"
    m = db.disable_commit("d", c, r, author="carol")
    assert db.commit_header(m).author == "carol"


def test_header_wire_round_trip_and_malformed_headers(db: CommitDatabase, s: Schema) -> None:
    g = history(db, s)
    h = db.commit_header(g["m"])
    assert CommitHeader.from_wire(h.to_wire()) == h
    data = db.commit_data(g["a1"])
    assert CommitData.decode(data.encode()) == data
    for bad in ([1, 2], [b"x"] * 7, [*h.to_wire()[:4], 5, 0.0, ""]):
        with pytest.raises(DecodeError):
            CommitHeader.from_wire(bad)
    with pytest.raises(DecodeError):
        CommitData.decode(b"\x93\x01\x02\x03")


# --------------------------------------------------------------------------------------------
# DAG queries


def test_heads_ignore_disable_and_enable_targets_but_not_merge_targets(
    db: CommitDatabase, s: Schema
) -> None:
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.set({0})),
            "a1": ("r", n.union({1})),
            "b1": ("r", n.union({2})),
            "c1": ("r", n.union({3})),
        },
    )
    assert g.names(db.head_commit_ids()) == ["a1", "b1", "c1"]
    g = build(db, {"d": disable("a1", "b1")}, into=g)
    assert g.names(db.head_commit_ids()) == ["b1", "c1", "d"]  # b1 is still a head
    g = build(db, {"e": enable("c1", "b1")}, into=g)
    assert g.names(db.head_commit_ids()) == ["b1", "d", "e"]
    g = build(db, {"m": merge("d", "b1")}, into=g)
    assert g.names(db.head_commit_ids()) == ["e", "m"]  # a merge target is not a head


def test_children_and_nephews(db: CommitDatabase, s: Schema) -> None:
    g = history(db, s)
    assert g.names(db.children_commit_ids(g["r"])) == ["a1", "b1"]
    assert g.names(db.children_commit_ids(g["m"])) == ["d"]
    assert db.children_commit_ids(g["e"]) == set()
    assert g.names(db.nephew_commit_ids(g["b1"])) == ["m"]
    assert db.nephew_commit_ids(g["a2"]) == set()  # a2 is the merge's parent
    assert db.nephew_commit_ids(g["a1"]) == set()  # a disable target is no nephew
    assert g.names(db.commit_ids()) == sorted(g)
    assert g.names(db.commit_ids_in_order()) == ["r", "a1", "a2", "b1", "m", "d", "e"]
    assert db.commit_count() == 7
    assert all(db.commit_exists(c) for c in g.values())
    assert not db.commit_exists(CommitId(bytes(range(32))))


def test_first_and_last_commit(db: CommitDatabase, s: Schema) -> None:
    assert db.first_commit_id() is None and db.last_commit_id() is None
    g = history(db, s)
    assert db.first_commit_id() == g["r"]
    assert db.last_commit_id() == g["e"]
    c = db.commit_mutations("on a2", CommitMutableState(db.state(g["a2"])))
    assert db.last_commit_id() == c
    assert db.first_commit_id() == g["r"]


def test_last_commit_is_the_greatest_timestamp_ties_to_the_latest_stored(
    tmp_path: FsPath, s: Schema
) -> None:
    src = open_db("memory", tmp_path, s.defs)
    g = history(src, s)
    dst = open_db("lmdb", tmp_path, s.defs, name="dst")
    datas = [src.commit_data(c) for c in src.commit_ids_in_order()]
    for data in datas[:4]:  # r, a1, a2, b1
        dst.create_commit_data(data)
    assert dst.last_commit_id() == g["b1"]

    def at(data: CommitData, ts: float) -> CommitData:
        return CommitData(dataclasses.replace(data.header, timestamp=ts), data.program)

    ts = src.commit_header(g["b1"]).timestamp
    dst.create_commit_data(at(datas[4], ts - 100))  # m, from an older clock
    assert dst.last_commit_id() == g["b1"]
    dst.create_commit_data(at(datas[5], ts))  # d, same timestamp: the latest stored wins
    assert dst.last_commit_id() == g["d"]
    dst.close()
    src.close()


def test_is_ancestor_and_is_mergeable(db: CommitDatabase, s: Schema) -> None:
    g = history(db, s)
    assert db.is_ancestor(g["r"], g["e"])
    assert db.is_ancestor(g["b1"], g["m"])  # through the merge target
    assert db.is_ancestor(g["a2"], g["a2"])  # reflexive
    assert not db.is_ancestor(g["e"], g["r"])
    assert not db.is_ancestor(g["b1"], g["a2"])
    c = db.disable_commit("d2", g["a2"], g["b1"])
    assert not db.is_ancestor(g["b1"], c)  # not through a disable target
    assert db.is_mergeable(g["a2"], g["b1"]) and db.is_mergeable(g["b1"], g["a2"])
    assert not db.is_mergeable(g["r"], g["a2"]) and not db.is_mergeable(g["a2"], g["r"])
    assert not db.is_mergeable(g["a1"], g["a1"])


def test_merge_with_an_ancestor_is_refused(db: CommitDatabase, s: Schema) -> None:
    """Row 4."""
    g = history(db, s)
    count = db.commit_count()
    for parent, target in [("a2", "a1"), ("a1", "a2"), ("m", "b1"), ("a1", "a1")]:
        with pytest.raises(CommitError, match="not mergeable"):
            db.merge_commit("bad", g[parent], g[target])
    with pytest.raises(CommitError):
        db.merge_state(g["a1"], g["a2"])
    assert db.commit_count() == count


def test_missing_parent_or_target_is_refused(db: CommitDatabase, s: Schema) -> None:
    g = history(db, s)
    ghost = CommitId(hashlib.sha256(b"ghost").digest())
    count = db.commit_count()
    for make in (db.merge_commit, db.disable_commit, db.enable_commit):
        with pytest.raises(UnknownCommitError):
            make("x", ghost, g["a1"])
        with pytest.raises(UnknownCommitError):
            make("x", g["a1"], ghost)
        with pytest.raises(UnknownCommitError):
            make("x", g["a1"], CommitId.INVALID)
    with pytest.raises(UnknownCommitError):
        db.commit_header(ghost)
    with pytest.raises(UnknownCommitError):
        db.commit_header(CommitId.INVALID)
    with pytest.raises(UnknownCommitError):
        db.state(ghost)
    assert db.commit_count() == count


def test_a_mutable_state_over_a_commit_the_database_lacks_is_refused(
    db: CommitDatabase, s: Schema, tmp_path: FsPath
) -> None:
    other = open_db("memory", tmp_path, s.defs)
    r = build(other, {"r": (None, set_nums(s, {1}))})["r"]
    ms = CommitMutableState(other.state(r))
    ms.set(s.nums, s.k2, {2})
    with pytest.raises(UnknownCommitError):
        db.commit_mutations("foreign base", ms)
    assert db.commit_count() == 0
    other.close()


def test_commit_ids_are_accepted_as_hex_or_raw_bytes(db: CommitDatabase, s: Schema) -> None:
    g = history(db, s)
    assert db.commit_header(g["a1"].hex()) == db.commit_header(bytes(g["a1"]))  # type: ignore[arg-type]
    with pytest.raises(CommitError):
        db.commit_header("zz")  # type: ignore[arg-type]
    with pytest.raises(CommitError):
        db.commit_header(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Blobs


def test_blob_ids_are_content_addressed_and_idempotent(db: CommitDatabase) -> None:
    version = db.data_version()
    data = bytes(range(256)) * 10
    b = db.create_blob(data)
    assert b == blob_id_for(data)
    assert db.data_version() == version + 1
    assert db.create_blob(data) == b
    assert db.data_version() == version + 1  # storing it again writes nothing
    floats = db.create_blob(data, BlobLayout("float", 4))
    assert floats == blob_id_for(data, 9, 4) and floats != b
    assert db.blob_ids() == {b, floats}
    assert db.blob(b) == data
    info = db.blob_info(floats)
    assert info is not None and (info.layout, info.size) == (BlobLayout("float", 4), 2560)
    assert str(info.layout) == "float-4" and BlobLayout.parse("float-4") == info.layout
    assert db.blob(BlobId.INVALID) is None and db.blob_info(BlobId.INVALID) is None
    assert db.blob_infos([b, BlobId.INVALID]) == [db.blob_info(b)]
    assert db.unknown_blob_ids([b, BlobId.INVALID]) == {BlobId.INVALID}
    assert db.blob_datas([floats, BlobId.INVALID]) == [(floats, BlobLayout("float", 4), data)]


def test_ranged_reads(db: CommitDatabase) -> None:
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


def test_large_blob_spans_chunks(db: CommitDatabase) -> None:
    from commitdb.blobs import CHUNK_SIZE

    data = bytes(range(256)) * (CHUNK_SIZE // 256) + b"tail!"
    b = db.create_blob(data)
    assert db.blob(b) == data
    assert db.read_blob(b, 10, CHUNK_SIZE - 5) == data[CHUNK_SIZE - 5 : CHUNK_SIZE + 5]


def test_blob_stream(db: CommitDatabase) -> None:
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
    assert len(db.blob_ids()) == 2


def test_blob_statistics(db: CommitDatabase) -> None:
    assert db.blob_statistics().count == 0
    db.create_blob(b"a")
    db.create_blob(b"abcd")
    db.create_blob(b"")
    st = db.blob_statistics()
    assert (st.count, st.total_size, st.min_size, st.max_size) == (3, 5, 0, 4)


def test_create_blobs_returns_only_the_added_ids(db: CommitDatabase) -> None:
    a = db.create_blob(b"a")
    added = db.create_blobs([(BlobLayout(), b"a"), (BlobLayout(), b"b"), (BlobLayout("int"), b"b")])
    assert added == [blob_id_for(b"b"), blob_id_for(b"b", 6)]
    assert db.blob_ids() == {a, *added}


def test_a_commit_referencing_a_missing_blob_is_refused(db: CommitDatabase, s: Schema) -> None:
    r = build(db, {"r": (None, set_nums(s, {1}))})["r"]
    missing = blob_id_for(b"not stored")
    ms = CommitMutableState(db.state(r))
    ms.set(s.rec, s.k1, s.rec_value(picture=missing))
    count, version = db.commit_count(), db.data_version()
    with pytest.raises(MissingBlobError, match=missing.hex()):
        db.commit_mutations("dangling", ms)
    assert db.commit_count() == count and db.data_version() == version
    assert db.head_commit_ids() == {r} and db.last_commit_id() == r
    assert ms.sealed is None  # nothing was committed: the state can be fixed and committed
    assert db.create_blob(b"not stored") == missing
    c = db.commit_mutations("fixed", ms)
    assert db.state(c).get(s.rec, s.k1).picture == missing


# --------------------------------------------------------------------------------------------
# Transport: commit datas between databases


def copy_all(src: CommitDatabase, dst: CommitDatabase) -> int:
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


def documents(db: CommitDatabase, commit_id: CommitId) -> list[Any]:
    return sorted(
        ((att.identifier, key, repr(doc)) for att, key, doc in db.documents(commit_id)),
        key=repr,
    )


def test_commit_datas_round_trip_between_databases(
    db: CommitDatabase, s: Schema, tmp_path: FsPath
) -> None:
    g = history(db, s)
    blob = db.create_blob(b"pixels")
    g = build(db, {"p": ("e", s.doc(s.rec).set(s.rec_value(picture=blob)))}, into=g)
    dst = open_db("lmdb", tmp_path, s.defs, name="dst")
    assert copy_all(db, dst) == len(g)
    assert dst.commit_ids() == db.commit_ids()
    assert dst.head_commit_ids() == db.head_commit_ids()
    assert dst.blob_ids() == {blob}
    for name, c in g.items():
        assert dst.commit_header(c) == db.commit_header(c), name
        assert dst.commit_data(c) == db.commit_data(c), name
        assert documents(dst, c) == documents(db, c), name
    assert copy_all(db, dst) == 0  # already there: False each time
    # commits written on top of copied ones (whose snapshots were never computed) replay right
    ms = CommitMutableState(dst.state(g["p"]))
    ms.union_in_set(s.nums, s.k1, ".", {9})
    c = dst.commit_mutations("after sync", ms)
    assert dst.state(c).get(s.nums, s.k1) == {0, 1, 2, 3, 9}
    dst.close()


def test_create_commit_data_refuses_bad_data(
    db: CommitDatabase, s: Schema, tmp_path: FsPath
) -> None:
    g = history(db, s)
    dst = open_db("memory", tmp_path, s.defs)
    datas = {name: db.commit_data(c) for name, c in g.items()}
    tampered = CommitData(datas["r"].header, datas["r"].program + b"\x00")
    assert not tampered.verify()
    with pytest.raises(CommitError, match="does not match"):
        dst.create_commit_data(tampered)
    wrong_id = CommitData(
        dataclasses.replace(datas["r"].header, commit_id=g["a1"]), datas["r"].program
    )
    with pytest.raises(CommitError):
        dst.create_commit_data(wrong_id)
    relabelled = CommitData(dataclasses.replace(datas["r"].header, label="x"), datas["r"].program)
    assert relabelled.verify()  # labels are not hashed
    with pytest.raises(UnknownCommitError):
        dst.create_commit_data(datas["a1"])  # its parent is missing
    assert dst.commit_count() == 0
    # a structural commit carrying a program
    header = db.commit_header(g["d"])
    program = datas["a1"].program
    forged_id = compute_commit_id(
        header.parent_commit_id, header.kind, header.target_commit_id, program
    )
    forged = CommitData(dataclasses.replace(header, commit_id=forged_id), program)
    with pytest.raises(CommitError, match="carries no program"):
        dst.create_commit_data(forged)
    # a program that does not decode against the receiver's definitions
    bare = open_db("memory", tmp_path, Definitions())
    with pytest.raises(DecodeError):
        bare.create_commit_data(datas["r"])
    assert bare.commit_count() == 0
    bare.close()
    dst.close()


def test_create_commit_data_refuses_a_non_canonical_program(db: CommitDatabase, s: Schema) -> None:
    """The stored program must be the very bytes the id hashes (commit_data gives them back)."""
    from commitdb.opcodes import doc_address

    address = doc_address(s.counter, s.k1)
    # [[address, [[Document_Set, 5]]]] with 5 written as a uint8 instead of a fixint
    program = b"\x91\x92\xc4\x30" + address + b"\x91\x92\x00\xcc\x05"
    cid = compute_commit_id(CommitId.INVALID, CommitKind.MUTATIONS, CommitId.INVALID, program)
    header = CommitHeader(cid, CommitId.INVALID, CommitId.INVALID, CommitKind.MUTATIONS, "x", 1.0)
    data = CommitData(header, program)
    assert data.verify()
    with pytest.raises(DecodeError, match="not canonical"):
        db.create_commit_data(data)
    assert db.commit_count() == 0
    canonical = b"\x91\x92\xc4\x30" + address + b"\x91\x92\x00\x05"
    cid = compute_commit_id(CommitId.INVALID, CommitKind.MUTATIONS, CommitId.INVALID, canonical)
    good = CommitData(dataclasses.replace(header, commit_id=cid), canonical)
    assert db.create_commit_data(good)
    assert db.commit_data(cid) == good
    assert db.state(cid).get(s.counter, s.k1) == 5


def test_create_commit_data_refuses_a_missing_blob(
    db: CommitDatabase, s: Schema, tmp_path: FsPath
) -> None:
    blob = db.create_blob(b"pixels")
    g = build(db, {"r": (None, s.doc(s.rec).set(s.rec_value(picture=blob)))})
    dst = open_db("memory", tmp_path, s.defs)
    data = db.commit_data(g["r"])
    assert db.commit_blob_ids(data) == {blob}
    with pytest.raises(MissingBlobError):
        dst.create_commit_data(data)
    assert dst.commit_count() == 0
    dst.create_blob(b"pixels")
    assert dst.create_commit_data(data)
    assert dst.state(g["r"]).get(s.rec, s.k1).picture == blob
    dst.close()


# --------------------------------------------------------------------------------------------
# Helpers: reduce_heads, forward, fast_forward, flatten


def four_heads(db: CommitDatabase, s: Schema) -> tuple[Graph, list[CommitId]]:
    n = s.doc(s.counter)
    g = build(db, {"r": (None, n.set(0))})
    g = build(db, {f"h{i}": ("r", n.set(i)) for i in range(1, 5)}, into=g)
    return g, [g[f"h{i}"] for i in range(1, 5)]


def test_reduce_heads_folds_every_head_into_the_last_in_ascending_id_order(
    db: CommitDatabase, s: Schema
) -> None:
    """Row 11: anchor = last commit; the others in ascending id order; 'merge of <hex>'."""
    g, heads = four_heads(db, s)
    anchor = db.last_commit_id()
    assert anchor == g["h4"]
    others = sorted(set(heads) - {anchor}, key=bytes)
    final = db.reduce_heads()
    assert final is not None
    chain = []
    c = final
    while db.commit_header(c).kind == CommitKind.MERGE:
        chain.append(db.commit_header(c))
        c = db.commit_header(c).parent_commit_id
    chain.reverse()
    assert c == anchor
    assert [h.target_commit_id for h in chain] == others
    assert [h.label for h in chain] == [f"merge of {o.hex()}" for o in others]
    assert db.head_commit_ids() == {final}
    # the highest-id head wins the contested document, not the most recent one
    assert db.state(final).get(s.counter, s.k1) == db.state(others[-1]).get(s.counter, s.k1)
    assert db.reduce_heads() is None


def test_reduce_heads_with_an_explicit_anchor(db: CommitDatabase, s: Schema) -> None:
    g, heads = four_heads(db, s)
    with pytest.raises(CommitError, match="not a head"):
        db.reduce_heads(g["r"])
    assert db.commit_count() == 5
    final = db.reduce_heads(g["h2"])
    assert final is not None and db.head_commit_ids() == {final}
    others = sorted(set(heads) - {g["h2"]}, key=bytes)
    mutations = [
        c for c in db.linearization(final) if db.commit_header(c).kind == CommitKind.MUTATIONS
    ]
    assert mutations == [g["r"], g["h2"], *others]


def test_reduce_heads_with_a_single_head_does_nothing(db: CommitDatabase, s: Schema) -> None:
    assert db.reduce_heads() is None
    build(db, {"r": (None, set_nums(s, {1}))})
    assert db.reduce_heads() is None


def test_fast_forward_takes_the_smallest_id_child(db: CommitDatabase, s: Schema) -> None:
    """Row 12: a root with 5 children: fast_forward goes to the smallest id."""
    n = s.doc(s.counter)
    g = build(db, {"r": (None, n.set(0))})
    g = build(db, {f"c{i}": ("r", n.set(i)) for i in range(1, 6)}, into=g)
    children = [g[f"c{i}"] for i in range(1, 6)]
    smallest = min(children, key=bytes)
    assert db.fast_forward(g["r"]) == smallest
    assert db.forward(g["r"]) == smallest  # several heads: forward is fast_forward
    assert db.fast_forward(smallest) == smallest
    # with one head, forward goes to it whatever the start
    final = db.reduce_heads()
    assert final is not None
    assert db.forward(g["r"]) == final
    assert db.forward(children[0]) == final


def test_fast_forward_follows_merge_nephews(db: CommitDatabase, s: Schema) -> None:
    n = s.doc(s.nums)
    g = build(
        db,
        {
            "r": (None, n.set({0})),
            "a": ("r", n.union({1})),
            "b": ("r", n.union({2})),
            "m": merge("a", "b"),
            "m1": ("m", n.union({3})),
        },
    )
    assert db.fast_forward(g["b"]) == g["m1"]  # b has no child, but m merged it
    assert db.fast_forward(g["a"]) == g["m1"]


def _first_parent_chain(db: CommitDatabase, cid: CommitId) -> list[CommitId]:
    """The commit and its first-parent ancestors, newest first (the naive walk)."""
    chain = [cid]
    while True:
        parent = db.commit_header(chain[-1]).parent_commit_id
        if not parent.is_valid:
            return chain
        chain.append(parent)


def test_skip_pointers_find_every_first_parent_ancestor(db: CommitDatabase, s: Schema) -> None:
    """Depth and jump pointers: the ancestor at each depth equals the naive walk's, along
    a long chain, a branch off it and a merge (first parent) on top."""
    n = s.doc(s.counter)
    specs: dict[str, Any] = {"c0": (None, n.set(0))}
    for i in range(1, 70):
        specs[f"c{i}"] = (f"c{i - 1}", n.set(i))
    specs["b0"] = ("c20", n.set(100))
    for i in range(1, 40):
        specs[f"b{i}"] = (f"b{i - 1}", n.set(100 + i))
    specs["m"] = merge("c69", "b39")
    specs["after"] = ("m", n.set(1000))
    g = build(db, specs)
    for name in ("c69", "b39", "m", "after", "c1", "c0"):
        rec = db._record(g[name])
        chain = _first_parent_chain(db, g[name])
        assert rec.depth == len(chain) - 1
        for depth, expected in enumerate(reversed(chain)):
            found = db._ancestor_at_depth(rec, depth)
            assert found is not None and found.commit_id == expected
        assert db._ancestor_at_depth(rec, len(chain)) is None


def test_reads_far_above_a_document_entry_follow_skip_pointers(
    db: CommitDatabase, s: Schema
) -> None:
    """A document written once, then 300 commits on other documents: reads at the head and
    on a branch that forked before the write see the right value (or none)."""
    old = s.doc(s.counter)
    other = s.doc(s.counter, s.k2)
    specs: dict[str, Any] = {"r": (None, other.set(-1)), "w": ("r", old.set(7))}
    parent = "w"
    for i in range(300):
        specs[f"u{i}"] = (parent, other.set(i))
        parent = f"u{i}"
    specs["fork"] = ("r", other.set(-2))
    for i in range(300):
        specs[f"f{i}"] = ("fork" if i == 0 else f"f{i - 1}", other.set(1000 + i))
    g = build(db, specs)
    assert db.state(g["u299"]).get(s.counter, s.k1) == 7
    assert db.state(g["u150"]).get(s.counter, s.k1) == 7
    assert not db.state(g["f299"]).has(s.counter, s.k1)  # the write is on another branch
    ms = CommitMutableState(db.state(g["u299"]))
    ms.set(s.counter, s.k1, 8)
    head = db.commit_mutations("rewrite", ms)
    assert db.state(head).get(s.counter, s.k1) == 8
    assert db.state(g["f299"]).get(s.counter, s.k2) == 1299


def test_fast_forward_from_invalid_starts_at_the_smallest_root(
    db: CommitDatabase, s: Schema
) -> None:
    assert db.fast_forward(CommitId.INVALID) == CommitId.INVALID  # empty database
    n = s.doc(s.counter)
    g = build(db, {"r1": (None, n.set(1)), "r2": (None, n.set(2))})
    g = build(db, {"r1c": ("r1", n.set(3)), "r2c": ("r2", n.set(4))}, into=g)
    first = min([g["r1"], g["r2"]], key=bytes)
    expected = g["r1c"] if first == g["r1"] else g["r2c"]
    assert db.fast_forward(CommitId.INVALID) == expected
    assert db.forward(CommitId.INVALID) == expected  # two heads: forward is fast_forward


def test_flatten_keeps_the_documents_and_only_the_referenced_blobs(
    db: CommitDatabase, s: Schema, tmp_path: FsPath
) -> None:
    old = db.create_blob(b"old picture")
    new = db.create_blob(b"new picture")
    orphan = db.create_blob(b"orphan")
    rec = s.doc(s.rec)
    g = build(
        db,
        {
            "r": (None, rec.set(s.rec_value(name="a", picture=old)), set_nums(s, {1})),
            "a": ("r", rec.update(".picture", new), s.doc(s.nums, s.k2).set({2})),
            "b": ("a", s.doc(s.nums).delete()),
        },
    )
    flat = db.flatten(g["b"], tmp_path / "flat", label="flat")
    try:
        assert flat.commit_count() == 1
        (c,) = flat.commit_ids()
        assert flat.commit_header(c).label == "flat"
        assert flat.blob_ids() == {new}
        assert flat.blob(new) == b"new picture"
        assert documents(flat, c) == documents(db, g["b"])
        assert flat.state(c).keys(s.nums) == {s.k2}
        assert flat.definitions().hexdigest() == db.definitions().hexdigest()
    finally:
        flat.close()
    assert orphan in db.blob_ids()
    with pytest.raises(StorageError):
        db.flatten(g["b"], tmp_path / "flat")  # the target must be fresh


# --------------------------------------------------------------------------------------------
# Files, metadata, definitions


def test_reopen_reads_the_same_states(tmp_path: FsPath, s: Schema) -> None:
    path = tmp_path / "db"
    db = CommitDatabase.create(path, s.defs, documentation="my doc")
    g = history(db, s)
    blob = db.create_blob(b"x")
    before = {name: documents(db, c) for name, c in g.items()}
    heads, uid = db.head_commit_ids(), db.uuid()
    db.close()
    assert db.is_closed()
    with pytest.raises(DatabaseClosedError):
        db.commit_ids()
    assert CommitDatabase.is_compatible(path)
    with CommitDatabase.open(path) as again:
        assert {name: documents(again, c) for name, c in g.items()} == before
        assert again.head_commit_ids() == heads
        assert again.uuid() == uid and again.documentation() == "my doc"
        assert again.first_commit_id() == g["r"] and again.last_commit_id() == g["e"]
        assert again.blob(blob) == b"x"
        assert again.definitions().hexdigest() == s.defs.hexdigest()
        assert again.commit_header(g["d"]).label == "d"
        assert again.state(g["e"]).get(s.nums, s.k1) == {0, 1, 2, 3}
        assert not again.in_memory() and again.path() == str(path)
    with CommitDatabase.open(path, readonly=True) as ro:
        assert ro.state(g["e"]).get(s.nums, s.k1) == {0, 1, 2, 3}
        with pytest.raises(ReadOnlyError):
            ro.create_blob(b"y")
        with pytest.raises(ReadOnlyError):
            ro.disable_commit("x", g["e"], g["a1"])


def test_create_and_open_refusals(tmp_path: FsPath, s: Schema) -> None:
    path = tmp_path / "db"
    CommitDatabase.create(path, s.defs).close()
    with pytest.raises(StorageError):
        CommitDatabase.create(path, s.defs)
    with pytest.raises(StorageError):
        CommitDatabase.open(tmp_path / "missing")
    assert not CommitDatabase.is_compatible(tmp_path / "missing")


def test_memory_database_metadata(s: Schema) -> None:
    db = CommitDatabase.create_in_memory(s.defs, documentation="mem")
    assert db.in_memory() and db.path() == "InMemory" and db.documentation() == "mem"
    assert isinstance(db.uuid(), uuid.UUID) and db.codec_name() == "msgpack-canonical"
    assert "InMemory" in repr(db)
    db.close()


def test_extend_definitions_bumps_the_data_version(db: CommitDatabase) -> None:
    from commitdb.dsm import load_text

    version = db.data_version()
    before = db.definitions()
    extra = load_text(
        "namespace T {5e1f0000-0000-4000-8000-000000000001} { concept Doc; "
        "attachment<Doc, string> label; };"
    )
    info = db.extend_definitions(extra)
    assert info.count() == 1
    assert db.data_version() == version + 1
    assert db.definitions().query_attachment("T::Doc.label") is not None
    assert before.query_attachment("T::Doc.label") is None  # a snapshot
    assert db.extend_definitions(extra).count() == 0
    assert db.data_version() == version + 1


def test_data_version_counts_writes(db: CommitDatabase, s: Schema) -> None:
    v0 = db.data_version()
    g = history(db, s)
    assert db.data_version() == v0 + len(g)
    db.create_blobs([(BlobLayout(), b"a"), (BlobLayout(), b"b")])
    assert db.data_version() == v0 + len(g) + 1
    db.create_blobs([(BlobLayout(), b"a")])
    assert db.data_version() == v0 + len(g) + 1


def test_documents_lists_every_document_at_a_commit(db: CommitDatabase, s: Schema) -> None:
    g = build(
        db,
        {
            "r": (None, set_nums(s, {1}), s.doc(s.counter).set(3), s.doc(s.nums, s.k2).set({2})),
            "a": ("r", s.doc(s.nums, s.k2).delete()),
        },
    )
    listed = {(att.identifier, key, repr(doc)) for att, key, doc in db.documents(g["a"])}
    assert listed == {("T::Doc.nums", s.k1, "{1}"), ("T::Doc.counter", s.k1, "3")}
    assert list(db.documents(None)) == []


def test_create_commit_datas_stores_a_batch_in_one_transaction(tmp_path: Any) -> None:
    """A batch may chain on its own commits; a refused member stores nothing of the batch."""
    from commitdb.types import INT64 as _I64

    _DB, _MS = CommitDatabase, CommitMutableState

    defs = Definitions()
    ns = defs.namespace("Batch", "0d3c1b7a-9f2e-4b6a-8c5d-1e2f3a4b5c6d")
    thing = defs.create_concept(ns, "Thing")
    att = defs.create_attachment(ns, "count", thing, _I64)
    src = _DB.create(tmp_path / "src", defs)
    key = att.create_key()
    base = None
    ids = []
    for i in range(5):
        ms = _MS(src.state(base))
        ms.set(att, key, i)
        base = src.commit_mutations(f"c{i}", ms)
        ids.append(base)
    datas = src.commit_datas(ids)
    dst = _DB.create(tmp_path / "dst", defs)
    assert dst.create_commit_datas(datas) == [True] * 5
    assert dst.create_commit_datas(datas) == [False] * 5
    assert dst.state(ids[-1]).get(att, key) == 4
    partial = _DB.create(tmp_path / "partial", defs)
    with pytest.raises(UnknownCommitError):
        partial.create_commit_datas(datas[1:])  # the first parent is missing
    assert partial.commit_count() == 0


def test_a_refused_batch_leaves_nothing_behind_and_its_retry_stores_it(
    tmp_path: FsPath, s: Schema
) -> None:
    """A batch refused by its last member (a missing blob) stores nothing, and nothing of
    it lingers in the handle's caches: a retry of its first members stores them all."""
    src = CommitDatabase.create(tmp_path / "src", s.defs, durable=False)
    dst = CommitDatabase.create(tmp_path / "dst", s.defs, durable=False)
    ms = CommitMutableState(src.initial_state())
    ms.set(s.counter, s.k1, 1)
    a = src.commit_mutations("a", ms)
    ms = CommitMutableState(src.state(a))
    ms.set(s.counter, s.k1, 2)
    b = src.commit_mutations("b", ms)
    blob = src.create_blob(b"only in the source")
    ms = CommitMutableState(src.state(b))
    ms.set(s.rec, s.k1, s.rec_value(picture=blob))
    c = src.commit_mutations("c", ms)
    datas = [src.commit_data(x) for x in (a, b, c)]
    with pytest.raises(MissingBlobError):
        dst.create_commit_datas(datas)
    assert not dst.commit_exists(a) and dst.commit_count() == 0
    assert dst.create_commit_datas(datas[:2]) == [True, True]
    assert dst.commit_ids() == {a, b}
    dst.close()
    reopened = CommitDatabase.open(tmp_path / "dst")
    assert reopened.state(b).get(s.counter, s.k1) == 2
    reopened.close()


def test_a_database_of_another_layout_is_refused_by_name(tmp_path: FsPath, s: Schema) -> None:
    path = tmp_path / "old"
    CommitDatabase.create(path, s.defs, durable=False).close()
    with LmdbStorage.open(str(path), ("meta",)) as storage, storage.write() as txn:
        txn.put("meta", b"format", b"commitdb-commit/1")
    with pytest.raises(CorruptDatabaseError, match="another layout.*commitdb-commit/1"):
        CommitDatabase.open(path)


def test_counts_heads_children_and_order_on_a_branching_history(
    db: CommitDatabase, s: Schema
) -> None:
    """The creation order, heads, children and count kept in ``meta`` (sequence keys and
    child links by sequence) on a history with two branches and a merge."""
    n = s.doc(s.nums)
    g = build(db, {"r": (None, n.set({0})), "a": ("r", n.union({1})), "b": ("r", n.union({2}))})
    root, left, right = g["r"], g["a"], g["b"]
    assert db.head_commit_ids() == {left, right}
    assert db.children_commit_ids(root) == {left, right}
    assert db.children_commit_ids(left) == set()
    merged = db.merge_commit("merge", left, right)
    assert db.head_commit_ids() == {merged}
    assert db.children_commit_ids(left) == {merged}
    assert db.nephew_commit_ids(right) == {merged}
    assert db.commit_count() == 4
    assert db.commit_ids_in_order() == [root, left, right, merged]
    assert db.first_commit_id() == root
    assert [c for _, c in db.commits_since(2)] == [right, merged]
    assert db.commit_ids() == {root, left, right, merged}
    assert db.commit_data(left).program


# --------------------------------------------------------------------------------------------
# commit_program: an encoded program (what a server receives)


def _address(att: Any, key: Any) -> bytes:
    return bytes(doc_address(att, key))


def test_commit_program_is_the_commit_of_the_same_mutations(db: CommitDatabase, s: Schema) -> None:
    base = build(db, {"r": (None, set_nums(s, {1}))})["r"]
    ms = CommitMutableState(db.state(base))
    ms.set(s.nums, s.k1, {4, 2, 3})
    ms.set(s.rec, s.k2, s.rec_value(name="n"))
    ms.union_in_set(s.nums, s.k1, ".", {7})
    prepared = ms.prepare_commit()
    assert prepared.base == base and ms.sealed is None
    program = prepared.program()
    cid = db.commit_program("p", base, program, author="a")
    assert cid == compute_commit_id(base, CommitKind.MUTATIONS, CommitId.INVALID, program)
    assert db.commit_data(cid).program == program
    assert db.commit_header(cid).author == "a"
    st = db.state(cid)
    assert st.get(s.nums, s.k1) == {2, 3, 4, 7}
    assert st.get(s.rec, s.k2) == s.rec_value(name="n")
    # the same program through commit_mutations is the same commit
    assert db.commit_mutations("again", ms) == cid
    assert ms.sealed == cid


def test_commit_program_records_a_non_canonical_set_by_its_canonical_encoding(
    db: CommitDatabase, s: Schema
) -> None:
    address = _address(s.nums, s.k1)
    canonical = pack([[address, [[0, [1, 2, 3]]]]])
    other = pack([[address, [[0, [3, 1, 2]]]]])  # another order of the same set
    cid = db.commit_program("c", None, other)
    assert cid == compute_commit_id(
        CommitId.INVALID, CommitKind.MUTATIONS, CommitId.INVALID, canonical
    )
    assert db.commit_data(cid).program == canonical
    assert db.state(cid).get(s.nums, s.k1) == {1, 2, 3}


def test_commit_program_refuses_bad_input_and_writes_nothing(db: CommitDatabase, s: Schema) -> None:
    base = build(db, {"r": (None, set_nums(s, {1}))})["r"]
    count, version = db.commit_count(), db.data_version()
    address = _address(s.nums, s.k1)
    refused: list[tuple[Any, type[Exception]]] = [
        (b"\xc1", DecodeError),  # not msgpack
        ("text", DecodeError),  # not bytes
        (pack({"a": 1}), DecodeError),  # not a list
        (pack([[address]]), DecodeError),  # a malformed entry
        (pack([[address[:40], [[0, [1]]]]]), DecodeError),  # a short address
        (pack([[bytes(16) + address[16:], [[0, [1]]]]]), UnknownAttachmentError),
        (pack([[address, [0, [1]]]]), DecodeError),  # an opcode that is not a list
        (pack([[address, [[0, ["x"]]]]]), DecodeError),  # a value of the wrong type
        (pack([[address, [[0, [1], 2]]]]), DecodeError),  # a malformed Document_Set
        (pack([[address, [[99]]]]), DecodeError),  # an unknown opcode kind
        # a valid opcode first does not make the program half-written
        (pack([[address, [[0, [1]], [0, [True]]]]]), DecodeError),
    ]
    for program, error in refused:
        with pytest.raises(error):
            db.commit_program("bad", base, program)
    with pytest.raises(UnknownCommitError):
        db.commit_program("bad", CommitId(bytes([7]) * 32), pack([[address, [[0, [1]]]]]))
    assert (db.commit_count(), db.data_version()) == (count, version)
