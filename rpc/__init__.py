"""rpc: the network side of commitdb — services, remote-local calls, remote databases.

Async first (anyio); every client has a blocking facade with the same names. The JSON-RPC 2.0
gateway lives in :mod:`rpc.gateway` (optional ``gateway`` extra) and the command line in
:mod:`rpc.cli`.
"""

from __future__ import annotations

from rpc.blocking import BlockingServiceRemote
from rpc.db_remote import (
    AsyncCommitDatabaseRemote,
    AsyncDatabaseRemote,
    CommitDatabaseRemote,
    CommitEvent,
    DatabaseRemote,
    MissedEvents,
    list_databases,
)
from rpc.db_server import DatabaseServer
from rpc.errors import (
    AuthenticationError,
    CallCancelledError,
    CallTimeoutError,
    ConnectionClosedError,
    FrameTooLargeError,
    HandshakeError,
    InvalidArgumentsError,
    MethodNotFoundError,
    ProtocolError,
    RemoteError,
    RPCError,
)
from rpc.pools import AttachmentFunction, AttachmentFunctionPool, Function, FunctionPool
from rpc.remote_local import AttachmentMutatingRemote
from rpc.server import RPCServer
from rpc.service import Service
from rpc.service_remote import ServiceRemote
from rpc.service_server import ServiceServer
from rpc.transports import client_ssl_context, server_ssl_context

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
