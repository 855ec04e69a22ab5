"""The Definitions registry: namespaces, named types, attachments and pool declarations.

Build definitions in Python::

    defs = Definitions()
    ns = defs.namespace("Tuto", "f529bc42-0618-4f54-a3fb-d55f95c5ad03")
    user = defs.create_concept(ns, "User")
    login = defs.create_structure(ns, "Login", [Field("nickname", STRING)])
    att = defs.create_attachment(ns, "login", user, login)

or load DSM text with :func:`commitdb.dsm.load_definitions`. Definitions are additive:
:meth:`Definitions.extend` adds what is missing and refuses a name defined with a divergent
runtime id, atomically.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast

from commitdb.errors import (
    DefinitionConflictError,
    DefinitionError,
    UnknownAttachmentError,
)
from commitdb.prototypes import PoolDeclaration
from commitdb.types import (
    AnyConceptType,
    Attachment,
    ClubType,
    ConceptType,
    EnumerationType,
    Field,
    KeyType,
    MapType,
    NamedType,
    Namespace,
    OptionalType,
    SetType,
    StructureType,
    TupleType,
    Type,
    VariantType,
    VectorType,
    XArrayType,
)

__all__ = ("Definitions", "ExtendInfo", "is_valid_identifier")

_KEYWORDS = frozenset(
    {
        "namespace", "concept", "club", "membership", "enum", "struct", "attachment",
        "function_pool", "attachment_function_pool", "mutable", "true", "false",
        "vector", "set", "map", "optional", "xarray", "tuple", "variant", "key", "vec", "mat",
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float", "double", "string", "uuid", "blob", "blob_id", "commit_id", "void", "any",
        "any_concept",
    }
)  # fmt: skip


def _reaches_club(t: Type) -> bool:
    """True if values of `t` may hold a ``key<Club>`` (whose check depends on membership)."""
    if isinstance(t, KeyType):
        return isinstance(t.target, ClubType)
    return any(_reaches_club(c) for c in t.children())


def is_valid_identifier(name: str, *, type_name: bool = True) -> bool:
    """An ASCII letter, then ASCII letters, digits, underscores (engine spec §1.3).

    Type names (namespaces, concepts, clubs, enumerations, structures, attachments, pools)
    must also not be a DSM keyword or built-in type name; field, case and parameter names
    only need the shape (``string key;`` is a legal field).
    """
    if not isinstance(name, str) or not name or not (name[0].isascii() and name[0].isalpha()):
        return False
    if not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        return False
    return not type_name or name not in _KEYWORDS


@dataclass
class ExtendInfo:
    """What an :meth:`Definitions.extend` added."""

    concepts: list[uuid.UUID] = field(default_factory=list)
    clubs: list[uuid.UUID] = field(default_factory=list)
    enumerations: list[uuid.UUID] = field(default_factory=list)
    structures: list[uuid.UUID] = field(default_factory=list)
    attachments: list[uuid.UUID] = field(default_factory=list)
    pools: list[uuid.UUID] = field(default_factory=list)
    memberships: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)

    def count(self) -> int:
        """Number of things added."""
        return (
            len(self.concepts)
            + len(self.clubs)
            + len(self.enumerations)
            + len(self.structures)
            + len(self.attachments)
            + len(self.pools)
            + len(self.memberships)
        )


class Definitions:
    """A registry of named types, attachments and function pool declarations."""

    def __init__(self) -> None:
        self._namespaces: dict[uuid.UUID, Namespace] = {}
        self._named: dict[tuple[uuid.UUID, str], NamedType] = {}
        self._by_id: dict[uuid.UUID, NamedType] = {}
        self._attachments: dict[uuid.UUID, Attachment] = {}
        self._attachment_names: dict[tuple[uuid.UUID, uuid.UUID, str], Attachment] = {}
        self._pools: dict[uuid.UUID, PoolDeclaration] = {}

    # -- namespaces ---------------------------------------------------------------------
    def namespace(self, name: str, namespace_uuid: uuid.UUID | str) -> Namespace:
        """Register (or fetch) a namespace; its uuid is its identity."""
        ns = Namespace(name, namespace_uuid)
        if ns.uuid.int == 0:
            raise DefinitionError("the nil uuid is the global namespace and cannot be used")
        if not is_valid_identifier(name):
            raise DefinitionError(f"invalid namespace name {name!r}")
        existing = self._namespaces.get(ns.uuid)
        if existing is not None:
            return existing
        self._namespaces[ns.uuid] = ns
        return ns

    def namespaces(self) -> list[Namespace]:
        """Registered namespaces, in registration order."""
        return list(self._namespaces.values())

    def _own_namespace(self, ns: Namespace) -> Namespace:
        return self.namespace(ns.name, ns.uuid)

    # -- creation -------------------------------------------------------------------------
    def _register(self, t: NamedType) -> NamedType:
        if not is_valid_identifier(t.name):
            raise DefinitionError(f"invalid name {t.name!r} for {t.kind}")
        key = (t.namespace.uuid, t.name)
        existing = self._named.get(key)
        if existing is not None:
            if existing.runtime_id == t.runtime_id:
                return existing
            if existing.kind != t.kind:
                raise DefinitionError(
                    f"{t.qualified_name} is already a {existing.kind}; cannot define a {t.kind}"
                )
            raise DefinitionConflictError(
                f"{t.qualified_name} is defined by two divergent runtime ids "
                f"({existing.runtime_id} and {t.runtime_id})"
            )
        self._named[key] = t
        self._by_id[t.runtime_id] = t
        return t

    def create_concept(
        self,
        namespace: Namespace,
        name: str,
        *,
        parent: ConceptType | None = None,
        documentation: str | None = None,
    ) -> ConceptType:
        """Register a concept (optionally ``is a`` parent, which must be registered)."""
        if parent is not None:
            if not isinstance(parent, ConceptType):
                raise DefinitionError(f"concept {name}: parent {parent} is not a concept")
            self._require_registered(parent, f"concept {name} parent")
        ns = self._own_namespace(namespace)
        return cast(ConceptType, self._register(ConceptType(ns, name, parent, documentation)))

    def create_club(
        self, namespace: Namespace, name: str, *, documentation: str | None = None
    ) -> ClubType:
        """Register a club."""
        ns = self._own_namespace(namespace)
        return cast(ClubType, self._register(ClubType(ns, name, documentation)))

    def create_membership(self, club: ClubType, concept: ConceptType) -> bool:
        """Add a concept to a club; returns False if it was already a member."""
        own = self._by_id.get(club.runtime_id)
        if not isinstance(own, ClubType):
            raise DefinitionError(f"club {club} is not registered")
        if concept.runtime_id not in self._by_id:
            raise DefinitionError(f"concept {concept} is not registered")
        if concept in own.members:
            return False
        own.members.add(cast(ConceptType, self._by_id[concept.runtime_id]))
        return True

    def create_enumeration(
        self,
        namespace: Namespace,
        name: str,
        cases: Iterable[str],
        *,
        documentation: str | None = None,
        case_documentation: Mapping[str, str | None] | None = None,
    ) -> EnumerationType:
        """Register an enumeration of 1..256 cases."""
        ns = self._own_namespace(namespace)
        cases = list(cases)
        for c in cases:
            if not is_valid_identifier(c, type_name=False):
                raise DefinitionError(f"invalid case name {c!r} in enumeration {name}")
        t = EnumerationType(ns, name, cases, documentation, case_documentation)
        return cast(EnumerationType, self._register(t))

    def create_structure(
        self,
        namespace: Namespace,
        name: str,
        fields: Iterable[Field],
        *,
        documentation: str | None = None,
    ) -> StructureType:
        """Register a structure (at least one field; defaults allowed)."""
        ns = self._own_namespace(namespace)
        fields = list(fields)
        for f in fields:
            if not is_valid_identifier(f.name, type_name=False):
                raise DefinitionError(f"invalid field name {f.name!r} in structure {name}")
            self._require_registered(f.type, f"{name}.{f.name}")
        t = StructureType(ns, name, fields, documentation)
        return cast(StructureType, self._register(t))

    def create_attachment(
        self,
        namespace: Namespace,
        name: str,
        key: ConceptType | ClubType | AnyConceptType | KeyType,
        document_type: Type,
        *,
        documentation: str | None = None,
    ) -> Attachment:
        """Register ``attachment<key, document_type> name``."""
        ns = self._own_namespace(namespace)
        if not is_valid_identifier(name):
            raise DefinitionError(f"invalid attachment name {name!r}")
        key_type = key if isinstance(key, KeyType) else KeyType(key)
        self._require_registered(key_type, f"attachment {name} key")
        self._require_registered(document_type, f"attachment {name} document")
        att = Attachment(ns, name, key_type, document_type, documentation)
        return self._add_attachment(att)

    def _add_attachment(self, att: Attachment) -> Attachment:
        name_key = (att.namespace.uuid, att.key_type.target.runtime_id, att.name)
        existing = self._attachment_names.get(name_key)
        if existing is not None:
            if existing.runtime_id == att.runtime_id:
                return existing
            raise DefinitionConflictError(
                f"attachment {att.identifier} is defined by two divergent runtime ids"
            )
        self._attachment_names[name_key] = att
        self._attachments[att.runtime_id] = att
        return att

    def create_pool(self, pool: PoolDeclaration) -> PoolDeclaration:
        """Register a function pool declaration (its types must be registered)."""
        if not is_valid_identifier(pool.name):
            raise DefinitionError(f"invalid pool name {pool.name!r}")
        for f in pool.functions.values():
            for p in f.parameters:
                self._require_registered(p.type, f"{pool.name}.{f.name}({p.name})")
            self._require_registered(f.return_type, f"{pool.name}.{f.name} return")
        existing = self._pools.get(pool.uuid)
        if existing is not None:
            if existing.runtime_id == pool.runtime_id:
                return existing
            raise DefinitionConflictError(
                f"pool {pool.name} {{{pool.uuid}}} is declared twice with different contents"
            )
        self._pools[pool.uuid] = pool
        return pool

    def _require_registered(self, t: Type, where: str) -> None:
        if isinstance(t, NamedType):
            if t.runtime_id not in self._by_id:
                raise DefinitionError(f"{where}: type {t} is not registered")
            return
        if isinstance(t, AnyConceptType):
            return
        for c in t.children():
            self._require_registered(c, where)

    # -- lookup ---------------------------------------------------------------------------
    def types(self) -> list[NamedType]:
        """Every named type, in registration order (dependencies first)."""
        return list(self._named.values())

    def concepts(self) -> list[ConceptType]:
        """Registered concepts."""
        return [t for t in self._named.values() if isinstance(t, ConceptType)]

    def clubs(self) -> list[ClubType]:
        """Registered clubs."""
        return [t for t in self._named.values() if isinstance(t, ClubType)]

    def enumerations(self) -> list[EnumerationType]:
        """Registered enumerations."""
        return [t for t in self._named.values() if isinstance(t, EnumerationType)]

    def structures(self) -> list[StructureType]:
        """Registered structures."""
        return [t for t in self._named.values() if isinstance(t, StructureType)]

    def attachments(self) -> list[Attachment]:
        """Registered attachments."""
        return list(self._attachments.values())

    def pools(self) -> list[PoolDeclaration]:
        """Registered function pool declarations."""
        return list(self._pools.values())

    def query_type(self, ref: uuid.UUID | str) -> NamedType | None:
        """A named type by runtime id or qualified name ``NS::Name`` (None if unknown)."""
        if isinstance(ref, uuid.UUID):
            return self._by_id.get(ref)
        ns_name, sep, name = ref.rpartition("::")
        if not sep:
            found = [t for t in self._named.values() if t.name == ref]
            return found[0] if len(found) == 1 else None
        for (ns_uuid, n), t in self._named.items():
            if n == name and self._namespaces[ns_uuid].name == ns_name:
                return t
        return None

    def check_type(self, ref: uuid.UUID | str) -> NamedType:
        """Like :meth:`query_type` but raises when unknown."""
        t = self.query_type(ref)
        if t is None:
            raise DefinitionError(f"unknown type {ref}")
        return t

    def query_attachment(self, ref: uuid.UUID | str) -> Attachment | None:
        """An attachment by runtime id or identifier ``NS::Concept.name`` (None if unknown)."""
        if isinstance(ref, uuid.UUID):
            return self._attachments.get(ref)
        for a in self._attachments.values():
            if a.identifier == ref:
                return a
        found = [a for a in self._attachments.values() if f"{a.namespace.name}::{a.name}" == ref]
        return found[0] if len(found) == 1 else None

    def check_attachment(self, ref: uuid.UUID | str | Attachment) -> Attachment:
        """The registered attachment (raises UnknownAttachmentError)."""
        if isinstance(ref, Attachment):
            found = self._attachments.get(ref.runtime_id)
            if found is None:
                raise UnknownAttachmentError(f"attachment {ref.identifier} is not registered")
            return found
        a = self.query_attachment(ref)
        if a is None:
            raise UnknownAttachmentError(f"unknown attachment {ref}")
        return a

    def query_pool(self, ref: uuid.UUID | str) -> PoolDeclaration | None:
        """A pool declaration by uuid or name (None if unknown)."""
        if isinstance(ref, uuid.UUID):
            return self._pools.get(ref)
        for p in self._pools.values():
            if p.name == ref:
                return p
        return None

    def concept_members(self, concept: ConceptType) -> list[ConceptType]:
        """The concept and its registered descendants."""
        return [c for c in self.concepts() if c.is_a(concept)]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Attachment):
            return item.runtime_id in self._attachments
        if isinstance(item, NamedType):
            return item.runtime_id in self._by_id
        return False

    def __iter__(self) -> Iterator[NamedType]:
        return iter(self._named.values())

    # -- identity -------------------------------------------------------------------------
    def runtime_ids(self) -> list[uuid.UUID]:
        """Runtime ids of all named types and attachments."""
        return [*self._by_id, *self._attachments]

    def hexdigest(self) -> str:
        """SHA-256 over the sorted 16-byte runtime ids of named types and attachments."""
        h = hashlib.sha256()
        for rid in sorted(r.bytes for r in self.runtime_ids()):
            h.update(rid)
        return h.hexdigest()

    def is_equal(self, other: Definitions) -> bool:
        """Same named types and attachments (documentation and club members ignored)."""
        return set(self.runtime_ids()) == set(other.runtime_ids()) and set(self._pools) == set(
            other._pools
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Definitions):
            return NotImplemented
        return self.is_equal(other) and all(self._pools[u] == other._pools[u] for u in self._pools)

    __hash__ = None  # type: ignore[assignment]

    def contains(self, other: Definitions) -> bool:
        """True if everything in `other` is already here."""
        return set(other.runtime_ids()) <= set(self.runtime_ids())

    def __repr__(self) -> str:
        c = self.counts()
        return "<Definitions " + " ".join(f"{k}={v}" for k, v in c.items()) + ">"

    def counts(self) -> dict[str, int]:
        """Counts by kind (the ``commitdb dsm check`` summary)."""
        return {
            "namespaces": len(self._namespaces),
            "concepts": len(self.concepts()),
            "clubs": len(self.clubs()),
            "enumerations": len(self.enumerations()),
            "structures": len(self.structures()),
            "attachments": len(self._attachments),
            "function_pools": len(self._pools),
            "functions": sum(len(p.functions) for p in self._pools.values()),
        }

    # -- extension ------------------------------------------------------------------------
    def extend(self, other: Definitions) -> ExtendInfo:
        """Add what `other` has and this lacks; all-or-nothing.

        A qualified name (or attachment identifier, or pool uuid) present on both sides with
        a different runtime id raises :class:`DefinitionConflictError` and adds nothing.
        Clubs present on both sides gain missing members.
        """
        for t in other._named.values():
            mine = self._named.get((t.namespace.uuid, t.name))
            if mine is not None and mine.runtime_id != t.runtime_id:
                raise DefinitionConflictError(
                    f"{t.qualified_name} is defined by two divergent runtime ids "
                    f"({mine.runtime_id} here, {t.runtime_id} in the extension)"
                )
        for a in other._attachments.values():
            key = (a.namespace.uuid, a.key_type.target.runtime_id, a.name)
            mine_a = self._attachment_names.get(key)
            if mine_a is not None and mine_a.runtime_id != a.runtime_id:
                raise DefinitionConflictError(
                    f"attachment {a.identifier} is defined by two divergent runtime ids"
                )
        for p in other._pools.values():
            mine_p = self._pools.get(p.uuid)
            if mine_p is not None and mine_p.runtime_id != p.runtime_id:
                raise DefinitionConflictError(
                    f"pool {p.name} {{{p.uuid}}} is declared with different contents"
                )
        info = ExtendInfo()
        for ns in other._namespaces.values():
            self._namespaces.setdefault(ns.uuid, ns)
        # clubs we already have gain missing members (first: adopted defaults may hold keys)
        for club in other.clubs():
            own_club = self._by_id.get(club.runtime_id)
            if isinstance(own_club, ClubType):
                for m in club.members:
                    if m not in own_club.members:
                        own_club.members.add(m)
                        info.memberships.append((club.runtime_id, m.runtime_id))
        memo: dict[uuid.UUID, Type] = {}
        for t in other._named.values():  # registration order: dependencies first
            if t.runtime_id in self._by_id:
                continue
            own: NamedType
            if isinstance(t, ClubType):
                # membership is per registry: a club object of our own
                own_club = ClubType(t.namespace, t.name, t.documentation)
                own_club.members = set(t.members)
                own = own_club
            else:
                own = cast(NamedType, self._adopt(t, memo))
            self._named[(t.namespace.uuid, t.name)] = own
            self._by_id[t.runtime_id] = own
            bucket = {
                "concept": info.concepts,
                "club": info.clubs,
                "enum": info.enumerations,
                "struct": info.structures,
            }[t.kind]
            bucket.append(t.runtime_id)
        for a in other._attachments.values():
            if a.runtime_id not in self._attachments:
                self._add_attachment(self._adopt_attachment(a, memo))
                info.attachments.append(a.runtime_id)
        for p in other._pools.values():
            if p.uuid not in self._pools:
                self._pools[p.uuid] = p
                info.pools.append(p.uuid)
        return info

    def _adopt(self, t: Type, memo: dict[uuid.UUID, Type]) -> Type:
        """Our version of a type taken from another registry.

        Types are shared between registries, except those that reach a ``key<Club>``: a
        club's membership belongs to each registry (and grows by :meth:`extend`), so such a
        type is rebuilt over our own club objects; otherwise keys of members added here
        would be refused by the other registry's types.
        """
        if isinstance(t, NamedType):
            mine = self._by_id.get(t.runtime_id)
            if mine is not None:
                return mine
        if not _reaches_club(t):
            return t
        done = memo.get(t.runtime_id)
        if done is not None:
            return done
        new: Type
        if isinstance(t, KeyType):
            new = KeyType(cast(ClubType, self._adopt(t.target, memo)))
        elif isinstance(t, StructureType):
            fields = [
                Field(f.name, self._adopt(f.type, memo), f.default, f.documentation)
                for f in t.fields
            ]
            new = StructureType(t.namespace, t.name, fields, t.documentation)
        elif isinstance(t, VectorType | SetType | OptionalType | XArrayType):
            new = type(t)(self._adopt(t.element, memo))
        elif isinstance(t, MapType):
            new = MapType(self._adopt(t.key, memo), self._adopt(t.value, memo))
        elif isinstance(t, TupleType):
            new = TupleType([self._adopt(e, memo) for e in t.elements])
        elif isinstance(t, VariantType):
            new = VariantType([self._adopt(e, memo) for e in t.alternatives])
        else:
            new = t
        memo[t.runtime_id] = new
        return new

    def _adopt_attachment(self, a: Attachment, memo: dict[uuid.UUID, Type]) -> Attachment:
        """Our version of an attachment from another registry (see :meth:`_adopt`)."""
        if not (_reaches_club(a.key_type) or _reaches_club(a.document_type)):
            return a
        key_type = cast(KeyType, self._adopt(a.key_type, memo))
        return Attachment(
            a.namespace, a.name, key_type, self._adopt(a.document_type, memo), a.documentation
        )

    def copy(self) -> Definitions:
        """An independent registry with the same content."""
        new = Definitions()
        new.extend(self)
        return new

    def extract(
        self,
        types: Iterable[Type] = (),
        attachments: Iterable[Attachment] = (),
        pools: Iterable[PoolDeclaration] = (),
    ) -> Definitions:
        """The reduced definitions: the closure of what the given items reference."""
        new = Definitions()
        seen: set[uuid.UUID] = set()
        order: list[NamedType] = []

        def visit(t: Type) -> None:
            if isinstance(t, NamedType):
                if t.runtime_id in seen:
                    return
                seen.add(t.runtime_id)
                if isinstance(t, ConceptType) and t.parent is not None:
                    visit(t.parent)
                if isinstance(t, ClubType):
                    for m in t.members:
                        visit(m)
            for c in t.children():
                visit(c)
            if isinstance(t, NamedType):
                order.append(self._by_id.get(t.runtime_id, t))

        atts = list(attachments)
        pool_list = list(pools)
        for t in types:
            visit(t)
        for a in atts:
            visit(a.key_type)
            visit(a.document_type)
        for p in pool_list:
            for f in p.functions.values():
                for prm in f.parameters:
                    visit(prm.type)
                visit(f.return_type)
        memo: dict[uuid.UUID, Type] = {}
        for t in order:  # dependencies first
            new._namespaces.setdefault(t.namespace.uuid, t.namespace)
            if isinstance(t, ClubType):
                own = ClubType(t.namespace, t.name, t.documentation)
                own.members = {m for m in t.members if m.runtime_id in seen}
                t = own
            else:
                t = cast(NamedType, new._adopt(t, memo))
            new._named[(t.namespace.uuid, t.name)] = t
            new._by_id[t.runtime_id] = t
        for a in atts:
            new._namespaces.setdefault(a.namespace.uuid, a.namespace)
            new._add_attachment(new._adopt_attachment(a, memo))
        for p in pool_list:
            new._pools[p.uuid] = p
        return new
