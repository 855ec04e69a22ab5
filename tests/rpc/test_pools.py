"""Tests for rpc.pools (function pools, attachment function pools, DSM binding) and for the Ge
implementation in tests/rpc/ge_pools.py, run on local mutable states."""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import pytest

from commitdb.commit_database import CommitDatabase
from commitdb.definitions import Definitions
from commitdb.errors import DefinitionError, NotFoundError, ValidationError
from commitdb.mutable_state import CommitMutableState
from commitdb.prototypes import FunctionPrototype, Parameter, PoolDeclaration
from commitdb.state import CommitState
from commitdb.types import (
    ANY,
    BLOB,
    BOOL,
    DOUBLE,
    INT32,
    INT64,
    STRING,
    UINT8,
    UUID,
    VOID,
    Attachment,
    Field,
    KeyType,
    MapType,
    OptionalType,
    SetType,
    StructureType,
    TupleType,
    VariantType,
    VectorType,
)
from commitdb.values import END, EnumCase, Key, StructValue, XArray
from rpc.examples.graph import (
    INLINE_TOOLS,
    ModelGraph,
    Tools,
    ge_definitions,
    make_ge_pools,
)
from rpc.pools import (
    GETTING_METHODS,
    MUTATING_METHODS,
    AttachmentFunction,
    AttachmentFunctionPool,
    Function,
    FunctionPool,
    default_pool_uuid,
    type_from_annotation,
)

if TYPE_CHECKING:  # never importable at run time: the state annotation must be ignored
    from commitdb.protocols import AttachmentGetting, AttachmentMutating

# --------------------------------------------------------------------------------------------
# A small model, built with the Definitions API, whose types the annotations name

DEFS = Definitions()
NS = DEFS.namespace("T", "0e6a3c52-8a3c-4f5e-9a51-5d2c1f7b9e10")
ITEM = DEFS.create_concept(NS, "Item")
POINT = DEFS.create_structure(NS, "Point", [Field("x", DOUBLE), Field("y", DOUBLE)])
SHADE = DEFS.create_enumeration(NS, "Shade", ["light", "dark"])
PLACE = DEFS.create_attachment(NS, "place", ITEM, POINT)
NAMES = DEFS.create_attachment(NS, "names", ITEM, SetType(STRING))
ITEM_KEY = KeyType(ITEM)

ItemKey = Annotated[Key, ITEM_KEY]
PointValue = Annotated[StructValue, POINT]
ShadeCase = Annotated[EnumCase, SHADE]
Int32 = Annotated[int, INT32]

MATH = FunctionPool("Math", documentation="Arithmetic.")


@MATH.function(inline=True)
def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


@MATH.function
def norm(point: Annotated[Any, POINT], scale: Int32) -> float:
    """The scaled Manhattan norm of a point."""
    return float((abs(point.x) + abs(point.y)) * scale)


@MATH.function(name="label", documentation="Describe an item.")
def describe_item(key: ItemKey, shade: ShadeCase, tags: set[str]) -> str:
    """(replaced by documentation=)"""
    return f"{key.id}:{shade.name}:{','.join(sorted(tags))}"


@MATH.function(parameters={"value": UINT8}, returns=STRING)
def spell(value: int) -> str:
    """Spell a byte."""
    return str(value)


@MATH.function
def broken(a: int) -> int:
    """Return a string although an int is declared."""
    return "oops"  # type: ignore[return-value]


EDIT = AttachmentFunctionPool("Edit", documentation="Edit items.")


@EDIT.function
def place(state: AttachmentMutating, key: ItemKey, point: PointValue) -> None:
    """Place an item."""
    state.set(PLACE, key, point)


@EDIT.function(mutable=False)
def where(state: AttachmentGetting, key: ItemKey) -> PointValue | None:
    """Where an item is (None if nowhere)."""
    found: StructValue | None = state.get(PLACE, key)
    return found


@EDIT.function
def name(state: AttachmentMutating, key: ItemKey, names: set[str]) -> int:
    """Add names to an item; return how many it has."""
    if not state.has(NAMES, key):
        state.set(NAMES, key, set())
    state.union_in_set(NAMES, key, ".", names)
    return len(state.get(NAMES, key))


class ForwardingState:
    """Stands for a server-side proxy: not a CommitMutableState, it only offers the mutation
    API and forwards each call (here to a local state), logging the method names."""

    def __init__(self, inner: CommitMutableState, methods: tuple[str, ...] = MUTATING_METHODS):
        self._inner = inner
        self._methods = methods
        self.calls: list[str] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method not in self._methods:
            raise AttributeError(method)
        target = getattr(self._inner, method)

        def forward(*args: Any) -> Any:
            self.calls.append(method)
            return target(*args)

        return forward


def _item_db() -> tuple[CommitDatabase, CommitMutableState]:
    db = CommitDatabase.create_in_memory(DEFS)
    return db, CommitMutableState(db.initial_state())


# --------------------------------------------------------------------------------------------
# Prototypes from annotations


def test_type_from_annotation_maps_python_types() -> None:
    assert type_from_annotation(int) == INT64
    assert type_from_annotation(bool) == BOOL
    assert type_from_annotation(float) == DOUBLE
    assert type_from_annotation(str) == STRING
    assert type_from_annotation(bytes) == BLOB
    assert type_from_annotation(uuid.UUID) == UUID
    assert type_from_annotation(None) == VOID
    assert type_from_annotation(Any) == ANY
    assert type_from_annotation(list[int]) == VectorType(INT64)
    assert type_from_annotation(set[str]) == SetType(STRING)
    assert type_from_annotation(dict[str, float]) == MapType(STRING, DOUBLE)
    assert type_from_annotation(int | None) == OptionalType(INT64)
    assert type_from_annotation(list[Int32 | None]) == VectorType(OptionalType(INT32))
    assert type_from_annotation(tuple[int, str]) == TupleType([INT64, STRING])
    assert type_from_annotation(int | str) == VariantType([INT64, STRING])
    assert type_from_annotation(ItemKey) == ITEM_KEY
    assert type_from_annotation(dict[ItemKey, PointValue]) == MapType(ITEM_KEY, POINT)
    assert type_from_annotation(POINT.value_class) == POINT
    with pytest.raises(DefinitionError, match=r"Annotated\[Key, KeyType"):
        type_from_annotation(Key)
    with pytest.raises(DefinitionError, match="element type"):
        type_from_annotation(list)
    with pytest.raises(DefinitionError, match="object has no commitdb type"):
        type_from_annotation(object)


