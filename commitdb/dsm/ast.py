"""The plain syntax tree produced by the DSM parser.

Every node is a frozen dataclass carrying a :class:`SourcePos`. The tree keeps everything the
source says (names, namespace uuids, doc strings, type expressions, default literals) so that a
later pass can turn it into typed definitions and report semantic errors at the right place.

Positions:

* named declarations (concept, club, enum, enum case, struct, field, attachment, function,
  parameter, pool, namespace) are located at their *name*;
* a membership is located at its ``membership`` keyword;
* type references, name references and literals are located at their first character (the
  ``.`` of ``.case``, the ``{`` of a brace list, the sign of a negative number).

Doc strings are stored verbatim: the text between the opening and the closing triple quotes,
with no stripping or escape processing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias
from uuid import UUID

__all__ = (
    "AttachmentDecl",
    "BoolLit",
    "ClubDecl",
    "ConceptDecl",
    "DSMFile",
    "Decl",
    "EnumCaseDecl",
    "EnumCaseLit",
    "EnumDecl",
    "FieldDecl",
    "FloatLit",
    "FunctionDecl",
    "IntLit",
    "ListLit",
    "LiteralExpr",
    "MembershipDecl",
    "NameRef",
    "NamespaceBlock",
    "ParamDecl",
    "PoolDecl",
    "PoolKind",
    "SourcePos",
    "StringLit",
    "StructDecl",
    "TypeRef",
)

PoolKind: TypeAlias = Literal["function_pool", "attachment_function_pool"]


@dataclass(frozen=True, slots=True)
class SourcePos:
    """A location in a DSM source text.

    Attributes:
        file: The file name given to the parser (``"<string>"`` for in-memory text).
        line: 1-based line number.
        col: 1-based column number, counted in characters.
    """

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class NameRef:
    """A reference to a declared name, optionally qualified as ``Namespace::Name``.

    Attributes:
        name: The unqualified name.
        namespace: The namespace qualifier, or None when the reference is unqualified.
        pos: Position of the first identifier of the reference.
    """

    name: str
    namespace: str | None
    pos: SourcePos

    @property
    def qualified(self) -> str:
        """The reference as written: ``Name`` or ``Namespace::Name``."""
        return self.name if self.namespace is None else f"{self.namespace}::{self.name}"

    def __str__(self) -> str:
        return self.qualified


@dataclass(frozen=True, slots=True)
class TypeRef:
    """A type expression such as ``int32``, ``NS::Vector``, ``map<K, V>`` or ``vec<float, 3>``.

    Attributes:
        name: The unqualified type name (a primitive, a generic, or a user type name).
        namespace: The namespace qualifier, or None when the name is unqualified.
        args: Type arguments, in source order (empty for a non-generic type).
        int_args: Integer arguments, in source order (the ``N`` of ``vec<T, N>``, the ``C, R``
            of ``mat<T, C, R>``); empty for every other type.
        pos: Position of the first identifier of the type expression.
    """

    name: str
    namespace: str | None
    args: tuple[TypeRef, ...]
    int_args: tuple[int, ...]
    pos: SourcePos

    @property
    def qualified(self) -> str:
        """The type name as written, without arguments: ``Name`` or ``Namespace::Name``."""
        return self.name if self.namespace is None else f"{self.namespace}::{self.name}"

    def __str__(self) -> str:
        parts = [str(arg) for arg in self.args] + [str(n) for n in self.int_args]
        if not parts:
            return self.qualified
        return f"{self.qualified}<{', '.join(parts)}>"


@dataclass(frozen=True, slots=True)
class IntLit:
    """An integer literal (decimal or ``0x`` hexadecimal, optionally negative).

    Attributes:
        value: The integer value.
        text: The literal exactly as written.
        pos: Position of the literal.
    """

    value: int
    text: str
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class FloatLit:
    """A floating-point literal such as ``1.0``, ``-2.5e3`` or ``.5``.

    Attributes:
        value: The value as a Python float.
        text: The literal exactly as written (keeps the full decimal precision).
        pos: Position of the literal.
    """

    value: float
    text: str
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class BoolLit:
    """A ``true`` or ``false`` literal.

    Attributes:
        value: The boolean value.
        pos: Position of the literal.
    """

    value: bool
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class StringLit:
    """A double-quoted string literal.

    Attributes:
        value: The string value with escape sequences decoded.
        pos: Position of the opening quote.
    """

    value: str
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class EnumCaseLit:
    """An enum case literal: ``.case``, ``Enum.case`` or ``NS::Enum.case``.

    Attributes:
        name: The case name.
        enum: The enum named before the dot, or None for the ``.case`` form.
        pos: Position of the literal's first character.
    """

    name: str
    enum: NameRef | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class ListLit:
    """A brace list such as ``{1.0, 0.0, 0.0}``; items may themselves be brace lists.

    Attributes:
        items: The items, in source order.
        pos: Position of the opening brace.
    """

    items: tuple[LiteralExpr, ...]
    pos: SourcePos


LiteralExpr: TypeAlias = IntLit | FloatLit | BoolLit | StringLit | EnumCaseLit | ListLit


@dataclass(frozen=True, slots=True)
class ConceptDecl:
    """``concept Name;`` or ``concept Name is a Parent;``.

    Attributes:
        name: The concept name.
        parent: The parent concept, or None.
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    name: str
    parent: NameRef | None
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class ClubDecl:
    """``club Name;``.

    Attributes:
        name: The club name.
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    name: str
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class MembershipDecl:
    """``membership Club Concept;``.

    Attributes:
        club: The club.
        concept: The concept made a member of the club.
        doc: The attached doc string, or None.
        pos: Position of the ``membership`` keyword.
    """

    club: NameRef
    concept: NameRef
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class EnumCaseDecl:
    """One case of an enum.

    Attributes:
        name: The case name.
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    name: str
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class EnumDecl:
    """``enum Name { a, b, c };``.

    Attributes:
        name: The enum name.
        cases: The cases, in source order (at least one).
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    name: str
    cases: tuple[EnumCaseDecl, ...]
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class FieldDecl:
    """A struct field: ``Type name;`` or ``Type name = default;``.

    Attributes:
        type: The field type.
        name: The field name.
        default: The default literal, or None.
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    type: TypeRef
    name: str
    default: LiteralExpr | None
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class StructDecl:
    """``struct Name { fields };``.

    Attributes:
        name: The struct name.
        fields: The fields, in source order (possibly empty).
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    name: str
    fields: tuple[FieldDecl, ...]
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class AttachmentDecl:
    """``attachment<KeyType, DocType> name;``.

    Attributes:
        key_type: The key type (a concept or club reference).
        doc_type: The document type.
        name: The attachment name.
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    key_type: TypeRef
    doc_type: TypeRef
    name: str
    doc: str | None
    pos: SourcePos


