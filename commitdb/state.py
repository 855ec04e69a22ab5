"""CommitState: the read-only view of the documents at a commit.

Reading one document never replays unrelated history: the per-document index holds only the
commits that touched it, and each entry keeps the document as it was after that commit (a
*snapshot*). The read takes the newest entry whose snapshot is valid for this state and
replays only what follows it:

* In a *simple* history (a chain of Mutations commits: no merge, no mask) the newest entry
  on the ancestor chain is the answer — one index lookup and one decode.
* Otherwise the state's linearization and enable flags are computed once (engine spec
  §5.2–§5.3); the document's entries are ordered by it, and replay starts from the newest
  snapshot whose history is exactly this state's prefix (the same touching commits in the
  same order — checked with the entry's chained history digest — all enabled), or from the
  last enabled Document_Set. Opcodes that fail are skipped and
  recorded for :meth:`CommitState.trace`; replay never raises.

Documents are cached once materialized; ``get`` returns a copy.
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from commitdb.codec import decode
from commitdb.commit_database import EMPTY_HISTORY as _EMPTY_HISTORY, history_step
from commitdb.commits import CommitHeader, CommitKind
from commitdb.copier import copier
from commitdb.dag import Linearization, linearize, mask
from commitdb.definitions import Definitions
from commitdb.errors import UnknownAttachmentError, ValidationError
from commitdb.ids import CommitId
from commitdb.opcodes import ABSENT, DocAddress, Op, OpKind, ReplayFailure, apply_op, decode_ops
from commitdb.types import Attachment, ConceptType
from commitdb.values import Key

if TYPE_CHECKING:
    from commitdb.commit_database import CommitDatabase, DocEntry

__all__ = ("CommitState", "DocumentTrace", "EvalAction", "TraceStep")


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One replayed opcode: the commit it came from, the opcode, and why it failed (or None)."""

    commit_id: CommitId
    op: Op
    error: str | None


@dataclass(slots=True)
class DocumentTrace:
    """How a document was rebuilt: its value and every opcode replayed since the last set."""

    attachment: Attachment
    key: Key
    value: Any
    steps: list[TraceStep] = field(default_factory=list)
    skipped_commits: list[CommitId] = field(default_factory=list)

    @property
    def failures(self) -> list[TraceStep]:
        """Steps whose opcode had no effect."""
        return [s for s in self.steps if s.error is not None]


@dataclass(frozen=True, slots=True)
class EvalAction:
    """A Mutations commit of the state's history with its enable flag."""

    header: CommitHeader
    enabled: bool


class _Resolved:
    """A materialized document with what a commit on top of it records about its history:
    how many commits touched it, whether all were enabled, and the digest of their order
    (computed on demand from `order` when the state replayed them)."""

    __slots__ = ("_history", "_order", "all_enabled", "touches", "value")

    def __init__(
        self,
        value: Any,
        touches: int,
        all_enabled: bool,
        history: int | None = _EMPTY_HISTORY,
        order: list[CommitId] | None = None,
    ) -> None:
        self.value = value
        self.touches = touches
        self.all_enabled = all_enabled
        self._history = history
        self._order = order

    def history(self) -> int | None:
        """Chained digest of the touching commits in this state's order (None: unknown)."""
        if self._order is not None:
            h = _EMPTY_HISTORY
            for c in self._order:
                h = history_step(h, c)
            self._history = h
            self._order = None
        return self._history


