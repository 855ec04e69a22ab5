"""The plumbing of the blocking remotes: the async remote running on the process's shared
event loop thread (:func:`rpc.blocking.shared_loop`, the mechanism of every blocking facade),
the base of the blocking databases (metadata, definitions, blobs) and the blocking blob stream.

A blocking method runs its async twin on that event loop (one hop there and back) and
returns what it returns; the only work done here without a hop is reading what
the async remote holds already (cached states and documents, the served name).
"""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from commitdb.blobs import BlobInfo, BlobLayout, BlobStatistics
from commitdb.definitions import Definitions, ExtendInfo
from commitdb.errors import DatabaseClosedError
from commitdb.ids import BlobId
from rpc.blocking import LoopThread, shared_loop
from rpc.db_remote.base import AsyncRemoteBlobStream, _AsyncBase, list_databases
from rpc.db_remote.wire import ServedDatabaseInfo
from rpc.errors import ConnectionClosedError

if TYPE_CHECKING:
    from rpc.db_remote.subscriptions import Subscription

__all__ = ("RemoteBlobStream",)

T = TypeVar("T")
A = TypeVar("A", bound=_AsyncBase)


def _start(
    factory: Callable[[], AbstractAsyncContextManager[T]],
) -> tuple[LoopThread, AbstractContextManager[T], T]:
    """The shared loop thread, with the async context manager `factory()` entered on it."""
    loop = shared_loop()
    cm, value = loop.enter(factory())
    return loop, cm, value


