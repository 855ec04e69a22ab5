"""Function pools: typed Python callables grouped under a pool uuid and name.

A :class:`FunctionPool` holds stateless :class:`Function` objects; an
:class:`AttachmentFunctionPool` holds :class:`AttachmentFunction` objects, which receive an
attachment state first (the mutation API for ``mutable`` functions, the read API otherwise).
Every function carries a :class:`~commitdb.prototypes.FunctionPrototype`: calls are validated
and normalized against it, and so is the result.

Prototypes come from one of two places:

* **Python annotations**, through the ``@pool.function`` decorator::

      tools = FunctionPool("Tools")

      @tools.function(inline=True)
      def add(a: int, b: int) -> int:
          \"\"\"Return a + b.\"\"\"
          return a + b

      tools.funcs.add(1, 2)  # 3

  ``int`` is ``int64``, ``float`` is ``double``, ``str``/``bool``/``bytes``/``uuid.UUID``/
  ``None`` are ``string``/``bool``/``blob``/``uuid``/``void``, ``list[T]``/``set[T]``/
  ``dict[K, V]``/``T | None`` are ``vector``/``set``/``map``/``optional`` and ``typing.Any``
  is ``any``; ``Annotated[X, t]`` with ``t`` a commitdb type names any other type (keys,
  structures, enumerations, ``int32`` ...).
* **DSM declarations**, through :meth:`FunctionPool.bind`: the prototypes are exactly the
  declared ones, and the implementations are checked against them when the pool is built.

An implementation is called with the normalized arguments; a parameter it declares as
positional-only receives its argument by position, every other one by name (so a bound
implementation whose parameter names match the declaration may list them in any order), and
an implementation taking ``*args`` receives everything by position.

The parts live beside this module: :mod:`rpc.pool_annotations` (annotations and
signatures to types and prototypes), :mod:`rpc.pool_calls` (how an implementation is called),
:mod:`rpc.pool_functions` (:class:`Function`, :class:`AttachmentFunction`) and
:mod:`rpc.pool_binding` (:meth:`FunctionPool.bind`).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import ClassVar, Self, overload

from commitdb.errors import DefinitionError, NotFoundError
from commitdb.prototypes import FunctionPrototype, PoolDeclaration
from commitdb.types import Type
from rpc.pool_annotations import _parameters_of, _return_of, type_from_annotation
from rpc.pool_binding import _bind_functions
from rpc.pool_calls import _Impl
from rpc.pool_functions import GETTING_METHODS, MUTATING_METHODS, AttachmentFunction, Function

__all__ = (
    "GETTING_METHODS",
    "MUTATING_METHODS",
    "POOL_UUID_NAMESPACE",
    "AttachmentFunction",
    "AttachmentFunctionPool",
    "Function",
    "FunctionPool",
    "FunctionPoolFunctions",
    "default_pool_uuid",
    "type_from_annotation",
)

#: The uuid5 namespace of the default pool uuids (see :func:`default_pool_uuid`).
POOL_UUID_NAMESPACE = uuid.UUID("6a0c5f3e-2f59-5d0e-9a51-3c8f0f6c0b7a")


def default_pool_uuid(name: str, *, attachment: bool = False) -> uuid.UUID:
    """The stable uuid a pool gets when none is given.

    Args:
        name: The pool name.
        attachment: True for an attachment function pool (the kind enters the uuid, so a
            function pool and an attachment function pool of the same name differ).

    Returns:
        ``uuid5(POOL_UUID_NAMESPACE, "<kind>:<name>")`` where kind is ``function_pool`` or
        ``attachment_function_pool``.
    """
    kind = "attachment_function_pool" if attachment else "function_pool"
    return uuid.uuid5(POOL_UUID_NAMESPACE, f"{kind}:{name}")


class FunctionPoolFunctions:
    """The functions of a pool by name: ``funcs.add(1, 2)``, ``funcs["add"]``, ``len``, ``dir``."""

    __slots__ = ("_pool",)

    def __init__(self, pool: FunctionPool) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Function:
        if name.startswith("__"):
            raise AttributeError(name)
        found = self._pool.query(name)
        if found is None:
            raise AttributeError(self._pool._unknown(name))
        return found

    def __getitem__(self, name: str) -> Function:
        found = self._pool.query(name)
        if found is None:
            raise KeyError(self._pool._unknown(name))
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._pool.query(name) is not None

    def __iter__(self) -> Iterator[Function]:
        return iter(self._pool.functions())

    def __len__(self) -> int:
        return len(self._pool)

    def __dir__(self) -> list[str]:
        return sorted(f.name for f in self._pool.functions())

    def __repr__(self) -> str:
        return f"<functions of {self._pool.name}: {', '.join(self.__dir__())}>"


class FunctionPool:
    """A named container of :class:`Function` objects with a uuid and documentation.

    Attributes:
        uuid: The pool identity (a stable uuid5 of the name unless given).
        name: The pool name.
        documentation: The pool documentation, or None.
    """

    attachment: ClassVar[bool] = False
    _function_class: ClassVar[type[Function]] = Function

    def __init__(
        self,
        name: str,
        pool_uuid: uuid.UUID | str | None = None,
        documentation: str | None = None,
    ) -> None:
        """Create an empty pool.

        Args:
            name: The pool name.
            pool_uuid: Its uuid; :func:`default_pool_uuid` of the name when None.
            documentation: The pool documentation.
        """
        if pool_uuid is None:
            pool_uuid = default_pool_uuid(name, attachment=self.attachment)
        self.uuid = pool_uuid if isinstance(pool_uuid, uuid.UUID) else uuid.UUID(pool_uuid)
        self.name = name
        self.documentation = documentation
        self._functions: dict[str, Function] = {}

    @property
    def kind(self) -> str:
        """``function_pool`` or ``attachment_function_pool``."""
        return "attachment_function_pool" if self.attachment else "function_pool"

    @property
    def funcs(self) -> FunctionPoolFunctions:
        """The functions by attribute or item access."""
        return FunctionPoolFunctions(self)

    # -- content --------------------------------------------------------------------------
    def add(self, function: Function) -> Function:
        """Add a function.

        Args:
            function: A :class:`Function` (an :class:`AttachmentFunction` for an attachment
                function pool).

        Returns:
            The function.

        Raises:
            DefinitionError: Wrong kind of function, or the name is taken.
        """
        cls = self._function_class
        if not isinstance(function, cls) or (
            not self.attachment and isinstance(function, AttachmentFunction)
        ):
            raise DefinitionError(
                f"{self.kind} {self.name} holds {cls.__name__} objects, "
                f"not {type(function).__name__}"
            )
        if function.name in self._functions:
            raise DefinitionError(
                f"{self.kind} {self.name} already has a function {function.name!r}"
            )
        if function.pool_name is None:
            function.pool_name = self.name
        self._functions[function.name] = function
        return function

    def query(self, name: str) -> Function | None:
        """The function with this name, or None."""
        return self._functions.get(name)

    def check(self, name: str) -> Function:
        """The function with this name.

        Raises:
            NotFoundError: Listing the available names.
        """
        found = self._functions.get(name)
        if found is None:
            raise NotFoundError(self._unknown(name))
        return found

    def _unknown(self, name: str) -> str:
        names = ", ".join(sorted(self._functions)) or "none"
        return f"{self.kind} {self.name} has no function {name!r} (functions: {names})"

    def functions(self) -> list[Function]:
        """The functions, in the order they were added."""
        return list(self._functions.values())

    def declaration(self) -> PoolDeclaration:
        """The pool as a declaration (uuid, name, documentation, prototypes)."""
        return PoolDeclaration(
            self.uuid,
            self.name,
            [f.prototype for f in self._functions.values()],
            self.documentation,
            attachment=self.attachment,
        )

    def __len__(self) -> int:
        return len(self._functions)

    def __iter__(self) -> Iterator[Function]:
        return iter(self.functions())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._functions

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.uuid} ({len(self)} functions)>"

    # -- decorator ------------------------------------------------------------------------
    @overload
    def function(self, fn: _Impl, /) -> Function: ...

    @overload
    def function(
        self,
        /,
        *,
        name: str | None = None,
        parameters: Mapping[str, Type] | None = None,
        returns: Type | None = None,
        documentation: str | None = None,
        inline: bool = False,
    ) -> Callable[[_Impl], Function]: ...

    def function(
        self,
        fn: _Impl | None = None,
        /,
        *,
        name: str | None = None,
        parameters: Mapping[str, Type] | None = None,
        returns: Type | None = None,
        documentation: str | None = None,
        inline: bool = False,
    ) -> Function | Callable[[_Impl], Function]:
        """Decorator adding a function whose prototype comes from its signature.

        Usable bare (``@pool.function``) or with options (``@pool.function(inline=True)``).
        Every parameter is declared, in order, except keyword-only parameters that have a
        default (they keep it); other defaults are not part of a prototype, so callers pass
        every declared argument. ``*args``/``**kwargs`` cannot be declared.

        Args:
            fn: The function (bare use).
            name: The function name (default: the Python name).
            parameters: Types overriding the annotations of these parameters.
            returns: The return type overriding the return annotation.
            documentation: The documentation (default: the docstring).
            inline: See :class:`Function`.

        Returns:
            The :class:`Function` (calls through it are validated), or a decorator.

        Raises:
            DefinitionError: A parameter (or the return) without a usable annotation or
                override, naming it.
        """

        def decorate(impl: _Impl) -> Function:
            return self._decorate(impl, name, parameters, returns, documentation, inline, False)

        return decorate if fn is None else decorate(fn)

    def _decorate(
        self,
        impl: _Impl,
        name: str | None,
        parameters: Mapping[str, Type] | None,
        returns: Type | None,
        documentation: str | None,
        inline: bool,
        mutable: bool,
    ) -> Function:
        fname = name or getattr(impl, "__name__", None)
        if not fname:
            raise DefinitionError(f"{self.name}: name the function (name=...) for {impl!r}")
        where = f"{self.name}.{fname}"
        prototype = FunctionPrototype(
            fname,
            _parameters_of(impl, parameters or {}, self.attachment, where),
            returns if returns is not None else _return_of(impl, where),
            documentation if documentation is not None else inspect.getdoc(impl),
            mutable,
        )
        function = self._function_class(prototype, impl, inline=inline, pool_name=self.name)
        return self.add(function)

    # -- DSM binding ----------------------------------------------------------------------
    @classmethod
    def bind(
        cls,
        declaration: PoolDeclaration,
        implementations: Mapping[str, _Impl] | object,
        *,
        inline: bool | Iterable[str] = False,
        allow_extra: bool = False,
    ) -> Self:
        """Build a pool whose prototypes are exactly a declaration's.

        Args:
            declaration: The pool declaration (e.g. from ``Definitions.pools()``).
            implementations: A mapping from function name to callable, or any object whose
                attributes are looked up by function name (a module, a class instance ...).
            inline: True/False for every function, or the names of the inline ones.
            allow_extra: Accept implementations for names the declaration does not have.

        Returns:
            The pool, with the declaration's uuid, name and documentation.

        Raises:
            DefinitionError: The declaration's kind does not match the class; a declared
                function has no implementation; an implementation's signature cannot take
                the declared parameters; an implementation is given for an undeclared name
                (unless ``allow_extra``). All problems are reported at once.
        """
        if declaration.attachment != cls.attachment:
            other = AttachmentFunctionPool if declaration.attachment else FunctionPool
            raise DefinitionError(
                f"{declaration.name} is declared as {declaration.kind}: bind it with "
                f"{other.__name__}.bind, not {cls.__name__}.bind"
            )
        pool = cls(declaration.name, declaration.uuid, declaration.documentation)
        _bind_functions(pool, declaration, implementations, inline, allow_extra)
        return pool


class AttachmentFunctionPool(FunctionPool):
    """A pool of :class:`AttachmentFunction` objects (functions taking the state first).

    The decorated functions' first parameter is the state: it is not part of the prototype
    and its name and annotation are ignored.
    """

    attachment: ClassVar[bool] = True
    _function_class: ClassVar[type[Function]] = AttachmentFunction

    def functions(self) -> list[AttachmentFunction]:  # type: ignore[override]
        """The functions, in the order they were added."""
        return [f for f in self._functions.values() if isinstance(f, AttachmentFunction)]

    def query(self, name: str) -> AttachmentFunction | None:
        """The function with this name, or None."""
        found = self._functions.get(name)
        return found if isinstance(found, AttachmentFunction) else None

    def check(self, name: str) -> AttachmentFunction:
        """The function with this name.

        Raises:
            NotFoundError: Listing the available names.
        """
        found = self.query(name)
        if found is None:
            raise NotFoundError(self._unknown(name))
        return found

    @overload
    def function(self, fn: _Impl, /) -> AttachmentFunction: ...

    @overload
    def function(
        self,
        /,
        *,
        name: str | None = None,
        parameters: Mapping[str, Type] | None = None,
        returns: Type | None = None,
        documentation: str | None = None,
        inline: bool = False,
        mutable: bool = True,
    ) -> Callable[[_Impl], AttachmentFunction]: ...

    def function(
        self,
        fn: _Impl | None = None,
        /,
        *,
        name: str | None = None,
        parameters: Mapping[str, Type] | None = None,
        returns: Type | None = None,
        documentation: str | None = None,
        inline: bool = False,
        mutable: bool = True,
    ) -> AttachmentFunction | Callable[[_Impl], AttachmentFunction]:
        """Decorator adding an attachment function whose prototype comes from its signature.

        Args:
            fn: The function (bare use); its first parameter receives the state.
            name: The function name (default: the Python name).
            parameters: Types overriding the annotations of these parameters.
            returns: The return type overriding the return annotation.
            documentation: The documentation (default: the docstring).
            inline: See :class:`Function`.
            mutable: False for a read-only function (it may then receive a read-only state).

        Returns:
            The :class:`AttachmentFunction`, or a decorator.

        Raises:
            DefinitionError: A parameter (or the return) without a usable annotation or
                override, naming it; or no parameter for the state.
        """

        def decorate(impl: _Impl) -> AttachmentFunction:
            f = self._decorate(impl, name, parameters, returns, documentation, inline, mutable)
            assert isinstance(f, AttachmentFunction)
            return f

        return decorate if fn is None else decorate(fn)
