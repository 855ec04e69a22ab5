"""Shared fixtures for the benchmarks (pytest-benchmark; run with `make bench`)."""

from __future__ import annotations
