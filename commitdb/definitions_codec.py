"""Serialize a Definitions to canonical bytes and back (for storage and the wire).

The form lists namespaces, named types in registration order (dependencies first), club
memberships, attachments and pool declarations; types are referenced by runtime id. Decoding
rebuilds every type and checks that each runtime id comes out identical, so corrupt or
foreign bytes are refused with a DecodeError.
"""

from __future__ import annotations

import uuid
from typing import Any

from commitdb.codec import decode, encode, pack, type_from_wire, type_to_wire, unpack
from commitdb.definitions import Definitions
from commitdb.errors import CommitDBError, DecodeError
from commitdb.prototypes import FunctionPrototype, Parameter, PoolDeclaration
from commitdb.types import (
    ClubType,
    ConceptType,
    EnumerationType,
    Field,
    KeyType,
    Namespace,
    StructureType,
)

__all__ = ("decode_definitions", "encode_definitions")

_FORMAT = 1


def encode_definitions(defs: Definitions) -> bytes:
    """Canonical bytes of a Definitions (documentation included)."""
    named: list[Any] = []
    memberships: list[Any] = []
    for t in defs.types():
        ns = t.namespace.uuid.bytes
        if isinstance(t, ConceptType):
            parent = t.parent.runtime_id.bytes if t.parent else None
            named.append(["concept", ns, t.name, t.documentation, parent])
        elif isinstance(t, ClubType):
            named.append(["club", ns, t.name, t.documentation])
            memberships.extend(
                [t.runtime_id.bytes, m.runtime_id.bytes]
                for m in sorted(t.members, key=lambda c: c.runtime_id.bytes)
            )
        elif isinstance(t, EnumerationType):
            named.append(
                [
                    "enum",
                    ns,
                    t.name,
                    t.documentation,
                    [c.name for c in t.cases],
                    [t.case_documentation.get(c.name) for c in t.cases],
                ]
            )
        elif isinstance(t, StructureType):
            fields = [
                [
                    f.name,
                    type_to_wire(f.type),
                    None if f.default is None else encode(f.default, f.type),
                    f.documentation,
                ]
                for f in t.fields
            ]
            named.append(["struct", ns, t.name, t.documentation, fields])
    attachments = [
        [
            a.namespace.uuid.bytes,
            a.name,
            a.documentation,
            type_to_wire(a.key_type),
            type_to_wire(a.document_type),
        ]
        for a in defs.attachments()
    ]
    pools = [
        [
            p.uuid.bytes,
            p.name,
            p.documentation,
            p.attachment,
            [
                [
                    f.name,
                    f.documentation,
                    f.mutable,
                    [[prm.name, type_to_wire(prm.type)] for prm in f.parameters],
                    type_to_wire(f.return_type),
                ]
                for f in p.functions.values()
            ],
        ]
        for p in defs.pools()
    ]
    namespaces = [[ns.uuid.bytes, ns.name] for ns in defs.namespaces()]
    return pack([_FORMAT, namespaces, named, memberships, attachments, pools])


def decode_definitions(data: bytes) -> Definitions:
    """Rebuild a Definitions from :func:`encode_definitions` bytes (DecodeError if invalid)."""
    try:
        return _decode(unpack(data))
    except DecodeError:
        raise
    except (CommitDBError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise DecodeError(f"malformed definitions: {exc}") from None


def _decode(w: Any) -> Definitions:
    if type(w) is not list or len(w) != 6 or w[0] != _FORMAT:
        raise DecodeError("not a commitdb definitions encoding")
    _, namespaces, named, memberships, attachments, pools = w
    defs = Definitions()
    ns_by_uuid: dict[bytes, Namespace] = {}
    for raw, name in namespaces:
        ns_by_uuid[raw] = defs.namespace(name, uuid.UUID(bytes=raw))
    for entry in named:
        kind, ns_raw, name, doc = entry[:4]
        ns = ns_by_uuid[ns_raw]
        if kind == "concept":
            parent = None
            if entry[4] is not None:
                p = defs.query_type(uuid.UUID(bytes=entry[4]))
                if not isinstance(p, ConceptType):
                    raise DecodeError(f"concept {name}: unknown parent")
                parent = p
            defs.create_concept(ns, name, parent=parent, documentation=doc)
        elif kind == "club":
            defs.create_club(ns, name, documentation=doc)
        elif kind == "enum":
            cases, case_docs = entry[4], entry[5]
            defs.create_enumeration(
                ns,
                name,
                cases,
                documentation=doc,
                case_documentation={
                    c: d for c, d in zip(cases, case_docs, strict=True) if d is not None
                },
            )
        elif kind == "struct":
            fields = []
            for fname, twire, default_raw, fdoc in entry[4]:
                ft = type_from_wire(twire, defs)
                default = None if default_raw is None else decode(default_raw, ft, defs)
                fields.append(Field(fname, ft, default, fdoc))
            defs.create_structure(ns, name, fields, documentation=doc)
        else:
            raise DecodeError(f"unknown named type kind {kind!r}")
    for club_raw, member_raw in memberships:
        club = defs.query_type(uuid.UUID(bytes=club_raw))
        member = defs.query_type(uuid.UUID(bytes=member_raw))
        if not isinstance(club, ClubType) or not isinstance(member, ConceptType):
            raise DecodeError("bad membership")
        defs.create_membership(club, member)
    for ns_raw, name, doc, key_wire, doc_wire in attachments:
        key_type = type_from_wire(key_wire, defs)
        if not isinstance(key_type, KeyType):
            raise DecodeError(f"attachment {name}: key type is not a key")
        defs.create_attachment(
            ns_by_uuid[ns_raw],
            name,
            key_type,
            type_from_wire(doc_wire, defs),
            documentation=doc,
        )
    for raw, name, doc, is_attachment, functions in pools:
        protos = [
            FunctionPrototype(
                fname,
                [Parameter(pn, type_from_wire(pt, defs)) for pn, pt in params],
                type_from_wire(ret, defs),
                fdoc,
                mutable,
            )
            for fname, fdoc, mutable, params, ret in functions
        ]
        defs.create_pool(PoolDeclaration(uuid.UUID(bytes=raw), name, protos, doc, is_attachment))
    return defs
