"""The benchmark document: struct Login with strings, an int, a set, a map and an xarray."""

from __future__ import annotations

from typing import Any

from commitdb.definitions import Definitions
from commitdb.types import INT64, STRING, Field, MapType, SetType, XArrayType

BENCH_NS = "5f8c2a7e-3b1d-4c9a-9e57-0d2f6b8a1c34"


def make_definitions() -> tuple[Definitions, Any, Any]:
    """Definitions with concept User, struct Login and attachment User.login."""
    defs = Definitions()
    ns = defs.namespace("Bench", BENCH_NS)
    user = defs.create_concept(ns, "User")
    login = defs.create_structure(
        ns,
        "Login",
        [
            Field("nickname", STRING),
            Field("password", STRING),
            Field("level", INT64),
            Field("tags", SetType(STRING)),
            Field("scores", MapType(STRING, INT64)),
            Field("history", XArrayType(STRING)),
        ],
    )
    att = defs.create_attachment(ns, "login", user, login)
    return defs, login, att


def make_login(login: Any, i: int = 0) -> Any:
    """A Login document with a few tags, scores and history entries."""
    return login(
        nickname=f"user{i}",
        password="correct horse battery staple",
        level=i,
        tags={"admin", "dev", "ops"},
        scores={"chess": 1200 + i, "go": 900, "poker": 50},
        history=["login", "edit", "logout"],
    )


def plain_login(i: int = 0) -> dict[str, Any]:
    """The equivalent plain dict, for the plain msgpack baseline."""
    return {
        "nickname": f"user{i}",
        "password": "correct horse battery staple",
        "level": i,
        "tags": ["admin", "dev", "ops"],
        "scores": {"chess": 1200 + i, "go": 900, "poker": 50},
        "history": ["login", "edit", "logout"],
    }
