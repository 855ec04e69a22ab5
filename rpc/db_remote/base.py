"""What the async remotes share: opening a connection, the served-database listing, calls,
definitions, metadata and blobs (:class:`_AsyncBase`), and streamed blob uploads."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Self, TypeVar

from commitdb.blobs import BlobInfo, BlobLayout, BlobStatistics
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.definitions_codec import decode_definitions, encode_definitions
from commitdb.errors import DatabaseClosedError, DecodeError, UnknownAttachmentError
from commitdb.ids import BlobId
from commitdb.types import Attachment
from rpc.client import open_connection
from rpc.connection import Connection
from rpc.db_remote.subscriptions import _AsyncHandler
from rpc.db_remote.wire import (
    STREAM_PIECE,
    ServedDatabaseInfo,
    _blob_ids,
    _blob_info,
    _Defs,
    _ext,
    _layout,
    _layout_wire,
    _ref,
    _served,
    _served_info,
    _Stale,
    _translate,
    hello_fields,
)
from rpc.errors import ConnectionClosedError, RemoteError

__all__ = ("AsyncRemoteBlobStream", "list_databases")

T = TypeVar("T")


async def list_databases(
    url: str,
    *,
    credentials: Any = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float = 10.0,
) -> list[ServedDatabaseInfo]:
    """The databases a server offers.

    Args:
        url: The server's URL.
        credentials: What the server's authenticator expects (a token).
        ssl_context: The TLS context (``tls://`` URLs).
        server_hostname: The name to check the server certificate against.
        timeout: Seconds to connect at most.

    Returns:
        One info per served database.
    """
    conn, welcome = await open_connection(
        url,
        hello_fields(credentials),
        ssl_context=ssl_context,
        server_hostname=server_hostname,
        timeout=timeout,
    )
    async with conn:
        return [_served_info(d) for d in welcome.get("databases", [])]


_DECODED: dict[bytes, Definitions] = {}  # encoded definitions -> decoded (a few, per process)


def _decoded(raw: bytes) -> Definitions:
    """Decoded definitions; a connection to a database seen before copies the decoded ones
    (six times cheaper than decoding; a copy, as the caller may extend what it gets)."""
    key = bytes(raw)
    known = _DECODED.get(key)
    if known is None:
        known = decode_definitions(key)
        if len(_DECODED) >= 8:
            _DECODED.clear()
        _DECODED[key] = known.copy()
        return known
    return known.copy()


@asynccontextmanager
async def _open_async(
    url: str,
    name: str,
    kind: str,
    credentials: Any,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    timeout: float,
    handler: _AsyncHandler,
) -> AsyncIterator[Connection]:
    conn, welcome = await open_connection(
        url,
        hello_fields(credentials, name if kind == "commit" else None),
        handler=handler,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
        timeout=timeout,
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(conn)
        _served(welcome, name, kind)
        conn.state["welcome"] = welcome
        yield conn


class AsyncRemoteBlobStream:
    """A streamed blob upload to a remote database: ``write()`` pieces, then ``close()``.

    The pieces are spooled on the server; the same overflow and short-stream checks as a
    local stream apply.
    """

    def __init__(self, db: _AsyncBase, stream_id: int) -> None:
        self._db = db
        self._id = stream_id
        self._done = False

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; returns how many were written."""
        if self._done:
            self._db._check_open()
        view = memoryview(data).cast("B")
        n = 0
        for i in range(0, max(len(view), 1), STREAM_PIECE):
            try:
                piece = bytes(view[i : i + STREAM_PIECE])
                n += int(await self._db._call("blob_stream_write", self._id, piece))
            except Exception:
                self._done = True
                raise
        return n

    async def close(self) -> BlobId:
        """Store (or stage, in a flat database's transaction) the blob; returns its id."""
        self._done = True
        return BlobId(await self._db._call("blob_stream_close", self._id))

    async def abort(self) -> None:
        """Discard what was written."""
        if not self._done:
            self._done = True
            try:
                await self._db._call("blob_stream_abort", self._id)
            except (ConnectionClosedError, DatabaseClosedError):
                pass


class _AsyncBase:
    """Shared plumbing of the async remotes: the connection, the target, definitions."""

    kind = ""

    def __init__(self, conn: Connection, name: str, timeout: float | None) -> None:
        self.connection = conn
        self.name = name
        self.timeout = timeout
        self._target = f"{'cdb' if self.kind == 'commit' else 'db'}:{name}"
        self._defs: _Defs | None = None
        self._user_closed = False
        self._uuid: uuid.UUID | None = None  # never change: asked once
        self._documentation: str | None = None

    @classmethod
    def _from_connection(
        cls, conn: Connection, name: str, timeout: float | None, handler: _AsyncHandler
    ) -> Self:
        """The remote on an open connection (the commit remote also keeps `handler`)."""
        return cls(conn, name, timeout)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[Self]:
        """Connect to a server and open the database of this kind served as `name`.

        Args:
            url: ``tcp://host:port``, ``unix:///path``, ``tls://host:port``...
            name: The served name.
            credentials: What the server's authenticator expects (a token).
            ssl_context: The TLS context (``tls://`` URLs).
            server_hostname: The name to check the server certificate against.
            timeout: Seconds each call may take (None: no limit).
            connect_timeout: Seconds to connect at most.

        Yields:
            The remote database, closed on exit.
        """
        handler = _AsyncHandler(name)
        async with _open_async(
            url, name, cls.kind, credentials, ssl_context, server_hostname, connect_timeout, handler
        ) as conn:
            remote = cls._from_connection(conn, name, timeout, handler)
            await remote._load_defs()
            try:
                yield remote
            finally:
                remote._user_closed = True

    async def _call(self, method: str, *args: Any) -> Any:
        if self._user_closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")
        try:
            return await self.connection.call(
                self._target, method, list(args), timeout=self.timeout
            )
        except RemoteError as exc:
            raise _translate(exc) from None

    async def _fresh_defs(self) -> _Defs:
        digest = str(await self._call("definitions_hexdigest"))
        if self._defs is None or digest != self._defs.digest:
            raw = await self._call("definitions")
            self._defs = _Defs(_decoded(raw), digest)
        return self._defs

    async def _cached_defs(self) -> _Defs:
        return self._defs if self._defs is not None else await self._fresh_defs()

    async def _load_defs(self) -> None:
        """The definitions and their digest when the remote opens: from the welcome (a
        commit database on a server that sends them there), else in one round trip."""
        sent = self.connection.state.pop("welcome", {}).get("definitions")
        if type(sent) is list and len(sent) == 2 and type(sent[1]) is bytes:
            digest, raw = sent
        else:
            digest, raw = await self._call("open")
        self._defs = _Defs(_decoded(raw), str(digest))

    async def _attachment(self, attachment: Attachment | str) -> Attachment:
        try:
            return (await self._cached_defs()).attachment(attachment)
        except _Stale:
            pass
        try:
            return (await self._fresh_defs()).attachment(attachment)
        except _Stale:
            raise UnknownAttachmentError(
                f"attachment {_ref(attachment)} is not registered"
            ) from None

    async def _with_defs(self, fn: Callable[[_Defs], T]) -> T:
        """``fn(definitions)``, again with fresh definitions if the cached ones are stale."""
        try:
            return fn(await self._cached_defs())
        except _Stale:
            pass
        try:
            return fn(await self._fresh_defs())
        except _Stale:
            raise DecodeError("the server sent a value of unknown types") from None

    async def definitions(self) -> Definitions:
        """The database's definitions (fresh: another client may have extended them)."""
        return (await self._fresh_defs()).definitions

    async def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Add types and attachments (additive only)."""
        info = await self._call("extend_definitions", encode_definitions(definitions))
        self._defs = None
        return _ext(info)

    async def definitions_hexdigest(self) -> str:
        """Digest of the definitions."""
        return str(await self._call("definitions_hexdigest"))

    async def uuid(self) -> uuid.UUID:
        """The uuid generated when the database was created."""
        self._check_open()
        if self._uuid is None:
            self._uuid = uuid.UUID(bytes=await self._call("uuid"))
        return self._uuid

    async def documentation(self) -> str:
        """The documentation given at creation."""
        self._check_open()
        if self._documentation is None:
            self._documentation = str(await self._call("documentation"))
        return self._documentation

    async def codec_name(self) -> str:
        """The value codec."""
        return str(await self._call("codec_name"))

    def path(self) -> str:
        """The served name (a client never sees the server's filesystem)."""
        self._check_open()
        return self.name

    def in_memory(self) -> bool:
        """False: the database lives on the server."""
        self._check_open()
        return False

    def _check_open(self) -> None:
        if self._user_closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")

    def is_closed(self) -> bool:
        """True once closed (by :meth:`aclose` or because the connection was lost)."""
        return self._user_closed or self.connection.closed

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        self._user_closed = True
        await self.connection.aclose()

    # -- blobs ----------------------------------------------------------------------------
    async def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob (idempotent) and return its id (a large one is streamed)."""
        view = memoryview(data).cast("B")
        if len(view) <= STREAM_PIECE:
            return BlobId(await self._call("create_blob", bytes(view), _layout_wire(layout)))
        stream = await self.blob_stream(layout, len(view))
        await stream.write(view)
        return await stream.close()

    async def blob_stream(
        self, layout: BlobLayout | None = None, size: int | None = None
    ) -> AsyncRemoteBlobStream:
        """Start a streamed blob upload; ``close()`` returns the id."""
        sid = await self._call("blob_stream_open", _layout_wire(layout), size)
        return AsyncRemoteBlobStream(self, int(sid))

    async def blob(self, blob_id: BlobId) -> bytes | None:
        """A whole blob, or None (a large one is read in ranges)."""
        r = await self._call("blob", bytes(blob_id))
        if type(r) is int:
            pieces = [
                await self.read_blob(blob_id, min(STREAM_PIECE, r - i), i)
                for i in range(0, r, STREAM_PIECE)
            ]
            return b"".join(pieces)
        return None if r is None else bytes(r)

    async def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """A range of a blob."""
        return bytes(await self._call("read_blob", bytes(blob_id), size, offset))

    async def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None."""
        return _blob_info(await self._call("blob_info", bytes(blob_id)))

    async def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the stored blobs among `blob_ids`."""
        w = await self._call("blob_infos", [bytes(b) for b in blob_ids])
        return [BlobInfo(BlobId(i), _layout(lay), int(s)) for i, lay, s in w]

    async def blob_ids(self) -> set[BlobId]:
        """Every stored blob id."""
        return _blob_ids(await self._call("blob_ids"))

    async def blob_statistics(self) -> BlobStatistics:
        """Count and sizes of stored blobs."""
        return BlobStatistics(*await self._call("blob_statistics"))
