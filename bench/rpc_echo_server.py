"""Server processes of the RPC benchmarks (bench/bench_rpc.py starts and stops them).

Two modes::

    python -m bench.rpc_echo_server echo    [--uvloop]   # the floor: raw anyio + msgpack echo
    python -m bench.rpc_echo_server service [--uvloop]   # the benchmark Service

Each listens on a free port of 127.0.0.1, prints ``ready tcp://127.0.0.1:PORT`` on stdout and
runs until SIGTERM/SIGINT. With ``--profile FILE`` the process runs under cProfile and
writes its statistics to FILE when it stops.

The echo server speaks the same framing as the native protocol (4-byte big-endian length,
then a msgpack payload) and answers every frame with ``[1, id, value]`` built from the
request ``[0, id, target, method, args]`` (value = args[0]): the minimum any msgpack RPC
must do — decode, build an answer, encode — with no dispatch, no validation, no typed codec.

The service serves the Ge pools plus ``Bench`` (``add`` inline, ``add_threaded`` in a worker
thread) and ``BenchEdit`` (``bulk``: one get, then N sets of vertex attributes).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import signal
import struct
import sys
from typing import Any

import anyio
import anyio.abc
import msgpack

from commitdb.values import Key
from rpc.examples.graph import ge_definitions, make_ge_pools
from rpc.pools import AttachmentFunctionPool, FunctionPool
from rpc.server import RPCServer
from rpc.service import Service

__all__ = ("main", "make_service")

_LEN = struct.Struct(">I")


def make_service() -> Service:
    """The benchmark service: Ge pools, ``Bench`` and ``BenchEdit``."""
    defs = ge_definitions()
    tools, ge_pools = make_ge_pools(defs)
    topology = defs.check_attachment("Graph::Graph.topology")
    visual = defs.check_attachment("Graph::Vertex.visualAttributes")
    color = defs.check_type("Graph::Color")

    bench = FunctionPool("Bench")

    @bench.function(inline=True)
    def add(a: int, b: int) -> int:
        """a + b on the event loop."""
        return a + b

    @bench.function
    def add_threaded(a: int, b: int) -> int:
        """a + b in a worker thread."""
        return a + b

    edit = AttachmentFunctionPool("BenchEdit")

    @edit.function(parameters={"graphKey": topology.key_type})
    def bulk(state: Any, graphKey: Key, count: int) -> int:
        """One get, then `count` sets of vertex attributes; returns the vertices read."""
        found = state.get(topology, graphKey)
        document = visual.document_type(value=7, color=color(red=0.1, green=0.2, blue=0.3))
        for _ in range(count):
            state.set(visual, visual.create_key(), document)
        return 0 if found is None else len(found.vertexKeys)

    return Service(defs, [tools, bench], [*ge_pools, edit], name="bench-service")


async def _echo_connection(stream: anyio.abc.ByteStream) -> None:
    buf = bytearray()
    async with stream:
        while True:
            try:
                data = await stream.receive(262144)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            buf += data
            out: list[bytes] = []
            pos = 0
            n = len(buf)
            while n - pos >= 4:
                (size,) = _LEN.unpack_from(buf, pos)
                if n - pos - 4 < size:
                    break
                request = msgpack.unpackb(bytes(buf[pos + 4 : pos + 4 + size]))
                pos += 4 + size
                payload = msgpack.packb([1, request[1], request[4][0]])
                out.append(_LEN.pack(len(payload)) + payload)
            del buf[:pos]
            if out:
                await stream.send(b"".join(out))


async def _serve(mode: str) -> None:
    async with anyio.create_task_group() as tg:
        if mode == "echo":
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(listener.serve, _echo_connection)
            print(f"ready tcp://127.0.0.1:{port}", flush=True)
            await _wait_for_signal()
            tg.cancel_scope.cancel()
            return
        async with RPCServer(make_service()) as server:
            ep = await server.listen("tcp://127.0.0.1:0")
            print(f"ready {ep}", flush=True)
            await _wait_for_signal()


async def _wait_for_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            return


def main(argv: list[str] | None = None) -> None:
    """Run a benchmark server until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["echo", "service"])
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile statistics to FILE")
    args = parser.parse_args(argv)
    options = {"use_uvloop": args.uvloop}
    if args.profile:
        profiler = cProfile.Profile()
        try:
            profiler.runcall(
                anyio.run, functools.partial(_serve, args.mode), backend_options=options
            )
        finally:
            profiler.dump_stats(args.profile)
    else:
        anyio.run(_serve, args.mode, backend_options=options)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
