"""Reading the text form of a path (the grammar is in :mod:`commitdb.paths`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from commitdb.errors import PathError
from commitdb.paths.components import (
    Component,
    Element,
    Entry,
    Field,
    Index,
    MapKey,
    Position,
    Unwrap,
)
from commitdb.paths.text import (
    _DIGITS,
    _ESCAPES,
    _HEX_ESCAPES,
    _IDENT,
    _NUMBER,
    _UUID,
    _WORD,
)

__all__ = ()


class _Parser:
    """A recursive-descent parser of the text form; errors name the 1-based column.

    :meth:`parse` gives the components (none for the root); :meth:`Path.parse
    <commitdb.paths.Path.parse>` makes the path.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> PathError:
        column = (self.pos if pos is None else pos) + 1
        return PathError(f"{message} at column {column} of path {self.text!r}")

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {ch!r}, found {found}")
        self.pos += 1

    def parse(self) -> tuple[Component, ...]:
        text = self.text
        if text == ".":
            return ()
        if not text:
            raise self.error("empty path (the root is written '.')")
        comps: list[Component] = []
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == ".":
                self.dot(comps)
            elif ch == "[":
                self.bracket(comps)
            elif ch == "!":
                comps.append(Unwrap())
                self.pos += 1
            else:
                raise self.error(f"unexpected {ch!r} (a step starts with '.', '[' or '!')")
        return tuple(comps)

    def dot(self, comps: list[Component]) -> None:
        start = self.pos
        self.pos += 1
        if self.peek() in ("'", '"'):
            comps.append(self.component(start, Field, self.parse_string()))
            return
        m = _IDENT.match(self.text, self.pos)
        if m is None:
            raise self.error("expected a field name after '.'")
        name = m.group()
        self.pos = m.end()
        if name == "element":
            if self.peek() != "[":
                raise self.error(
                    "'.element' must be followed by [i] (write a field named element as "
                    ".'element')",
                    start,
                )
            self.pos += 1
            i = self.digits()
            self.expect("]")
            comps.append(Element(i))
        elif name == "entry":
            if not comps or not isinstance(comps[-1], MapKey):
                raise self.error(
                    "'.entry' must follow a map key such as ['k'] (write a field named entry "
                    "as .'entry')",
                    start,
                )
            comps[-1] = Entry(comps[-1].key)
        else:
            comps.append(Field(name))

    def bracket(self, comps: list[Component]) -> None:
        start = self.pos
        self.pos += 1
        ch = self.peek()
        if ch.isdigit() and ch.isascii():
            comps.append(Index(self.digits()))
        elif ch == "@":
            self.pos += 1
            comps.append(self.component(start, Position, self.parse_uuid()))
        elif ch == "-" and self.peek(1).isdigit():
            raise self.error("an index is >= 0 (write an integer map key as [#-1])")
        else:
            comps.append(self.component(start, MapKey, self.parse_literal()))
        self.expect("]")

    def component(self, start: int, cls: Callable[[Any], Component], payload: object) -> Component:
        try:
            return cls(payload)
        except PathError as exc:
            raise self.error(str(exc), start) from None

    def digits(self) -> int:
        m = _DIGITS.match(self.text, self.pos)
        if m is None:
            raise self.error("expected digits")
        self.pos = m.end()
        return int(m.group())

    def parse_uuid(self) -> uuid.UUID:
        m = _UUID.match(self.text, self.pos)
        if m is None:
            raise self.error("expected a uuid in braces: {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}")
        self.pos = m.end()
        return uuid.UUID(m.group(1))

    def parse_literal(self) -> object:
        start = self.pos
        ch = self.peek()
        if ch in ("'", '"'):
            return self.parse_string()
        if ch == "#":
            self.pos += 1
            m = _NUMBER.match(self.text, self.pos)
            if m is None:
                raise self.error("expected a number after '#'")
            self.pos = m.end()
            text = m.group()
            if any(c in text for c in ".eEin"):
                return float(text)
            return int(text)
        if ch == "{":
            return self.parse_uuid()
        if ch == "(":
            return self.parse_tuple()
        if ch == "x" and self.peek(1) in ("'", '"'):
            self.pos += 1
            text = self.parse_string()
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise self.error("expected hexadecimal digits in x'…'", start) from None
        m = _WORD.match(self.text, self.pos)
        if m is not None and m.group() in ("true", "false", "nil"):
            self.pos = m.end()
            return {"true": True, "false": False, "nil": None}[m.group()]
        raise self.error(
            "expected a map key: 'text', #number, true, false, nil, {uuid}, x'hex' or (…)"
        )

    def parse_tuple(self) -> tuple[object, ...]:
        self.pos += 1
        items: list[object] = []
        self.spaces()
        while self.peek() != ")":
            items.append(self.parse_literal())
            self.spaces()
            if self.peek() == ",":
                self.pos += 1
                self.spaces()
            elif self.peek() != ")":
                raise self.error("expected ',' or ')' in a tuple")
        self.pos += 1
        return tuple(items)

    def spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def parse_string(self) -> str:
        start = self.pos
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.error("unterminated string", start)
            ch = text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            esc = self.peek()
            self.pos += 1
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
            elif esc in _HEX_ESCAPES:
                n = _HEX_ESCAPES[esc]
                digits = text[self.pos : self.pos + n]
                if len(digits) != n or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error(f"expected {n} hexadecimal digits after \\{esc}")
                code = int(digits, 16)
                if code > 0x10FFFF:
                    raise self.error(f"\\{esc}{digits} is not a unicode code point")
                out.append(chr(code))
                self.pos += n
            else:
                raise self.error(f"unknown escape \\{esc}", self.pos - 2)
