"""A hand-written recursive-descent parser for the DSM schema language.

Grammar (keywords are contextual identifiers; ``//`` and ``/* */`` comments are ignored; a
doc string, written between triple double quotes, may precede each declaration marked
``[doc]``)::

    file        := top*
    top         := [doc] namespace | [doc] pool
    namespace   := 'namespace' IDENT UUID '{' decl* '}' [';']
    decl        := [doc] ( concept | club | membership | enum | struct | attachment )
    concept     := 'concept' IDENT ['is' 'a' name] ';'
    club        := 'club' IDENT ';'
    membership  := 'membership' name name ';'
    enum        := 'enum' IDENT '{' [doc] IDENT (',' [doc] IDENT)* [','] '}' ';'
    struct      := 'struct' IDENT '{' ([doc] type IDENT ['=' literal] ';')* '}' ';'
    attachment  := 'attachment' '<' type ',' type '>' IDENT ';'
    pool        := ('function_pool' | 'attachment_function_pool') IDENT UUID
                   '{' ([doc] ['mutable'] type IDENT '(' [param (',' param)*] ')' ';')* '}' [';']
    param       := type IDENT
    name        := IDENT ['::' IDENT]
    type        := name ['<' targ (',' targ)* '>']
    targ        := type | INT
    literal     := INT | FLOAT | STRING | 'true' | 'false' | '.' IDENT | name '.' IDENT
                 | '{' [literal (',' literal)* [',']] '}'
    UUID        := '{' 8-4-4-4-12 hexadecimal digits '}'   (blanks allowed inside the braces)

``mutable`` is only accepted in an ``attachment_function_pool``. Generic types are checked for
arity here (``vector set optional xarray key``: 1 type; ``map``: 2 types; ``vec``: type and
dimension; ``mat``: type, columns and rows; ``tuple variant``: one or more types); every other
type takes no arguments. Name resolution and all other semantic checks are left to the
definitions builder.

Every error is a :class:`~commitdb.errors.DSMError` located at the offending token.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from uuid import UUID as _UUID

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
from commitdb.dsm.lexer import (
    BADIDENT,
    BADNUM,
    DOC,
    EOF,
    ERROR,
    FLOAT,
    IDENT,
    INT,
    STRING,
    UUID,
    Token,
    describe,
    normalize,
    tokenize,
)
from commitdb.errors import DSMError

__all__ = ("GENERIC_TYPES", "parse", "parse_file")

#: Generic type name -> (signature, argument kinds); kinds is None for variadic type lists.
GENERIC_TYPES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "vector": ("vector<T>", ("type",)),
    "set": ("set<T>", ("type",)),
    "optional": ("optional<T>", ("type",)),
    "xarray": ("xarray<T>", ("type",)),
    "key": ("key<T>", ("type",)),
    "map": ("map<K, V>", ("type", "type")),
    "vec": ("vec<T, N>", ("type", "int")),
    "mat": ("mat<T, C, R>", ("type", "int", "int")),
    "tuple": ("tuple<T, ...>", None),
    "variant": ("variant<T, ...>", None),
}

_POOL_KINDS = ("function_pool", "attachment_function_pool")
_DECL_KEYWORDS = ("concept", "club", "membership", "enum", "struct", "attachment")
_DECL_LIST = "'concept', 'club', 'membership', 'enum', 'struct' or 'attachment'"
_TOP_LIST = "'namespace', 'function_pool' or 'attachment_function_pool'"
_UUID_EXAMPLE = "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}"


def _int_value(text: str) -> int:
    """Convert the text of an ``int`` token (decimal or hexadecimal, maybe negative)."""
    if "x" in text or "X" in text:
        return int(text, 16)
    return int(text)


class _Parser:
    """Parser state: the token list, the cursor and the file name for positions."""

    __slots__ = ("_decls", "_file", "_i", "_text", "_toks")

    def __init__(self, text: str, file: str) -> None:
        self._text = normalize(text)
        self._toks = tokenize(self._text)
        self._i = 0
        self._file = file
        self._decls: dict[str, Callable[[str | None], Decl]] = {
            "concept": self._concept,
            "club": self._club,
            "membership": self._membership,
            "enum": self._enum,
            "struct": self._struct,
            "attachment": self._attachment,
        }

    # -- token helpers ---------------------------------------------------------------------

    def _pos(self, tok: Token) -> SourcePos:
        return SourcePos(self._file, tok.line, tok.col)

    def _error(self, message: str, tok: Token) -> DSMError:
        return DSMError(message, self._file, tok.line, tok.col)

    def _peek(self) -> Token:
        tok = self._toks[self._i]
        if tok.kind == ERROR:
            raise self._error(tok.value, tok)
        return tok

    def _unexpected(self, expected: str, tok: Token, *, ident: bool = False) -> DSMError:
        """Build the error for ``tok`` found where ``expected`` was expected."""
        if tok.kind == BADIDENT:
            return self._error(
                f"invalid identifier '{tok.text}': identifiers may only contain ASCII letters, "
                "digits and '_'",
                tok,
            )
        if tok.kind == BADNUM:
            if ident and any(c.isalpha() or c == "_" for c in tok.text):
                return self._error(
                    f"invalid identifier '{tok.text}': identifiers must start with an ASCII "
                    "letter or '_'",
                    tok,
                )
            return self._error(f"bad number literal '{tok.text}'", tok)
        return self._error(f"expected {expected}, found {describe(tok)}", tok)

    def _expect(self, kind: str, expected: str) -> Token:
        tok = self._peek()
        if tok.kind != kind:
            raise self._unexpected(expected, tok)
        self._i += 1
        return tok

    def _ident(self, expected: str) -> Token:
        tok = self._peek()
        if tok.kind != IDENT:
            raise self._unexpected(expected, tok, ident=True)
        self._i += 1
        return tok

    def _name_after_type(self, what: str, tref: TypeRef) -> Token:
        """Consume the identifier naming a field, parameter or function declared as ``tref``."""
        tok = self._peek()
        if tok.kind != IDENT:
            raise self._unexpected(f"{what} after type '{tref}'", tok, ident=True)
        self._i += 1
        return tok

    def _skip_optional(self, kind: str) -> None:
        if self._peek().kind == kind:
            self._i += 1

    def _unclosed(self, what: str, open_tok: Token, eof: Token) -> DSMError:
        return self._error(
            f"unexpected end of file: missing '}}' to close {what} opened at line "
            f"{open_tok.line}, column {open_tok.col}",
            eof,
        )

    def _doc(self) -> str | None:
        """Consume a doc string if present; it must be followed by a declaration."""
        tok = self._peek()
        if tok.kind != DOC:
            return None
        self._i += 1
        nxt = self._peek()
        if nxt.kind == DOC:
            raise self._error("a declaration may have only one doc string", nxt)
        if nxt.kind == "}" or nxt.kind == EOF:
            raise self._error("doc string is not followed by a declaration", tok)
        return tok.value

    def _uuid(self, after: str) -> _UUID:
        """Parse ``{8-4-4-4-12}``; ``after`` describes what precedes it, for messages."""
        tok = self._toks[self._i]
        if tok.kind == UUID:
            self._i += 1
            return _UUID(tok.value)
        if tok.kind == "{":
            # Word the error as a bad uuid when the braces close on the same line around
            # something that is not DSM code.
            text = self._text
            end = text.find("}", tok.offset)
            newline = text.find("\n", tok.offset)
            if end != -1 and (newline == -1 or end < newline):
                body = text[tok.offset + 1 : end].strip()
                if not any(c in body for c in ';{"'):
                    raise self._error(
                        f"bad uuid '{{{body}}}': expected 8-4-4-4-12 hexadecimal digits, "
                        f"like {_UUID_EXAMPLE}",
                        tok,
                    )
        raise self._unexpected(f"a uuid {_UUID_EXAMPLE} after {after}", self._peek())

    def _name_ref(self, expected: str) -> NameRef:
        first = self._ident(expected)
        nxt = self._toks[self._i]
        if nxt.kind == "::":
            self._i += 1
            name = self._ident(f"a name after '{first.text}::'")
            return NameRef(name.text, first.text, self._pos(first))
        if nxt.kind == ":":
            raise self._error("expected '::' in qualified name, found ':'", nxt)
        return NameRef(first.text, None, self._pos(first))

    # -- types -----------------------------------------------------------------------------

    def _type(self, expected: str) -> TypeRef:
        first = self._ident(expected)
        namespace: str | None = None
        name = first.text
        nxt = self._toks[self._i]
        if nxt.kind == "::":
            self._i += 1
            namespace = name
            name = self._ident(f"a type name after '{namespace}::'").text
            nxt = self._toks[self._i]
        elif nxt.kind == ":":
            raise self._error("expected '::' in qualified name, found ':'", nxt)
        spec = GENERIC_TYPES.get(name) if namespace is None else None
        if nxt.kind != "<":
            if spec is not None:
                raise self._error(f"type '{name}' requires type arguments: {spec[0]}", first)
            return TypeRef(name, namespace, (), (), self._pos(first))
        if spec is None:
            qualified = name if namespace is None else f"{namespace}::{name}"
            raise self._error(f"type '{qualified}' does not take type arguments", nxt)
        self._i += 1
        signature, kinds = spec
        if self._peek().kind == ">":
            raise self._error(f"empty type argument list for '{name}': expected {signature}", nxt)
        items: list[tuple[Token, TypeRef | int]] = []
        while True:
            tok = self._peek()
            if tok.kind == INT:
                self._i += 1
                items.append((tok, _int_value(tok.text)))
            elif tok.kind == FLOAT:
                raise self._error(
                    f"type argument of '{name}' must be a type or a positive integer, "
                    f"found number '{tok.text}'",
                    tok,
                )
            else:
                items.append((tok, self._type(f"a type argument for '{name}'")))
            sep = self._peek()
            if sep.kind == ",":
                self._i += 1
                continue
            if sep.kind == ">":
                self._i += 1
                break
            raise self._unexpected(f"',' or '>' in the type arguments of '{name}'", sep)
        if kinds is None:
            for tok, item in items:
                if isinstance(item, int):
                    raise self._error(
                        f"type arguments of '{name}' must be types ({signature}), "
                        f"found integer {tok.text}",
                        tok,
                    )
            types = tuple(item for _, item in items if isinstance(item, TypeRef))
            return TypeRef(name, None, types, (), self._pos(first))
        if len(items) != len(kinds):
            where = items[len(kinds)][0] if len(items) > len(kinds) else sep
            raise self._error(
                f"wrong number of type arguments for '{name}': expected {len(kinds)} "
                f"({signature}), found {len(items)}",
                where,
            )
        args: list[TypeRef] = []
        ints: list[int] = []
        for index, ((tok, item), kind) in enumerate(zip(items, kinds, strict=True), start=1):
            if kind == "type":
                if not isinstance(item, TypeRef):
                    raise self._error(
                        f"argument {index} of '{name}' must be a type ({signature}), "
                        f"found integer {tok.text}",
                        tok,
                    )
                args.append(item)
            elif not isinstance(item, int):
                raise self._error(
                    f"argument {index} of '{name}' must be a positive integer ({signature}), "
                    f"found type '{item}'",
                    tok,
                )
            elif item <= 0:
                raise self._error(
                    f"argument {index} of '{name}' must be a positive integer ({signature}), "
                    f"found {tok.text}",
                    tok,
                )
            else:
                ints.append(item)
        return TypeRef(name, None, tuple(args), tuple(ints), self._pos(first))

    # -- literals --------------------------------------------------------------------------

    def _literal(self) -> LiteralExpr:
        tok = self._peek()
        kind = tok.kind
        if kind == INT:
            self._i += 1
            return IntLit(_int_value(tok.text), tok.text, self._pos(tok))
        if kind == FLOAT:
            value = float(tok.text)
            if math.isinf(value):
                raise self._error(f"bad number literal '{tok.text}': out of range", tok)
            self._i += 1
            return FloatLit(value, tok.text, self._pos(tok))
        if kind == STRING:
            self._i += 1
            return StringLit(tok.value, self._pos(tok))
        if kind == ".":
            self._i += 1
            case = self._ident("an enum case name after '.'")
            return EnumCaseLit(case.text, None, self._pos(tok))
        if kind == "{":
            return self._list()
        if kind == IDENT:
            if tok.text == "true" or tok.text == "false":
                self._i += 1
                return BoolLit(tok.text == "true", self._pos(tok))
            if self._toks[self._i + 1].kind in (".", "::"):
                enum = self._name_ref("an enum name")
                self._expect(".", f"'.' after enum name '{enum.qualified}'")
                case = self._ident("an enum case name after '.'")
                return EnumCaseLit(case.text, enum, self._pos(tok))
            raise self._error(
                f"expected a default value, found identifier '{tok.text}' "
                f"(write '.{tok.text}' for an enum case)",
                tok,
            )
        raise self._unexpected("a default value (number, string, true, false, .case or {...})", tok)

    def _list(self) -> ListLit:
        open_tok = self._toks[self._i]
        self._i += 1
        items: list[LiteralExpr] = []
        while True:
            tok = self._peek()
            if tok.kind == "}":
                break
            if tok.kind == EOF:
                raise self._unclosed("brace list", open_tok, tok)
            items.append(self._literal())
            sep = self._peek()
            if sep.kind == ",":
                self._i += 1
                continue
            if sep.kind == "}":
                break
            if sep.kind == EOF:
                raise self._unclosed("brace list", open_tok, sep)
            raise self._unexpected("',' or '}' in brace list", sep)
        self._i += 1
        return ListLit(tuple(items), self._pos(open_tok))

    # -- namespace declarations ------------------------------------------------------------

    def _concept(self, doc: str | None) -> ConceptDecl:
        self._i += 1
        name = self._ident("a concept name after 'concept'")
        parent: NameRef | None = None
        tok = self._peek()
        if tok.kind == IDENT and tok.text == "is":
            self._i += 1
            article = self._peek()
            if article.kind != IDENT or article.text != "a":
                raise self._unexpected(
                    f"'a' after 'is' (concept {name.text} is a Parent;)", article
                )
            self._i += 1
            parent = self._name_ref("a parent concept name after 'is a'")
        self._expect(";", f"';' after concept '{name.text}'")
        return ConceptDecl(name.text, parent, doc, self._pos(name))

    def _club(self, doc: str | None) -> ClubDecl:
        self._i += 1
        name = self._ident("a club name after 'club'")
        self._expect(";", f"';' after club '{name.text}'")
        return ClubDecl(name.text, doc, self._pos(name))

    def _membership(self, doc: str | None) -> MembershipDecl:
        keyword = self._toks[self._i]
        self._i += 1
        club = self._name_ref("a club name after 'membership'")
        concept = self._name_ref(f"a concept name after 'membership {club.qualified}'")
        self._expect(";", f"';' after 'membership {club.qualified} {concept.qualified}'")
        return MembershipDecl(club, concept, doc, self._pos(keyword))

    def _enum(self, doc: str | None) -> EnumDecl:
        self._i += 1
        name = self._ident("an enum name after 'enum'")
        open_tok = self._expect("{", f"'{{' after enum name '{name.text}'")
        cases: list[EnumCaseDecl] = []
        while True:
            case_doc = self._doc()
            tok = self._peek()
            if tok.kind == "}":
                if not cases:
                    raise self._error(f"enum '{name.text}' must have at least one case", tok)
                break
            if tok.kind == EOF:
                raise self._unclosed(f"enum '{name.text}'", open_tok, tok)
            case = self._ident(f"an enum case name in enum '{name.text}'")
            cases.append(EnumCaseDecl(case.text, case_doc, self._pos(case)))
            sep = self._peek()
            if sep.kind == ",":
                self._i += 1
                continue
            if sep.kind == "}":
                break
            if sep.kind == EOF:
                raise self._unclosed(f"enum '{name.text}'", open_tok, sep)
            raise self._unexpected(f"',' or '}}' after enum case '{case.text}'", sep)
        self._i += 1
        self._expect(";", f"';' after enum '{name.text}'")
        return EnumDecl(name.text, tuple(cases), doc, self._pos(name))

    def _struct(self, doc: str | None) -> StructDecl:
        self._i += 1
        name = self._ident("a struct name after 'struct'")
        open_tok = self._expect("{", f"'{{' after struct name '{name.text}'")
        fields: list[FieldDecl] = []
        while True:
            field_doc = self._doc()
            tok = self._peek()
            if tok.kind == "}":
                break
            if tok.kind == EOF:
                raise self._unclosed(f"struct '{name.text}'", open_tok, tok)
            ftype = self._type(f"a field type or '}}' in struct '{name.text}'")
            fname = self._name_after_type("a field name", ftype)
            default: LiteralExpr | None = None
            if self._peek().kind == "=":
                self._i += 1
                default = self._literal()
            self._expect(";", f"';' after field '{fname.text}'")
            fields.append(FieldDecl(ftype, fname.text, default, field_doc, self._pos(fname)))
        self._i += 1
        self._expect(";", f"';' after struct '{name.text}'")
        return StructDecl(name.text, tuple(fields), doc, self._pos(name))

    def _attachment(self, doc: str | None) -> AttachmentDecl:
        self._i += 1
        usage = "attachment<KeyType, DocType> name;"
        self._expect("<", f"'<' after 'attachment' ({usage})")
        key_type = self._type("an attachment key type")
        sep = self._peek()
        if sep.kind == ">":
            raise self._error(
                f"wrong number of type arguments for 'attachment': expected 2 ({usage}), found 1",
                sep,
            )
        self._expect(",", f"',' after the attachment key type ({usage})")
        doc_type = self._type("an attachment document type")
        sep = self._peek()
        if sep.kind == ",":
            raise self._error(
                f"wrong number of type arguments for 'attachment': expected 2 ({usage}), "
                "found more",
                sep,
            )
        self._expect(">", f"'>' after the attachment document type ({usage})")
        name = self._ident("an attachment name")
        self._expect(";", f"';' after attachment '{name.text}'")
        return AttachmentDecl(key_type, doc_type, name.text, doc, self._pos(name))

    def _namespace(self, doc: str | None) -> NamespaceBlock:
        self._i += 1
        name_tok = self._ident("a namespace name after 'namespace'")
        name = name_tok.text
        uid = self._uuid(f"namespace name '{name}'")
        open_tok = self._expect("{", f"'{{' to open namespace '{name}'")
        decls: list[Decl] = []
        handlers = self._decls
        while True:
            decl_doc = self._doc()
            tok = self._peek()
            if tok.kind == IDENT:
                handler = handlers.get(tok.text)
                if handler is None:
                    raise self._bad_decl(tok, name)
                decls.append(handler(decl_doc))
                continue
            if tok.kind == "}":
                break
            if tok.kind == EOF:
                raise self._unclosed(f"namespace '{name}'", open_tok, tok)
            raise self._unexpected(
                f"a declaration ({_DECL_LIST}) or '}}' to close namespace '{name}'", tok
            )
        self._i += 1
        self._skip_optional(";")
        return NamespaceBlock(name, uid, tuple(decls), self._pos(name_tok), doc)

    def _bad_decl(self, tok: Token, namespace: str) -> DSMError:
        if tok.text == "namespace":
            return self._error(
                f"namespaces cannot be nested: 'namespace' inside namespace '{namespace}'", tok
            )
        if tok.text in _POOL_KINDS:
            return self._error(
                f"'{tok.text}' must be declared at top level, not inside namespace '{namespace}'",
                tok,
            )
        return self._error(
            f"unknown declaration '{tok.text}' in namespace '{namespace}': expected {_DECL_LIST}",
            tok,
        )

    # -- pools -----------------------------------------------------------------------------

    def _pool(self, doc: str | None) -> PoolDecl:
        keyword = self._toks[self._i]
        self._i += 1
        kind: PoolKind = (
            "function_pool" if keyword.text == "function_pool" else "attachment_function_pool"
        )
        name_tok = self._ident(f"a pool name after '{kind}'")
        name = name_tok.text
        uid = self._uuid(f"pool name '{name}'")
        open_tok = self._expect("{", f"'{{' to open {kind} '{name}'")
        functions: list[FunctionDecl] = []
        while True:
            fdoc = self._doc()
            tok = self._peek()
            if tok.kind == "}":
                break
            if tok.kind == EOF:
                raise self._unclosed(f"{kind} '{name}'", open_tok, tok)
            mutable = False
            if tok.kind == IDENT and tok.text == "mutable":
                if kind == "function_pool":
                    raise self._error(
                        f"'mutable' is not allowed in function_pool '{name}': only functions "
                        "of an attachment_function_pool can be mutable",
                        tok,
                    )
                mutable = True
                self._i += 1
            rtype = self._type(f"a return type or '}}' in {kind} '{name}'")
            fname = self._name_after_type("a function name", rtype)
            self._expect("(", f"'(' after function name '{fname.text}'")
            params: list[ParamDecl] = []
            if self._peek().kind != ")":
                while True:
                    ptype = self._type(f"a parameter type in function '{fname.text}'")
                    pname = self._name_after_type("a parameter name", ptype)
                    params.append(ParamDecl(ptype, pname.text, self._pos(pname)))
                    sep = self._peek()
                    if sep.kind == ",":
                        self._i += 1
                        continue
                    if sep.kind == ")":
                        break
                    raise self._unexpected(
                        f"',' or ')' in the parameters of function '{fname.text}'", sep
                    )
            self._i += 1
            self._expect(";", f"';' after function '{fname.text}'")
            functions.append(
                FunctionDecl(rtype, fname.text, tuple(params), mutable, fdoc, self._pos(fname))
            )
        self._i += 1
        self._skip_optional(";")
        return PoolDecl(kind, name, uid, tuple(functions), doc, self._pos(name_tok))

    # -- file ------------------------------------------------------------------------------

    def parse(self) -> DSMFile:
        namespaces: list[NamespaceBlock] = []
        pools: list[PoolDecl] = []
        while True:
            doc = self._doc()
            tok = self._peek()
            if tok.kind == EOF:
                break
            if tok.kind != IDENT:
                raise self._unexpected(f"{_TOP_LIST} at top level", tok)
            if tok.text == "namespace":
                namespaces.append(self._namespace(doc))
            elif tok.text in _POOL_KINDS:
                pools.append(self._pool(doc))
            elif tok.text in _DECL_KEYWORDS:
                raise self._error(
                    f"'{tok.text}' declarations must be inside a namespace block", tok
                )
            else:
                raise self._error(
                    f"unknown keyword '{tok.text}' at top level: expected {_TOP_LIST}", tok
                )
        return DSMFile(self._file, tuple(namespaces), tuple(pools))


def parse(text: str, file: str = "<string>") -> DSMFile:
    """Parse DSM source text into a syntax tree.

    Args:
        text: The DSM source.
        file: The file name used in positions and error messages.

    Returns:
        The parsed file.

    Raises:
        DSMError: The text is not valid DSM; the error is located at the offending token.
    """
    return _Parser(text, file).parse()


def parse_file(path: str | os.PathLike[str]) -> DSMFile:
    """Read a UTF-8 DSM file and parse it.

    Args:
        path: The file to read; ``str(path)`` is used as the file name in positions.

    Returns:
        The parsed file.

    Raises:
        DSMError: The file is not valid UTF-8 or not valid DSM.
        OSError: The file cannot be read.
    """
    name = os.fspath(path)
    with open(name, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start]
        line = prefix.count(b"\n") + 1
        col = len(prefix[prefix.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        raise DSMError("file is not valid UTF-8", name, line, col) from exc
    return parse(text, name)
