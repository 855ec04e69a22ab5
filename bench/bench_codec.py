"""Codec benchmarks: typed validate+encode and decode of the Login document vs plain msgpack."""

from __future__ import annotations

import msgpack
from pytest_benchmark.fixture import BenchmarkFixture

from bench.login import make_definitions, make_login, plain_login
from commitdb.codec import decode, encode

_, LOGIN, _ATT = make_definitions()
DOC = make_login(LOGIN, 7)
DOC_BYTES = encode(DOC, LOGIN)
PLAIN = plain_login(7)
PLAIN_BYTES = msgpack.packb(PLAIN)


def test_typed_validate_encode(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "codec-encode"
    assert benchmark(encode, DOC, LOGIN) == DOC_BYTES


def test_plain_msgpack_encode(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "codec-encode"
    assert benchmark(msgpack.packb, PLAIN) == PLAIN_BYTES


def test_typed_decode(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "codec-decode"
    assert benchmark(decode, DOC_BYTES, LOGIN) == DOC


def test_plain_msgpack_decode(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "codec-decode"
    assert benchmark(msgpack.unpackb, PLAIN_BYTES) == PLAIN
