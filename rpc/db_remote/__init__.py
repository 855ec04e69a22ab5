"""Remote databases: the local CommitDatabase / Database API over the native protocol.

Async first::

    async with AsyncCommitDatabaseRemote.connect("tcp://127.0.0.1:54321", "main") as db:
        head = await db.last_commit_id()
        state = await db.state(head)
        doc = await state.get(login, key)

and a blocking facade with the local names, arguments, results and errors
(:class:`CommitDatabaseRemote`, :class:`DatabaseRemote`), on whose states a local
:class:`~commitdb.CommitMutableState` can be built::

    with CommitDatabaseRemote.connect(url, "main") as db:
        ms = CommitMutableState(db.state(db.last_commit_id()))
        ms.set(login, key, {...})
        db.commit_mutations("edit", ms)      # committed on the server

The blocking facade is a thin wrapper: each blocking remote runs its async twin on a private
event loop thread and forwards every call through an anyio blocking portal. Engine errors
come back as the same :mod:`commitdb.errors` classes (an unknown commit raises
``UnknownCommitError``...), ``ValueError``/``TypeError`` of the server as themselves, a lost
connection as :class:`~rpc.errors.ConnectionClosedError`, and any call after ``close()`` as
``DatabaseClosedError``.

States are evaluated on the server and cached here (a state never changes). After
``commit_mutations`` the new commit's state is seeded with the documents the commit wrote, so
a loop of read-modify-commit costs one round trip per commit.

Where the remote differs from the local classes (on purpose):

* ``path()`` returns the served name (a client never sees the server's filesystem) and
  ``in_memory()`` is False;
* ``flatten(commit_id, path)`` writes the flat copy to *the client's* ``path``;
* the default ``author`` of a commit is the client's user (``COMMITDB_AUTHOR`` or the login
  name of the client process), the timestamp is the server's clock;
* ``subscribe`` (live notifications) exists only remotely.

Modules: :mod:`.wire` (value types, wire forms), :mod:`.state` (state cores and the async
state), :mod:`.base` (connection, definitions, blobs), :mod:`.commit` and :mod:`.flat` (the
async remotes), :mod:`.subscriptions`, :mod:`.facade` and :mod:`.blocking` (the blocking
facades).
"""

from __future__ import annotations

from rpc.db_remote.base import AsyncRemoteBlobStream, list_databases
from rpc.db_remote.blocking import CommitDatabaseRemote, DatabaseRemote, RemoteCommitState
from rpc.db_remote.commit import AsyncCommitDatabaseRemote
from rpc.db_remote.facade import RemoteBlobStream
from rpc.db_remote.flat import AsyncDatabaseRemote
from rpc.db_remote.state import AsyncRemoteCommitState
from rpc.db_remote.subscriptions import AsyncSubscription, Subscription
from rpc.db_remote.wire import (
    DEFAULT_WINDOW,
    CommitEvent,
    MissedEvents,
    ServedDatabaseInfo,
    default_author,
)

__all__ = (
    "DEFAULT_WINDOW",
    "AsyncCommitDatabaseRemote",
    "AsyncDatabaseRemote",
    "AsyncRemoteBlobStream",
    "AsyncRemoteCommitState",
    "AsyncSubscription",
    "CommitDatabaseRemote",
    "CommitEvent",
    "DatabaseRemote",
    "MissedEvents",
    "RemoteBlobStream",
    "RemoteCommitState",
    "ServedDatabaseInfo",
    "Subscription",
    "default_author",
    "list_databases",
)