def test_decorator_builds_prototypes_from_string_annotations() -> None:
    assert MATH.check("add").prototype == FunctionPrototype(
        "add", [("a", INT64), ("b", INT64)], INT64
    )
    assert list(MATH.check("norm").prototype.parameters) == [
        Parameter("point", POINT),
        Parameter("scale", INT32),
    ]
    assert MATH.check("norm").prototype.return_type == DOUBLE
    label = MATH.check("label")
    assert [(p.name, p.type) for p in label.prototype.parameters] == [
        ("key", ITEM_KEY),
        ("shade", SHADE),
        ("tags", SetType(STRING)),
    ]
    assert label.documentation == "Describe an item."
    assert MATH.query("describe_item") is None
    assert MATH.check("add").documentation == "Return a + b."
    assert MATH.check("add").inline is True
    assert MATH.check("norm").inline is False


def test_every_supported_annotation_in_one_signature() -> None:
    pool = FunctionPool("All")

    @pool.function
    def every(
        i: int,
        f: float,
        s: str,
        b: bool,
        raw: bytes,
        u: uuid.UUID,
        v: list[int],
        st: set[str],
        m: dict[str, float],
        o: int | None,
        a: Any,
        k: ItemKey,
        p: PointValue,
        small: Int32,
    ) -> None:
        """Take everything."""

    assert [p.type for p in every.prototype.parameters] == [
        INT64,
        DOUBLE,
        STRING,
        BOOL,
        BLOB,
        UUID,
        VectorType(INT64),
        SetType(STRING),
        MapType(STRING, DOUBLE),
        OptionalType(INT64),
        ANY,
        ITEM_KEY,
        POINT,
        INT32,
    ]
    assert every.prototype.return_type == VOID


def test_overrides_replace_annotations() -> None:
    spelled = MATH.check("spell")
    assert spelled.prototype.parameters == (Parameter("value", UINT8),)
    assert spelled.prototype.return_type == STRING
    assert spelled(255) == "255"
    with pytest.raises(ValidationError, match=r"uint8 in \[0, 255\].*Math\.spell\(value\)"):
        spelled(256)
    pool = FunctionPool("Lambdas")
    twice = pool.function(name="twice", parameters={"x": INT32}, returns=INT32)(lambda x: 2 * x)
    assert twice(21) == 42
    assert twice.documentation is None


def test_unusable_annotations_are_definition_errors_naming_the_parameter() -> None:
    pool = FunctionPool("Bad")

    def no_annotation(a: int, b) -> int:  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(DefinitionError, match=r"Bad\.no_annotation: parameter 'b' has no annot"):
        pool.function(no_annotation)

    def local_type(a: LocalOnly) -> None:  # type: ignore[name-defined]  # noqa: F821
        """LocalOnly is not a module global."""

    with pytest.raises(DefinitionError, match=r"annotation 'LocalOnly' of parameter 'a'"):
        pool.function(local_type)
    # the override fixes it
    assert pool.function(parameters={"a": POINT})(local_type).prototype.parameters[0].type == POINT

    def bare_key(k: Key) -> None:
        """A key without its key type."""

    with pytest.raises(DefinitionError, match=r"parameter 'k': a key needs its key type"):
        pool.function(bare_key)

    def no_return(a: int):  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(DefinitionError, match=r"Bad\.no_return: the return has no annotation"):
        pool.function(no_return)

    def variadic(*values: int) -> int:
        return sum(values)

    with pytest.raises(DefinitionError, match=r"variadic parameter \*values"):
        pool.function(variadic)
    with pytest.raises(DefinitionError, match=r"unknown parameter\(s\) 'z'"):
        pool.function(parameters={"z": INT64})(lambda a: a)
    with pytest.raises(DefinitionError, match="'b' cannot be void"):
        pool.function(parameters={"a": INT64, "b": VOID}, returns=VOID)(lambda a, b: None)
    assert len(pool) == 1  # only the fixed local_type made it


def test_module_globals_resolve_for_nested_functions() -> None:
    pool = FunctionPool("Nested")

    @pool.function
    def shade_of(k: ItemKey, points: list[PointValue]) -> ShadeCase:
        """Dark when there are points."""
        return SHADE.dark if points else SHADE.light

    assert shade_of.prototype.return_type == SHADE
    assert shade_of(ITEM_KEY.create_key(), [{"x": 1, "y": 2}]) == SHADE.dark


class Scaler:
    """A callable object: its __call__ signature (without self) is the prototype."""

    def __call__(self, value: Int32, factor: int) -> int:
        return value * factor


def _scaled_sum(a: int, b: int, *, scale: int) -> int:
    return (a + b) * scale


def test_decorator_accepts_callable_objects_partials_and_parameter_kinds() -> None:
    pool = FunctionPool("Kinds")
    scaler = pool.function(name="scale")(Scaler())
    assert [p.type for p in scaler.prototype.parameters] == [INT32, INT64]
    assert scaler(3, 4) == 12
    # a keyword-only parameter with a default keeps it: partial-bound ones are not declared
    tripled = pool.function(name="tripled")(functools.partial(_scaled_sum, scale=3))
    assert [p.name for p in tripled.prototype.parameters] == ["a", "b"]
    assert tripled(1, 2) == 9

    @pool.function
    def kinds(a: int, b: int, /, c: int, *, d: int, e: int = 0) -> int:
        """Positional-only parameters go by position, the others by name."""
        return a * 1000 + b * 100 + c * 10 + d + e

    assert [p.name for p in kinds.prototype.parameters] == ["a", "b", "c", "d"]
    assert kinds(1, 2, 3, 4) == kinds(1, 2, d=4, c=3) == 1234


# --------------------------------------------------------------------------------------------
# Calls


def test_calls_validate_and_normalize_arguments() -> None:
    assert MATH.funcs.add(1, 2) == 3
    assert MATH.funcs.add(1, b=2) == 3
    assert MATH.funcs.norm({"x": -1, "y": 2}, 3) == 9.0
    key = ITEM_KEY.create_key()
    # a list becomes the declared set, a case name becomes the enumeration case
    assert MATH.funcs.label(key, "dark", ["b", "a", "b"]) == f"{key.id}:dark:a,b"


