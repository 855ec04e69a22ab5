"""Who calls and over what: the :class:`CallContext` every method handler receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpc.gateway.security import Principal, require_permission, unauthorized

__all__ = ("CallContext",)


@dataclass
class CallContext:
    """Who calls and over what: passed to every handler."""

    transport: str  # "http" or "ws"
    client: str
    principal: Principal | None
    session: Any = None  # the WsSession over WebSocket

    def require(self, level: str) -> None:
        """Raise -32003/-32004 unless the caller may do `level` (read, write, admin)."""
        if self.principal is None:
            raise unauthorized("no valid token")
        require_permission(self.principal, level)
