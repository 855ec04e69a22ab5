"""Child process of the fault tests (tests/commitdb/test_faults.py).

Run as ``python fault_child.py MODE ARGS...`` with the repository on ``PYTHONPATH``. Every mode
writes one line per durable step to stdout, flushed *after* the engine call returned, so a
line the parent read names something the database has promised to keep. Every loop is
bounded, and a closed stdout (the parent went away) ends the child with BrokenPipeError.

Modes
    ``chain DB LIMIT``
        Open a CommitDatabase and extend its single chain: commit ``n`` sets document
        ``doc_key(n)`` to ``content(n)``, and updates the shared document (``.level = n``,
        ``.tags`` gains ``c<n>``). Resumes after the head's ``.level``. Prints ``ready N``
        then ``N COMMIT_HEX`` per commit.
    ``worker DB W COUNT own|last``
        Print ``ready``, wait for a line on stdin, then commit COUNT times: ``own`` chains
        on its own previous commit (the first one is a root), ``last`` commits on
        ``last_commit_id()`` and also adds ``w<W>n<N>`` to the shared document's tags.
        Prints ``N COMMIT_HEX`` per commit.
    ``flat DB LIMIT``
        Open a flat Database; transaction ``n`` sets ``FLAT_DOCS`` documents
        ``flat_key(n, j)`` and the shared document (``.level = n``). Resumes after the
        shared document's level. Prints ``ready N`` then ``N`` per committed transaction.
    ``open-check commit|flat PATH...``
        Try to open each path (read-write, then read-only) and read everything; print one
        JSON line per attempt (see :func:`_open_check`).

The document model and the content of each step live here too, so the parent checks the
children with the very same functions.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from typing import Any

from commitdb.commit_database import CommitDatabase
from commitdb.database import Database
from commitdb.definitions import Definitions
from commitdb.errors import CommitDBError, StorageError
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.types import BLOB_ID, INT64, STRING, Attachment, Field, MapType, SetType, XArrayType
from commitdb.values import Key

FAULT_NS = "0b6f3c52-8d1e-4a7b-9c2d-5e4f6a7b8c9d"
FLAT_DOCS = 10
SHARED_ID = uuid.UUID(int=0xFFFF_FFFF_FFFF)


class Model:
    """The definitions and handles the fault tests use (built the same way everywhere)."""

    def __init__(self) -> None:
        defs = Definitions()
        ns = defs.namespace("Fault", FAULT_NS)
        self.user = defs.create_concept(ns, "User")
        self.login = defs.create_structure(
            ns,
            "Login",
            [
                Field("nickname", STRING),
                Field("password", STRING),
                Field("level", INT64),
                Field("tags", SetType(STRING)),
                Field("scores", MapType(STRING, INT64)),
                Field("history", XArrayType(STRING)),
            ],
        )
        self.avatar = defs.create_structure(ns, "Avatar", [Field("blob", BLOB_ID)])
        self.att: Attachment = defs.create_attachment(ns, "login", self.user, self.login)
        self.avatar_att: Attachment = defs.create_attachment(ns, "avatar", self.user, self.avatar)
        self.defs = defs
        self.shared = self.att.create_key(SHARED_ID)

    def content(self, n: int) -> Any:
        """The document written at step ``n`` (every field derived from n)."""
        return self.login(
            nickname=f"user{n}",
            password=f"pw-{(n * 7919) % 100_003:05d}",
            level=n,
            tags={f"t{n % 7}", f"n{n}"},
            scores={"chess": 1000 + n, "go": n % 13},
            history=[f"login{n}", "edit", f"logout{n}"],
        )

    def shared_root(self) -> Any:
        """The shared document before any step (level 0, no tags)."""
        return self.login(
            nickname="shared", password="", level=0, tags=set(), scores={}, history=[]
        )

    def doc_key(self, n: int) -> Key:
        """The key of the chain document of step ``n``."""
        return self.att.create_key(uuid.UUID(int=n + 1))

    def worker_key(self, worker: int, n: int) -> Key:
        """The key of worker ``worker``'s document of step ``n``."""
        return self.att.create_key(uuid.UUID(int=((worker + 1) << 32) | (n + 1)))

    def flat_key(self, n: int, j: int) -> Key:
        """The key of document ``j`` of flat transaction ``n``."""
        return self.att.create_key(uuid.UUID(int=((n + 1) << 16) | (j + 1)))


