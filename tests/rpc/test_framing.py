"""Sans-I/O framing: round trips, partial feeds, the maximum size checked before buffering."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from rpc.errors import FrameTooLargeError, ProtocolError
from rpc.framing import DEFAULT_MAX_FRAME_SIZE, FrameParser, encode_frame, frame_header


def test_encode_frame_prefixes_the_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


def test_round_trip_of_several_frames_in_one_chunk() -> None:
    payloads = [b"one", b"", b"three" * 100, bytes(range(256))]
    parser = FrameParser()
    assert parser.feed(b"".join(encode_frame(p) for p in payloads)) == payloads
    assert parser.buffered == 0


def test_partial_feeds_byte_by_byte() -> None:
    payloads = [b"hello", b"", b"x" * 1000, b"\x00\x00\x00\x04"]
    stream = b"".join(encode_frame(p) for p in payloads)
    parser = FrameParser()
    out: list[bytes] = []
    for i in range(len(stream)):
        got = parser.feed(stream[i : i + 1])
        assert len(got) <= 1
        out += got
    assert out == payloads
    assert parser.buffered == 0


def test_a_partial_frame_stays_buffered_until_complete() -> None:
    parser = FrameParser()
    frame = encode_frame(b"payload")
    assert parser.feed(frame[:2]) == []
    assert parser.buffered == 2
    assert parser.feed(frame[2:6]) == []
    assert parser.feed(frame[6:] + frame[:3]) == [b"payload"]
    assert parser.buffered == 3
    assert parser.feed(frame[3:]) == [b"payload"]


def test_frames_are_bytes_even_when_split() -> None:
    parser = FrameParser()
    frame = encode_frame(b"abcdef")
    parser.feed(frame[:5])
    (got,) = parser.feed(frame[5:])
    assert type(got) is bytes and got == b"abcdef"


def test_limit_leaves_later_frames_buffered() -> None:
    parser = FrameParser()
    chunk = encode_frame(b"a") + encode_frame(b"b") + encode_frame(b"c")
    assert parser.feed(chunk, 1) == [b"a"]
    assert parser.feed(b"", 1) == [b"b"]
    assert parser.feed(b"") == [b"c"]
    assert parser.feed(b"") == []


def test_a_length_over_the_maximum_is_rejected_before_buffering() -> None:
    parser = FrameParser(max_frame_size=1024)
    with pytest.raises(FrameTooLargeError, match="frame of 1025 bytes exceeds the maximum of 1024"):
        parser.feed(struct.pack(">I", 1025))
    assert isinstance(parser.error, FrameTooLargeError)
    # the stream cannot be trusted any more: every later feed raises
    with pytest.raises(FrameTooLargeError):
        parser.feed(b"x")


def test_a_huge_announced_length_allocates_nothing() -> None:
    parser = FrameParser()
    with pytest.raises(FrameTooLargeError):
        parser.feed(b"\xff\xff\xff\xff" + b"tiny")
    assert parser.buffered <= 8  # the header and a few bytes: never 4 GiB


def test_exactly_the_maximum_is_accepted() -> None:
    parser = FrameParser(max_frame_size=16)
    assert parser.feed(encode_frame(b"x" * 16)) == [b"x" * 16]
    assert parser.max_frame_size == 16
    assert FrameParser().max_frame_size == DEFAULT_MAX_FRAME_SIZE


def test_complete_frames_before_an_oversized_header_are_delivered_first() -> None:
    parser = FrameParser(max_frame_size=8)
    chunk = encode_frame(b"ok") + struct.pack(">I", 9) + b"123456789"
    assert parser.feed(chunk) == [b"ok"]
    assert parser.error is not None
    with pytest.raises(FrameTooLargeError):
        parser.feed(b"")


def test_frame_too_large_is_a_protocol_error() -> None:
    assert issubclass(FrameTooLargeError, ProtocolError)
    assert FrameTooLargeError("x").code == -32600


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    payloads=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_any_split_of_a_stream_gives_the_same_frames(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    parser = FrameParser()
    out: list[bytes] = []
    for a, b in zip(points, points[1:], strict=False):
        out += parser.feed(stream[a:b])
    assert out == payloads
    assert parser.buffered == 0


def test_frame_header_then_payload_is_the_frame() -> None:
    for payload in (b"", b"abc", b"x" * 70000):
        assert frame_header(len(payload)) + payload == encode_frame(payload)
        assert FrameParser().feed(frame_header(len(payload)) + payload) == [payload]
