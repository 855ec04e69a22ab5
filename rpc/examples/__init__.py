"""Example services: the Ge graph editor (used by the demo, the tests and the benchmarks)."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
