"""Remote-local attachment calls: the server-side proxy and the client-side lender.

An attachment function runs on the server, in a worker thread, against an
:class:`AttachmentMutatingRemote`. Every read (keys, has, get, enumerate) is a callback
request to the client, answered from the client's own mutable state. Every mutation is
buffered in the worker thread; everything buffered travels as **one** ``apply``
notification (``[[method, args], ...]``) in the same write as the next read, or right before
the call's result once the function returned. A call that makes one read and fifty mutations
therefore costs two round trips: the call and the read.

The client side (:class:`Lender`) applies callbacks to the lent object inline, in arrival
order, on the connection's reader (a ``CommitMutableState`` records a ``set`` from the
document's encoding with ``set_encoded``, as received when it is canonical). The first mutation the client refuses stops the application: the
ones before it stay applied, it and every later mutation are dropped until the refusal is
reported — at the next read, where it raises inside the server function, or by the client as
the call's error when it came with the result. The server never holds the client's state
after the call.

Wire forms of callback arguments: attachment = runtime id (16 bytes), key = concept runtime
id + instance id (32 bytes), path = ``Path.to_wire(document type)``, values = canonical wire
values of the type the path reaches, except the document of a ``set``: its canonical encoding
(``codec.encode``) as bytes, xarray positions = 16 bytes.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from commitdb.codec import decode, encode, from_wire, to_wire
from commitdb.definitions import Definitions
from commitdb.errors import PathError, ValidationError
from commitdb.mutable_state import CommitMutableState
from commitdb.paths import Path
from commitdb.types import (
    Attachment,
    ConceptType,
    MapType,
    OptionalType,
    SetType,
    Type,
    XArrayType,
)
from commitdb.values import END, Key
from rpc.errors import CallCancelledError, ConnectionClosedError, MethodNotFoundError
from rpc.framing import encode_frame
from rpc.packets import encode_notify

if TYPE_CHECKING:
    from rpc.connection import Connection

__all__ = ("AttachmentMutatingRemote", "Lender", "WireDecoder", "callback_target")

MUTATIONS = (
    "set",
    "delete",
    "diff",
    "update",
    "union_in_set",
    "subtract_in_set",
    "union_in_map",
    "subtract_in_map",
    "update_in_map",
    "insert_in_xarray",
    "update_in_xarray",
    "remove_in_xarray",
)
ARITY = {
    "set": 3,
    "delete": 2,
    "diff": 4,
    "update": 4,
    "union_in_set": 4,
    "subtract_in_set": 4,
    "union_in_map": 4,
    "subtract_in_map": 4,
    "update_in_map": 4,
    "insert_in_xarray": 6,
    "update_in_xarray": 5,
    "remove_in_xarray": 4,
}
"""The number of wire arguments of each mutation."""
READS = ("keys", "has", "get", "enumerate", "flush")
APPLY = "apply"
"""The notification carrying a batch of mutations: args = ``[[method, args], ...]``."""
BATCH_MUTATIONS = 512
"""The most mutations in one ``apply`` notification (a longer run is sent as several)."""
BATCH_BYTES = 4 << 20
"""An ``apply`` notification larger than this is split in two (unless it holds one mutation),
so that batches stay far below the peer's maximum frame size."""


_NIL_ID = bytes(16)  # the nil instance id, in wire form


def callback_target(lend_id: int) -> str:
    """The target name of a lent state's callbacks."""
    return f"cb:{lend_id}"


def _key_wire(key: Key) -> bytes:
    return key.concept.runtime_id.bytes + key.id.bytes


def _key_from_wire(w: Any, definitions: Definitions) -> Key:
    if type(w) is not bytes or len(w) != 32:
        raise ValidationError("a key (32 bytes)", type(w).__name__, "callback")
    concept = definitions.query_type(uuid.UUID(bytes=w[:16]))
    if not isinstance(concept, ConceptType):
        raise ValidationError("a known concept", str(uuid.UUID(bytes=w[:16])), "callback key")
    return Key(concept, uuid.UUID(bytes=w[16:]))


