"""``commitdb service``: serve a Service, or call one from the command line."""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
from typing import Any

import anyio
import click

from commitdb.errors import CommitDBError
from rpc.errors import RPCError
from rpc.transports import loop_options

__all__ = ("service",)


def load_factory(spec: str) -> Any:
    """Import ``module:attribute`` and return the Service it names (called if callable)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.BadParameter(f"{spec!r}: expected module:factory", param_hint="FACTORY")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"{spec!r}: {exc}", param_hint="FACTORY") from None
    return obj() if callable(obj) else obj


def configure_logging(verbose: int) -> None:
    """-v info, -vv debug (warnings only by default)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
def service() -> None:
    """Serve or call function pools."""


@service.command("serve")
@click.argument("factory")
@click.option(
    "--listen",
    "listens",
    multiple=True,
    required=True,
    help="tcp://host:port, unix:///path, tls://…",
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="server certificate (PEM)"
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="server key (PEM)")
@click.option(
    "--client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="require client certificates signed by this CA",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="accept only clients presenting one of these credentials",
)
@click.option("-v", "--verbose", count=True)
def serve(
    factory: str,
    listens: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
    tokens: tuple[str, ...],
    verbose: int,
) -> None:
    """Serve the Service built by FACTORY (module:function) until SIGINT/SIGTERM."""
    from rpc.server import RPCServer
    from rpc.transports import server_ssl_context

    configure_logging(verbose)
    svc = load_factory(factory)
    if tokens:
        allowed = set(tokens)
        svc.authenticator = lambda creds: creds in allowed
    ctx = server_ssl_context(tls_cert, tls_key, client_ca) if tls_cert else None

    async def run() -> None:
        async with RPCServer(svc, ssl_context=ctx) as server:
            for url in listens:
                ep = await server.listen(url)
                click.echo(f"serving {svc.name} on {ep}", err=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for sig in signals:
                    click.echo(f"received {signal.Signals(sig).name}, shutting down", err=True)
                    return

    anyio.run(run, backend_options=loop_options())


@service.command("call")
@click.argument("url")
@click.argument("pool")
@click.argument("function")
@click.argument("args", nargs=-1)
@click.option("--token", help="credentials to present")
@click.option("--timeout", type=float, default=30.0)
def call(
    url: str, pool: str, function: str, args: tuple[str, ...], token: str | None, timeout: float
) -> None:
    """Call POOL.FUNCTION with ARGS (each a JSON value) and print the result as JSON."""
    from rpc.blocking import BlockingServiceRemote

    values = []
    for a in args:
        try:
            values.append(json.loads(a))
        except json.JSONDecodeError:
            values.append(a)
    try:
        with BlockingServiceRemote.connect(url, credentials=token, timeout=timeout) as remote:
            result = remote.function_pool(pool).check(function)(*values)
    except (CommitDBError, RPCError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result, default=str))
