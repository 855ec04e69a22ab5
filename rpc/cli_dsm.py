"""``commitdb dsm``: check and print DSM schema files.

``commitdb dsm check FILE...`` loads the files together and prints one summary line of counts;
``commitdb dsm print FILE...`` prints them as normalized DSM. A directory stands for the
``*.dsm`` files it holds, ``-`` for standard input. On an error the message
(``file:line:col: message`` for DSM errors) goes to standard error and the exit status is 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from commitdb.definitions import Definitions
from commitdb.dsm import DSMText, Source, load_definitions, to_dsm
from commitdb.errors import DefinitionError

__all__ = ("dsm",)

_FILES = click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, allow_dash=True),
)


def _fail(message: str) -> click.exceptions.Exit:
    click.echo(message, err=True)
    return click.exceptions.Exit(1)


def _sources(files: tuple[Path, ...]) -> list[Source]:
    """Expand directories to their ``*.dsm`` files and ``-`` to standard input."""
    out: list[Source] = []
    for path in files:
        if str(path) == "-":
            out.append(DSMText(sys.stdin.read(), "<stdin>"))
        elif path.is_dir():
            found = sorted(path.glob("*.dsm"))
            if not found:
                raise _fail(f"{path}: no .dsm files in this directory")
            out.extend(found)
        else:
            out.append(path)
    return out


def _load(files: tuple[Path, ...]) -> tuple[Definitions, int]:
    sources = _sources(files)
    try:
        return load_definitions(sources), len(sources)
    except DefinitionError as exc:
        raise _fail(str(exc)) from exc
    except OSError as exc:
        name = exc.filename if exc.filename is not None else "?"
        raise _fail(f"{name}: cannot read file: {exc.strerror or exc}") from exc


@click.group()
def dsm() -> None:
    """Check and print DSM schema files."""


@dsm.command()
@_FILES
def check(files: tuple[Path, ...]) -> None:
    """Validate DSM FILES together and print a summary of what they define."""
    definitions, count = _load(files)
    summary = " ".join(f"{kind}={n}" for kind, n in definitions.counts().items())
    click.echo(f"{count} file{'' if count == 1 else 's'} OK: {summary}")


@dsm.command(name="print")
@_FILES
def print_(files: tuple[Path, ...]) -> None:
    """Print DSM FILES, loaded together, as normalized DSM."""
    definitions, _ = _load(files)
    try:
        text = to_dsm(definitions)
    except DefinitionError as exc:
        raise _fail(f"cannot print: {exc}") from exc
    click.echo(text, nl=False)
