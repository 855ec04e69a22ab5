"""Services end to end: TCP, Unix sockets and TLS (mutual TLS too), discovery without generated
code, definitions exchange, credentials, validation on both sides, typed errors."""

from __future__ import annotations

import socket
import ssl
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from commitdb.definitions import Definitions
from commitdb.errors import NotFoundError, UnknownCommitError, ValidationError
from commitdb.types import DOUBLE, INT64, STRING, Field
from commitdb.values import Typed
from rpc.client import open_connection
from rpc.connection import Connection
from rpc.errors import (
    AuthenticationError,
    HandshakeError,
    InvalidArgumentsError,
    MethodNotFoundError,
    RemoteError,
)
from rpc.examples.graph import ge_definitions
from rpc.pools import FunctionPool
from rpc.server import RPCServer
from rpc.service import Service
from rpc.service_remote import RemoteAttachmentFunction, RemoteFunction, ServiceRemote
from rpc.transports import (
    Endpoint,
    client_ssl_context,
    create_listener,
    parse_endpoint,
    server_ssl_context,
)
from tests.rpc.conftest import Serving
from tests.rpc.service_factory import make_service
from tests.rpc.tls import PKI, make_pki

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def service() -> Service:
    return make_service()


def tls_contexts(pki: PKI, *, mutual: bool = False) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = server_ssl_context(
        str(pki.server_cert), str(pki.server_key), str(pki.ca) if mutual else None
    )
    client = client_ssl_context(
        str(pki.ca),
        str(pki.client_cert) if mutual else None,
        str(pki.client_key) if mutual else None,
    )
    return server, client


# --------------------------------------------------------------------------------------------
# Transports


@pytest.mark.parametrize("scheme", ["tcp", "unix", "tls", "unix+tls"])
async def test_a_call_over_every_transport(
    scheme: str, serving: Serving, service: Service, pki: PKI, short_tmp: Path
) -> None:
    url = {
        "tcp": "tcp://127.0.0.1:0",
        "tls": "tls://127.0.0.1:0",
        "unix": f"unix://{short_tmp}/s.sock",
        "unix+tls": f"unix+tls://{short_tmp}/t.sock",
    }[scheme]
    server_ctx, client_ctx = tls_contexts(pki)
    tls = "tls" in scheme
    async with serving(service, url, ssl_context=server_ctx if tls else None) as (_, urls):
        assert urls[0].startswith(scheme + "://")
        async with ServiceRemote.connect(
            urls[0], Definitions(), ssl_context=client_ctx if tls else None
        ) as remote:
            assert await remote.function_pool("Tools").check("add")(32, 10) == 42
            assert await remote.pools.Tools.add(1, 2) == 3
            assert await remote.ping() == "pong"
            assert await remote.pools.Lab.concat(["a", "b"], "-") == "a-b"


async def test_mutual_tls_accepts_a_client_certificate_and_refuses_the_others(
    serving: Serving, service: Service, pki: PKI
) -> None:
    server_ctx, client_ctx = tls_contexts(pki, mutual=True)
    async with serving(service, "tls://127.0.0.1:0", ssl_context=server_ctx) as (_, urls):
        async with ServiceRemote.connect(urls[0], ssl_context=client_ctx) as remote:
            assert await remote.pools.Tools.add(2, 2) == 4
        no_cert = client_ssl_context(str(pki.ca))
        with pytest.raises(HandshakeError, match="closed the connection") as info:
            async with ServiceRemote.connect(urls[0], ssl_context=no_cert) as remote:
                await remote.ping()
        assert "client certificate" in str(info.value)
        rogue = client_ssl_context(str(pki.ca), str(pki.rogue_cert), str(pki.rogue_key))
        with pytest.raises(HandshakeError):
            async with ServiceRemote.connect(urls[0], ssl_context=rogue) as remote:
                await remote.ping()
        # the server goes on serving good clients
        async with ServiceRemote.connect(urls[0], ssl_context=client_ctx) as remote:
            assert await remote.ping() == "pong"


