"""Which types a value can be stored as (not void, and no bare concept or club)."""

from __future__ import annotations

from commitdb.errors import DefinitionError
from commitdb.types.base import Type
from commitdb.types.named import AnyConceptType, ClubType, ConceptType
from commitdb.types.primitives import VoidType

__all__ = ("is_storable",)


def is_storable(t: Type) -> bool:
    """False for types that cannot be stored (void, bare concepts and clubs)."""
    return not isinstance(t, VoidType | ConceptType | ClubType | AnyConceptType)


def _require_storable(t: Type, what: str) -> None:
    if not isinstance(t, Type):
        raise DefinitionError(f"{what}: {t!r} is not a type")
    if not is_storable(t):
        raise DefinitionError(f"{what} cannot be of type {t} (use key<{t}> for a reference)")
