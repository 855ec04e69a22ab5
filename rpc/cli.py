"""The ``commitdb`` command line.

``main`` is the root click group (the ``commitdb`` console script and ``python -m rpc``). Each
command group lives in its own module (``rpc/cli_<group>.py``) and is attached here with
``main.add_command``.
"""

from __future__ import annotations

import click

from rpc.cli_dsm import dsm
from rpc.cli_engine import (
    flatten_command,
    get_command,
    init_command,
    log_command,
    reduce_heads_command,
    show_command,
    sync_command,
)
from rpc.cli_gateway import gateway
from rpc.cli_serve import serve
from rpc.cli_service import service

__all__ = ("main",)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="commitdb", prog_name="commitdb")
def main() -> None:
    """commitdb: typed documents in a content-addressed commit DAG."""


main.add_command(dsm)
main.add_command(service)
main.add_command(serve)
main.add_command(gateway)
main.add_command(init_command)
main.add_command(log_command)
main.add_command(show_command)
main.add_command(get_command)
main.add_command(reduce_heads_command)
main.add_command(flatten_command)
main.add_command(sync_command)
