"""Type expressions resolved to types, and named types built on demand (pass 2).

A named type is built when first needed, in dependency order: a concept after its parent, a
structure after the types of its fields (whose default literals are converted through those
types). Recursive structures and inheritance cycles are errors located at the reference that
closes them; a declaration repeated in another file must define the same runtime id.
"""

from __future__ import annotations

from typing import Any

from commitdb.definitions import Definitions
from commitdb.dsm.ast import (
    ClubDecl,
    ConceptDecl,
    EnumDecl,
    FieldDecl,
    NameRef,
    SourcePos,
    StructDecl,
    TypeRef,
)
from commitdb.dsm.diagnostics import _ARTICLE, _at, _describe_type, _err, _located
from commitdb.dsm.docstrings import normalize_doc
from commitdb.dsm.literals import _FieldCtx, _LiteralConverter
from commitdb.dsm.parser import GENERIC_TYPES
from commitdb.dsm.symbols import _Symbol, _SymbolTable
from commitdb.errors import DSMError
from commitdb.types import (
    ANY_CONCEPT,
    PRIMITIVES,
    AnyConceptType,
    ClubType,
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
    StructureType,
    TupleType,
    Type,
    VariantType,
    VectorType,
    VecType,
    VoidType,
    XArrayType,
    is_hashable_type,
)

__all__ = ()

_NUMERIC = "int8..int64, uint8..uint64, float or double"


class _TypeResolver:
    """Resolves type expressions against a symbol table and builds the named types."""

    def __init__(self, defs: Definitions, table: _SymbolTable) -> None:
        self.defs = defs
        self.table = table
        self.stack: list[tuple[_Symbol, str]] = []  # what is being built, for cycle messages
        self.literals = _LiteralConverter(self.named)

    def named(self, ref: NameRef, current: Namespace | None, kind: str, purpose: str) -> NamedType:
        """Resolve a name that must denote a declared type of one kind."""
        sym = self.table.lookup(ref.name, ref.namespace, ref.pos, current, kind)
        if sym.kind != kind:
            raise _err(
                ref.pos,
                f"{sym.kind} '{sym.qualified}' is not {_ARTICLE[kind]} {kind}: {purpose}",
            )
        return self.build(sym, ref.pos)

    # -- named types -------------------------------------------------------------------------

    def build(self, sym: _Symbol, ref: SourcePos | None = None) -> NamedType:
        """The type of a symbol, built first if needed (`ref`: the reference needing it)."""
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
                found = self.named(
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
        ftype = self.value_type(decl.type, sym.namespace, f"field '{decl.name}'")
        self.stack.pop()
        default: Any = None
        if decl.default is not None:
            ctx = _FieldCtx(decl.name, sym.namespace)
            default = self.literals.value(decl.default, ftype, ctx)
        doc = normalize_doc(decl.doc)
        pos = decl.default.pos if decl.default is not None else decl.pos
        with _located(pos):
            return Field(decl.name, ftype, default, doc)

    # -- type expressions ------------------------------------------------------------------

    def value_type(
        self, ref: TypeRef, current: Namespace | None, what: str, *, allow_void: bool = False
    ) -> Type:
        """Resolve a type used as a value (field, element, parameter, document, return)."""
        t = self.any_type(ref, current)
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

    def any_type(self, ref: TypeRef, current: Namespace | None) -> Type:
        """Resolve any type expression (void, bare concepts and clubs included)."""
        if ref.namespace is None:
            if ref.name in GENERIC_TYPES:
                return self._generic(ref, current)
            prim = PRIMITIVES.get(ref.name)
            if prim is not None:
                return prim
            if ref.name == "any_concept":
                return ANY_CONCEPT
        sym = self.table.lookup(ref.name, ref.namespace, ref.pos, current, "type")
        return self.build(sym, ref.pos)

    def _generic(self, ref: TypeRef, current: Namespace | None) -> Type:
        name = ref.name
        args = ref.args
        if name == "key":
            target = self.any_type(args[0], current)
            if not isinstance(target, ConceptType | ClubType | AnyConceptType):
                raise _err(
                    args[0].pos,
                    "invalid type argument for key<...>: expected a concept, a club or "
                    f"any_concept, found {_describe_type(target)}",
                )
            return KeyType(target)
        if name in ("vec", "mat"):
            element = self.any_type(args[0], current)
            if not isinstance(element, IntType | FloatType | DoubleType):
                raise _err(
                    args[0].pos,
                    f"invalid element type for {name}<...>: expected a numeric type "
                    f"({_NUMERIC}), found {_describe_type(element)}",
                )
            if name == "vec":
                return VecType(element, ref.int_args[0])
            return MatType(element, ref.int_args[0], ref.int_args[1])
        elements = [self.value_type(a, current, f"an element of {name}<...>") for a in args]
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
