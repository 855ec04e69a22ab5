"""Gateway security: bearer tokens and permissions, the rate limiter, the audit log.

* :class:`TokenTable` — ``TOKEN:PERMISSION`` specs (``read``, ``read-write``, ``admin``);
  lookups compare in constant time. With no token configured, every client is ``admin``.
* :class:`RateLimiter` — one token bucket per client (``rate`` calls per second, ``burst``
  calls at once); a refused call learns how long to wait.
* :func:`require_permission`, :func:`unauthorized` — the -32004 and -32003 errors.
* :func:`read_body` — a request body within the size limit; :func:`too_large` — the error
  of one beyond it (HTTP and WebSocket alike).
* :class:`AuditLog` — one line per call on the ``commitdb.audit`` logger: method, client,
  principal (``token#N``, never the token), outcome and duration. Never params or secrets.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import hmac
import logging
import logging.handlers
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from rpc.jsonrpc import FORBIDDEN, INVALID_REQUEST, UNAUTHORIZED, JsonRpcError

__all__ = (
    "AuditLog",
    "AuditQueueHandler",
    "AuditQueueListener",
    "Permission",
    "Principal",
    "RateLimiter",
    "TokenTable",
    "bearer_token",
    "read_body",
    "require_permission",
    "too_large",
    "unauthorized",
)

AUDIT_LOGGER = "commitdb.audit"


class Permission(enum.IntEnum):
    """What a token allows; each level includes the ones below."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Permission:
        """``read``, ``read-write`` or ``admin``.

        Raises:
            ValueError: Another word.
        """
        found = {"read": cls.READ, "read-write": cls.WRITE, "admin": cls.ADMIN}.get(text)
        if found is None:
            raise ValueError(f"unknown permission {text!r} (read, read-write or admin)")
        return found

    @property
    def label(self) -> str:
        """``read``, ``read-write`` or ``admin``."""
        return {1: "read", 2: "read-write", 3: "admin"}[int(self)]

    @classmethod
    def of_method(cls, level: str) -> Permission:
        """The permission a method's level (``read``, ``write``, ``admin``) needs."""
        return {"read": cls.READ, "write": cls.WRITE, "admin": cls.ADMIN}[level]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a name fit for logs (``token#2``, ``anonymous``) and a permission."""

    name: str
    permission: Permission


ANONYMOUS_ADMIN = Principal("anonymous", Permission.ADMIN)

#: :meth:`Permission.of_method`, as a table (looked up on every call).
_METHOD_LEVELS = {"read": Permission.READ, "write": Permission.WRITE, "admin": Permission.ADMIN}


def require_permission(principal: Principal, level: str) -> None:
    """Raise -32004 (forbidden) unless `principal` may do `level` (read, write, admin)."""
    needed = _METHOD_LEVELS.get(level) or Permission.of_method(level)
    if principal.permission < needed:
        data = {"required": needed.label, "granted": principal.permission.label}
        raise JsonRpcError(FORBIDDEN, "forbidden", data)


def unauthorized(reason: str) -> JsonRpcError:
    """The -32003 error, saying what is missing or wrong."""
    return JsonRpcError(UNAUTHORIZED, "unauthorized", {"reason": reason})


class TokenTable:
    """The configured bearer tokens and their permissions."""

    def __init__(self, specs: Iterable[str] = ()) -> None:
        """Read ``TOKEN:PERMISSION`` specs (a bare ``TOKEN`` is read-write).

        Raises:
            ValueError: An empty token or an unknown permission (the token is not shown).
        """
        self._tokens: list[tuple[bytes, Principal]] = []
        for i, spec in enumerate(specs, start=1):
            token, sep, perm = spec.rpartition(":")
            if not sep:
                token, perm = spec, "read-write"
            if not token:
                raise ValueError(f"token #{i} is empty")
            self._tokens.append((token.encode(), Principal(f"token#{i}", Permission.parse(perm))))

    @property
    def enabled(self) -> bool:
        """True when tokens are required."""
        return bool(self._tokens)

    def lookup(self, token: str | None) -> Principal | None:
        """The principal a token stands for, or None (compares every entry in constant
        time, so the answer's timing says nothing about the tokens)."""
        if not self._tokens:
            return ANONYMOUS_ADMIN
        if token is None:
            return None
        given = token.encode()
        found: Principal | None = None
        for known, principal in self._tokens:
            if hmac.compare_digest(known, given) and found is None:
                found = principal
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes (a declared
    ``Content-Length`` is checked first; a streamed body is counted as it arrives)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> JsonRpcError:
    """The -32600 error of a message larger than `limit` bytes."""
    return JsonRpcError(
        INVALID_REQUEST, "invalid request", {"reason": "request too large", "max_bytes": limit}
    )


class RateLimiter:
    """Token buckets per client key: ``rate`` calls per second, bursts of ``burst``."""

    MAX_CLIENTS = 10_000

    def __init__(self, rate: float | None, burst: int | None = None) -> None:
        """Create the limiter (``rate`` None or 0: no limit).

        Args:
            rate: Calls per second refilled in each bucket.
            burst: Bucket capacity (default: ``max(1, rate)``).
        """
        self.rate = rate if rate and rate > 0 else None
        self.burst = float(burst if burst else max(1.0, math.ceil(rate or 1)))
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self._lock = threading.Lock()
        self.refused = 0

    def acquire(self, key: str, now: float | None = None) -> float:
        """Take one call from the client's bucket.

        Returns:
            0 when allowed, else the seconds to wait before the next call is allowed.
        """
        if self.rate is None:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, updated = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                self._prune(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            self.refused += 1
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.MAX_CLIENTS:
            return
        rate = self.rate or 1.0
        full = [k for k, (t, u) in self._buckets.items() if t + (now - u) * rate >= self.burst]
        for k in full:
            del self._buckets[k]


class AuditLog:
    """Writes the audit line of each call."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(AUDIT_LOGGER)

    def record(
        self,
        *,
        method: str,
        client: str,
        principal: str,
        transport: str,
        outcome: str,
        duration: float,
    ) -> None:
        """Log one call.

        Args:
            method: The method name (or ``-`` when the message had none).
            client: The client address.
            principal: ``token#N`` or ``anonymous`` (never a token).
            transport: ``http`` or ``ws``.
            outcome: ``ok`` or ``error <code>``.
            duration: Seconds spent.
        """
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        args = (
            _safe(method),
            client,
            principal,
            transport,
            outcome.replace(" ", ":"),
            duration * 1000.0,
        )
        handlers = logger.handlers
        if (
            len(handlers) == 1
            and type(handlers[0]) is AuditQueueHandler
            and not logger.propagate
            and not logger.filters
        ):
            # the gateway's own set-up: enqueue the fields, the listener builds the record
            handlers[0].put_fields(time.time(), args)
            return
        # makeRecord + handle: Logger.info without its stack walk (findCaller)
        logger.handle(
            logger.makeRecord(
                logger.name, logging.INFO, __file__, 0, _AUDIT_FORMAT, args, None, "record"
            )
        )


_AUDIT_FORMAT = "method=%s client=%s principal=%s transport=%s outcome=%s duration_ms=%.3f"


class AuditQueueHandler(logging.handlers.QueueHandler):
    """Enqueues audit records as they are (their arguments are strings and a number, safe to
    format later) for an :class:`AuditQueueListener`, which formats and writes them.

    On an event loop the records of one loop iteration go to the listener together, once the
    iteration's replies are sent (``call_soon``): the listener thread wakes once per
    iteration, not once per call, and not while a reply is being written. Elsewhere each
    record goes at once. :meth:`flush` hands over what is pending."""

    def __init__(self, queue: Any) -> None:
        super().__init__(queue)
        self._pending: collections.deque[Any] = collections.deque()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: Any) -> None:
        pending = self._pending
        pending.append(record)
        if len(pending) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            loop.call_soon(self.flush)

    def put_fields(self, created: float, args: tuple[object, ...]) -> None:
        """Enqueue an audit line's fields (:class:`AuditQueueListener` makes the record),
        unless this handler's level or filters would drop an INFO record."""
        if self.level <= logging.INFO and not self.filters:
            self.enqueue((created, args))
        else:
            self.handle(_audit_record(created, args))

    def flush(self) -> None:
        """Hand the pending records to the listener."""
        pending = self._pending
        items = []
        while pending:
            items.append(pending.popleft())
        if items:
            self.queue.put_nowait(items)


class AuditQueueListener(logging.handlers.QueueListener):
    """The :class:`~logging.handlers.QueueListener` of :class:`AuditQueueHandler`: it turns
    the fields :meth:`AuditQueueHandler.put_fields` enqueued into records (in its thread,
    after the calls have been answered) and hands them to its handlers. Its :meth:`stop`
    flushes the :class:`AuditQueueHandler` objects :meth:`feed_from` names first."""

    _feeders: tuple[AuditQueueHandler, ...] = ()

    def feed_from(self, *handlers: AuditQueueHandler) -> None:
        """The handlers whose pending records :meth:`stop` writes too."""
        self._feeders = handlers

    def handle(self, record: Any) -> None:
        if isinstance(record, list):  # the records of one loop iteration
            for item in record:
                self.handle(item)
            return
        if isinstance(record, tuple):
            record = _audit_record(*record)
        super().handle(record)

    def stop(self) -> None:
        for handler in self._feeders:
            handler.flush()
        super().stop()


def _audit_record(created: float, args: tuple[object, ...]) -> logging.LogRecord:
    record = logging.LogRecord(
        AUDIT_LOGGER, logging.INFO, __file__, 0, _AUDIT_FORMAT, args, None, "record"
    )
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


def _safe(text: str) -> str:
    """A method name fit for one log field (client-chosen text: no spaces, bounded)."""
    if len(text) <= 120 and text.isprintable() and " " not in text:
        return text or "-"  # the common case (str.isprintable is False for other spaces)
    cleaned = "".join(c if c.isprintable() and not c.isspace() else "?" for c in text[:120])
    return cleaned or "-"
