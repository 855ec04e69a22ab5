"""CommitSynchronizer: replicate commits (and the blobs they reference) between two databases.

Works over any two :class:`~commitdb.protocols.CommitDatabasing` objects: local
:class:`~commitdb.commit_database.CommitDatabase` files, or remote databases (the blocking
``rpc.db_remote.CommitDatabaseRemote``). Direction is by role, as in the reference system
(engine spec §8.2):

* ``fetch`` carries the commits of ``source`` into ``target``;
* ``push`` carries the commits of ``target`` into ``source``;
* ``sync`` is a fetch then a push: both sides end with the union DAG (divergent heads are
  kept, nothing is merged).

One direction of a pass, sender → receiver:

1. If the definitions digests differ, the receiver's definitions are extended with the
   sender's (additive). A conflict raises :class:`~commitdb.errors.DefinitionConflictError`
   before anything is written to either side.
2. The missing commits are the sender's ids the receiver lacks, taken in the sender's
   creation order (a topological order: parents and merge targets first).
3. They are moved in batches (``batch_size`` commits, one ``commit_datas`` round trip each).
   For a batch: the blob ids its programs reference are collected, the receiver is asked
   which it lacks (``unknown_blob_ids``), those are sent in packs of about ``pack_size``
   bytes (``blob_datas`` → ``create_blobs``), and only then the commits, verbatim, in order
   (``create_commit_datas`` when the receiver has it, else ``create_commit_data``).
   Only blobs referenced by transferred commits move: orphan blobs stay where they are.

Every stored commit therefore has its parents and its blobs at every instant (the receiver
refuses anything else), so a pass interrupted anywhere — an exception, a dropped connection,
a killed process — leaves both sides consistent, and the next pass carries on from there
(blobs already sent are not sent again). A pass is idempotent: once both sides agree, it
moves nothing.

Change detection goes beyond the reference (engine spec §9.3 item 12): a database's
``data_version`` counts writes made through *any* connection, so the synchronizer remembers
the two versions read at the start of the last pass that found both sides in agreement; when
neither has moved since, the pass returns at once with ``need_transmit`` False. Any other
pass compares the commit id sets, so nothing written by anyone is missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from commitdb.blobs import BlobLayout
from commitdb.codec import unpack
from commitdb.commits import CommitData
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.errors import CommitDBError, DecodeError, MissingBlobError, UnknownAttachmentError
from commitdb.ids import BlobId, CommitId
from commitdb.opcodes import collect_blob_ids, decode_program
from commitdb.protocols import CommitDatabasing
from commitdb.types import Attachment, Type

__all__ = (
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PACK_SIZE",
    "MODES",
    "MODE_FETCH",
    "MODE_PUSH",
    "MODE_SYNC",
    "CommitSynchronizer",
    "CommitSynchronizerInfo",
    "CommitSynchronizerInfoTransmit",
    "ProgressCallback",
    "SyncInfo",
    "TransmitInfo",
    "normalize_mode",
)

MODE_FETCH: Final = "fetch"
"""Carry the commits of ``source`` into ``target``."""
MODE_PUSH: Final = "push"
"""Carry the commits of ``target`` into ``source``."""
MODE_SYNC: Final = "sync"
"""Fetch, then push: both sides end with the union of their DAGs."""
MODES: Final = (MODE_FETCH, MODE_PUSH, MODE_SYNC)

DEFAULT_PACK_SIZE: Final = 25_000_000
"""Bytes of blob data sent per ``create_blobs`` call (the reference ``size_of_packed_blobs``)."""
DEFAULT_BATCH_SIZE: Final = 500
"""Commits read and written per round trip."""

ProgressCallback = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is ``"fetch"`` or ``"push"`` (commits moved so far
out of the missing ones) or ``"fetch blobs"`` / ``"push blobs"`` (bytes sent so far out of the
bytes known to be needed so far)."""


def normalize_mode(mode: str) -> str:
    """The canonical spelling of a mode (``"Fetch"`` → ``"fetch"``).

    Args:
        mode: ``fetch``, ``push`` or ``sync``, in any letter case (the reference spells them
            ``Fetch``, ``Push`` and ``Sync``).

    Returns:
        One of :data:`MODES`.

    Raises:
        ValueError: Any other value.
    """
    m = mode.lower() if isinstance(mode, str) else ""
    if m not in MODES:
        raise ValueError(f"unknown synchronization mode {mode!r} (one of fetch, push, sync)")
    return m