def _attachment_from_wire(w: Any, definitions: Definitions) -> Attachment:
    if type(w) is not bytes or len(w) != 16:
        raise ValidationError("an attachment id (16 bytes)", type(w).__name__, "callback")
    return definitions.check_attachment(uuid.UUID(bytes=w))


class WireDecoder:
    """Decodes callback arguments, caching attachments and concepts by their runtime id.

    Definitions only grow (a runtime id never changes meaning), so the caches stay valid
    when the definitions are extended.
    """

    __slots__ = ("_attachments", "_concepts", "_optional", "definitions")

    def __init__(self, definitions: Definitions) -> None:
        """Create a decoder.

        Args:
            definitions: The definitions shared with the peer.
        """
        self.definitions = definitions
        self._attachments: dict[bytes, Attachment] = {}
        self._concepts: dict[bytes, ConceptType] = {}
        self._optional: dict[int, tuple[Attachment, OptionalType]] = {}

    def optional_document(self, att: Attachment) -> OptionalType:
        """``optional<document type>`` of an attachment (one type object per attachment:
        the codec compiles its encoder and decoder once per type object)."""
        return _optional_document(att, self._optional)

    def attachment(self, w: Any) -> Attachment:
        """The attachment a 16-byte runtime id names (ValidationError / UnknownAttachmentError)."""
        att = self._attachments.get(w) if type(w) is bytes else None
        if att is None:
            att = _attachment_from_wire(w, self.definitions)
            self._attachments[w] = att
        return att

    def key(self, w: Any) -> Key:
        """The key of a 32-byte wire key (ValidationError when malformed or unknown)."""
        if type(w) is not bytes or len(w) != 32:
            raise ValidationError("a key (32 bytes)", type(w).__name__, "callback")
        prefix = w[:16]
        concept = self._concepts.get(prefix)
        if concept is None:
            found = self.definitions.query_type(uuid.UUID(bytes=prefix))
            if not isinstance(found, ConceptType):
                raise ValidationError(
                    "a known concept", str(uuid.UUID(bytes=prefix)), "callback key"
                )
            concept = self._concepts[prefix] = found
        return Key(concept, uuid.UUID(bytes=w[16:]))


def _optional_document(
    att: Attachment, cache: dict[int, tuple[Attachment, OptionalType]]
) -> OptionalType:
    hit = cache.get(id(att))
    if hit is not None and hit[0] is att:
        return hit[1]
    if len(cache) >= 1024:
        cache.clear()
    t = OptionalType(att.document_type)
    cache[id(att)] = (att, t)  # the attachment is kept: its id stays unique
    return t


_OPTIONAL: dict[int, tuple[Attachment, OptionalType]] = {}  # the server side's cache


def _path_and_type(att: Attachment, path: Path | str) -> tuple[Path, Type]:
    p = Path.parse(path) if isinstance(path, str) else path
    p = p.normalize(att.document_type)
    return p, p.resolve(att.document_type)


# --------------------------------------------------------------------------------------------
# Server side


