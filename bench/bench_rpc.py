"""RPC benchmarks: client here, servers in separate processes, TCP loopback.

Run::

    .venv/bin/python -m bench.bench_rpc            # asyncio, then uvloop when installed
    .venv/bin/python -m bench.bench_rpc --loops asyncio --calls 20000
    .venv/bin/python -m bench.bench_rpc --loops uvloop --workloads raw,inline,rate
    .venv/bin/python -m bench.bench_rpc --workloads rate --profile /tmp/prof   # cProfile both sides

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
import cProfile
import functools
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

    def __init__(self, mode: str, uvloop: bool, profile: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "bench.rpc_echo_server", mode]
        if uvloop:
            cmd.append("--uvloop")
        if profile is not None:
            cmd += ["--profile", str(profile)]
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


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CPU:
    """CPU per call of this process and of a server process over a measured block."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.client = 0.0
        self.server = 0.0

    def __enter__(self) -> CPU:
        self._c0 = time.process_time()
        self._s0 = process_cpu(self.server_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client = time.process_time() - self._c0
        self.server = process_cpu(self.server_pid) - self._s0

    def per_call(self, calls: int) -> str:
        """``client µs + server µs`` of CPU per call."""
        return f"{self.client / calls * 1e6:.0f}+{self.server / calls * 1e6:.0f}"


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
    visual = defs.check_attachment("Graph::Vertex.visualAttributes")
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        with CommitDatabase.create(Path(tmp) / "bench.cdb", defs, durable=False) as db:
            base = db.initial_state()
            ms = CommitMutableState(base)
            for _ in range(n):
                ms = CommitMutableState(base)
                t0 = time.perf_counter()
                await bulk(ms, graph, sets)
                latencies.append(time.perf_counter() - t0)
            applied = len(ms.keys(visual))  # checked once: not part of the CPU per call
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
class Figure:
    """One workload's figure: latencies (p50, p90) or a rate, and CPU per call."""

    p50: float = 0.0
    p90: float = 0.0
    rate: float = 0.0
    cpu: str = ""


@dataclass
class Results:
    """Figures of one run, by workload."""

    loop: str
    figures: dict[str, Figure] = field(default_factory=dict)


def latency_figure(values: list[float], cpu: CPU) -> Figure:
    return Figure(
        p50=statistics.median(values),
        p90=statistics.quantiles(values, n=10)[-1],
        cpu=cpu.per_call(len(values)),
    )


WORKLOADS = ("raw", "inline", "threaded", "rate", "bulk")


async def run_client(
    echo: tuple[str, int],
    service: tuple[str, int],
    calls: int,
    total: int,
    loop: str,
    workloads: frozenset[str] = frozenset(WORKLOADS),
) -> Results:
    r = Results(loop)
    f = r.figures
    (echo_url, echo_pid), (service_url, service_pid) = echo, service
    warm = max(calls // 10, 200)
    if "raw" in workloads:
        await raw_sequential(echo_url, warm)
        with CPU(echo_pid) as cpu:
            raw = await raw_sequential(echo_url, calls)
        f["raw"] = latency_figure(raw, cpu)
        await raw_inflight(echo_url, total // 4, INFLIGHT)
        with CPU(echo_pid) as cpu:
            rates = [await raw_inflight(echo_url, total, INFLIGHT) for _ in range(3)]
        f["raw_rate"] = Figure(rate=statistics.median(rates), cpu=cpu.per_call(3 * total))

    async with ServiceRemote.connect(service_url) as remote:
        add = remote.function_pool("Bench").check("add")
        add_threaded = remote.function_pool("Bench").check("add_threaded")
        if "inline" in workloads:
            await sequential(lambda: add(1, 2), warm)
            with CPU(service_pid) as cpu:
                inline = await sequential(lambda: add(1, 2), calls)
            f["inline"] = latency_figure(inline, cpu)
        if "threaded" in workloads:
            await sequential(lambda: add_threaded(1, 2), warm)
            with CPU(service_pid) as cpu:
                threaded = await sequential(lambda: add_threaded(1, 2), calls)
            f["threaded"] = latency_figure(threaded, cpu)
        if "rate" in workloads:
            await inflight_rate(lambda i: add(i, 1), total // 4, INFLIGHT)
            with CPU(service_pid) as cpu:
                rates = [
                    await inflight_rate(lambda i: add(i, 1), total, INFLIGHT) for _ in range(3)
                ]
            f["rate"] = Figure(rate=statistics.median(rates), cpu=cpu.per_call(3 * total))
        if "bulk" in workloads:
            rounds = max(calls // 10, 300)
            await bulk_latencies(remote, 50, 50)
            with CPU(service_pid) as cpu:
                bulk, applied = await bulk_latencies(remote, rounds, 50)
            assert applied == 50, applied
            f["bulk"] = latency_figure(bulk, cpu)
            with CPU(service_pid) as cpu:
                local = local_sets_latencies(remote.definitions(), rounds, 50)
            f["local_sets"] = latency_figure(local, cpu)
    return r


def run(
    loop: str,
    calls: int,
    total: int,
    workloads: frozenset[str] = frozenset(WORKLOADS),
    profile: Path | None = None,
) -> Results:
    """Start the servers on `loop`, measure, stop them (profiles both sides into `profile`)."""
    uvloop = loop == "uvloop"

    def server(mode: str) -> ServerProcess:
        out = profile / f"server-{mode}-{loop}.prof" if profile is not None else None
        return ServerProcess(mode, uvloop, out)

    echo = server("echo")
    try:
        service = server("service")
        try:
            main = functools.partial(
                run_client,
                (echo.url, echo.proc.pid),
                (service.url, service.proc.pid),
                calls,
                total,
                loop,
                workloads,
            )
            options = {"use_uvloop": uvloop}
            if profile is None:
                return anyio.run(main, backend_options=options)
            profiler = cProfile.Profile()
            try:
                results: Results = profiler.runcall(anyio.run, main, backend_options=options)
            finally:
                profiler.dump_stats(profile / f"client-{loop}.prof")
            return results
        finally:
            service.stop()
    finally:
        echo.stop()


def verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def _ratio(fig: Figure, raw: float) -> str:
    """The cells after a sequential p50: ratio to the raw echo, CPU, target, verdict."""
    if not raw:
        return f" | {fig.cpu} | |"
    x = fig.p50 / raw
    return f" = {x:.2f}x raw | {fig.cpu} | ≤ {TARGET_RATIO:g}x raw | {verdict(x <= TARGET_RATIO)}"


def table(results: list[Results]) -> str:
    """A markdown table: figures, CPU per call (client+server µs), targets and verdicts."""
    rows = [
        "| loop | workload | figure | CPU µs/call (client+server) | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        f = r.figures
        raw = f["raw"].p50 if "raw" in f else 0.0

        if "raw" in f:
            rows += [
                f"| {r.loop} | (1) raw echo, sequential | p50 {us(raw)} (p90 {us(f['raw'].p90)}) "
                f"| {f['raw'].cpu} | floor | |",
                f"| {r.loop} | (1) raw echo, {INFLIGHT} in flight | "
                f"{f['raw_rate'].rate:,.0f} calls/s | {f['raw_rate'].cpu} | floor | |",
            ]
        for name, label in (
            ("inline", "Bench.add inline"),
            ("threaded", "Bench.add_threaded (thread hop)"),
        ):
            if name in f:
                rows.append(
                    f"| {r.loop} | (2) {label}, sequential | p50 {us(f[name].p50)}"
                    + _ratio(f[name], raw)
                    + " |"
                )
        if "rate" in f:
            rate = f["rate"].rate
            rows.append(
                f"| {r.loop} | (3) Bench.add, {INFLIGHT} in flight on 1 connection | "
                f"{rate:,.0f} calls/s | {f['rate'].cpu} | ≥ {TARGET_CALLS_PER_S:,} calls/s "
                f"| {verdict(rate >= TARGET_CALLS_PER_S)} |"
            )
        if "bulk" in f:
            bulk_ms = f["bulk"].p50 * 1e3
            rows += [
                f"| {r.loop} | (4) attachment call: 1 get + 50 sets, applied | p50 "
                f"{bulk_ms:.2f} ms (p90 {f['bulk'].p90 * 1e3:.2f} ms) | {f['bulk'].cpu} | ≤ "
                f"{TARGET_BULK_MS:g} ms | {verdict(bulk_ms <= TARGET_BULK_MS)} |",
                f"| {r.loop} | (4') its engine share: 50 local `set` | p50 "
                f"{f['local_sets'].p50 * 1e3:.2f} ms | {f['local_sets'].cpu.split('+')[0]}+0 "
                "| reference | |",
            ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print the table."""
    parser = argparse.ArgumentParser(description="RPC benchmarks (servers in child processes)")
    parser.add_argument("--loops", default="asyncio,uvloop", help="asyncio, uvloop or both")
    parser.add_argument("--calls", type=int, default=5000, help="sequential calls per workload")
    parser.add_argument("--total", type=int, default=64 * 800, help="calls per rate run")
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"a subset of {','.join(WORKLOADS)} (ratios need raw)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="run client and servers under cProfile; write DIR/client-LOOP.prof and "
        "DIR/server-MODE-LOOP.prof",
    )
    args = parser.parse_args(argv)
    workloads = frozenset(w for w in args.workloads.split(",") if w)
    unknown = workloads - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    loops = [name for name in args.loops.split(",") if name]
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed: skipping it (pip install uvloop)", file=sys.stderr)
        loops.remove("uvloop")
    before = os.getloadavg()
    results = [run(loop, args.calls, args.total, workloads, args.profile) for loop in loops]
    after = os.getloadavg()
    print(
        f"load average (1 min) before {before[0]:.2f}, after {after[0]:.2f}; {os.cpu_count()} CPUs"
    )
    print(table(results))


if __name__ == "__main__":
    main()
