"""Tests of the JSON-RPC 2.0 gateway (real uvicorn processes, real HTTP/WebSocket clients)."""
