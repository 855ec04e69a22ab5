"""Fixtures of the rpc tests: the anyio backend, in-process servers and server processes.

Every server a test starts is stopped by the test: in-process servers live inside an
``async with serving(...)`` block; server processes are terminated (then killed) by the
``server_process`` fixture's teardown.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rpc.server import RPCServer, ServerApp

REPO = Path(__file__).resolve().parents[2]

Serving = Callable[..., AbstractAsyncContextManager[tuple[RPCServer, list[str]]]]


@pytest.fixture
def anyio_backend() -> str:
    """The rpc tests run on asyncio."""
    return "asyncio"


@asynccontextmanager
async def _serving(
    app: ServerApp, *urls: str, **server_options: Any
) -> AsyncIterator[tuple[RPCServer, list[str]]]:
    async with RPCServer(app, **server_options) as server:
        bound = [str(await server.listen(url)) for url in urls or ("tcp://127.0.0.1:0",)]
        yield server, bound


@pytest.fixture
def serving() -> Serving:
    """``async with serving(app, *urls, **RPCServer options) as (server, bound_urls)``.

    The server listens on every URL (default: a free TCP port on 127.0.0.1) and is closed
    when the block ends.
    """
    return _serving


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory for Unix socket paths (at most 107 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rpc-") as d:
        yield Path(d)


@dataclass
class ServerProcess:
    """A ``python -m rpc service serve`` child process."""

    proc: subprocess.Popen[bytes]
    url: str
    stderr_lines: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._join()
        return self.proc.returncode

    def _join(self) -> None:
        if self.pump is not None:
            self.pump.join(timeout=10)

    def kill(self) -> None:
        """SIGKILL the server and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._join()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    return env


def start_server_process(factory: str, listen: str, *extra: str) -> ServerProcess:
    """Start a service process and wait (at most 60 s) until it listens.

    Args:
        factory: ``module:function`` building the Service.
        listen: The URL to listen on (``tcp://127.0.0.1:0`` picks a port).
        *extra: More command line options.

    Returns:
        The running process and the URL it listens on.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpc", "service", "serve", factory, "--listen", listen, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=_child_env(),
    )
    assert proc.stderr is not None
    server = ServerProcess(proc, "")
    ready = threading.Event()

    def pump() -> None:  # drains stderr (so the child never blocks on a full pipe)
        assert proc.stderr is not None
        with proc.stderr:
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                server.stderr_lines.append(line)
                found = re.search(r"serving .* on (\S+)", line)
                if found and not server.url:
                    server.url = found.group(1)
                    ready.set()
        ready.set()

    server.pump = threading.Thread(target=pump, daemon=True)
    server.pump.start()
    if not ready.wait(60) or not server.url:
        server.kill()
        raise AssertionError("the server did not start:\n" + "\n".join(server.stderr_lines))
    return server


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Start service processes (``start(factory, listen, *options)``); all are stopped at
    teardown."""
    started: list[ServerProcess] = []

    def start(factory: str, listen: str = "tcp://127.0.0.1:0", *extra: str) -> ServerProcess:
        server = start_server_process(factory, listen, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
