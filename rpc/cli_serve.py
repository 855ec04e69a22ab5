"""``commitdb serve``: serve databases by name over TCP, Unix sockets or TLS."""

from __future__ import annotations

import logging
import os
import signal

import anyio
import click

from rpc.cli_service import configure_logging

__all__ = ("serve",)

log = logging.getLogger("commitdb.serve")


def _name_and_path(spec: str) -> tuple[str, str]:
    """``name=path`` or just ``path`` (named after its file name)."""
    name, sep, path = spec.partition("=")
    if not sep:
        path = spec
        name = os.path.splitext(os.path.basename(os.path.normpath(spec)))[0]
    if not name or not path:
        raise click.BadParameter(f"{spec!r}: expected PATH or NAME=PATH", param_hint="DATABASES")
    return name, path


@click.command()
@click.argument("databases", nargs=-1, required=True)
@click.option(
    "--listen",
    "listens",
    multiple=True,
    default=("tcp://127.0.0.1:54321",),
    show_default=True,
    help="tcp://host:port, unix:///path, tls://host:port, unix+tls:///path (repeatable)",
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
@click.option("-v", "--verbose", count=True, help="-v info, -vv debug")
def serve(
    databases: tuple[str, ...],
    listens: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
    tokens: tuple[str, ...],
    verbose: int,
) -> None:
    """Serve DATABASES (PATH or NAME=PATH; flat or commit) until SIGINT/SIGTERM.

    Clients list the served databases and open one by name. Shutdown is graceful: listeners
    close, in-flight requests finish, databases close; nothing acknowledged is lost.
    """
    from commitdb.errors import CommitDBError
    from rpc.db_server import DatabaseServer
    from rpc.server import RPCServer
    from rpc.transports import server_ssl_context

    configure_logging(verbose)
    pairs = [_name_and_path(d) for d in databases]
    try:
        app = DatabaseServer(dict(pairs))
    except (CommitDBError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if tokens:
        allowed = set(tokens)
        app.authenticator = lambda creds: creds in allowed
    ctx = server_ssl_context(tls_cert, tls_key, client_ca) if tls_cert else None

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(app.run_watchers)
            async with RPCServer(app, ssl_context=ctx) as server:
                for url in listens:
                    ep = await server.listen(url)
                    click.echo(f"serving {', '.join(n for n, _ in pairs)} on {ep}", err=True)
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for sig in signals:
                        click.echo(f"received {signal.Signals(sig).name}, shutting down", err=True)
                        break
            tg.cancel_scope.cancel()

    try:
        anyio.run(run)
    finally:
        app.close()
        click.echo("stopped", err=True)
