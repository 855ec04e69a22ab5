"""Print :class:`~commitdb.definitions.Definitions` as normalized DSM text.

The output is canonical, so printing what it loads back gives the same text:

* one block per namespace, in registration order: concepts (parents first, then by name),
  clubs by name each followed by its memberships, enums by name, structs (the structures a
  struct contains first, then by name), then the namespace's attachments in registration
  order;
* then the function pools in registration order, functions in declaration order;
* documentation as ``\"\"\"...\"\"\"`` above what it documents (normalized, multi-line docs
  on their own lines);
* a name is written bare when it resolves back to the same type from where it is written
  (declared in the current namespace, or unique across namespaces), else ``NS::Name``;
* field defaults as literals that load back to the same value: ``.case`` for enum cases,
  brace lists for containers and structures (a structure's trailing fields that cannot be
  written and keep their defaults are left out), the shortest decimal that gives the same
  binary32 value for ``float``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

from commitdb.codec import encode
from commitdb.definitions import Definitions
from commitdb.dsm.loader import normalize_doc
from commitdb.errors import DefinitionError, ValidationError
from commitdb.prototypes import PoolDeclaration
from commitdb.types import (
    BOOL,
    DOUBLE,
    FLOAT,
    INT64,
    STRING,
    AnyConceptType,
    AnyType,
    Attachment,
    BlobIdType,
    BlobType,
    BoolType,
    ClubType,
    CommitIdType,
    ConceptType,
    DoubleType,
    EnumerationType,
    FloatType,
    IntType,
    KeyType,
    MapType,
    MatType,
    NamedType,
    Namespace,
    OptionalType,
    SetType,
    StringType,
    StructureType,
    TupleType,
    Type,
    UUIDType,
    VariantType,
    VectorType,
    VecType,
    XArrayType,
)
from commitdb.values import EnumCase, Typed, XArray

__all__ = ("format_type", "to_dsm")

_N = TypeVar("_N", bound=NamedType)
_INDENT = "    "
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def to_dsm(definitions: Definitions) -> str:
    """Print definitions as normalized DSM text.

    Args:
        definitions: The definitions to print.

    Returns:
        DSM text that :func:`~commitdb.dsm.load_text` loads back to equal definitions (same
        runtime ids and documentation).

    Raises:
        DefinitionError: A default value or a doc string has no DSM spelling (only possible
            for definitions built in Python: a nil optional or a key inside a structure
            default, a variant value tagged with a non-natural alternative, ``\"\"\"`` in a
            doc string).
    """
    return _Printer(definitions).render()


def format_type(t: Type, namespace: Namespace | None = None) -> str:
    """Spell a type in DSM, with named types written ``NS::Name`` unless in ``namespace``.

    Args:
        t: The type.
        namespace: The namespace the spelling is written in (None: always qualify).

    Returns:
        The DSM spelling, e.g. ``map<string, vector<Graph::Vertex>>``.
    """

    def ref(named: NamedType) -> str:
        return named.name if named.namespace == namespace else named.qualified_name

    return _spell(t, ref)


def _spell(t: Type, ref: Callable[[NamedType], str]) -> str:
    if isinstance(t, NamedType):
        return ref(t)
    if isinstance(t, AnyConceptType):
        return "any_concept"
    if isinstance(t, VecType):
        return f"vec<{_spell(t.element, ref)}, {t.size}>"
    if isinstance(t, MatType):
        return f"mat<{_spell(t.element, ref)}, {t.columns}, {t.rows}>"
    if isinstance(t, KeyType):
        return f"key<{_spell(t.target, ref)}>"
    if isinstance(
        t, VectorType | SetType | MapType | OptionalType | XArrayType | TupleType | VariantType
    ):
        inner = ", ".join(_spell(c, ref) for c in t.children())
        return f"{t.kind}<{inner}>"
    return str(t)


# ------------------------------------------------------------------------------------------
# Literals


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _floatish(text: str) -> str:
    """Make sure a number is lexed as a floating-point literal."""
    return text if any(c in text for c in ".eE") else text + ".0"


def _float32(value: float) -> str | None:
    """The shortest decimal that gives back the same binary32 value."""
    if not math.isfinite(value):
        return None
    for digits in range(1, 18):
        text = f"{value:.{digits}g}"
        try:
            if FLOAT.check(float(text)) == value:
                # repr of the nearest double keeps those digits, positional where Python is
                return _floatish(repr(float(text)))
        except ValidationError:
            continue
    return _floatish(repr(value))


def _double(value: float) -> str | None:
    return _floatish(repr(value)) if math.isfinite(value) else None


def _braces(parts: Iterable[str | None]) -> str | None:
    items = list(parts)
    if any(p is None for p in items):
        return None
    return "{" + ", ".join(p for p in items if p is not None) + "}"


class _Printer:
    """Printing state: the definitions and the name index used to qualify references."""

    def __init__(self, definitions: Definitions) -> None:
        self.defs = definitions
        self.spaces_of: dict[str, set[Namespace]] = {}
        for t in definitions.types():
            self.spaces_of.setdefault(t.name, set()).add(t.namespace)

    # -- names and types -------------------------------------------------------------------

    def ref(self, t: NamedType, ns: Namespace | None) -> str:
        if t.namespace == ns or len(self.spaces_of.get(t.name, ())) <= 1:
            return t.name
        return t.qualified_name

    def type(self, t: Type, ns: Namespace | None) -> str:
        return _spell(t, lambda named: self.ref(named, ns))

    # -- values ----------------------------------------------------------------------------

    def literal(self, value: Any, t: Type, ns: Namespace, qualify: bool = False) -> str | None:
        """The literal spelling of ``value`` of type ``t``, or None when it has none.

        ``qualify`` writes enum cases as ``Enum.case`` (inside a variant or ``any``, where
        ``.case`` could match another enum).
        """
        if isinstance(t, OptionalType):
            return None if value is None else self.literal(value, t.element, ns, qualify)
        if isinstance(t, BoolType):
            return "true" if value else "false"
        if isinstance(t, IntType):
            return str(int(value))
        if isinstance(t, FloatType):
            return _float32(value)
        if isinstance(t, DoubleType):
            return _double(value)
        if isinstance(t, StringType):
            return _string(value)
        if isinstance(t, UUIDType):
            return _string(str(value))
        if isinstance(t, BlobIdType | CommitIdType):
            return _string(value.hex())
        if isinstance(t, BlobType):
            return "{" + ", ".join(str(b) for b in value) + "}"
        if isinstance(t, EnumerationType):
            return f"{self.ref(t, ns)}.{value.name}" if qualify else f".{value.name}"
        if isinstance(t, VectorType):
            return _braces(self.literal(v, t.element, ns, qualify) for v in value)
        if isinstance(t, SetType):
            ordered = sorted(value, key=lambda v: encode(v, t.element))
            return _braces(self.literal(v, t.element, ns, qualify) for v in ordered)
        if isinstance(t, MapType):
            return self._map(value, t, ns, qualify)
        if isinstance(t, XArrayType):
            empty = not value.live_positions() and not value.tombstones()
            return "{}" if isinstance(value, XArray) and empty else None
        if isinstance(t, TupleType):
            return _braces(
                self.literal(v, e, ns, qualify) for v, e in zip(value, t.elements, strict=True)
            )
        if isinstance(t, VecType | MatType):
            return _braces(self.literal(v, t.element, ns, qualify) for v in value)
        if isinstance(t, StructureType):
            return self._struct(value, t, ns, qualify)
        if isinstance(t, VariantType):
            return self._variant(value, t, ns)
        if isinstance(t, AnyType):
            return self._any(value, ns)
        return None

    def _map(self, value: Any, t: MapType, ns: Namespace, qualify: bool) -> str | None:
        entries: list[str | None] = []
        for k in sorted(value, key=lambda k: encode(k, t.key)):
            key = self.literal(k, t.key, ns, qualify)
            item = self.literal(value[k], t.value, ns, qualify)
            entries.append(None if key is None or item is None else f"{{{key}, {item}}}")
        return _braces(entries)

    def _struct(self, value: Any, t: StructureType, ns: Namespace, qualify: bool) -> str | None:
        parts = [self.literal(getattr(value, f.name), f.type, ns, qualify) for f in t.fields]
        # Trailing fields that have no spelling may be left out when they keep their default.
        count = len(parts)
        while count and parts[count - 1] is None:
            f = t.fields[count - 1]
            if getattr(value, f.name) != f.default_value():
                break
            count -= 1
        return _braces(parts[:count])

    def _variant(self, value: Any, t: VariantType, ns: Namespace) -> str | None:
        if isinstance(value, Typed):
            return self.literal(value.value, value.type, ns, qualify=True)
        index = t.natural_index(value)
        if index is None:
            return None
        return self.literal(value, t.alternatives[index], ns, qualify=True)

    def _any(self, value: Any, ns: Namespace) -> str | None:
        if value is True or value is False:
            return self.literal(value, BOOL, ns)
        if isinstance(value, int):
            return self.literal(value, INT64, ns)
        if isinstance(value, float):
            return self.literal(value, DOUBLE, ns)
        if isinstance(value, str):
            return self.literal(value, STRING, ns)
        if isinstance(value, EnumCase):
            return self.literal(value, value.enumeration, ns, qualify=True)
        return None

    # -- documentation ---------------------------------------------------------------------

    @staticmethod
    def doc(text: str | None, indent: str, what: str) -> list[str]:
        text = normalize_doc(text)
        if text is None:
            return []
        if '"""' in text:
            raise DefinitionError(f'the documentation of {what} contains \'"""\'')
        lines = text.split("\n")
        if len(lines) == 1:
            pad = " " if text.endswith('"') else ""
            return [f'{indent}"""{text}{pad}"""']
        body = [f"{indent}{line}" if line else "" for line in lines]
        return [f'{indent}"""', *body, f'{indent}"""']

    # -- declarations ----------------------------------------------------------------------

    def render(self) -> str:
        blocks = [self.namespace(ns) for ns in self.defs.namespaces()]
        blocks += [self.pool(p) for p in self.defs.pools()]
        return "\n\n".join(blocks) + "\n" if blocks else ""

    def namespace(self, ns: Namespace) -> str:
        types = [t for t in self.defs.types() if t.namespace == ns]
        items: list[list[str]] = []
        concepts = [t for t in types if isinstance(t, ConceptType)]
        for c in _ordered(concepts, lambda c: [c.parent] if c.parent else []):
            parent = "" if c.parent is None else f" is a {self.ref(c.parent, ns)}"
            items.append([*self.doc(c.documentation, "", c.name), f"concept {c.name}{parent};"])
        for club in sorted((t for t in types if isinstance(t, ClubType)), key=_by_name):
            members = sorted(self.ref(m, ns) for m in club.members)
            lines = [*self.doc(club.documentation, "", club.name), f"club {club.name};"]
            items.append(lines + [f"membership {club.name} {m};" for m in members])
        for enum in sorted((t for t in types if isinstance(t, EnumerationType)), key=_by_name):
            items.append(self.enum(enum))
        structs = [t for t in types if isinstance(t, StructureType)]
        for s in _ordered(structs, _contained):
            items.append(self.struct(s, ns))
        for att in self.defs.attachments():
            if att.namespace == ns:
                items.append(self.attachment(att, ns))
        head = f"namespace {ns.name} {{{ns.uuid}}} {{"
        if not items:
            return f"{head}\n}};"
        return head + "\n\n" + "\n\n".join("\n".join(i) for i in items) + "\n\n};"

    def enum(self, t: EnumerationType) -> list[str]:
        lines = [*self.doc(t.documentation, "", t.name), f"enum {t.name} {{"]
        for i, case in enumerate(t.cases):
            where = f"{t.name}.{case.name}"
            lines += self.doc(t.case_documentation.get(case.name), _INDENT, where)
            lines.append(f"{_INDENT}{case.name}{',' if i < len(t.cases) - 1 else ''}")
        return [*lines, "};"]

    def struct(self, t: StructureType, ns: Namespace) -> list[str]:
        lines = [*self.doc(t.documentation, "", t.name), f"struct {t.name} {{"]
        for f in t.fields:
            lines += self.doc(f.documentation, _INDENT, f"{t.name}.{f.name}")
            default = ""
            if f.default is not None:
                text = self.literal(f.default, f.type, ns)
                if text is None:
                    raise DefinitionError(
                        f"the default of field {t.qualified_name}.{f.name} ({f.default!r}) "
                        "has no DSM spelling"
                    )
                default = f" = {text}"
            lines.append(f"{_INDENT}{self.type(f.type, ns)} {f.name}{default};")
        return [*lines, "};"]

    def attachment(self, att: Attachment, ns: Namespace) -> list[str]:
        key = self.type(att.key_type.target, ns)
        doc = self.type(att.document_type, ns)
        return [
            *self.doc(att.documentation, "", att.identifier),
            f"attachment<{key}, {doc}> {att.name};",
        ]

    def pool(self, pool: PoolDeclaration) -> str:
        lines = [*self.doc(pool.documentation, "", pool.name)]
        lines.append(f"{pool.kind} {pool.name} {{{pool.uuid}}} {{")
        for fn in pool.functions.values():
            params = ", ".join(f"{self.type(p.type, None)} {p.name}" for p in fn.parameters)
            mutable = "mutable " if fn.mutable else ""
            lines.append("")
            lines += self.doc(fn.documentation, "", f"{pool.name}.{fn.name}")
            lines.append(f"{mutable}{self.type(fn.return_type, None)} {fn.name}({params});")
        return "\n".join(lines) + ("\n\n};" if pool.functions else "\n};")


def _by_name(t: NamedType) -> str:
    return t.name


def _contained(t: StructureType) -> list[NamedType]:
    """The structures whose values a structure contains (directly or in containers)."""
    out: list[NamedType] = []
    todo: list[Type] = [f.type for f in t.fields]
    while todo:
        c = todo.pop()
        if isinstance(c, StructureType):
            out.append(c)
        elif not isinstance(c, NamedType | KeyType):
            todo.extend(c.children())
    return out


def _ordered(types: list[_N], deps: Callable[[_N], list[NamedType]]) -> list[_N]:
    """Order by name, each type after the types of the same list it depends on."""
    members = {t.runtime_id: t for t in types}
    done: set[UUID] = set()
    out: list[_N] = []

    def visit(t: _N) -> None:
        if t.runtime_id in done:
            return
        done.add(t.runtime_id)
        for d in sorted(deps(t), key=_by_name):
            dep = members.get(d.runtime_id)
            if dep is not None:
                visit(dep)
        out.append(t)

    for t in sorted(types, key=_by_name):
        visit(t)
    return out
