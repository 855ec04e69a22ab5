"""The DSM schema language: lexer, syntax tree and parser.

``parse`` / ``parse_file`` turn DSM text into a :class:`DSMFile` syntax tree; turning that
tree into typed definitions is a separate step.
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
from commitdb.dsm.parser import GENERIC_TYPES, parse, parse_file

__all__ = (
    "GENERIC_TYPES",
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
    "parse",
    "parse_file",
)
