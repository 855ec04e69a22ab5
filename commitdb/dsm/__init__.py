"""The DSM schema language: lexer, syntax tree and parser.

``parse`` / ``parse_file`` turn DSM text into a :class:`DSMFile` syntax tree;
``load_definitions`` / ``load_text`` turn DSM sources into typed
:class:`~commitdb.definitions.Definitions`; ``to_dsm`` prints definitions back as normalized
DSM text.
"""

from __future__ import annotations

from commitdb.dsm.ast import (
    AttachmentDecl,
    BoolLit,
    ClubDecl,
    ConceptDecl,
    Decl,
    DSMFile,
    EnumCaseDecl,
    EnumCaseLit,
    EnumDecl,
    FieldDecl,
    FloatLit,
    FunctionDecl,
    IntLit,
    ListLit,
    LiteralExpr,
    MembershipDecl,
    NameRef,
    NamespaceBlock,
    ParamDecl,
    PoolDecl,
    PoolKind,
    SourcePos,
    StringLit,
    StructDecl,
    TypeRef,
)
from commitdb.dsm.loader import DSMText, Source, load_definitions, load_text, normalize_doc
from commitdb.dsm.parser import GENERIC_TYPES, parse, parse_file
from commitdb.dsm.printer import format_type, to_dsm

__all__ = (
    "GENERIC_TYPES",
    "AttachmentDecl",
    "BoolLit",
    "ClubDecl",
    "ConceptDecl",
    "DSMFile",
    "DSMText",
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
    "Source",
    "SourcePos",
    "StringLit",
    "StructDecl",
    "TypeRef",
    "format_type",
    "load_definitions",
    "load_text",
    "normalize_doc",
    "parse",
    "parse_file",
    "to_dsm",
)