def test_wrong_argument_count_names_the_function() -> None:
    with pytest.raises(ValidationError, match=r"2 argument\(s\).*got 3 at Math\.add$"):
        MATH.funcs.add(1, 2, 3)
    with pytest.raises(ValidationError, match=r"got 1 at Math\.add$"):
        MATH.funcs.add(1)
    with pytest.raises(ValidationError, match=r"no argument for 'b'"):
        MATH.funcs.add(a=1)
    with pytest.raises(ValidationError, match=r"unknown keyword argument\(s\) 'c'"):
        MATH.funcs.add(1, 2, c=3)
    with pytest.raises(ValidationError, match=r"'a' by position and by name"):
        MATH.funcs.add(1, a=2, b=3)


def test_wrong_argument_type_names_the_function_and_parameter() -> None:
    with pytest.raises(ValidationError, match=r"expected int64, got str 'x' at Math\.add\(b\)"):
        MATH.funcs.add(1, "x")
    with pytest.raises(ValidationError, match=r"int64.*got bool True at Math\.add\(a\)"):
        MATH.funcs.add(True, 1)
    with pytest.raises(ValidationError, match=r"int32 in .* at Math\.norm\(scale\)"):
        MATH.funcs.norm({"x": 1, "y": 1}, 2**40)
    with pytest.raises(ValidationError, match=r"at Math\.label\(key\)"):
        MATH.funcs.label(uuid.uuid4(), "dark", [])
    with pytest.raises(ValidationError, match=r"a case of T::Shade .* at Math\.label\(shade\)"):
        MATH.funcs.label(ITEM_KEY.create_key(), "grey", [])


def test_wrong_result_type_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"expected int64, got str 'oops' at Math\.broken"):
        MATH.funcs.broken(1)


def test_function_built_directly_from_a_prototype() -> None:
    prototype = FunctionPrototype("mul", [("a", INT64), ("b", INT64)], INT64, "a * b")
    mul = Function(prototype, operator.mul)  # positional-only builtin: called by position
    assert (mul(6, 7), mul.name, mul.documentation, mul.inline) == (42, "mul", "a * b", False)
    with pytest.raises(DefinitionError, match="only an AttachmentFunction can be"):
        Function(FunctionPrototype("m", mutable=True), lambda: None)
    with pytest.raises(DefinitionError, match="is not callable"):
        Function(prototype, 42)  # type: ignore[arg-type]
    # parameters are passed by name, so the order of the implementation's does not matter
    swapped = Function(
        FunctionPrototype("sub", [("a", INT64), ("b", INT64)], INT64), lambda b, a: a - b
    )
    assert swapped(10, 3) == 7


# --------------------------------------------------------------------------------------------
# Pool surface


def test_query_check_funcs_len_dir() -> None:
    assert MATH.query("nope") is None
    assert isinstance(MATH.query("add"), Function)
    with pytest.raises(NotFoundError, match=r"Math has no function 'nope' \(functions: add, "):
        MATH.check("nope")
    assert MATH.funcs["add"] is MATH.check("add")
    assert MATH.funcs.add is MATH.check("add")
    with pytest.raises(AttributeError, match="has no function 'nope'"):
        MATH.funcs.nope  # noqa: B018
    with pytest.raises(KeyError, match="nope"):
        MATH.funcs["nope"]
    names = ["add", "broken", "label", "norm", "spell"]
    assert len(MATH) == len(MATH.funcs) == 5
    assert dir(MATH.funcs) == names
    assert [f.name for f in MATH.functions()] == ["add", "norm", "label", "spell", "broken"]
    assert "add" in MATH and "add" in MATH.funcs and "nope" not in MATH
    assert [f.name for f in MATH.funcs] == [f.name for f in MATH]


def test_pool_uuid_is_a_stable_uuid5_unless_given() -> None:
    assert FunctionPool("X").uuid == FunctionPool("X").uuid == default_pool_uuid("X")
    assert FunctionPool("X").uuid.version == 5
    assert FunctionPool("X").uuid != FunctionPool("Y").uuid
    assert AttachmentFunctionPool("X").uuid == default_pool_uuid("X", attachment=True)
    assert AttachmentFunctionPool("X").uuid != FunctionPool("X").uuid
    given = "dc9740c9-9d1d-4c1e-9caa-4c8843b91e82"
    assert FunctionPool("X", given).uuid == uuid.UUID(given)
    assert FunctionPool("X", documentation="doc").documentation == "doc"


def test_declaration() -> None:
    declaration = MATH.declaration()
    assert isinstance(declaration, PoolDeclaration)
    assert (declaration.uuid, declaration.name, declaration.documentation) == (
        MATH.uuid,
        "Math",
        "Arithmetic.",
    )
    assert declaration.attachment is False
    assert list(declaration.functions) == ["add", "norm", "label", "spell", "broken"]
    assert declaration.check("label").documentation == "Describe an item."
    edit = EDIT.declaration()
    assert edit.attachment is True and edit.kind == "attachment_function_pool"
    assert {n: f.mutable for n, f in edit.functions.items()} == {
        "place": True,
        "where": False,
        "name": True,
    }
    # a declaration is all a pool needs to be rebuilt against other implementations
    implementations = {f.name: f.implementation for f in MATH.functions()}
    assert FunctionPool.bind(declaration, implementations).declaration() == declaration


def test_add_refuses_duplicates_and_the_wrong_kind() -> None:
    pool = FunctionPool("P")
    pool.add(Function(FunctionPrototype("f", [], INT64), lambda: 1))
    with pytest.raises(DefinitionError, match="already has a function 'f'"):
        pool.add(Function(FunctionPrototype("f", [], INT64), lambda: 2))
    attachment_function = AttachmentFunction(FunctionPrototype("g"), lambda state: None)
    with pytest.raises(DefinitionError, match="function_pool P holds Function objects"):
        pool.add(attachment_function)
    with pytest.raises(DefinitionError, match="holds AttachmentFunction objects, not Function"):
        AttachmentFunctionPool("Q").add(Function(FunctionPrototype("f"), lambda: None))
    assert AttachmentFunctionPool("Q").add(attachment_function) is attachment_function


# --------------------------------------------------------------------------------------------
# Attachment function pools


