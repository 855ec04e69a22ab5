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
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self, overload

from commitdb.errors import DefinitionError, NotFoundError, ValidationError
from commitdb.prototypes import FunctionPrototype, Parameter, PoolDeclaration
from commitdb.types import (
    ANY,
    BLOB,
    BOOL,
    DOUBLE,
    INT64,
    STRING,
    UUID,
    VOID,
    MapType,
    OptionalType,
    SetType,
    TupleType,
    Type,
    VariantType,
    VectorType,
)
from commitdb.values import EnumCase, Key, StructValue, XArray

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

#: The read API an attachment state must offer (``AttachmentGetting``).
GETTING_METHODS: tuple[str, ...] = ("get", "has", "keys")

#: The mutation API a state must offer to a mutable attachment function: the read API plus
#: the twelve mutations of the remote-local protocol (``AttachmentMutating``).
MUTATING_METHODS: tuple[str, ...] = (
    *GETTING_METHODS,
    "set",
    "diff",
    "update",
    "union_in_set",
    "subtract_in_set",
    "union_in_map",
    "subtract_in_map",
    "update_in_map",
    "insert_in_xarray",
    "update_in_xarray",
    "remove_in_xarray",
)

#: The uuid5 namespace of the default pool uuids (see :func:`default_pool_uuid`).
POOL_UUID_NAMESPACE = uuid.UUID("6a0c5f3e-2f59-5d0e-9a51-3c8f0f6c0b7a")

_Impl = Callable[..., Any]


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


# --------------------------------------------------------------------------------------------
# Annotations -> types

_SCALARS: dict[object, Type] = {
    int: INT64,
    float: DOUBLE,
    str: STRING,
    bytes: BLOB,
    uuid.UUID: UUID,
    typing.Any: ANY,
}

_SEQUENCES = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_SETS = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_MAPS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)

_NEEDS_ANNOTATED: dict[object, str] = {
    Key: "a key needs its key type: Annotated[Key, KeyType(concept)]",
    StructValue: "a structure needs its type: Annotated[StructValue, structure_type]",
    EnumCase: "an enumeration case needs its type: Annotated[EnumCase, enumeration_type]",
    XArray: "an xarray needs its type: Annotated[XArray, XArrayType(element)]",
}


