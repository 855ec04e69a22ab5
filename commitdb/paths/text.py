"""The printed form of path pieces: the lexical rules of the grammar (see
:mod:`commitdb.paths`), quoted strings and map-key literals."""

from __future__ import annotations

import re
import uuid

from commitdb.ids import BlobId, CommitId
from commitdb.values import EnumCase, Key, StructValue, Typed

__all__ = ()


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = frozenset({"entry", "element"})
_DIGITS = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"-?(?:inf|nan|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)")
_WORD = re.compile(r"[A-Za-z]+")
_UUID = re.compile(
    r"\{([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}"
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "0": "\0"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _quote(text: str) -> str:
    out = ["'"]
    for ch in text:
        if ch == "\\" or ch == "'":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable():
            out.append(ch)
        else:
            o = ord(ch)
            out.append(
                f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
            )
    out.append("'")
    return "".join(out)


def _literal(key: object) -> str:
    """The text of a map key (see the grammar in the module docstring)."""
    if isinstance(key, str):
        return _quote(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "nil"
    if isinstance(key, int):
        return f"#{int(key)}"
    if isinstance(key, float):
        return f"#{float(key)!r}"
    if isinstance(key, uuid.UUID):
        return f"{{{key}}}"
    if isinstance(key, BlobId | CommitId):
        return _quote(key.hex())
    if isinstance(key, bytes):
        return f"x'{key.hex()}'"
    if isinstance(key, tuple):
        inner = ", ".join(_literal(x) for x in key)
        return f"({inner},)" if len(key) == 1 else f"({inner})"
    if isinstance(key, EnumCase):
        return _quote(key.name)
    if isinstance(key, Key):
        return f"{{{key.id}}}"
    if isinstance(key, Typed):
        return _literal(key.value)
    if isinstance(key, StructValue):
        return _literal(tuple(getattr(key, f) for f in key._fields))
    return f"<{key!r}>"