def test_attachment_functions_on_a_local_mutable_state() -> None:
    assert isinstance(EDIT.check("place"), AttachmentFunction)
    assert EDIT.check("place").mutable and not EDIT.check("where").mutable
    assert [p.name for p in EDIT.check("place").prototype.parameters] == ["key", "point"]
    assert EDIT.check("where").prototype.return_type == OptionalType(POINT)
    db, ms = _item_db()
    key = ITEM_KEY.create_key()
    assert EDIT.funcs.where(ms, key) is None
    EDIT.funcs.place(ms, key, {"x": 1, "y": 2})
    assert EDIT.funcs.name(ms, key, ["a", "b"]) == 2
    assert EDIT.funcs.name(ms, key, {"b", "c"}) == 3
    assert EDIT.funcs.where(ms, key) == POINT(x=1.0, y=2.0)
    commit_id = db.commit_mutations("edit", ms)
    state = db.state(commit_id)
    assert state.get(PLACE, key) == POINT(x=1.0, y=2.0)
    assert state.get(NAMES, key) == {"a", "b", "c"}
    # a read-only function accepts the read-only committed state
    assert EDIT.funcs.where(state, key) == POINT(x=1.0, y=2.0)


def test_attachment_state_must_offer_the_needed_api() -> None:
    db, ms = _item_db()
    key = ITEM_KEY.create_key()
    EDIT.funcs.place(ms, key, {"x": 0, "y": 0})
    state: CommitState = db.state(db.commit_mutations("one", ms))
    expected = r"Edit\.place is a mutable attachment function.* CommitState without set, diff"
    with pytest.raises(TypeError, match=expected):
        EDIT.funcs.place(state, key, {"x": 1, "y": 1})
    with pytest.raises(TypeError, match=r"Edit\.where is a read-only .* got object without get"):
        EDIT.funcs.where(object(), key)
    with pytest.raises(TypeError, match=r"Edit\.place needs the attachment state first"):
        EDIT.funcs.place()
    with pytest.raises(TypeError, match="without insert_in_xarray"):
        EDIT.funcs.place(ForwardingState(ms, MUTATING_METHODS[:-3]), key, {"x": 1, "y": 1})
    # the arguments after the state are validated like any other function's
    with pytest.raises(ValidationError, match=r"got 1 at Edit\.place$"):
        EDIT.funcs.place(CommitMutableState(state), key)


def test_same_body_through_a_forwarding_proxy() -> None:
    db, ms = _item_db()
    proxy = ForwardingState(ms)
    key = ITEM_KEY.create_key()
    EDIT.funcs.place(proxy, key, POINT(x=3, y=4))
    assert EDIT.funcs.name(proxy, key, ["n"]) == 1
    assert EDIT.funcs.where(ForwardingState(ms, GETTING_METHODS), key) == POINT(x=3, y=4)
    assert proxy.calls == ["set", "has", "set", "union_in_set", "get"]
    state = db.state(db.commit_mutations("via proxy", ms))
    assert (state.get(PLACE, key), state.get(NAMES, key)) == (POINT(x=3, y=4), {"n"})


def test_attachment_decorator_needs_a_state_parameter() -> None:
    pool = AttachmentFunctionPool("NoState")
    with pytest.raises(DefinitionError, match="takes the attachment state as its first"):
        pool.function(lambda *, key: None)
    with pytest.raises(DefinitionError, match="takes the attachment state as its first"):
        pool.function(parameters={}, returns=VOID)(lambda: None)
    only_state = pool.function(returns=VOID)(lambda state: None)
    assert only_state.prototype.parameters == () and only_state.mutable


# --------------------------------------------------------------------------------------------
# Binding to the Ge DSM declarations


@pytest.fixture(scope="module")
def ge_defs() -> Definitions:
    return ge_definitions()


def _declaration(defs: Definitions, name: str) -> PoolDeclaration:
    found = defs.query_pool(name)
    assert found is not None
    return found


def test_ge_pools_bind_every_declared_function(ge_defs: Definitions) -> None:
    tools, pools = make_ge_pools(ge_defs)
    assert [p.name for p in pools] == ["ModelGraph", "ModelIntegrity", "ModelSelection"]
    assert all(isinstance(p, AttachmentFunctionPool) for p in pools)
    for pool in [tools, *pools]:
        declared = _declaration(ge_defs, pool.name)
        assert pool.declaration() == declared
        assert (pool.uuid, pool.documentation) == (declared.uuid, declared.documentation)
        assert [f.name for f in pool.functions()] == list(declared.functions)
        for function in pool.functions():
            assert function.prototype is declared.functions[function.name]
            assert function.documentation == declared.functions[function.name].documentation
    assert (len(tools), [len(p) for p in pools]) == (4, [26, 4, 18])
    assert {f.name for f in tools.functions() if f.inline} == set(INLINE_TOOLS)
    assert not any(f.inline for p in pools for f in p.functions())
    selection = pools[2]
    assert not selection.check("selectedVertices").mutable
    assert selection.check("deleteSelection").mutable


def test_bind_reports_a_missing_implementation(ge_defs: Definitions) -> None:
    declaration = _declaration(ge_defs, "ModelGraph")
    impl = ModelGraph(ge_defs)
    partial = {n: getattr(impl, n) for n in declaration.functions if n != "newVertex"}
    with pytest.raises(DefinitionError, match=r"^ModelGraph\.newVertex has no implementation$"):
        AttachmentFunctionPool.bind(declaration, partial)


def test_bind_reports_a_mistyped_implementation(ge_defs: Definitions) -> None:
    declaration = _declaration(ge_defs, "ModelGraph")
    impl = ModelGraph(ge_defs)
    impls: dict[str, Callable[..., Any]] = {n: getattr(impl, n) for n in declaration.functions}

    def new_vertex(state: Any, graph_key: Key, value: int, position: Any) -> Key:
        return impl.newVertex(state, graph_key, value, position)

    impls["newVertex"] = new_vertex
    with pytest.raises(DefinitionError) as info:
        AttachmentFunctionPool.bind(declaration, impls)
    message = str(info.value)
    assert "ModelGraph.newVertex: the implementation cannot take the declared parameters" in message
    assert "declared newVertex(state, graphKey, value, position)" in message
    assert "found new_vertex(state: 'Any', graph_key: 'Key', value: 'int'" in message
    assert "no parameter named 'graphKey'" in message

    impls["newVertex"] = lambda state, graphKey: None
    with pytest.raises(DefinitionError, match=r"newVertex.*found <lambda>\(state, graphKey\)"):
        AttachmentFunctionPool.bind(declaration, impls)
    impls["newVertex"] = lambda: None
    with pytest.raises(DefinitionError, match="no parameter for the attachment state"):
        AttachmentFunctionPool.bind(declaration, impls)
    # *args accepts everything by position
    impls["newVertex"] = lambda state, *args: impl.newVertex(state, *args)
    assert AttachmentFunctionPool.bind(declaration, impls).check("newVertex")