@dataclass
class TransmitInfo:
    """What one direction of a pass moved.

    Attributes:
        commits: Commits stored by the receiver.
        commit_bytes: Encoded size of those commits (header and program).
        blobs: Blobs stored by the receiver.
        blob_bytes: Content bytes of those blobs.
        extend_info: What extending the receiver's definitions added (None when the
            definitions already agreed).
    """

    commits: int = 0
    commit_bytes: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    extend_info: ExtendInfo | None = None

    @property
    def moved(self) -> bool:
        """True if anything was written to the receiver."""
        return bool(
            self.commits
            or self.blobs
            or (self.extend_info is not None and self.extend_info.count())
        )

    def summary(self) -> str:
        """One readable phrase: ``3 commits (1.2 kB), 1 blob (4.0 MB)``."""
        parts = [
            f"{_plural(self.commits, 'commit')} ({_size(self.commit_bytes)})",
            f"{_plural(self.blobs, 'blob')} ({_size(self.blob_bytes)})",
        ]
        if self.extend_info is not None and self.extend_info.count():
            parts.append(f"{_plural(self.extend_info.count(), 'definition')} added")
        return ", ".join(parts)


@dataclass
class SyncInfo:
    """The result of :meth:`CommitSynchronizer.sync`.

    Attributes:
        mode: The mode of the pass.
        need_transmit: False when the pass found nothing to compare: neither side had been
            written since the last pass that found them in agreement.
        updated_definitions: True if either side's definitions were extended.
        fetch: What moved from source to target (empty in ``push`` mode).
        push: What moved from target to source (empty in ``fetch`` mode).
        elapsed: Seconds the pass took.
    """

    mode: str
    need_transmit: bool = True
    updated_definitions: bool = False
    fetch: TransmitInfo = field(default_factory=TransmitInfo)
    push: TransmitInfo = field(default_factory=TransmitInfo)
    elapsed: float = 0.0

    @property
    def moved(self) -> bool:
        """True if anything was written to either side."""
        return self.fetch.moved or self.push.moved

    def summary(self) -> str:
        """One line saying what moved, for logs and the command line."""
        if not self.need_transmit:
            return "up to date (no change since the last pass)"
        if not self.moved:
            return f"up to date: nothing to move ({self.elapsed:.2f} s)"
        parts = []
        if self.mode in (MODE_FETCH, MODE_SYNC):
            parts.append(f"fetch: {self.fetch.summary()}")
        if self.mode in (MODE_PUSH, MODE_SYNC):
            parts.append(f"push: {self.push.summary()}")
        return "; ".join(parts) + f" in {self.elapsed:.2f} s"


CommitSynchronizerInfo = SyncInfo
"""The reference system's name for :class:`SyncInfo`."""
CommitSynchronizerInfoTransmit = TransmitInfo
"""The reference system's name for :class:`TransmitInfo`."""