class AttachmentMutatingRemote:
    """The attachment state a server-side pool function receives (runs in a worker thread).

    It offers the same methods as a local ``CommitMutableState``; reads go to the client,
    mutations are pipelined to it.
    """

    def __init__(self, conn: Connection, lend_id: int, definitions: Definitions) -> None:
        """Create the proxy of one call (the service does, per attachment call).

        Args:
            conn: The connection to the client.
            lend_id: The id under which the client lent its state.
            definitions: The definitions shared with the client on this connection.
        """
        self._conn = conn
        self._target = callback_target(lend_id)
        self._defs = definitions
        self._queue: list[list[Any]] = []  # [method, args] of mutations not framed yet
        self._framed: list[bytes] = []  # framed batches not sent yet
        self._cancelled = False  # set by cancel() or a cancelled read; read by the worker
        self._waiter: concurrent.futures.Future[Any] | None = None  # a read in progress
        self.callbacks = 0  # round trips made (reads + flushes)
        self.mutations_sent = 0
        # per call: what the function's attachments and keys resolved to (calls repeat them)
        self._atts: dict[int, tuple[object, Attachment]] = {}
        self._rids: dict[int, tuple[Attachment, bytes]] = {}
        # (id(att), id(concept)) -> (att, concept, concept runtime id, att runtime id)
        self._prefixes: dict[tuple[int, int], tuple[Attachment, ConceptType, bytes, bytes]] = {}
        # (id(attachment as given), id(concept)) -> (it, concept, attachment runtime id,
        # concept runtime id, document type): pairs a set accepted already
        self._sets: dict[tuple[int, int], tuple[object, ConceptType, bytes, bytes, Type]] = {}

    def definitions(self) -> Definitions:
        """The definitions shared with the client."""
        return self._defs

    def cancel(self) -> None:
        """Called when the client gave up: a read in progress and further calls raise
        CallCancelledError (the worker thread is released at once)."""
        self._cancelled = True
        waiter = self._waiter
        if waiter is not None:
            try:
                waiter.set_exception(CallCancelledError("the client cancelled the call"))
            except concurrent.futures.InvalidStateError:
                pass

    def _check(self) -> None:
        if self._cancelled:
            raise CallCancelledError("the client cancelled the call")

    # -- plumbing -------------------------------------------------------------------------
    def _mutate(self, method: str, args: list[Any]) -> None:
        self._check()
        queue = self._queue
        queue.append([method, args])
        self.mutations_sent += 1
        if len(queue) >= BATCH_MUTATIONS:
            self._seal()

    def _seal(self) -> None:
        """Frame the buffered mutations as ``apply`` notification(s), to send later."""
        batch, self._queue = self._queue, []
        self._framed.append(self._frames(batch))

    def _frames(self, batch: list[list[Any]]) -> bytes:
        payload = encode_notify(self._target, APPLY, batch)
        if len(payload) > BATCH_BYTES and len(batch) > 1:  # halves, in order
            half = len(batch) // 2
            return self._frames(batch[:half]) + self._frames(batch[half:])
        return encode_frame(payload)

    def _take(self) -> bytes:
        """Every buffered mutation, framed as ``apply`` notification(s) (b"" if none)."""
        if self._queue:
            self._seal()
        framed = self._framed
        if not framed:
            return b""
        self._framed = []
        return framed[0] if len(framed) == 1 else b"".join(framed)

    def _request(self, method: str, args: list[Any]) -> Any:
        self._check()
        queued = self._take()
        self.callbacks += 1
        waiter: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._waiter = waiter
        try:
            self._check()  # cancelled between the first check and publishing the waiter
            return self._conn.call_from_thread(
                self._target, method, args, frames=queued, waiter=waiter
            )
        except concurrent.futures.CancelledError:  # the call's task was cancelled (anyio)
            self._cancelled = True
            raise CallCancelledError("the call was cancelled") from None
        except anyio.RunFinishedError:
            self._cancelled = True
            raise CallCancelledError("the server stopped during the call") from None
        finally:
            self._waiter = None

    def finish(self) -> None:
        """From the worker thread: flush buffered mutations and confirm they all applied
        (raises the first failure).

        Mutations sent with an earlier read are confirmed by it (the client reports a
        failed mutation at the next read), so only mutations buffered since need a flush.
        """
        if self._queue or self._framed:
            self._request("flush", [])

    async def finish_async(self) -> None:
        """From the event loop, once the function returned: send the buffered mutations
        (one ``apply`` notification), to arrive right before the call's result.

        No confirmation is awaited: the client applies them before it reads the result, and
        raises the first one it refused as the call's error (the server's function has
        returned, so there is nothing left for the error to interrupt here).
        """
        queued = self._take()
        if queued:
            self._conn.send_frames_nowait(queued)

    @property
    def cancelled(self) -> bool:
        """True once the client gave up on the call (see :meth:`cancel`)."""
        return self._cancelled

    def cancel_if_cancelled(self, call: concurrent.futures.Future[Any]) -> None:
        """A done callback of the call's future: a cancelled call cancels the proxy."""
        if call.cancelled():
            self.cancel()

    def take_frames(self) -> bytes:
        """From the worker thread, once the function returned or failed: every buffered
        mutation, framed as ``apply`` notification(s) to send before the call's answer
        (b"" if none). Nothing is confirmed: the client applies them before it reads the
        answer and raises the first one it refused as the call's error."""
        return self._take()

    def send_pending(self) -> None:
        """From the event loop, once the function failed: send the buffered mutations
        without waiting for a confirmation.

        The client's state then holds every mutation the function made before failing,
        exactly as a local call would leave it (they are queued before the call's error, so
        the client applies them first).
        """
        queued = self._take()
        if queued and not self._cancelled:
            try:
                self._conn.send_frames_nowait(queued)
            except ConnectionClosedError:
                pass

    def discard(self) -> None:
        """Drop anything buffered (the client gave up on the call)."""
        self._queue.clear()
        self._framed.clear()

    def _att(self, attachment: Attachment | str) -> Attachment:
        hit = self._atts.get(id(attachment))
        if hit is not None and hit[0] is attachment:
            return hit[1]
        att = self._defs.check_attachment(attachment)
        if len(self._atts) >= 1024:  # e.g. names built afresh at every call
            self._atts.clear()
        self._atts[id(attachment)] = (attachment, att)  # the object is kept: its id stays unique
        return att

    def _rid(self, att: Attachment) -> bytes:
        """The attachment's runtime id (its wire form)."""
        hit = self._rids.get(id(att))
        if hit is not None and hit[0] is att:
            return hit[1]
        rid = att.runtime_id.bytes
        self._rids[id(att)] = (att, rid)  # the attachment is kept: its id stays unique
        return rid

    def _key(self, att: Attachment, key: Key, *, write: bool = True) -> bytes:
        if type(key) is Key:
            # a concept this attachment accepted already: only the nil check is left
            hit = self._prefixes.get((id(att), id(key.concept)))
            if hit is not None and hit[0] is att and hit[1] is key.concept:
                if write and not key.id.int:
                    raise ValidationError(
                        "a key with a valid instance id", "the nil key", att.identifier
                    )
                return hit[2] + key.id.bytes
        if not isinstance(key, Key):
            raise ValidationError(str(att.key_type), type(key).__name__, f"{att.identifier} key")
        if not att.key_type.accepts_concept(key.concept):
            raise ValidationError(
                str(att.key_type), f"key of {key.concept}", f"{att.identifier} key"
            )
        if write and key.is_nil:
            raise ValidationError("a key with a valid instance id", "the nil key", att.identifier)
        self._prefixes[(id(att), id(key.concept))] = (
            att,
            key.concept,
            key.concept.runtime_id.bytes,
            self._rid(att),
        )
        return _key_wire(key)

    # -- reads ----------------------------------------------------------------------------
    def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of existing documents in the client's state."""
        att = self._att(attachment)
        w = self._request("keys", [self._rid(att)])
        return {_key_from_wire(k, self._defs) for k in w}

    def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists in the client's state."""
        att = self._att(attachment)
        return bool(self._request("has", [self._rid(att), self._key(att, key, write=False)]))

    def get(self, attachment: Attachment | str, key: Key) -> Any:
        """The document from the client's state, or None."""
        att = self._att(attachment)
        w = self._request("get", [self._rid(att), self._key(att, key, write=False)])
        return from_wire(w, _optional_document(att, _OPTIONAL), self._defs)

    def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document) pairs from the client's state."""
        att = self._att(attachment)
        w = self._request("enumerate", [self._rid(att)])
        return [
            (_key_from_wire(k, self._defs), from_wire(d, att.document_type, self._defs))
            for k, d in w
        ]

    # -- mutations ------------------------------------------------------------------------
    def set(self, attachment: Attachment | str, key: Key, value: Any) -> None:
        """Replace (or create) the document in the client's state (sent as its encoding)."""
        # the common case first: an (attachment, key concept) pair this call set already
        if type(key) is Key and not self._cancelled:
            hit = self._sets.get((id(attachment), id(key.concept)))
            if hit is not None and hit[0] is attachment and hit[1] is key.concept:
                id_bytes = key._id_bytes
                if id_bytes != _NIL_ID:
                    queue = self._queue
                    queue.append(["set", [hit[2], hit[3] + id_bytes, encode(value, hit[4])]])
                    self.mutations_sent += 1
                    if len(queue) >= BATCH_MUTATIONS:
                        self._seal()
                    return
        att = self._att(attachment)
        rid = self._rid(att)
        wire_key = self._key(att, key)
        self._mutate("set", [rid, wire_key, encode(value, att.document_type)])
        if type(key) is Key:
            if len(self._sets) >= 1024:
                self._sets.clear()
            # the objects are kept: their ids stay unique
            self._sets[(id(attachment), id(key.concept))] = (
                attachment,
                key.concept,
                rid,
                wire_key[:16],
                att.document_type,
            )

    def delete(self, attachment: Attachment | str, key: Key) -> None:
        """Delete the document in the client's state."""
        att = self._att(attachment)
        self._mutate("delete", [self._rid(att), self._key(att, key)])

    def diff(
        self, attachment: Attachment | str, key: Key, value: Any, recursive: bool = False
    ) -> None:
        """Record the difference on the client's state."""
        att = self._att(attachment)
        self._mutate(
            "diff",
            [
                self._rid(att),
                self._key(att, key),
                to_wire(value, att.document_type),
                bool(recursive),
            ],
        )

    def update(self, attachment: Attachment | str, key: Key, path: Path | str, value: Any) -> None:
        """Assign at a path in the client's state."""
        att = self._att(attachment)
        p, t = _path_and_type(att, path)
        self._mutate(
            "update",
            [
                self._rid(att),
                self._key(att, key),
                p.to_wire(att.document_type),
                to_wire(value, t),
            ],
        )

    def _container(
        self,
        method: str,
        attachment: Attachment | str,
        key: Key,
        path: Path | str,
        operand: Any,
        kind: type[Type],
    ) -> None:
        att = self._att(attachment)
        p, t = _path_and_type(att, path)
        if not isinstance(t, kind):
            raise PathError(f"{p} is a {t}, not a {kind.kind}")
        vt: Type = t
        if method == "subtract_in_map":
            assert isinstance(t, MapType)
            vt = SetType(t.key)
        if not isinstance(operand, Mapping | set | frozenset):
            operand = list(operand) if isinstance(operand, Iterable) else operand
        self._mutate(
            method,
            [
                self._rid(att),
                self._key(att, key),
                p.to_wire(att.document_type),
                to_wire(operand, vt),
            ],
        )

    def union_in_set(
        self, attachment: Attachment | str, key: Key, path: Path | str, elements: Iterable[Any]
    ) -> None:
        """Add elements to a set in the client's state."""
        self._container("union_in_set", attachment, key, path, elements, SetType)

    def subtract_in_set(
        self, attachment: Attachment | str, key: Key, path: Path | str, elements: Iterable[Any]
    ) -> None:
        """Remove elements from a set in the client's state."""
        self._container("subtract_in_set", attachment, key, path, elements, SetType)

    def union_in_map(
        self, attachment: Attachment | str, key: Key, path: Path | str, entries: Mapping[Any, Any]
    ) -> None:
        """Insert entries in a map in the client's state."""
        self._container("union_in_map", attachment, key, path, entries, MapType)

    def subtract_in_map(
        self, attachment: Attachment | str, key: Key, path: Path | str, keys: Iterable[Any]
    ) -> None:
        """Remove entries from a map in the client's state."""
        self._container("subtract_in_map", attachment, key, path, keys, MapType)

    def update_in_map(
        self, attachment: Attachment | str, key: Key, path: Path | str, entries: Mapping[Any, Any]
    ) -> None:
        """Overwrite existing entries of a map in the client's state."""
        self._container("update_in_map", attachment, key, path, entries, MapType)

    def _xarray(
        self, attachment: Attachment | str, path: Path | str
    ) -> tuple[Attachment, Path, XArrayType]:
        att = self._att(attachment)
        p, t = _path_and_type(att, path)
        if not isinstance(t, XArrayType):
            raise PathError(f"{p} is a {t}, not an xarray")
        return att, p, t

    def insert_in_xarray(
        self,
        attachment: Attachment | str,
        key: Key,
        path: Path | str,
        before: uuid.UUID,
        new: uuid.UUID | None,
        value: Any,
    ) -> uuid.UUID:
        """Insert before a position in the client's state; returns the new position."""
        att, p, t = self._xarray(attachment, path)
        new = new or uuid.uuid4()
        if new == END:
            raise ValidationError("a real xarray position", "END", "new")
        self._mutate(
            "insert_in_xarray",
            [
                self._rid(att),
                self._key(att, key),
                p.to_wire(att.document_type),
                _pos(before),
                new.bytes,
                to_wire(value, t.element),
            ],
        )
        return new

    def update_in_xarray(
        self,
        attachment: Attachment | str,
        key: Key,
        path: Path | str,
        position: uuid.UUID,
        value: Any,
    ) -> None:
        """Write at a position in the client's state."""
        att, p, t = self._xarray(attachment, path)
        if position == END:
            raise ValidationError("a real xarray position", "END", "position")
        self._mutate(
            "update_in_xarray",
            [
                self._rid(att),
                self._key(att, key),
                p.to_wire(att.document_type),
                _pos(position),
                to_wire(value, t.element),
            ],
        )

    def remove_in_xarray(
        self, attachment: Attachment | str, key: Key, path: Path | str, position: uuid.UUID
    ) -> None:
        """Remove at a position in the client's state."""
        att, p, _ = self._xarray(attachment, path)
        if position == END:
            raise ValidationError("a real xarray position", "END", "position")
        self._mutate(
            "remove_in_xarray",
            [
                self._rid(att),
                self._key(att, key),
                p.to_wire(att.document_type),
                _pos(position),
            ],
        )