def test_bind_refuses_extra_implementations_unless_allowed(ge_defs: Definitions) -> None:
    declaration = _declaration(ge_defs, "Tools")
    impls: dict[str, Callable[..., Any]] = {n: getattr(Tools, n) for n in declaration.functions}
    impls["randomWords"] = Tools.randomWord
    with pytest.raises(DefinitionError, match="Tools declares no function 'randomWords'"):
        FunctionPool.bind(declaration, impls)
    pool = FunctionPool.bind(declaration, impls, allow_extra=True)
    assert pool.query("randomWords") is None and len(pool) == 4

    class WithExtra(Tools):
        def multiply(self, a: int, b: int) -> int:
            """Not declared."""
            return a * b

    with pytest.raises(DefinitionError, match="declares no function 'multiply'"):
        FunctionPool.bind(declaration, WithExtra())
    # every problem is reported at once
    del impls["add"]
    impls["multiply"] = operator.mul
    with pytest.raises(DefinitionError, match=r"add has no implementation; .*'multiply'"):
        FunctionPool.bind(declaration, impls)


def test_bind_checks_the_pool_kind_and_inline_names(ge_defs: Definitions) -> None:
    expected = r"ModelGraph is .* attachment_function_pool: bind it with AttachmentFunctionPool"
    with pytest.raises(DefinitionError, match=expected):
        FunctionPool.bind(_declaration(ge_defs, "ModelGraph"), ModelGraph(ge_defs))
    expected = r"Tools is declared as function_pool: bind it with FunctionPool\.bind, not Att"
    with pytest.raises(DefinitionError, match=expected):
        AttachmentFunctionPool.bind(_declaration(ge_defs, "Tools"), Tools())
    with pytest.raises(DefinitionError, match=r"Tools\.sub is named inline but is not declared"):
        FunctionPool.bind(_declaration(ge_defs, "Tools"), Tools(), inline=["add", "sub"])
    everything = FunctionPool.bind(_declaration(ge_defs, "Tools"), Tools(), inline=True)
    assert all(f.inline for f in everything.functions())
    builtin = {"add": operator.add, "isEven": Tools.isEven, "isGreater": operator.gt}
    pool = FunctionPool.bind(
        _declaration(ge_defs, "Tools"), {**builtin, "randomWord": Tools.randomWord}
    )
    assert (pool.funcs.add(2, 3), pool.funcs.isGreater(3, 2)) == (5, True)


# --------------------------------------------------------------------------------------------
# The Ge implementation on a local mutable state


class Ge:
    """A Ge database, its pools, attachments and one graph key."""

    def __init__(self, defs: Definitions) -> None:
        self.defs = defs
        self.db = CommitDatabase.create_in_memory(defs)
        self.tools, (self.graph, self.integrity, self.selection) = make_ge_pools(defs)
        self.topology = defs.check_attachment("Graph::Graph.topology")
        self.tags = defs.check_attachment("Graph::Graph.tags")
        self.comments = defs.check_attachment("Graph::Graph.comments")
        self.selected = defs.check_attachment("Graph::Graph.selection")
        self.description = defs.check_attachment("Graph::Graph.description")
        self.render = defs.check_attachment("Graph::Vertex.render2DAttributes")
        self.visual = defs.check_attachment("Graph::Vertex.visualAttributes")
        self.edge = defs.check_attachment("Graph::Edge.topology")
        self.position = _struct(defs, "Graph::Position")
        self.color = _struct(defs, "Graph::Color")
        self.rect = _struct(defs, "Graph::Rectangle")
        self.gk = self.topology.create_key()
        self.head: CommitState = self.db.initial_state()

    def mutable(self) -> CommitMutableState:
        return CommitMutableState(self.head)

    def commit(self, ms: CommitMutableState, label: str = "edit") -> CommitState:
        self.head = self.db.state(self.db.commit_mutations(label, ms))
        return self.head

    def get(self, attachment: Attachment, key: Key) -> Any:
        return self.head.get(attachment, key)

    def graph_sets(self) -> tuple[set[Key], set[Key]]:
        topology = self.get(self.topology, self.gk)
        return set(topology.vertexKeys), set(topology.edgeKeys)

    def selection_sets(self) -> tuple[set[Key], set[Key]]:
        selection = self.get(self.selected, self.gk)
        return set(selection.vertexKeys), set(selection.edgeKeys)

    def square(self, ms: CommitMutableState) -> tuple[list[Key], list[Key]]:
        """Four vertices (values 1..4) and the four edges of a square."""
        g = self.graph.funcs
        corners = [(0, 0), (10, 0), (10, 10), (0, 10)]
        v = [g.newVertex(ms, self.gk, i + 1, {"x": x, "y": y}) for i, (x, y) in enumerate(corners)]
        e = [g.newEdge(ms, self.gk, v[i], v[(i + 1) % 4]) for i in range(4)]
        return v, e


def _struct(defs: Definitions, name: str) -> StructureType:
    t = defs.check_type(name)
    assert isinstance(t, StructureType)
    return t


@pytest.fixture
def ge(ge_defs: Definitions) -> Iterator[Ge]:
    yield Ge(ge_defs)


