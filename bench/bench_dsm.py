"""DSM benchmarks: parsing and loading the Re/ sample set (20 files)."""

from __future__ import annotations

from pathlib import Path

from pytest_benchmark.fixture import BenchmarkFixture

from commitdb.dsm import load_definitions, parse

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "dsm-samples" / "Re"
TEXTS = [(p.read_text(encoding="utf-8"), str(p)) for p in sorted(SAMPLES.glob("*.dsm"))]


def test_parse_re(benchmark: BenchmarkFixture) -> None:
    files = benchmark(lambda: [parse(t, n) for t, n in TEXTS])
    assert len(files) == len(TEXTS)


def test_load_re(benchmark: BenchmarkFixture) -> None:
    defs = benchmark(lambda: load_definitions(sorted(SAMPLES.glob("*.dsm"))))
    assert defs.counts()["structures"] == 136
