"""CommitStore: the interactive facade — current state, dispatch, undo/redo, notifications.

``dispatch(label, fn, *args)`` runs ``fn(mutable_state, *args)`` on a fresh mutable state of
the current state, commits the result and moves the store onto it. A dispatch whose function
(or commit) raises leaves no commit and the store unchanged; the error goes to the notifier
*and* to the caller (the reference swallows it and returns None).

Undo and redo never rewrite history: undo appends a Disable commit of the undone commit
(``Undo [label]``), redo appends a Disable commit of that Undo commit (``Redo [label]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.errors import StoreError
from commitdb.ids import CommitId
from commitdb.mutable_state import CommitMutableState
from commitdb.paths import Path
from commitdb.state import CommitState
from commitdb.types import Attachment
from commitdb.values import Key

__all__ = ("CommitStore", "CommitStoreNotifying", "UndoEntry")

log = logging.getLogger("commitdb.store")
R = TypeVar("R")

_NOTIFICATIONS = (
    "notify_database_did_open",
    "notify_database_did_close",
    "notify_state_did_change",
    "notify_definitions_did_change",
    "notify_dispatch_error",
    "notify_stop_live",
    "notify_reset_database",
    "notify_database_will_reset",
    "notify_database_did_reset",
)


class CommitStoreNotifying(Protocol):
    """What a CommitStore tells its observer (every method is optional to implement via
    :meth:`CommitStore.set_notifier`, which fills missing ones with no-ops)."""

    def notify_database_did_open(self) -> None:
        """A database was attached with ``use``."""

    def notify_database_did_close(self) -> None:
        """The database was released with ``close``."""

    def notify_state_did_change(self) -> None:
        """The current state moved (dispatch, undo, redo, navigation)."""

    def notify_definitions_did_change(self) -> None:
        """The database's definitions were extended."""

    def notify_dispatch_error(self, error: BaseException) -> None:
        """A dispatch failed; nothing was committed."""

    def notify_stop_live(self) -> None:
        """Application-defined: stop a live loop (e.g. a sync loop)."""

    def notify_reset_database(self) -> None:
        """Application-defined: the database should be reset."""

    def notify_database_will_reset(self) -> None:
        """A reset is about to happen."""

    def notify_database_did_reset(self) -> None:
        """A reset happened."""


@dataclass
class UndoEntry:
    """A dispatched commit and, once undone, the Disable commit that undid it."""

    commit_id: CommitId
    label: str
    undo_commit_id: CommitId | None = None