class CommitSynchronizer:
    """Replicates commits and their blobs between two commit databases.

    Example::

        with CommitDatabaseRemote.connect("tcp://127.0.0.1:54321", "main") as server:
            sync = CommitSynchronizer(server, replica, MODE_FETCH)
            info = sync.sync()          # server -> replica
            print(info.summary())

    Args:
        source: A commit database (local, or a blocking remote).
        target: Another commit database.
        mode: ``fetch`` (source → target), ``push`` (target → source) or ``sync`` (both);
            the reference spellings ``Fetch``, ``Push`` and ``Sync`` are accepted.
        pack_size: About how many bytes of blob data go in one ``create_blobs`` call (a blob
            larger than this goes alone). Also caps the program bytes of one commit batch.
        progress: Optional ``progress(stage, done, total)`` callback (see
            :data:`ProgressCallback`).
        batch_size: At most this many commits per round trip.

    Raises:
        ValueError: An unknown mode, or a size below 1.
    """

    def __init__(
        self,
        source: CommitDatabasing,
        target: CommitDatabasing,
        mode: str = MODE_SYNC,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        progress: ProgressCallback | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if pack_size < 1 or batch_size < 1:
            raise ValueError("pack_size and batch_size must be at least 1")
        self.source = source
        self.target = target
        self.mode = normalize_mode(mode)
        self.pack_size = pack_size
        self.batch_size = batch_size
        self.progress = progress
        self._clean: tuple[int, int] | None = None

    @property
    def size_of_packed_blobs(self) -> int:
        """The reference name of :attr:`pack_size`."""
        return self.pack_size

    def __repr__(self) -> str:
        return f"<CommitSynchronizer {self.mode} {self.source!r} <-> {self.target!r}>"

    # -- the pass -------------------------------------------------------------------------
    def sync(self) -> SyncInfo:
        """Run one pass in the synchronizer's mode.

        Returns:
            What moved in each direction.

        Raises:
            DefinitionConflictError: The two sides define one qualified name with divergent
                runtime ids (nothing was written).
            CommitDBError: A side refused a write (the pass stops; both sides stay
                consistent and the next pass resumes).
            Exception: Whatever the remote layer raises when a connection drops (likewise).
        """
        started = time.perf_counter()
        info = SyncInfo(self.mode)
        versions = (self.source.data_version(), self.target.data_version())
        if versions == self._clean:
            info.need_transmit = False
            info.elapsed = time.perf_counter() - started
            return info
        self._clean = None
        self._check_definitions()
        if self.mode in (MODE_FETCH, MODE_SYNC):
            self._transmit("fetch", self.source, self.target, info.fetch)
        if self.mode in (MODE_PUSH, MODE_SYNC):
            self._transmit("push", self.target, self.source, info.push)
        info.updated_definitions = any(
            t.extend_info is not None and t.extend_info.count() > 0 for t in (info.fetch, info.push)
        )
        if not info.moved:
            # the versions were read before the id sets: nothing was written by anyone
            # between them, or the versions differ from the next pass's and it compares again
            self._clean = versions
        info.elapsed = time.perf_counter() - started
        return info

    def reset(self) -> None:
        """Forget the last agreement: the next pass compares the id sets again."""
        self._clean = None

    # -- definitions ----------------------------------------------------------------------
    def _check_definitions(self) -> None:
        """Refuse up front, before any write, definitions that cannot be merged."""
        if self.source.definitions_hexdigest() == self.target.definitions_hexdigest():
            return
        a, b = self.source.definitions(), self.target.definitions()
        a.copy().extend(b)  # raises DefinitionConflictError, touching nothing
        b.copy().extend(a)

    def _extend(self, sender: CommitDatabasing, receiver: CommitDatabasing) -> ExtendInfo | None:
        if sender.definitions_hexdigest() == receiver.definitions_hexdigest():
            return None
        return receiver.extend_definitions(sender.definitions())

    # -- one direction --------------------------------------------------------------------
    def _transmit(
        self,
        stage: str,
        sender: CommitDatabasing,
        receiver: CommitDatabasing,
        out: TransmitInfo,
    ) -> None:
        out.extend_info = self._extend(sender, receiver)
        have = receiver.commit_ids()
        missing = [c for c in sender.commit_ids_in_order() if c not in have]
        del have
        total = len(missing)
        self._report(stage, 0, total)
        if not missing:
            return
        blobs = _BlobFinder(sender)
        blob_stage = f"{stage} blobs"
        blob_needed = 0
        done = 0
        for batch in self._batches(sender, missing):
            # 1. the blobs the batch references and the receiver lacks, in packs
            wanted: dict[BlobId, None] = {}
            for data in batch:
                for b in sorted(blobs.of(data)):
                    wanted[b] = None
            if wanted:
                unknown = receiver.unknown_blob_ids(list(wanted))
                todo = [b for b in wanted if b in unknown]
                if todo:
                    sizes = _blob_sizes(sender, todo)
                    blob_needed += sum(sizes.values())
                    for pack in _packs(todo, sizes, self.pack_size):
                        sent = self._send_blobs(sender, receiver, pack)
                        out.blobs += len(sent)
                        out.blob_bytes += sum(sizes[b] for b in sent)
                        self._report(blob_stage, out.blob_bytes, blob_needed)
            # 2. then the commits, in order
            created = _create_commits(receiver, batch)
            for data, new in zip(batch, created, strict=True):
                if new:
                    out.commits += 1
                    out.commit_bytes += _commit_size(data)
            done += len(batch)
            self._report(stage, done, total)

    def _batches(
        self, sender: CommitDatabasing, missing: Sequence[CommitId]
    ) -> Iterable[list[CommitData]]:
        """The missing commits' datas, in order, ``batch_size`` at a time; a batch is cut
        further so that its programs stay under ``pack_size`` bytes."""
        for start in range(0, len(missing), self.batch_size):
            ids = list(missing[start : start + self.batch_size])
            datas = sender.commit_datas(ids)
            if [d.commit_id for d in datas] != ids:
                raise CommitDBError("the sender returned other commits than those asked for")
            chunk: list[CommitData] = []
            size = 0
            for d in datas:
                if chunk and size + len(d.program) > self.pack_size:
                    yield chunk
                    chunk, size = [], 0
                chunk.append(d)
                size += len(d.program)
            if chunk:
                yield chunk

    def _send_blobs(
        self, sender: CommitDatabasing, receiver: CommitDatabasing, pack: list[BlobId]
    ) -> list[BlobId]:
        datas = sender.blob_datas(pack)
        got = {b for b, _, _ in datas}
        lost = [b for b in pack if b not in got]
        if lost:
            raise MissingBlobError(
                f"the sender lacks blob {lost[0].hex()}, which one of its commits references"
            )
        payload: list[tuple[BlobLayout, bytes]] = [(layout, data) for _, layout, data in datas]
        added = receiver.create_blobs(payload)
        wanted = set(pack)
        for b in added:
            if b not in wanted:
                raise CommitDBError(f"blob {b.hex()} does not match its content on the sender")
        return list(added)

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)


