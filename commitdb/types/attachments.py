"""Attachments: ``attachment<Concept, Document> name`` binds a key type to a document type."""

from __future__ import annotations

import uuid
from typing import Any, cast

from commitdb.errors import ValidationError
from commitdb.types.base import Type, _rid
from commitdb.types.named import KeyType, NamedType, Namespace
from commitdb.types.storable import _require_storable
from commitdb.values import Key

__all__ = ("Attachment",)


class Attachment:
    """Binds a key type to a document type: ``attachment<Concept, Document> name``.

    Its identifier ``NS::Concept.name`` is unique; its runtime id derives from namespace,
    name, key type and document type.
    """

    __slots__ = ("_rid", "document_type", "documentation", "key_type", "name", "namespace")

    def __init__(
        self,
        namespace: Namespace,
        name: str,
        key_type: KeyType,
        document_type: Type,
        documentation: str | None = None,
    ) -> None:
        _require_storable(document_type, f"attachment {name} document")
        self.namespace = namespace
        self.name = name
        self.key_type = key_type
        self.document_type = document_type
        self.documentation = documentation
        self._rid: uuid.UUID | None = None

    @property
    def runtime_id(self) -> uuid.UUID:
        """Stable, content-derived identity."""
        if self._rid is None:
            self._rid = _rid(
                "attachment",
                self.namespace.uuid.bytes,
                self.name,
                self.key_type.runtime_id.bytes,
                self.document_type.runtime_id.bytes,
            )
        return self._rid

    @property
    def identifier(self) -> str:
        """``NS::Concept.name``, the unique name of the attachment."""
        target = self.key_type.target
        if isinstance(target, NamedType):
            t = target.name if target.namespace == self.namespace else target.qualified_name
        else:
            t = "any_concept"
        return f"{self.namespace.name}::{t}.{self.name}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attachment) and self.runtime_id == other.runtime_id

    def __hash__(self) -> int:
        return hash(self.runtime_id)

    def __repr__(self) -> str:
        return f"<attachment {self.identifier}: {self.document_type}>"

    def create_key(self, instance_id: uuid.UUID | str | None = None) -> Key:
        """A key for an instance of the attachment's concept (fresh uuid if None)."""
        return self.key_type.create_key(instance_id)

    def create_document(self) -> Any:
        """The zero document."""
        return self.document_type.default()

    def check_key(self, key: object, where: str = "") -> Key:
        """Validate a key for this attachment (nil instance ids are refused)."""
        k = cast(Key, self.key_type.check(key, where or f"{self.identifier} key"))
        if k.is_nil:
            raise ValidationError(
                "a key with a valid instance id", "the nil key", where or self.identifier
            )
        return k
