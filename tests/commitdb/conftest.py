"""Fixtures shared by the commit-engine tests: the scenario schema and a database per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest

from commitdb.commit_database import CommitDatabase
from tests.commitdb.builders import Schema, open_db, schema


@pytest.fixture
def s() -> Schema:
    """The scenario schema of tests/commitdb/builders.py."""
    return schema()


@pytest.fixture(params=["lmdb", "memory"])
def db(request: pytest.FixtureRequest, tmp_path: FsPath, s: Schema) -> Iterator[CommitDatabase]:
    """A commit database on LMDB and in memory (each test runs on both)."""
    d = open_db(request.param, tmp_path, s.defs)
    yield d
    d.close()
