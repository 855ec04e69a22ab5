"""Lent states: a pool function works on the attachment state of a WebSocket client.

With ``lend: true`` an attachment pool function runs against a :class:`LentState` whose
reads are ``state.keys/has/get`` requests the server sends (ids ``"s:1"``, ``"s:2"``…),
answered from the client's own state, and whose mutations are ``state.set/update/…``
notifications (the mutation objects of :mod:`rpc.json_mutations`), validated here, buffered
and sent in order before each read and before the call returns (then a final
``state.flush`` request confirms them) — the design of :mod:`rpc.remote_local`, in JSON.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from commitdb.definitions import Definitions
from commitdb.errors import ValidationError
from commitdb.paths import Path
from commitdb.types import Attachment, OptionalType, Type, XArrayType
from commitdb.values import END, Key
from rpc.errors import CallCancelledError
from rpc.json_codec import describe_json, from_json, key_from_json, key_to_json, to_json
from rpc.json_mutations import check_container, container_operand
from rpc.jsonrpc import encode_json, notification

if TYPE_CHECKING:
    from rpc.gateway.ws import WsSession

__all__ = ("Att", "LentState", "PathLike")

log = logging.getLogger("commitdb.gateway.ws")

Att = Attachment | str
PathLike = Path | str


def _checked_json(t: Type, value: Any, where: str) -> Any:
    """`value` checked against `t`, as JSON."""
    return to_json(t.check(value, where), t)


class LentState:
    """The attachment state a pool function gets when a WebSocket client lends its own.

    Runs in a worker thread: each read blocks the thread (never the event loop) until the
    client answers; mutations are validated here, buffered, and sent in order before the
    next read or at the end.
    """

    def __init__(
        self, session: WsSession, definitions: Definitions, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._session = session
        self._defs = definitions
        self._loop = loop
        self._buffer: list[str] = []
        self._unconfirmed = False
        self._cancelled = threading.Event()
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self.requests = 0
        self.notifications = 0

    def definitions(self) -> Definitions:
        """The definitions of the service."""
        return self._defs

    def cancel(self) -> None:
        """The call was cancelled or timed out: stop at the next read or mutation."""
        self._cancelled.set()
        for f in list(self._futures):
            f.cancel()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._cancelled.is_set():
            coro.close()
            raise CallCancelledError("the call was cancelled")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._futures.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            self._cancelled.set()
            raise CallCancelledError("the call was cancelled") from None
        finally:
            self._futures.discard(future)

    def _request(self, method: str, params: dict[str, Any]) -> Any:
        queued, self._buffer = self._buffer, []
        self._unconfirmed = False
        self.requests += 1
        return self._run(self._session.flush_and_request(queued, method, params))

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        if self._cancelled.is_set():
            raise CallCancelledError("the call was cancelled")
        self._buffer.append(encode_json(notification(f"state.{method}", params)))
        self._unconfirmed = True
        self.notifications += 1

    def finish(self) -> None:
        """Send what is buffered and confirm every mutation since the last read applied."""
        if self._unconfirmed:
            self._request("state.flush", {})

    def send_pending(self) -> None:
        """Send what is buffered without waiting (the function failed)."""
        queued, self._buffer = self._buffer, []
        if queued and not self._cancelled.is_set():
            try:
                self._run(self._session.send_many(queued))
            except Exception:  # the client is gone: nobody to tell
                log.debug("could not send the pending mutations", exc_info=True)

    # -- helpers --------------------------------------------------------------------------
    def _att(self, attachment: Att) -> Attachment:
        return self._defs.check_attachment(attachment)

    def _target(self, attachment: Att, key: Key, write: bool) -> dict[str, Any]:
        att = self._att(attachment)
        where = f"{att.identifier} key"
        if not isinstance(key, Key) or not att.key_type.accepts_concept(key.concept):
            raise ValidationError(str(att.key_type), repr(key), where)
        if write and key.is_nil:
            raise ValidationError("a key with a valid instance id", "the nil key", where)
        return {"attachment": att.identifier, "key": key_to_json(key)}

    def _path(self, attachment: Att, path: PathLike) -> tuple[str, Type]:
        doc = self._att(attachment).document_type
        p = (Path.parse(path) if isinstance(path, str) else path).normalize(doc)
        return str(p), p.resolve(doc)

    def _result(self, method: str, att: Attachment) -> str:
        return f"{method}({att.identifier}) result"

    # -- reads ----------------------------------------------------------------------------
    def keys(self, attachment: Att) -> set[Key]:
        """Keys of the client's documents."""
        att = self._att(attachment)
        answer = self._request("state.keys", {"attachment": att.identifier})
        where = self._result("state.keys", att)
        if not isinstance(answer, list):
            raise ValidationError("an array of keys", describe_json(answer), where)
        return {
            key_from_json(k, att.key_type, self._defs, f"{where}[{i}]")
            for i, k in enumerate(answer)
        }

    def has(self, attachment: Att, key: Key) -> bool:
        """Whether the client has the document."""
        answer = self._request("state.has", self._target(attachment, key, False))
        if answer is not True and answer is not False:
            where = self._result("state.has", self._att(attachment))
            raise ValidationError("boolean", describe_json(answer), where)
        return answer

    def get(self, attachment: Att, key: Key) -> Any:
        """The client's document, or None."""
        att = self._att(attachment)
        answer = self._request("state.get", self._target(att, key, False))
        doc = OptionalType(att.document_type)
        return from_json(answer, doc, self._defs, self._result("state.get", att))

    def enumerate(self, attachment: Att) -> list[tuple[Key, Any]]:
        """(key, document) of the client's documents (keys, then one get each)."""
        att = self._att(attachment)
        found = [(k, self.get(att, k)) for k in sorted(self.keys(att))]
        return [(k, d) for k, d in found if d is not None]

    # -- mutations ------------------------------------------------------------------------
    def set(self, attachment: Att, key: Key, value: Any) -> None:
        """Replace (or create) the client's document."""
        target = self._target(attachment, key, True)
        doc = self._att(attachment).document_type
        self._notify("set", {**target, "value": _checked_json(doc, value, target["attachment"])})

    def delete(self, attachment: Att, key: Key) -> None:
        """Delete the client's document."""
        self._notify("delete", self._target(attachment, key, True))

    def diff(self, attachment: Att, key: Key, value: Any, recursive: bool = False) -> None:
        """Record on the client only what turns its document into `value`."""
        target = self._target(attachment, key, True)
        doc = self._att(attachment).document_type
        value_json = _checked_json(doc, value, target["attachment"])
        self._notify("diff", {**target, "value": value_json, "recursive": bool(recursive)})

    def update(self, attachment: Att, key: Key, path: PathLike, value: Any) -> None:
        """Assign at a path in the client's document."""
        target = self._target(attachment, key, True)
        text, t = self._path(attachment, path)
        self._notify("update", {**target, "path": text, "value": _checked_json(t, value, text)})

    def _container(self, op: str, attachment: Att, key: Key, path: PathLike, operand: Any) -> None:
        target = self._target(attachment, key, True)
        text, t = self._path(attachment, path)
        check_container(op, t, text, target["attachment"])
        field, operand_type = container_operand(op, t)
        if not isinstance(operand, Mapping | set | frozenset):
            operand = list(operand) if isinstance(operand, Iterable) else operand
        self._notify(
            op, {**target, "path": text, field: _checked_json(operand_type, operand, text)}
        )

    def union_in_set(
        self, attachment: Att, key: Key, path: PathLike, elements: Iterable[Any]
    ) -> None:
        """Add elements to a set of the client's document."""
        self._container("union_in_set", attachment, key, path, elements)

    def subtract_in_set(
        self, attachment: Att, key: Key, path: PathLike, elements: Iterable[Any]
    ) -> None:
        """Remove elements from a set of the client's document."""
        self._container("subtract_in_set", attachment, key, path, elements)

    def union_in_map(
        self, attachment: Att, key: Key, path: PathLike, entries: Mapping[Any, Any]
    ) -> None:
        """Insert entries into a map of the client's document."""
        self._container("union_in_map", attachment, key, path, entries)

    def update_in_map(
        self, attachment: Att, key: Key, path: PathLike, entries: Mapping[Any, Any]
    ) -> None:
        """Overwrite existing entries of a map of the client's document."""
        self._container("update_in_map", attachment, key, path, entries)

    def subtract_in_map(
        self, attachment: Att, key: Key, path: PathLike, keys: Iterable[Any]
    ) -> None:
        """Remove entries from a map of the client's document."""
        self._container("subtract_in_map", attachment, key, path, keys)

    def _xarray(
        self, attachment: Att, key: Key, path: PathLike
    ) -> tuple[dict[str, Any], XArrayType]:
        target = self._target(attachment, key, True)
        text, t = self._path(attachment, path)
        if not isinstance(t, XArrayType):
            raise ValidationError(
                "a path to an xarray", f"{text} of type {t}", target["attachment"]
            )
        return {**target, "path": text}, t

    def insert_in_xarray(
        self,
        attachment: Att,
        key: Key,
        path: PathLike,
        before: uuid.UUID,
        new: uuid.UUID | None,
        value: Any,
    ) -> uuid.UUID:
        """Insert before a position (END appends); returns the new position."""
        fields, t = self._xarray(attachment, key, path)
        new = new or uuid.uuid4()
        if new == END:
            raise ValidationError("a real xarray position", "END", "new")
        before_json = "END" if before == END else str(uuid.UUID(str(before)))
        value_json = _checked_json(t.element, value, fields["path"])
        self._notify(
            "insert_in_xarray",
            {**fields, "before": before_json, "position": str(new), "value": value_json},
        )
        return new

    def update_in_xarray(
        self,
        attachment: Att,
        key: Key,
        path: PathLike,
        position: uuid.UUID,
        value: Any,
    ) -> None:
        """Write at a position."""
        fields, t = self._xarray(attachment, key, path)
        value_json = _checked_json(t.element, value, fields["path"])
        self._notify("update_in_xarray", {**fields, "position": str(position), "value": value_json})

    def remove_in_xarray(
        self, attachment: Att, key: Key, path: PathLike, position: uuid.UUID
    ) -> None:
        """Remove at a position."""
        fields, _ = self._xarray(attachment, key, path)
        self._notify("remove_in_xarray", {**fields, "position": str(position)})
