"""Tests of the JSON-RPC gateway clients (Python and JavaScript) against a live gateway."""
