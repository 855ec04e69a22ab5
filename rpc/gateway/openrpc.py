"""OpenRPC 1.2 discovery: JSON schemas of DSM types and the document ``rpc.discover`` returns.

:class:`SchemaBuilder` gives the JSON schema (draft 7, as OpenRPC uses) of the JSON form of a
type (:mod:`rpc.json_values`); named types — structures, enumerations — become
``#/components/schemas/<NS>.<Name>`` references so recursive structures stay finite.
:func:`openrpc_document` describes every registered method.
"""

from __future__ import annotations

from typing import Any

from commitdb import types as T
from rpc.jsonrpc import MethodSpec

__all__ = (
    "DB_SCHEMAS",
    "HEX64",
    "OPENRPC_VERSION",
    "UUID_SCHEMA",
    "SchemaBuilder",
    "openrpc_document",
)

OPENRPC_VERSION = "1.2.6"

HEX64: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
UUID_SCHEMA: dict[str, Any] = {"type": "string", "format": "uuid"}
_NUMBER: dict[str, Any] = {
    "oneOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]
}


_KEY: dict[str, Any] = {
    "type": "object",
    "properties": {"concept": {"type": "string"}, "id": UUID_SCHEMA},
    "required": ["id"],
    "additionalProperties": False,
}
_HEADER: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{n: {"type": ["string", "null"]} for n in ("commit", "parent", "target")},
        **{n: {"type": "string"} for n in ("kind", "label", "author")},
        "timestamp": {"type": "number"},
    },
}

#: Schemas of the database methods' parameters and results, by short name.
DB_SCHEMAS: dict[str, dict[str, Any]] = {
    "database": {"type": "string", "description": "the name of a served database"},
    "commit_ref": {
        "description": 'a commit id, "head" or null for the last commit',
        "oneOf": [{"type": "null"}, {"type": "string", "const": "head"}, HEX64],
    },
    "hex": HEX64,
    "hexes": {"type": "array", "items": HEX64},
    "opt_hex": {"oneOf": [{"type": "null"}, HEX64]},
    "bool": {"type": "boolean"},
    "attachment": {"type": "string", "description": "an attachment identifier NS::Concept.name"},
    "key": _KEY,
    "keys": {"type": "array", "items": _KEY},
    "label": {"type": "string"},
    "layout": {"type": "string", "description": "element type and components: uchar-1, float-3"},
    "count": {"type": "integer", "minimum": 0},
    "base64": {"type": "string", "contentEncoding": "base64"},
    "document": {"description": "a document in the JSON form of its attachment's type, or null"},
    "header": _HEADER,
    "log": {"type": "array", "items": _HEADER},
    "blob_info": {
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "properties": {
                    "blob": HEX64,
                    "layout": {"type": "string"},
                    "size": {"type": "integer"},
                },
            },
        ]
    },
    "mutations": {
        "type": "array",
        "items": {"type": "object", "properties": {"op": {"type": "string"}}, "required": ["op"]},
        "description": "mutation objects: set, delete, update, union_in_set, subtract_in_set, "
        "union_in_map, update_in_map, subtract_in_map, insert_in_xarray, update_in_xarray, "
        "remove_in_xarray, diff",
    },
}


def component_name(t: T.NamedType) -> str:
    """The component key of a named type (``Graph.Position``: OpenRPC keys have no ``::``)."""
    return f"{t.namespace.name}.{t.name}"


