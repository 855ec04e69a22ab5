"""The symbol table of one load: namespaces and declared names (pass 1), and name lookup.

Name resolution: ``NS::Name`` looks in the namespace named ``NS``; a bare ``Name`` looks in
the current namespace first, then in every other namespace (two candidates is an ambiguity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from commitdb.definitions import Definitions, is_valid_identifier
from commitdb.dsm.ast import (
    ClubDecl,
    ConceptDecl,
    Decl,
    EnumDecl,
    NamespaceBlock,
    SourcePos,
    StructDecl,
)
from commitdb.dsm.diagnostics import _ARTICLE, _at, _check_unique, _err, _suggest
from commitdb.dsm.parser import GENERIC_TYPES
from commitdb.types import PRIMITIVES, NamedType, Namespace

__all__ = ("BUILTIN_TYPE_NAMES",)

#: Names of built-in types: never usable as the name of a declared type.
BUILTIN_TYPE_NAMES: frozenset[str] = frozenset({*PRIMITIVES, *GENERIC_TYPES, "any_concept"})

#: A declaration of a named type.
_TypeDecl = ConceptDecl | ClubDecl | EnumDecl | StructDecl


@dataclass(eq=False)
class _Symbol:
    """A declared name: its kind, namespace, declarations and (once built) its type."""

    kind: str
    namespace: Namespace
    name: str
    decls: list[_TypeDecl] = field(default_factory=list)
    built: NamedType | None = None
    preexisting: bool = False
    done: bool = False
    building: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.namespace.name}::{self.name}"


def _kind_of(decl: Decl) -> str:
    if isinstance(decl, ConceptDecl):
        return "concept"
    if isinstance(decl, ClubDecl):
        return "club"
    if isinstance(decl, EnumDecl):
        return "enum"
    return "struct"


def _name_problem(name: str, *, type_name: bool = True) -> str | None:
    """Why ``name`` cannot name a declaration (None when it can)."""
    if not is_valid_identifier(name, type_name=False):
        return "a name starts with an ASCII letter, followed by ASCII letters, digits or '_'"
    if not type_name or is_valid_identifier(name):
        return None
    if name in BUILTIN_TYPE_NAMES:
        return f"'{name}' is a built-in type name"
    return f"'{name}' is a reserved word"


def _check_name(what: str, name: str, pos: SourcePos, *, type_name: bool = True) -> None:
    """Refuse a name that cannot name a declaration of `what` (located at `pos`)."""
    problem = _name_problem(name, type_name=type_name)
    if problem is not None:
        raise _err(pos, f"invalid {what} name '{name}': {problem}")


class _SymbolTable:
    """The namespaces and named types known to one load: those of the definitions being
    extended, then those the sources declare."""

    def __init__(self, defs: Definitions) -> None:
        self.defs = defs
        self.ns_by_uuid: dict[UUID, tuple[Namespace, SourcePos | None]] = {}
        self.ns_by_name: dict[str, tuple[Namespace, SourcePos | None]] = {}
        self.symbols: dict[tuple[UUID, str], _Symbol] = {}
        self.by_name: dict[str, list[_Symbol]] = {}
        for ns in defs.namespaces():
            self.ns_by_uuid[ns.uuid] = (ns, None)
            self.ns_by_name.setdefault(ns.name, (ns, None))
        for t in defs.types():
            sym = _Symbol(t.kind, t.namespace, t.name, built=t, preexisting=True, done=True)
            self._add_symbol(sym)

    def _add_symbol(self, sym: _Symbol) -> None:
        self.symbols[(sym.namespace.uuid, sym.name)] = sym
        self.by_name.setdefault(sym.name, []).append(sym)

    # -- pass 1: collect -------------------------------------------------------------------

    def namespace(self, block: NamespaceBlock) -> Namespace:
        """The namespace of a block (created in the definitions on first sight)."""
        _check_name("namespace", block.name, block.pos)
        if block.uuid.int == 0:
            raise _err(block.pos, "the nil uuid is the global namespace and cannot be declared")
        known = self.ns_by_uuid.get(block.uuid)
        if known is not None:
            ns, first = known
            if ns.name != block.name:
                raise _err(
                    block.pos,
                    f"namespace {{{block.uuid}}} is named '{block.name}' here but "
                    f"'{ns.name}' {_at(first, block.pos)}",
                )
            return ns
        other = self.ns_by_name.get(block.name)
        if other is not None:
            ns, first = other
            raise _err(
                block.pos,
                f"namespace '{block.name}' is declared with uuid {{{block.uuid}}} here but "
                f"with {{{ns.uuid}}} {_at(first, block.pos)}",
            )
        ns = self.defs.namespace(block.name, block.uuid)
        self.ns_by_uuid[ns.uuid] = (ns, block.pos)
        self.ns_by_name[ns.name] = (ns, block.pos)
        return ns

    def declare(self, decl: _TypeDecl, ns: Namespace) -> None:
        """Add a declaration of a named type (checking its name and shape)."""
        kind = _kind_of(decl)
        _check_name(kind, decl.name, decl.pos)
        if isinstance(decl, EnumDecl):
            _check_enum(decl)
        elif isinstance(decl, StructDecl):
            _check_struct(decl)
        sym = self.symbols.get((ns.uuid, decl.name))
        if sym is None:
            self._add_symbol(_Symbol(kind, ns, decl.name, [decl]))
            return
        first = sym.decls[0].pos if sym.decls else None
        if sym.kind != kind:
            raise _err(
                decl.pos,
                f"'{decl.name}' is already declared as {_ARTICLE[sym.kind]} {sym.kind} in "
                f"namespace '{ns.name}' {_at(first, decl.pos)}; it cannot also be "
                f"{_ARTICLE[kind]} {kind}",
            )
        for previous in sym.decls:
            if previous.pos.file == decl.pos.file:
                raise _err(
                    decl.pos,
                    f"duplicate {kind} '{decl.name}' in namespace '{ns.name}' "
                    f"(first declared {_at(previous.pos, decl.pos)})",
                )
        sym.decls.append(decl)
        sym.done = False

    # -- name resolution -------------------------------------------------------------------

    def lookup(
        self, name: str, namespace: str | None, pos: SourcePos, current: Namespace | None, noun: str
    ) -> _Symbol:
        """The symbol a (possibly qualified) name denotes, seen from `current`."""
        if namespace is not None:
            known = self.ns_by_name.get(namespace)
            if known is None:
                hint = _suggest(namespace, self.ns_by_name)
                raise _err(pos, f"unknown namespace '{namespace}' in '{namespace}::{name}'{hint}")
            ns = known[0]
            sym = self.symbols.get((ns.uuid, name))
            if sym is None:
                names = [s.name for s in self.symbols.values() if s.namespace == ns]
                hint = _suggest(name, names)
                raise _err(pos, f"unknown {noun} '{namespace}::{name}'{hint}")
            return sym
        if current is not None:
            sym = self.symbols.get((current.uuid, name))
            if sym is not None:
                return sym
        found = self.by_name.get(name, [])
        if len(found) == 1:
            return found[0]
        if found:
            spaces = sorted(s.namespace.name for s in found)
            listed = ", ".join(f"'{n}'" for n in spaces[:-1]) + f" and '{spaces[-1]}'"
            written = " or ".join(f"{n}::{name}" for n in spaces)
            raise _err(
                pos, f"ambiguous name '{name}': declared in namespaces {listed} (write {written})"
            )
        candidates = list(self.by_name)
        if noun == "type":
            candidates += BUILTIN_TYPE_NAMES
        raise _err(pos, f"unknown {noun} '{name}'{_suggest(name, candidates)}")


def _check_enum(decl: EnumDecl) -> None:
    seen: dict[str, SourcePos] = {}
    for index, case in enumerate(decl.cases):
        _check_name("case", case.name, case.pos, type_name=False)
        _check_unique(seen, case.name, case.pos, "case", f"enum '{decl.name}'")
        if index == 256:
            raise _err(case.pos, f"enum '{decl.name}' has more than 256 cases")


def _check_struct(decl: StructDecl) -> None:
    if not decl.fields:
        raise _err(decl.pos, f"struct '{decl.name}' must have at least one field")
    seen: dict[str, SourcePos] = {}
    for f in decl.fields:
        _check_name("field", f.name, f.pos, type_name=False)
        _check_unique(seen, f.name, f.pos, "field", f"struct '{decl.name}'")