class CommitState:
    """The documents at a commit (immutable once built; later commits make new states)."""

    def __init__(
        self,
        db: CommitDatabase,
        commit_id: CommitId,
        *,
        virtual_merge: tuple[CommitId, CommitId] | None = None,
    ) -> None:
        self._db = db
        self._commit_id = commit_id
        self._virtual = virtual_merge
        self._defs = db.definitions()
        self._rec = db._record(commit_id) if commit_id.is_valid else None
        self._simple = self._rec is not None and self._rec.simple and virtual_merge is None
        self._cache: dict[DocAddress, _Resolved] = {}
        self._lin: Linearization | None = None
        self._flags: dict[CommitId, bool] | None = None
        self._chain: list[CommitId] = [commit_id] if self._simple else []
        self.cache_requests = 0
        self.cache_hits = 0

    # -- identity -------------------------------------------------------------------------
    def commit_id(self) -> CommitId:
        """The commit this state is at (INVALID for the initial state or a virtual merge)."""
        return self._commit_id

    def definitions(self) -> Definitions:
        """The definitions typing this state's documents."""
        return self._defs

    def database(self) -> CommitDatabase:
        """The database the state reads from."""
        return self._db

    def attachment_getting(self) -> CommitState:
        """This state, as the read interface."""
        return self

    def __repr__(self) -> str:
        c = self._commit_id.hex()[:12] if self._commit_id.is_valid else "initial"
        return f"<CommitState {c}>"

    # -- argument checks ------------------------------------------------------------------
    def _attachment(self, attachment: Attachment | str | uuid.UUID) -> Attachment:
        try:
            return self._defs.check_attachment(attachment)
        except UnknownAttachmentError:
            self._defs = self._db.definitions()
            return self._defs.check_attachment(attachment)

    @staticmethod
    def _key(att: Attachment, key: object) -> Key:
        if not isinstance(key, Key):
            raise ValidationError(
                str(att.key_type), f"{type(key).__name__} {key!r}", att.identifier
            )
        if not att.key_type.accepts_concept(key.concept):
            raise ValidationError(
                str(att.key_type), f"key of {key.concept}", f"{att.identifier} key"
            )
        return key

    # -- reads ----------------------------------------------------------------------------
    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None if it does not exist."""
        att = self._attachment(attachment)
        k = self._key(att, key)
        address = att.runtime_id.bytes + k.concept.runtime_id.bytes + k.id.bytes
        r = self._resolve(address, att)
        if r.value is ABSENT:
            return None
        return copier(att.document_type)(r.value)

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att = self._attachment(attachment)
        k = self._key(att, key)
        address = att.runtime_id.bytes + k.concept.runtime_id.bytes + k.id.bytes
        return self._resolve(address, att).value is not ABSENT

    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the documents that exist under an attachment."""
        att = self._attachment(attachment)
        out: set[Key] = set()
        if not self._commit_id.is_valid and self._virtual is None:
            return out
        with self._db._read() as txn:
            addresses = self._db._addresses(att.runtime_id.bytes, txn)
        for address in addresses:
            if self._resolve(address, att).value is not ABSENT:
                out.add(self._key_of(address))
        return out

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) of every existing document of an attachment."""
        att = self._attachment(attachment)
        return [(k, self.get(att, k)) for k in sorted(self.keys(att))]

    def _key_of(self, address: DocAddress) -> Key:
        concept = self._defs.query_type(uuid.UUID(bytes=address[16:32]))
        if not isinstance(concept, ConceptType):
            self._defs = self._db.definitions()
            concept = self._defs.query_type(uuid.UUID(bytes=address[16:32]))
        assert isinstance(concept, ConceptType)
        return Key(concept, uuid.UUID(bytes=address[32:]))

    # -- resolution -----------------------------------------------------------------------
    def _resolve(self, address: DocAddress, att: Attachment) -> _Resolved:
        self.cache_requests += 1
        r = self._cache.get(address)
        if r is not None:
            self.cache_hits += 1
            return r
        if not self._commit_id.is_valid and self._virtual is None:
            r = _Resolved(ABSENT, 0, True)
        elif self._simple:
            r = self._resolve_simple(address, att)
        else:
            r = self._resolve_general(address, att, None)
        self._cache[address] = r
        return r

    def _ancestor_on_chain(self, commit_id: CommitId, height: int) -> bool:
        """In a simple history: is `commit_id` (at `height`) on this state's parent chain?"""
        assert self._rec is not None
        top = self._rec.height
        if height > top:
            return False
        chain = self._chain
        while len(chain) <= top - height:
            parent = self._db._record(chain[-1]).header.parent_commit_id
            if not parent.is_valid:
                return False
            chain.append(parent)
        return chain[top - height] == commit_id

    def _resolve_simple(self, address: DocAddress, att: Attachment) -> _Resolved:
        assert self._rec is not None
        db = self._db
        with db._read() as txn:
            for e in db._doc_entries_before(address, self._rec.seq, txn):
                rec = db._record(e.commit_id, txn)
                if not self._ancestor_on_chain(e.commit_id, rec.height):
                    continue
                if not e.snapshot_known:
                    break
                raw = e.snapshot_bytes()
                if raw is None:
                    return _Resolved(ABSENT, e.touches, True, e.history)
                value = decode(raw, att.document_type, self._defs)
                return _Resolved(value, e.touches, True, e.history)
            else:
                return _Resolved(ABSENT, 0, True)
        return self._resolve_general(address, att, None)

    def _linearization(self) -> Linearization:
        if self._lin is None:
            if self._virtual is not None:
                ours, theirs = self._virtual
                cache = self._db._lin_cache
                p = linearize(ours, self._db._header, cache)
                t = linearize(theirs, self._db._header, cache)
                seen = p.positions
                brought = [x for x in t.order if x not in seen]
                introduced = dict(p.introduced)
                brought_set = set(brought)
                for m, xs in t.introduced.items():
                    if m in brought_set:
                        introduced[m] = [x for x in xs if x in brought_set]
                self._lin = Linearization([*p.order, *brought], introduced)
            else:
                self._lin = self._db._linearize(self._commit_id)
        return self._lin

    def _enabled(self) -> dict[CommitId, bool]:
        if self._flags is None:
            self._flags = mask(self._linearization(), self._db._header)
        return self._flags

    def _ordered_entries(self, address: DocAddress) -> list[DocEntry]:
        lin = self._linearization()
        pos = lin.positions
        entries = [e for e in self._db._doc_entries(address) if e.commit_id in pos]
        entries.sort(key=lambda e: pos[e.commit_id])
        return entries

    def _resolve_general(
        self, address: DocAddress, att: Attachment, trace: DocumentTrace | None
    ) -> _Resolved:
        entries = self._ordered_entries(address)
        n = len(entries)
        if n == 0:
            return _Resolved(ABSENT, 0, True)
        flags = self._enabled()
        enabled = [flags.get(e.commit_id, True) for e in entries]
        all_enabled = all(enabled)
        doc_type = att.document_type
        last_reset = -1
        for i in range(n - 1, -1, -1):
            if enabled[i] and entries[i].resets:
                last_reset = i
                break
        start = -1
        doc: Any = ABSENT
        prefix: list[int] | None = None
        if trace is None:
            # The newest snapshot whose history is exactly this state's prefix, all enabled.
            # Same count is not enough: a criss-cross merge can hold the same commits in
            # another order, so the ordered history digests must match too.
            first_off = next((j for j in range(n) if not enabled[j]), n)
            for i in range(min(n, first_off) - 1, max(last_reset, 0) - 1, -1):
                e = entries[i]
                if (
                    e.snapshot_known
                    and e.touches == i + 1
                    and e.all_enabled
                    and e.history is not None
                ):
                    if prefix is None:  # digests of entries 0..i (smaller i reuse them)
                        prefix = _prefix_histories(entries[: i + 1])
                    if prefix[i] != e.history:
                        continue
                    raw = e.snapshot_bytes()
                    doc = ABSENT if raw is None else decode(raw, doc_type, self._defs)
                    start = i
                    break
        if start < 0:
            if last_reset < 0:
                if trace is not None:
                    trace.skipped_commits.extend(e.commit_id for e in entries)
                return _Resolved(ABSENT, n, all_enabled, None, [e.commit_id for e in entries])
            e = entries[last_reset]
            ops = decode_ops(e.ops, doc_type, self._defs)
            reset_at = max(
                i
                for i, op in enumerate(ops)
                if op.kind in (OpKind.DOCUMENT_SET, OpKind.DOCUMENT_DELETE)
            )
            doc = _replay(doc, ops[reset_at:], e.commit_id, trace)
            start = last_reset
        for i in range(start + 1, n):
            e = entries[i]
            if not enabled[i]:
                if trace is not None:
                    trace.skipped_commits.append(e.commit_id)
                continue
            doc = _replay(doc, decode_ops(e.ops, doc_type, self._defs), e.commit_id, trace)
        if prefix is not None and len(prefix) == n:
            return _Resolved(doc, n, all_enabled, prefix[-1])
        return _Resolved(doc, n, all_enabled, None, [e.commit_id for e in entries])

    # -- history and tracing --------------------------------------------------------------
    def eval_actions(self) -> list[EvalAction]:
        """The Mutations commits of the history, latest first, with their enable flags."""
        lin = self._linearization() if (self._commit_id.is_valid or self._virtual) else None
        if lin is None:
            return []
        flags = self._enabled()
        out = []
        for c in reversed(lin.order):
            h = self._db._header(c)
            if h.kind == CommitKind.MUTATIONS:
                out.append(EvalAction(h, flags.get(c, True)))
        return out

    def enabled_by_commit_id(self) -> dict[CommitId, bool]:
        """The enable flag of every commit in the history."""
        if not (self._commit_id.is_valid or self._virtual):
            return {}
        flags = self._enabled()
        return {c: flags.get(c, True) for c in self._linearization().order}

    def trace(self, attachment: Attachment | str, key: Key) -> DocumentTrace:
        """Replay one document from its last set, reporting each opcode and its failure."""
        att = self._attachment(attachment)
        k = self._key(att, key)
        address = att.runtime_id.bytes + k.concept.runtime_id.bytes + k.id.bytes
        t = DocumentTrace(att, k, None)
        if self._commit_id.is_valid or self._virtual is not None:
            r = self._resolve_general(address, att, t)
            t.value = None if r.value is ABSENT else r.value
        return t

    def cache_preload(self) -> float:
        """Materialize every document of every attachment; returns the seconds taken."""
        t0 = time.perf_counter()
        for att in self._defs.attachments():
            self.keys(att)
        return time.perf_counter() - t0

    def cache_hit_rate(self) -> float:
        """Share of document reads served from the cache."""
        return self.cache_hits / self.cache_requests if self.cache_requests else 0.0


def _prefix_histories(entries: list[DocEntry]) -> list[int]:
    """History digests of every prefix of the entries (index i: entries 0..i)."""
    out = []
    h = _EMPTY_HISTORY
    step = history_step
    for e in entries:
        h = step(h, e.commit_id)
        out.append(h)
    return out


def _replay(doc: Any, ops: list[Op], commit_id: CommitId, trace: DocumentTrace | None) -> Any:
    for traced in ops:
        op = traced
        try:
            # the evaluator owns what it applies: keep the traced opcode intact
            if trace is not None:
                op = Op(op.kind, op.path, copy.deepcopy(op.value), op.position, op.position2)
            doc = apply_op(doc, op)
            if trace is not None:
                trace.steps.append(TraceStep(commit_id, traced, None))
        except ReplayFailure as exc:
            if trace is not None:
                trace.steps.append(TraceStep(commit_id, traced, str(exc)))
    return doc
