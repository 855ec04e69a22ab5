"""Faults: garbage on the wire, clients that vanish mid-call, a server process SIGKILLed
mid-call, and a hundred clients at once. The server keeps serving through all of it."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgpack
import pytest

import tests.rpc.service_factory as factory
from commitdb.commit_database import CommitDatabase
from commitdb.mutable_state import CommitMutableState
from rpc.errors import ConnectionClosedError
from rpc.framing import FrameParser, encode_frame
from rpc.packets import encode_hello
from rpc.server import RPCServer
from rpc.service import Service
from rpc.service_remote import ServiceRemote
from rpc.transports import parse_endpoint
from tests.rpc.conftest import ServerProcess, Serving

pytestmark = pytest.mark.anyio

FACTORY = "tests.rpc.service_factory:make_service"


@pytest.fixture(scope="module")
def service() -> Service:
    return factory.make_service()


class RawClient:
    """A raw TCP client: sends bytes, reads frames."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.parser = FrameParser()
        self.frames: list[bytes] = []

    @classmethod
    async def connect(cls, url: str, *, hello: bool = True) -> RawClient:
        ep = parse_endpoint(url)
        client = cls(await anyio.connect_tcp(ep.host, ep.port))
        if hello:
            await client.stream.send(encode_frame(encode_hello(1, {"client": "raw"})))
            welcome = await client.packet()
            assert welcome[0] == 6
        return client

    async def packet(self) -> list[Any]:
        with anyio.fail_after(30):
            while not self.frames:
                self.frames += self.parser.feed(await self.stream.receive())
        return list(msgpack.unpackb(self.frames.pop(0)))

    async def closed(self) -> bool:
        """True once the server closed the connection."""
        with anyio.fail_after(30):
            try:
                while True:
                    self.frames += self.parser.feed(await self.stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return True


async def still_serving(url: str) -> None:
    async with ServiceRemote.connect(url) as remote:
        assert await remote.pools.Tools.add(1, 2) == 3


def frame(value: Any) -> bytes:
    return encode_frame(bytes(msgpack.packb(value, use_bin_type=True)))


# --------------------------------------------------------------------------------------------
# Garbage on the wire


async def test_malformed_and_unknown_packets_get_errors_and_the_connection_goes_on(
    serving: Serving, service: Service
) -> None:
    async with serving(service) as (_, urls):
        client = await RawClient.connect(urls[0])
        async with client.stream:
            for garbage in (
                encode_frame(b"\xc1\xc1"),
                frame({"not": "a packet"}),
                frame([42, "unknown kind"]),
                frame([0, 9, "pool:Tools"]),
            ):
                await client.stream.send(garbage)
                error = await client.packet()
                assert error[0] == 2 and error[2] == -32600
            await client.stream.send(frame([0, 10, "pool:Tools", "add", [1, 2]]))
            assert await client.packet() == [1, 10, 3]
        await still_serving(urls[0])


async def test_an_oversized_frame_closes_only_that_connection(
    serving: Serving, service: Service
) -> None:
    async with serving(service, max_frame_size=4096) as (server, urls):
        bystander = await RawClient.connect(urls[0])
        client = await RawClient.connect(urls[0])
        async with client.stream, bystander.stream:
            await client.stream.send(struct.pack(">I", 1 << 30) + b"x" * 100)
            error = await client.packet()
            assert error[:3] == [2, 0, -32600] and "exceeds the maximum of 4096" in error[3]
            assert await client.closed()
            await bystander.stream.send(frame([0, 1, "service", "ping", []]))
            assert await bystander.packet() == [1, 1, "pong"]
        await still_serving(urls[0])


async def test_an_oversized_frame_right_behind_the_hello(
    serving: Serving, service: Service
) -> None:
    async with serving(service, max_frame_size=4096) as (server, urls):
        client = await RawClient.connect(urls[0], hello=False)
        async with client.stream:
            await client.stream.send(
                encode_frame(encode_hello(1, {"client": "eager"})) + struct.pack(">I", 1 << 20)
            )
            assert (await client.packet())[0] == 6  # welcome
            error = await client.packet()
            assert error[:3] == [2, 0, -32600]
            assert await client.closed()
        await still_serving(urls[0])


async def test_garbage_instead_of_a_hello_is_refused(serving: Serving, service: Service) -> None:
    async with serving(service) as (_, urls):
        for garbage in (b"\x00\x00\x00\x02\xc1\xc1", frame([0, 1, "service", "ping", []])):
            client = await RawClient.connect(urls[0], hello=False)
            async with client.stream:
                await client.stream.send(garbage)
                error = await client.packet()
                assert error[:2] == [2, 0] and error[2] in (-32600, -32010)
                assert await client.closed()
        client = await RawClient.connect(urls[0], hello=False)
        async with client.stream:
            await client.stream.send(b"\xff\xff\xff\xff")  # an absurd hello length
            assert (await client.packet())[2] == -32600
        await still_serving(urls[0])


async def test_many_protocol_errors_close_the_connection(
    serving: Serving, service: Service
) -> None:
    async with serving(service) as (_, urls):
        client = await RawClient.connect(urls[0])
        async with client.stream:
            await client.stream.send(b"".join(frame(["junk"]) for _ in range(40)))
            assert await client.closed()
            errors = [msgpack.unpackb(f) for f in client.frames]
            assert 1 <= len(errors) <= 17 and all(e[2] == -32600 for e in errors)
        await still_serving(urls[0])


# --------------------------------------------------------------------------------------------
# Clients that vanish


async def test_a_client_that_disconnects_mid_call(serving: Serving, service: Service) -> None:
    async with serving(service) as (server, urls):
        client = await RawClient.connect(urls[0])
        await client.stream.send(frame([0, 1, "pool:Lab", "sleep", [0.3]]))
        for _ in range(1000):
            if any(c.inflight_requests for c in server.connections):
                break
            await anyio.sleep(0.005)
        assert any(c.inflight_requests for c in server.connections)
        await client.stream.aclose()  # gone mid-call
        for _ in range(1000):
            if not server.connections:
                break
            await anyio.sleep(0.005)
        assert not server.connections  # the call was cancelled, the connection dropped
        await still_serving(urls[0])


async def test_a_client_that_disconnects_mid_attachment_call(
    serving: Serving, service: Service, tmp_path: Path
) -> None:
    factory.SLOW_DONE.clear()
    with CommitDatabase.create(tmp_path / "c.cdb", factory.DEFS) as db:
        g = factory.TOPOLOGY.create_key()
        async with serving(service) as (server, urls):
            ms = CommitMutableState(db.initial_state())
            async with ServiceRemote.connect(urls[0]) as remote, anyio.create_task_group() as tg:
                outcome: list[BaseException] = []

                async def call() -> None:
                    try:
                        await remote.attachment_pools.Edit.slow_tag(ms, g, 0.3)
                    except ConnectionClosedError as exc:
                        outcome.append(exc)

                tg.start_soon(call)
                for _ in range(1000):
                    if ms.get("Graph::Graph.tags", g) is not None:
                        break
                    await anyio.sleep(0.005)
                await remote.aclose()  # vanish while the server function sleeps
            assert len(outcome) == 1
            # the server function ends (its next callback fails) and nothing is left behind
            assert await anyio.to_thread.run_sync(factory.SLOW_DONE.wait, 30)
            for _ in range(1000):
                if not server.connections:
                    break
                await anyio.sleep(0.005)
            assert not server.connections
            await still_serving(urls[0])
        assert ms.get("Graph::Graph.tags", g) == {"before": "sleep"}


async def test_a_hundred_clients_at_once(
    server_process: Callable[..., ServerProcess], short_tmp: Path
) -> None:
    server = server_process(FACTORY, f"unix://{short_tmp}/many.sock")
    results: dict[int, int] = {}

    async def client(i: int) -> None:
        async with ServiceRemote.connect(server.url, timeout=60) as remote:
            results[i] = await remote.pools.Tools.add(i, 1000)
            assert await remote.pools.Lab.add_threaded(i, 1) == i + 1

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(client, i)
    assert results == {i: i + 1000 for i in range(100)}


# --------------------------------------------------------------------------------------------
# A server process killed mid-call


async def test_a_server_killed_mid_call_leaves_the_clients_data_intact(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process(FACTORY)
    path = tmp_path / "client.cdb"
    marker = tmp_path / "inside"
    with CommitDatabase.create(path, factory.DEFS) as db:
        defs = db.definitions()
        g = factory.TOPOLOGY.create_key()
        position = defs.check_type("Graph::Position")
        async with ServiceRemote.connect(server.url, timeout=60) as remote:
            model = remote.attachment_pools.ModelGraph
            ms = CommitMutableState(db.initial_state())
            vertices = [await model.newVertex(ms, g, i, position(x=i, y=i)) for i in range(3)]
            await model.newEdge(ms, g, vertices[0], vertices[1])
            head = db.commit_mutations("built remotely", ms)
            committed = db.state(head).get("Graph::Graph.topology", g)

            pending = CommitMutableState(db.state(head))
            await model.setGraphTag(pending, g, "uncommitted", "yes")
            errors: list[BaseException] = []
            async with anyio.create_task_group() as tg:

                async def blocked_call() -> None:
                    try:
                        await remote.pools.Lab.sleep_marked(str(marker), 30.0)
                    except ConnectionClosedError as exc:
                        errors.append(exc)

                tg.start_soon(blocked_call)
                for _ in range(3000):  # until the server is inside the call
                    if marker.exists():
                        break
                    await anyio.sleep(0.01)
                assert marker.exists()
                server.kill()
            assert len(errors) == 1
            with pytest.raises(ConnectionClosedError):
                await remote.pools.Tools.add(1, 2)
        assert db.head_commit_ids() == {head}
        assert pending.get("Graph::Graph.tags", g) == {"uncommitted": "yes"}  # still there
    with CommitDatabase.open(path) as reopened:
        assert reopened.head_commit_ids() == {head}
        assert reopened.state(head).get("Graph::Graph.topology", g) == committed
        assert committed.vertexKeys == set(vertices) and len(committed.edgeKeys) == 1


async def test_a_server_killed_mid_attachment_call(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process(FACTORY)
    with CommitDatabase.create(tmp_path / "client.cdb", factory.DEFS) as db:
        g = factory.TOPOLOGY.create_key()
        async with ServiceRemote.connect(server.url) as remote:
            ms = CommitMutableState(db.initial_state())
            await remote.attachment_pools.Edit.tag(ms, g, "kept")
            head = db.commit_mutations("tag", ms)
            ms = CommitMutableState(db.state(head))
            errors: list[BaseException] = []
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    try:
                        await remote.attachment_pools.Edit.slow_tag(ms, g, 30.0)
                    except ConnectionClosedError as exc:
                        errors.append(exc)

                tg.start_soon(call)
                for _ in range(3000):  # the server applied its first mutation: it sleeps now
                    if ms.get("Graph::Graph.tags", g) == {"before": "sleep"}:
                        break
                    await anyio.sleep(0.01)
                server.kill()
            assert len(errors) == 1
        assert db.state(db.last_commit_id()).get("Graph::Graph.tags", g) == {"kept": "v"}
        assert db.head_commit_ids() == {head}


async def test_a_stopped_server_process_exits_cleanly(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process(FACTORY)
    async with ServiceRemote.connect(server.url) as remote:
        assert await remote.ping() == "pong"
    assert server.stop() == 0
    assert any("shutting down" in line for line in server.stderr_lines)


async def test_a_server_in_process_survives_a_storm_of_bad_connections(service: Service) -> None:
    async with RPCServer(service) as server:
        ep = await server.listen("tcp://127.0.0.1:0")
        url = str(ep)

        async def bad(i: int) -> None:
            stream = await anyio.connect_tcp(ep.host, ep.port)
            async with stream:
                if i % 3 == 0:
                    await stream.send(b"\x00\x00")  # half a header, then gone
                elif i % 3 == 1:
                    await stream.send(frame([5, 1, {"definitions": b"junk"}]))
                else:
                    await stream.send(frame([5, 1, {}]) + frame([0, 1, "pool:X", "y", []]))

        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(bad, i)
        await still_serving(url)
        for _ in range(1000):
            if not server.connections:
                break
            await anyio.sleep(0.005)
        assert not server.connections
