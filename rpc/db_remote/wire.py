"""Wire forms, value types and small helpers shared by the remote database modules."""

from __future__ import annotations

import getpass
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

from commitdb.blobs import BlobInfo, BlobLayout
from commitdb.codec import from_wire, to_wire
from commitdb.commits import CommitData, CommitHeader
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.errors import CommitError, DecodeError, UnknownAttachmentError, ValidationError
from commitdb.ids import BlobId, CommitId
from commitdb.types import Attachment, ConceptType
from commitdb.values import Key
from rpc.errors import MethodNotFoundError, RemoteError
from rpc.packets import Notify

__all__ = ("DEFAULT_WINDOW", "CommitEvent", "MissedEvents", "ServedDatabaseInfo", "default_author")

log = logging.getLogger("rpc.db_remote")

DEFAULT_WINDOW = 1024
"""Events a subscription buffers on the client (and may have in flight to it)."""

STREAM_PIECE = 4 << 20  # a blob stream write larger than this is sent in pieces


# --------------------------------------------------------------------------------------------
# Public value types


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """A new commit announced by the server.

    Attributes:
        database: The served name of the database.
        header: The commit's header.
        seq: Its creation sequence in the server's database (see ``commits_since``).
    """

    database: str
    header: CommitHeader
    seq: int

    @property
    def commit_id(self) -> CommitId:
        """The new commit's id."""
        return self.header.commit_id


@dataclass(frozen=True, slots=True)
class MissedEvents:
    """The subscriber fell behind: `count` commits were not announced to it.

    The subscription resumes with the newest commits; ``db.commits_since(first_seq)`` lists
    what was missed (resync).

    Attributes:
        database: The served name of the database.
        count: How many commits were not announced.
        first_seq: The creation sequence of the first of them.
    """

    database: str
    count: int
    first_seq: int


@dataclass(frozen=True, slots=True)
class ServedDatabaseInfo:
    """A database a server offers.

    Attributes:
        name: The name to open it by.
        kind: ``"commit"`` or ``"flat"``.
        uuid: The database's uuid.
        documentation: Its documentation.
    """

    name: str
    kind: str
    uuid: uuid.UUID
    documentation: str


# --------------------------------------------------------------------------------------------
# Wire helpers


def _check_id(commit_id: object) -> CommitId:
    """A commit id as the local database accepts it (CommitId, 32 bytes or hex)."""
    if isinstance(commit_id, CommitId):
        return commit_id
    if isinstance(commit_id, bytes | bytearray) and len(commit_id) == 32:
        return CommitId(bytes(commit_id))
    if isinstance(commit_id, str):
        try:
            return CommitId.from_hex(commit_id)
        except ValueError as exc:
            raise CommitError(str(exc)) from None
    raise CommitError(f"expected a CommitId, got {type(commit_id).__name__}")


def _wid(commit_id: object) -> bytes:
    return bytes(_check_id(commit_id))


def _opt_wid(commit_id: object) -> bytes | None:
    return None if commit_id is None else _wid(commit_id)


def _opt_cid(w: Any) -> CommitId | None:
    return None if w is None else CommitId(w)


def _layout_wire(layout: BlobLayout | None) -> list[Any]:
    lay = layout or BlobLayout()
    return [lay.data_type, lay.components]


def _layout(w: Any) -> BlobLayout:
    return BlobLayout(str(w[0]), int(w[1]))


def _blob_info(w: Any) -> BlobInfo | None:
    return None if w is None else BlobInfo(BlobId(w[0]), _layout(w[1]), int(w[2]))


def _blob_ids(w: Any) -> set[BlobId]:
    return {BlobId(b) for b in w}


def _commit_ids(w: Any) -> set[CommitId]:
    return {CommitId(c) for c in w}


def _commit_data(w: Any) -> CommitData:
    return CommitData(CommitHeader.from_wire(w[0]), bytes(w[1]))


def _commit_data_wire(data: CommitData) -> list[Any]:
    return [data.header.to_wire(), data.program]


def _ext(info: dict[str, Any]) -> ExtendInfo:
    def ids(name: str) -> list[uuid.UUID]:
        return [uuid.UUID(bytes=b) for b in info.get(name, [])]

    return ExtendInfo(
        concepts=ids("concepts"),
        clubs=ids("clubs"),
        enumerations=ids("enumerations"),
        structures=ids("structures"),
        attachments=ids("attachments"),
        pools=ids("pools"),
        memberships=[
            (uuid.UUID(bytes=a), uuid.UUID(bytes=b)) for a, b in info.get("memberships", [])
        ],
    )


def _served_info(d: dict[str, Any]) -> ServedDatabaseInfo:
    return ServedDatabaseInfo(
        str(d["name"]), str(d["kind"]), uuid.UUID(bytes=d["uuid"]), str(d["documentation"])
    )


