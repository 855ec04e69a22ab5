"""The DSM lexer: turns source text into a list of :class:`Token`.

The lexer never raises. A lexical problem (unterminated string, doc string or comment, invalid
escape, stray character) becomes a single ``error`` token, located where the problem starts,
followed by the ``eof`` token; the parser raises when it reaches it, so the first error in
source order is the one reported. Malformed numbers (``1.2.3``, ``0x``, ``2D``) and
identifiers with non-ASCII characters become ``badnum`` / ``badident`` tokens so the parser
can word the error for its context.

Keywords are not reserved: they are lexed as identifiers and recognised by the parser where
they are expected (the samples use ``default``, ``float``, ``bool`` and ``none`` as enum cases,
``key`` as a field name).

Token kinds: ``ident``, ``int``, ``float``, ``string``, ``doc``, ``uuid``, ``eof``, ``error``,
``badnum``, ``badident``, and one kind per punctuation, equal to its text: ``{ } ( ) < > , ;
= . :: :``. ``>>`` is always two ``>`` tokens so nested generics close naturally.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = (
    "BADIDENT",
    "BADNUM",
    "DOC",
    "EOF",
    "ERROR",
    "FLOAT",
    "IDENT",
    "INT",
    "STRING",
    "UUID",
    "Token",
    "describe",
    "normalize",
    "tokenize",
)

IDENT = "ident"
INT = "int"
FLOAT = "float"
STRING = "string"
DOC = "doc"
UUID = "uuid"
EOF = "eof"
ERROR = "error"
BADNUM = "badnum"
BADIDENT = "badident"


class Token(NamedTuple):
    """One lexical token.

    Attributes:
        kind: The token kind (see the module docstring).
        text: The source text of the token (for ``error``, the offending text).
        value: The decoded string for ``string``, the verbatim inner text for ``doc``, the
            canonical lowercase uuid for ``uuid``, the message for ``error``; otherwise ``""``.
        line: 1-based line of the first character.
        col: 1-based column of the first character.
        offset: 0-based index of the first character in the normalized text (see
            :func:`normalize`).
    """

    kind: str
    text: str
    value: str
    line: int
    col: int
    offset: int


_HEX = "[0-9A-Fa-f]"
_UUID_BODY = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"

# Each match skips leading whitespace, then matches one token or comment; the group named by
# ``lastgroup`` says which.
_TOKEN_RE = re.compile(
    r"[ \t\n\r\f\v]*(?:"
    + "|".join(
        (
            r"(?P<lcomment>//[^\n]*)",
            r"(?P<bcomment>/\*.*?\*/)",
            r'(?P<doc>""".*?""")',
            r'(?P<string>"(?!"")(?:[^"\\\n]|\\[^\n])*")',
            rf"(?P<uuid>\{{[ \t]*(?P<uuidbody>{_UUID_BODY})[ \t]*\}})",
            r"(?P<number>-?(?:0[xX][0-9A-Fa-f]+"
            r"|(?:[0-9]+\.[0-9]+|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
            r"|[0-9]+[eE][+-]?[0-9]+|[0-9]+))",
            r"(?P<ident>\w+)",
            r"(?P<punct>::|[{}()<>,;=.:])",
        )
    )
    + ")",
    re.DOTALL,
)
_WS_CHARS = frozenset(" \t\n\r\f\v")
_NUMBER_TAIL_RE = re.compile(r"[\w.]+")
_FLOAT_CHARS = frozenset(".eE")

_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "b": "\b",
    "f": "\f",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "/": "/",
}
_ESCAPE_RE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")


def describe(tok: Token) -> str:
    """Describe a token for an error message, e.g. ``identifier 'foo'`` or ``'{'``.

    Args:
        tok: The token to describe.

    Returns:
        A short human-readable description.
    """
    kind = tok.kind
    if kind == IDENT:
        return f"identifier '{tok.text}'"
    if kind in (INT, FLOAT):
        return f"number '{tok.text}'"
    if kind == STRING:
        text = tok.text if len(tok.text) <= 40 else tok.text[:37] + '..."'
        return f"string {text}"
    if kind == DOC:
        return "doc string"
    if kind == UUID:
        return f"uuid {tok.text}"
    if kind == EOF:
        return "end of file"
    return f"'{tok.text}'"


def _decode_string(body: str) -> tuple[str, int, str]:
    """Decode the escape sequences of a string body.

    Returns:
        ``(value, -1, "")`` on success, or ``("", offset, message)`` where offset is the index
        of the backslash of the first invalid escape within ``body``.
    """
    if "\\" not in body:
        return body, -1, ""
    out: list[str] = []
    last = 0
    for m in _ESCAPE_RE.finditer(body):
        out.append(body[last : m.start()])
        esc = m.group(1)
        if esc[0] in "uU" and len(esc) > 1:
            code = int(esc[1:], 16)
            if code > 0x10FFFF:
                return (
                    "",
                    m.start(),
                    f"invalid escape sequence '\\{esc}' in string: not a code point",
                )
            out.append(chr(code))
        elif esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
        else:
            hint = " (expected \\u and four hex digits)" if esc in "uU" else ""
            return "", m.start(), f"invalid escape sequence '\\{esc}' in string{hint}"
        last = m.end()
    out.append(body[last:])
    return "".join(out), -1, ""


def _stray(text: str, pos: int) -> tuple[str, str]:
    """Return ``(offending text, message)`` for an unlexable position."""
    if text.startswith('"""', pos):
        return '"""', 'unterminated doc string: missing closing \'"""\''
    ch = text[pos]
    if ch == '"':
        return '"', "unterminated string: missing closing '\"' before the end of the line"
    if text.startswith("/*", pos):
        return "/*", "unterminated comment: missing closing '*/'"
    if ch == "-":
        return "-", "expected a digit after '-'"
    if ch.isprintable() and not ch.isspace():
        return ch, f"unexpected character '{ch}'"
    return ch, f"unexpected character {ch!r} (U+{ord(ch):04X})"


