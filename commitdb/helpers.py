"""Stateless DAG helpers: head reduction, forwarding and flattening (CommitDatabaseHelper)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from commitdb.errors import CommitError
from commitdb.ids import CommitId

if TYPE_CHECKING:
    from commitdb.commit_database import CommitDatabase

__all__ = ("fast_forward", "flatten", "forward", "reduce_heads")


def reduce_heads(
    db: CommitDatabase, anchor: CommitId | None = None, *, author: str | None = None
) -> CommitId | None:
    """Fold every head into `anchor` (default: the last commit) by successive merges, the
    other heads taken in ascending commit id order (the reference order, so every writer
    reduces the same way). Returns the final merge, or None with fewer than two heads."""
    heads = db.head_commit_ids()
    if len(heads) < 2:
        return None
    if anchor is None:
        anchor = db.last_commit_id()
    assert anchor is not None
    if anchor not in heads:
        raise CommitError(f"{anchor.hex()[:12]} is not a head")
    run = anchor
    for h in sorted(heads - {anchor}, key=bytes):
        run = db.merge_commit(f"merge of {h.hex()}", run, h, author=author)
    return run


def _root_commit_ids(db: CommitDatabase) -> set[CommitId]:
    """Commits without a parent: the "children" of the INVALID (initial) commit."""
    return {cid for cid in db.commit_ids() if not db.commit_header(cid).parent_commit_id.is_valid}


def fast_forward(db: CommitDatabase, commit_id: CommitId) -> CommitId:
    """Step to the smallest-id child, else the smallest-id merge nephew, until none.

    From ``CommitId.INVALID`` (the initial state) the first step goes to the smallest-id root
    commit, so that forwarding an empty store's position reaches the history."""
    current = commit_id
    seen: set[CommitId] = set()
    while current not in seen:
        seen.add(current)
        if not current.is_valid:
            nxt = _root_commit_ids(db)
        else:
            nxt = db.children_commit_ids(current) or db.nephew_commit_ids(current)
        if not nxt:
            return current
        current = min(nxt, key=bytes)
    return current


def forward(db: CommitDatabase, commit_id: CommitId) -> CommitId:
    """The single head if there is exactly one, else :func:`fast_forward`."""
    heads = db.head_commit_ids()
    if len(heads) == 1:
        return next(iter(heads))
    return fast_forward(db, commit_id)


def flatten(
    db: CommitDatabase, commit_id: CommitId, path: str | os.PathLike[str], label: str = "flatten"
) -> CommitDatabase:
    """A fresh database at `path` with one commit holding the state at `commit_id` and only
    the blobs that state references."""
    from commitdb.commit_database import CommitDatabase
    from commitdb.mutable_state import CommitMutableState
    from commitdb.opcodes import collect_blob_ids

    docs = list(db.documents(commit_id))
    blob_ids = collect_blob_ids(doc for _, _, doc in docs)
    target = CommitDatabase.create(
        path, db.definitions(), documentation=db.documentation(), durable=True
    )
    try:
        for blob_id in sorted(blob_ids, key=bytes):
            info = db.blob_info(blob_id)
            data = db.blob(blob_id)
            if info is None or data is None:
                raise CommitError(f"the state references a missing blob {blob_id.hex()}")
            target.create_blob(data, info.layout)
        ms = CommitMutableState(target.initial_state())
        for att, key, doc in docs:
            ms.set(att, key, doc)
        target.commit_mutations(label, ms)
    except BaseException:
        target.close()
        raise
    return target