def test_ge_builds_a_graph(ge: Ge) -> None:
    g, s = ge.graph.funcs, ge.selection.funcs
    ms = ge.mutable()
    v, e = ge.square(ms)
    assert all(k.concept.name == "Vertex" for k in v) and all(k.concept.name == "Edge" for k in e)
    rv = g.randomVertex(ms, ge.gk, {"x": 100, "y": 100, "w": 50, "h": 20})
    re = g.randomEdge(ms, ge.gk)
    g.appendGraphComment(ms, ge.gk, "first")
    g.appendGraphComment(ms, ge.gk, "third")
    g.randomComment(ms, ge.gk)
    g.setGraphTag(ms, ge.gk, "color", "red")
    g.setGraphTag(ms, ge.gk, "shape", "square")
    g.randomTag(ms, ge.gk)
    g.setGraphLabel(ms, ge.gk, "My graph")
    s.setSelectionToVertex(ms, ge.gk, v[0])
    s.combineSelectionWithVertex(ms, ge.gk, v[1], True)
    s.combineSelectionWithEdge(ms, ge.gk, e[0], True)
    g.noArgs(ms)
    ge.commit(ms, "build")

    vertices, edges = ge.graph_sets()
    assert vertices == {*v, rv} and edges == {*e, re}
    assert ge.get(ge.edge, e[1]) == ge.edge.document_type.check({"vaKey": v[1], "vbKey": v[2]})
    rend = ge.get(ge.render, v[2])
    assert (rend.position.x, rend.position.y) == (10.0, 10.0)
    assert ge.get(ge.visual, v[3]).value == 4
    random_position = ge.get(ge.render, rv).position
    assert 100 <= random_position.x <= 150 and 100 <= random_position.y <= 120
    ends = ge.get(ge.edge, re)
    assert ends.vaKey != ends.vbKey and {ends.vaKey, ends.vbKey} <= vertices
    comments = ge.get(ge.comments, ge.gk)
    assert isinstance(comments, XArray) and comments.to_list()[:2] == ["first", "third"]
    assert len(comments) == 3 and comments.to_list()[2].endswith(".")
    tags = ge.get(ge.tags, ge.gk)
    assert (tags["color"], tags["shape"], len(tags)) == ("red", "square", 3)
    assert ge.get(ge.description, ge.gk).name == "My graph"
    assert ge.selection_sets() == ({v[0], v[1]}, {e[0]})
    assert s.selectedVertices(ge.head, ge.gk) == {v[0], v[1]}  # read-only: a CommitState
    assert s.selectedEdges(ge.head, ge.gk) == {e[0]}


def test_ge_comments_and_tags_edits(ge: Ge) -> None:
    g = ge.graph.funcs
    ms = ge.mutable()
    g.appendGraphComment(ms, ge.gk, "b")
    g.appendGraphComment(ms, ge.gk, "d")
    first, last = ms.get(ge.comments, ge.gk).live_positions()
    g.insertGraphComment(ms, ge.gk, first, "a")
    g.insertGraphComment(ms, ge.gk, last, "c")
    g.insertGraphComment(ms, ge.gk, END, "e")
    g.updateGraphComment(ms, ge.gk, last, "D")
    g.removeGraphComment(ms, ge.gk, first)
    for function in (g.removeGraphComment, g.updateGraphComment):
        args = (ms, ge.gk, first) if function is g.removeGraphComment else (ms, ge.gk, first, "x")
        with pytest.raises(ValueError, match="no comment at position"):
            function(*args)
    g.setGraphTag(ms, ge.gk, "k1", "v1")
    g.setGraphTag(ms, ge.gk, "k2", "v2")
    g.setGraphTag(ms, ge.gk, "k3", "v3")
    g.updateGraphTag(ms, ge.gk, "k1", "V1")
    g.updateGraphTag(ms, ge.gk, "missing", "ignored")
    g.unsetGraphTags(ms, ge.gk, ["k2", "k4"])
    g.setGraphLabel(ms, ge.gk, "one")
    g.setGraphLabel(ms, ge.gk, "two")
    ge.commit(ms)
    assert ge.get(ge.comments, ge.gk).to_list() == ["a", "c", "D", "e"]
    assert ge.get(ge.tags, ge.gk) == {"k1": "V1", "k3": "v3"}
    assert ge.get(ge.description, ge.gk).name == "two"


def test_ge_vertex_edits(ge: Ge) -> None:
    g, s = ge.graph.funcs, ge.selection.funcs
    ms = ge.mutable()
    v, _ = ge.square(ms)
    g.moveVertices(ms, {v[0], v[1], ge.render.create_key()}, {"x": 1.5, "y": -2})
    g.setVertexColor(ms, v[2], {"red": 1, "green": 0.5, "blue": 0})
    g.setVertexPosition(ms, v[3], {"x": 7, "y": 8})
    g.setVertexValue(ms, v[3], 40)
    lonely = ge.render.create_key()  # no attributes yet: the setters create them
    g.setVertexValue(ms, lonely, 5)
    g.setVertexPosition(ms, lonely, {"x": 1, "y": 1})
    s.setSelection(ms, ge.gk, [v[0], v[3]], [])
    s.incrementVertexValue(ms, ge.gk, 100)
    ge.commit(ms)
    position = ge.get(ge.render, v[0]).position
    assert (position.x, position.y) == (1.5, -2.0)
    assert ge.get(ge.render, v[1]).position.x == 11.5
    assert ge.get(ge.visual, v[2]).color == ge.color(red=1, green=0.5, blue=0)
    assert ge.get(ge.render, v[3]).position == ge.position(x=7, y=8)
    assert [ge.get(ge.visual, k).value for k in v] == [101, 2, 3, 140]
    assert ge.get(ge.visual, lonely).value == 5 and ge.head.has(ge.render, lonely)
    ms = ge.mutable()
    s.setSelection(ms, ge.gk, [v[0]], [])
    with pytest.raises(ValueError, match="overflows int64"):
        s.incrementVertexValue(ms, ge.gk, INT64.high)


def test_ge_selection_functions(ge: Ge) -> None:
    s = ge.selection.funcs
    ms = ge.mutable()
    v, e = ge.square(ms)
    s.selectAllVertices(ms, ge.gk)
    assert s.selectedVertices(ms, ge.gk) == set(v) and s.selectedEdges(ms, ge.gk) == set()
    s.selectAllEdges(ms, ge.gk)
    assert s.selectedEdges(ms, ge.gk) == set(e)
    s.deselectAllVertices(ms, ge.gk)
    assert s.selectedVertices(ms, ge.gk) == set()
    s.deselectAllEdges(ms, ge.gk)
    s.selectAll(ms, ge.gk)
    assert (s.selectedVertices(ms, ge.gk), s.selectedEdges(ms, ge.gk)) == (set(v), set(e))
    s.deselectAll(ms, ge.gk)
    s.setSelection(ms, ge.gk, {v[0]}, {e[0], e[1]})
    s.invertVerticesSelection(ms, ge.gk)
    assert s.selectedVertices(ms, ge.gk) == {v[1], v[2], v[3]}
    s.invertEdgesSelection(ms, ge.gk)
    assert s.selectedEdges(ms, ge.gk) == {e[2], e[3]}
    s.invertSelection(ms, ge.gk)
    assert (s.selectedVertices(ms, ge.gk), s.selectedEdges(ms, ge.gk)) == ({v[0]}, {e[0], e[1]})
    s.setSelectionToEdge(ms, ge.gk, e[3])  # "reduce the edge selection": vertices stay
    assert (s.selectedVertices(ms, ge.gk), s.selectedEdges(ms, ge.gk)) == ({v[0]}, {e[3]})
    s.combineSelectionWithEdge(ms, ge.gk, e[3], False)
    s.combineSelectionWithVertex(ms, ge.gk, v[2], True)
    s.setSelectionToVertex(ms, ge.gk, v[1])  # "reduce the selection": edges go too
    s.combineSelectionWithEdge(ms, ge.gk, e[1], True)
    s.combineSelectionWithVertex(ms, ge.gk, v[1], False)
    ge.commit(ms)
    assert ge.selection_sets() == (set(), {e[1]})


