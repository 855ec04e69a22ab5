"""Declarations that refer to the named types (pass 3): club memberships, attachments and
function pools.

Pools are outside any namespace, so their bare names always search every namespace. An
attachment or a pool repeated in another file is accepted when it is the same; a divergent one
is a conflicting redefinition.
"""

from __future__ import annotations

from uuid import UUID

from commitdb.dsm.ast import AttachmentDecl, MembershipDecl, PoolDecl, SourcePos
from commitdb.dsm.diagnostics import _at, _check_unique, _describe_type, _err, _located
from commitdb.dsm.docstrings import normalize_doc
from commitdb.dsm.resolution import _TypeResolver
from commitdb.dsm.symbols import _check_name
from commitdb.prototypes import FunctionPrototype, Parameter, PoolDeclaration
from commitdb.types import AnyConceptType, Attachment, ClubType, ConceptType, Namespace

__all__ = ()


class _Declarations:
    """Pass 3 of one load, over the types the resolver built."""

    def __init__(self, types: _TypeResolver) -> None:
        self.types = types
        self.defs = types.defs

    def membership(self, decl: MembershipDecl, ns: Namespace) -> None:
        """Make a concept a member of a club."""
        club = self.types.named(decl.club, ns, "club", "membership needs a club first")
        concept = self.types.named(
            decl.concept, ns, "concept", "only concepts can be members of a club"
        )
        assert isinstance(club, ClubType) and isinstance(concept, ConceptType)
        self.defs.create_membership(club, concept)

    def attachments(self, decls: list[tuple[AttachmentDecl, Namespace]]) -> None:
        """Create the attachments (each with the namespace it is declared in)."""
        known: dict[tuple[UUID, UUID, str], tuple[Attachment, SourcePos | None]] = {
            (a.namespace.uuid, a.key_type.target.runtime_id, a.name): (a, None)
            for a in self.defs.attachments()
        }
        for decl, ns in decls:
            key = self.types.any_type(decl.key_type, ns)
            if not isinstance(key, ConceptType | ClubType | AnyConceptType):
                raise _err(
                    decl.key_type.pos,
                    f"invalid attachment key {_describe_type(key)}: expected a concept, a club "
                    "or any_concept",
                )
            document = self.types.value_type(
                decl.doc_type, ns, f"the document of attachment '{decl.name}'"
            )
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

    def pools(self, decls: list[PoolDecl]) -> None:
        """Create the function pools and attachment function pools."""
        first: dict[UUID, SourcePos] = {}
        names: dict[str, tuple[UUID, SourcePos | None]] = {
            p.name: (p.uuid, None) for p in self.defs.pools()
        }
        for decl in decls:
            _check_name(decl.kind, decl.name, decl.pos)
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
            _check_unique(seen, fn.name, fn.pos, "function", f"{decl.kind} '{decl.name}'")
            params: list[Parameter] = []
            seen_params: dict[str, SourcePos] = {}
            for p in fn.params:
                _check_unique(seen_params, p.name, p.pos, "parameter", f"function '{fn.name}'")
                ptype = self.types.value_type(
                    p.type, None, f"parameter '{p.name}' of function '{fn.name}'"
                )
                params.append(Parameter(p.name, ptype))
            rtype = self.types.value_type(
                fn.return_type, None, f"the result of function '{fn.name}'", allow_void=True
            )
            out.append(FunctionPrototype(fn.name, params, rtype, normalize_doc(fn.doc), fn.mutable))
        return out


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
