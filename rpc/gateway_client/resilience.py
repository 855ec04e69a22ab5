"""Errors, retries, circuit breaking and timeouts for the JSON-RPC gateway clients.

The error hierarchy mirrors the gateway's codes (``docs/jsonrpc-gateway.md`` §2)::

    GatewayError
    ├── TransportError            no JSON-RPC answer: connection refused/reset, bad HTTP status
    │   └── HTTPStatusError       an HTTP status without a JSON-RPC body (a proxy's 502 ...)
    ├── ProtocolViolation         the peer answered something that is not JSON-RPC 2.0
    ├── CircuitOpenError          the circuit breaker refused the call without sending it
    └── JsonRpcError              an error object: code, message, data
        ├── ParseError            -32700
        ├── InvalidRequest        -32600
        ├── MethodNotFound        -32601
        ├── InvalidParams         -32602 (data: expected, given, where)
        ├── InternalError         -32603
        ├── ServerError           -32000 and the rest of -32099 … -32000
        ├── Timeout               -32001 (also raised for a client-side timeout)
        ├── RateLimited           -32002 (data.retry_after seconds)
        ├── Unauthorized          -32003
        ├── Forbidden             -32004
        └── EngineError           -32100 … -32199 (``as_engine_error()`` rebuilds the commitdb class)

A call goes through :func:`call_with_resilience`: the :class:`CircuitBreaker` decides whether it
may be sent, each attempt runs under a timeout, and an *idempotent* call that failed
transiently (:func:`is_transient`: a transport error, a timeout, -32001 or -32002) is tried
again after an exponential backoff with jitter (:class:`RetryPolicy`), never sooner than the
server's ``retry_after``. Other JSON-RPC errors are answers, not failures: they are raised at
once and count as a success for the breaker (the server is up).
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

__all__ = (
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "EngineError",
    "Forbidden",
    "GatewayError",
    "HTTPStatusError",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "JsonRpcError",
    "MethodNotFound",
    "ParseError",
    "ProtocolViolation",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Timeout",
    "USE_DEFAULT",
    "TransportError",
    "Unauthorized",
    "UseDefault",
    "call_with_resilience",
    "counts_as_failure",
    "error_from_json",
    "is_transient",
    "resolve_timeout",
    "with_timeout",
)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


# --------------------------------------------------------------------------------------------
# Errors


class GatewayError(Exception):
    """Root of the errors the gateway clients raise."""


class TransportError(GatewayError, ConnectionError):
    """The request got no JSON-RPC answer (connection refused or lost, unusable HTTP reply)."""


class HTTPStatusError(TransportError):
    """An HTTP status whose body is not a JSON-RPC reply (typically from a proxy).

    Attributes:
        status: The HTTP status code.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status

    @property
    def transient(self) -> bool:
        """True for the statuses worth retrying (408, 429, 500, 502, 503, 504)."""
        return self.status in (408, 429, 500, 502, 503, 504)


class ProtocolViolation(GatewayError):
    """The peer answered, but not with a valid JSON-RPC 2.0 reply for our request."""


class CircuitOpenError(GatewayError):
    """The circuit breaker is open: the call was not sent.

    Attributes:
        retry_in: Seconds until the breaker lets a trial call through (0 when half-open and
            its trial slots are taken).
    """

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"circuit open; next trial in {retry_in:.3f} s")
        self.retry_in = retry_in


class JsonRpcError(GatewayError):
    """A JSON-RPC error object.

    Attributes:
        code: The error code.
        message: The server's message.
        data: The server's ``data`` member (None when absent).
    """

    #: The code a subclass stands for (None for ranges and the base class).
    CODE: int | None = None

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The error object as the wire carries it."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out

    def _data_field(self, name: str) -> Any:
        return self.data.get(name) if isinstance(self.data, Mapping) else None


class ParseError(JsonRpcError):
    """-32700: the server could not parse the request (invalid UTF-8 or JSON)."""

    CODE = -32700


class InvalidRequest(JsonRpcError):
    """-32600: not a valid request object (or an empty batch, or too large)."""

    CODE = -32600


