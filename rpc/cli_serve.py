"""``commitdb serve``: serve databases by name over TCP, Unix sockets or TLS.

::

    commitdb serve main=/srv/main.cdb notes=/srv/notes.db --listen tcp://0.0.0.0:54321 -v

Each database is ``PATH`` (served under its file name) or ``NAME=PATH``; flat and commit
databases are detected. Once every listener is bound the command prints
``serving NAMES on URL`` (one line per listener) on standard error. SIGINT or SIGTERM shuts it
down gracefully: listeners close, requests in flight finish, databases close, and the exit
status is 0.
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
from typing import Any

import anyio
import click

from rpc.cli_service import configure_logging
from rpc.transports import loop_options

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


def _tokens(tokens: tuple[str, ...], token_file: str | None) -> list[str]:
    found = list(tokens)
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            found.extend(line.strip() for line in f if line.strip() and not line.startswith("#"))
    return found


def token_authenticator(tokens: list[str]) -> Any:
    """An authenticator accepting the clients whose credentials equal one of `tokens`.

    Args:
        tokens: The accepted tokens.

    Returns:
        A function of the hello's credentials, comparing in constant time.
    """
    allowed = [t.encode() for t in tokens]

    def check(credentials: Any) -> bool:
        if isinstance(credentials, str):
            credentials = credentials.encode()
        if not isinstance(credentials, bytes):
            return False
        return any(hmac.compare_digest(credentials, t) for t in allowed)

    return check


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
    help="accept only clients presenting one of these credentials (repeatable)",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    help="accepted credentials, one per line (keeps them off the command line)",
)
@click.option(
    "--durable/--no-durable",
    default=True,
    show_default=True,
    help="flush every commit to disk before acknowledging it (--no-durable survives a crash "
    "of the server, not of the machine)",
)
@click.option(
    "--subscriber-queue",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="how many commits a subscriber may fall behind before it is told it missed events",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.001),
    default=0.05,
    show_default=True,
    help="seconds between two checks for commits written by other processes",
)
@click.option("-v", "--verbose", count=True, help="-v: connections and subscriptions; -vv: debug")
def serve(
    databases: tuple[str, ...],
    listens: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
    tokens: tuple[str, ...],
    token_file: str | None,
    durable: bool,
    subscriber_queue: int,
    poll_interval: float,
    verbose: int,
) -> None:
    """Serve DATABASES (PATH or NAME=PATH; flat or commit) until SIGINT/SIGTERM.

    Clients list the served databases and open one by name. Shutdown is graceful: listeners
    close, in-flight requests finish, databases close; nothing acknowledged is lost.
    """
    from commitdb.errors import CommitDBError
    from rpc.db_server import DatabaseServer
    from rpc.server import RPCServer
    from rpc.transports import parse_endpoint, server_ssl_context

    configure_logging(verbose)
    pairs = [_name_and_path(d) for d in databases]
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise click.BadParameter("two databases have the same name", param_hint="DATABASES")
    try:
        endpoints = [parse_endpoint(url) for url in listens]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    if any(ep.tls for ep in endpoints) and not tls_cert:
        raise click.UsageError("a tls:// or unix+tls:// listener needs --tls-cert (and --tls-key)")
    accepted = _tokens(tokens, token_file)
    ctx = server_ssl_context(tls_cert, tls_key, client_ca) if tls_cert else None
    try:
        app = DatabaseServer(
            dict(pairs),
            durable=durable,
            subscriber_queue=subscriber_queue,
            poll_interval=poll_interval,
            authenticator=token_authenticator(accepted) if accepted else None,
        )
    except (CommitDBError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> None:
        # the signal receiver exists before "serving" is printed: a signal sent as soon as
        # the line appears is a graceful shutdown, never the default (fatal) handler
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:
                await tg.start(app.run_watchers)
                async with RPCServer(app, ssl_context=ctx) as server:
                    for ep in endpoints:
                        bound = await server.listen(ep)
                        click.echo(f"serving {', '.join(names)} on {bound}", err=True)
                    async for sig in signals:
                        click.echo(f"received {signal.Signals(sig).name}, shutting down", err=True)
                        break
                    log.info("closing listeners; waiting for requests in flight")
                tg.cancel_scope.cancel()

    try:
        anyio.run(run, backend_options=loop_options())
    except (OSError, ExceptionGroup) as exc:  # a listener could not bind
        raise click.ClickException(str(_first_os_error(exc))) from None
    finally:
        app.close()
    click.echo("stopped", err=True)


def _first_os_error(exc: BaseException) -> BaseException:
    """The OSError inside an exception group (re-raise anything else)."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_os_error(inner)
            if isinstance(found, OSError):
                return found
    raise exc
