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
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from uuid import UUID

from commitdb.definitions import Definitions, is_valid_identifier
from commitdb.dsm.ast import (
    AttachmentDecl,
    BoolLit,
    ClubDecl,
    ConceptDecl,
    Decl,
    DSMFile,
    EnumCaseLit,
    EnumDecl,
    FieldDecl,
    FloatLit,
    IntLit,
    ListLit,
    LiteralExpr,
    MembershipDecl,
    NameRef,
    NamespaceBlock,
    PoolDecl,
    SourcePos,
    StringLit,
    StructDecl,
    TypeRef,
)
from commitdb.dsm.parser import GENERIC_TYPES, parse, parse_file
from commitdb.errors import DefinitionError, DSMError, ValidationError
from commitdb.prototypes import FunctionPrototype, Parameter, PoolDeclaration
from commitdb.types import (
    ANY_CONCEPT,
    PRIMITIVES,
    AnyConceptType,
    AnyType,
    Attachment,
    BlobIdType,
    BlobType,
    BoolType,
    ClubType,
    CommitIdType,
    ConceptType,
    DoubleType,
    EnumerationType,
    Field,
    FloatType,
    IntType,
    KeyType,
    MapType,
    MatType,
    NamedType,
    Namespace,
    OptionalType,
    SetType,
    StringType,
    StructureType,
    TupleType,
    Type,
    UUIDType,
    VariantType,
    VectorType,
    VecType,
    VoidType,
    XArrayType,
    is_hashable_type,
)
from commitdb.values import Typed

__all__ = (
    "BUILTIN_TYPE_NAMES",
    "DSMText",
    "Source",
    "load_definitions",
    "load_text",
    "normalize_doc",
)

#: Names of built-in types: never usable as the name of a declared type.
BUILTIN_TYPE_NAMES: frozenset[str] = frozenset({*PRIMITIVES, *GENERIC_TYPES, "any_concept"})

_ARTICLE = {"concept": "a", "club": "a", "enum": "an", "struct": "a"}
_NUMERIC = "int8..int64, uint8..uint64, float or double"


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


def normalize_doc(doc: str | None) -> str | None:
    """Normalize a verbatim doc string: strip surrounding blank space and common indentation.

    Args:
        doc: The text between the triple quotes, or None.

    Returns:
        The cleaned text (trailing blanks removed from each line), or None when empty.
    """
    if doc is None:
        return None
    text = "\n".join(line.rstrip() for line in inspect.cleandoc(doc).split("\n")).strip()
    return text or None


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


# ------------------------------------------------------------------------------------------
# Symbol table


@dataclass(eq=False)
class _Symbol:
    """A declared name: its kind, namespace, declarations and (once built) its type."""

    kind: str
    namespace: Namespace
    name: str
    decls: list[ConceptDecl | ClubDecl | EnumDecl | StructDecl] = field(default_factory=list)
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


def _name_problem(name: str, *, type_name: bool = True) -> str | None:
    """Why ``name`` cannot name a declaration (None when it can)."""
    if not is_valid_identifier(name, type_name=False):
        return "a name starts with an ASCII letter, followed by ASCII letters, digits or '_'"
    if not type_name or is_valid_identifier(name):
        return None
    if name in BUILTIN_TYPE_NAMES:
        return f"'{name}' is a built-in type name"
    return f"'{name}' is a reserved word"


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = [f"'{c}'" for c in close]
    text = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" (did you mean {text}?)"


def _describe_type(t: Type) -> str:
    if isinstance(t, ConceptType):
        return f"concept '{t.qualified_name}'"
    if isinstance(t, ClubType):
        return f"club '{t.qualified_name}'"
    if isinstance(t, EnumerationType):
        return f"enum '{t.qualified_name}'"
    if isinstance(t, StructureType):
        return f"struct '{t.qualified_name}'"
    return f"'{t}'"


def _describe_literal(lit: LiteralExpr) -> str:
    if isinstance(lit, IntLit):
        return f"integer {lit.text}"
    if isinstance(lit, FloatLit):
        return f"number {lit.text}"
    if isinstance(lit, BoolLit):
        return "true" if lit.value else "false"
    if isinstance(lit, StringLit):
        text = lit.value if len(lit.value) <= 30 else lit.value[:27] + "..."
        return f'string "{text}"'
    if isinstance(lit, EnumCaseLit):
        prefix = "" if lit.enum is None else lit.enum.qualified
        return f"enum case '{prefix}.{lit.name}'"
    n = len(lit.items)
    return f"brace list of {n} value{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class _FieldCtx:
    """Where a default literal is being converted (for messages and enum lookup)."""

    field: str
    namespace: Namespace