# --------------------------------------------------------------------------------------------
# Helpers


class _BlobFinder:
    """Finds the blob ids a commit's program references, decoding only what can hold one.

    Decoding happens here, with the sender's definitions, instead of one ``commit_blob_ids``
    round trip per commit; documents of attachments whose type cannot hold a blob id are not
    decoded at all.
    """

    def __init__(self, sender: CommitDatabasing) -> None:
        self._sender = sender
        self._defs: Definitions = sender.definitions()
        self._refreshed = False
        self._may_hold: dict[bytes, bool] = {}

    def of(self, data: CommitData) -> set[BlobId]:
        if not data.program:
            return set()
        entries = unpack(data.program)
        if type(entries) is not list:
            raise DecodeError(f"commit {data.commit_id.hex()} has a malformed program")
        needs_decoding = False
        for entry in entries:
            if type(entry) is not list or not entry or type(entry[0]) is not bytes:
                raise DecodeError(f"commit {data.commit_id.hex()} has a malformed program")
            if self._attachment_may_hold_blobs(entry[0][:16]):
                needs_decoding = True
                break
        if not needs_decoding:
            return set()
        try:
            program = decode_program(data.program, self._defs)
        except (UnknownAttachmentError, DecodeError):
            # the sender's definitions were extended by someone else since we read them
            # (or the program is malformed: then the sender's own answer raises)
            if self._refreshed:
                return set(self._sender.commit_blob_ids(data))
            self._refresh()
            return self.of(data)
        return collect_blob_ids(op.value for _, op in program.all_ops())

    def _refresh(self) -> None:
        self._defs = self._sender.definitions()
        self._may_hold.clear()
        self._refreshed = True

    def _attachment_may_hold_blobs(self, runtime_id: bytes) -> bool:
        known = self._may_hold.get(runtime_id)
        if known is None:
            att = _attachment(self._defs, runtime_id)
            # unknown attachment: let decoding decide (after a refresh)
            known = True if att is None else _may_hold_blob(att.document_type)
            self._may_hold[runtime_id] = known
        return known


def _attachment(defs: Definitions, runtime_id: bytes) -> Attachment | None:
    import uuid

    if len(runtime_id) != 16:
        return None
    return defs.query_attachment(uuid.UUID(bytes=runtime_id))


def _may_hold_blob(t: Type) -> bool:
    """True if a value of type `t` can contain a blob id (``any`` can contain anything)."""
    seen: set[int] = set()
    stack: list[Type] = [t]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if x.kind in ("blob_id", "any"):
            return True
        stack.extend(x.children())
    return False


def _blob_sizes(sender: CommitDatabasing, ids: list[BlobId]) -> dict[BlobId, int]:
    """Sizes of blobs of the sender (one ``blob_infos`` round trip when it has it)."""
    batch: Any = getattr(sender, "blob_infos", None)
    infos = list(batch(ids)) if batch is not None else [sender.blob_info(b) for b in ids]
    sizes = {i.blob_id: i.size for i in infos if i is not None}
    for b in ids:
        if b not in sizes:
            raise MissingBlobError(
                f"the sender lacks blob {b.hex()}, which one of its commits references"
            )
    return sizes


def _packs(ids: list[BlobId], sizes: dict[BlobId, int], pack_size: int) -> list[list[BlobId]]:
    """Consecutive groups of about ``pack_size`` bytes (a larger blob goes alone)."""
    packs: list[list[BlobId]] = []
    current: list[BlobId] = []
    total = 0
    for b in ids:
        if current and total + sizes[b] > pack_size:
            packs.append(current)
            current, total = [], 0
        current.append(b)
        total += sizes[b]
    if current:
        packs.append(current)
    return packs


def _create_commits(receiver: CommitDatabasing, batch: list[CommitData]) -> list[bool]:
    """Store commits in order; one round trip when the receiver has ``create_commit_datas``."""
    many: Any = getattr(receiver, "create_commit_datas", None)
    if many is not None:
        created = [bool(x) for x in many(batch)]
        if len(created) != len(batch):
            raise CommitDBError("the receiver answered for other commits than those sent")
        return created
    return [receiver.create_commit_data(d) for d in batch]


def _commit_size(data: CommitData) -> int:
    return len(data.encode())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
