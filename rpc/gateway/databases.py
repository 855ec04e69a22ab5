"""The commit databases the gateway serves: opening them, describing them, commit headers.

:func:`open_databases` opens (or creates) the configured databases — or, when none is named,
the embedded default one, whose definitions follow the service's types and attachments.
Each is a :class:`ServedDatabase`: the database, a write limiter (one writer at a time) and
the event that wakes its watcher (:func:`rpc.gateway.subscriptions.watch_database`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import anyio

from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitHeader
from commitdb.definitions import Definitions
from commitdb.errors import StorageError

__all__ = (
    "DEFAULT_DATABASE",
    "DEFAULT_DATABASE_FILE",
    "ServedDatabase",
    "close_databases",
    "header_json",
    "open_databases",
)

DEFAULT_DATABASE = "default"
DEFAULT_DATABASE_FILE = "commitdb-gateway.cdb"


@dataclass
class ServedDatabase:
    """A commit database the gateway serves under a name."""

    name: str
    path: str
    db: CommitDatabase
    write_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    wake: anyio.Event = field(default_factory=anyio.Event)

    def describe(self) -> dict[str, Any]:
        """What ``db.list`` and ``/health`` show."""
        return {
            "name": self.name,
            "kind": "commit",
            "uuid": str(self.db.uuid()),
            "documentation": self.db.documentation(),
        }


def header_json(h: CommitHeader) -> dict[str, Any]:
    """A commit header as JSON (links that do not exist are null)."""
    parent, target = h.parent_commit_id, h.target_commit_id
    return {
        "commit": h.commit_id.hex(),
        "parent": parent.hex() if parent.is_valid else None,
        "target": target.hex() if target.is_valid else None,
        "kind": h.kind.label,
        "label": h.label,
        "timestamp": h.timestamp,
        "author": h.author,
    }


def open_databases(
    served: dict[str, ServedDatabase],
    service: Definitions,
    databases: dict[str, str],
    data_dir: str,
) -> None:
    """Open the named databases, creating the missing ones (blocking).

    Args:
        served: Where each opened database is added, as soon as it is open (what opened
            before a failure is there to close).
        service: The service's definitions: its types and attachments (not its pools) are
            the definitions of a created database.
        databases: The configured databases, name -> path; empty for the embedded default
            one.
        data_dir: Where the default database lives.

    Raises:
        StorageError: A path that holds something other than a commit database.
    """
    defs = service.extract(service.types(), service.attachments())
    named = dict(databases)
    default = not named
    if default:
        os.makedirs(data_dir, exist_ok=True)
        named = {DEFAULT_DATABASE: os.path.join(data_dir, DEFAULT_DATABASE_FILE)}
    for name, path in named.items():
        if not os.path.exists(path):
            db = CommitDatabase.create(path, defs, documentation=f"commitdb gateway: {name}")
        elif CommitDatabase.is_compatible(path):
            db = CommitDatabase.open(path)
            if default and not db.definitions().contains(defs):
                db.extend_definitions(defs)  # the embedded database follows its service
        else:
            raise StorageError(f"{path} is not a commitdb commit database")
        served[name] = ServedDatabase(name, path, db)


def close_databases(databases: dict[str, ServedDatabase]) -> None:
    """Close every served database."""
    for served in databases.values():
        served.db.close()