class _Facade(Generic[A]):
    """What the blocking remotes share: the portal, the async remote, close and metadata."""

    kind = ""
    _async_class: type[A]  # the async remote each facade runs (set by the subclasses)

    def __init__(
        self,
        thread: LoopThread,
        cm: AbstractContextManager[A],
        remote: A,
        url: str,
    ) -> None:
        self._thread = thread
        self._portal = thread.portal
        self._cm = cm
        self._a = remote
        self.name = remote.name
        self.url = url
        self.timeout = remote.timeout
        self._closed = False
        self._close_lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()

    @classmethod
    def connect(
        cls,
        url: str,
        name: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> Self:
        """Connect to a server and open the database of this kind served as `name`.

        Args:
            url: ``tcp://host:port``, ``unix:///path``, ``tls://host:port``...
            name: The served name.
            credentials: What the server's authenticator expects (a token).
            ssl_context: The TLS context (``tls://`` URLs).
            server_hostname: The name to check the server certificate against.
            timeout: Seconds each call may take (None: no limit).
            connect_timeout: Seconds to connect at most.

        Returns:
            The open remote database (a context manager).

        Raises:
            MethodNotFoundError: The server serves no database of this kind and name.
            HandshakeError: The server refused the connection (credentials...).
        """
        opener = cls._async_class.connect
        thread, cm, remote = _start(
            lambda: opener(
                url,
                name,
                credentials=credentials,
                ssl_context=ssl_context,
                server_hostname=server_hostname,
                timeout=timeout,
                connect_timeout=connect_timeout,
            ),
        )
        return cls(thread, cm, remote, url)

    @staticmethod
    def databases(
        url: str,
        *,
        credentials: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> list[ServedDatabaseInfo]:
        """The databases a server offers (name, kind, uuid, documentation).

        Args:
            url: The server's URL.
            credentials: What the server's authenticator expects (a token).
            ssl_context: The TLS context (``tls://`` URLs).
            server_hostname: The name to check the server certificate against.
            timeout: Seconds to connect at most.

        Returns:
            One info per served database.
        """

        async def run() -> list[ServedDatabaseInfo]:
            return await list_databases(
                url,
                credentials=credentials,
                ssl_context=ssl_context,
                server_hostname=server_hostname,
                timeout=timeout,
            )

        return shared_loop().call(run)

    def __repr__(self) -> str:
        closed = " (closed)" if self.is_closed() else ""
        return f"<{type(self).__name__} {self.url}#{self.name}{closed}>"

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the event loop thread."""
        if self._closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")
        try:
            return self._thread.call(fn, *args)
        except RuntimeError:
            if self._closed:  # closed by another thread meanwhile: the portal stopped
                raise DatabaseClosedError(f"{self.name}: the database is closed") from None
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"{self.name}: the database is closed")

    # -- lifecycle and metadata -----------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent); further calls raise DatabaseClosedError."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        for sub in list(self._subscriptions):
            sub._end()
        try:
            self._cm.__exit__(None, None, None)
        except (ConnectionClosedError, OSError):
            pass  # the connection was lost already
        except RuntimeError:
            if self._thread.is_alive():
                raise  # otherwise: the loop was stopped (interpreter exit), the connection with it

    def is_closed(self) -> bool:
        """True once closed (or once the connection was lost)."""
        return self._closed or self._a.is_closed()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def path(self) -> str:
        """The served name (a client never sees the server's filesystem)."""
        self._check_open()
        return self.name

    def in_memory(self) -> bool:
        """False: the database lives on the server."""
        self._check_open()
        return False

    def uuid(self) -> uuid.UUID:
        """The uuid generated when the database was created."""
        self._check_open()
        cached = self._a._uuid
        return cached if cached is not None else self._run(self._a.uuid)

    def documentation(self) -> str:
        """The documentation given at creation."""
        self._check_open()
        cached = self._a._documentation
        return cached if cached is not None else self._run(self._a.documentation)

    def codec_name(self) -> str:
        """The value codec: ``"msgpack-canonical"``."""
        return self._run(self._a.codec_name)

    # -- definitions ----------------------------------------------------------------------
    def definitions(self) -> Definitions:
        """The definitions (fresh: another client may have extended them)."""
        return self._run(self._a.definitions)

    def extend_definitions(self, definitions: Definitions) -> ExtendInfo:
        """Add types and attachments (additive only; a conflict raises and adds nothing)."""
        return self._run(self._a.extend_definitions, definitions)

    def definitions_hexdigest(self) -> str:
        """Digest of the definitions."""
        return self._run(self._a.definitions_hexdigest)

    # -- blobs ----------------------------------------------------------------------------
    def create_blob(
        self, data: bytes | bytearray | memoryview, layout: BlobLayout | None = None
    ) -> BlobId:
        """Store a blob (idempotent) and return its id (a large one is streamed)."""
        return self._run(self._a.create_blob, data, layout)

    def blob_stream(
        self, layout: BlobLayout | None = None, size: int | None = None
    ) -> RemoteBlobStream:
        """Start a streamed blob upload; ``close()`` returns the id."""
        return RemoteBlobStream(self, self._run(self._a.blob_stream, layout, size))

    def blob(self, blob_id: BlobId) -> bytes | None:
        """A whole blob, or None (a large one is read in ranges)."""
        return self._run(self._a.blob, blob_id)

    def read_blob(self, blob_id: BlobId, size: int, offset: int = 0) -> bytes:
        """A range of a blob (ValueError outside it)."""
        return self._run(self._a.read_blob, blob_id, size, offset)

    def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """Layout and size of a blob, or None."""
        return self._run(self._a.blob_info, blob_id)

    def blob_infos(self, blob_ids: Iterable[BlobId]) -> list[BlobInfo]:
        """Infos of the stored blobs among `blob_ids` (unknown ids are left out)."""
        return self._run(self._a.blob_infos, blob_ids)

    def blob_ids(self) -> set[BlobId]:
        """Every stored blob id."""
        return self._run(self._a.blob_ids)

    def blob_statistics(self) -> BlobStatistics:
        """Count, total, smallest and largest size of the stored blobs."""
        return self._run(self._a.blob_statistics)


class RemoteBlobStream:
    """A streamed blob upload to a remote database: ``write()`` pieces, then ``close()``.

    The pieces are spooled on the server; the same overflow and short-stream checks as a
    local stream apply.
    """

    def __init__(self, db: _Facade[Any], stream: AsyncRemoteBlobStream) -> None:
        self._db = db
        self._stream = stream

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; returns how many were written."""
        return self._db._run(self._stream.write, data)

    def close(self) -> BlobId:
        """Store (or stage, in a flat database's transaction) the blob; returns its id."""
        return self._db._run(self._stream.close)

    def abort(self) -> None:
        """Discard what was written."""
        try:
            self._db._run(self._stream.abort)
        except (ConnectionClosedError, DatabaseClosedError):
            pass

    def __enter__(self) -> RemoteBlobStream:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