class MethodNotFound(JsonRpcError):
    """-32601: no such method."""

    CODE = -32601


class InvalidParams(JsonRpcError):
    """-32602: wrong parameter count, names or types."""

    CODE = -32602

    @property
    def expected(self) -> str | None:
        """What the parameter should have been (``data.expected``)."""
        v = self._data_field("expected")
        return None if v is None else str(v)

    @property
    def given(self) -> str | None:
        """What was given (``data.given``)."""
        v = self._data_field("given")
        return None if v is None else str(v)

    @property
    def where(self) -> str | None:
        """Where in the params (``data.where``, e.g. ``params.args[1].position.x``)."""
        v = self._data_field("where")
        return None if v is None else str(v)


class InternalError(JsonRpcError):
    """-32603: the server failed (a bug, or a result it could not serialise)."""

    CODE = -32603


class ServerError(JsonRpcError):
    """-32000 (a pool function raised) and the otherwise unassigned -32099 … -32005 codes."""

    CODE = -32000


class Timeout(JsonRpcError, TimeoutError):
    """-32001: the server timed out, or no reply arrived within the client's timeout.

    A client-side timeout carries ``data = {"client": True, "timeout": seconds}``.
    """

    CODE = -32001

    @property
    def client_side(self) -> bool:
        """True when the client gave up waiting (the server may still run the call)."""
        return bool(self._data_field("client"))


class RateLimited(JsonRpcError):
    """-32002: the client exceeded its rate; ``retry_after`` says when to come back."""

    CODE = -32002

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again (``data.retry_after``), if the server said."""
        v = self._data_field("retry_after")
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return max(0.0, float(v))
        return None


class Unauthorized(JsonRpcError):
    """-32003: missing or invalid bearer token."""

    CODE = -32003


class Forbidden(JsonRpcError):
    """-32004: the token's permission does not allow the method."""

    CODE = -32004


class EngineError(JsonRpcError):
    """-32100 … -32199: a commitdb engine error (unknown commit, missing blob, path ...)."""

    @property
    def type(self) -> str | None:
        """The engine error class name the server reported (``data.type``), if any."""
        v = self._data_field("type")
        return None if v is None else str(v)

    def as_engine_error(self) -> Exception:
        """The same error as the commitdb exception class (as the native protocol does).

        Returns:
            An instance of the matching :mod:`commitdb.errors` class (``UnknownCommitError``
            for -32131 ...), or an :class:`rpc.errors.RemoteError` for an unknown code.
        """
        from rpc.errors import error_from_wire

        return error_from_wire(self.code, self.message, self.data)


_BY_CODE: dict[int, type[JsonRpcError]] = {
    cls.CODE: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        ServerError,
        Timeout,
        RateLimited,
        Unauthorized,
        Forbidden,
    )
    if cls.CODE is not None
}