Decl: TypeAlias = ConceptDecl | ClubDecl | MembershipDecl | EnumDecl | StructDecl | AttachmentDecl


@dataclass(frozen=True, slots=True)
class NamespaceBlock:
    """One ``namespace Name {uuid} { ... };`` block (a namespace may span several blocks).

    Attributes:
        name: The namespace name.
        uuid: The namespace uuid.
        decls: The declarations, in source order.
        pos: Position of the name.
        doc: The doc string placed before the block, or None.
    """

    name: str
    uuid: UUID
    decls: tuple[Decl, ...]
    pos: SourcePos
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """A function parameter: ``Type name``.

    Attributes:
        type: The parameter type.
        name: The parameter name.
        pos: Position of the name.
    """

    type: TypeRef
    name: str
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class FunctionDecl:
    """A pool function: ``[mutable] ReturnType name(Type p, ...);``.

    Attributes:
        return_type: The return type (``void`` for none).
        name: The function name.
        params: The parameters, in source order.
        mutable: True when declared ``mutable`` (attachment function pools only).
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    return_type: TypeRef
    name: str
    params: tuple[ParamDecl, ...]
    mutable: bool
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class PoolDecl:
    """A ``function_pool`` or ``attachment_function_pool`` block.

    Attributes:
        kind: ``"function_pool"`` or ``"attachment_function_pool"``.
        name: The pool name.
        uuid: The pool uuid.
        functions: The functions, in source order.
        doc: The attached doc string, or None.
        pos: Position of the name.
    """

    kind: PoolKind
    name: str
    uuid: UUID
    functions: tuple[FunctionDecl, ...]
    doc: str | None
    pos: SourcePos


@dataclass(frozen=True, slots=True)
class DSMFile:
    """The parse result of one DSM source.

    Attributes:
        path: The file name given to the parser.
        namespaces: The namespace blocks, in source order.
        pools: The function pools, in source order.
    """

    path: str
    namespaces: tuple[NamespaceBlock, ...]
    pools: tuple[PoolDecl, ...]
