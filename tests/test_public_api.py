"""API hygiene: curated __all__ lists, and the engine never imports the network side."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import commitdb
import rpc


@pytest.mark.parametrize("package", [commitdb, rpc])
def test_all_names_exist_and_are_unique(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(package, name), name


@pytest.mark.parametrize(
    "module",
    [
        "commitdb.types",
        "commitdb.values",
        "commitdb.codec",
        "commitdb.definitions",
        "commitdb.paths",
        "commitdb.opcodes",
        "commitdb.commit_database",
        "commitdb.state",
        "commitdb.mutable_state",
        "commitdb.store",
        "commitdb.database",
        "rpc.connection",
        "rpc.service",
        "rpc.service_remote",
        "rpc.db_remote",
    ],
)
def test_modules_declare_all(module: str) -> None:
    mod = importlib.import_module(module)
    assert isinstance(mod.__all__, tuple)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_engine_imports_no_network() -> None:
    code = (
        "import sys, commitdb, commitdb.dsm, commitdb.database, commitdb.store; "
        "bad = [m for m in sys.modules if m == 'rpc' or m.startswith('rpc.') "
        "or m.split('.')[0] in ('anyio', 'starlette', 'uvicorn', 'websockets', 'httpx')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
