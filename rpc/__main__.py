"""``python -m rpc``: the ``commitdb`` command line."""

from __future__ import annotations

from rpc.cli import main

__all__: tuple[str, ...] = ()

if __name__ == "__main__":
    main(prog_name="commitdb")
