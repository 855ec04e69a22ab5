"""JSON-RPC gateway benchmarks: latency, throughput and batches of ``pool.Tools.add``.

Run (the gateway starts in a separate process unless ``--url`` names a running one)::

    .venv/bin/python -m bench.bench_gateway [--url http://127.0.0.1:PORT] [--calls 3000]
        [--json results.json] [--markdown]

Figures (each after a warm-up; latencies are per call, measured with ``perf_counter_ns``):

* **ws p50** — sequential calls over one WebSocket, with the ``GatewayWebSocket`` client and
  with a bare ``websockets`` connection (``raw``: no client-side bookkeeping).
* **http p50** — sequential calls over one keep-alive connection, with ``GatewayClient``
  (its keep-alive pool, :mod:`rpc.gateway_client.keepalive`) and with a bare HTTP/1.1 client
  over a socket (``raw``).
* **http throughput** — 16 concurrent keep-alive clients (bare HTTP/1.1, in one process
  separate from the gateway), a fixed number of calls each; calls per second of wall time.
* **batch of 100 p50** — one HTTP request carrying 100 calls (``GatewayClient.batch`` and raw).

Targets: ws p50 ≤ 300 µs, http p50 ≤ 1 ms, ≥ 3,000 calls/s with 16 clients, batch ≤ 10 ms.
The machine load (``os.getloadavg``) is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import connect

from rpc.gateway_client import Call, GatewayClient, GatewayWebSocket

__all__ = ("Figure", "main", "run")

REPO = Path(__file__).resolve().parents[1]
ADD = "pool.Tools.add"


@dataclass
class Figure:
    """One measured figure and its target."""

    name: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = False
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None without a target)."""
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


#: The gateway process whose CPU time is sampled (set by ``main`` when it starts one).
SERVER_PID: int | None = None


