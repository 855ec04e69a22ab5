"""Function prototypes and pool declarations, as declared in DSM or in Python.

A :class:`FunctionPrototype` is a function's signature: name, typed parameters, return type,
documentation and, for attachment functions, the ``mutable`` flag. A :class:`PoolDeclaration`
groups prototypes under a pool uuid and name; ``attachment=True`` marks an
``attachment_function_pool`` (its functions receive an attachment state first).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from commitdb.errors import DefinitionError, ValidationError
from commitdb.types import VOID, Type, _rid

__all__ = ("FunctionPrototype", "Parameter", "PoolDeclaration")


class Parameter:
    """A named, typed function parameter."""

    __slots__ = ("name", "type")

    def __init__(self, name: str, type: Type) -> None:
        self.name = name
        self.type = type

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Parameter) and self.name == other.name and self.type == other.type

    def __hash__(self) -> int:
        return hash((self.name, self.type))

    def __repr__(self) -> str:
        return f"{self.type} {self.name}"


class FunctionPrototype:
    """A function signature: name, parameters, return type, documentation, mutable flag."""

    __slots__ = ("documentation", "mutable", "name", "parameters", "return_type")

    def __init__(
        self,
        name: str,
        parameters: Iterable[Parameter | tuple[str, Type]] = (),
        return_type: Type = VOID,
        documentation: str | None = None,
        mutable: bool = False,
    ) -> None:
        self.name = name
        self.parameters = tuple(
            p if isinstance(p, Parameter) else Parameter(p[0], p[1]) for p in parameters
        )
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DefinitionError(f"function {name} has parameter {dup!r} twice")
        self.return_type = return_type
        self.documentation = documentation
        self.mutable = mutable

    @property
    def runtime_id(self) -> uuid.UUID:
        """Identity of the signature (name, parameter names and types, return type, mutable)."""
        parts: list[bytes | str | int] = ["function", self.name, int(self.mutable)]
        for p in self.parameters:
            parts += [p.name, p.type.runtime_id.bytes]
        parts.append(self.return_type.runtime_id.bytes)
        return _rid(*parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionPrototype) and self.runtime_id == other.runtime_id

    def __hash__(self) -> int:
        return hash(self.runtime_id)

    def __repr__(self) -> str:
        params = ", ".join(map(repr, self.parameters))
        m = "mutable " if self.mutable else ""
        return f"<{m}{self.return_type} {self.name}({params})>"

    def check_arguments(self, args: Sequence[object], where: str | None = None) -> list[Any]:
        """Validate and normalize call arguments against the parameters."""
        fn = where or self.name
        if len(args) != len(self.parameters):
            raise ValidationError(
                f"{len(self.parameters)} argument(s) ({', '.join(map(repr, self.parameters))})",
                f"{len(args)}",
                fn,
            )
        return [
            p.type.check(a, f"{fn}({p.name})") for p, a in zip(self.parameters, args, strict=True)
        ]

    def check_result(self, value: object) -> Any:
        """Validate and normalize a return value."""
        return self.return_type.check(value, f"{self.name}() result")


class PoolDeclaration:
    """A function pool declaration: uuid, name, documentation and prototypes."""

    __slots__ = ("attachment", "documentation", "functions", "name", "uuid")

    def __init__(
        self,
        pool_uuid: uuid.UUID | str,
        name: str,
        functions: Iterable[FunctionPrototype] = (),
        documentation: str | None = None,
        attachment: bool = False,
    ) -> None:
        self.uuid = pool_uuid if isinstance(pool_uuid, uuid.UUID) else uuid.UUID(pool_uuid)
        self.name = name
        self.functions: dict[str, FunctionPrototype] = {}
        for f in functions:
            if f.name in self.functions:
                raise DefinitionError(f"pool {name} declares function {f.name!r} twice")
            if f.mutable and not attachment:
                raise DefinitionError(
                    f"function {f.name} of function_pool {name} cannot be mutable"
                )
            self.functions[f.name] = f
        self.documentation = documentation
        self.attachment = attachment

    @property
    def kind(self) -> str:
        """``function_pool`` or ``attachment_function_pool``."""
        return "attachment_function_pool" if self.attachment else "function_pool"

    @property
    def runtime_id(self) -> uuid.UUID:
        """Identity of the declaration (uuid, name, kind and prototypes in name order)."""
        parts: list[bytes | str] = [self.kind, self.uuid.bytes, self.name]
        parts += [self.functions[n].runtime_id.bytes for n in sorted(self.functions)]
        return _rid(*parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PoolDeclaration) and self.runtime_id == other.runtime_id

    def __hash__(self) -> int:
        return hash(self.runtime_id)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} ({len(self.functions)} functions)>"

    def query(self, name: str) -> FunctionPrototype | None:
        """The prototype with this name, or None."""
        return self.functions.get(name)

    def check(self, name: str) -> FunctionPrototype:
        """The prototype with this name (raises if absent)."""
        f = self.functions.get(name)
        if f is None:
            raise DefinitionError(
                f"pool {self.name} has no function {name!r} "
                f"(functions: {', '.join(sorted(self.functions))})"
            )
        return f
