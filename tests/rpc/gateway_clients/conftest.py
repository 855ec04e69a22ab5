"""Real gateway processes for the client tests.

Each fixture starts ``python -m rpc gateway --host 127.0.0.1 --port P ...`` (uvicorn, a free
port) in a child process, waits (bounded) until ``GET /health`` answers, and stops it at
teardown (SIGTERM, then SIGKILL). The databases are fresh Ge databases in a temporary
directory; the pools are the Ge example service's.

* ``gateway`` (session): the reference gateway — Ge service, database ``main``. The JS
  walkthrough and the generated method reference run against it.
* ``lab_gateway`` (module): the test service of ``tests/rpc/service_factory.py`` (pools that
  fail and sleep) with a short ``--timeout``.
* ``secured_gateway`` (module): bearer tokens ``reader:read``, ``writer:read-write``,
  ``boss:admin``.
* ``limited_gateway`` (module): a rate limit of 5 calls/s, bursts of 2.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from commitdb import CommitDatabase
from rpc.examples.graph import ge_definitions

REPO = Path(__file__).resolve().parents[3]

#: The service factory of the reference gateway.
GE_SERVICE = "rpc.examples.graph:make_service"

#: The test service (Lab and Edit pools over the Ge model).
LAB_SERVICE = "tests.rpc.service_factory:make_service"

TOKENS = {"reader": "read", "writer": "read-write", "boss": "admin"}


@dataclass
class Gateway:
    """A running gateway process."""

    proc: subprocess.Popen[bytes]
    port: int
    databases: dict[str, Path]
    log: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/ws``."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.pump is not None:
            self.pump.join(15)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


def free_port() -> int:
    """A TCP port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_ge_database(path: Path) -> Path:
    """Create an empty commit database with the Ge definitions at `path`."""
    db = CommitDatabase.create(path, ge_definitions(), documentation="gateway client tests")
    db.close()
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_gateway(
    databases: dict[str, Path], *options: str, service: str | None = GE_SERVICE
) -> Gateway:
    """Start a gateway process and wait until it answers ``/health`` (at most ~60 s).

    Args:
        databases: Served databases by name.
        *options: More command line options (``--token``, ``--rate`` ...).
        service: The service factory whose pools it serves (None: databases only).

    Returns:
        The running gateway.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "rpc", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    for name, path in databases.items():
        cmd += ["--database", f"{name}={path}"]
    if service is not None:
        cmd += ["--service", service]
    cmd += list(options)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, env=_env()
    )
    gw = Gateway(proc, port, dict(databases))

    def pump() -> None:  # drain stderr so the child never blocks on a full pipe
        assert proc.stderr is not None
        for raw in proc.stderr:
            gw.log.append(raw.decode(errors="replace").rstrip())

    gw.pump = threading.Thread(target=pump, daemon=True)
    gw.pump.start()
    with httpx.Client(timeout=2.0) as http:
        for _ in range(600):  # bounded: ~60 s
            if proc.poll() is not None:
                break
            try:
                if http.get(f"{gw.url}/health").status_code == 200:
                    return gw
            except httpx.TransportError:
                pass
            threading.Event().wait(0.1)
    gw.stop()
    raise AssertionError(
        f"the gateway did not start (exit code {proc.returncode}):\n"
        + " ".join(cmd)
        + "\n"
        + "\n".join(gw.log[-40:])
    )


@pytest.fixture(scope="session")
def gateway_tmp() -> Iterator[Path]:
    """A temporary directory for the session's databases."""
    with tempfile.TemporaryDirectory(prefix="gateway-clients-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def gateway(gateway_tmp: Path) -> Iterator[Gateway]:
    """The reference gateway: Ge service, one Ge database ``main``."""
    gw = start_gateway({"main": make_ge_database(gateway_tmp / "main.cdb")})
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def lab_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The test service (pools that fail and sleep), ``--timeout 1``."""
    tmp = tmp_path_factory.mktemp("lab")
    gw = start_gateway(
        {"lab": make_ge_database(tmp / "lab.cdb")}, "--timeout", "1", "--debug", service=LAB_SERVICE
    )
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def secured_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Bearer tokens required: ``reader`` (read), ``writer`` (read-write), ``boss`` (admin)."""
    tmp = tmp_path_factory.mktemp("secured")
    options = [a for t, p in TOKENS.items() for a in ("--token", f"{t}:{p}")]
    gw = start_gateway({"main": make_ge_database(tmp / "secured.cdb")}, *options)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def limited_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A rate limit of 5 calls per second per client, bursts of 2."""
    tmp = tmp_path_factory.mktemp("limited")
    gw = start_gateway(
        {"main": make_ge_database(tmp / "limited.cdb")}, "--rate", "5", "--burst", "2"
    )
    yield gw
    gw.stop()
