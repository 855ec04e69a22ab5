"""The JSON-RPC 2.0 gateway: the service's pools and the databases for any language.

``commitdb gateway`` serves :func:`create_app` under uvicorn: ``POST /`` and ``/ws`` speak
strict JSON-RPC 2.0, ``/health`` and ``/metrics`` report. See ``docs/jsonrpc-gateway.md``.
"""

from __future__ import annotations

from rpc.gateway.app import Gateway, GatewayConfig, create_app

__all__ = ("Gateway", "GatewayConfig", "create_app")