def _pos(p: Any) -> bytes:
    if isinstance(p, uuid.UUID):
        return p.bytes
    raise ValidationError("an xarray position (uuid)", type(p).__name__, "position")


# --------------------------------------------------------------------------------------------
# Client side


class Lender:
    """Applies a call's callbacks to the client's lent state, in arrival order."""

    def __init__(
        self,
        state: Any,
        definitions: Definitions,
        *,
        mutable: bool,
        decoder: WireDecoder | None = None,
    ) -> None:
        """Lend a state for one call.

        Args:
            state: A CommitMutableState (or anything with the same methods); a read-only
                call only needs ``get``/``has``/``keys``/``enumerate``.
            definitions: The definitions shared with the server.
            mutable: False refuses every mutation (a read-only function).
            decoder: A decoder to share between calls (its caches persist).
        """
        self.state = state
        self.defs = definitions
        self.mutable = mutable
        self.decoder = decoder if decoder is not None else WireDecoder(definitions)
        self.error: BaseException | None = None
        self.applied = 0
        # a CommitMutableState records a set from its encoding without building the key
        self._set_encoded = state.set_encoded if isinstance(state, CommitMutableState) else None

    def request(self, method: str, args: list[Any]) -> Any:
        """Answer a read (or the final flush) from the lent state.

        Args:
            method: ``keys``, ``has``, ``get``, ``enumerate`` or ``flush``.
            args: Its wire arguments.

        Returns:
            The wire answer.

        Raises:
            Exception: The first mutation that failed since the last request, or the
                read's own error.
        """
        if method == "flush":
            err, self.error = self.error, None
            if err is not None:
                raise err
            return None
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        decoder = self.decoder
        att = decoder.attachment(args[0])
        if method == "keys":
            return [_key_wire(k) for k in sorted(self.state.keys(att))]
        key = decoder.key(args[1]) if len(args) > 1 else None
        if method == "has":
            return bool(self.state.has(att, key))
        if method == "get":
            return to_wire(self.state.get(att, key), decoder.optional_document(att))
        if method == "enumerate":
            return [
                [_key_wire(k), to_wire(v, att.document_type)] for k, v in self.state.enumerate(att)
            ]
        raise MethodNotFoundError(f"unknown callback {method!r}")

    def notify(self, method: str, args: list[Any]) -> None:
        """Apply a batch of mutations (``apply``), or a single mutation.

        A refused mutation is kept and reported at the next request (or, once the server's
        function returned, raised by the client as the call's error); it and every mutation
        after it, up to that report, are not applied.

        Args:
            method: ``apply`` (args = ``[[method, args], ...]``), or one of the mutations.
            args: Its wire arguments.
        """
        if self.error is not None:
            return
        try:
            if method == APPLY:
                self.apply(args)
            else:
                self._apply(method, args)
                self.applied += 1
        except Exception as exc:
            self.error = exc

    def apply(self, batch: list[Any]) -> None:
        """Apply a batch of mutations in order, stopping at the first refused one.

        Args:
            batch: ``[[method, args], ...]`` as the server sent them.

        Raises:
            Exception: The first refused mutation (the ones before it stay applied).
        """
        if type(batch) is not list:
            raise ValidationError("a list of mutations", type(batch).__name__, "callback apply")
        apply_one = self._apply
        set_encoded = self._set_encoded if self.mutable else None
        attachment = self.decoder.attachment
        for item in batch:
            if type(item) is not list or len(item) != 2 or type(item[1]) is not list:
                raise ValidationError("a [method, args] mutation", repr(item)[:80], "callback")
            method, args = item
            if method == "set" and set_encoded is not None and len(args) == 3:
                set_encoded(attachment(args[0]), args[1], args[2])  # _apply's fast path, inlined
            else:
                apply_one(method, args)
            self.applied += 1

    def _apply(self, method: str, args: list[Any]) -> None:
        if not self.mutable:
            raise ValidationError("a read-only call", f"a {method} mutation", "callback")
        arity = ARITY.get(method) if type(method) is str else None
        if arity is None:
            raise MethodNotFoundError(f"unknown callback {method!r}")
        if type(args) is not list or len(args) != arity:
            raise ValidationError(f"{arity} arguments", repr(args)[:80], f"callback {method}")
        att = self.decoder.attachment(args[0])
        if method == "set" and self._set_encoded is not None:
            self._set_encoded(att, args[1], args[2])  # validated from the bytes directly
            return
        d = self.defs
        s = self.state
        key = self.decoder.key(args[1])
        doc_type = att.document_type
        if method == "set":
            if type(args[2]) is not bytes:
                raise ValidationError("a document encoding (bytes)", type(args[2]).__name__, "set")
            s.set(att, key, decode(args[2], doc_type, d))
        elif method == "delete":
            s.delete(att, key)
        elif method == "diff":
            s.diff(att, key, from_wire(args[2], doc_type, d), bool(args[3]))
        else:
            path = Path.from_wire(args[2], doc_type, d)
            t = path.resolve(doc_type)
            if method == "update":
                s.update(att, key, path, from_wire(args[3], t, d))
            elif method in ("union_in_set", "subtract_in_set", "union_in_map", "update_in_map"):
                getattr(s, method)(att, key, path, from_wire(args[3], t, d))
            elif method == "subtract_in_map":
                assert isinstance(t, MapType)
                s.subtract_in_map(att, key, path, from_wire(args[3], SetType(t.key), d))
            else:
                assert isinstance(t, XArrayType)
                if method == "insert_in_xarray":
                    s.insert_in_xarray(
                        att,
                        key,
                        path,
                        uuid.UUID(bytes=args[3]),
                        uuid.UUID(bytes=args[4]),
                        from_wire(args[5], t.element, d),
                    )
                elif method == "update_in_xarray":
                    s.update_in_xarray(
                        att, key, path, uuid.UUID(bytes=args[3]), from_wire(args[4], t.element, d)
                    )
                else:
                    s.remove_in_xarray(att, key, path, uuid.UUID(bytes=args[3]))
