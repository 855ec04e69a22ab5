"""The gateway's JSON forms in one import: typed values, DSM type spellings, mutation objects.

The code lives in three modules, one role each; this one gathers their names:

* :mod:`rpc.json_codec` — values ⇄ JSON (``docs/jsonrpc-gateway.md`` §1): :func:`to_json`,
  :func:`from_json` (validates while it converts; a value that does not fit raises
  :class:`~commitdb.errors.ValidationError` whose ``where`` locates it, ``params.args[1].x``),
  :func:`key_to_json`, :func:`key_from_json`, :func:`describe_json`.
* :mod:`rpc.json_types` — :func:`parse_type`: the type a DSM spelling names
  (``map<string, Graph::Position>``), for ``{"type", "value"}`` objects.
* :mod:`rpc.json_mutations` — :func:`apply_mutation` applies one mutation object
  (``{"op": "update", "attachment", "key", "path", "value"}``) to a mutable state — the form
  of ``db.commit`` and of lent-state notifications; :data:`MUTATION_FIELDS` lists the ops.
"""

from __future__ import annotations

from rpc.json_codec import describe_json, from_json, key_from_json, key_to_json, to_json
from rpc.json_mutations import MUTATION_FIELDS, apply_mutation
from rpc.json_types import parse_type

__all__ = (
    "MUTATION_FIELDS",
    "apply_mutation",
    "describe_json",
    "from_json",
    "key_from_json",
    "key_to_json",
    "parse_type",
    "to_json",
)
