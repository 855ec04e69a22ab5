"""Turn DSM syntax trees into typed :class:`~commitdb.definitions.Definitions`.

The loader reads several sources together: a namespace may be split across blocks and files,
and a declaration may use a type declared later or in another file. It runs in three passes:

1. **collect** every namespace and named declaration (concept, club, enum, struct) into a
   symbol table, checking names, duplicates and the shape of enums and structs;
2. **build** the named types on demand in dependency order (a concept after its parent, a
   structure after the types of its fields), converting default literals through the field
   types and detecting recursive structures and inheritance cycles;
3. register memberships, attachments and function pools.

Name resolution: ``NS::Name`` looks in the namespace named ``NS``; a bare ``Name`` looks in
the current namespace first, then in every other namespace (two candidates is an ambiguity).
Pools are outside any namespace, so their bare names always search every namespace.

The same declaration repeated in another file is accepted when it defines the same runtime id
(like :meth:`Definitions.extend`); a divergent one is a conflicting redefinition. Every
semantic error is a :class:`~commitdb.errors.DSMError` located at the offending token.

This module reads the sources and runs the passes; the passes are its neighbours:
:mod:`~commitdb.dsm.symbols` (pass 1 and name lookup), :mod:`~commitdb.dsm.resolution`
(pass 2: type expressions and named types), :mod:`~commitdb.dsm.literals` (default values),
:mod:`~commitdb.dsm.declarations` (pass 3), with :mod:`~commitdb.dsm.diagnostics` and
:mod:`~commitdb.dsm.docstrings` shared by them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from commitdb.definitions import Definitions
from commitdb.dsm.ast import AttachmentDecl, DSMFile, MembershipDecl, PoolDecl
from commitdb.dsm.declarations import _Declarations
from commitdb.dsm.docstrings import normalize_doc
from commitdb.dsm.parser import parse, parse_file
from commitdb.dsm.resolution import _TypeResolver
from commitdb.dsm.symbols import BUILTIN_TYPE_NAMES, _check_name, _SymbolTable
from commitdb.types import Namespace

__all__ = (
    "BUILTIN_TYPE_NAMES",
    "DSMText",
    "Source",
    "load_definitions",
    "load_text",
    "normalize_doc",
)


@dataclass(frozen=True, slots=True)
class DSMText:
    """DSM source text given in memory, with the file name used in positions.

    Attributes:
        text: The DSM source.
        file: The name reported in ``file:line:col`` positions.
    """

    text: str
    file: str = "<string>"


#: What :func:`load_definitions` reads: a path, a ``str`` (text or path), a text or a parsed file.
Source: TypeAlias = "str | os.PathLike[str] | DSMText | DSMFile"


def load_text(
    text: str, file: str = "<string>", definitions: Definitions | None = None
) -> Definitions:
    """Load the definitions declared by one DSM text.

    Args:
        text: The DSM source.
        file: The file name used in error positions.
        definitions: Definitions to extend (atomically); a new registry when None.

    Returns:
        The definitions (``definitions`` itself when given).

    Raises:
        DSMError: The text does not parse or does not make sense.
    """
    return load_definitions([DSMText(text, file)], definitions)


def load_definitions(
    sources: Source | Iterable[Source], definitions: Definitions | None = None
) -> Definitions:
    """Load DSM sources together into definitions.

    Each source is a :class:`pathlib.Path` (or other path-like) to read, a :class:`DSMText`,
    an already parsed :class:`DSMFile`, or a ``str``: DSM text when it contains a newline,
    ``;`` or ``{``, otherwise a file path.

    Types declared in ``definitions`` can be referenced by the sources. Nothing is added to
    ``definitions`` unless every source loads.

    Args:
        sources: One source or several.
        definitions: Definitions to extend; a new registry when None.

    Returns:
        The definitions (``definitions`` itself when given).

    Raises:
        DSMError: A source does not parse or does not make sense (located ``file:line:col``).
        OSError: A file cannot be read.
    """
    items: list[Source]
    if isinstance(sources, str | os.PathLike | DSMText | DSMFile):
        items = [sources]
    else:
        items = list(sources)
    files = [_parse_source(item) for item in items]
    work = Definitions() if definitions is None else definitions.copy()
    _Loader(work).load(files)
    if definitions is None:
        return work
    # The copy was checked against everything in ``definitions``: extending cannot conflict.
    definitions.extend(work)
    return definitions


def _parse_source(item: Source) -> DSMFile:
    if isinstance(item, DSMFile):
        return item
    if isinstance(item, DSMText):
        return parse(item.text, item.file)
    if isinstance(item, str) and any(c in item for c in "\n;{"):
        return parse(item)
    return parse_file(item)


class _Loader:
    """One load: the symbol table and the passes over the parsed files."""

    def __init__(self, defs: Definitions) -> None:
        self.table = _SymbolTable(defs)
        self.types = _TypeResolver(defs, self.table)
        self.declarations = _Declarations(self.types)

    def load(self, files: list[DSMFile]) -> None:
        memberships: list[tuple[MembershipDecl, Namespace]] = []
        attachments: list[tuple[AttachmentDecl, Namespace]] = []
        pools: list[PoolDecl] = []
        # pass 1: collect
        for dsm in files:
            for block in dsm.namespaces:
                ns = self.table.namespace(block)
                for decl in block.decls:
                    if isinstance(decl, MembershipDecl):
                        memberships.append((decl, ns))
                    elif isinstance(decl, AttachmentDecl):
                        _check_name("attachment", decl.name, decl.pos)
                        attachments.append((decl, ns))
                    else:
                        self.table.declare(decl, ns)
            pools.extend(dsm.pools)
        # pass 2: build every named type
        for sym in list(self.table.symbols.values()):
            self.types.build(sym)
        # pass 3
        for membership, ns in memberships:
            self.declarations.membership(membership, ns)
        self.declarations.attachments(attachments)
        self.declarations.pools(pools)
