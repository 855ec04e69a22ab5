"""The Definitions registry: builder API, conflicts, identity, extend/copy/extract, lookups."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from commitdb.codec import decode, encode
from commitdb.definitions import Definitions, ExtendInfo, is_valid_identifier
from commitdb.errors import (
    DefinitionConflictError,
    DefinitionError,
    UnknownAttachmentError,
    ValidationError,
)
from commitdb.prototypes import FunctionPrototype, Parameter, PoolDeclaration
from commitdb.types import (
    ANY_CONCEPT,
    DOUBLE,
    INT64,
    STRING,
    VOID,
    ClubType,
    ConceptType,
    Field,
    KeyType,
    MapType,
    Namespace,
    OptionalType,
    StructureType,
    VectorType,
)
from commitdb.values import Key

NS = "a3c1e6b0-8f1d-4e2a-9b3c-5d6e7f809112"
LIB = "b4d2f7c1-9a2e-4f3b-8c4d-6e7f80911223"


def build(*, doc: str | None = None, with_membership: bool = True) -> Definitions:
    """A registry: concepts User, Admin is a User, Doc; club Owner {User, Doc}; enum Role;
    struct Profile; attachments User.profile, Owner.note, any_concept.tag."""
    d = Definitions()
    ns = d.namespace("App", NS)
    user = d.create_concept(ns, "User", documentation=doc)
    d.create_concept(ns, "Admin", parent=user)
    document = d.create_concept(ns, "Doc")
    owner = d.create_club(ns, "Owner", documentation=doc)
    if with_membership:
        d.create_membership(owner, user)
        d.create_membership(owner, document)
    role = d.create_enumeration(ns, "Role", ["guest", "member"], documentation=doc)
    profile = d.create_structure(
        ns,
        "Profile",
        [Field("name", STRING, documentation=doc), Field("role", role, "member")],
        documentation=doc,
    )
    d.create_attachment(ns, "profile", user, profile, documentation=doc)
    d.create_attachment(ns, "note", owner, STRING)
    d.create_attachment(ns, "tag", ANY_CONCEPT, STRING)
    return d


def concept(d: Definitions, name: str) -> ConceptType:
    t = d.check_type(name)
    assert isinstance(t, ConceptType)
    return t


def club(d: Definitions, name: str) -> ClubType:
    t = d.check_type(name)
    assert isinstance(t, ClubType)
    return t


def members(d: Definitions, name: str) -> set[str]:
    return {m.name for m in club(d, name).members}


def test_builder_api_and_lookups() -> None:
    d = build()
    user = d.check_type("App::User")
    assert isinstance(user, ConceptType) and user.qualified_name == "App::User"
    admin = d.check_type("App::Admin")
    assert isinstance(admin, ConceptType) and admin.parent is user
    assert d.query_type("Admin") is admin  # unique unqualified name
    assert d.query_type(user.runtime_id) is user
    assert d.query_type("App::Nope") is None and d.query_type(uuid.uuid4()) is None
    with pytest.raises(DefinitionError, match="unknown type"):
        d.check_type("App::Nope")
    assert [t.name for t in d.types()] == ["User", "Admin", "Doc", "Owner", "Role", "Profile"]
    assert [c.name for c in d.concepts()] == ["User", "Admin", "Doc"]
    assert [c.name for c in d.clubs()] == ["Owner"]
    assert [e.name for e in d.enumerations()] == ["Role"]
    assert [s.name for s in d.structures()] == ["Profile"]
    assert list(d) == d.types()
    assert [n.name for n in d.namespaces()] == ["App"]
    assert d.concept_members(user) == [user, admin]
    assert user in d and d.check_type("App::Profile") in d
    assert ConceptType(Namespace("App", NS), "Ghost") not in d
    assert "App::User" not in d  # only types and attachments are members


def test_attachment_lookups() -> None:
    d = build()
    profile = d.check_attachment("App::User.profile")
    assert profile.identifier == "App::User.profile"
    assert d.query_attachment(profile.runtime_id) is profile
    assert d.check_attachment(profile) is profile
    assert d.query_attachment("App::profile") is profile  # unique short form
    note = d.check_attachment("App::Owner.note")
    assert isinstance(note.key_type.target, ClubType)
    tag = d.check_attachment("App::any_concept.tag")
    assert tag.key_type.target is ANY_CONCEPT
    assert [a.name for a in d.attachments()] == ["profile", "note", "tag"]
    with pytest.raises(UnknownAttachmentError):
        d.check_attachment("App::User.nope")
    with pytest.raises(UnknownAttachmentError):
        d.check_attachment(uuid.uuid4())
    foreign = build().check_attachment("App::User.profile")
    assert d.check_attachment(foreign) is profile  # same runtime id
    ghost = Definitions()
    with pytest.raises(UnknownAttachmentError, match="not registered"):
        ghost.check_attachment(profile)


def test_attachments_over_a_club_and_over_any_concept() -> None:
    d = build()
    user, admin, doc = (concept(d, f"App::{n}") for n in ("User", "Admin", "Doc"))
    note = d.check_attachment("App::Owner.note")
    for c in (user, doc):
        k = Key(c, uuid.uuid4())
        assert note.check_key(k) is k
    with pytest.raises(ValidationError, match="key<App::Owner>"):
        note.check_key(Key(admin, uuid.uuid4()))
    tag = d.check_attachment("App::any_concept.tag")
    for c in (user, admin, doc):
        assert tag.check_key(Key(c, uuid.uuid4())).concept == c
    with pytest.raises(ValidationError, match="nil key"):
        tag.check_key(KeyType(ANY_CONCEPT).default())


def test_same_name_other_kind_is_a_definition_error() -> None:
    d = build()
    ns = d.namespaces()[0]
    with pytest.raises(DefinitionError, match="already a concept") as info:
        d.create_structure(ns, "User", [Field("x", INT64)])
    assert not isinstance(info.value, DefinitionConflictError)
    with pytest.raises(DefinitionError, match="already a struct"):
        d.create_enumeration(ns, "Profile", ["a"])
    with pytest.raises(DefinitionError, match="already a club"):
        d.create_concept(ns, "Owner")


def test_same_name_divergent_content_is_a_conflict() -> None:
    d = build()
    ns = d.namespaces()[0]
    with pytest.raises(DefinitionConflictError, match="two divergent runtime ids"):
        d.create_structure(ns, "Profile", [Field("name", STRING)])
    with pytest.raises(DefinitionConflictError):
        d.create_enumeration(ns, "Role", ["member", "guest"])
    with pytest.raises(DefinitionConflictError):
        d.create_concept(ns, "Admin")  # without its parent
    with pytest.raises(DefinitionConflictError, match="attachment App::User.profile"):
        d.create_attachment(ns, "profile", concept(d, "App::User"), STRING)


def test_identical_redefinition_returns_the_existing_type() -> None:
    d = build()
    ns = d.namespaces()[0]
    user = d.check_type("App::User")
    assert d.create_concept(ns, "User", documentation="other doc") is user
    role = d.check_type("App::Role")
    assert d.create_enumeration(ns, "Role", ["guest", "member"]) is role
    att = d.check_attachment("App::User.profile")
    again = d.create_attachment(ns, "profile", user, d.check_type("App::Profile"))
    assert again is att
    # the same attachment name over another concept is allowed
    doc_profile = d.create_attachment(ns, "profile", concept(d, "App::Doc"), STRING)
    assert doc_profile.identifier == "App::Doc.profile" and doc_profile is not att


@pytest.mark.parametrize(
    "name", ["", "1abc", "_x", "a-b", "é", "a b", "struct", "int64", "any_concept", "key"]
)
def test_invalid_type_names(name: str) -> None:
    d = Definitions()
    ns = d.namespace("App", NS)
    assert not is_valid_identifier(name)
    with pytest.raises(DefinitionError):
        d.create_concept(ns, name)
    with pytest.raises(DefinitionError):
        d.create_attachment(ns, name, ANY_CONCEPT, STRING)


def test_identifier_rules_for_fields_and_cases() -> None:
    assert is_valid_identifier("User_2")
    assert is_valid_identifier("key", type_name=False)  # `string key;` is a legal field
    assert not is_valid_identifier("_key", type_name=False)
    d = Definitions()
    ns = d.namespace("App", NS)
    with pytest.raises(DefinitionError, match="invalid case name"):
        d.create_enumeration(ns, "E", ["ok", "not ok"])
    with pytest.raises(DefinitionError, match="invalid field name"):
        d.create_structure(ns, "S", [Field("2x", INT64)])
    with pytest.raises(DefinitionError, match="invalid namespace name"):
        d.namespace("bad name", LIB)
    with pytest.raises(DefinitionError, match="global namespace"):
        d.namespace("Global", "00000000-0000-0000-0000-000000000000")


def test_references_must_be_registered() -> None:
    d = Definitions()
    ns = d.namespace("App", NS)
    stranger = ConceptType(ns, "Stranger")
    with pytest.raises(DefinitionError, match="not registered"):
        d.create_concept(ns, "Child", parent=stranger)
    with pytest.raises(DefinitionError, match="not registered"):
        d.create_structure(ns, "S", [Field("k", KeyType(stranger))])
    with pytest.raises(DefinitionError, match="not registered"):
        d.create_attachment(ns, "a", stranger, STRING)
    club = ClubType(ns, "Club")
    with pytest.raises(DefinitionError, match="club .* is not registered"):
        d.create_membership(club, stranger)
    own_club = d.create_club(ns, "Club")
    with pytest.raises(DefinitionError, match="concept .* is not registered"):
        d.create_membership(own_club, stranger)
    with pytest.raises(DefinitionError, match="not a concept"):
        d.create_concept(ns, "Odd", parent=own_club)  # type: ignore[arg-type]
    assert d.types() == [own_club]


def test_membership_is_idempotent_and_not_inherited() -> None:
    d = build()
    owner = d.check_type("App::Owner")
    user = d.check_type("App::User")
    assert isinstance(owner, ClubType) and isinstance(user, ConceptType)
    assert d.create_membership(owner, user) is False
    assert {m.name for m in owner.members} == {"User", "Doc"}
    assert not KeyType(owner).accepts_concept(concept(d, "App::Admin"))


def test_namespace_registration() -> None:
    d = Definitions()
    ns = d.namespace("App", NS)
    assert d.namespace("Renamed", NS) is ns  # the uuid is the identity
    assert ns == Namespace("Other", NS) and hash(ns) == hash(Namespace("x", NS))
    assert repr(ns) == f"Namespace('App', '{NS}')"
    # creating in an unregistered Namespace object registers it
    lib = Namespace("Lib", LIB)
    d.create_concept(lib, "Book")
    assert [n.name for n in d.namespaces()] == ["App", "Lib"]


# --------------------------------------------------------------------------------------------
# Identity


def test_hexdigest_is_sha256_over_sorted_runtime_ids() -> None:
    d = build()
    expected = hashlib.sha256(b"".join(sorted(r.bytes for r in d.runtime_ids()))).hexdigest()
    assert d.hexdigest() == expected
    assert len(d.runtime_ids()) == 6 + 3
    assert Definitions().hexdigest() == hashlib.sha256().hexdigest()


def test_hexdigest_ignores_documentation_and_membership() -> None:
    plain = build()
    documented = build(doc="lots of words")
    bare = build(with_membership=False)
    assert plain.hexdigest() == documented.hexdigest() == bare.hexdigest()
    assert plain.is_equal(documented) and plain == bare
    before = plain.hexdigest()
    plain.create_concept(plain.namespaces()[0], "Extra")
    assert plain.hexdigest() != before and not plain.is_equal(documented)


def test_hexdigest_independent_of_registration_order() -> None:
    a, b = Definitions(), Definitions()
    na, nb = a.namespace("App", NS), b.namespace("App", NS)
    a.create_concept(na, "X")
    a.create_concept(na, "Y")
    b.create_concept(nb, "Y")
    b.create_concept(nb, "X")
    assert a.hexdigest() == b.hexdigest()


def test_counts_and_repr() -> None:
    d = build()
    pool = PoolDeclaration(
        "c5e3a8d2-0b3f-4a4c-9d5e-7f8091122334",
        "Tools",
        [FunctionPrototype("ping", [("x", INT64)], INT64), FunctionPrototype("hello")],
    )
    d.create_pool(pool)
    assert d.counts() == {
        "namespaces": 1,
        "concepts": 3,
        "clubs": 1,
        "enumerations": 1,
        "structures": 1,
        "attachments": 3,
        "function_pools": 1,
        "functions": 2,
    }
    assert repr(d).startswith("<Definitions namespaces=1 concepts=3 clubs=1")
    assert d.query_pool("Tools") is pool and d.query_pool(pool.uuid) is pool
    assert d.query_pool("Nope") is None and d.pools() == [pool]


def test_definitions_are_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Definitions())


# --------------------------------------------------------------------------------------------
# extend / copy / extract


def test_extend_adds_what_is_missing_and_reports_it() -> None:
    base = Definitions()
    base.namespace("App", NS)
    full = build()
    info = base.extend(full)
    assert isinstance(info, ExtendInfo)
    assert len(info.concepts) == 3 and len(info.clubs) == 1
    assert len(info.enumerations) == 1 and len(info.structures) == 1
    assert len(info.attachments) == 3 and info.memberships == []
    assert info.count() == 9
    assert base.is_equal(full) and base.hexdigest() == full.hexdigest()
    assert base.extend(full).count() == 0  # re-extending adds nothing
    assert full.extend(base).count() == 0


def test_extend_conflict_is_atomic() -> None:
    mine = build()
    theirs = Definitions()
    ns = theirs.namespace("App", NS)
    theirs.create_concept(ns, "Fresh")  # would be added...
    theirs.create_structure(ns, "Profile", [Field("name", STRING)])  # ...but this conflicts
    before = (mine.hexdigest(), mine.counts())
    with pytest.raises(DefinitionConflictError, match="App::Profile"):
        mine.extend(theirs)
    assert (mine.hexdigest(), mine.counts()) == before
    assert mine.query_type("App::Fresh") is None


def test_extend_conflicting_attachment_and_kind() -> None:
    mine = build()
    theirs = Definitions()
    ns = theirs.namespace("App", NS)
    user = theirs.create_concept(ns, "User")
    theirs.create_attachment(ns, "profile", user, DOUBLE)
    with pytest.raises(DefinitionConflictError, match="attachment App::User.profile"):
        mine.extend(theirs)
    other_kind = Definitions()
    other_kind.create_club(other_kind.namespace("App", NS), "User")
    with pytest.raises(DefinitionError):
        mine.extend(other_kind)
    assert mine.counts()["clubs"] == 1


def test_extend_conflicting_pool() -> None:
    pool_uuid = "d6f4b9e3-1c4a-4b5d-8e6f-809112233445"
    a, b = Definitions(), Definitions()
    a.create_pool(PoolDeclaration(pool_uuid, "P", [FunctionPrototype("f")]))
    b.create_pool(PoolDeclaration(pool_uuid, "P", [FunctionPrototype("g")]))
    with pytest.raises(DefinitionConflictError, match="pool P"):
        a.extend(b)
    with pytest.raises(DefinitionConflictError):
        a.create_pool(PoolDeclaration(pool_uuid, "P", [FunctionPrototype("g")]))
    assert b.extend(Definitions()).count() == 0
    c = Definitions()
    assert c.extend(a).pools == [uuid.UUID(pool_uuid)]
    assert a == c and a != b


def test_extend_adds_memberships_to_existing_clubs() -> None:
    mine = build(with_membership=False)
    theirs = build()
    info = mine.extend(theirs)
    owner = mine.check_type("App::Owner")
    assert isinstance(owner, ClubType)
    assert {m.name for m in owner.members} == {"User", "Doc"}
    assert len(info.memberships) == 2 and info.count() == 2
    assert set(info.memberships) == {
        (owner.runtime_id, mine.check_type("App::User").runtime_id),
        (owner.runtime_id, mine.check_type("App::Doc").runtime_id),
    }
    assert mine.extend(theirs).count() == 0
    # theirs is untouched by our later memberships
    extra = mine.create_concept(mine.namespaces()[0], "Extra")
    mine.create_membership(owner, extra)
    assert "Extra" not in members(theirs, "App::Owner")


def test_attachments_over_a_club_see_members_added_after_copy_and_extend() -> None:
    # the CommitDatabase pattern: merged = defs.copy(); merged.extend(new_definitions)
    base = build(with_membership=False)
    merged = base.copy()
    merged.extend(build())
    note = merged.check_attachment("App::Owner.note")
    user = concept(merged, "App::User")
    key = Key(user, uuid.uuid4())
    assert note.check_key(key) is key
    assert encode(key, note.key_type)  # the codec agrees with check()
    # the base registry did not gain the membership
    with pytest.raises(ValidationError):
        base.check_attachment("App::Owner.note").check_key(key)
    with pytest.raises(ValidationError):
        encode(key, base.check_attachment("App::Owner.note").key_type)


def test_structures_over_club_keys_follow_their_registry() -> None:
    def with_holder(members: bool) -> Definitions:
        d = build(with_membership=members)
        ns = d.namespaces()[0]
        d.create_structure(
            ns, "Holder", [Field("owner", OptionalType(KeyType(club(d, "App::Owner"))))]
        )
        return d

    empty_club = with_holder(False)
    grown = empty_club.copy()
    grown.create_membership(club(grown, "App::Owner"), concept(grown, "App::Doc"))
    doc_key = Key(concept(grown, "App::Doc"), uuid.uuid4())
    holder = grown.check_type("App::Holder")
    value = holder.check({"owner": doc_key})
    assert decode(encode(value, holder), holder, grown) == value
    with pytest.raises(ValidationError):
        empty_club.check_type("App::Holder").check({"owner": doc_key})


def test_copy_is_independent() -> None:
    d = build()
    c = d.copy()
    assert c == d and c.hexdigest() == d.hexdigest() and c.counts() == d.counts()
    c.create_concept(c.namespaces()[0], "OnlyInCopy")
    assert d.query_type("App::OnlyInCopy") is None
    owner_copy = club(c, "App::Owner")
    assert owner_copy is not d.check_type("App::Owner")
    c.create_membership(owner_copy, concept(c, "App::Admin"))
    assert "Admin" not in members(d, "App::Owner")


def test_extract_builds_the_reduced_closure() -> None:
    d = build()
    ns = d.namespaces()[0]
    lib = d.namespace("Lib", LIB)
    d.create_concept(lib, "Unrelated")
    profile_att = d.check_attachment("App::User.profile")
    reduced = d.extract(attachments=[profile_att])
    assert {t.name for t in reduced.types()} == {"User", "Role", "Profile"}
    assert [a.identifier for a in reduced.attachments()] == ["App::User.profile"]
    assert [n.name for n in reduced.namespaces()] == ["App"]
    assert d.contains(reduced) and not reduced.contains(d)
    # a parent and a club's members come along; members outside the closure do not
    admin_only = d.extract(types=[KeyType(concept(d, "App::Admin"))])
    assert {t.name for t in admin_only.types()} == {"Admin", "User"}
    note = d.extract(attachments=[d.check_attachment("App::Owner.note")])
    assert {t.name for t in note.types()} == {"Owner", "User", "Doc"}
    owner = club(note, "App::Owner")
    assert {m.name for m in owner.members} == {"User", "Doc"}
    struct_in_vector = d.extract(types=[VectorType(MapType(STRING, d.check_type("App::Profile")))])
    assert {t.name for t in struct_in_vector.types()} == {"Role", "Profile"}
    assert d.extract().counts()["concepts"] == 0
    assert ns in d.namespaces()


def test_extract_pools_bring_their_types() -> None:
    d = build()
    profile = d.check_type("App::Profile")
    pool = PoolDeclaration(
        "e7a5c0f4-2d5b-4c6e-9f70-8091a2b3c4d5",
        "Svc",
        [FunctionPrototype("get", [("who", KeyType(concept(d, "App::Admin")))], profile)],
    )
    d.create_pool(pool)
    reduced = d.extract(pools=[pool])
    assert {t.name for t in reduced.types()} == {"User", "Admin", "Role", "Profile"}
    assert reduced.pools() == [pool]
    unregistered = PoolDeclaration(
        "f8b6d1a5-3e6c-4d7f-8a81-91a2b3c4d5e6",
        "Bad",
        [
            FunctionPrototype(
                "f", [("s", StructureType(d.namespaces()[0], "Ghost", [Field("x", INT64)]))]
            )
        ],
    )
    with pytest.raises(DefinitionError, match="not registered"):
        d.create_pool(unregistered)
    with pytest.raises(DefinitionError, match="invalid pool name"):
        d.create_pool(PoolDeclaration(uuid.uuid4(), "bad name"))


# --------------------------------------------------------------------------------------------
# Prototypes


def test_function_prototypes() -> None:
    f = FunctionPrototype("add", [("a", INT64), Parameter("b", INT64)], INT64, "adds")
    assert f.parameters == (Parameter("a", INT64), Parameter("b", INT64))
    assert repr(f) == "<int64 add(int64 a, int64 b)>"
    assert f.check_arguments([1, 2]) == [1, 2]
    with pytest.raises(ValidationError, match=r"at add\(b\)"):
        f.check_arguments([1, "x"])
    with pytest.raises(ValidationError, match="2 argument"):
        f.check_arguments([1])
    assert f.check_result(3) == 3
    with pytest.raises(ValidationError, match=r"add\(\) result"):
        f.check_result("3")
    same = FunctionPrototype("add", [("a", INT64), ("b", INT64)], INT64, "other doc")
    assert f == same and hash(f) == hash(same) and f.runtime_id == same.runtime_id
    assert FunctionPrototype("add", [("a", INT64), ("c", INT64)], INT64) != f
    assert FunctionPrototype("add", [("a", INT64), ("b", INT64)], VOID) != f
    assert FunctionPrototype("add", [("a", INT64), ("b", INT64)], INT64, mutable=True) != f
    with pytest.raises(DefinitionError, match="twice"):
        FunctionPrototype("f", [("a", INT64), ("a", STRING)])


def test_pool_declarations() -> None:
    u = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"
    f, g = FunctionPrototype("f"), FunctionPrototype("g", mutable=True)
    pool = PoolDeclaration(u, "Tools", [f], "doc")
    assert pool.kind == "function_pool" and pool.query("f") is f and pool.check("f") is f
    assert pool.query("zz") is None
    with pytest.raises(DefinitionError, match="functions: f"):
        pool.check("zz")
    with pytest.raises(DefinitionError, match="cannot be mutable"):
        PoolDeclaration(u, "Tools", [g])
    with pytest.raises(DefinitionError, match="twice"):
        PoolDeclaration(u, "Tools", [f, FunctionPrototype("f")])
    att_pool = PoolDeclaration(u, "Tools", [g, f], attachment=True)
    assert att_pool.kind == "attachment_function_pool"
    plain = PoolDeclaration(u, "Tools", [f])
    assert PoolDeclaration(u, "Tools", [f], attachment=True).runtime_id != plain.runtime_id
    assert PoolDeclaration(u, "Tools", [f, FunctionPrototype("h")]).runtime_id != plain.runtime_id
    assert att_pool.runtime_id == PoolDeclaration(u, "Tools", [f, g], attachment=True).runtime_id
    assert PoolDeclaration(u, "Tools", [f], "x") == PoolDeclaration(uuid.UUID(u), "Tools", [f])
    assert repr(pool) == "<function_pool Tools (1 functions)>"