class SchemaBuilder:
    """Builds schemas, collecting the named ones as components."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}

    def schema(self, t: T.Type) -> dict[str, Any]:
        """The JSON schema of the JSON form of `t`."""
        if isinstance(t, T.BoolType):
            return {"type": "boolean"}
        if isinstance(t, T.IntType):
            return {"type": "integer", "minimum": t.low, "maximum": t.high}
        if isinstance(t, T.FloatType | T.DoubleType):
            return dict(_NUMBER)
        if isinstance(t, T.StringType):
            return {"type": "string"}
        if isinstance(t, T.UUIDType):
            return dict(UUID_SCHEMA)
        if isinstance(t, T.BlobType):
            return {"type": "string", "contentEncoding": "base64"}
        if isinstance(t, T.BlobIdType | T.CommitIdType):
            return dict(HEX64)
        if isinstance(t, T.VoidType):
            return {"type": "null"}
        if isinstance(t, T.VectorType | T.SetType):
            out: dict[str, Any] = {"type": "array", "items": self.schema(t.element)}
            if isinstance(t, T.SetType):
                out["uniqueItems"] = True
            return out
        if isinstance(t, T.VecType | T.MatType):
            n = t.size if isinstance(t, T.VecType) else t.columns * t.rows
            items = self.schema(t.element)
            return {"type": "array", "items": items, "minItems": n, "maxItems": n}
        if isinstance(t, T.TupleType):
            n = len(t.elements)
            return {
                "type": "array",
                "items": [self.schema(e) for e in t.elements],
                "additionalItems": False,
                "minItems": n,
                "maxItems": n,
            }
        if isinstance(t, T.MapType):
            return self._map(t)
        if isinstance(t, T.OptionalType):
            return {"oneOf": [{"type": "null"}, self.schema(t.element)]}
        if isinstance(t, T.EnumerationType | T.StructureType):
            return self._named(t)
        if isinstance(t, T.KeyType):
            return self._key(t)
        if isinstance(t, T.XArrayType):
            element = self.schema(t.element)
            entry = {
                "type": "object",
                "properties": {"position": dict(UUID_SCHEMA), "value": element},
                "required": ["position", "value"],
                "additionalProperties": False,
            }
            return {"type": "array", "items": {"anyOf": [entry, element]}}
        if isinstance(t, T.VariantType):
            tagged = [self._tagged(a) for a in t.alternatives]
            return {"anyOf": [*tagged, *(self.schema(a) for a in t.alternatives)]}
        if isinstance(t, T.AnyType):
            return {
                "description": 'null, a boolean, number or string, or {"type": "<DSM type>", '
                '"value": ...}',
                "anyOf": [
                    {"type": ["null", "boolean", "number", "string"]},
                    {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "value": {}},
                        "required": ["type", "value"],
                        "additionalProperties": False,
                    },
                ],
            }
        return {"description": f"{t} (no JSON form)"}

    def _map(self, t: T.MapType) -> dict[str, Any]:
        value = self.schema(t.value)
        if isinstance(t.key, T.StringType):
            return {"type": "object", "additionalProperties": value}
        pair = {
            "type": "array",
            "items": [self.schema(t.key), value],
            "additionalItems": False,
            "minItems": 2,
            "maxItems": 2,
        }
        return {"type": "array", "items": pair}

    def _tagged(self, t: T.Type) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"type": {"const": str(t)}, "value": self.schema(t)},
            "required": ["type", "value"],
            "additionalProperties": False,
        }

    def _key(self, t: T.KeyType) -> dict[str, Any]:
        target = t.target
        concept: dict[str, Any] = {"type": "string"}
        required = ["concept", "id"]
        if isinstance(target, T.ConceptType):
            concept["description"] = f"{target.qualified_name} or a concept derived from it"
            required = ["id"]
        return {
            "type": "object",
            "description": f"a key of {target}",
            "properties": {"concept": concept, "id": dict(UUID_SCHEMA)},
            "required": required,
            "additionalProperties": False,
        }

    def _named(self, t: T.EnumerationType | T.StructureType) -> dict[str, Any]:
        name = component_name(t)
        ref = {"$ref": f"#/components/schemas/{name}"}
        if name in self.components:
            return ref
        self.components[name] = {}  # placeholder: a recursive structure refers to itself
        if isinstance(t, T.EnumerationType):
            body: dict[str, Any] = {"type": "string", "enum": [c.name for c in t.cases]}
        else:
            body = {
                "type": "object",
                "properties": {f.name: self._field(f) for f in t.fields},
                "additionalProperties": False,
            }
        body["title"] = t.qualified_name
        if t.documentation:
            body["description"] = t.documentation
        self.components[name] = body
        return ref

    def _field(self, f: T.Field) -> dict[str, Any]:
        schema = self.schema(f.type)
        if f.documentation:
            return {"allOf": [schema], "description": f.documentation}
        return schema


def openrpc_document(
    title: str, version: str, description: str, methods: list[MethodSpec], builder: SchemaBuilder
) -> dict[str, Any]:
    """The OpenRPC document of the registered methods.

    Args:
        title: ``info.title``.
        version: ``info.version``.
        description: ``info.description``.
        methods: The methods to describe (their schemas were built with `builder`).
        builder: The builder holding the named schemas the methods refer to.
    """
    described = []
    for m in methods:
        entry: dict[str, Any] = {
            "name": m.name,
            "summary": m.summary or m.name,
            "paramStructure": "either",
            "params": [_param(p.name, p.schema, p.required, p.description) for p in m.params],
            "result": {"name": m.result_name, "schema": m.result_schema},
            "x-permission": m.permission,
            "x-transports": sorted(m.transports),
        }
        if m.description:
            entry["description"] = m.description
        entry.update(m.notes)
        described.append(entry)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "methods": described,
        "components": {"schemas": dict(sorted(builder.components.items()))},
    }


def _param(name: str, schema: dict[str, Any], required: bool, description: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out
