"""Shared fixtures for the benchmarks (pytest-benchmark; run with `make bench`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class Handles:
    """Databases opened by setup functions; each is closed before the next round and at
    the end of the test."""

    def __init__(self) -> None:
        self._open: list[Any] = []

    def keep(self, db: Any) -> Any:
        """Close what is open, then remember `db`."""
        self.close_all()
        self._open.append(db)
        return db

    @property
    def last(self) -> Any:
        """The database opened last."""
        return self._open[-1]

    def close_all(self) -> None:
        """Close every remembered database."""
        for db in self._open:
            db.close()
        self._open.clear()


@pytest.fixture
def handles() -> Iterator[Handles]:
    """A Handles closed at the end of the test."""
    h = Handles()
    try:
        yield h
    finally:
        h.close_all()
