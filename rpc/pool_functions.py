"""Typed functions: a prototype and the Python implementation behind it, stateless
(:class:`Function`) or taking an attachment state first (:class:`AttachmentFunction`)."""

from __future__ import annotations

from typing import Any, ClassVar

from commitdb.errors import DefinitionError, ValidationError
from commitdb.prototypes import FunctionPrototype
from rpc.pool_calls import CallPlan, _Impl, _plan

__all__ = ("GETTING_METHODS", "MUTATING_METHODS", "AttachmentFunction", "Function")


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
    def call_plan(self) -> CallPlan:
        """How the implementation takes the checked arguments (positional count, keyword
        names, ``call``): what a server needs to call it without ``__call__``'s checks."""
        return self._plan

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
