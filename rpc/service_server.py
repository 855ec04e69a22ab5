"""ServiceServer: an RPCServer dedicated to one Service (the name users look for)."""

from __future__ import annotations

import ssl
from typing import Any

from rpc.server import RPCServer
from rpc.service import Service

__all__ = ("ServiceServer",)


class ServiceServer(RPCServer):
    """Serves a :class:`~rpc.service.Service` on TCP, Unix sockets or TLS.

    ::

        async with ServiceServer(service) as server:
            endpoint = await server.listen("tcp://127.0.0.1:0")
            ...                     # many clients at once; graceful shutdown on exit
    """

    def __init__(
        self, service: Service, *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
    ) -> None:
        super().__init__(service, ssl_context=ssl_context, **kwargs)
        self.service = service
