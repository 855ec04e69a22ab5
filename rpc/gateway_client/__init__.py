"""Python clients of the JSON-RPC 2.0 gateway (``docs/jsonrpc-gateway.md``).

* :class:`GatewayClient` — HTTP (``POST /``), keep-alive; calls, notifications, batches;
  retries idempotent calls with exponential backoff and jitter; a circuit breaker.
* :class:`GatewayWebSocket` — WebSocket (``GET /ws``); calls, notifications, batches,
  notification handlers, commit/event subscriptions, lending a local state to ``apool.*``.
* :class:`BlockingGatewayClient`, :class:`BlockingGatewayWebSocket` — the same methods,
  blocking (an anyio blocking portal runs the async client).
* Errors: :class:`JsonRpcError` and one subclass per code family, :class:`TransportError`,
  :class:`CircuitOpenError` (see :mod:`rpc.gateway_client.resilience`).

Example::

    from rpc.gateway_client import GatewayClient

    async with GatewayClient("http://127.0.0.1:8080") as gw:
        assert await gw.call("pool.Tools.add", [1, 2]) == 3
"""

from __future__ import annotations

from rpc.gateway_client.blocking import (
    BlockingGatewayClient,
    BlockingGatewayWebSocket,
    BlockingSubscription,
)
from rpc.gateway_client.http import (
    Call,
    GatewayClient,
    Notification,
    Params,
    is_idempotent,
)
from rpc.gateway_client.resilience import (
    USE_DEFAULT,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    EngineError,
    Forbidden,
    GatewayError,
    HTTPStatusError,
    InternalError,
    InvalidParams,
    InvalidRequest,
    JsonRpcError,
    MethodNotFound,
    ParseError,
    ProtocolViolation,
    RateLimited,
    RetryPolicy,
    ServerError,
    Timeout,
    TransportError,
    Unauthorized,
    error_from_json,
)
from rpc.gateway_client.ws import (
    CommitEvent,
    GatewayWebSocket,
    ServiceEvent,
    StateLender,
    Subscription,
)

__all__ = (
    "USE_DEFAULT",
    "BlockingGatewayClient",
    "BlockingGatewayWebSocket",
    "BlockingSubscription",
    "BreakerState",
    "Call",
    "CircuitBreaker",
    "CircuitOpenError",
    "CommitEvent",
    "EngineError",
    "Forbidden",
    "GatewayClient",
    "GatewayError",
    "GatewayWebSocket",
    "HTTPStatusError",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "JsonRpcError",
    "MethodNotFound",
    "Notification",
    "Params",
    "ParseError",
    "ProtocolViolation",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceEvent",
    "StateLender",
    "Subscription",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "error_from_json",
    "is_idempotent",
)