def type_from_annotation(annotation: object) -> Type:
    """The commitdb type a (resolved) Python annotation stands for.

    Args:
        annotation: An annotation object (not a string): ``int``, ``list[str]``,
            ``Annotated[Key, key_type]``, a commitdb :class:`~commitdb.types.Type` ...

    Returns:
        The type descriptor.

    Raises:
        DefinitionError: The annotation has no commitdb equivalent.
    """
    if isinstance(annotation, Type):
        return annotation
    if annotation is None or annotation is type(None):
        return VOID
    if annotation is bool:  # before int: bool is an int subclass
        return BOOL
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return scalar
    if isinstance(annotation, type) and issubclass(annotation, StructValue):
        struct_type = getattr(annotation, "_type", None)
        if isinstance(struct_type, Type):
            return struct_type
    if isinstance(annotation, str | typing.ForwardRef):
        raise DefinitionError(f"unresolved annotation {annotation!r}")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        for meta in getattr(annotation, "__metadata__", ()):
            if isinstance(meta, Type):
                return meta
        return type_from_annotation(args[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        inner = (
            type_from_annotation(members[0])
            if len(members) == 1
            else VariantType(type_from_annotation(a) for a in members)
        )
        return OptionalType(inner) if len(members) < len(args) else inner
    if origin in _SEQUENCES and len(args) == 1:
        return VectorType(type_from_annotation(args[0]))
    if origin in _SETS and len(args) == 1:
        return SetType(type_from_annotation(args[0]))
    if origin in _MAPS and len(args) == 2:
        return MapType(type_from_annotation(args[0]), type_from_annotation(args[1]))
    if origin is tuple and args and args[-1] is not Ellipsis:
        return TupleType(type_from_annotation(a) for a in args)
    hint = _NEEDS_ANNOTATED.get(annotation)
    if hint is not None:
        raise DefinitionError(hint)
    if annotation in (*_SEQUENCES, *_SETS, *_MAPS, tuple):
        raise DefinitionError(f"{_describe(annotation)} needs its element type(s)")
    raise DefinitionError(f"{_describe(annotation)} has no commitdb type")


def _describe(annotation: object) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation)


def _resolve_annotation(raw: object, globalns: dict[str, Any]) -> object:
    """Evaluate a string (or string-containing) annotation against a module's globals."""
    if isinstance(raw, Type):
        return raw

    def holder() -> None:
        """Carry the annotation to ``typing.get_type_hints``."""

    holder.__annotations__ = {"annotation": raw}
    try:
        return typing.get_type_hints(holder, globalns=globalns, include_extras=True)["annotation"]
    except TypeError:
        if not isinstance(raw, str):
            raise
        value = eval(raw, dict(globalns))  # a commitdb type used directly: `x: INT32`
        if isinstance(value, Type):
            return value
        raise


def _globals_of(fn: object) -> dict[str, Any]:
    """The module globals an implementation's string annotations refer to."""
    target = inspect.unwrap(fn) if callable(fn) else fn
    while isinstance(target, functools.partial):
        target = target.func
    found = getattr(target, "__globals__", None)
    if found is None and not inspect.isroutine(target):  # a callable object: its __call__
        found = getattr(inspect.getattr_static(type(target), "__call__", None), "__globals__", None)
    return found if isinstance(found, dict) else {}


# --------------------------------------------------------------------------------------------
# Implementation signatures


def _signature(fn: _Impl) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        return None


def _show_signature(fn: _Impl, sig: inspect.Signature | None) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return f"{name}{sig if sig is not None else '(...)'}"


class _CallPlan:
    """How to pass the normalized arguments to an implementation."""

    __slots__ = ("keyword_names", "positional")

    def __init__(self, positional: int, keyword_names: tuple[str, ...]) -> None:
        self.positional = positional  # the first `positional` arguments go by position
        self.keyword_names = keyword_names  # the others by these names

    def call(self, fn: _Impl, prefix: tuple[Any, ...], args: Sequence[Any]) -> Any:
        n = self.positional
        if not self.keyword_names:
            return fn(*prefix, *args)
        return fn(*prefix, *args[:n], **dict(zip(self.keyword_names, args[n:], strict=True)))


def _plan(fn: _Impl, prototype: FunctionPrototype, takes_state: bool, where: str) -> _CallPlan:
    """Check that `fn` can take the declared parameters and decide how to pass them.

    Raises:
        DefinitionError: Saying what was declared and what was found.
    """
    declared = [p.name for p in prototype.parameters]
    sig = _signature(fn)
    if sig is None:
        return _CallPlan(len(declared), ())
    params = list(sig.parameters.values())
    shown_declared = ", ".join((["state"] if takes_state else []) + declared)

    def fail(reason: str) -> DefinitionError:
        return DefinitionError(
            f"{where}: the implementation cannot take the declared parameters: "
            f"declared {prototype.name}({shown_declared}), "
            f"found {_show_signature(fn, sig)} ({reason})"
        )

    positional_kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if takes_state:
        if not params:
            raise fail("no parameter for the attachment state")
        if params[0].kind in positional_kinds:
            params = params[1:]
        elif params[0].kind is not inspect.Parameter.VAR_POSITIONAL:
            raise fail("the attachment state must be its first positional parameter")
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        before = [p for p in named if p.kind in positional_kinds]
        required = [p.name for p in before if p.default is p.empty]
        if len(required) > len(declared):
            raise fail(f"it requires {len(required)} positional arguments")
        kw_required = [p.name for p in named if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        if kw_required:
            raise fail(f"keyword-only parameter(s) {', '.join(map(repr, kw_required))}")
        return _CallPlan(len(declared), ())
    only = [p for p in named if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if len(only) > len(declared):
        missing = [p.name for p in only[len(declared) :] if p.default is p.empty]
        if missing:
            raise fail(f"{len(declared)} argument(s) for {len(only)} positional-only parameters")
    by_name = {p.name: p for p in named if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    keywords = tuple(declared[len(only) :])
    unknown = [n for n in keywords if n not in by_name]
    if unknown and not var_kw:
        raise fail(f"no parameter named {', '.join(map(repr, unknown))}")
    left = [p.name for p in by_name.values() if p.name not in keywords and p.default is p.empty]
    if left:
        raise fail(f"parameter(s) {', '.join(map(repr, left))} would get no argument")
    return _CallPlan(min(len(only), len(declared)), keywords)


# --------------------------------------------------------------------------------------------
# Functions


class Function:
    """A typed callable: a prototype and the Python implementation behind it.

    Attributes:
        prototype: The signature the calls are validated against.
        implementation: The Python callable doing the work.
        inline: True when the function is cheap and never blocks, so a server may run it on
            its event loop; False (the default) asks for a worker thread.
        pool_name: The pool the function was built for (used in messages), or None.
    """

    __slots__ = ("_plan", "implementation", "inline", "pool_name", "prototype")

    _takes_state: ClassVar[bool] = False

    def __init__(
        self,
        prototype: FunctionPrototype,
        implementation: _Impl,
        *,
        inline: bool = False,
        pool_name: str | None = None,
    ) -> None:
        """Wrap an implementation.

        Args:
            prototype: The signature.
            implementation: A callable able to take the declared parameters.
            inline: See the class attributes.
            pool_name: The pool name, for messages.

        Raises:
            DefinitionError: The implementation's signature cannot take the declared
                parameters, or the prototype is mutable for a stateless function.
        """
        if not callable(implementation):
            raise DefinitionError(f"the implementation of {prototype.name} is not callable")
        self.prototype = prototype
        self.implementation = implementation
        self.inline = bool(inline)
        self.pool_name = pool_name
        if prototype.mutable and not self._takes_state:
            raise DefinitionError(
                f"{self.qualified_name} is mutable: only an AttachmentFunction can be"
            )
        self._plan = _plan(implementation, prototype, self._takes_state, self.qualified_name)

    @property
    def name(self) -> str:
        """The function name (the prototype's)."""
        return self.prototype.name

    @property
    def qualified_name(self) -> str:
        """``Pool.name`` when the pool is known, else the name."""
        return f"{self.pool_name}.{self.name}" if self.pool_name else self.name

    @property
    def documentation(self) -> str | None:
        """The documentation (the prototype's)."""
        return self.prototype.documentation

    def __repr__(self) -> str:
        inline = " inline" if self.inline else ""
        return f"<{type(self).__name__}{inline} {self.qualified_name}: {self.prototype!r}>"

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """Order keyword arguments by the prototype, then validate and normalize."""
        where = self.qualified_name
        values = list(args)
        if kwargs:
            params = self.prototype.parameters
            for p in params[: len(values)]:
                if p.name in kwargs:
                    raise ValidationError(
                        "each argument once", f"{p.name!r} by position and by name", where
                    )
            for p in params[len(values) :]:
                if p.name not in kwargs:
                    raise ValidationError(
                        f"{len(params)} argument(s) ({', '.join(map(repr, params))})",
                        f"no argument for {p.name!r}",
                        where,
                    )
                values.append(kwargs[p.name])
            unknown = set(kwargs) - {p.name for p in params}
            if unknown:
                raise ValidationError(
                    f"parameters of {where} ({', '.join(p.name for p in params)})",
                    f"unknown keyword argument(s) {', '.join(map(repr, sorted(unknown)))}",
                    where,
                )
        return self.prototype.check_arguments(values, where)

    def _invoke(self, prefix: tuple[Any, ...], args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        values = self._arguments(args, kw)
        result = self._plan.call(self.implementation, prefix, values)
        return self.prototype.return_type.check(result, f"{self.qualified_name}() result")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Validate the arguments, call the implementation, validate and return the result.

        Args:
            *args: The arguments, in the prototype's order.
            **kwargs: Arguments by parameter name (after the positional ones).

        Returns:
            The normalized result (None for a void function).

        Raises:
            ValidationError: Wrong argument count or type, or a result of the wrong type; the
                message names the function and the parameter.
        """
        return self._invoke((), args, kwargs)


class AttachmentFunction(Function):
    """A function that receives an attachment state first.

    A mutable function needs the mutation API (:data:`MUTATING_METHODS`: a
    ``CommitMutableState`` or a remote proxy offering the same methods); a read-only one
    needs the read API (:data:`GETTING_METHODS`). The state is passed to the implementation
    as it is, so the same body works locally and remotely.
    """

    __slots__ = ()

    _takes_state: ClassVar[bool] = True

    @property
    def mutable(self) -> bool:
        """True if the function mutates the state (DSM ``mutable``)."""
        return self.prototype.mutable

    def check_state(self, state: object) -> None:
        """Refuse a state that lacks the API this function needs.

        Raises:
            TypeError: Naming the function, the API needed and the missing methods.
        """
        needed = MUTATING_METHODS if self.mutable else GETTING_METHODS
        missing = [m for m in needed if not callable(getattr(state, m, None))]
        if missing:
            kind = "mutating" if self.mutable else "getting"
            raise TypeError(
                f"{self.qualified_name} is a {'mutable' if self.mutable else 'read-only'} "
                f"attachment function: its first argument must be an attachment {kind} state "
                f"(methods {', '.join(needed)}), got {type(state).__name__} without "
                f"{', '.join(missing)}"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call with the attachment state first, then the declared arguments.

        Args:
            *args: The state, then the arguments in the prototype's order.
            **kwargs: Arguments by parameter name (after the positional ones).

        Returns:
            The normalized result (None for a void function).

        Raises:
            TypeError: No state, or a state without the needed API.
            ValidationError: Wrong argument count or type, or a result of the wrong type.
        """
        if not args:
            raise TypeError(f"{self.qualified_name} needs the attachment state first")
        state = args[0]
        self.check_state(state)
        return self._invoke((state,), args[1:], kwargs)


# --------------------------------------------------------------------------------------------
# Pools


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
        names = declaration.functions
        if isinstance(inline, bool):
            inline_names = set(names) if inline else set()
        else:
            inline_names = {inline} if isinstance(inline, str) else set(inline)
        problems: list[str] = [
            f"{declaration.name}.{n} is named inline but is not declared"
            for n in sorted(inline_names - set(names))
        ]
        pool = cls(declaration.name, declaration.uuid, declaration.documentation)
        for fname, prototype in names.items():
            impl = _lookup(implementations, fname)
            if impl is None:
                problems.append(f"{declaration.name}.{fname} has no implementation")
                continue
            try:
                pool.add(
                    cls._function_class(
                        prototype, impl, inline=fname in inline_names, pool_name=pool.name
                    )
                )
            except DefinitionError as exc:
                problems.append(str(exc))
        if not allow_extra:
            problems += [
                f"{declaration.name} declares no function {extra!r} (an implementation was "
                "given for it; pass allow_extra=True to accept it)"
                for extra in sorted(_offered_names(implementations) - set(names))
            ]
        if problems:
            raise DefinitionError("; ".join(problems))
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


# --------------------------------------------------------------------------------------------
# Helpers of the decorator and of bind


def _annotation_type(raw: object, globalns: dict[str, Any], what: str, where: str) -> Type:
    try:
        resolved = _resolve_annotation(raw, globalns)
    except Exception as exc:  # NameError, SyntaxError, TypeError from typing ...
        raise DefinitionError(
            f"{where}: cannot resolve the annotation {raw!r} of {what} "
            f"({type(exc).__name__}: {exc}); annotations are resolved against the function's "
            "module globals, pass parameters=/returns= for other types"
        ) from None
    try:
        return type_from_annotation(resolved)
    except DefinitionError as exc:
        raise DefinitionError(f"{where}: {what}: {exc}") from None


def _parameters_of(
    impl: _Impl, overrides: Mapping[str, Type], takes_state: bool, where: str
) -> list[Parameter]:
    sig = _signature(impl)
    if sig is None:
        raise DefinitionError(f"{where}: the signature of {impl!r} cannot be inspected")
    params = list(sig.parameters.values())
    if takes_state:
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise DefinitionError(
                f"{where}: an attachment function takes the attachment state as its first "
                "positional parameter"
            )
        params = params[1:]
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            star = "*" if p.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise DefinitionError(
                f"{where}: variadic parameter {star}{p.name} cannot be part of a prototype"
            )
    # keyword-only parameters with a default keep it (e.g. bound by functools.partial)
    params = [p for p in params if p.kind is not p.KEYWORD_ONLY or p.default is p.empty]
    unknown = set(overrides) - {p.name for p in params}
    if unknown:
        raise DefinitionError(
            f"{where}: parameters= names unknown parameter(s) "
            f"{', '.join(map(repr, sorted(unknown)))} (parameters: "
            f"{', '.join(p.name for p in params) or 'none'})"
        )
    globalns = _globals_of(impl)
    out: list[Parameter] = []
    for p in params:
        t = overrides.get(p.name)
        if t is None:
            if p.annotation is inspect.Parameter.empty:
                raise DefinitionError(
                    f"{where}: parameter {p.name!r} has no annotation (annotate it or pass "
                    f"parameters={{{p.name!r}: type}})"
                )
            t = _annotation_type(p.annotation, globalns, f"parameter {p.name!r}", where)
        if not isinstance(t, Type):
            raise DefinitionError(f"{where}: parameter {p.name!r}: {t!r} is not a commitdb type")
        if t is VOID or t == VOID:
            raise DefinitionError(f"{where}: parameter {p.name!r} cannot be void")
        out.append(Parameter(p.name, t))
    return out


def _return_of(impl: _Impl, where: str) -> Type:
    sig = _signature(impl)
    if sig is None or sig.return_annotation is inspect.Signature.empty:
        raise DefinitionError(
            f"{where}: the return has no annotation (annotate it, -> None for void, or pass "
            "returns=type)"
        )
    return _annotation_type(sig.return_annotation, _globals_of(impl), "the return", where)


def _lookup(implementations: Mapping[str, _Impl] | object, name: str) -> _Impl | None:
    if isinstance(implementations, Mapping):
        found = implementations.get(name)
    else:
        found = getattr(implementations, name, None)
    return found if found is not None else None


def _offered_names(implementations: Mapping[str, _Impl] | object) -> set[str]:
    """The names an implementations object offers (for typo protection)."""
    if isinstance(implementations, Mapping):
        return {str(k) for k in implementations}
    if isinstance(implementations, types.ModuleType):
        exported = getattr(implementations, "__all__", None)
        if exported is not None:
            return set(exported)
        module = implementations.__name__
        return {
            n
            for n, v in vars(implementations).items()
            if not n.startswith("_")
            and callable(v)
            and getattr(v, "__module__", None) == module
            and not isinstance(v, type)
        }
    owner = implementations if isinstance(implementations, type) else type(implementations)
    names: set[str] = set()
    for klass in owner.__mro__:
        if klass is object:
            continue
        names |= {n for n, v in vars(klass).items() if not n.startswith("_") and _is_routine(v)}
    if not isinstance(implementations, type):
        names |= {
            n
            for n, v in getattr(implementations, "__dict__", {}).items()
            if not n.startswith("_") and callable(v)
        }
    return names


def _is_routine(value: object) -> bool:
    return isinstance(value, staticmethod | classmethod) or inspect.isfunction(value)