def plain(doc: Any) -> Any:
    """A comparable plain form of a Login (xarray positions are random: keep the values)."""
    if doc is None:
        return None
    return {
        "nickname": doc.nickname,
        "password": doc.password,
        "level": doc.level,
        "tags": sorted(doc.tags),
        "scores": dict(sorted(doc.scores.items())),
        "history": list(doc.history),
    }


def _say(*parts: object) -> None:
    print(*parts, flush=True)


def _chain(path: str, limit: int) -> None:
    m = Model()
    db = CommitDatabase.open(path)
    head = db.last_commit_id()
    start = 0 if head is None else db.state(head).get(m.att, m.shared).level + 1
    _say("ready", start)
    for n in range(start, start + limit):
        ms = CommitMutableState(db.state(head))
        ms.set(m.att, m.doc_key(n), m.content(n))
        if n == 0:
            ms.set(m.att, m.shared, m.shared_root())
        else:
            ms.update(m.att, m.shared, ".level", n)
            ms.union_in_set(m.att, m.shared, ".tags", {f"c{n}"})
        head = db.commit_mutations(f"commit {n}", ms)
        _say(n, head.hex())


def _worker(path: str, worker: int, count: int, strategy: str) -> None:
    m = Model()
    db = CommitDatabase.open(path)
    _say("ready")
    if sys.stdin.readline().strip() != "go":
        return
    base: CommitId | None = None
    for n in range(count):
        if strategy == "last":
            base = db.last_commit_id()
        ms = CommitMutableState(db.state(base))
        ms.set(m.att, m.worker_key(worker, n), m.content(worker * 1000 + n))
        if strategy == "last":
            ms.union_in_set(m.att, m.shared, ".tags", {f"w{worker}n{n}"})
        base = db.commit_mutations(f"w{worker} {n}", ms)
        _say(n, base.hex())


def _flat(path: str, limit: int) -> None:
    m = Model()
    db = Database.open(path)
    shared = db.get(m.att, m.shared)
    start = 0 if shared is None else shared.level + 1
    _say("ready", start)
    for n in range(start, start + limit):
        db.begin_transaction()
        for j in range(FLAT_DOCS):
            db.set(m.att, m.flat_key(n, j), m.content(n * FLAT_DOCS + j))
        db.set(m.att, m.shared, m.content(n))
        db.commit()
        _say(n)


def commit_digest(db: CommitDatabase, model: Model) -> str:
    """Read everything a commit database holds and digest it (the open-check compares it).

    Every commit's data must verify; every document of every head is read.
    """
    h = hashlib.sha256()
    for c in sorted(db.commit_ids(), key=bytes):
        data = db.commit_data(c)
        if not data.verify():
            raise AssertionError(f"commit {c.hex()} does not verify")
        h.update(bytes(c) + data.program)
    for head in sorted(db.head_commit_ids(), key=bytes):
        st = db.state(head)
        for key in sorted(st.keys(model.att)):
            h.update(json.dumps([str(key.id), plain(st.get(model.att, key))]).encode())
    return h.hexdigest()


def flat_digest(db: Database, model: Model) -> str:
    """Read every document of a flat database and digest it."""
    h = hashlib.sha256()
    for key, doc in db.enumerate(model.att):
        h.update(json.dumps([str(key.id), plain(doc)]).encode())
    return h.hexdigest()


def _open_check(kind: str, paths: list[str]) -> None:
    """One JSON line per (path, mode): ``{"path", "readonly", "outcome", "type", "storage",
    "message", "digest"}``; outcome is ``ok`` (opened, everything read) or ``error``."""
    m = Model()
    for p in paths:
        for readonly in (False, True):
            out: dict[str, Any] = {"path": p, "readonly": readonly}
            try:
                if kind == "commit":
                    with CommitDatabase.open(p, readonly=readonly) as cdb:
                        out["digest"] = commit_digest(cdb, m)
                else:
                    with Database.open(p, readonly=readonly) as fdb:
                        out["digest"] = flat_digest(fdb, m)
                out["outcome"] = "ok"
            except Exception as exc:  # reported to the parent, which judges it
                out.update(
                    outcome="error",
                    type=type(exc).__name__,
                    commitdb=isinstance(exc, CommitDBError),
                    storage=isinstance(exc, StorageError),
                    message=str(exc),
                )
            _say(json.dumps(out))


def main(argv: list[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode == "chain":
        _chain(args[0], int(args[1]))
    elif mode == "worker":
        _worker(args[0], int(args[1]), int(args[2]), args[3])
    elif mode == "flat":
        _flat(args[0], int(args[1]))
    elif mode == "open-check":
        _open_check(args[0], args[1:])
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
