from __future__ import annotations
import random, time
from hypothesis import given, settings, HealthCheck, strategies as st
from commitdb.codec import encode, decode
from commitdb.errors import DecodeError
from tests.commitdb.strategies import types_and_values, same_value, rebuild_shuffled, TypeAndValue

S = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

@S
@given(types_and_values())
def test_roundtrip(tv: TypeAndValue) -> None:
    norm = tv.type.check(tv.value)
    encode(tv.value, tv.type)
    b = encode(norm, tv.type)
    back = decode(b, tv.type, tv.definitions)
    assert same_value(back, norm), (back, norm)
    assert encode(back, tv.type) == b
    assert same_value(tv.type.check(back), back)

@S
@given(types_and_values(), st.randoms(use_true_random=False))
def test_shuffle(tv, rng):
    norm = tv.type.check(tv.value)
    assert encode(rebuild_shuffled(norm, rng), tv.type) == encode(norm, tv.type)

@S
@given(types_and_values(), st.binary(max_size=40), st.data())
def test_fuzz(tv, junk, data):
    b = encode(tv.value, tv.type)
    cands = [junk, b[: data.draw(st.integers(0, len(b)))]]
    if b:
        i = data.draw(st.integers(0, len(b) - 1))
        cands.append(b[:i] + bytes([data.draw(st.integers(0, 255))]) + b[i + 1 :])
        cands.append(b[:i] + data.draw(st.binary(min_size=1, max_size=3)) + b[i:])
    for c in cands:
        t0 = time.perf_counter()
        try:
            v = decode(c, tv.type, tv.definitions)
        except DecodeError:
            continue
        assert time.perf_counter() - t0 < 1
        again = encode(v, tv.type)
        assert same_value(tv.type.check(v), v)
        assert same_value(decode(again, tv.type, tv.definitions), v)