def test_ge_delete_selection_removes_vertices_and_their_edges(ge: Ge) -> None:
    s = ge.selection.funcs
    ms = ge.mutable()
    v, e = ge.square(ms)
    s.setSelection(ms, ge.gk, {v[0]}, {e[2]})
    s.deleteSelection(ms, ge.gk)
    ge.commit(ms)
    assert ge.graph_sets() == ({v[1], v[2], v[3]}, {e[1]})
    assert ge.selection_sets() == (set(), set())
    assert ge.head.has(ge.render, v[0])  # documents stay; the topology no longer lists them


def test_ge_clear_graph(ge: Ge) -> None:
    ms = ge.mutable()
    ge.square(ms)
    ge.selection.funcs.selectAll(ms, ge.gk)
    ge.graph.funcs.appendGraphComment(ms, ge.gk, "kept")
    ge.graph.funcs.clearGraph(ms, ge.gk)
    ge.commit(ms)
    assert ge.graph_sets() == (set(), set()) and ge.selection_sets() == (set(), set())
    assert ge.get(ge.comments, ge.gk).to_list() == ["kept"]


def test_ge_bugged_delete_then_restore_by_deleting(ge: Ge) -> None:
    ms = ge.mutable()
    v, e = ge.square(ms)
    ge.selection.funcs.setSelection(ms, ge.gk, {v[0]}, {e[1]})
    ge.graph.funcs.deleteSelectionBugged(ms, ge.gk)
    ge.commit(ms, "bugged")
    assert ge.graph_sets() == ({v[1], v[2], v[3]}, set(e))  # e[0] and e[3] now dangle
    assert ge.selection_sets() == (set(), {e[1]})
    ms = ge.mutable()
    ge.integrity.funcs.restoreIntegrityByDeleting(ms, ge.gk)
    ge.commit(ms, "repair")
    assert ge.graph_sets() == ({v[1], v[2], v[3]}, {e[1], e[2]})
    assert ge.selection_sets() == (set(), {e[1]})


def test_ge_bugged_delete_then_restore_by_restoring(ge: Ge) -> None:
    ms = ge.mutable()
    v, e = ge.square(ms)
    ge.selection.funcs.setSelection(ms, ge.gk, {v[0], v[1]}, set())
    ge.graph.funcs.deleteSelectionBugged(ms, ge.gk)
    ge.integrity.funcs.restoreIntegrityByRestoring(ms, ge.gk)
    ge.commit(ms)
    assert ge.graph_sets() == (set(v), set(e))


def test_ge_missing_vertex_then_restore(ge: Ge) -> None:
    ms = ge.mutable()
    ge.graph.funcs.graphWithMissingVertex(ms, ge.gk)
    ge.commit(ms)
    vertices, edges = ge.graph_sets()
    assert (len(vertices), len(edges)) == (2, 4)
    dangling = {k for e in edges for k in (ge.get(ge.edge, e).vaKey, ge.get(ge.edge, e).vbKey)}
    assert len(dangling - vertices) == 2
    ms = ge.mutable()
    ge.integrity.funcs.restoreIntegrityByRestoring(ms, ge.gk)
    ge.commit(ms)
    assert ge.graph_sets() == (dangling, edges)


def test_ge_missing_properties_then_restore_by_creating(ge: Ge) -> None:
    ms = ge.mutable()
    ge.graph.funcs.graphWithMissingVertexProperties(ms, ge.gk)
    ge.commit(ms)
    vertices, edges = ge.graph_sets()
    bare = {k for k in vertices if not ge.head.has(ge.visual, k)}
    assert (len(vertices), len(edges), len(bare)) == (7, 4, 4)
    ms = ge.mutable()
    ge.selection.funcs.selectAll(ms, ge.gk)
    ge.integrity.funcs.restoreIntegrityByCreating(ms, ge.gk)
    ge.commit(ms)
    assert ge.graph_sets() == (vertices, edges)
    assert all(ge.head.has(ge.visual, k) and ge.head.has(ge.render, k) for k in vertices)
    assert sorted(ge.get(ge.visual, k).value for k in bare) == [4, 5, 6, 7]  # after 1..3
    assert ge.selection_sets() == (vertices, edges)


def test_ge_missing_properties_then_restore_by_deleting(ge: Ge) -> None:
    ms = ge.mutable()
    ge.graph.funcs.graphWithMissingVertexProperties(ms, ge.gk)
    ge.selection.funcs.selectAll(ms, ge.gk)
    ge.integrity.funcs.restoreIntegrityByDeleting(ms, ge.gk)
    ge.commit(ms)
    vertices, edges = ge.graph_sets()
    assert len(vertices) == 3 and edges == set()
    assert ge.selection_sets() == (vertices, set())


def test_ge_restore_vertex_selection(ge: Ge) -> None:
    ms = ge.mutable()
    ge.graph.funcs.graphWithMissingVertexProperties(ms, ge.gk)
    ge.selection.funcs.selectAllVertices(ms, ge.gk)
    ge.integrity.funcs.restoreVertexSelection(ms, ge.gk)
    ge.commit(ms)
    vertices, _ = ge.graph_sets()
    assert all(ge.head.has(ge.render, k) and ge.head.has(ge.visual, k) for k in vertices)


def test_ge_graph_with_error_raises_after_mutating(ge: Ge) -> None:
    ms = ge.mutable()
    with pytest.raises(ValueError, match="graphWithError"):
        ge.graph.funcs.graphWithError(ms, ge.gk)
    assert len(ms.get(ge.topology, ge.gk).vertexKeys) == 2  # the partial work is there
    assert len(ms.mutations()) > 0
    assert not ge.mutable().has(ge.topology, ge.gk)  # the client discards it: nothing stays


