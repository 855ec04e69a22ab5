"""RPC benchmarks: client here, servers in separate processes, TCP loopback.

Run::

    .venv/bin/python -m bench.bench_rpc            # asyncio, then uvloop when installed
    .venv/bin/python -m bench.bench_rpc --loops asyncio --calls 20000

The module starts its servers (``bench/rpc_echo_server.py``: the raw echo floor and the
benchmark service), measures, and stops them. Both sides run on the same event loop kind.

Workloads:

1. the floor: a raw anyio + msgpack echo over the same framing — a sequential client (send a
   frame, read the answer) and 64 calls in flight on one connection (a minimal client that
   matches answers to waiting tasks by id);
2. a sequential ``Bench.add`` call (inline on the server) and ``Bench.add_threaded`` (a worker
   thread hop) through :class:`~rpc.service_remote.ServiceRemote`, p50;
3. calls/s with 64 tasks calling ``Bench.add`` concurrently on one connection;
4. ``BenchEdit.bulk``: an attachment call doing 1 get and 50 sets, p50 including applying the
   50 mutations to the client's CommitMutableState (LMDB in a temporary directory); the
   local cost of 50 ``set`` on a mutable state is measured too, as the engine's share.

Targets: (2) p50 <= 2x the raw echo p50; (3) >= 60,000 calls/s; (4) p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgpack

from commitdb.commit_database import CommitDatabase
from commitdb.mutable_state import CommitMutableState
from rpc.service_remote import ServiceRemote
from rpc.transports import parse_endpoint

__all__ = ("main",)

REPO = Path(__file__).resolve().parents[1]
_LEN = struct.Struct(">I")
INFLIGHT = 64
TARGET_RATIO = 2.0
TARGET_CALLS_PER_S = 60_000
TARGET_BULK_MS = 1.0


# --------------------------------------------------------------------------------------------
# Server processes


class ServerProcess:
    """A benchmark server child process (``python -m bench.rpc_echo_server MODE``)."""

    def __init__(self, mode: str, uvloop: bool) -> None:
        cmd = [sys.executable, "-m", "bench.rpc_echo_server", mode]
        if uvloop:
            cmd.append("--uvloop")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the {mode} server did not start: {line!r}")
        self.url = line.split()[1]

    def stop(self) -> None:
        """SIGTERM, wait (SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --------------------------------------------------------------------------------------------
# The floor: raw echo clients


def _request(call_id: int, value: Any) -> bytes:
    payload = msgpack.packb([0, call_id, "pool:Bench", "add", [value, 1]])
    return _LEN.pack(len(payload)) + payload


async def _read_frames(stream: anyio.abc.ByteStream, buf: bytearray) -> list[bytes]:
    frames: list[bytes] = []
    while not frames:
        buf += await stream.receive(262144)
        pos, n = 0, len(buf)
        while n - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if n - pos - 4 < size:
                break
            frames.append(bytes(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        del buf[:pos]
    return frames


async def raw_sequential(url: str, n: int) -> list[float]:
    """Latencies of send-one-frame, read-the-answer, decode."""
    ep = parse_endpoint(url)
    latencies: list[float] = []
    async with await anyio.connect_tcp(ep.host, ep.port) as stream:
        buf = bytearray()
        for i in range(n):
            t0 = time.perf_counter()
            await stream.send(_request(i, i))
            (frame,) = await _read_frames(stream, buf)
            assert msgpack.unpackb(frame)[1] == i
            latencies.append(time.perf_counter() - t0)
    return latencies


async def raw_inflight(url: str, total: int, inflight: int) -> float:
    """Calls/s with `inflight` tasks sharing one connection (answers matched by id)."""
    ep = parse_endpoint(url)
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[Any]] = {}
    ids = itertools.count(1)
    per_task = total // inflight
    async with await anyio.connect_tcp(ep.host, ep.port) as stream:

        async def reader() -> None:
            buf = bytearray()
            while True:
                for frame in await _read_frames(stream, buf):
                    answer = msgpack.unpackb(frame)
                    waiting.pop(answer[1]).set_result(answer[2])

        out: list[bytes] = []
        wake = asyncio.Event()

        async def writer() -> None:
            while True:
                await wake.wait()
                wake.clear()
                data, out[:] = b"".join(out), []
                await stream.send(data)

        async def worker() -> None:
            for _ in range(per_task):
                call_id = next(ids)
                fut = loop.create_future()
                waiting[call_id] = fut
                out.append(_request(call_id, call_id))
                wake.set()
                await fut

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            t0 = time.perf_counter()
            async with anyio.create_task_group() as workers:
                for _ in range(inflight):
                    workers.start_soon(worker)
            elapsed = time.perf_counter() - t0
            tg.cancel_scope.cancel()
    return per_task * inflight / elapsed


# --------------------------------------------------------------------------------------------
# RPC clients


async def sequential(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    """Latencies of `n` sequential calls."""
    latencies: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t0)
    return latencies


async def inflight_rate(call: Callable[[int], Awaitable[Any]], total: int, inflight: int) -> float:
    """Calls/s with `inflight` tasks calling concurrently."""
    per_task = total // inflight

    async def worker(w: int) -> None:
        for i in range(per_task):
            await call(i)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(inflight):
            tg.start_soon(worker, w)
    return per_task * inflight / (time.perf_counter() - t0)


async def bulk_latencies(remote: ServiceRemote, n: int, sets: int) -> tuple[list[float], int]:
    """Latencies of BenchEdit.bulk (1 get + `sets` sets) including applying the mutations."""
    bulk = remote.attachment_function_pool("BenchEdit").check("bulk")
    defs = remote.definitions()
    graph = defs.check_attachment("Graph::Graph.topology").create_key()
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        with CommitDatabase.create(Path(tmp) / "bench.cdb", defs, durable=False) as db:
            base = db.initial_state()
            applied = 0
            for _ in range(n):
                ms = CommitMutableState(base)
                t0 = time.perf_counter()
                await bulk(ms, graph, sets)
                latencies.append(time.perf_counter() - t0)
                applied = len(ms.mutations())
    return latencies, applied


def local_sets_latencies(defs: Any, n: int, sets: int) -> list[float]:
    """The engine's share: `sets` local sets on a fresh CommitMutableState."""
    visual = defs.check_attachment("Graph::Vertex.visualAttributes")
    color = defs.check_type("Graph::Color")
    document = visual.document_type(value=7, color=color(red=0.1, green=0.2, blue=0.3))
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        with CommitDatabase.create(Path(tmp) / "local.cdb", defs, durable=False) as db:
            base = db.initial_state()
            for _ in range(n):
                ms = CommitMutableState(base)
                keys = [visual.create_key() for _ in range(sets)]
                t0 = time.perf_counter()
                for key in keys:
                    ms.set(visual, key, document)
                latencies.append(time.perf_counter() - t0)
    return latencies


# --------------------------------------------------------------------------------------------
# Running


@dataclass
class Results:
    """Figures of one run (seconds, calls/s)."""

    loop: str
    raw_p50: float = 0.0
    raw_rate: float = 0.0
    inline_p50: float = 0.0
    threaded_p50: float = 0.0
    rate: float = 0.0
    bulk_p50: float = 0.0
    local_sets_p50: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


async def run_client(
    echo_url: str, service_url: str, calls: int, total: int, loop: str
) -> Results:
    r = Results(loop)
    warm = max(calls // 10, 200)
    await raw_sequential(echo_url, warm)
    raw = await raw_sequential(echo_url, calls)
    r.raw_p50, r.extra["raw_p90"] = p50(raw), p90(raw)
    await raw_inflight(echo_url, total // 4, INFLIGHT)
    r.raw_rate = statistics.median([await raw_inflight(echo_url, total, INFLIGHT) for _ in range(3)])

    async with ServiceRemote.connect(service_url) as remote:
        add = remote.function_pool("Bench").check("add")
        add_threaded = remote.function_pool("Bench").check("add_threaded")
        await sequential(lambda: add(1, 2), warm)
        inline = await sequential(lambda: add(1, 2), calls)
        r.inline_p50, r.extra["inline_p90"] = p50(inline), p90(inline)
        await sequential(lambda: add_threaded(1, 2), warm)
        threaded = await sequential(lambda: add_threaded(1, 2), calls)
        r.threaded_p50, r.extra["threaded_p90"] = p50(threaded), p90(threaded)
        await inflight_rate(lambda i: add(i, 1), total // 4, INFLIGHT)
        r.rate = statistics.median(
            [await inflight_rate(lambda i: add(i, 1), total, INFLIGHT) for _ in range(3)]
        )
        await bulk_latencies(remote, 50, 50)
        bulk, applied = await bulk_latencies(remote, max(calls // 10, 300), 50)
        assert applied == 50, applied
        r.bulk_p50, r.extra["bulk_p90"] = p50(bulk), p90(bulk)
        local = local_sets_latencies(remote.definitions(), max(calls // 10, 300), 50)
        r.local_sets_p50 = p50(local)
    return r


def run(loop: str, calls: int, total: int) -> Results:
    """Start the servers on `loop`, measure, stop them."""
    uvloop = loop == "uvloop"
    echo = ServerProcess("echo", uvloop)
    try:
        service = ServerProcess("service", uvloop)
        try:
            return anyio.run(
                run_client,
                echo.url,
                service.url,
                calls,
                total,
                loop,
                backend_options={"use_uvloop": uvloop},
            )
        finally:
            service.stop()
    finally:
        echo.stop()


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def table(results: list[Results]) -> str:
    """A markdown table of the figures with targets and verdicts."""
    rows = [
        "| loop | workload | figure | target | result |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        ratio_inline = r.inline_p50 / r.raw_p50
        ratio_threaded = r.threaded_p50 / r.raw_p50
        rows += [
            f"| {r.loop} | (1) raw echo, sequential | p50 {r.raw_p50 * 1e6:.0f} µs "
            f"(p90 {r.extra['raw_p90'] * 1e6:.0f} µs) | floor | — |",
            f"| {r.loop} | (1) raw echo, {INFLIGHT} in flight | {r.raw_rate:,.0f} calls/s "
            "| floor | — |",
            f"| {r.loop} | (2) Bench.add inline, sequential | p50 {r.inline_p50 * 1e6:.0f} µs "
            f"= {ratio_inline:.2f}x raw | ≤ {TARGET_RATIO:.0f}x raw | "
            f"{verdict(ratio_inline <= TARGET_RATIO)} |",
            f"| {r.loop} | (2) Bench.add_threaded (thread hop) | p50 "
            f"{r.threaded_p50 * 1e6:.0f} µs = {ratio_threaded:.2f}x raw | ≤ "
            f"{TARGET_RATIO:.0f}x raw | {verdict(ratio_threaded <= TARGET_RATIO)} |",
            f"| {r.loop} | (3) Bench.add, {INFLIGHT} in flight, 1 connection | "
            f"{r.rate:,.0f} calls/s ({r.rate / r.raw_rate:.0%} of raw) | ≥ "
            f"{TARGET_CALLS_PER_S:,} calls/s | {verdict(r.rate >= TARGET_CALLS_PER_S)} |",
            f"| {r.loop} | (4) attachment call, 1 get + 50 sets, applied | p50 "
            f"{r.bulk_p50 * 1e3:.2f} ms (p90 {r.extra['bulk_p90'] * 1e3:.2f} ms) | ≤ "
            f"{TARGET_BULK_MS:g} ms | {verdict(r.bulk_p50 * 1e3 <= TARGET_BULK_MS)} |",
            f"| {r.loop} | (4') engine share: 50 local sets | p50 "
            f"{r.local_sets_p50 * 1e3:.2f} ms | reference | — |",
        ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print the table."""
    parser = argparse.ArgumentParser(description="RPC benchmarks (servers in child processes)")
    parser.add_argument("--loops", default="asyncio,uvloop", help="asyncio, uvloop or both")
    parser.add_argument("--calls", type=int, default=5000, help="sequential calls per workload")
    parser.add_argument("--total", type=int, default=64 * 800, help="calls per rate run")
    args = parser.parse_args(argv)
    loops = [name for name in args.loops.split(",") if name]
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed: skipping it (pip install uvloop)", file=sys.stderr)
        loops.remove("uvloop")
    results = [run(loop, args.calls, args.total) for loop in loops]
    load = os.getloadavg()
    print(f"load average before/after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(table(results))


if __name__ == "__main__":
    main()
