"""What ``commitdb gateway`` can be told: :class:`GatewayConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from rpc.service import Service

__all__ = ("GatewayConfig",)


@dataclass
class GatewayConfig:
    """Everything ``commitdb gateway`` can be told.

    Attributes:
        databases: Served commit databases, name -> path (created when missing).
        data_dir: Where the embedded default database lives when ``databases`` is empty.
        service: The in-process Service (default: the Ge example) unless ``upstream``.
        upstream: URL of a service over the native protocol (``tcp://host:port``).
        upstream_token: Credentials presented to the upstream service.
        tokens: ``TOKEN:PERMISSION`` specs; none means no authentication.
        rate: Calls per second per client (None: unlimited); ``burst``: bucket size.
        max_request_bytes: The largest request accepted.
        timeout: Seconds a call may take.
        queue_size: Notifications queued per subscription before events are dropped.
        max_in_flight: Calls a WebSocket session may have running at once.
        poll_interval: Seconds between checks of the databases for new commits.
        protect_metrics: Require a valid token for /health and /metrics.
        debug: Show internal error texts in error objects.
        worker_threads: Worker threads for the pool functions.
    """

    databases: dict[str, str] = field(default_factory=dict)
    data_dir: str = "."
    service: Service | None = None
    upstream: str | None = None
    upstream_token: str | None = None
    tokens: tuple[str, ...] = ()
    rate: float | None = None
    burst: int | None = None
    max_request_bytes: int = 1 << 20
    timeout: float = 30.0
    queue_size: int = 256
    max_in_flight: int = 128
    poll_interval: float = 0.05
    protect_metrics: bool = False
    debug: bool = False
    worker_threads: int = 32
