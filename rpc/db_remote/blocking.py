"""The blocking remote databases: :class:`CommitDatabaseRemote`, :class:`DatabaseRemote` and
:class:`RemoteCommitState`, thin facades over the async remotes (see :mod:`.facade`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from commitdb.blobs import BlobLayout
from commitdb.commits import CommitData, CommitHeader
from commitdb.definitions import Definitions
from commitdb.errors import TransactionError
from commitdb.ids import BlobId, CommitId
from commitdb.opcodes import ABSENT, DocAddress
from commitdb.state import DocumentTrace, EvalAction, _Resolved
from commitdb.types import Attachment
from commitdb.values import Key
from rpc.db_remote.commit import AsyncCommitDatabaseRemote
from rpc.db_remote.facade import _Facade
from rpc.db_remote.flat import AsyncDatabaseRemote
from rpc.db_remote.state import AsyncRemoteCommitState, _out
from rpc.db_remote.subscriptions import Subscription
from rpc.db_remote.wire import _MISSING, DEFAULT_WINDOW, CommitEvent, MissedEvents, _Stale
from rpc.errors import ConnectionClosedError

__all__ = ("CommitDatabaseRemote", "DatabaseRemote", "RemoteCommitState")


class RemoteCommitState:
    """A state of a remote commit database (blocking; evaluated on the server, cached here).

    It reads like a local :class:`~commitdb.CommitState`, and a
    :class:`~commitdb.CommitMutableState` can be built on it (its commit goes to the server).
    """

    def __init__(self, db: CommitDatabaseRemote, state: AsyncRemoteCommitState) -> None:
        self._db = db
        self._a = state
        self._core = state._core

    @property
    def _virtual(self) -> tuple[CommitId, CommitId] | None:
        return self._core.virtual

    def commit_id(self) -> CommitId:
        """The commit of this state (INVALID for the initial state or a virtual merge)."""
        return self._core.commit_id

    def definitions(self) -> Definitions:
        """The definitions typing the documents."""
        return self._core.defs

    def database(self) -> CommitDatabaseRemote:
        """The remote database."""
        return self._db

    def attachment_getting(self) -> RemoteCommitState:
        """This state, as the read interface."""
        return self

    def __repr__(self) -> str:
        c = self._core.commit_id
        return f"<RemoteCommitState {c.hex()[:12] if c.is_valid else 'initial'}>"

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        att, v = self._a._cached_doc(attachment, key)
        if v is _MISSING:
            return self._db._run(self._a.get, attachment, key)
        return _out(att, v)

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        _, v = self._a._cached_doc(attachment, key)
        if v is _MISSING:
            return self._db._run(self._a.has, attachment, key)
        return v is not ABSENT

    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the existing documents."""
        return self._db._run(self._a.keys, attachment)

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) of every document, in key order (one round trip)."""
        return self._db._run(self._a.enumerate, attachment)

    def get_many(self, attachment: Attachment | str, keys: Iterable[Key]) -> list[Any]:
        """Several documents in one round trip (None for absent ones)."""
        return self._db._run(self._a.get_many, attachment, keys)

    def enabled_by_commit_id(self) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history."""
        return self._db._run(self._a.enabled_by_commit_id)

    def eval_actions(self) -> list[EvalAction]:
        """The Mutations commits of the history, latest first, with their enable flags."""
        return self._db._run(self._a.eval_actions)

    def trace(self, attachment: Attachment | str, key: Key) -> DocumentTrace:
        """Replay one document from its last set, reporting each opcode and its failure."""
        return self._db._run(self._a.trace, attachment, key)

    def cache_preload(self) -> float:
        """Fetch every document of every attachment; returns the seconds taken."""
        return self._db._run(self._a.cache_preload)

    def cache_hit_rate(self) -> float:
        """Share of document reads served from this client's cache."""
        return self._a.cache_hit_rate()

    # what CommitMutableState needs from its base
    def _resolve(self, address: DocAddress, att: Attachment) -> _Resolved:
        if self._core.cached(address) is _MISSING:
            self._db._run(self._a._fetch, att, address)
        return self._core.resolved(address)

    def _key_of(self, address: DocAddress) -> Key:
        core = self._core
        try:
            return core.key_of(address[16:])
        except _Stale:
            key: Key = self._db._run(self._a._retry, lambda: core.key_of(address[16:]))
            return key


