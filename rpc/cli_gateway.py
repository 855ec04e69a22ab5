"""``commitdb gateway``: serve the JSON-RPC 2.0 gateway (Starlette under uvicorn).

With no ``--database`` it serves an embedded default commit database
(``<data-dir>/commitdb-gateway.cdb``, created on first use), so ``commitdb gateway`` alone
works; with no ``--service``/``--upstream`` it serves the Ge example service.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import ssl
import sys
from typing import Any

import click

from rpc.cli_service import configure_logging, load_factory

__all__ = ("gateway",)


def _database(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep:
        path = spec
        name = os.path.splitext(os.path.basename(os.path.normpath(spec)))[0]
    if not name or not path:
        raise click.BadParameter(f"{spec!r}: expected NAME=PATH", param_hint="--database")
    return name, path


def _audit_logging(path: str | None) -> logging.handlers.QueueListener:
    """Audit lines always go out (INFO), to the file or to stderr, whatever -v says.

    The calls only enqueue their record; a listener thread formats and writes the lines
    (stop the returned listener to flush them)."""
    from rpc.gateway.security import AUDIT_LOGGER, AuditQueueHandler, AuditQueueListener

    logger = logging.getLogger(AUDIT_LOGGER)
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s audit %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = AuditQueueListener(records, handler)
    feeder = AuditQueueHandler(records)
    listener.feed_from(feeder)
    logger.addHandler(feeder)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    listener.start()
    return listener


@click.command("gateway")
@click.option(
    "--database",
    "databases",
    multiple=True,
    metavar="NAME=PATH",
    help="serve a commit database (created when missing; repeatable)",
)
@click.option(
    "--data-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="where the embedded default database lives when no --database is given",
)
@click.option(
    "--service",
    "service_spec",
    metavar="MODULE:FACTORY",
    help="the in-process service (default: the Ge example)",
)
@click.option("--upstream", metavar="URL", help="a service over the native protocol (tcp://…)")
@click.option("--upstream-token", help="credentials presented to the upstream service")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="0: any free port")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="certificate (PEM)")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="its key (PEM)")
@click.option(
    "--client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="require client certificates signed by this CA (mutual TLS)",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    metavar="TOKEN:PERMISSION",
    help="accept this bearer token (read, read-write or admin; repeatable)",
)
@click.option("--rate", type=float, help="calls per second per client (default: unlimited)")
@click.option("--burst", type=int, help="calls a client may make at once (default: rate)")
@click.option("--max-request-bytes", default=1 << 20, show_default=True, type=int)
@click.option("--timeout", default=30.0, show_default=True, type=float, help="seconds per call")
@click.option(
    "--queue-size",
    default=256,
    show_default=True,
    type=int,
    help="notifications queued per subscription before events are dropped",
)
@click.option("--protect-metrics", is_flag=True, help="require a token for /health and /metrics")
@click.option("--audit-log", type=click.Path(dir_okay=False), help="audit file (default: stderr)")
@click.option("--debug", is_flag=True, help="show internal error texts to clients")
@click.option("-v", "--verbose", count=True, help="-v info, -vv debug")
def gateway(
    databases: tuple[str, ...],
    data_dir: str,
    service_spec: str | None,
    upstream: str | None,
    upstream_token: str | None,
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
    tokens: tuple[str, ...],
    rate: float | None,
    burst: int | None,
    max_request_bytes: int,
    timeout: float,
    queue_size: int,
    protect_metrics: bool,
    audit_log: str | None,
    debug: bool,
    verbose: int,
) -> None:
    """Serve the JSON-RPC 2.0 gateway until SIGINT/SIGTERM."""
    from rpc.gateway import GatewayConfig, create_app
    from rpc.gateway.security import TokenTable

    if service_spec and upstream:
        raise click.UsageError("--service and --upstream are exclusive")
    if (tls_key or client_ca) and not tls_cert:
        raise click.UsageError("--tls-key and --client-ca need --tls-cert")
    if max_request_bytes < 1 or timeout <= 0 or queue_size < 1:
        raise click.UsageError("--max-request-bytes, --timeout and --queue-size must be positive")
    try:
        TokenTable(tokens)
    except ValueError as exc:  # the message never shows a token
        raise click.BadParameter(str(exc), param_hint="--token") from None
    configure_logging(verbose)
    audit = _audit_logging(audit_log)
    config = GatewayConfig(
        databases=dict(_database(d) for d in databases),
        data_dir=data_dir,
        service=load_factory(service_spec) if service_spec else None,
        upstream=upstream,
        upstream_token=upstream_token,
        tokens=tokens,
        rate=rate,
        burst=burst,
        max_request_bytes=max_request_bytes,
        timeout=timeout,
        queue_size=queue_size,
        protect_metrics=protect_metrics,
        debug=debug,
    )
    try:
        started = _serve(
            create_app(config), host, port, tls_cert, tls_key, client_ca, config, verbose
        )
    finally:
        audit.stop()  # writes the queued audit lines
    if not started:
        sys.exit(1)


def _serve(
    app: Any,
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
    config: Any,
    verbose: int,
) -> bool:
    import uvicorn

    scheme = "https" if tls_cert else "http"

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                for server in self.servers:
                    for sock in server.sockets:
                        address = sock.getsockname()
                        click.echo(
                            f"gateway listening on {scheme}://{address[0]}:{address[1]}", err=True
                        )

    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=verbose > 1,
        log_level="warning" if verbose == 0 else "info" if verbose == 1 else "debug",
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        ws_max_size=max(4 * config.max_request_bytes, 1 << 16),
        # JSON-RPC messages are small: compressing each costs more than it saves
        ws_per_message_deflate=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = Server(uv_config)
    server.run()
    click.echo("stopped", err=True)
    return bool(server.started)
