"""Gateway metrics in the Prometheus text exposition format (written by hand).

Exposed at ``GET /metrics``::

    commitdb_gateway_requests_total{method,transport}        counter
    commitdb_gateway_errors_total{method,code}               counter
    commitdb_gateway_request_duration_seconds{method}        histogram (p50/p95/p99 with
                                                             histogram_quantile)
    commitdb_gateway_open_connections{transport}             gauge (http: requests in flight,
                                                             ws: WebSocket sessions)
    commitdb_gateway_pending_requests                        gauge (calls being handled)
    commitdb_gateway_queue_depth{queue}                      gauge (queued notifications,
                                                             server requests awaiting replies)
    commitdb_gateway_rate_limited_total                      counter
    commitdb_gateway_missed_events_total                     counter
    commitdb_gateway_uptime_seconds                          gauge

Method labels are only the registered method names (``(unknown)`` for others, ``(invalid)``
for members that were not requests), so clients cannot grow the label set.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ("BUCKETS", "CountRequests", "Metrics")

#: Upper bounds (seconds) of the latency histogram buckets (+Inf is implicit).
BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

PREFIX = "commitdb_gateway_"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += seconds
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """Like PromQL ``histogram_quantile``: linear inside the bucket holding rank q."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        lower = 0.0
        for i, n in enumerate(self.counts):
            upper = BUCKETS[i] if i < len(BUCKETS) else math.inf
            if seen + n >= rank and n:
                if math.isinf(upper):
                    return lower
                return lower + (upper - lower) * (rank - seen) / n
            seen += n
            lower = upper if not math.isinf(upper) else lower
        return lower


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Metrics:
    """Counters and histograms of the calls, plus the gauges the gateway reports."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.http_in_flight = 0
        self.ws_sessions = 0
        self.pending = 0
        self.missed_events = 0
        self.rate_limited = 0

    def uptime(self) -> float:
        """Seconds since the gateway started."""
        return time.monotonic() - self.started

    def observe(self, method: str, transport: str, seconds: float, code: int | None) -> None:
        """Count one call (``code`` None for a success)."""
        with self._lock:
            self.requests[(method, transport)] += 1
            self.latency[method].observe(seconds)
            if code is not None:
                self.errors[(method, code)] += 1

    def snapshot(self) -> dict[str, Any]:
        """Counters for ``admin.stats``: per-method calls, errors and latency quantiles."""
        with self._lock:
            methods: dict[str, dict[str, Any]] = {}
            for (method, _), n in self.requests.items():
                entry = methods.setdefault(method, {"calls": 0, "errors": 0})
                entry["calls"] += n
            for (method, _), n in self.errors.items():
                methods.setdefault(method, {"calls": 0, "errors": 0})["errors"] += n
            for method, h in self.latency.items():
                for q in (0.5, 0.95, 0.99):
                    value = h.quantile(q)
                    key = f"p{round(q * 100)}_ms"
                    methods[method][key] = None if value is None else round(value * 1000, 3)
            by_code: dict[str, int] = defaultdict(int)
            for (_, code), n in self.errors.items():
                by_code[str(code)] += n
        return {
            "uptime_seconds": round(self.uptime(), 3),
            "methods": dict(sorted(methods.items())),
            "errors_by_code": dict(sorted(by_code.items())),
            "connections": {"http": self.http_in_flight, "ws": self.ws_sessions},
            "pending_requests": self.pending,
            "rate_limited": self.rate_limited,
            "missed_events": self.missed_events,
        }

    def render(self, queues: dict[str, int]) -> str:
        """The exposition text.

        Args:
            queues: Current queue depths by queue name.
        """
        out: list[str] = []
        with self._lock:
            out += _family(
                "requests_total",
                "counter",
                "JSON-RPC calls handled, by method and transport.",
                (({"method": m, "transport": t}, n) for (m, t), n in sorted(self.requests.items())),
            )
            out += _family(
                "errors_total",
                "counter",
                "JSON-RPC calls answered with an error, by method and code.",
                (({"method": m, "code": str(c)}, n) for (m, c), n in sorted(self.errors.items())),
            )
            out += self._histograms()
        out += _family(
            "open_connections",
            "gauge",
            "Open connections (http: requests in flight; ws: WebSocket sessions).",
            [({"transport": "http"}, self.http_in_flight), ({"transport": "ws"}, self.ws_sessions)],
        )
        out += _family("pending_requests", "gauge", "Calls being handled.", [({}, self.pending)])
        out += _family(
            "queue_depth",
            "gauge",
            "Queued items (notifications waiting for a client, server requests awaiting replies).",
            (({"queue": q}, n) for q, n in sorted(queues.items())),
        )
        out += _family(
            "rate_limited_total",
            "counter",
            "Calls refused by the rate limit.",
            [({}, self.rate_limited)],
        )
        out += _family(
            "missed_events_total",
            "counter",
            "Notifications dropped because a client's queue was full.",
            [({}, self.missed_events)],
        )
        out += _family("uptime_seconds", "gauge", "Seconds since start.", [({}, self.uptime())])
        return "\n".join(out) + "\n"

    def _histograms(self) -> list[str]:
        name = f"{PREFIX}request_duration_seconds"
        lines = [
            f"# HELP {name} Time to handle a JSON-RPC call, by method.",
            f"# TYPE {name} histogram",
        ]
        for method, h in sorted(self.latency.items()):
            cumulative = 0
            for i, n in enumerate(h.counts):
                cumulative += n
                bound = _number(BUCKETS[i]) if i < len(BUCKETS) else "+Inf"
                labels = _labels({"method": method, "le": bound})
                lines.append(f"{name}_bucket{labels} {cumulative}")
            lines.append(f"{name}_sum{_labels({'method': method})} {_number(h.total)}")
            lines.append(f"{name}_count{_labels({'method': method})} {h.count}")
        return lines


def _family(
    name: str, kind: str, help: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    full = PREFIX + name
    lines = [f"# HELP {full} {help}", f"# TYPE {full} {kind}"]
    lines += [f"{full}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return lines


class CountRequests:
    """ASGI middleware counting the HTTP requests in flight
    (``open_connections{transport="http"}``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.metrics.http_in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.metrics.http_in_flight -= 1
