"""Generate docs/gateway-methods.md from a live gateway's ``rpc.discover``.

Usage::

    .venv/bin/python scripts/gen_gateway_methods.py http://127.0.0.1:8080 \
        [-o docs/gateway-methods.md] [--token TOKEN] [--check]

The committed file is generated against the reference gateway of the tests
(``tests/rpc/gateway_clients/conftest.py``: the Ge service and one Ge database named ``main``);
``test_python_client.py::test_methods_reference_is_up_to_date`` regenerates it and fails when
the committed copy differs. ``--check`` does the same from the command line (exit code 1).

The output depends only on the discovery document: methods sorted by group (``rpc``, ``pool``,
``apool``, ``db``, ``events``, ``admin``) then name, schemas rendered as short type texts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from rpc.gateway_client import BlockingGatewayClient  # noqa: E402

__all__ = ("GROUPS", "main", "render", "schema_text")

#: Method groups in document order: (prefix, title, introduction).
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("rpc.", "Discovery", "Introspection and liveness."),
    ("pool.", "Function pools", "Stateless pool functions: params are the function's parameters."),
    (
        "apool.",
        "Attachment function pools",
        "Over HTTP the gateway runs the function on a mutable state of `base` and commits it "
        "with `label`; over WebSocket, `lend: true` lends the caller's own state "
        "(see docs/jsonrpc-gateway.md §4).",
    ),
    ("db.", "Databases", "Commits, documents and blobs of the served databases."),
    ("events.", "Service events", "WebSocket only."),
    ("admin.", "Administration", "Needs an `admin` token when tokens are configured."),
    (
        "auth",
        "Authentication",
        "WebSocket only: present the bearer token in a first message instead of the upgrade "
        "request's `Authorization` header.",
    ),
)

_INTS: dict[tuple[int, int], str] = {
    (-(2**7), 2**7 - 1): "int8",
    (-(2**15), 2**15 - 1): "int16",
    (-(2**31), 2**31 - 1): "int32",
    (-(2**63), 2**63 - 1): "int64",
    (0, 2**8 - 1): "uint8",
    (0, 2**16 - 1): "uint16",
    (0, 2**32 - 1): "uint32",
    (0, 2**64 - 1): "uint64",
}


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces as dashes."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def schema_text(schema: Any) -> str:
    """A short, readable text for a JSON schema of the gateway's discovery document.

    Args:
        schema: A JSON schema (as ``rpc/gateway/openrpc.py`` builds them).

    Returns:
        ``int64``, ``string[]``, ``set<uuid>``, ``{string: string}``, ``Graph.Position``,
        ``key<Graph::Graph>``, ``X | null`` ...; compact JSON for anything else.
    """
    if not isinstance(schema, Mapping):
        return f"`{json.dumps(schema, sort_keys=True)}`"
    if not schema:
        return "any JSON"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return schema_text(schema["allOf"][0])
    for combo in ("oneOf", "anyOf"):
        alts = schema.get(combo)
        if isinstance(alts, list):
            if _is_number(alts):
                return "number"
            texts = [schema_text(a) for a in alts]
            if "null" in texts:  # an optional: the value first
                texts = [t for t in texts if t != "null"] + ["null"]
            return " \\| ".join(texts)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " \\| ".join(str(k) for k in kind)
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int) and isinstance(high, int):
            return _INTS.get((low, high), f"integer [{low}, {high}]")
        return "integer"
    if kind == "string":
        if "enum" in schema and "title" not in schema:
            return " \\| ".join(json.dumps(e) for e in schema["enum"])
        if schema.get("format") == "uuid":
            return "uuid"
        if schema.get("contentEncoding") == "base64":
            return "base64"
        if schema.get("pattern") == "^[0-9a-f]{64}$":
            return "hex64"
        if "const" in schema:
            return json.dumps(schema["const"])
        return "string"
    if kind == "array":
        return _array_text(schema)
    if kind == "object":
        return _object_text(schema)
    if kind in ("boolean", "null", "number"):
        return str(kind)
    if "const" in schema:
        return json.dumps(schema["const"])
    return f"`{json.dumps(schema, sort_keys=True)}`"


def _is_number(alts: Sequence[Any]) -> bool:
    kinds = [a.get("type") for a in alts if isinstance(a, Mapping)]
    return sorted(map(str, kinds)) == ["number", "string"] and any(
        isinstance(a, Mapping) and a.get("enum") == ["NaN", "Infinity", "-Infinity"] for a in alts
    )


def _array_text(schema: Mapping[str, Any]) -> str:
    items = schema.get("items")
    if isinstance(items, list):
        return "[" + ", ".join(schema_text(i) for i in items) + "]"
    inner = schema_text(items) if items is not None else "any JSON"
    n = schema.get("minItems")
    if n is not None and n == schema.get("maxItems"):
        return f"{inner}[{n}]"
    if schema.get("uniqueItems"):
        return f"set<{inner}>"
    return f"({inner})[]" if " " in inner else f"{inner}[]"


def _object_text(schema: Mapping[str, Any]) -> str:
    props = schema.get("properties")
    desc = schema.get("description")
    if isinstance(props, Mapping) and set(props) == {"concept", "id"}:
        target = str(desc).removeprefix("a key of ") if isinstance(desc, str) else "concept"
        return f"key<{target}>"
    if isinstance(props, Mapping) and props:
        required = set(schema.get("required", ()))
        fields = [
            f"{name}{'' if name in required else '?'}: {schema_text(s)}"
            for name, s in props.items()
        ]
        return "{" + ", ".join(fields) + "}"
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return f"{{string: {schema_text(extra)}}}"
    return "object"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") if text else ""


def _method(m: Mapping[str, Any]) -> list[str]:
    name = str(m["name"])
    out = [f"### `{name}`", ""]
    summary = str(m.get("summary") or "").strip()
    description = str(m.get("description") or "").strip()
    if summary and summary != name:
        out += [summary, ""]
    if description and description != summary:
        out += [description, ""]
    transports = ", ".join(m.get("x-transports", ())) or "http, ws"
    out += [f"Permission: `{m.get('x-permission', 'read')}` · transports: {transports}", ""]
    params = m.get("params") or []
    if params:
        out += ["| param | type | required | description |", "|---|---|---|---|"]
        for p in params:
            out.append(
                f"| `{p['name']}` | {schema_text(p.get('schema'))} | "
                f"{'yes' if p.get('required') else 'no'} | {_cell(str(p.get('description', '')))} |"
            )
        out.append("")
    else:
        out += ["No params.", ""]
    result = m.get("result") or {}
    out += [f"Result `{result.get('name', 'result')}`: {schema_text(result.get('schema'))}", ""]
    extras = {
        k: v
        for k, v in m.items()
        if k.startswith("x-") and k not in ("x-permission", "x-transports")
    }
    for key, value in sorted(extras.items()):
        out += [f"{key}: `{json.dumps(value, sort_keys=True)}`", ""]
    return out


def _component(name: str, schema: Mapping[str, Any]) -> list[str]:
    out = [f"### {name}", ""]
    title = schema.get("title")
    if title:
        out += [f"DSM type `{title}`.", ""]
    if schema.get("description"):
        out += [_cell(str(schema["description"])), ""]
    if "enum" in schema:
        out += ["Cases: " + ", ".join(f"`{c}`" for c in schema["enum"]), ""]
    props = schema.get("properties")
    if isinstance(props, Mapping):
        out += ["| field | type | description |", "|---|---|---|"]
        for field, s in props.items():
            desc = s.get("description", "") if isinstance(s, Mapping) else ""
            out.append(f"| `{field}` | {schema_text(s)} | {_cell(str(desc))} |")
        out.append("")
    return out


def render(doc: Mapping[str, Any]) -> str:
    """The Markdown method reference of a discovery document.

    Args:
        doc: The OpenRPC document ``rpc.discover`` returned.

    Returns:
        The Markdown text (ends with a newline).
    """
    info = doc.get("info", {})
    methods = sorted(doc.get("methods", []), key=lambda m: str(m["name"]))
    lines = [
        "# Gateway method reference",
        "",
        "<!-- GENERATED by scripts/gen_gateway_methods.py from rpc.discover: do not edit. -->",
        "",
        f"Generated from the `rpc.discover` document (OpenRPC {doc.get('openrpc', '?')}) of "
        f"{info.get('title', 'the gateway')} serving the Ge example service "
        "(`rpc/examples/ge`) and one database named `main`. Regenerate with "
        "`.venv/bin/python scripts/gen_gateway_methods.py URL -o docs/gateway-methods.md`. "
        "Protocol, JSON value forms and error codes: [jsonrpc-gateway.md](jsonrpc-gateway.md).",
        "",
        "Types: `int64` etc. are JSON integers in that range; `number` also accepts "
        '`"NaN"`, `"Infinity"`, `"-Infinity"`; `hex64` is a 64-digit hex id; `key<C>` is '
        '`{"concept": "NS::Concept", "id": "uuid"}`; `X | null` is optional.',
        "",
    ]
    grouped: list[tuple[str, str, list[Mapping[str, Any]]]] = []
    rest = list(methods)
    for prefix, title, intro in GROUPS:
        members = [m for m in rest if str(m["name"]).startswith(prefix)]
        rest = [m for m in rest if m not in members]
        if members:
            grouped.append((title, intro, members))
    if rest:
        grouped.append(("Other methods", "", rest))
    lines += ["## Contents", ""]
    for title, _, members in grouped:
        names = ", ".join(f"[`{m['name']}`](#{_anchor(str(m['name']))})" for m in members)
        lines.append(f"* **{title}** ({len(members)}): {names}")
    lines.append("")
    for title, intro, members in grouped:
        lines += [f"## {title}", ""]
        if intro:
            lines += [intro, ""]
        for m in members:
            lines += _method(m)
    components = doc.get("components", {}).get("schemas", {})
    if components:
        lines += ["## Types", ""]
        for name in sorted(components):
            lines += _component(name, components[name])
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the gateway's base URL (http://host:port)")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "gateway-methods.md")
    parser.add_argument("--token", help="a bearer token")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    with BlockingGatewayClient(args.url, token=args.token) as gw:
        text = render(gw.call("rpc.discover"))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; regenerate it", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date", file=sys.stderr)
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text.splitlines())} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