class CommitStore:
    """The current state of a commit database, with dispatch and undo/redo."""

    def __init__(
        self, database: CommitDatabase | None = None, notifier: object | None = None
    ) -> None:
        self._db: CommitDatabase | None = None
        self._state: CommitState | None = None
        self._notifier: object | None = notifier
        self._stack: list[UndoEntry] = []
        self._cursor = 0
        if database is not None:
            self.use(database)

    # -- notifier -------------------------------------------------------------------------
    def notifier(self) -> object | None:
        """The current observer."""
        return self._notifier

    def set_notifier(self, notifier: object | None) -> None:
        """Observe the store with any object having some of the ``notify_*`` methods."""
        self._notifier = notifier

    def _notify(self, name: str, *args: object) -> None:
        n = self._notifier
        method = getattr(n, name, None) if n is not None else None
        if method is None:
            return
        try:
            method(*args)
        except Exception:  # an observer must never break the store
            log.exception("notifier %s raised", name)

    def notify_database_did_open(self) -> None:
        """Re-broadcast ``database_did_open``."""
        self._notify("notify_database_did_open")

    def notify_database_did_close(self) -> None:
        """Re-broadcast ``database_did_close``."""
        self._notify("notify_database_did_close")

    def notify_state_did_change(self) -> None:
        """Re-broadcast ``state_did_change``."""
        self._notify("notify_state_did_change")

    def notify_definitions_did_change(self) -> None:
        """Re-broadcast ``definitions_did_change``."""
        self._notify("notify_definitions_did_change")

    def notify_dispatch_error(self, error: BaseException) -> None:
        """Re-broadcast ``dispatch_error``."""
        self._notify("notify_dispatch_error", error)

    def notify_stop_live(self) -> None:
        """Re-broadcast ``stop_live``."""
        self._notify("notify_stop_live")

    def notify_reset_database(self) -> None:
        """Re-broadcast ``reset_database``."""
        self._notify("notify_reset_database")

    def notify_database_will_reset(self) -> None:
        """Re-broadcast ``database_will_reset``."""
        self._notify("notify_database_will_reset")

    def notify_database_did_reset(self) -> None:
        """Re-broadcast ``database_did_reset``."""
        self._notify("notify_database_did_reset")

    # -- lifecycle ------------------------------------------------------------------------
    def use(self, database: CommitDatabase) -> None:
        """Attach a database and move to its last commit (undo history cleared)."""
        self._db = database
        self._state = database.state(database.last_commit_id())
        self.clear_undo_redo()
        self._notify("notify_database_did_open")

    def close(self) -> None:
        """Release the database (the database itself stays open)."""
        self._db = None
        self._state = None
        self.clear_undo_redo()
        self._notify("notify_database_did_close")

    def database(self) -> CommitDatabase:
        """The attached database (StoreError if none)."""
        if self._db is None:
            raise StoreError("no database: call use(database) first")
        return self._db

    def has_database(self) -> bool:
        """True when a database is attached."""
        return self._db is not None

    def set_database(self, database: CommitDatabase | None) -> None:
        """Raw setter (no state rebuild, no notification)."""
        self._db = database

    def state(self) -> CommitState:
        """The current state (StoreError if none)."""
        if self._state is None:
            raise StoreError("no state: call use(database) first")
        return self._state

    def has_state(self) -> bool:
        """True when a state is current."""
        return self._state is not None

    def set_state(self, state: CommitState | None) -> None:
        """Raw setter (no notification)."""
        self._state = state

    def commit_id(self) -> CommitId:
        """The current commit (INVALID before the first commit)."""
        return self.state().commit_id()

    def definitions(self) -> Definitions:
        """The database's definitions."""
        return self.database().definitions()

    def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Extend the database's definitions and notify."""
        info = self.database().extend_definitions(definitions)
        self._notify("notify_definitions_did_change")
        return info

    def attachment_getting(self) -> CommitState:
        """The current state, as the read interface."""
        return self.state()

    def mutable_state(self) -> CommitMutableState:
        """A fresh mutable state over the current state."""
        return CommitMutableState(self.state())

    # -- moving ---------------------------------------------------------------------------
    def _move(self, commit_id: CommitId) -> None:
        self._state = self.database().state(commit_id)
        self._notify("notify_state_did_change")

    def _push(self, commit_id: CommitId, label: str) -> None:
        del self._stack[self._cursor :]
        self._stack.append(UndoEntry(commit_id, label))
        self._cursor = len(self._stack)

    # -- dispatch -------------------------------------------------------------------------
    def dispatch(self, label: str, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(mutable_state, *args)``, commit what it recorded, move onto the commit and
        return fn's result. On error: nothing committed, notifier told, error re-raised."""
        try:
            db = self.database()
            ms = CommitMutableState(self.state())
            result = fn(ms, *args)
            cid = db.commit_mutations(label, ms)
        except Exception as exc:
            self._notify("notify_dispatch_error", exc)
            raise
        self._push(cid, label)
        self._move(cid)
        return result

    def dispatch_set(self, label: str, attachment: Attachment | str, key: Key, value: Any) -> None:
        """Dispatch one ``set``."""
        self.dispatch(label, lambda ms: ms.set(attachment, key, value))

    def dispatch_update(
        self, label: str, attachment: Attachment | str, key: Key, path: Path | str, value: Any
    ) -> None:
        """Dispatch one ``update``."""
        self.dispatch(label, lambda ms: ms.update(attachment, key, path, value))

    def dispatch_diff(
        self,
        label: str,
        attachment: Attachment | str,
        key: Key,
        value: Any,
        recursive: bool = False,
    ) -> None:
        """Dispatch one ``diff``."""
        self.dispatch(label, lambda ms: ms.diff(attachment, key, value, recursive))

    def dispatch_enable_commit(self, commit_id: CommitId, enabled: bool) -> CommitId:
        """Append an Enable/Disable of `commit_id` on the current commit (undoable)."""
        db = self.database()
        try:
            target_label = db.commit_header(commit_id).label
            verb = "Enable" if enabled else "Disable"
            label = f"{verb} [{target_label}]"
            make = db.enable_commit if enabled else db.disable_commit
            cid = make(label, self.commit_id(), commit_id)
        except Exception as exc:
            self._notify("notify_dispatch_error", exc)
            raise
        self._push(cid, label)
        self._move(cid)
        return cid

    # -- undo / redo ----------------------------------------------------------------------
    def can_undo(self) -> bool:
        """True if a dispatched commit can be undone."""
        return self._cursor > 0

    def can_redo(self) -> bool:
        """True if an undone commit can be redone."""
        return self._cursor < len(self._stack)

    def undo(self) -> CommitId | None:
        """Append ``Undo [label]`` disabling the last dispatched commit; None if nothing to undo."""
        if not self.can_undo():
            return None
        entry = self._stack[self._cursor - 1]
        cid = self.database().disable_commit(
            f"Undo [{entry.label}]", self.commit_id(), entry.commit_id
        )
        entry.undo_commit_id = cid
        self._cursor -= 1
        self._move(cid)
        return cid

    def redo(self) -> CommitId | None:
        """Append ``Redo [label]`` disabling the Undo commit; None if nothing to redo."""
        if not self.can_redo():
            return None
        entry = self._stack[self._cursor]
        assert entry.undo_commit_id is not None
        cid = self.database().disable_commit(
            f"Redo [{entry.label}]", self.commit_id(), entry.undo_commit_id
        )
        self._cursor += 1
        self._move(cid)
        return cid

    def undo_stack_ids(self) -> tuple[list[CommitId], int | None]:
        """Dispatched commit ids (oldest first) and the cursor (None at the base)."""
        return [e.commit_id for e in self._stack], (self._cursor - 1 if self._cursor else None)

    def clear_undo_redo(self) -> None:
        """Forget the undo history."""
        self._stack = []
        self._cursor = 0

    def reset_undo_redo(self) -> None:
        """Forget the undo history, anchoring on the current commit."""
        self.state()
        self.clear_undo_redo()

    # -- navigation and DAG actions -------------------------------------------------------
    def use_commit(self, commit_id: CommitId) -> None:
        """Move to a commit (undo history kept, no notification — reference behaviour)."""
        self._state = self.database().state(commit_id)

    def commit_mutations(self, label: str, mutable_state: CommitMutableState) -> CommitId:
        """Commit a mutable state and move onto it."""
        cid = self.database().commit_mutations(label, mutable_state)
        self._move(cid)
        return cid

    def disable_commit(self, commit_id: CommitId) -> CommitId:
        """Append a Disable of `commit_id` on the current commit and move onto it."""
        label = f"Disable [{self.database().commit_header(commit_id).label}]"
        cid = self.database().disable_commit(label, self.commit_id(), commit_id)
        self._move(cid)
        return cid

    def enable_commit(self, commit_id: CommitId) -> CommitId:
        """Append an Enable of `commit_id` on the current commit and move onto it."""
        label = f"Enable [{self.database().commit_header(commit_id).label}]"
        cid = self.database().enable_commit(label, self.commit_id(), commit_id)
        self._move(cid)
        return cid

    def merge_commit(self, commit_id: CommitId) -> CommitId:
        """Merge `commit_id` into the current commit and move onto the merge."""
        cid = self.database().merge_commit(
            f"merge of {commit_id.hex()}", self.commit_id(), commit_id
        )
        self._move(cid)
        return cid

    def forward(self) -> CommitId:
        """Move to the single head, or fast-forward from the current commit."""
        cid = self.database().forward(self.commit_id())
        self._move(cid)
        return cid

    def reduce_heads(self) -> CommitId | None:
        """Reduce all heads (anchored on the last commit) and move onto the result."""
        cid = self.database().reduce_heads()
        if cid is not None:
            self._move(cid)
        return cid