def server_cpu() -> float | None:
    """CPU seconds (user + system) the gateway process has used, if known (Linux /proc)."""
    if SERVER_PID is None:
        return None
    try:
        fields = Path(f"/proc/{SERVER_PID}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Samples:
    """Per-call wall times, and the CPU both processes spent during the measured calls."""

    wall_ns: list[int]
    server_cpu_s: float | None
    client_cpu_s: float


def _summary(samples: Samples, calls_per_sample: int = 1) -> dict[str, float]:
    """p50/p90/p99/mean in microseconds, plus CPU microseconds per call (server, client)."""
    us = sorted(s / 1000 for s in samples.wall_ns)
    n = len(us)
    out = {
        "p50_us": us[n // 2],
        "p90_us": us[int(n * 0.9)],
        "p99_us": us[min(n - 1, int(n * 0.99))],
        "mean_us": statistics.fmean(us),
        "n": float(n),
        "client_cpu_us_per_call": samples.client_cpu_s * 1e6 / (n * calls_per_sample),
    }
    if samples.server_cpu_s is not None:
        out["server_cpu_us_per_call"] = samples.server_cpu_s * 1e6 / (n * calls_per_sample)
    return out


async def _timed(fn: Callable[[], Awaitable[Any]], warmup: int, calls: int) -> Samples:
    for _ in range(warmup):
        await fn()
    samples = []
    cpu0, client0 = server_cpu(), time.process_time()
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        await fn()
        samples.append(time.perf_counter_ns() - t0)
    cpu1, client1 = server_cpu(), time.process_time()
    server = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return Samples(samples, server, client1 - client0)


# --------------------------------------------------------------------------------------------
# A bare HTTP/1.1 keep-alive client (to separate the gateway's cost from the client's)


class RawHTTP:
    """One keep-alive connection sending ``POST /`` with a JSON body."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.stream: anyio.abc.SocketStream | None = None
        self.buffer = b""

    async def connect(self) -> None:
        self.stream = await anyio.connect_tcp(self.host, self.port)
        self.stream.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()

    async def post(self, body: bytes) -> bytes:
        assert self.stream is not None
        head = (
            f"POST / HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        await self.stream.send(head + body)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self.stream.receive()
        header, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += await self.stream.receive()
        self.buffer = rest[length:]
        return rest[:length]


def _add_request(i: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": ADD, "params": [i, 1], "id": i}).encode()


# --------------------------------------------------------------------------------------------
# Measurements


async def ws_latency(url: str, warmup: int, calls: int) -> tuple[Figure, Figure]:
    """Sequential calls over one WebSocket: the client, then a bare connection."""
    async with GatewayWebSocket(url) as ws:

        async def one() -> None:
            await ws.call(ADD, [1, 2])

        client = _summary(await _timed(one, warmup, calls))
    ws_url = url.replace("http://", "ws://").rstrip("/") + "/ws"
    async with connect(ws_url, compression=None) as conn:
        counter = iter(range(10**9))

        async def raw() -> None:
            await conn.send(
                json.dumps({"jsonrpc": "2.0", "method": ADD, "params": [1, 2], "id": next(counter)})
            )
            await conn.recv()

        bare = _summary(await _timed(raw, warmup, calls))
    return (
        Figure("ws p50 (GatewayWebSocket)", client["p50_us"], "µs", 300.0, detail=client),
        Figure("ws p50 (raw websockets)", bare["p50_us"], "µs", 300.0, detail=bare),
    )


async def http_latency(url: str, warmup: int, calls: int) -> tuple[Figure, Figure]:
    """Sequential calls over one keep-alive connection: GatewayClient, then bare HTTP/1.1."""
    async with GatewayClient(url) as gw:

        async def one() -> None:
            await gw.call(ADD, [1, 2])

        client = _summary(await _timed(one, warmup, calls))
    host, port = _host_port(url)
    raw = RawHTTP(host, port)
    await raw.connect()
    try:
        counter = iter(range(10**9))

        async def bare_call() -> None:
            await raw.post(_add_request(next(counter)))

        bare = _summary(await _timed(bare_call, warmup, calls))
    finally:
        await raw.aclose()
    return (
        Figure(
            "http keep-alive p50 (GatewayClient)",
            client["p50_us"],
            "µs",
            1000.0,
            detail=client,
        ),
        Figure("http keep-alive p50 (raw HTTP/1.1)", bare["p50_us"], "µs", 1000.0, detail=bare),
    )


async def http_throughput(url: str, clients: int, calls_each: int) -> Figure:
    """`clients` concurrent bare keep-alive clients, `calls_each` sequential calls each."""
    host, port = _host_port(url)
    conns = [RawHTTP(host, port) for _ in range(clients)]
    for c in conns:
        await c.connect()
    try:
        for c in conns:  # warm-up
            await c.post(_add_request(0))

        async def worker(c: RawHTTP) -> None:
            for i in range(calls_each):
                await c.post(_add_request(i))

        cpu0, client0 = server_cpu(), time.process_time()
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for c in conns:
                tg.start_soon(worker, c)
        elapsed = time.perf_counter() - t0
        cpu1, client1 = server_cpu(), time.process_time()
    finally:
        for c in conns:
            await c.aclose()
    total = clients * calls_each
    detail = {
        "calls": float(total),
        "seconds": elapsed,
        "client_cpu_us_per_call": (client1 - client0) * 1e6 / total,
    }
    if cpu0 is not None and cpu1 is not None:
        detail["server_cpu_us_per_call"] = (cpu1 - cpu0) * 1e6 / total
    return Figure(
        f"http throughput, {clients} concurrent clients",
        total / elapsed,
        "calls/s",
        3000.0,
        higher_is_better=True,
        detail=detail,
    )


async def batch_latency(
    url: str, warmup: int, rounds: int, size: int = 100
) -> tuple[Figure, Figure]:
    """One request carrying `size` calls: GatewayClient.batch, then bare HTTP/1.1."""
    async with GatewayClient(url) as gw:
        items = [Call(ADD, [i, 1]) for i in range(size)]

        async def one() -> None:
            out = await gw.batch(items)
            assert len(out) == size

        client = _summary(await _timed(one, warmup, rounds), size)
    host, port = _host_port(url)
    raw = RawHTTP(host, port)
    await raw.connect()
    try:
        body = json.dumps(
            [{"jsonrpc": "2.0", "method": ADD, "params": [i, 1], "id": i} for i in range(size)]
        ).encode()

        async def bare_call() -> None:
            await raw.post(body)

        bare = _summary(await _timed(bare_call, warmup, rounds), size)
    finally:
        await raw.aclose()
    to_ms = {_ms(k): (v / 1000 if k.endswith("_us") else v) for k, v in client.items()}
    to_ms_raw = {_ms(k): (v / 1000 if k.endswith("_us") else v) for k, v in bare.items()}
    return (
        Figure(f"batch of {size} p50 (GatewayClient)", to_ms["p50_ms"], "ms", 10.0, detail=to_ms),
        Figure(
            f"batch of {size} p50 (raw HTTP/1.1)", to_ms_raw["p50_ms"], "ms", 10.0, detail=to_ms_raw
        ),
    )


def _ms(key: str) -> str:
    return key[:-3] + "_ms" if key.endswith("_us") else key


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or 80


# --------------------------------------------------------------------------------------------
# The gateway process


def start_gateway(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``commitdb gateway`` (Ge service, one database) on a free port."""
    from commitdb import CommitDatabase
    from rpc.examples.graph import ge_definitions

    db = CommitDatabase.create(tmp / "bench.cdb", ge_definitions())
    db.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "rpc", "gateway", "--host", "127.0.0.1", "--port", str(port),
        "--database", f"main={tmp / 'bench.cdb'}", "--service", "rpc.examples.graph:make_service",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=2) as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"the gateway exited with {proc.returncode}: {' '.join(cmd)}")
            try:
                if http.get(url + "/health").status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the gateway did not start within 60 s")


