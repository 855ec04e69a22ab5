"""``python -m rpc``: the ``commitdb`` command line."""

from __future__ import annotations

from rpc.cli import main

if __name__ == "__main__":
    main(prog_name="commitdb")
