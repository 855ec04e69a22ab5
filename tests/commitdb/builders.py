"""Concise fixtures for commit-engine tests: a schema, databases, and a DAG builder.

A history is written as a mapping of names to commit specs, so that a scenario reads like its
diagram (in the spirit of dulwich's ``build_commit_graph``)::

    g = build(db, {
        "r":  (None, N.set({1})),          # a root Mutations commit
        "a1": ("r", N.union({10})),        # a Mutations commit on r
        "b1": ("r", N.subtract({1})),
        "m":  merge("a1", "b1"),           # Merge: parent a1 ("ours"), target b1 ("theirs")
        "d":  disable("m", "b1"),          # Disable b1, written on m
        "e":  enable("d", "b1"),
    })
    assert g.names(db.linearization(g["m"])) == ["r", "a1", "b1", "m"]

A Mutations spec is a tuple ``(parent name or None, *mutations)``; each mutation is a callable
applied to a fresh :class:`CommitMutableState` of the parent's state (see :class:`Doc`). The
name is the commit label. Specs may refer to names defined later in the mapping; the builder
resolves dependencies. Two names that would produce the same commit id (same parent, same
program) are refused, since the second would silently alias the first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions
from commitdb.dsm import load_text
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.paths import Path
from commitdb.types import Attachment
from commitdb.values import Key

__all__ = (
    "SCHEMA",
    "Doc",
    "Graph",
    "Mutation",
    "Schema",
    "Spec",
    "build",
    "commit",
    "disable",
    "enable",
    "merge",
    "open_db",
    "schema",
)

SCHEMA = """
namespace T {5e1f0000-0000-4000-8000-000000000001} {
concept Doc;
concept Special is a Doc;
concept Other;
struct Point { int64 x; int64 y; };
struct Rec {
    string name;
    int64 count;
    set<int64> tags;
    map<string, int64> scores;
    vector<int64> values;
    optional<Point> maybe;
    xarray<string> items;
    Point p;
    map<string, Point> places;
    blob_id picture;
};
attachment<Doc, Rec> rec;
attachment<Doc, set<int64>> nums;
attachment<Doc, map<string, int64>> table;
attachment<Doc, xarray<string>> xs;
attachment<Doc, int64> counter;
attachment<Doc, vector<int64>> values;
attachment<Doc, optional<Point>> opt;
attachment<Doc, set<Point>> points;
attachment<Doc, map<Point, int64>> by_point;
attachment<Other, string> note;
};
"""

# Fixed instance ids keep commit ids reproducible across runs.
K1_ID = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
K2_ID = uuid.UUID("00000000-0000-4000-8000-0000000000a2")
K3_ID = uuid.UUID("00000000-0000-4000-8000-0000000000a3")


@dataclass(frozen=True)
class Schema:
    """The test definitions with their attachments and a few fixed keys."""

    defs: Definitions
    rec: Attachment
    nums: Attachment
    table: Attachment
    xs: Attachment
    counter: Attachment
    vec: Attachment
    opt: Attachment
    points: Attachment
    by_point: Attachment
    note: Attachment
    k1: Key
    k2: Key
    special: Key  # a key of the sub-concept Special (accepted where a Doc key is expected)
    other: Key  # a key of the unrelated concept Other

    def point(self, x: int, y: int) -> Any:
        """A ``T::Point`` structure value."""
        t = next(t for t in self.defs.structures() if t.name == "Point")
        return t.check({"x": x, "y": y})

    def rec_value(self, **fields: Any) -> Any:
        """A ``T::Rec`` structure value (defaults for missing fields)."""
        return self.rec.document_type.check(fields)

    def doc(self, attachment: Attachment, key: Key | None = None) -> Doc:
        """A :class:`Doc` handle (key k1 by default)."""
        return Doc(attachment, key if key is not None else self.k1)


def schema() -> Schema:
    """Fresh definitions of :data:`SCHEMA`, with handles."""
    defs = load_text(SCHEMA)

    def att(name: str) -> Attachment:
        return defs.check_attachment(name)

    concepts = {c.name: c for c in defs.concepts()}
    return Schema(
        defs=defs,
        rec=att("T::Doc.rec"),
        nums=att("T::Doc.nums"),
        table=att("T::Doc.table"),
        xs=att("T::Doc.xs"),
        counter=att("T::Doc.counter"),
        vec=att("T::Doc.values"),
        opt=att("T::Doc.opt"),
        points=att("T::Doc.points"),
        by_point=att("T::Doc.by_point"),
        note=att("T::Other.note"),
        k1=Key(concepts["Doc"], K1_ID),
        k2=Key(concepts["Doc"], K2_ID),
        special=Key(concepts["Special"], K3_ID),
        other=Key(concepts["Other"], K1_ID),
    )


def open_db(kind: str, tmp_path: FsPath, defs: Definitions, name: str = "db") -> CommitDatabase:
    """A fresh database: ``"lmdb"`` (a real file under tmp_path) or ``"memory"``."""
    if kind == "memory":
        return CommitDatabase.create_in_memory(defs)
    return CommitDatabase.create(tmp_path / name, defs, durable=False)


# --------------------------------------------------------------------------------------------
# Mutations

Mutation = Callable[[CommitMutableState], Any]


@dataclass(frozen=True)
class Doc:
    """One document (attachment + key); its methods return mutations for :func:`build`."""

    att: Attachment
    key: Key

    def set(self, value: Any) -> Mutation:
        """``ms.set``."""
        return lambda ms: ms.set(self.att, self.key, value)

    def delete(self) -> Mutation:
        """``ms.delete`` (the Document_Delete extension)."""
        return lambda ms: ms.delete(self.att, self.key)

    def update(self, path: Path | str, value: Any) -> Mutation:
        """``ms.update``."""
        return lambda ms: ms.update(self.att, self.key, path, value)

    def diff(self, value: Any, recursive: bool = False) -> Mutation:
        """``ms.diff``."""
        return lambda ms: ms.diff(self.att, self.key, value, recursive)

    def union(self, elements: Any, path: Path | str = ".") -> Mutation:
        """``ms.union_in_set``."""
        return lambda ms: ms.union_in_set(self.att, self.key, path, elements)

    def subtract(self, elements: Any, path: Path | str = ".") -> Mutation:
        """``ms.subtract_in_set``."""
        return lambda ms: ms.subtract_in_set(self.att, self.key, path, elements)

    def map_union(self, entries: Any, path: Path | str = ".") -> Mutation:
        """``ms.union_in_map``."""
        return lambda ms: ms.union_in_map(self.att, self.key, path, entries)

    def map_subtract(self, keys: Any, path: Path | str = ".") -> Mutation:
        """``ms.subtract_in_map``."""
        return lambda ms: ms.subtract_in_map(self.att, self.key, path, keys)

    def map_update(self, entries: Any, path: Path | str = ".") -> Mutation:
        """``ms.update_in_map``."""
        return lambda ms: ms.update_in_map(self.att, self.key, path, entries)

    def insert(
        self, before: uuid.UUID, new: uuid.UUID, value: Any, path: Path | str = "."
    ) -> Mutation:
        """``ms.insert_in_xarray``."""
        return lambda ms: ms.insert_in_xarray(self.att, self.key, path, before, new, value)

    def x_update(self, position: uuid.UUID, value: Any, path: Path | str = ".") -> Mutation:
        """``ms.update_in_xarray``."""
        return lambda ms: ms.update_in_xarray(self.att, self.key, path, position, value)

    def x_remove(self, position: uuid.UUID, path: Path | str = ".") -> Mutation:
        """``ms.remove_in_xarray``."""
        return lambda ms: ms.remove_in_xarray(self.att, self.key, path, position)

    def get(self, reader: Any) -> Any:
        """The document as read through `reader` (a state or a mutable state)."""
        return reader.get(self.att, self.key)


# --------------------------------------------------------------------------------------------
# The DAG builder


@dataclass(frozen=True)
class _Structural:
    kind: str  # "merge" | "disable" | "enable"
    parent: str
    target: str


@dataclass(frozen=True)
class _Mutations:
    parent: str | None
    mutations: tuple[Mutation, ...]


Spec = tuple[Any, ...] | _Structural | _Mutations


def merge(parent: str, target: str) -> _Structural:
    """A Merge commit: ``parent`` is ours, ``target`` theirs (its operations win)."""
    return _Structural("merge", parent, target)


def disable(parent: str, target: str) -> _Structural:
    """A Disable commit written on ``parent`` masking ``target``."""
    return _Structural("disable", parent, target)


def enable(parent: str, target: str) -> _Structural:
    """An Enable commit written on ``parent`` unmasking ``target``."""
    return _Structural("enable", parent, target)


def commit(parent: str | None, *mutations: Mutation) -> _Mutations:
    """A Mutations commit (same as the tuple form ``(parent, *mutations)``)."""
    return _Mutations(parent, mutations)


class Graph(Mapping[str, CommitId]):
    """Named commit ids of a built history."""

    def __init__(self, ids: dict[str, CommitId]) -> None:
        self._ids = ids
        self._names = {v: k for k, v in ids.items()}

    def __getitem__(self, name: str) -> CommitId:
        return self._ids[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def name(self, commit_id: CommitId) -> str:
        """The name of a commit id (its hex prefix when it is not named)."""
        return self._names.get(commit_id, commit_id.hex()[:8])

    def names(self, commit_ids: Any) -> list[str]:
        """Names of commit ids, in the given order (a set is sorted by name)."""
        if isinstance(commit_ids, set | frozenset):
            return sorted(self.name(c) for c in commit_ids)
        return [self.name(c) for c in commit_ids]

    def flags(self, flags: Mapping[CommitId, bool]) -> dict[str, bool]:
        """An ``enabled_by_commit_id`` result keyed by names."""
        return {self.name(c): v for c, v in flags.items()}

    def disabled(self, flags: Mapping[CommitId, bool]) -> set[str]:
        """Names of the commits a flag map says are disabled."""
        return {self.name(c) for c, v in flags.items() if not v}


def _normalize(spec: Spec) -> _Structural | _Mutations:
    if isinstance(spec, _Structural | _Mutations):
        return spec
    if isinstance(spec, tuple) and spec and (spec[0] is None or isinstance(spec[0], str)):
        return _Mutations(spec[0], tuple(spec[1:]))
    raise TypeError(f"not a commit spec: {spec!r}")


def build(db: CommitDatabase, specs: Mapping[str, Spec], into: Graph | None = None) -> Graph:
    """Write the commits of `specs` (name -> spec) and return their ids by name.

    `into` continues a graph built earlier (its names can be used as parents and targets).
    """
    ids: dict[str, CommitId] = dict(into._ids) if into is not None else {}
    normalized = {name: _normalize(s) for name, s in specs.items()}
    visiting: set[str] = set()

    def deps(s: _Structural | _Mutations) -> list[str]:
        if isinstance(s, _Structural):
            return [s.parent, s.target]
        return [] if s.parent is None else [s.parent]

    def make(name: str) -> CommitId:
        if name in ids:
            return ids[name]
        if name not in normalized:
            raise KeyError(f"unknown commit name {name!r}")
        if name in visiting:
            raise ValueError(f"cycle through {name!r}")
        visiting.add(name)
        s = normalized[name]
        for d in deps(s):
            make(d)
        if isinstance(s, _Structural):
            write = {
                "merge": db.merge_commit,
                "disable": db.disable_commit,
                "enable": db.enable_commit,
            }[s.kind]
            cid = write(name, ids[s.parent], ids[s.target])
        else:
            base = db.state(ids[s.parent]) if s.parent is not None else db.initial_state()
            ms = CommitMutableState(base)
            for m in s.mutations:
                m(ms)
            cid = db.commit_mutations(name, ms)
        if cid in ids.values():
            other = next(n for n, c in ids.items() if c == cid)
            raise ValueError(
                f"{name!r} and {other!r} are the same commit (same parent, same program)"
            )
        ids[name] = cid
        visiting.discard(name)
        return cid

    for name in normalized:
        make(name)
    return Graph(ids)