def _graph_shape(ge: Ge) -> tuple[list[tuple[float, float, int]], list[tuple[int, int]]]:
    """The graph independent of its keys: sorted vertex (x, y, value), edges as index pairs."""
    vertices, edges = ge.graph_sets()
    rows: dict[Key, tuple[float, float, int]] = {}
    for k in vertices:
        position, value = ge.get(ge.render, k).position, ge.get(ge.visual, k).value
        rows[k] = (position.x, position.y, value)
    order = sorted(rows, key=rows.__getitem__)
    index = {k: i for i, k in enumerate(order)}
    pairs: list[tuple[int, int]] = []
    for e in edges:
        a, b = index[ge.get(ge.edge, e).vaKey], index[ge.get(ge.edge, e).vbKey]
        pairs.append((min(a, b), max(a, b)))
    return [rows[k] for k in order], sorted(pairs)


def test_ge_random_functions_are_reproducible(ge_defs: Definitions) -> None:
    shapes = []
    graph_key = Ge(ge_defs).gk
    for _ in range(2):
        ge = Ge(ge_defs)
        ge.gk = graph_key
        ms = ge.mutable()
        rect = {"x": 0, "y": 0, "w": 640, "h": 480}
        ge.graph.funcs.randomGraph(ms, ge.gk, 12, 20, rect)
        ge.graph.funcs.randomVertex(ms, ge.gk, rect)
        ge.graph.funcs.randomEdge(ms, ge.gk)
        ge.graph.funcs.randomComment(ms, ge.gk)
        ge.graph.funcs.randomTag(ms, ge.gk)
        ge.commit(ms)
        vertices, pairs = _graph_shape(ge)
        assert len(vertices) == 13 and len(pairs) == 21 == len(set(pairs))
        assert all(0 <= x <= 640 and 0 <= y <= 480 for x, y, _ in vertices)
        shapes.append(
            (vertices, pairs, ge.get(ge.comments, ge.gk).to_list(), ge.get(ge.tags, ge.gk))
        )
    assert shapes[0] == shapes[1]
    other = Ge(ge_defs)
    ms = other.mutable()
    other.graph.funcs.randomGraph(ms, other.gk, 12, 20, {"x": 0, "y": 0, "w": 640, "h": 480})
    other.commit(ms)
    assert _graph_shape(other)[0] != shapes[0][0]  # another graph key, another graph


def test_ge_random_graph_replaces_and_checks_counts(ge: Ge) -> None:
    ms = ge.mutable()
    old, _ = ge.square(ms)
    ge.selection.funcs.selectAll(ms, ge.gk)
    rect = {"x": 0, "y": 0, "w": 1, "h": 1}
    with pytest.raises(ValueError, match="7 edges cannot join 4 vertices"):
        ge.graph.funcs.randomGraph(ms, ge.gk, 4, 7, rect)
    with pytest.raises(ValueError, match="vertexCount is 10001"):
        ge.graph.funcs.randomGraph(ms, ge.gk, 10_001, 0, rect)
    ge.graph.funcs.randomGraph(ms, ge.gk, 4, 6, rect)
    ge.commit(ms)
    vertices, edges = ge.graph_sets()
    assert len(vertices) == 4 and not vertices & set(old) and len(edges) == 6
    assert ge.selection_sets() == (set(), set())


def test_ge_random_edge_until_complete(ge: Ge) -> None:
    ms = ge.mutable()
    g = ge.graph.funcs
    for i in range(4):
        g.newVertex(ms, ge.gk, i, {"x": i, "y": 0})
    made = {g.randomEdge(ms, ge.gk) for _ in range(6)}
    assert len(made) == 6
    with pytest.raises(ValueError, match=r"randomEdge: the graph is complete \(4 vertices"):
        g.randomEdge(ms, ge.gk)


def test_ge_killer_makes_many_mutations(ge: Ge) -> None:
    ms = ge.mutable()
    ge.graph.funcs.killer(ms, ge.gk, 30)
    assert len(ms.mutations()) > 30 * 20
    ge.commit(ms, "killer")
    vertices, edges = ge.graph_sets()
    assert (len(vertices), len(edges)) == (30, 29)
    assert {ge.get(ge.visual, k).value for k in vertices} == {9}


def test_ge_functions_through_a_forwarding_proxy(ge: Ge) -> None:
    ms = ge.mutable()
    proxy = ForwardingState(ms)
    vertex = ge.graph.funcs.newVertex(proxy, ge.gk, 7, {"x": 1, "y": 1})
    ge.selection.funcs.setSelectionToVertex(proxy, ge.gk, vertex)
    assert ge.selection.funcs.selectedVertices(ForwardingState(ms, GETTING_METHODS), ge.gk) == {
        vertex
    }
    assert set(proxy.calls) <= set(MUTATING_METHODS) and "union_in_set" in proxy.calls
    ge.commit(ms)
    assert ge.graph_sets() == ({vertex}, set()) and ge.selection_sets() == ({vertex}, set())


def test_ge_tools(ge: Ge) -> None:
    t = ge.tools.funcs
    assert t.add(2, 40) == 42
    with pytest.raises(ValidationError, match=r"int64 in .*at Tools\.add\(\) result"):
        t.add(INT64.high, 1)
    assert (t.isEven(4), t.isEven(-3)) == (True, False)
    assert t.isGreater(3, 2) and not t.isGreater(2, 2.5) and t.isGreater("b", "a")
    with pytest.raises(TypeError, match="isGreater cannot order int 1 and str 'a'"):
        t.isGreater(1, "a")
    assert len(t.randomWord(12)) == 12 and t.randomWord(12) == t.randomWord(12)
    assert t.randomWord(12).isalpha() and t.randomWord(0) == ""
    with pytest.raises(ValidationError, match=r"uint64.*Tools\.randomWord\(size\)"):
        t.randomWord(-1)
    with pytest.raises(ValueError, match="size is 2000000"):
        t.randomWord(2_000_000)


def test_ge_read_only_functions_take_a_read_only_state(ge: Ge) -> None:
    selected = ge.selection.check("selectedVertices")
    assert selected(ge.head, ge.gk) == set()  # the initial, read-only state
    with pytest.raises(TypeError, match="must be an attachment mutating state"):
        ge.selection.funcs.selectAll(ge.head, ge.gk)