def error_from_json(error: Any) -> JsonRpcError:
    """The exception for a JSON-RPC error object.

    Args:
        error: The ``error`` member of a reply.

    Returns:
        An instance of the class mapping its code (see the module docstring); the base
        :class:`JsonRpcError` for a code outside every known range.

    Raises:
        ProtocolViolation: ``error`` is not an object with an integer code and a string message.
    """
    if not isinstance(error, Mapping):
        raise ProtocolViolation(f"an error must be an object, got {error!r}")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        raise ProtocolViolation(f"an error needs an integer code and a string message: {error!r}")
    data = error.get("data")
    cls = _BY_CODE.get(code)
    if cls is None:
        if -32199 <= code <= -32100:
            cls = EngineError
        elif -32099 <= code <= -32000:
            cls = ServerError
        else:
            cls = JsonRpcError
    return cls(code, message, data)


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may succeed: the failure says nothing about the request itself.

    Args:
        exc: What an attempt raised.

    Returns:
        True for transport errors (except HTTP statuses that are not transient), timeouts
        (client- or server-side, -32001) and rate limiting (-32002).
    """
    if isinstance(exc, HTTPStatusError):
        return exc.transient
    return isinstance(exc, TransportError | Timeout | RateLimited)


def counts_as_failure(exc: BaseException) -> bool:
    """Whether an error counts against the circuit breaker.

    Args:
        exc: What an attempt raised.

    Returns:
        True for transport errors, timeouts and internal errors (-32603): the server is down,
        overloaded or broken. Every other JSON-RPC error is a well-formed answer from a
        healthy server (rate limiting included: it is deliberate), so it counts as a success.
    """
    return isinstance(exc, TransportError | Timeout | InternalError | ProtocolViolation)


# --------------------------------------------------------------------------------------------
# Timeouts


class UseDefault(enum.Enum):
    """The type of :data:`USE_DEFAULT`: "use the client's default" for an optional argument."""

    TOKEN = 0


#: Pass (or leave) as ``timeout=`` to use the client's default timeout.
USE_DEFAULT = UseDefault.TOKEN


def resolve_timeout(timeout: float | None | UseDefault, default: float | None) -> float | None:
    """A call's timeout: its own, or the client's default when it says :data:`USE_DEFAULT`."""
    return default if isinstance(timeout, UseDefault) else timeout


async def with_timeout(seconds: float | None, fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()`` within a deadline.

    Args:
        seconds: The deadline in seconds; None waits forever.
        fn: The coroutine function to run.

    Returns:
        What ``fn()`` returned.

    Raises:
        Timeout: The deadline passed (``data = {"client": True, "timeout": seconds}``).
    """
    if seconds is None:
        return await fn()
    try:
        with anyio.fail_after(seconds):
            return await fn()
    except TimeoutError as exc:
        if isinstance(exc, Timeout):
            raise
        raise Timeout(
            -32001, f"no reply within {seconds:g} s", {"client": True, "timeout": seconds}
        ) from None