async def run(url: str, calls: int) -> list[Figure]:
    """All figures against a running gateway."""
    figures: list[Figure] = []
    figures += await ws_latency(url, warmup=300, calls=calls)
    figures += await http_latency(url, warmup=300, calls=calls)
    figures.append(await http_throughput(url, clients=16, calls_each=max(100, calls // 4)))
    figures += await batch_latency(url, warmup=20, rounds=max(50, calls // 20))
    return figures


def markdown(figures: list[Figure], load: tuple[float, float], command: str) -> str:
    """The results table."""
    lines = [
        "| figure | value | target | met | p90 / p99 | CPU µs per call: gateway / client |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        target = (
            "—"
            if f.target is None
            else f"{'≥' if f.higher_is_better else '≤'} {f.target:g} {f.unit}"
        )
        met = {True: "pass", False: "**miss**", None: "—"}[f.met]
        tail = ""
        if "p90_us" in f.detail:
            tail = f"{f.detail['p90_us']:.0f} / {f.detail['p99_us']:.0f} {f.unit}"
        elif "p90_ms" in f.detail:
            tail = f"{f.detail['p90_ms']:.1f} / {f.detail['p99_ms']:.1f} {f.unit}"
        server = f.detail.get("server_cpu_us_per_call")
        cpu = (
            f"{'?' if server is None else f'{server:.0f}'} / "
            f"{f.detail.get('client_cpu_us_per_call', 0):.0f}"
        )
        lines.append(f"| {f.name} | {f.value:,.1f} {f.unit} | {target} | {met} | {tail} | {cpu} |")
    lines += [
        "",
        f"Load average before/after: {load[0]:.2f} / {load[1]:.2f}. Command: `{command}`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="JSON-RPC gateway benchmarks")
    parser.add_argument("--url", help="a running gateway (default: start one)")
    parser.add_argument("--calls", type=int, default=3000, help="calls per latency figure")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    proc = None
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        global SERVER_PID
        url = args.url
        if url is None:
            proc, url = start_gateway(Path(tmp))
            SERVER_PID = proc.pid
        try:
            figures = anyio.run(run, url, args.calls)
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    load = (load_before, os.getloadavg()[0])
    command = ".venv/bin/python -m bench.bench_gateway" + (
        f" --calls {args.calls}" if args.calls != 3000 else ""
    )
    print(markdown(figures, load, command))
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"load": load, "figures": [asdict(f) | {"met": f.met} for f in figures]}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