async def test_a_client_that_does_not_trust_the_server_refuses_it(
    serving: Serving, service: Service, pki: PKI
) -> None:
    server_ctx, _ = tls_contexts(pki)
    async with serving(service, "tls://127.0.0.1:0", ssl_context=server_ctx) as (_, urls):
        with pytest.raises(ssl.SSLCertVerificationError):
            async with ServiceRemote.connect(urls[0], ssl_context=client_ssl_context()):
                pass
        wrong_name = client_ssl_context(str(pki.ca))
        with pytest.raises(ssl.SSLCertVerificationError):
            async with ServiceRemote.connect(
                urls[0], ssl_context=wrong_name, server_hostname="example.org"
            ):
                pass


async def test_a_tls_endpoint_needs_a_server_certificate(service: Service) -> None:
    async with RPCServer(service) as server:
        with pytest.raises(ValueError, match="TLS needs a server certificate"):
            await server.listen("tls://127.0.0.1:0")


def test_endpoints_parse_and_print() -> None:
    assert parse_endpoint("tcp://127.0.0.1:80") == Endpoint("tcp", "127.0.0.1", 80)
    assert str(parse_endpoint("tls://localhost:443")) == "tls://localhost:443"
    assert parse_endpoint("unix:///tmp/x.sock") == Endpoint("unix", path="/tmp/x.sock")
    assert str(parse_endpoint("unix+tls:///tmp/y.sock")) == "unix+tls:///tmp/y.sock"
    for bad, message in [
        ("tcp://host", "needs a host and a port"),
        ("unix://", "needs a path"),
        ("http://x:1", "unknown scheme"),
        ("unix:///" + "x" * 120, "at most 107 bytes"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_endpoint(bad)


async def test_unix_socket_files_stale_live_and_foreign(
    serving: Serving, service: Service, short_tmp: Path
) -> None:
    path = short_tmp / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a leftover socket file nobody listens on: replaced
    async with serving(service, f"unix://{path}") as (_, urls):
        with pytest.raises(OSError, match="already listens"):
            await create_listener(f"unix://{path}")  # a live server's socket: refused
        async with ServiceRemote.connect(urls[0]) as remote:
            assert await remote.ping() == "pong"
    assert not path.exists()  # the server removed its socket file
    regular = short_tmp / "file"
    regular.write_text("precious")
    with pytest.raises(FileExistsError, match="not a Unix socket"):
        await create_listener(f"unix://{regular}")
    assert regular.read_text() == "precious"


# --------------------------------------------------------------------------------------------
# Discovery and definitions


async def test_discovery_without_generated_code(serving: Serving, service: Service) -> None:
    async with serving(service) as (_, urls), ServiceRemote.connect(urls[0]) as remote:
        assert {p.name for p in remote.function_pools()} == {"Tools", "Lab"}
        assert {p.name for p in remote.attachment_function_pools()} == {
            "ModelGraph",
            "ModelIntegrity",
            "ModelSelection",
            "Edit",
        }
        for name, pool in service.function_pools.items():
            remote_pool = remote.function_pool(name)
            assert remote_pool.uuid == pool.uuid
            assert {f.name: f.prototype for f in remote_pool.functions()} == {
                f.name: f.prototype for f in pool.functions()
            }
        for name, apool in service.attachment_function_pools.items():
            remote_pool = remote.attachment_function_pool(name)
            assert {f.name: f.prototype for f in remote_pool.functions()} == {
                f.name: f.prototype for f in apool.functions()
            }
            assert all(isinstance(f, RemoteAttachmentFunction) for f in remote_pool.functions())
        add = remote.pools.Tools.add
        assert isinstance(add, RemoteFunction)
        assert add.documentation == "Return a + b."
        assert [p.name for p in add.prototype.parameters] == ["a", "b"]
        assert "add" in dir(remote.pools.Tools) and "Tools" in dir(remote.pools)
        assert len(remote.pools.Tools) == 4
        assert remote.pools["Lab"] is remote.function_pool("Lab")
        assert {p.name for p in remote.pools} == {"Tools", "Lab"}
        assert remote.query_function_pool("Nope") is None
        assert remote.query_attachment_function_pool("Edit") is not None
        assert remote.definitions().check_attachment("Graph::Graph.topology") is not None
        assert "function_pool Tools" in remote.to_dsm()
        assert remote.welcome["server"] == "test-service"
        assert remote.welcome["digest"] == service.definitions.hexdigest()
        assert not remote.is_closed()
    assert remote.is_closed()


async def test_unknown_pools_and_functions(serving: Serving, service: Service) -> None:
    async with serving(service) as (_, urls), ServiceRemote.connect(urls[0]) as remote:
        with pytest.raises(NotFoundError, match="no function pool 'Nope'"):
            remote.function_pool("Nope")
        with pytest.raises(NotFoundError, match="no attachment function pool 'Tools'"):
            remote.attachment_function_pool("Tools")
        with pytest.raises(NotFoundError, match="has no function 'sub'"):
            remote.function_pool("Tools").check("sub")
        assert remote.function_pool("Tools").query("sub") is None
        with pytest.raises(AttributeError, match="no pool 'Nope'"):
            _ = remote.pools.Nope
        with pytest.raises(AttributeError, match="no function 'sub'"):
            _ = remote.pools.Tools.sub
        conn = remote.connection
        with pytest.raises(MethodNotFoundError, match="unknown function pool 'Nope'"):
            await conn.call("pool:Nope", "add", [1, 2])
        with pytest.raises(MethodNotFoundError, match="has no function 'sub'") as info:
            await conn.call("pool:Tools", "sub", [1, 2])
        assert "add" in info.value.data["functions"]
        with pytest.raises(MethodNotFoundError, match="unknown attachment function pool"):
            await conn.call("apool:Nope", "x", [1])
        with pytest.raises(MethodNotFoundError, match="unknown target 'db:main'"):
            await conn.call("db:main", "get", [])
        with pytest.raises(MethodNotFoundError, match="no method 'reboot'"):
            await conn.call("service", "reboot", [])
        assert await remote.ping() == "pong"


async def test_a_client_with_conflicting_definitions_is_refused(
    serving: Serving, service: Service
) -> None:
    mine = Definitions()
    ns = mine.namespace("Graph", "27c49329-a399-415c-baf0-db42949d2ba2")
    mine.create_structure(ns, "Position", [Field("x", INT64), Field("y", INT64)])  # not float
    async with serving(service) as (_, urls):
        with pytest.raises(HandshakeError, match="definitions conflict") as info:
            async with ServiceRemote.connect(urls[0], mine):
                pass
        assert "Position" in str(info.value)


async def test_a_clients_extra_types_are_accepted_and_usable(
    serving: Serving, service: Service
) -> None:
    mine = Definitions()
    ns = mine.namespace("Client", "5a1e3c52-8a3c-4f5e-9a51-5d2c1f7b9e10")
    point = mine.create_structure(ns, "Point", [Field("x", DOUBLE), Field("label", STRING)])
    async with serving(service) as (_, urls), ServiceRemote.connect(urls[0], mine) as remote:
        assert remote.definitions() is mine  # extended in place with the service's
        assert mine.check_attachment("Graph::Graph.tags") is not None
        value = point(x=1.5, label="p")
        echoed = await remote.pools.Lab.echo(Typed(point, value))  # the server knows Point
        assert echoed == value
    # the service's own definitions are untouched
    assert service.definitions.query_type("Client::Point") is None


async def test_the_welcome_lists_only_served_pools(serving: Serving) -> None:
    defs = ge_definitions()  # declares Tools, ModelGraph, ... that this service does not serve
    empty = Service(Definitions(), name="empty")
    async with serving(empty) as (_, urls), ServiceRemote.connect(urls[0], defs) as remote:
        assert remote.function_pools() == []
        assert remote.attachment_function_pools() == []


# --------------------------------------------------------------------------------------------
# Credentials and handshake


async def test_credentials_are_checked_by_the_authenticator(serving: Serving) -> None:
    def authenticate(credentials: Any) -> bool:
        if credentials == "explode":
            raise RuntimeError("authenticator bug")
        return bool(credentials == {"user": "ada", "token": "s3cret"})

    svc = make_service()
    svc.authenticator = authenticate
    async with serving(svc) as (_, urls):
        async with ServiceRemote.connect(
            urls[0], credentials={"user": "ada", "token": "s3cret"}
        ) as remote:
            assert await remote.pools.Tools.add(1, 1) == 2
        for wrong in ({"user": "ada", "token": "nope"}, None, "explode"):
            with pytest.raises(AuthenticationError, match="credentials refused"):
                async with ServiceRemote.connect(urls[0], credentials=wrong):
                    pass
        assert issubclass(AuthenticationError, HandshakeError)


async def test_bad_hellos_are_refused_with_a_clear_error(
    serving: Serving, service: Service
) -> None:
    async with serving(service) as (_, urls):
        with pytest.raises(HandshakeError, match="bad definitions"):
            await open_connection(urls[0], {"client": "raw", "definitions": b"\x00garbage"})
        with pytest.raises(HandshakeError, match="definitions must be bytes"):
            await open_connection(urls[0], {"client": "raw", "definitions": "text"})
        # a server that speaks another version
        stream = await anyio.connect_tcp("127.0.0.1", parse_endpoint(urls[0]).port)
        async with stream:
            from rpc.framing import FrameParser, encode_frame
            from rpc.packets import decode_packet, encode_hello, encode_request

            await stream.send(encode_frame(encode_hello(99, {})))
            parser = FrameParser()
            frames: list[bytes] = []
            with anyio.fail_after(30):
                while not frames:
                    frames = parser.feed(await stream.receive())
            error = decode_packet(frames[0])
            assert "protocol version 99 is not supported" in error.message  # type: ignore[union-attr]
        stream = await anyio.connect_tcp("127.0.0.1", parse_endpoint(urls[0]).port)
        async with stream:
            await stream.send(encode_frame(encode_request(1, "service", "ping", [])))
            parser = FrameParser()
            frames = []
            with anyio.fail_after(30):
                while not frames:
                    frames = parser.feed(await stream.receive())
            error = decode_packet(frames[0])
            assert "the first packet must be a hello" in error.message  # type: ignore[union-attr]


async def test_a_request_pipelined_after_the_hello_is_served(
    serving: Serving, service: Service
) -> None:
    from rpc.framing import FrameParser, encode_frame
    from rpc.packets import decode_packet, encode_hello, encode_request

    async with serving(service) as (_, urls):
        stream = await anyio.connect_tcp("127.0.0.1", parse_endpoint(urls[0]).port)
        async with stream:
            await stream.send(
                encode_frame(encode_hello(1, {"client": "eager"}))
                + encode_frame(encode_request(1, "pool:Tools", "add", [40, 2]))
            )
            parser = FrameParser()
            frames: list[bytes] = []
            with anyio.fail_after(30):
                while len(frames) < 2:
                    frames += parser.feed(await stream.receive())
            assert decode_packet(frames[0]).welcome  # type: ignore[union-attr]
            assert decode_packet(frames[1]).value == 42  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# Arguments and errors


async def test_arguments_are_validated_before_sending(serving: Serving, service: Service) -> None:
    async with serving(service) as (_, urls), ServiceRemote.connect(urls[0]) as remote:
        before = service.calls
        with pytest.raises(ValidationError, match="argument"):
            await remote.pools.Tools.add(1)
        with pytest.raises(ValidationError, match="argument"):
            await remote.pools.Tools.add(1, 2, 3)
        with pytest.raises(ValidationError, match="int64"):
            await remote.pools.Tools.add("one", 2)
        with pytest.raises(ValidationError):
            await remote.pools.Lab.concat("not a list", "-")
        assert service.calls == before  # nothing reached the server


async def test_a_raw_connection_sending_wrong_arguments_gets_invalid_params(
    serving: Serving, service: Service
) -> None:
    async with serving(service) as (_, urls):
        conn, welcome = await open_connection(urls[0], {"client": "raw"})
        assert welcome["pools"]
        async with conn:
            with pytest.raises(InvalidArgumentsError, match="takes 2 argument") as info:
                await conn.call("pool:Tools", "add", [1])
            assert info.value.code == -32602
            assert info.value.data == {"expected": ["int64 a", "int64 b"]}
            with pytest.raises(InvalidArgumentsError) as info:
                await conn.call("pool:Tools", "add", ["x", 1])
            assert info.value.code == -32602 and "Tools.add" in info.value.message
            with pytest.raises(InvalidArgumentsError):
                await conn.call("pool:Lab", "concat", [b"\x00", 3])
            with pytest.raises(InvalidArgumentsError, match="lend id"):
                await conn.call("apool:Edit", "tag", ["not an id"])
            key = uuid.uuid4().bytes * 2
            with pytest.raises(InvalidArgumentsError):
                await conn.call("apool:Edit", "tag", [1, key[:5], "x"])
            assert await conn.call("pool:Tools", "add", [1, 2]) == 3


async def test_server_exceptions_come_back_typed(serving: Serving, service: Service) -> None:
    async with serving(service) as (_, urls), ServiceRemote.connect(urls[0]) as remote:
        lab = remote.pools.Lab
        with pytest.raises(RemoteError) as info:
            await lab.fail("the server says no")
        assert info.value.code == -32000
        assert info.value.message == "ValueError: the server says no"
        with pytest.raises(RemoteError, match="LookupError: inline failure"):
            await lab.fail_inline("inline failure")
        with pytest.raises(NotFoundError, match="nothing named 'x'"):
            await lab.missing("x")
        with pytest.raises(UnknownCommitError, match="no commit c0ffee"):
            await lab.unknown_commit("c0ffee")
        with pytest.raises(ValidationError, match="result"):
            await lab.bad_result(1)
        assert await lab.add_threaded(20, 22) == 42


async def test_many_calls_in_flight_on_one_connection(serving: Serving, service: Service) -> None:
    results: dict[int, int] = {}
    async with serving(service) as (_, urls), ServiceRemote.connect(urls[0]) as remote:
        add, slow_add = remote.pools.Lab.add, remote.pools.Lab.add_threaded

        async def one(i: int) -> None:
            results[i] = await (add if i % 2 else slow_add)(i, 1000)

        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(one, i)
    assert results == {i: i + 1000 for i in range(300)}


async def test_a_timeout_cancels_the_remote_call(serving: Serving, service: Service) -> None:
    from rpc.errors import CallTimeoutError

    async with serving(service) as (server, urls):
        async with ServiceRemote.connect(urls[0], timeout=30) as remote:
            with pytest.raises(CallTimeoutError):
                await remote.pools.Lab.sleep(0.5, timeout=0.05)
            (conn,) = server.connections
            for _ in range(1000):  # the cancel reached the server: nothing in flight
                if conn.inflight_requests == 0:
                    break
                await anyio.sleep(0.01)
            assert conn.inflight_requests == 0
            assert await remote.pools.Tools.add(1, 2) == 3


async def test_shutdown_lets_calls_in_flight_finish(service: Service) -> None:
    stop = anyio.Event()
    ready = anyio.Event()
    urls: list[str] = []
    server_box: list[RPCServer] = []

    async def run_server() -> None:
        async with RPCServer(service, grace=30) as server:
            urls.append(str(await server.listen("tcp://127.0.0.1:0")))
            server_box.append(server)
            ready.set()
            await stop.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_server)
        await ready.wait()
        async with ServiceRemote.connect(urls[0]) as remote:
            result: list[float] = []

            async def call() -> None:
                result.append(await remote.pools.Lab.sleep(0.3))

            tg.start_soon(call)
            for _ in range(1000):
                if any(c.inflight_requests for c in server_box[0].connections):
                    break
                await anyio.sleep(0.005)
            stop.set()  # the server closes while the call runs
            for _ in range(1000):
                if result:
                    break
                await anyio.sleep(0.005)
        assert result == [0.3]


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
async def test_half_open_connections_do_not_delay_shutdown(
    scheme: str, service: Service, pki: PKI
) -> None:
    server_ctx, client_ctx = tls_contexts(pki)
    ctx = server_ctx if scheme == "tls" else None
    with anyio.fail_after(30):  # a liveness bound: the handshake timeout is 600 s
        async with RPCServer(service, handshake_timeout=600, ssl_context=ctx) as server:
            ep = await server.listen(f"{scheme}://127.0.0.1:0")
            silent = await anyio.connect_tcp(ep.host, ep.port)  # no hello, no TLS handshake
            async with ServiceRemote.connect(
                str(ep), ssl_context=client_ctx if ctx else None
            ) as remote:
                assert await remote.ping() == "pong"
        await silent.aclose()


async def test_connections_are_tracked_and_closed_with_the_server(service: Service) -> None:
    closed: list[Connection] = []

    class Tracking(Service):
        def connection_closed(self, conn: Connection) -> None:
            closed.append(conn)

    svc = Tracking(ge_definitions(), name="tracking")
    async with RPCServer(svc) as server:
        ep = await server.listen("tcp://127.0.0.1:0")
        async with ServiceRemote.connect(str(ep)) as remote:
            assert await remote.ping() == "pong"
            assert len(server.connections) == 1
            assert server.accepted == 1
        for _ in range(1000):
            if closed:
                break
            await anyio.sleep(0.005)
    assert len(closed) == 1 and not server.connections


async def test_inline_functions_get_their_arguments_by_name(serving: Serving) -> None:
    from rpc.pools import FunctionPool

    pool = FunctionPool("Order")

    @pool.function
    def sub(a: int, b: int) -> int:
        return a - b

    @pool.function
    def halve(x: int) -> float:
        return x / 2

    # bound by name: one implementation lists the declared parameters in another order, the
    # other returns an int for a double (normalized)
    bound = FunctionPool.bind(
        pool.declaration(), {"sub": lambda b, a: a - b, "halve": lambda x: x // 2}, inline=True
    )
    async with serving(Service(Definitions(), [bound])) as (_, urls):
        async with ServiceRemote.connect(urls[0]) as remote:
            assert await remote.pools.Order.sub(10, 3) == 7
            half = await remote.pools.Order.halve(7)
            assert half == 3.0 and type(half) is float
            raw = remote.connection
            with pytest.raises(RemoteError, match="sub"):
                await raw.call("pool:Order", "sub", [1, "x"])
            with pytest.raises(RemoteError, match="takes 2 argument"):
                await raw.call("pool:Order", "sub", [1])


def test_a_function_call_plan_passes_the_arguments_as_the_implementation_takes_them() -> None:
    pool = FunctionPool("Plans")

    @pool.function(inline=True)
    def scaled(value: int, *, factor: int) -> int:
        """value * factor (factor only by name)."""
        return value * factor

    fn = pool.check("scaled")
    plan = fn.call_plan
    assert "factor" in plan.keyword_names  # keyword-only: passed by name
    assert plan.call(fn.implementation, (), [3, 4]) == 12