# ------------------------------------------------------------------------------------------
# The loader


class _Loader:
    """One load: the symbol table and the passes over the parsed files."""

    def __init__(self, defs: Definitions) -> None:
        self.defs = defs
        self.ns_by_uuid: dict[UUID, tuple[Namespace, SourcePos | None]] = {}
        self.ns_by_name: dict[str, tuple[Namespace, SourcePos | None]] = {}
        self.symbols: dict[tuple[UUID, str], _Symbol] = {}
        self.by_name: dict[str, list[_Symbol]] = {}
        self.stack: list[tuple[_Symbol, str]] = []
        self.memberships: list[tuple[MembershipDecl, Namespace]] = []
        self.attachments: list[tuple[AttachmentDecl, Namespace]] = []
        self.pools: list[PoolDecl] = []
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

    def load(self, files: list[DSMFile]) -> None:
        for dsm in files:
            for block in dsm.namespaces:
                ns = self._namespace(block)
                for decl in block.decls:
                    if isinstance(decl, MembershipDecl):
                        self.memberships.append((decl, ns))
                    elif isinstance(decl, AttachmentDecl):
                        self._check_name("attachment", decl.name, decl.pos)
                        self.attachments.append((decl, ns))
                    else:
                        self._declare(decl, ns)
            self.pools.extend(dsm.pools)
        for sym in list(self.symbols.values()):
            self._build(sym)
        for membership, ns in self.memberships:
            self._membership(membership, ns)
        self._attachments()
        self._pools()

    def _namespace(self, block: NamespaceBlock) -> Namespace:
        self._check_name("namespace", block.name, block.pos)
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

    def _check_name(self, what: str, name: str, pos: SourcePos, *, type_name: bool = True) -> None:
        problem = _name_problem(name, type_name=type_name)
        if problem is not None:
            raise _err(pos, f"invalid {what} name '{name}': {problem}")

    def _declare(self, decl: ConceptDecl | ClubDecl | EnumDecl | StructDecl, ns: Namespace) -> None:
        kind = _kind_of(decl)
        self._check_name(kind, decl.name, decl.pos)
        if isinstance(decl, EnumDecl):
            self._check_enum(decl)
        elif isinstance(decl, StructDecl):
            self._check_struct(decl)
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

    def _check_enum(self, decl: EnumDecl) -> None:
        seen: dict[str, SourcePos] = {}
        for index, case in enumerate(decl.cases):
            self._check_name("case", case.name, case.pos, type_name=False)
            if case.name in seen:
                raise _err(
                    case.pos,
                    f"duplicate case '{case.name}' in enum '{decl.name}' "
                    f"(first declared {_at(seen[case.name], case.pos)})",
                )
            if index == 256:
                raise _err(case.pos, f"enum '{decl.name}' has more than 256 cases")
            seen[case.name] = case.pos

    def _check_struct(self, decl: StructDecl) -> None:
        if not decl.fields:
            raise _err(decl.pos, f"struct '{decl.name}' must have at least one field")
        seen: dict[str, SourcePos] = {}
        for f in decl.fields:
            self._check_name("field", f.name, f.pos, type_name=False)
            if f.name in seen:
                raise _err(
                    f.pos,
                    f"duplicate field '{f.name}' in struct '{decl.name}' "
                    f"(first declared {_at(seen[f.name], f.pos)})",
                )
            seen[f.name] = f.pos

    # -- name resolution -------------------------------------------------------------------

    def _lookup(
        self, name: str, namespace: str | None, pos: SourcePos, current: Namespace | None, noun: str
    ) -> _Symbol:
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

    def _named(self, ref: NameRef, current: Namespace | None, kind: str, purpose: str) -> NamedType:
        """Resolve a name that must denote a declared type of one kind."""
        sym = self._lookup(ref.name, ref.namespace, ref.pos, current, kind)
        if sym.kind != kind:
            raise _err(
                ref.pos,
                f"{sym.kind} '{sym.qualified}' is not {_ARTICLE[kind]} {kind}: {purpose}",
            )
        return self._build(sym, ref.pos)

    # -- pass 2: build named types ---------------------------------------------------------

    def _build(self, sym: _Symbol, ref: SourcePos | None = None) -> NamedType:
        if sym.done:
            assert sym.built is not None
            return sym.built
        if sym.building:
            assert ref is not None
            raise self._cycle(sym, ref)
        sym.building = True
        try:
            for decl in sym.decls:
                self._define(sym, decl)
        finally:
            sym.building = False
        sym.done = True
        assert sym.built is not None
        return sym.built

    def _cycle(self, sym: _Symbol, ref: SourcePos) -> DSMError:
        starts = [i for i, (s, _) in enumerate(self.stack) if s is sym]
        path = self.stack[starts[0] :] if starts else []
        if sym.kind == "concept":
            chain = " is a ".join([s.name for s, _ in path] + [sym.name])
            return _err(ref, f"concept inheritance cycle: {chain}")
        chain = " -> ".join([f"{s.name}.{f}" for s, f in path] + [sym.name])
        return _err(
            ref,
            f"recursive structure: {chain}; a structure cannot contain itself "
            "(refer to an instance with key<...> instead)",
        )

    def _define(self, sym: _Symbol, decl: ConceptDecl | ClubDecl | EnumDecl | StructDecl) -> None:
        ns = sym.namespace
        doc = normalize_doc(decl.doc)
        t: NamedType
        if isinstance(decl, ConceptDecl):
            parent: ConceptType | None = None
            if decl.parent is not None:
                self.stack.append((sym, "is a"))
                found = self._named(
                    decl.parent, ns, "concept", f"concept '{decl.name}' can only extend a concept"
                )
                self.stack.pop()
                assert isinstance(found, ConceptType)
                parent = found
            t = ConceptType(ns, decl.name, parent, doc)
        elif isinstance(decl, ClubDecl):
            t = ClubType(ns, decl.name, doc)
        elif isinstance(decl, EnumDecl):
            case_docs = {c.name: normalize_doc(c.doc) for c in decl.cases}
            t = EnumerationType(
                ns,
                decl.name,
                [c.name for c in decl.cases],
                doc,
                {k: v for k, v in case_docs.items() if v is not None},
            )
        else:
            fields = [self._field(sym, f) for f in decl.fields]
            with _located(decl.pos):
                t = StructureType(ns, decl.name, fields, doc)
        if sym.built is not None:
            if sym.built.runtime_id != t.runtime_id:
                first = None if sym.preexisting else sym.decls[0].pos
                raise _err(
                    decl.pos,
                    f"conflicting redefinition of {sym.kind} '{sym.qualified}': "
                    f"{_difference(sym.built, t)} {_at(first, decl.pos)}",
                )
            return
        with _located(decl.pos):
            sym.built = self._register(t)

    def _register(self, t: NamedType) -> NamedType:
        ns = t.namespace
        if isinstance(t, ConceptType):
            return self.defs.create_concept(
                ns, t.name, parent=t.parent, documentation=t.documentation
            )
        if isinstance(t, ClubType):
            return self.defs.create_club(ns, t.name, documentation=t.documentation)
        if isinstance(t, EnumerationType):
            return self.defs.create_enumeration(
                ns,
                t.name,
                [c.name for c in t.cases],
                documentation=t.documentation,
                case_documentation=t.case_documentation,
            )
        assert isinstance(t, StructureType)
        return self.defs.create_structure(ns, t.name, t.fields, documentation=t.documentation)

    def _field(self, sym: _Symbol, decl: FieldDecl) -> Field:
        self.stack.append((sym, decl.name))
        ftype = self._type(decl.type, sym.namespace, f"field '{decl.name}'")
        self.stack.pop()
        default: Any = None
        if decl.default is not None:
            ctx = _FieldCtx(decl.name, sym.namespace)
            default = self._value(decl.default, ftype, ctx)
        doc = normalize_doc(decl.doc)
        pos = decl.default.pos if decl.default is not None else decl.pos
        with _located(pos):
            return Field(decl.name, ftype, default, doc)

    # -- type expressions ------------------------------------------------------------------

    def _type(
        self, ref: TypeRef, current: Namespace | None, what: str, *, allow_void: bool = False
    ) -> Type:
        """Resolve a type used as a value (field, element, parameter, document, return)."""
        t = self._any_type(ref, current)
        if isinstance(t, VoidType) and not allow_void:
            raise _err(ref.pos, f"{what} cannot be of type 'void': void is only a return type")
        if isinstance(t, ConceptType | ClubType):
            raise _err(
                ref.pos,
                f"{what} cannot be of type {_describe_type(t)}: use key<{ref.qualified}> to "
                "refer to an instance",
            )
        if isinstance(t, AnyConceptType):
            raise _err(
                ref.pos, f"{what} cannot be of type 'any_concept': use key<any_concept> instead"
            )
        return t

    def _any_type(self, ref: TypeRef, current: Namespace | None) -> Type:
        if ref.namespace is None:
            if ref.name in GENERIC_TYPES:
                return self._generic(ref, current)
            prim = PRIMITIVES.get(ref.name)
            if prim is not None:
                return prim
            if ref.name == "any_concept":
                return ANY_CONCEPT
        sym = self._lookup(ref.name, ref.namespace, ref.pos, current, "type")
        return self._build(sym, ref.pos)

    def _generic(self, ref: TypeRef, current: Namespace | None) -> Type:
        name = ref.name
        args = ref.args
        if name == "key":
            target = self._any_type(args[0], current)
            if not isinstance(target, ConceptType | ClubType | AnyConceptType):
                raise _err(
                    args[0].pos,
                    "invalid type argument for key<...>: expected a concept, a club or "
                    f"any_concept, found {_describe_type(target)}",
                )
            return KeyType(target)
        if name in ("vec", "mat"):
            element = self._any_type(args[0], current)
            if not isinstance(element, IntType | FloatType | DoubleType):
                raise _err(
                    args[0].pos,
                    f"invalid element type for {name}<...>: expected a numeric type "
                    f"({_NUMERIC}), found {_describe_type(element)}",
                )
            if name == "vec":
                return VecType(element, ref.int_args[0])
            return MatType(element, ref.int_args[0], ref.int_args[1])
        elements = [self._type(a, current, f"an element of {name}<...>") for a in args]
        if name in ("set", "map") and not is_hashable_type(elements[0]):
            role = "set element" if name == "set" else "map key"
            raise _err(
                args[0].pos,
                f"invalid {role} type {_describe_type(elements[0])}: its values are not "
                "hashable (vector, set, map and xarray values cannot be set elements or map keys)",
            )
        if name == "vector":
            return VectorType(elements[0])
        if name == "set":
            return SetType(elements[0])
        if name == "map":
            return MapType(elements[0], elements[1])
        if name == "optional":
            return OptionalType(elements[0])
        if name == "xarray":
            return XArrayType(elements[0])
        if name == "tuple":
            return TupleType(elements)
        seen: dict[Type, int] = {}
        for i, alt in enumerate(elements):
            if alt in seen:
                raise _err(
                    args[i].pos,
                    f"duplicate alternative '{alt}' in variant<...>: alternatives must be distinct",
                )
            seen[alt] = i
        return VariantType(elements)

    # -- default literals ------------------------------------------------------------------

    def _bad(self, lit: LiteralExpr, ctx: _FieldCtx, expected: str) -> DSMError:
        return _err(
            lit.pos,
            f"invalid default for field '{ctx.field}': expected {expected}, "
            f"given {_describe_literal(lit)}",
        )

    def _leaf(self, t: Type, plain: object, lit: LiteralExpr, ctx: _FieldCtx) -> Any:
        try:
            return t.check(plain)
        except ValidationError as exc:
            raise self._bad(lit, ctx, exc.expected) from exc

    def _value(self, lit: LiteralExpr, t: Type, ctx: _FieldCtx) -> Any:
        """Convert a default literal to a value of ``t`` (errors located at the literal)."""
        if isinstance(t, OptionalType):
            return self._value(lit, t.element, ctx)
        if isinstance(t, BoolType):
            if isinstance(lit, BoolLit):
                return lit.value
        elif isinstance(t, IntType):
            if isinstance(lit, IntLit):
                return self._leaf(t, lit.value, lit, ctx)
        elif isinstance(t, FloatType | DoubleType):
            if isinstance(lit, IntLit | FloatLit):
                return self._leaf(t, float(lit.value), lit, ctx)
        elif isinstance(t, StringType | UUIDType | BlobIdType | CommitIdType):
            if isinstance(lit, StringLit):
                return self._leaf(t, lit.value, lit, ctx)
        elif isinstance(t, BlobType):
            if isinstance(lit, ListLit):
                return bytes(self._byte(item, ctx) for item in lit.items)
            raise self._bad(lit, ctx, "blob (a brace list of byte values)")
        elif isinstance(t, EnumerationType):
            if isinstance(lit, EnumCaseLit):
                return self._case(lit, t, ctx)
            cases = ", ".join(f".{c.name}" for c in t.cases[:6])
            more = ", ..." if len(t.cases) > 6 else ""
            raise self._bad(lit, ctx, f"a case of enum '{t.qualified_name}' ({cases}{more})")
        elif isinstance(t, KeyType):
            raise _err(
                lit.pos,
                f"field '{ctx.field}' of type '{t}' cannot have a default value "
                "(the default of a key is the nil key)",
            )
        elif isinstance(t, VariantType):
            return self._variant(lit, t, ctx)
        elif isinstance(t, AnyType):
            return self._any(lit, ctx)
        elif isinstance(lit, ListLit):
            return self._list(lit, t, ctx)
        raise self._bad(lit, ctx, f"'{t}'")

    def _byte(self, item: LiteralExpr, ctx: _FieldCtx) -> int:
        if isinstance(item, IntLit) and 0 <= item.value <= 255:
            return item.value
        raise self._bad(item, ctx, "a byte value in [0, 255]")

    def _case(self, lit: EnumCaseLit, t: EnumerationType, ctx: _FieldCtx) -> Any:
        if lit.enum is not None:
            named = self._named(lit.enum, ctx.namespace, "enum", "expected an enum before '.'")
            if named != t:
                raise self._bad(lit, ctx, f"a case of enum '{t.qualified_name}'")
        names = [c.name for c in t.cases]
        if lit.name not in names:
            hint = _suggest(lit.name, names) or f" (cases: {', '.join(names)})"
            raise _err(
                lit.pos,
                f"invalid default for field '{ctx.field}': enum '{t.qualified_name}' has no "
                f"case '{lit.name}'{hint}",
            )
        return t.case(lit.name)

    def _list(self, lit: ListLit, t: Type, ctx: _FieldCtx) -> Any:
        items = lit.items
        if isinstance(t, VectorType | SetType):
            return self._leaf(t, [self._value(i, t.element, ctx) for i in items], lit, ctx)
        if isinstance(t, XArrayType):
            if items:
                raise _err(
                    lit.pos,
                    f"invalid default for field '{ctx.field}': a default of type '{t}' must be "
                    "empty ({}) because xarray positions are not deterministic",
                )
            return self._leaf(t, [], lit, ctx)
        if isinstance(t, MapType):
            out: dict[Any, Any] = {}
            for item in items:
                if not isinstance(item, ListLit) or len(item.items) != 2:
                    raise self._bad(item, ctx, f"a map entry {{key, value}} of '{t}'")
                key = self._value(item.items[0], t.key, ctx)
                if key in out:
                    raise _err(
                        item.items[0].pos,
                        f"invalid default for field '{ctx.field}': duplicate map key "
                        f"{_describe_literal(item.items[0])}",
                    )
                out[key] = self._value(item.items[1], t.value, ctx)
            return out
        if isinstance(t, TupleType):
            if len(items) != len(t.elements):
                raise self._bad(lit, ctx, f"'{t}' ({len(t.elements)} values)")
            return tuple(self._value(i, e, ctx) for i, e in zip(items, t.elements, strict=True))
        if isinstance(t, VecType):
            if len(items) != t.size:
                raise self._bad(lit, ctx, f"'{t}' ({t.size} values)")
            return tuple(self._value(i, t.element, ctx) for i in items)
        if isinstance(t, MatType):
            return self._matrix(lit, t, ctx)
        if isinstance(t, StructureType):
            if len(items) > len(t.fields):
                names = ", ".join(f.name for f in t.fields)
                raise self._bad(
                    lit,
                    ctx,
                    f"struct '{t.qualified_name}' (at most {len(t.fields)} "
                    f"value{'' if len(t.fields) == 1 else 's'} in field order: {names})",
                )
            values = {
                f.name: self._value(i, f.type, ctx)
                for i, f in zip(items, t.fields[: len(items)], strict=True)
            }
            return self._leaf(t, values, lit, ctx)
        raise self._bad(lit, ctx, f"'{t}'")

    def _matrix(self, lit: ListLit, t: MatType, ctx: _FieldCtx) -> Any:
        items = lit.items
        flat: list[LiteralExpr] = []
        if items and all(isinstance(i, ListLit) for i in items):
            if len(items) != t.columns:
                raise self._bad(lit, ctx, f"'{t}' ({t.columns} columns of {t.rows} values)")
            for column in items:
                assert isinstance(column, ListLit)
                if len(column.items) != t.rows:
                    raise self._bad(column, ctx, f"a column of {t.rows} values")
                flat.extend(column.items)
        else:
            flat = list(items)
            if len(flat) != t.columns * t.rows:
                raise self._bad(
                    lit, ctx, f"'{t}' ({t.columns * t.rows} values in column-major order)"
                )
        return tuple(self._value(i, t.element, ctx) for i in flat)

    def _variant(self, lit: LiteralExpr, t: VariantType, ctx: _FieldCtx) -> Any:
        order = list(range(len(t.alternatives)))
        if isinstance(lit, IntLit | FloatLit | BoolLit | StringLit):
            natural = t.natural_index(lit.value)
            if natural is not None:
                order.remove(natural)
                order.insert(0, natural)
        for index in order:
            alt = t.alternatives[index]
            try:
                value = self._value(lit, alt, ctx)
            except DSMError:
                continue
            if t.natural_index(value) == index:
                return value
            return Typed(alt, value)
        raise self._bad(lit, ctx, f"'{t}'")

    def _any(self, lit: LiteralExpr, ctx: _FieldCtx) -> Any:
        if isinstance(lit, IntLit | FloatLit | BoolLit | StringLit):
            return lit.value
        if isinstance(lit, EnumCaseLit) and lit.enum is not None:
            enum = self._named(lit.enum, ctx.namespace, "enum", "expected an enum before '.'")
            assert isinstance(enum, EnumerationType)
            return self._case(lit, enum, ctx)
        raise self._bad(
            lit, ctx, "'any' (a number, a string, true, false or a qualified Enum.case)"
        )

    # -- pass 3: memberships, attachments, pools -------------------------------------------

    def _membership(self, decl: MembershipDecl, ns: Namespace) -> None:
        club = self._named(decl.club, ns, "club", "membership needs a club first")
        concept = self._named(decl.concept, ns, "concept", "only concepts can be members of a club")
        assert isinstance(club, ClubType) and isinstance(concept, ConceptType)
        self.defs.create_membership(club, concept)

    def _attachments(self) -> None:
        known: dict[tuple[UUID, UUID, str], tuple[Attachment, SourcePos | None]] = {
            (a.namespace.uuid, a.key_type.target.runtime_id, a.name): (a, None)
            for a in self.defs.attachments()
        }
        for decl, ns in self.attachments:
            key = self._any_type(decl.key_type, ns)
            if not isinstance(key, ConceptType | ClubType | AnyConceptType):
                raise _err(
                    decl.key_type.pos,
                    f"invalid attachment key {_describe_type(key)}: expected a concept, a club "
                    "or any_concept",
                )
            document = self._type(decl.doc_type, ns, f"the document of attachment '{decl.name}'")
            ident = (ns.uuid, key.runtime_id, decl.name)
            where = f"'{decl.name}' on {_describe_type(key)} in namespace '{ns.name}'"
            doc = normalize_doc(decl.doc)
            previous = known.get(ident)
            if previous is None:
                with _located(decl.pos):
                    att = self.defs.create_attachment(
                        ns, decl.name, key, document, documentation=doc
                    )
                known[ident] = (att, decl.pos)
                continue
            old, first = previous
            if first is not None and first.file == decl.pos.file:
                raise _err(
                    decl.pos,
                    f"duplicate attachment {where} (first declared {_at(first, decl.pos)})",
                )
            if old.document_type != document:
                raise _err(
                    decl.pos,
                    f"conflicting redefinition of attachment {where}: its document type is "
                    f"'{document}' here but '{old.document_type}' {_at(first, decl.pos)}",
                )

    def _pools(self) -> None:
        first: dict[UUID, SourcePos] = {}
        names: dict[str, tuple[UUID, SourcePos | None]] = {
            p.name: (p.uuid, None) for p in self.defs.pools()
        }
        for decl in self.pools:
            self._check_name(decl.kind, decl.name, decl.pos)
            if decl.uuid.int == 0:
                raise _err(decl.pos, f"{decl.kind} '{decl.name}' cannot use the nil uuid")
            previous = first.get(decl.uuid)
            if previous is not None and previous.file == decl.pos.file:
                raise _err(
                    decl.pos,
                    f"duplicate {decl.kind} '{decl.name}' {{{decl.uuid}}} "
                    f"(first declared {_at(previous, decl.pos)})",
                )
            other = names.get(decl.name)
            if other is not None and other[0] != decl.uuid:
                raise _err(
                    decl.pos,
                    f"pool name '{decl.name}' is already used by the pool {{{other[0]}}} "
                    f"{_at(other[1], decl.pos)}",
                )
            pool = PoolDeclaration(
                decl.uuid,
                decl.name,
                self._functions(decl),
                documentation=normalize_doc(decl.doc),
                attachment=decl.kind == "attachment_function_pool",
            )
            known = self.defs.query_pool(decl.uuid)
            if known is not None and known.runtime_id != pool.runtime_id:
                raise _err(
                    decl.pos,
                    f"conflicting redefinition of {decl.kind} '{decl.name}' {{{decl.uuid}}}: "
                    f"{_pool_difference(known, pool)} {_at(previous, decl.pos)}",
                )
            with _located(decl.pos):
                self.defs.create_pool(pool)
            first.setdefault(decl.uuid, decl.pos)
            names.setdefault(decl.name, (decl.uuid, decl.pos))

    def _functions(self, decl: PoolDecl) -> list[FunctionPrototype]:
        out: list[FunctionPrototype] = []
        seen: dict[str, SourcePos] = {}
        for fn in decl.functions:
            if fn.name in seen:
                raise _err(
                    fn.pos,
                    f"duplicate function '{fn.name}' in {decl.kind} '{decl.name}' "
                    f"(first declared {_at(seen[fn.name], fn.pos)})",
                )
            seen[fn.name] = fn.pos
            params: list[Parameter] = []
            seen_params: dict[str, SourcePos] = {}
            for p in fn.params:
                if p.name in seen_params:
                    raise _err(
                        p.pos,
                        f"duplicate parameter '{p.name}' in function '{fn.name}' "
                        f"(first declared {_at(seen_params[p.name], p.pos)})",
                    )
                seen_params[p.name] = p.pos
                ptype = self._type(p.type, None, f"parameter '{p.name}' of function '{fn.name}'")
                params.append(Parameter(p.name, ptype))
            rtype = self._type(
                fn.return_type, None, f"the result of function '{fn.name}'", allow_void=True
            )
            out.append(FunctionPrototype(fn.name, params, rtype, normalize_doc(fn.doc), fn.mutable))
        return out