class CommitDatabaseRemote(_Facade[AsyncCommitDatabaseRemote]):
    """A commit database served by ``commitdb serve`` (blocking; the local names, arguments,
    results and errors — see :mod:`rpc.db_remote` for the few differences).

    ``CommitDatabaseRemote.connect(url, name)`` returns an open remote; use it as a context
    manager (or call :meth:`close`). Each method runs the same method of an
    :class:`AsyncCommitDatabaseRemote` on a private event loop thread.
    """

    kind = "commit"

    _async_class = AsyncCommitDatabaseRemote

    def close(self) -> None:
        """Close the connection (idempotent); further calls raise DatabaseClosedError."""
        super().close()
        self._a._states.clear()

    # -- DAG ------------------------------------------------------------------------------
    def data_version(self) -> int:
        """A counter bumped by every write (commits, blobs, definitions)."""
        return self._run(self._a.data_version)

    def commit_ids(self) -> set[CommitId]:
        """Every commit id."""
        return self._run(self._a.commit_ids)

    def commit_ids_in_order(self) -> list[CommitId]:
        """Every commit id in creation order (parents always before children)."""
        return self._run(self._a.commit_ids_in_order)

    def commits_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, CommitId]]:
        """(creation sequence, id) of the commits created at or after `seq`, oldest first."""
        return self._run(self._a.commits_since, seq, limit)

    def head_commit_ids(self) -> set[CommitId]:
        """Commits that are neither a parent nor a merge target."""
        return self._run(self._a.head_commit_ids)

    def children_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Commits whose parent is `commit_id`."""
        return self._run(self._a.children_commit_ids, commit_id)

    def nephew_commit_ids(self, commit_id: CommitId) -> set[CommitId]:
        """Merge commits whose target is `commit_id`."""
        return self._run(self._a.nephew_commit_ids, commit_id)

    def first_commit_id(self) -> CommitId | None:
        """The first commit in creation order (None if empty)."""
        return self._run(self._a.first_commit_id)

    def last_commit_id(self) -> CommitId | None:
        """The commit with the greatest timestamp, ties going to the most recently stored."""
        return self._run(self._a.last_commit_id)

    def commit_exists(self, commit_id: CommitId) -> bool:
        """True if the commit is stored."""
        return self._run(self._a.commit_exists, commit_id)

    def commit_header(self, commit_id: CommitId) -> CommitHeader:
        """The header of a commit (UnknownCommitError if absent)."""
        return self._run(self._a.commit_header, commit_id)

    def commit_count(self) -> int:
        """Number of commits."""
        return self._run(self._a.commit_count)

    def is_ancestor(self, ancestor: CommitId, descendant: CommitId) -> bool:
        """True if `ancestor` is reachable from `descendant` (reflexive)."""
        return self._run(self._a.is_ancestor, ancestor, descendant)

    def is_mergeable(self, parent: CommitId, target: CommitId) -> bool:
        """True if the two commits have diverged."""
        return self._run(self._a.is_mergeable, parent, target)

    def linearization(self, commit_id: CommitId) -> list[CommitId]:
        """The linearized history of a commit."""
        return self._run(self._a.linearization, commit_id)

    def enabled_by_commit_id(self, commit_id: CommitId) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history of `commit_id`."""
        return self._run(self._a.enabled_by_commit_id, commit_id)

    # -- writing --------------------------------------------------------------------------
    def commit_mutations(
        self, label: str, mutable_state: Any, *, author: str | None = None
    ) -> CommitId:
        """Append a Mutations commit of the mutable state's program on its base commit (on
        the server). The mutable state is sealed afterwards."""
        prepared = mutable_state.prepare_commit()
        cid = self._run(self._a._commit_prepared, label, prepared, author)
        return mutable_state.seal(cid)  # type: ignore[no-any-return]

    def commit_program(
        self, label: str, base: CommitId | None, program: bytes, *, author: str | None = None
    ) -> CommitId:
        """Commit an encoded program on `base` (the server decodes, validates and replays
        it; see :func:`commitdb.opcodes.program_bytes`)."""
        return self._run(partial(self._a.commit_program, author=author), label, base, program)

    def merge_commit(
        self, label: str, parent: CommitId, target: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Merge of `target` into `parent` (the target's operations win)."""
        return self._run(partial(self._a.merge_commit, author=author), label, parent, target)

    def disable_commit(
        self, label: str, parent: CommitId, disabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append a Disable commit on `parent` that masks `disabled`."""
        return self._run(partial(self._a.disable_commit, author=author), label, parent, disabled)

    def enable_commit(
        self, label: str, parent: CommitId, enabled: CommitId, *, author: str | None = None
    ) -> CommitId:
        """Append an Enable commit on `parent` that unmasks `enabled`."""
        return self._run(partial(self._a.enable_commit, author=author), label, parent, enabled)

    def reduce_heads(
        self, anchor: CommitId | None = None, *, author: str | None = None
    ) -> CommitId | None:
        """Fold every head into `anchor` (default: the last commit); None with one head."""
        return self._run(partial(self._a.reduce_heads, author=author), anchor)

    def forward(self, commit_id: CommitId) -> CommitId:
        """The single head if there is one, else :meth:`fast_forward`."""
        return self._run(self._a.forward, commit_id)

    def fast_forward(self, commit_id: CommitId) -> CommitId:
        """Walk children (then merge nephews), smallest id first, to a head."""
        return self._run(self._a.fast_forward, commit_id)

    def flatten(
        self, commit_id: CommitId, path: str | os.PathLike[str], label: str = "flatten"
    ) -> Any:
        """A fresh *local* database at `path` (on this client) with one commit holding the
        state at `commit_id` and only the blobs that state references."""
        from commitdb.helpers import flatten

        return flatten(self, commit_id, path, label)  # type: ignore[arg-type]

    # -- states ---------------------------------------------------------------------------
    def _facade(self, state: AsyncRemoteCommitState) -> RemoteCommitState:
        st = state._facade
        if st is None:
            st = state._facade = RemoteCommitState(self, state)
        return st  # type: ignore[no-any-return]

    def state(self, commit_id: CommitId | None) -> RemoteCommitState:
        """The state at a commit (None or INVALID: the initial state)."""
        self._check_open()
        cached = self._a._cached_state(commit_id)
        return self._facade(cached or self._run(self._a.state, commit_id))

    def initial_state(self) -> RemoteCommitState:
        """The empty state before the first commit."""
        return self.state(None)

    def merge_state(self, ours: CommitId, theirs: CommitId) -> RemoteCommitState:
        """The state a merge of `theirs` into `ours` would produce, without writing it."""
        return self._facade(self._run(self._a.merge_state, ours, theirs))

    def documents(self, commit_id: CommitId | None) -> Iterator[tuple[Attachment, Key, Any]]:
        """(attachment, key, document) for every document at a commit."""
        yield from self._run(self._a.documents, commit_id)

    # -- transport (CommitDatabasing) -----------------------------------------------------
    def commit_data(self, commit_id: CommitId) -> CommitData:
        """Header and program bytes of a commit."""
        return self._run(self._a.commit_data, commit_id)

    def commit_datas(self, commit_ids: Iterable[CommitId]) -> list[CommitData]:
        """Commit datas of several commits (one round trip)."""
        return self._run(self._a.commit_datas, commit_ids)

    def commit_blob_ids(self, data: CommitData) -> set[BlobId]:
        """Blob ids referenced by a commit's program."""
        return self._run(self._a.commit_blob_ids, data)

    def create_commit_data(self, data: CommitData) -> bool:
        """Store a commit received verbatim; False if it was already there."""
        return self._run(self._a.create_commit_data, data)

    def create_commit_datas(self, datas: Iterable[CommitData]) -> list[bool]:
        """Store several commits verbatim, in order (one round trip)."""
        return self._run(self._a.create_commit_datas, datas)

    def unknown_blob_ids(self, blob_ids: Iterable[BlobId]) -> set[BlobId]:
        """The ids among `blob_ids` that are not stored."""
        return self._run(self._a.unknown_blob_ids, blob_ids)

    def blob_datas(self, blob_ids: Iterable[BlobId]) -> list[tuple[BlobId, BlobLayout, bytes]]:
        """(id, layout, bytes) of the stored blobs among `blob_ids`."""
        return self._run(self._a.blob_datas, blob_ids)

    def create_blobs(self, blobs: Iterable[tuple[BlobLayout, bytes]]) -> list[BlobId]:
        """Store several blobs in one transaction; returns the ids actually added."""
        return self._run(self._a.create_blobs, blobs)

    # -- live notifications ---------------------------------------------------------------
    def subscribe(
        self,
        callback: Callable[[CommitEvent | MissedEvents], Any] | None = None,
        *,
        window: int = DEFAULT_WINDOW,
    ) -> Subscription:
        """Receive each new commit, from any writer, as it lands.

        Args:
            callback: Called with each event from a helper thread (None: iterate the
                returned subscription instead).
            window: Events buffered on this client; a subscriber more than this plus the
                server's ``--subscriber-queue`` commits behind gets a :class:`MissedEvents`
                and resumes with the newest commits.

        Returns:
            The subscription (a context manager; :meth:`Subscription.close` unsubscribes).
        """
        self._check_open()
        cm = self._portal.wrap_async_context_manager(self._a.subscribe(window))
        sub = Subscription(self, cm, cm.__enter__(), callback)
        self._subscriptions.add(sub)
        return sub


class DatabaseRemote(_Facade[AsyncDatabaseRemote]):
    """A flat database served by ``commitdb serve`` (blocking; the local names, arguments,
    results and errors).

    Transactions belong to this connection (its session on the server): another client does
    not see them before :meth:`commit`, and they are rolled back if the connection drops.
    Each method runs the same method of an :class:`AsyncDatabaseRemote` on a private event
    loop thread.
    """

    kind = "flat"

    _async_class = AsyncDatabaseRemote

    # -- transactions ---------------------------------------------------------------------
    def begin_transaction(self, mode: str | None = "deferred") -> None:
        """Open this session's transaction (``deferred``, ``immediate`` or ``exclusive``)."""
        self._run(self._a.begin_transaction, mode)

    def commit(self) -> None:
        """Write this session's transaction in one storage transaction and end it."""
        self._run(self._a.commit)

    def rollback(self) -> None:
        """Discard this session's transaction and end it."""
        self._run(self._a.rollback)

    def in_transaction(self) -> bool:
        """True while this session has a transaction open."""
        return self._run(self._a.in_transaction)

    @contextmanager
    def transaction(self, mode: str | None = "deferred") -> Iterator[DatabaseRemote]:
        """A block in a transaction: commit on success, roll back on exception."""
        self.begin_transaction(mode)
        try:
            yield self
        except BaseException:
            self._end_quietly()
            raise
        if self.is_closed():
            return
        try:
            self.commit()
        except TransactionError:
            if self.in_transaction():
                raise  # else: the block ended the transaction itself
        except BaseException:
            self._end_quietly()
            raise

    def _end_quietly(self) -> None:
        """Roll back after a failure, if the transaction is still open."""
        if not self.is_closed():
            try:
                self.rollback()
            except (TransactionError, ConnectionClosedError):
                pass

    # -- documents ------------------------------------------------------------------------
    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the documents of an attachment."""
        return self._run(self._a.keys, attachment)

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        return self._run(self._a.has, attachment, key)

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        return self._run(self._a.get, attachment, key)

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) for every document, in key order."""
        return self._run(self._a.enumerate, attachment)

    def set(self, attachment: Attachment | str, key: Key, value: Any) -> bool:
        """Create or replace a document in this session's transaction; returns True."""
        return self._run(self._a.set, attachment, key, value)

    def delete(self, attachment: Attachment | str, key: Key) -> bool:
        """Delete a document in this session's transaction; returns whether it existed."""
        return self._run(self._a.delete, attachment, key)

    def del_blob(self, blob_id: BlobId) -> bool:
        """Delete a blob in this session's transaction; returns whether it existed."""
        return self._run(self._a.del_blob, blob_id)