def _key_wire(key: Key) -> bytes:
    return key.concept.runtime_id.bytes + key.id.bytes


def default_author() -> str:
    """The author of this process's commits: ``COMMITDB_AUTHOR`` or the login name."""
    env = os.environ.get("COMMITDB_AUTHOR")
    if env:
        return env
    if _LOGIN_NAME:
        return _LOGIN_NAME[0]
    try:
        name = getpass.getuser()
    except Exception:  # no user database in some containers
        name = ""
    _LOGIN_NAME.append(name)
    return name


_LOGIN_NAME: list[str] = []  # getpass.getuser() once (it reads the user database)


def _author(author: str | None) -> str:
    return default_author() if author is None else author


def _translate(exc: RemoteError) -> Exception:
    """A server-side ValueError/TypeError comes back as itself."""
    kind = exc.data.get("type") if isinstance(exc.data, dict) else None
    builtin = _BUILTIN_ERRORS.get(kind) if exc.code == -32000 else None
    if builtin is not None:
        return builtin(exc.message.partition(": ")[2] or exc.message)
    return exc


_BUILTIN_ERRORS: dict[Any, type[Exception]] = {
    "ValueError": ValueError,
    "TypeError": TypeError,
    "OverflowError": OverflowError,
}


def _check_key(att: Attachment, key: object, *, write: bool = False) -> Key:
    where = f"{att.identifier} key"
    if not isinstance(key, Key):
        raise ValidationError(str(att.key_type), f"{type(key).__name__} {key!r}", where)
    if not att.key_type.accepts_concept(key.concept):
        raise ValidationError(str(att.key_type), f"key of {key.concept}", where)
    if write and key.is_nil:
        raise ValidationError("a key with a valid instance id", "the nil key", where)
    return key


def _value_wire(att: Attachment, key: Key, value: Any) -> Any:
    """The wire form of a document, refused with the local database's located message."""
    t = att.document_type
    where = f"{att.identifier}[{key.id}]"
    try:
        return to_wire(value, t)
    except ValidationError as exc:
        try:
            t.check(value, where)
        except ValidationError as located:
            raise located from None
        raise ValidationError(exc.expected, exc.given, where) from None


class _Stale(Exception):
    """The cached definitions miss something the server knows: refresh and retry."""


class _Defs:
    """The definitions a remote caches, with lookups that say when they are stale."""

    def __init__(self, definitions: Definitions, digest: str) -> None:
        self.definitions = definitions
        self.digest = digest

    def attachment(self, ref: Attachment | str | uuid.UUID) -> Attachment:
        try:
            return self.definitions.check_attachment(ref)
        except UnknownAttachmentError:
            raise _Stale from None

    def key(self, w: Any) -> Key:
        concept = self.definitions.query_type(uuid.UUID(bytes=w[:16]))
        if not isinstance(concept, ConceptType):
            raise _Stale
        return Key(concept, uuid.UUID(bytes=w[16:]))

    def value(self, w: Any, t: Any) -> Any:
        try:
            return from_wire(w, t, self.definitions)
        except DecodeError:
            raise _Stale from None


_MISSING: Any = object()  # not known to the client's cache


def _ref(attachment: object) -> str:
    return attachment.identifier if isinstance(attachment, Attachment) else str(attachment)


def hello_fields(credentials: Any, commit_database: str | None = None) -> dict[str, Any]:
    """The hello a remote database client sends; with `commit_database`, the welcome of a
    server that knows the ``open`` field carries that database's definitions (the round
    trip of the ``open`` call saved)."""
    hello: dict[str, Any] = {"client": "commitdb-python"}
    if credentials is not None:
        hello["credentials"] = credentials
    if commit_database is not None:
        hello["open"] = commit_database
    return hello


def _served(welcome: dict[str, Any], name: str, kind: str) -> None:
    served = {d["name"]: d for d in welcome.get("databases", [])}
    d = served.get(name)
    if d is None or d.get("kind") != kind:
        raise MethodNotFoundError(
            f"the server has no {kind} database named {name!r} "
            f"(served: {', '.join(sorted(served)) or 'none'})"
        )


# --------------------------------------------------------------------------------------------
# Subscriptions


def event_from_notify(database: str, notify: Notify) -> CommitEvent | MissedEvents | None:
    """The subscription event a notification carries (None: not one, or malformed)."""
    try:
        if notify.method == "commit":
            header = CommitHeader.from_wire(notify.args[0])
            return CommitEvent(database, header, int(notify.args[1]))
        if notify.method == "missed":
            return MissedEvents(database, int(notify.args[0]), int(notify.args[1]))
    except (DecodeError, IndexError, TypeError, ValueError):
        log.warning("malformed %s notification %r", notify.method, notify.args)
    return None
