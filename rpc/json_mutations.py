"""Mutation objects as JSON: ``{"op": "update", "attachment", "key", "path", "value"}``.

The form of ``db.commit``'s ``mutations`` and of the ``state.*`` notifications a lent state
sends its WebSocket client. :data:`MUTATION_FIELDS` lists each op's fields;
:func:`apply_mutation` validates one object and applies it to a mutable state;
:func:`check_container` and :func:`container_operand` say what a set or map op acts on and
with what (shared with :class:`~rpc.gateway.lending.LentState`, which writes these objects).
"""

from __future__ import annotations

import uuid
from typing import Any

from commitdb import types as T
from commitdb.definitions import Definitions
from commitdb.errors import PathError, ValidationError
from commitdb.paths import Path
from commitdb.values import END
from rpc.json_codec import from_json, key_from_json, mismatch

__all__ = ("MUTATION_FIELDS", "apply_mutation", "check_container", "container_operand")

#: The fields of each mutation object (besides ``op``); optional ones end with ``?``.
MUTATION_FIELDS: dict[str, tuple[str, ...]] = {
    "set": ("attachment", "key", "value"),
    "delete": ("attachment", "key"),
    "update": ("attachment", "key", "path", "value"),
    "union_in_set": ("attachment", "key", "path", "elements"),
    "subtract_in_set": ("attachment", "key", "path", "elements"),
    "union_in_map": ("attachment", "key", "path", "entries"),
    "update_in_map": ("attachment", "key", "path", "entries"),
    "subtract_in_map": ("attachment", "key", "path", "keys"),
    "insert_in_xarray": ("attachment", "key", "path", "before", "position?", "value"),
    "update_in_xarray": ("attachment", "key", "path", "position", "value"),
    "remove_in_xarray": ("attachment", "key", "path", "position"),
    "diff": ("attachment", "key", "value", "recursive?"),
}


#: The container each set, map and xarray op acts on, by the op's last word.
_CONTAINER_TYPES: dict[str, type[T.Type]] = {
    "set": T.SetType,
    "map": T.MapType,
    "xarray": T.XArrayType,
}
_SET_AND_MAP_OPS = frozenset(
    ("union_in_set", "subtract_in_set", "union_in_map", "update_in_map", "subtract_in_map")
)


def check_container(op: str, t: T.Type, path: str, where: str) -> None:
    """Raise ValidationError unless `t`, the type at `path`, is the container `op` acts on
    (a set for ``union_in_set``, a map for ``update_in_map``, an xarray for
    ``insert_in_xarray``...)."""
    expected = _CONTAINER_TYPES[op.rsplit("_", 1)[1]]
    if not isinstance(t, expected):
        raise ValidationError(f"a path to a {expected.kind}", f"{path} of type {t}", where)


def container_operand(op: str, t: T.Type) -> tuple[str, T.Type]:
    """The field holding a set or map op's operand and the operand's type, given `t`, the
    container type at the op's path (``subtract_in_map`` takes a set of the map's keys)."""
    field = MUTATION_FIELDS[op][-1]
    if op == "subtract_in_map":
        assert isinstance(t, T.MapType)
        return field, T.SetType(t.key)
    return field, t


def _mutation_fields(obj: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(obj, dict) or not isinstance(obj.get("op"), str):
        raise mismatch('a mutation object {"op": ..., ...}', obj, where)
    op = obj["op"]
    spec = MUTATION_FIELDS.get(op)
    if spec is None:
        raise ValidationError(f"an op among {', '.join(MUTATION_FIELDS)}", repr(op), f"{where}.op")
    names = {f.rstrip("?") for f in spec}
    unknown = sorted(set(obj) - names - {"op"})
    missing = [f for f in spec if not f.endswith("?") and f not in obj]
    if unknown or missing:
        problem = f"unknown {unknown}" if unknown else f"missing {missing}"
        raise ValidationError(f"the fields of {op}: {', '.join(spec)}", problem, where)
    return op, obj


def _path(text: Any, att: T.Attachment, where: str) -> tuple[Path, T.Type]:
    if not isinstance(text, str):
        raise mismatch("a path in text form ('.field[...]')", text, where)
    try:
        p = Path.parse(text).normalize(att.document_type)
        return p, p.resolve(att.document_type)
    except PathError as exc:
        raise PathError(f"{where}: {exc}") from None


def _position(data: Any, where: str, *, allow_end: bool) -> uuid.UUID:
    if allow_end and data == "END":
        return END
    position = from_json(data, T.UUID, None, where)
    if not isinstance(position, uuid.UUID) or (position == END and not allow_end):
        raise mismatch("a real xarray position", data, where)
    return position


def apply_mutation(state: Any, obj: Any, definitions: Definitions, where: str) -> Any:
    """Apply one mutation object to a mutable state (a ``CommitMutableState`` or a state
    with the same methods).

    Args:
        state: The state to mutate.
        obj: The decoded JSON mutation object.
        definitions: The definitions of the state's documents.
        where: Where the object sits (``params.mutations[2]``), for error messages.

    Returns:
        What the state method returns (the new position of ``insert_in_xarray``).

    Raises:
        ValidationError: A malformed object or a value that does not fit (located).
        PathError: A path that does not exist in the document type.
        UnknownAttachmentError: An unknown attachment.
    """
    op, f = _mutation_fields(obj, where)
    if not isinstance(f["attachment"], str):
        raise mismatch("an attachment identifier (NS::Concept.name)", f["attachment"], where)
    att = definitions.check_attachment(f["attachment"])
    key = key_from_json(f["key"], att.key_type, definitions, f"{where}.key")
    doc = att.document_type
    if op == "set":
        return state.set(att, key, from_json(f["value"], doc, definitions, f"{where}.value"))
    if op == "delete":
        return state.delete(att, key)
    if op == "diff":
        recursive = f.get("recursive", False)
        if not isinstance(recursive, bool):
            raise mismatch("boolean", recursive, f"{where}.recursive")
        value = from_json(f["value"], doc, definitions, f"{where}.value")
        return state.diff(att, key, value, recursive)
    path, t = _path(f["path"], att, f"{where}.path")
    if op == "update":
        return state.update(att, key, path, from_json(f["value"], t, definitions, f"{where}.value"))
    check_container(op, t, str(path), where)
    if op in _SET_AND_MAP_OPS:
        field, operand_type = container_operand(op, t)
        operand = from_json(f[field], operand_type, definitions, f"{where}.{field}")
        return getattr(state, op)(att, key, path, operand)
    assert isinstance(t, T.XArrayType)
    if op == "remove_in_xarray":
        return state.remove_in_xarray(
            att, key, path, _position(f["position"], f"{where}.position", allow_end=False)
        )
    value = from_json(f["value"], t.element, definitions, f"{where}.value")
    if op == "update_in_xarray":
        position = _position(f["position"], f"{where}.position", allow_end=False)
        return state.update_in_xarray(att, key, path, position, value)
    before = _position(f["before"], f"{where}.before", allow_end=True)
    new = f.get("position")
    fresh = None if new is None else _position(new, f"{where}.position", allow_end=False)
    return state.insert_in_xarray(att, key, path, before, fresh, value)
