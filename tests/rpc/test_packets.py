"""Sans-I/O packets: every kind round-trips; every malformed packet is a clear ProtocolError."""

from __future__ import annotations

import re
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from rpc.errors import ProtocolError
from rpc.packets import (
    CANCEL,
    ERROR,
    HELLO,
    NOTIFY,
    PROTOCOL_VERSION,
    REQUEST,
    RESULT,
    WELCOME,
    Cancel,
    Error,
    Hello,
    Notify,
    Request,
    Result,
    decode_packet,
    encode_cancel,
    encode_error,
    encode_hello,
    encode_notify,
    encode_request,
    encode_result,
    packet_from_array,
)


def raw(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


def test_kinds_are_numbered_as_documented() -> None:
    assert (REQUEST, RESULT, ERROR, NOTIFY, CANCEL, HELLO, WELCOME) == tuple(range(7))
    assert PROTOCOL_VERSION == 1


def test_request_round_trip() -> None:
    pkt = decode_packet(encode_request(7, "pool:Tools", "add", [32, 10]))
    assert pkt == Request(7, "pool:Tools", "add", [32, 10])


def test_result_round_trip_with_binary_and_nested_values() -> None:
    value = [b"\x00" * 32, {"k": [1.5, None, True]}, "text"]
    assert decode_packet(encode_result(3, value)) == Result(3, value)


def test_error_round_trip() -> None:
    pkt = decode_packet(encode_error(9, -32601, "no such pool", {"type": "X"}))
    assert pkt == Error(9, -32601, "no such pool", {"type": "X"})
    assert decode_packet(encode_error(0, -32600, "bad")) == Error(0, -32600, "bad", None)


def test_notify_round_trip() -> None:
    assert decode_packet(encode_notify("cb:1", "set", [b"a", 1])) == Notify(
        "cb:1", "set", [b"a", 1]
    )


def test_cancel_round_trip() -> None:
    assert decode_packet(encode_cancel(2**63 - 1)) == Cancel(2**63 - 1)


def test_hello_and_welcome_round_trip() -> None:
    fields = {"client": "t", "definitions": b"\x01\x02", "credentials": ["u", "p"]}
    assert decode_packet(encode_hello(1, fields)) == Hello(False, 1, fields)
    assert decode_packet(encode_hello(1, {"server": "s"}, welcome=True)) == Hello(
        True, 1, {"server": "s"}
    )


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "undecodable packet"),
        (b"\xc1", "undecodable packet"),  # a byte msgpack never uses
        (b"\x93\x01", "undecodable packet"),  # truncated array
        (raw([1, 2, 3]) + b"\x00", "undecodable packet"),  # trailing bytes
        (raw({"kind": 0}), "a packet is an array whose first element is its kind"),
        (raw([]), "a packet is an array whose first element is its kind"),
        (raw(["0", 1]), "a packet is an array whose first element is its kind"),
        (raw([True, 1, 2]), "a packet is an array whose first element is its kind"),
        (raw(7), "a packet is an array whose first element is its kind"),
        (raw([7, 1]), "unknown packet kind 7"),
        (raw([-1, 1]), "unknown packet kind -1"),
        (raw([200, 1, 2, 3, 4]), "unknown packet kind 200"),
        (raw([0, 1, "t", "m"]), "malformed request (4 elements"),
        (raw([0, 1, "t", "m", [], 5]), "malformed request (6 elements"),
        (raw([0, 1, "t", "m", {"a": 1}]), "request args must be an array"),
        (raw([0, 1, 5, "m", []]), "packet target must be a string"),
        (raw([0, 1, "t", b"m", []]), "packet method must be a string"),
        (raw([0, -1, "t", "m", []]), "packet id must be a non-negative integer"),
        (raw([0, 2**64 - 1, "t", "m", []]), "packet id must be a non-negative integer"),
        (raw([0, "1", "t", "m", []]), "packet id must be a non-negative integer"),
        (raw([0, 1.0, "t", "m", []]), "packet id must be a non-negative integer"),
        (raw([1, 1]), "malformed packet of kind 1 (2 elements)"),
        (raw([1, None, 3]), "packet id must be a non-negative integer"),
        (raw([2, 1, "code", "m", None]), "error code must be an integer"),
        (raw([2, 1, -1, 5, None]), "packet message must be a string"),
        (raw([2, 1, -1, "m"]), "malformed packet of kind 2 (4 elements)"),
        (raw([3, "t", "m", "args"]), "notification args must be an array"),
        (raw([3, 1, "m", []]), "packet target must be a string"),
        (raw([3, "t", "m"]), "malformed packet of kind 3 (3 elements)"),
        (raw([4]), "malformed packet of kind 4 (1 elements)"),
        (raw([4, -5]), "packet id must be a non-negative integer"),
        (raw([5, "1", {}]), "malformed handshake packet"),
        (raw([5, 1, []]), "malformed handshake packet"),
        (raw([6, 1]), "malformed packet of kind 6 (2 elements)"),
    ],
)
def test_malformed_packets_raise_a_clear_protocol_error(frame: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(message)) as info:
        decode_packet(frame)
    assert info.value.code == -32600


def test_a_malformed_request_whose_id_is_readable_names_it() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_packet(raw([0, 42, "t", "m", "not a list"]))
    assert info.value.request_id == 42
    with pytest.raises(ProtocolError) as info:
        decode_packet(raw([0, 43, 1, "m", []]))
    assert info.value.request_id == 43
    with pytest.raises(ProtocolError) as info:
        decode_packet(raw([0, 44]))
    assert info.value.request_id == 44


def test_other_malformed_packets_are_connection_level() -> None:
    for frame in (raw([0, -3, "t", "m", []]), raw([3, 1, "m", []]), raw([9]), b"\xc1"):
        with pytest.raises(ProtocolError) as info:
            decode_packet(frame)
        assert info.value.request_id == 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_protocol_error(frame: bytes) -> None:
    try:
        pkt = decode_packet(frame)
    except ProtocolError:
        return
    assert isinstance(pkt, Request | Result | Error | Notify | Cancel | Hello)


wire_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    call_id=st.integers(0, 2**63 - 1),
    target=st.text(max_size=20),
    method=st.text(max_size=20),
    args=st.lists(wire_values, max_size=5),
)
def test_requests_round_trip(call_id: int, target: str, method: str, args: list[Any]) -> None:
    assert decode_packet(encode_request(call_id, target, method, args)) == Request(
        call_id, target, method, args
    )


def test_packet_from_array_is_decode_packet_after_msgpack() -> None:
    frame = encode_request(9, "pool:Tools", "add", [1, 2])
    assert packet_from_array(msgpack.unpackb(frame)) == decode_packet(frame)
    assert packet_from_array([RESULT, 4, "x"]) == Result(4, "x")
    with pytest.raises(ProtocolError, match="first element is its kind"):
        packet_from_array({"kind": 0})
    with pytest.raises(ProtocolError, match="unknown packet kind 9"):
        packet_from_array([9, 1])
