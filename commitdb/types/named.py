"""Named types (concept, club, enumeration) with their :class:`Namespace`, and the key
types that refer to instances of concepts: ``key<C>``, ``key<Club>``, ``key<any_concept>``.

Structures, the fourth kind of named type, are in :mod:`commitdb.types.structures`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from commitdb.errors import DefinitionError, ValidationError
from commitdb.types.base import Type, _first_duplicate, _rid, describe
from commitdb.values import NIL_UUID, EnumCase, Key

__all__ = (
    "ANY_CONCEPT",
    "AnyConceptType",
    "ClubType",
    "ConceptType",
    "EnumerationType",
    "KeyType",
    "NamedType",
    "Namespace",
)


class Namespace:
    """A namespace: its uuid is its identity, its name is cosmetic."""

    __slots__ = ("name", "uuid")

    def __init__(self, name: str, namespace_uuid: uuid.UUID | str) -> None:
        self.name = name
        self.uuid = (
            namespace_uuid if isinstance(namespace_uuid, uuid.UUID) else uuid.UUID(namespace_uuid)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and self.uuid == other.uuid

    def __hash__(self) -> int:
        return hash(self.uuid)

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, {str(self.uuid)!r})"


class NamedType(Type):
    """A type registered under a name in a namespace (concept, club, enumeration, structure)."""

    __slots__ = ("documentation", "name", "namespace")

    def __init__(self, namespace: Namespace, name: str, documentation: str | None = None) -> None:
        super().__init__()
        self.namespace = namespace
        self.name = name
        self.documentation = documentation

    @property
    def qualified_name(self) -> str:
        """``Namespace::Name``."""
        return f"{self.namespace.name}::{self.name}"

    def __str__(self) -> str:
        return self.qualified_name


class ConceptType(NamedType):
    """An abstract concept, known only through keys; may have a parent (``is a``)."""

    __slots__ = ("parent",)
    kind = "concept"

    def __init__(
        self,
        namespace: Namespace,
        name: str,
        parent: ConceptType | None = None,
        documentation: str | None = None,
    ) -> None:
        super().__init__(namespace, name, documentation)
        self.parent = parent

    def _compute_runtime_id(self) -> uuid.UUID:
        parent = self.parent.runtime_id.bytes if self.parent else b""
        return _rid(self.kind, self.namespace.uuid.bytes, self.name, parent)

    def is_a(self, other: Type) -> bool:
        """True if this concept is `other` or one of its descendants."""
        c: ConceptType | None = self
        while c is not None:
            if c == other:
                return True
            c = c.parent
        return False

    def ancestors(self) -> list[ConceptType]:
        """This concept then its parents up to the root."""
        out: list[ConceptType] = []
        c: ConceptType | None = self
        while c is not None:
            out.append(c)
            c = c.parent
        return out


class ClubType(NamedType):
    """A named set of unrelated concepts; membership may grow and is not part of the id."""

    __slots__ = ("members",)
    kind = "club"

    def __init__(self, namespace: Namespace, name: str, documentation: str | None = None) -> None:
        super().__init__(namespace, name, documentation)
        self.members: set[ConceptType] = set()

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.namespace.uuid.bytes, self.name)


class AnyConceptType(Type):
    """``any_concept``: accepts a key of any concept."""

    __slots__ = ()
    kind = "any_concept"


class EnumerationType(NamedType):
    """An enumeration of 1..256 named cases; the default is the first case."""

    __slots__ = ("_by_name", "case_documentation", "cases")
    kind = "enum"

    def __init__(
        self,
        namespace: Namespace,
        name: str,
        cases: Iterable[str],
        documentation: str | None = None,
        case_documentation: Mapping[str, str | None] | None = None,
    ) -> None:
        super().__init__(namespace, name, documentation)
        names = list(cases)
        if not names:
            raise DefinitionError(f"enumeration {name} needs at least one case")
        if len(names) > 256:
            raise DefinitionError(f"enumeration {name} has {len(names)} cases (at most 256)")
        dup = _first_duplicate(names)
        if dup is not None:
            raise DefinitionError(f"enumeration {name} has case {dup!r} twice")
        self.cases: tuple[EnumCase, ...] = tuple(EnumCase(self, n, i) for i, n in enumerate(names))
        self._by_name = {c.name: c for c in self.cases}
        self.case_documentation = dict(case_documentation or {})

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.namespace.uuid.bytes, self.name, *(c.name for c in self.cases))

    def case(self, name: str) -> EnumCase:
        """The case with this name (KeyError if none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.qualified_name} has no case {name!r}") from None

    def __getattr__(self, name: str) -> EnumCase:
        by_name = object.__getattribute__(self, "_by_name")
        if name in by_name:
            return cast(EnumCase, by_name[name])
        raise AttributeError(name)

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, EnumCase):
            if value.enumeration == self:
                return self._by_name[value.name]
            raise self.fail(value, where)
        if isinstance(value, str):
            # 'a', '.a', 'Enum.a' or 'NS::Enum.a'
            prefix, _, name = value.rpartition(".")
            c = self._by_name.get(name)
            if c is not None and prefix in ("", self.name, self.qualified_name):
                return c
            raise ValidationError(
                f"a case of {self.qualified_name} ({', '.join(self._by_name)})",
                describe(value),
                where,
            )
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(self.cases):
                return self.cases[value]
            raise ValidationError(
                f"a case ordinal of {self.qualified_name} in [0, {len(self.cases) - 1}]",
                describe(value),
                where,
            )
        raise self.fail(value, where)

    def default(self) -> Any:
        return self.cases[0]


class KeyType(Type):
    """``key<X>``: a key whose concept is X or a descendant (X a concept), a member of X
    (X a club), or any concept (X ``any_concept``)."""

    __slots__ = ("target",)
    kind = "key"

    def __init__(self, target: ConceptType | ClubType | AnyConceptType) -> None:
        super().__init__()
        if not isinstance(target, ConceptType | ClubType | AnyConceptType):
            raise DefinitionError(f"key<> needs a concept, a club or any_concept, not {target}")
        self.target = target

    def _compute_runtime_id(self) -> uuid.UUID:
        return _rid(self.kind, self.target.runtime_id.bytes)

    def __str__(self) -> str:
        return f"key<{self.target}>"

    def children(self) -> tuple[Type, ...]:
        return (self.target,)

    def accepts_concept(self, concept: ConceptType) -> bool:
        """True if a key of `concept` is a key of this type."""
        if not isinstance(concept, ConceptType):
            return False  # e.g. the club of the default key of a key<Club>
        t = self.target
        if isinstance(t, AnyConceptType):
            return True
        if isinstance(t, ClubType):
            return concept in t.members
        return concept.is_a(t)

    def check(self, value: object, where: str = "") -> Any:
        if isinstance(value, Key):
            c = value.concept
            if isinstance(c, ConceptType) and self.accepts_concept(c):
                return value
            if value.is_nil and c == self.target:
                return value
            raise ValidationError(str(self), f"key of {c}", where)
        raise self.fail(value, where)

    def default(self) -> Any:
        return Key(cast(ConceptType, self.target), NIL_UUID)

    def create_key(self, instance_id: uuid.UUID | str | None = None) -> Key:
        """A key of the target concept (a fresh uuid when none is given)."""
        if not isinstance(self.target, ConceptType):
            raise DefinitionError(f"cannot mint a key of {self.target}: name a concrete concept")
        return Key(self.target, instance_id)


ANY_CONCEPT = AnyConceptType()