# ------------------------------------------------------------------------------------------
# Conflict details


def _difference(old: NamedType, new: NamedType) -> str:
    """Say how ``new`` differs from ``old`` (same name and kind), ending before 'from'."""
    if isinstance(old, ConceptType) and isinstance(new, ConceptType):

        def parent(c: ConceptType) -> str:
            return "no parent" if c.parent is None else f"parent '{c.parent.qualified_name}'"

        return f"it has {parent(new)} here but {parent(old)}"
    if isinstance(old, EnumerationType) and isinstance(new, EnumerationType):
        mine = ", ".join(c.name for c in new.cases)
        theirs = ", ".join(c.name for c in old.cases)
        return f"its cases are ({mine}) here but ({theirs})"
    if isinstance(old, StructureType) and isinstance(new, StructureType):
        for a, b in zip(new.fields, old.fields, strict=False):
            if a.name != b.name:
                return f"field '{a.name}' here is field '{b.name}'"
            if a.type != b.type:
                return f"field '{a.name}' has type '{a.type}' here but '{b.type}'"
            if a.default != b.default:

                def shown(value: object) -> str:
                    return "no default" if value is None else f"default {value!r}"

                return f"field '{a.name}' has {shown(a.default)} here but {shown(b.default)}"
        return f"it has {len(new.fields)} fields here but {len(old.fields)}"
    return "it differs from the declaration"


def _pool_difference(old: PoolDeclaration, new: PoolDeclaration) -> str:
    if old.name != new.name or old.attachment != new.attachment:
        return f"it is the {new.kind} '{new.name}' here but the {old.kind} '{old.name}'"
    for name, fn in new.functions.items():
        other = old.functions.get(name)
        if other is None:
            return f"function '{name}' is declared here but not"
        if other != fn:
            return f"function '{name}' has signature {fn!r} here but {other!r}"
    missing = next(n for n in old.functions if n not in new.functions)
    return f"function '{missing}' is missing here but declared"
