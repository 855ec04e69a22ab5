"""rpc: the network side of commitdb — services, remote-local calls, remote databases.

Async first (anyio); every client has a blocking facade with the same names. The JSON-RPC 2.0
gateway lives in :mod:`rpc.gateway` (optional ``gateway`` extra) and the command line in
:mod:`rpc.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "AsyncCommitDatabaseRemote": "rpc.db_remote",
    "AsyncDatabaseRemote": "rpc.db_remote",
    "AttachmentFunction": "rpc.pools",
    "AttachmentFunctionPool": "rpc.pools",
    "AttachmentMutatingRemote": "rpc.remote_local",
    "AuthenticationError": "rpc.errors",
    "BlockingServiceRemote": "rpc.blocking",
    "CallCancelledError": "rpc.errors",
    "CallTimeoutError": "rpc.errors",
    "CommitDatabaseRemote": "rpc.db_remote",
    "CommitEvent": "rpc.db_remote",
    "ConnectionClosedError": "rpc.errors",
    "DatabaseRemote": "rpc.db_remote",
    "DatabaseServer": "rpc.db_server",
    "FrameTooLargeError": "rpc.errors",
    "Function": "rpc.pools",
    "FunctionPool": "rpc.pools",
    "HandshakeError": "rpc.errors",
    "InvalidArgumentsError": "rpc.errors",
    "MethodNotFoundError": "rpc.errors",
    "MissedEvents": "rpc.db_remote",
    "ProtocolError": "rpc.errors",
    "RPCError": "rpc.errors",
    "RPCServer": "rpc.server",
    "RemoteError": "rpc.errors",
    "Service": "rpc.service",
    "ServiceRemote": "rpc.service_remote",
    "ServiceServer": "rpc.service_server",
    "client_ssl_context": "rpc.transports",
    "list_databases": "rpc.db_remote",
    "server_ssl_context": "rpc.transports",
}


def __getattr__(name: str) -> Any:
    # Names load on first use, so that ``commitdb`` commands start fast.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = (
    "AsyncCommitDatabaseRemote",
    "AsyncDatabaseRemote",
    "AttachmentFunction",
    "AttachmentFunctionPool",
    "AttachmentMutatingRemote",
    "AuthenticationError",
    "BlockingServiceRemote",
    "CallCancelledError",
    "CallTimeoutError",
    "CommitDatabaseRemote",
    "CommitEvent",
    "ConnectionClosedError",
    "DatabaseRemote",
    "DatabaseServer",
    "FrameTooLargeError",
    "Function",
    "FunctionPool",
    "HandshakeError",
    "InvalidArgumentsError",
    "MethodNotFoundError",
    "MissedEvents",
    "ProtocolError",
    "RPCError",
    "RPCServer",
    "RemoteError",
    "Service",
    "ServiceRemote",
    "ServiceServer",
    "client_ssl_context",
    "list_databases",
    "server_ssl_context",
)
