"""Errors of the DSM loader, located at a token, and the phrases its messages share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from commitdb.dsm.ast import SourcePos
from commitdb.errors import DefinitionError, DSMError, ValidationError
from commitdb.types import NamedType, Type

__all__ = ()

#: The article of each kind of declared type, for messages (``a concept``, ``an enum``).
_ARTICLE = {"concept": "a", "club": "a", "enum": "an", "struct": "a"}


def _err(pos: SourcePos, message: str) -> DSMError:
    return DSMError(message, pos.file, pos.line, pos.col)


@contextmanager
def _located(pos: SourcePos) -> Iterator[None]:
    """Locate a definition or validation error raised by the engine at ``pos``."""
    try:
        yield
    except DSMError:
        raise
    except (DefinitionError, ValidationError) as exc:
        raise _err(pos, str(exc)) from exc


def _at(pos: SourcePos | None, here: SourcePos) -> str:
    """Where something was first declared, relative to ``here``."""
    if pos is None:
        return "in the definitions loaded before"
    if pos.file == here.file:
        return f"at line {pos.line}, column {pos.col}"
    return f"at {pos}"


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = [f"'{c}'" for c in close]
    text = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" (did you mean {text}?)"


def _describe_type(t: Type) -> str:
    """A type for messages: ``concept 'NS::Name'`` for a declared type, else ``'int64'``."""
    if isinstance(t, NamedType):
        return f"{t.kind} '{t.qualified_name}'"
    return f"'{t}'"


def _check_unique(
    seen: dict[str, SourcePos], name: str, pos: SourcePos, what: str, container: str
) -> None:
    """Record `name` declared at `pos` in `seen`; a second declaration is a located error."""
    first = seen.get(name)
    if first is not None:
        raise _err(
            pos, f"duplicate {what} '{name}' in {container} (first declared {_at(first, pos)})"
        )
    seen[name] = pos
