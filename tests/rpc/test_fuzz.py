"""Fuzzing a live server over raw TCP: random bytes and mutated valid frames, before and after
the handshake. After every example the server must still answer a well-formed ping on a
fresh connection.

The server runs in its own event loop thread for the whole module (stopped at the end); each
example uses blocking sockets with timeouts, so every example is bounded.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings, strategies as st

from rpc.framing import FrameParser, encode_frame
from rpc.packets import encode_hello
from rpc.server import RPCServer
from rpc.transports import Endpoint
from tests.rpc.service_factory import make_service

EXAMPLES = 250
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    """One live server for the module (max frame 1 MiB), stopped at the end; no rpc logger
    may report an error (an unexpected exception) meanwhile."""
    errors = _Errors()
    rpc_log = logging.getLogger("rpc")
    rpc_log.addHandler(errors)
    try:
        service = make_service()
        server = RPCServer(service, max_frame_size=1 << 20, handshake_timeout=5)
        with start_blocking_portal() as portal, portal.wrap_async_context_manager(server):
            yield portal.call(server.listen, "tcp://127.0.0.1:0")
    finally:
        rpc_log.removeHandler(errors)
    assert [f"{r.getMessage()}: {r.exc_info[1]!r}" for r in errors.records] == []


def packed(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


HELLO = encode_frame(encode_hello(1, {"client": "fuzz"}))
VALID_FRAMES = [
    encode_frame(packed(v))
    for v in (
        [0, 1, "pool:Tools", "add", [32, 10]],
        [0, 2, "pool:Tools", "isEven", [3]],
        [0, 3, "pool:Lab", "concat", [["a", "b"], "-"]],
        [0, 4, "pool:Lab", "echo", [[4, 42]]],
        [0, 5, "service", "ping", []],
        [0, 6, "apool:Edit", "count_tags", [1, b"\x00" * 32]],
        [0, 7, "apool:ModelGraph", "noArgs", [2]],
        [3, "cb:1", "set", [b"\x00" * 16, b"\x00" * 32, None]],
        [4, 1],
        [1, 9, "stray result"],
        [2, 9, -32000, "stray error", None],
        [5, 1, {"client": "again"}],
    )
]


def exchange(ep: Endpoint, data: bytes, *, hello: bool) -> None:
    """Send (hello and) data, half-close, and read until the server closes (bounded)."""
    with socket.create_connection((ep.host, ep.port), timeout=10) as sock:
        if hello:
            sock.sendall(HELLO)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            received = 0
            while received < 64 << 20:  # the server answers, then closes on our EOF
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += len(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server closed first (oversized frame, too many errors)


def assert_still_serving(ep: Endpoint) -> None:
    """A well-formed hello and ping on a fresh connection."""
    with socket.create_connection((ep.host, ep.port), timeout=10) as sock:
        sock.sendall(HELLO + encode_frame(packed([0, 1, "service", "ping", []])))
        parser = FrameParser()
        frames: list[bytes] = []
        while len(frames) < 2:
            chunk = sock.recv(65536)
            assert chunk, "the server closed a well-formed connection"
            frames += parser.feed(chunk)
    assert msgpack.unpackb(frames[0])[0] == 6
    assert msgpack.unpackb(frames[1]) == [1, 1, "pong"]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """Valid frames, then a few byte-level mutations of their concatenation."""
    frames = draw(st.lists(st.sampled_from(VALID_FRAMES), min_size=1, max_size=6))
    data = bytearray(b"".join(frames))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "length"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif op == "length" and len(data) >= 4:
            data[0:4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    return bytes(data)


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_after_the_handshake(endpoint: Endpoint, data: bytes) -> None:
    exchange(endpoint, data, hello=True)
    assert_still_serving(endpoint)


@FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_instead_of_a_hello(endpoint: Endpoint, data: bytes) -> None:
    exchange(endpoint, data, hello=False)
    assert_still_serving(endpoint)


@FUZZ
@given(data=mutated_frames())
def test_mutated_valid_frames(endpoint: Endpoint, data: bytes) -> None:
    exchange(endpoint, data, hello=True)
    assert_still_serving(endpoint)


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["client", "definitions", "digest", "credentials", "x"]),
        st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=64),
        max_size=5,
    ),
    version=st.integers(-2, 3),
)
def test_odd_hellos(endpoint: Endpoint, fields: dict[str, Any], version: int) -> None:
    exchange(endpoint, encode_frame(packed([5, version, fields])), hello=False)
    assert_still_serving(endpoint)