# --------------------------------------------------------------------------------------------
# Retry policy


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for idempotent calls.

    The delay before retry ``n`` (0-based) is ``base = min(max_backoff, backoff * multiplier**n)``
    scaled by a random factor in ``[1 - jitter, 1]``, and never less than the server's
    ``retry_after``.

    Attributes:
        retries: How many times a failed idempotent call is tried again (0 disables retries).
        backoff: The first delay in seconds.
        multiplier: The growth factor between delays.
        max_backoff: The largest computed delay (``retry_after`` may exceed it).
        jitter: The random fraction taken off each delay, in ``[0, 1]``.
        rng: The random source (seed one for reproducible delays).
    """

    retries: int = 3
    backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 5.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff and max_backoff must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")

    def base_delay(self, retry: int) -> float:
        """The delay before retry ``retry`` (0-based) without jitter."""
        return min(self.max_backoff, self.backoff * self.multiplier**retry)

    def delay(self, retry: int, error: BaseException | None = None) -> float:
        """The delay before retry ``retry`` (0-based) after ``error``.

        Args:
            retry: 0 for the first retry.
            error: The error that made the attempt fail; a :class:`RateLimited` error's
                ``retry_after`` is a lower bound.

        Returns:
            Seconds to wait.
        """
        base = self.base_delay(retry)
        d = base * (1.0 - self.jitter * self.rng.random())
        if isinstance(error, RateLimited) and error.retry_after is not None:
            d = max(d, error.retry_after)
        return d


# --------------------------------------------------------------------------------------------
# Circuit breaker


class BreakerState(enum.Enum):
    """The three states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Stops sending calls to a failing gateway, then probes it before resuming.

    * **closed**: calls go through; ``failure_threshold`` consecutive failures
      (:func:`counts_as_failure`) open the circuit.
    * **open**: calls fail at once with :class:`CircuitOpenError` until ``reset_timeout``
      seconds have passed since it opened, then the breaker is half-open.
    * **half-open**: up to ``half_open_max_calls`` trial calls go through at a time; one
      success closes the circuit, one failure opens it again for another ``reset_timeout``.

    Thread-safe; one breaker may be shared by several clients of the same gateway.

    Args:
        failure_threshold: Consecutive failures that open the circuit (>= 1).
        reset_timeout: Seconds the circuit stays open before a trial.
        half_open_max_calls: Concurrent trial calls allowed when half-open.
        clock: A monotonic clock in seconds (inject one in tests).
        on_change: Called with ``(old, new)`` on every state change.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        half_open_max_calls: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout < 0:
            raise ValueError(f"reset_timeout must be >= 0, got {reset_timeout}")
        if half_open_max_calls < 1:
            raise ValueError(f"half_open_max_calls must be >= 1, got {half_open_max_calls}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        self.transitions: list[tuple[BreakerState, BreakerState]] = []

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state.value}, {self._failures} consecutive failures>"

    def _set(self, new: BreakerState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self.transitions.append((old, new))
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        if new is not BreakerState.HALF_OPEN:
            self._trials = 0
        if self._on_change is not None:
            self._on_change(old, new)

    def _refresh(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._set(BreakerState.HALF_OPEN)

    @property
    def state(self) -> BreakerState:
        """The current state (an open circuit whose timeout passed reads as half-open)."""
        with self._lock:
            self._refresh()
            return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def before_call(self) -> None:
        """Claim the right to send a call (call exactly one ``record_*`` afterwards).

        Raises:
            CircuitOpenError: The circuit is open, or half-open with every trial slot taken.
        """
        with self._lock:
            self._refresh()
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.HALF_OPEN and self._trials < self.half_open_max_calls:
                self._trials += 1
                return
            if self._state is BreakerState.OPEN:
                retry_in = max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
            else:
                retry_in = 0.0
            raise CircuitOpenError(retry_in)

    def record_success(self) -> None:
        """The call got an answer: close the circuit and forget past failures."""
        with self._lock:
            self._failures = 0
            if self._state is BreakerState.HALF_OPEN:
                self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """The call failed (transport, timeout, internal error)."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN:
                self._set(BreakerState.OPEN)
            elif self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
                self._set(BreakerState.OPEN)

    def release(self) -> None:
        """The call ended without telling anything (cancelled): free its trial slot."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN and self._trials > 0:
                self._trials -= 1

    def reset(self) -> None:
        """Force the circuit closed."""
        with self._lock:
            self._failures = 0
            self._set(BreakerState.CLOSED)


# --------------------------------------------------------------------------------------------
# The call loop


async def call_with_resilience(
    attempt: Callable[[], Awaitable[T]],
    *,
    idempotent: bool,
    policy: RetryPolicy,
    breaker: CircuitBreaker | None,
    timeout: float | None,
    sleep: Sleep = anyio.sleep,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> T:
    """Run ``attempt`` with the breaker, a per-attempt timeout and retries.

    Args:
        attempt: Sends the request once and returns the result (raises on error).
        idempotent: Only idempotent calls are tried again.
        policy: The retry policy.
        breaker: The circuit breaker (None: no breaker).
        timeout: Per-attempt timeout in seconds (None: none).
        sleep: The sleep function (inject a recorder in tests).
        on_retry: Called with ``(retry number, delay, error)`` before each retry.

    Returns:
        What the first successful attempt returned.

    Raises:
        CircuitOpenError: The breaker refused an attempt (chained to the last error, if any).
        GatewayError: The last attempt's error.
    """
    attempts = 1 + (policy.retries if idempotent else 0)
    last: BaseException | None = None
    for n in range(attempts):
        if breaker is not None:
            try:
                breaker.before_call()
            except CircuitOpenError as exc:
                raise exc from last
        try:
            result = await with_timeout(timeout, attempt)
        except GatewayError as exc:
            if breaker is not None:
                if counts_as_failure(exc):
                    breaker.record_failure()
                else:
                    breaker.record_success()
            if n + 1 >= attempts or not is_transient(exc):
                raise
            last = exc
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        else:
            if breaker is not None:
                breaker.record_success()
            return result
        delay = policy.delay(n, last)
        if on_retry is not None:
            on_retry(n + 1, delay, last)
        await sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
