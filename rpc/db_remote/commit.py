"""The async remote commit database, :class:`AsyncCommitDatabaseRemote`."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from commitdb.blobs import BlobLayout
from commitdb.commits import CommitData, CommitHeader
from commitdb.errors import CommitError, DatabaseClosedError, UnknownCommitError
from commitdb.ids import BlobId, CommitId
from commitdb.mutable_state import PreparedCommit
from commitdb.types import Attachment
from commitdb.values import Key
from rpc.connection import Connection
from rpc.db_remote.base import _AsyncBase
from rpc.db_remote.state import AsyncRemoteCommitState, _seeded, _StateCache, _StateCore
from rpc.db_remote.subscriptions import AsyncSubscription, _AsyncHandler
from rpc.db_remote.wire import (
    DEFAULT_WINDOW,
    CommitEvent,
    MissedEvents,
    _author,
    _blob_ids,
    _check_id,
    _commit_data,
    _commit_data_wire,
    _commit_ids,
    _layout,
    _layout_wire,
    _opt_cid,
    _opt_wid,
    _wid,
)
from rpc.errors import ConnectionClosedError

__all__ = ("AsyncCommitDatabaseRemote",)


class AsyncCommitDatabaseRemote(_AsyncBase):
    """A commit database served by ``commitdb serve`` (async API; the local names)."""

    kind = "commit"

    def __init__(
        self, conn: Connection, name: str, timeout: float | None, handler: _AsyncHandler
    ) -> None:
        super().__init__(conn, name, timeout)
        self._handler = handler
        self._states = _StateCache()
        self._tags = itertools.count(1)

    def __repr__(self) -> str:
        return f"<AsyncCommitDatabaseRemote {self.name}>"

    @classmethod
    def _from_connection(
        cls, conn: Connection, name: str, timeout: float | None, handler: _AsyncHandler
    ) -> AsyncCommitDatabaseRemote:
        return cls(conn, name, timeout, handler)

    # -- DAG ------------------------------------------------------------------------------
    async def data_version(self) -> int:
        """A counter bumped by every write."""
        return int(await self._call("data_version"))

    async def commit_ids(self) -> set[CommitId]:
        """Every commit id."""
        return _commit_ids(await self._call("commit_ids"))

    async def commit_ids_in_order(self) -> list[CommitId]:
        """Every commit id in creation order."""
        return [CommitId(c) for c in await self._call("commit_ids_in_order")]

    async def commits_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, CommitId]]:
        """(creation sequence, id) of the commits created at or after `seq`, oldest first."""
        return [(int(s), CommitId(c)) for s, c in await self._call("commits_since", seq, limit)]

    async def head_commit_ids(self) -> set[CommitId]:
        """Commits that are neither a parent nor a merge target."""
        return _commit_ids(await self._call("head_commit_ids"))

    async def children_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Commits whose parent is `commit_id`."""
        return _commit_ids(await self._call("children_commit_ids", _wid(commit_id)))

    async def nephew_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Merge commits whose target is `commit_id`."""
        return _commit_ids(await self._call("nephew_commit_ids", _wid(commit_id)))

    async def first_commit_id(self) -> CommitId | None:
        """The first commit in creation order (None if empty)."""
        return _opt_cid(await self._call("first_commit_id"))

    async def last_commit_id(self) -> CommitId | None:
        """The commit with the greatest timestamp (None if empty)."""
        return _opt_cid(await self._call("last_commit_id"))

    async def commit_exists(self, commit_id: CommitId) -> bool:
        """True if the commit is stored."""
        return bool(await self._call("commit_exists", _wid(commit_id)))

    async def commit_header(self, commit_id: CommitId) -> CommitHeader:
        """The header of a commit (UnknownCommitError if absent)."""
        return CommitHeader.from_wire(await self._call("commit_header", _wid(commit_id)))

    async def commit_count(self) -> int:
        """Number of commits."""
        return int(await self._call("commit_count"))

    async def is_ancestor(self, ancestor: CommitId, descendant: CommitId) -> bool:
        """Reachability through parent and merge-target links (reflexive)."""
        return bool(await self._call("is_ancestor", _wid(ancestor), _wid(descendant)))

    async def is_mergeable(self, parent: CommitId, target: CommitId) -> bool:
        """True if the two commits have diverged."""
        return bool(await self._call("is_mergeable", _wid(parent), _wid(target)))

    async def linearization(self, commit_id: CommitId) -> list[CommitId]:
        """The linearized history of a commit."""
        return [CommitId(c) for c in await self._call("linearization", _wid(commit_id))]

    async def enabled_by_commit_id(self, commit_id: CommitId) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history of `commit_id`."""
        w = await self._call("enabled_by_commit_id", _wid(commit_id))
        return {CommitId(c): bool(f) for c, f in w}

    # -- writing --------------------------------------------------------------------------
    async def commit_program(
        self, label: str, base: CommitId | None, program: bytes, *, author: str | None = None
    ) -> CommitId:
        """Commit an encoded program on `base` (the server validates and replays it)."""
        b = _check_id(base) if base is not None else CommitId.INVALID
        wire_base = bytes(b) if b.is_valid else None
        return CommitId(
            await self._call("commit_program", wire_base, label, _author(author), bytes(program))
        )

    async def commit_mutations(
        self, label: str, mutable_state: Any, *, author: str | None = None
    ) -> CommitId:
        """Commit a mutable state built on a state of this database (sealed afterwards)."""
        # as with a local database, nothing may change the state until it is sealed
        prepared = mutable_state.prepare_commit()
        cid = await self._commit_prepared(label, prepared, author)
        return mutable_state.seal(cid)  # type: ignore[no-any-return]

    async def _commit_prepared(
        self, label: str, prepared: PreparedCommit, author: str | None
    ) -> CommitId:
        """Commit what a mutable state would write, and cache the new commit's state seeded
        with those documents."""
        base, entries = prepared.base, prepared.entries
        cid = await self.commit_program(label, base, prepared.program(), author=author)
        core = _seeded(self._states, self._defs, cid, base, entries)
        if core is not None:
            self._states.put(cid, AsyncRemoteCommitState(self, core))
        return cid

    async def merge_commit(
        self, label: str, parent: CommitId, target: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Merge of `target` into `parent`."""
        return CommitId(
            await self._call("merge_commit", label, _wid(parent), _wid(target), _author(author))
        )

    async def disable_commit(
        self, label: str, parent: CommitId, disabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Disable commit on `parent` that masks `disabled`."""
        return CommitId(
            await self._call("disable_commit", label, _wid(parent), _wid(disabled), _author(author))
        )

    async def enable_commit(
        self, label: str, parent: CommitId, enabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append an Enable commit on `parent` that unmasks `enabled`."""
        return CommitId(
            await self._call("enable_commit", label, _wid(parent), _wid(enabled), _author(author))
        )

    async def reduce_heads(
        self, anchor: CommitId | None = None, *, author: str | None = None
    ) -> CommitId | None:
        """Fold every head into `anchor` (default: the last commit)."""
        return _opt_cid(await self._call("reduce_heads", _opt_wid(anchor), _author(author)))

    async def forward(self, commit_id: CommitId) -> CommitId:
        """The single head if there is one, else :meth:`fast_forward`."""
        return CommitId(await self._call("forward", _wid(commit_id)))

    async def fast_forward(self, commit_id: CommitId) -> CommitId:
        """Walk children (then merge nephews), smallest id first, to a head."""
        return CommitId(await self._call("fast_forward", _wid(commit_id)))

    # -- states ---------------------------------------------------------------------------
    async def state(self, commit_id: CommitId | None) -> AsyncRemoteCommitState:
        """The state at a commit (None or INVALID: the initial state)."""
        cid = CommitId.INVALID if commit_id is None else _check_id(commit_id)
        if cid.is_valid:
            st = self._states.get(cid)
            if st is not None:
                return st  # type: ignore[no-any-return]
            if not await self.commit_exists(cid):
                raise UnknownCommitError(f"missing commit {cid.hex()}")
        else:
            self._check_open()
        st = AsyncRemoteCommitState(self, _StateCore(cid, (await self._cached_defs()).definitions))
        if cid.is_valid:
            self._states.put(cid, st)
        return st

    def _cached_state(self, commit_id: CommitId | None) -> AsyncRemoteCommitState | None:
        """The state at a commit if this remote holds it already (no round trip)."""
        if commit_id is None or self._user_closed:
            return None
        cid = _check_id(commit_id)
        return self._states.get(cid) if cid.is_valid else None

    async def initial_state(self) -> AsyncRemoteCommitState:
        """The empty state before the first commit."""
        return await self.state(None)

    async def merge_state(self, ours: CommitId, theirs: CommitId) -> AsyncRemoteCommitState:
        """The state a merge of `theirs` into `ours` would produce, without writing it."""
        o, t = _check_id(ours), _check_id(theirs)
        if not await self.is_mergeable(o, t):
            raise CommitError("not mergeable (one is the ancestor of the other)")
        defs = (await self._cached_defs()).definitions
        return AsyncRemoteCommitState(self, _StateCore(CommitId.INVALID, defs, (o, t)))

    async def documents(self, commit_id: CommitId | None) -> list[tuple[Attachment, Key, Any]]:
        """(attachment, key, document) for every document at a commit."""
        st = await self.state(commit_id)
        out: list[tuple[Attachment, Key, Any]] = []
        for att in (await self.definitions()).attachments():
            out.extend((att, k, doc) for k, doc in await st.enumerate(att))
        return out

    async def flatten(
        self, commit_id: CommitId, path: str | os.PathLike[str], label: str = "flatten"
    ) -> Any:
        """A fresh local database at `path` (on this client) with one commit holding the
        state at `commit_id` and only the blobs that state references."""
        from commitdb.commit_database import CommitDatabase
        from commitdb.mutable_state import CommitMutableState
        from commitdb.opcodes import collect_blob_ids

        docs = await self.documents(commit_id)
        blobs = []
        for blob_id in sorted(collect_blob_ids(doc for _, _, doc in docs), key=bytes):
            info, data = await self.blob_info(blob_id), await self.blob(blob_id)
            if info is None or data is None:
                raise CommitError(f"the state references a missing blob {blob_id.hex()}")
            blobs.append((info.layout, data))
        defs, documentation = await self.definitions(), await self.documentation()

        def write() -> CommitDatabase:
            target = CommitDatabase.create(path, defs, documentation=documentation)
            try:
                target.create_blobs(blobs)
                ms = CommitMutableState(target.initial_state())
                for att, key, doc in docs:
                    ms.set(att, key, doc)
                target.commit_mutations(label, ms)
            except BaseException:
                target.close()
                raise
            return target

        return await anyio.to_thread.run_sync(write)

    # -- transport (CommitDatabasing) -----------------------------------------------------
    async def commit_data(self, commit_id: CommitId) -> CommitData:
        """Header and program bytes of a commit."""
        return _commit_data(await self._call("commit_data", _wid(commit_id)))

    async def commit_datas(self, commit_ids: Iterable[CommitId]) -> list[CommitData]:
        """Commit datas of several commits (one round trip)."""
        return [
            _commit_data(w) for w in await self._call("commit_datas", [_wid(c) for c in commit_ids])
        ]

    async def create_commit_data(self, data: CommitData) -> bool:
        """Store a commit received verbatim; False if it was already there."""
        return bool(await self._call("create_commit_data", _commit_data_wire(data)))

    async def create_commit_datas(self, datas: Iterable[CommitData]) -> list[bool]:
        """Store several commits verbatim, in order (one round trip)."""
        w = await self._call("create_commit_datas", [_commit_data_wire(d) for d in datas])
        return [bool(x) for x in w]

    async def commit_blob_ids(self, data: CommitData) -> set[BlobId]:
        """Blob ids referenced by a commit's program."""
        return _blob_ids(await self._call("commit_blob_ids", _commit_data_wire(data)))

    async def unknown_blob_ids(self, blob_ids: Iterable[BlobId]) -> set[BlobId]:
        """The ids among `blob_ids` that are not stored."""
        return _blob_ids(await self._call("unknown_blob_ids", [bytes(b) for b in blob_ids]))

    async def blob_datas(
        self, blob_ids: Iterable[BlobId]
    ) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """(id, layout, bytes) of the stored blobs among `blob_ids`."""
        w = await self._call("blob_datas", [bytes(b) for b in blob_ids])
        return [(BlobId(b), _layout(lay), bytes(d)) for b, lay, d in w]

    async def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs; returns the ids actually added."""
        w = await self._call("create_blobs", [[_layout_wire(lay), bytes(d)] for lay, d in blobs])
        return [BlobId(b) for b in w]

    # -- live notifications ---------------------------------------------------------------
    @asynccontextmanager
    async def subscribe(self, window: int = DEFAULT_WINDOW) -> AsyncIterator[AsyncSubscription]:
        """Receive each new commit, from any writer, as it lands.

        Args:
            window: Events buffered on this client (a subscriber more than this plus the
                server's ``--subscriber-queue`` commits behind gets a :class:`MissedEvents`).

        Yields:
            An async iterator of :class:`CommitEvent` and :class:`MissedEvents` items; the
            subscription ends when the block exits.
        """
        window = max(1, window)
        send, receive = anyio.create_memory_object_stream[CommitEvent | MissedEvents](window)
        tag = f"sub:{next(self._tags)}"
        self._handler.streams[tag] = send  # before subscribing: the first events follow at once
        try:
            _, first_seq = await self._call("subscribe", window, tag)
            sub = AsyncSubscription(self, tag, int(first_seq), window, receive)
            async with receive:
                yield sub
        finally:
            self._handler.streams.pop(tag, None)
            send.close()
            if not self.connection.closed and not self._user_closed:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._call("unsubscribe", tag)
                    except (ConnectionClosedError, DatabaseClosedError):
                        pass