def normalize(text: str) -> str:
    """Return the text the lexer actually scans: ``\r\n`` line endings become ``\n``.

    Args:
        text: The source text.

    Returns:
        The normalized text; token offsets index into it.
    """
    if "\r" in text:
        return text.replace("\r\n", "\n")
    return text


def tokenize(text: str) -> list[Token]:
    """Split DSM source text into tokens.

    Comments and whitespace are dropped. Lexing stops at the first ``error`` token. The last
    token is always ``eof``, located just past the last character.

    Args:
        text: The source text (``\\r\\n`` line endings are accepted).

    Returns:
        The tokens, ending with an ``eof`` token.
    """
    text = normalize(text)
    tokens: list[Token] = []
    append = tokens.append
    match = _TOKEN_RE.match
    count = text.count
    rfind = text.rfind
    # Token is a NamedTuple; building it with tuple.__new__ skips the Python-level __new__.
    new = tuple.__new__
    n = len(text)
    # A leading byte-order mark is skipped and does not count as a column.
    pos = line_start = scanned = 1 if text.startswith("\ufeff") else 0
    line = 1
    while True:
        m = match(text, pos)
        if m is None:
            start = pos
            while start < n and text[start] in _WS_CHARS:
                start += 1
            nl = count("\n", scanned, start)
            if nl:
                line += nl
                line_start = rfind("\n", scanned, start) + 1
            if start >= n:
                append(new(Token, (EOF, "", "", line, n - line_start + 1, n)))
                return tokens
            bad, message = _stray(text, start)
            col = start - line_start + 1
            append(new(Token, (ERROR, bad, message, line, col, start)))
            break
        kind = m.lastgroup or ""
        pos = m.end()
        if kind == "lcomment" or kind == "bcomment":
            continue
        start = m.start(kind)
        nl = count("\n", scanned, start)
        if nl:
            line += nl
            line_start = rfind("\n", scanned, start) + 1
        scanned = start
        col = start - line_start + 1
        tok_text = m.group(kind)
        if kind == "ident":
            if tok_text.isascii():
                append(new(Token, (IDENT, tok_text, "", line, col, start)))
            else:
                append(new(Token, (BADIDENT, tok_text, "", line, col, start)))
        elif kind == "punct":
            append(new(Token, (tok_text, tok_text, "", line, col, start)))
        elif kind == "number":
            if pos < n and (text[pos].isalnum() or text[pos] in "_."):
                tail = _NUMBER_TAIL_RE.match(text, pos)
                if tail is not None:
                    pos = tail.end()
                append(new(Token, (BADNUM, text[start:pos], "", line, col, start)))
            elif "x" in tok_text or "X" in tok_text or _FLOAT_CHARS.isdisjoint(tok_text):
                append(new(Token, (INT, tok_text, "", line, col, start)))
            else:
                append(new(Token, (FLOAT, tok_text, "", line, col, start)))
        elif kind == "string":
            value, bad_at, message = _decode_string(tok_text[1:-1])
            if bad_at >= 0:
                err = (ERROR, tok_text, message, line, col + 1 + bad_at, start + 1 + bad_at)
                append(new(Token, err))
                break
            append(new(Token, (STRING, tok_text, value, line, col, start)))
        elif kind == "doc":
            append(new(Token, (DOC, tok_text, tok_text[3:-3], line, col, start)))
        else:
            value = m.group("uuidbody").lower()
            append(new(Token, (UUID, tok_text, value, line, col, start)))
    # Stopped on an error token: locate eof at it so nothing follows it.
    last = tokens[-1]
    append(new(Token, (EOF, "", "", last.line, last.col, last.offset)))
    return tokens
