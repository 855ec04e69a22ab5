"""The ``commitdb`` command line.

``main`` is the root click group (the ``commitdb`` console script and ``python -m rpc``). Each
command group lives in its own module (``rpc/cli_<group>.py``) and is attached here with
``main.add_command``.
"""

from __future__ import annotations

import click

from rpc.cli_dsm import dsm
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
