"""Real ``commitdb gateway`` processes for the gateway tests, and what they need.

* :func:`start_gateway` runs ``commitdb gateway --host 127.0.0.1 --port 0 ...`` (uvicorn) in a
  child process, waits (bounded) for the line announcing the port it bound, and returns a
  :class:`GatewayProcess`; the fixtures stop every process they start (SIGTERM, then
  SIGKILL). Output goes to files, never to a pipe that could fill up.
* :func:`make_test_service` is the service the gateways serve: the Ge pools plus ``Probe``,
  a function pool for edge cases (calls that wait to be released, fail, or return what JSON
  cannot carry).
* :func:`make_pki` writes a CA, server and client certificates, and a rogue client
  certificate signed by another CA (generated at test time).
* :class:`StateLender` answers the gateway's ``state.*`` requests from a local mutable state,
  the way any JSON-RPC client would (through the JSON forms only).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from commitdb import types as T
from commitdb.definitions import Definitions
from rpc.json_values import apply_mutation, from_json, key_from_json, key_to_json, to_json
from rpc.pools import FunctionPool
from rpc.service import Service

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(sys.executable).parent / "commitdb"
TEST_SERVICE = "tests.rpc.gateway.conftest:make_test_service"
UPSTREAM_SERVICE = "tests.rpc.gateway.conftest:make_upstream_service"
START_TIMEOUT = 60.0

# --------------------------------------------------------------------------------------------
# The test service

_GATES: dict[str, threading.Event] = {}
_GATES_LOCK = threading.Lock()


def _gate(name: str) -> threading.Event:
    with _GATES_LOCK:
        return _GATES.setdefault(name, threading.Event())


class OpaqueType(T.Type):
    """A type foreign to the DSM type system: its values have no JSON form."""

    __slots__ = ()
    kind = "opaque"

    def check(self, value: object, where: str = "") -> Any:
        return value


def make_probe_pool(opaque: bool = True) -> FunctionPool:
    """The ``Probe`` pool: waits, failures and (unless told not) an unserialisable result."""
    probe = FunctionPool("Probe", documentation="Edge cases for the gateway tests.")

    @probe.function
    def wait(name: str) -> str:
        """Block (in a worker thread) until release(name) is called (30 s at most)."""
        released = _gate(name).wait(30.0)
        return f"{name} released" if released else f"{name} gave up"

    @probe.function(inline=True)
    def release(name: str) -> bool:
        """Release the calls waiting on name."""
        _gate(name).set()
        return True

    @probe.function
    def fail(message: str) -> str:
        """Raise ValueError(message)."""
        raise ValueError(message)

    if opaque:  # a foreign type cannot cross the native protocol: not upstream

        @probe.function(inline=True, returns=OpaqueType())
        def opaque() -> Any:
            """Return a value that JSON cannot carry."""
            return object()

    @probe.function(inline=True)
    def echo(value: Any) -> Any:
        """Return the value (any)."""
        return value

    return probe


def make_test_service(opaque: bool = True) -> Service:
    """The Ge service plus the Probe pool."""
    from rpc.examples.graph import ge_definitions, make_ge_pools

    defs = ge_definitions()
    tools, pools = make_ge_pools(defs)
    return Service(defs, [tools, make_probe_pool(opaque)], pools, name="gateway-tests")


def make_upstream_service() -> Service:
    """The test service without ``Probe.opaque`` (served over the native protocol)."""
    return make_test_service(opaque=False)


# --------------------------------------------------------------------------------------------
# Processes


@dataclass
class GatewayProcess:
    """A running ``commitdb gateway``."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    audit: Path
    directory: Path
    scheme: str = "http"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT/``."""
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        """``ws(s)://127.0.0.1:PORT/ws``."""
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}/ws"

    def audit_lines(self) -> list[str]:
        """The audit lines written so far."""
        return self.audit.read_text().splitlines() if self.audit.exists() else []

    def database_path(self, name: str = "default") -> Path:
        """The path of a served database."""
        found = self.extra.get("databases", {}).get(name)
        return Path(found) if found else self.directory / "data" / "commitdb-gateway.cdb"

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        return self.proc.returncode


def child_env() -> dict[str, str]:
    """The environment of a child process (the repository importable)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_gateway(
    directory: Path,
    *options: str,
    service: str | None = TEST_SERVICE,
    scheme: str = "http",
    cwd: Path | None = None,
    data_dir: bool = True,
) -> GatewayProcess:
    """Start ``commitdb gateway`` and wait until it announces its port.

    Args:
        directory: A fresh directory for its log, audit file and data.
        *options: More options (``--token``, ``--database`` ...).
        service: The ``--service`` factory (None: the default, the Ge example).
        scheme: ``https`` when the options enable TLS.
        cwd: The working directory (default: the repository).
        data_dir: Pass ``--data-dir <directory>/data``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    log, audit = directory / "gateway.log", directory / "audit.log"
    cmd = [str(SCRIPT), "gateway", "--host", "127.0.0.1", "--port", "0", "--audit-log", str(audit)]
    if data_dir:
        cmd += ["--data-dir", str(directory / "data")]
    if service is not None:
        cmd += ["--service", service]
    cmd += list(options)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd or REPO, env=child_env()
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("gateway listening on "):
                port = int(line.rsplit(":", 1)[1])
                databases = dict(o.split("=", 1) for o in _values(options, "--database"))
                return GatewayProcess(
                    proc, port, log, audit, directory, scheme, {"databases": databases}
                )
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=15)
    raise RuntimeError(f"the gateway did not start:\n{log.read_text(errors='replace')}")


def _values(options: tuple[str, ...], name: str) -> list[str]:
    return [options[i + 1] for i, o in enumerate(options[:-1]) if o == name]


@pytest.fixture(scope="session")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., GatewayProcess]]:
    """``gateways(*options, **start_gateway options)`` starts a gateway; all stop at the end."""
    started: list[GatewayProcess] = []

    def start(*options: str, **kwargs: Any) -> GatewayProcess:
        gw = start_gateway(tmp_path_factory.mktemp("gateway"), *options, **kwargs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture(scope="session")
def gw(gateways: Callable[..., GatewayProcess]) -> GatewayProcess:
    """The main gateway: the test service, the embedded default database, no security."""
    return gateways()


@pytest.fixture(scope="session")
def upstream_gw(
    gateways: Callable[..., GatewayProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway in front of a ``commitdb service serve`` process (the native protocol)."""
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "service.log"
    cmd = [str(SCRIPT), "service", "serve", UPSTREAM_SERVICE, "--listen", f"tcp://127.0.0.1:{port}"]
    with log.open("wb") as out:
        service = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=child_env()
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "serving" not in log.read_text() and time.monotonic() < deadline:
            assert service.poll() is None, log.read_text()
            time.sleep(0.05)
        yield gateways("--upstream", f"tcp://127.0.0.1:{port}", service=None)
    finally:
        service.terminate()
        service.wait(timeout=15)


def free_port() -> int:
    """A TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Clients


def rpc(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    """A request object (params left out when None)."""
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        out["params"] = params
    return out


def ws_call(ws: Any, method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    """Send a request over a (sync) WebSocket and return its response, skipping
    notifications that arrive in between (bounded)."""
    ws.send(json.dumps(rpc(method, params, id)))
    for _ in range(1000):
        message = json.loads(ws.recv(timeout=30))
        if isinstance(message, dict) and message.get("id") == id and "method" not in message:
            return message
    raise AssertionError("no response")


class StateLender:
    """A client-side lender: answers ``state.*`` requests from a state (a
    ``CommitMutableState``) through the JSON forms only, and applies the notifications.

    A failed notification is reported at the next request, as the spec's §4 asks.
    """

    def __init__(self, state: Any, definitions: Definitions) -> None:
        self.state = state
        self.defs = definitions
        self.error: str | None = None
        self.requests: list[str] = []
        self.notifications: list[str] = []

    def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """The response to a server request."""
        method, params, ident = message["method"], message["params"], message["id"]
        self.requests.append(method)
        if self.error is not None:
            error, self.error = self.error, None
            return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32602, "message": error}}
        if method == "state.flush":
            return {"jsonrpc": "2.0", "id": ident, "result": None}
        att = self.defs.check_attachment(params["attachment"])
        if method == "state.keys":
            keys = sorted(self.state.keys(att))
            return {"jsonrpc": "2.0", "id": ident, "result": [key_to_json(k) for k in keys]}
        key = key_from_json(params["key"], att.key_type, self.defs, "key")
        if method == "state.has":
            return {"jsonrpc": "2.0", "id": ident, "result": self.state.has(att, key)}
        doc = self.state.get(att, key)
        return {
            "jsonrpc": "2.0",
            "id": ident,
            "result": to_json(doc, T.OptionalType(att.document_type)),
        }

    def apply(self, message: dict[str, Any]) -> None:
        """Apply a ``state.<op>`` notification."""
        self.notifications.append(message["method"])
        try:
            op = message["method"].removeprefix("state.")
            apply_mutation(self.state, {"op": op, **message["params"]}, self.defs, "notification")
        except Exception as exc:
            if self.error is None:
                self.error = f"{type(exc).__name__}: {exc}"

    def serve(self, ws: Any, request: dict[str, Any]) -> dict[str, Any]:
        """Send `request` and serve the gateway's callbacks until its response arrives."""
        ws.send(json.dumps(request))
        for _ in range(100_000):
            message = json.loads(ws.recv(timeout=30))
            if "method" in message and "id" in message:
                ws.send(json.dumps(self.answer(message)))
            elif "method" in message:
                if message["method"].startswith("state."):
                    self.apply(message)
            elif message.get("id") == request["id"]:
                return message
        raise AssertionError("no response")


def from_doc(data: Any, att: T.Attachment, defs: Definitions) -> Any:
    """A document from its JSON form."""
    return from_json(data, att.document_type, defs, "document")


# --------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    path: Path, key: ec.EllipticCurvePrivateKey | None, cert: x509.Certificate | None
) -> Path:
    if key is not None:
        fmt = serialization.PrivateFormat.PKCS8
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        )
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _certificate(
    subject: str,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None,
    usage: x509.ObjectIdentifier | None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer, issuer_name = issuer if issuer is not None else (key, _name(subject))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
    )
    if usage is None:  # a CA
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(signer, hashes.SHA256())


def make_pki(directory: Path) -> PKI:
    """A CA with a server and a client certificate, and a rogue CA's client certificate."""
    ca_key, ca = _certificate("gateway test CA", None, None)
    server_key, server = _certificate(
        "localhost", (ca_key, ca.subject), ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_key, client = _certificate(
        "client", (ca_key, ca.subject), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    rogue_ca_key, rogue_ca = _certificate("rogue CA", None, None)
    rogue_key, rogue = _certificate(
        "rogue", (rogue_ca_key, rogue_ca.subject), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return PKI(
        _write(directory / "ca.pem", None, ca),
        _write(directory / "server.pem", None, server),
        _write(directory / "server.key", server_key, None),
        _write(directory / "client.pem", None, client),
        _write(directory / "client.key", client_key, None),
        _write(directory / "rogue.pem", None, rogue),
        _write(directory / "rogue.key", rogue_key, None),
    )
