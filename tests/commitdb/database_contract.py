"""The behaviour every flat database shares: local (memory, LMDB) and remote (TCP, Unix).

Use it by subclassing :class:`DatabaseContract` in a test module and providing a
``db_factory`` fixture that returns a :class:`DatabaseFactory`::

    class TestMemoryDatabase(DatabaseContract):
        @pytest.fixture
        def db_factory(self) -> Iterator[DatabaseFactory]:
            factory = MyFactory()
            yield factory
            factory.close_all()

The tests only use the public :class:`~commitdb.protocols.Databasing` surface, so a remote
database runs them unchanged. The factory closes every database it opened at teardown.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from commitdb.blobs import BlobLayout
from commitdb.definitions import Definitions
from commitdb.errors import (
    CommitDBError,
    DatabaseClosedError,
    DefinitionConflictError,
    MissingBlobError,
    TransactionError,
    UnknownAttachmentError,
    ValidationError,
)
from commitdb.ids import BlobId, blob_id_for
from commitdb.protocols import AttachmentGetting, Databasing
from commitdb.types import (
    BLOB_ID,
    STRING,
    UINT16,
    Attachment,
    ConceptType,
    EnumerationType,
    Field,
    StructureType,
)
from commitdb.values import Key

__all__ = ("DatabaseContract", "DatabaseFactory", "Tuto", "tuto_definitions")

TUTO_UUID = "f529bc42-0618-4f54-a3fb-d55f95c5ad03"
MIB = 1 << 20


@dataclass(frozen=True)
class Tuto:
    """The Tuto model, built with the Definitions builder."""

    definitions: Definitions
    user: ConceptType
    login: StructureType
    identity: StructureType
    status: EnumerationType
    account: StructureType
    texture: StructureType
    login_att: Attachment
    identity_att: Attachment
    account_att: Attachment
    portrait_att: Attachment


def tuto_definitions(*, with_account: bool = True) -> Tuto:
    """Build the Tuto model (``with_account=False`` leaves the account attachment out)."""
    defs = Definitions()
    ns = defs.namespace("Tuto", TUTO_UUID)
    user = defs.create_concept(ns, "User")
    login = defs.create_structure(
        ns, "Login", [Field("nickname", STRING), Field("password", STRING)]
    )
    identity = defs.create_structure(
        ns, "Identity", [Field("firstname", STRING), Field("lastname", STRING)]
    )
    status = defs.create_enumeration(ns, "Status", ["pending", "active", "completed"])
    account = defs.create_structure(ns, "Account", [Field("state", status)])
    texture = defs.create_structure(
        ns,
        "Texture",
        [Field("width", UINT16), Field("height", UINT16), Field("pixels", BLOB_ID)],
    )
    login_att = defs.create_attachment(ns, "login", user, login)
    identity_att = defs.create_attachment(ns, "identity", user, identity)
    portrait_att = defs.create_attachment(ns, "portrait", user, texture)
    if with_account:
        account_att = defs.create_attachment(ns, "account", user, account)
    else:
        account_att = tuto_definitions().account_att
    return Tuto(
        defs,
        user,
        login,
        identity,
        status,
        account,
        texture,
        login_att,
        identity_att,
        account_att,
        portrait_att,
    )


def foreign_key() -> Key:
    """A key of a concept that no Tuto attachment accepts."""
    defs = Definitions()
    ns = defs.namespace("Other", "0b8e4a3c-3a35-4d8c-9d43-4c9f1f0a7e11")
    return Key(defs.create_concept(ns, "Group"))


class DatabaseFactory(Protocol):
    """Makes the databases a contract test uses."""

    def __call__(
        self, definitions: Definitions | None = None, *, documentation: str | None = None
    ) -> Databasing:
        """Create a fresh database (closed at teardown)."""

    def peer(self, db: Databasing) -> Databasing:
        """Open a second connection to the database of ``db`` (closed at teardown)."""


class DatabaseContract:
    """Tests of the public database surface; a subclass provides ``db_factory``."""

    @pytest.fixture
    def tuto(self) -> Tuto:
        return tuto_definitions()

    @pytest.fixture
    def db(self, db_factory: DatabaseFactory, tuto: Tuto) -> Databasing:
        return db_factory(tuto.definitions, documentation="the Tuto database")

    @staticmethod
    def commit_login(db: Databasing, tuto: Tuto, nickname: str = "ada") -> Key:
        key = tuto.login_att.create_key()
        with db.transaction():
            db.set(tuto.login_att, key, tuto.login(nickname=nickname, password="secret"))
        return key

    # -- metadata and lifecycle -----------------------------------------------------------
    def test_protocol(self, db: Databasing) -> None:
        assert isinstance(db, Databasing)
        assert isinstance(db, AttachmentGetting)

    def test_metadata(self, db: Databasing, db_factory: DatabaseFactory, tuto: Tuto) -> None:
        assert isinstance(db.uuid(), uuid.UUID)
        assert db.uuid() == db.uuid()
        assert db.documentation() == "the Tuto database"
        assert db.codec_name() == "msgpack-canonical"
        assert isinstance(db.path(), str) and db.path()
        assert db.in_memory() == (db.path() == "InMemory")
        assert not db.is_closed()
        other = db_factory()
        assert other.uuid() != db.uuid()
        assert other.documentation() == ""
        assert other.definitions().attachments() == []

    def test_definitions_snapshot(self, db: Databasing, tuto: Tuto) -> None:
        defs = db.definitions()
        assert defs.is_equal(tuto.definitions)
        assert {a.identifier for a in defs.attachments()} == {
            "Tuto::User.login",
            "Tuto::User.identity",
            "Tuto::User.account",
            "Tuto::User.portrait",
        }
        assert db.definitions_hexdigest() == tuto.definitions.hexdigest()

    def test_close(self, db: Databasing, tuto: Tuto) -> None:
        key = self.commit_login(db, tuto)
        db.close()
        assert db.is_closed()
        db.close()  # idempotent
        assert db.is_closed()
        blob_id = blob_id_for(b"x")
        calls: list[Any] = [
            db.uuid,
            db.path,
            db.documentation,
            db.in_memory,
            db.codec_name,
            db.definitions,
            db.definitions_hexdigest,
            lambda: db.extend_definitions(tuto.definitions),
            db.begin_transaction,
            db.commit,
            db.rollback,
            db.in_transaction,
            lambda: db.keys(tuto.login_att),
            lambda: db.has(tuto.login_att, key),
            lambda: db.get(tuto.login_att, key),
            lambda: db.enumerate(tuto.login_att),
            lambda: db.set(tuto.login_att, key, tuto.login()),
            lambda: db.delete(tuto.login_att, key),
            lambda: db.create_blob(b"x"),
            db.blob_stream,
            lambda: db.del_blob(blob_id),
            lambda: db.blob(blob_id),
            lambda: db.read_blob(blob_id, 1),
            lambda: db.blob_info(blob_id),
            lambda: db.blob_infos([blob_id]),
            db.blob_ids,
            db.blob_statistics,
        ]
        for call in calls:
            with pytest.raises(DatabaseClosedError):
                call()

    def test_context_manager_closes(self, db: Databasing) -> None:
        with db as entered:
            assert entered is db
            assert not db.is_closed()
        assert db.is_closed()

    def test_close_discards_open_transaction(
        self, db: Databasing, db_factory: DatabaseFactory, tuto: Tuto
    ) -> None:
        peer = db_factory.peer(db)
        key = tuto.login_att.create_key()
        peer.begin_transaction()
        peer.set(tuto.login_att, key, tuto.login(nickname="lost"))
        peer.close()
        assert not db.has(tuto.login_att, key)
        assert db.keys(tuto.login_att) == set()

    # -- transactions ---------------------------------------------------------------------
    def test_begin_commit(self, db: Databasing, tuto: Tuto) -> None:
        key = tuto.login_att.create_key()
        assert not db.in_transaction()
        db.begin_transaction()
        assert db.in_transaction()
        assert db.set(tuto.login_att, key, tuto.login(nickname="ada")) is True
        db.commit()
        assert not db.in_transaction()
        assert db.get(tuto.login_att, key) == tuto.login(nickname="ada")

    def test_rollback_leaves_data_unchanged(self, db: Databasing, tuto: Tuto) -> None:
        kept = self.commit_login(db, tuto, "kept")
        fresh = tuto.login_att.create_key()
        db.begin_transaction()
        db.set(tuto.login_att, fresh, tuto.login(nickname="fresh"))
        db.set(tuto.login_att, kept, tuto.login(nickname="changed"))
        assert db.delete(tuto.login_att, kept) is True
        db.rollback()
        assert not db.in_transaction()
        assert db.keys(tuto.login_att) == {kept}
        assert db.get(tuto.login_att, kept) == tuto.login(nickname="kept", password="secret")
        assert db.get(tuto.login_att, fresh) is None

    def test_transaction_context_manager(self, db: Databasing, tuto: Tuto) -> None:
        key = tuto.login_att.create_key()
        with db.transaction() as inside:
            assert inside is db
            assert db.in_transaction()
            db.set(tuto.login_att, key, tuto.login(nickname="ada"))
        assert not db.in_transaction()
        assert db.has(tuto.login_att, key)

        other = tuto.login_att.create_key()
        with pytest.raises(RuntimeError, match="boom"), db.transaction():
            db.set(tuto.login_att, other, tuto.login(nickname="bob"))
            db.delete(tuto.login_att, key)
            raise RuntimeError("boom")
        assert not db.in_transaction()
        assert not db.has(tuto.login_att, other)
        assert db.has(tuto.login_att, key)

    def test_transaction_modes(self, db: Databasing, tuto: Tuto) -> None:
        for mode in ("deferred", "immediate", "exclusive", "Deferred", "EXCLUSIVE", None):
            key = tuto.login_att.create_key()
            with db.transaction(mode):
                db.set(tuto.login_att, key, tuto.login(nickname=str(mode)))
            assert db.get(tuto.login_att, key).nickname == str(mode)
        for bad in ("serializable", "", "deferred "):
            with pytest.raises(ValueError, match="mode"):
                db.begin_transaction(bad)
            assert not db.in_transaction()

    def test_no_nesting(self, db: Databasing, tuto: Tuto) -> None:
        key = tuto.login_att.create_key()
        db.begin_transaction()
        db.set(tuto.login_att, key, tuto.login(nickname="first"))
        with pytest.raises(TransactionError):
            db.begin_transaction()
        with pytest.raises(TransactionError):
            db.begin_transaction("exclusive")
        with pytest.raises(ValueError):
            db.begin_transaction("bogus")
        # The open transaction is untouched.
        assert db.in_transaction()
        assert db.get(tuto.login_att, key).nickname == "first"
        db.commit()
        assert db.get(tuto.login_att, key).nickname == "first"

    def test_commit_rollback_without_transaction(self, db: Databasing) -> None:
        with pytest.raises(TransactionError):
            db.commit()
        with pytest.raises(TransactionError):
            db.rollback()
        db.begin_transaction()
        db.commit()
        with pytest.raises(TransactionError):
            db.commit()
        db.begin_transaction()
        db.rollback()
        with pytest.raises(TransactionError):
            db.rollback()

    def test_write_outside_transaction_refused(self, db: Databasing, tuto: Tuto) -> None:
        key = self.commit_login(db, tuto)
        fresh = tuto.login_att.create_key()
        blob_id = blob_id_for(b"pixels")
        with pytest.raises(TransactionError, match="outside a transaction"):
            db.set(tuto.login_att, fresh, tuto.login(nickname="no"))
        with pytest.raises(TransactionError, match="outside a transaction"):
            db.set(tuto.login_att, key, tuto.login(nickname="no"))
        with pytest.raises(TransactionError, match="outside a transaction"):
            db.delete(tuto.login_att, key)
        with pytest.raises(TransactionError, match="outside a transaction"):
            db.create_blob(b"pixels")
        with pytest.raises(TransactionError, match="outside a transaction"):
            db.blob_stream()
        with pytest.raises(TransactionError, match="outside a transaction"):
            db.del_blob(blob_id)
        assert db.keys(tuto.login_att) == {key}
        assert db.get(tuto.login_att, key).nickname == "ada"
        assert db.blob_ids() == set()
        assert not db.in_transaction()

    def test_reads_see_own_writes(self, db: Databasing, tuto: Tuto) -> None:
        old = self.commit_login(db, tuto, "old")
        gone = self.commit_login(db, tuto, "gone")
        new = tuto.login_att.create_key()
        db.begin_transaction()
        db.set(tuto.login_att, new, tuto.login(nickname="new"))
        db.set(tuto.login_att, old, tuto.login(nickname="changed"))
        assert db.delete(tuto.login_att, gone) is True
        assert db.delete(tuto.login_att, gone) is False
        assert db.has(tuto.login_att, new)
        assert not db.has(tuto.login_att, gone)
        assert db.get(tuto.login_att, gone) is None
        assert db.get(tuto.login_att, old).nickname == "changed"
        assert db.keys(tuto.login_att) == {old, new}
        listed = db.enumerate(tuto.login_att)
        assert [k for k, _ in listed] == sorted([old, new])
        assert {k: v.nickname for k, v in listed} == {old: "changed", new: "new"}
        db.set(tuto.login_att, gone, tuto.login(nickname="back"))
        assert db.get(tuto.login_att, gone).nickname == "back"
        db.commit()
        assert {k: v.nickname for k, v in db.enumerate(tuto.login_att)} == {
            old: "changed",
            new: "new",
            gone: "back",
        }

    def test_uncommitted_writes_are_private(
        self, db: Databasing, db_factory: DatabaseFactory, tuto: Tuto
    ) -> None:
        peer = db_factory.peer(db)
        key = tuto.login_att.create_key()
        db.begin_transaction()
        db.set(tuto.login_att, key, tuto.login(nickname="ada"))
        assert not peer.has(tuto.login_att, key)
        assert peer.keys(tuto.login_att) == set()
        db.commit()
        assert peer.get(tuto.login_att, key) == tuto.login(nickname="ada")

    def test_reads_follow_other_connections(
        self, db: Databasing, db_factory: DatabaseFactory, tuto: Tuto
    ) -> None:
        peer = db_factory.peer(db)
        key = self.commit_login(db, tuto, "first")
        for _ in range(2):  # read twice: a repeated read must not serve an old value
            assert db.get(tuto.login_att, key).nickname == "first"
            assert peer.get(tuto.login_att, key).nickname == "first"
        with peer.transaction():
            peer.set(tuto.login_att, key, tuto.login(nickname="second"))
        assert db.get(tuto.login_att, key).nickname == "second"
        assert [doc.nickname for _, doc in db.enumerate(tuto.login_att)] == ["second"]
        with peer.transaction():
            peer.set(tuto.login_att, key, tuto.login(nickname="first", password="secret"))
        assert db.get(tuto.login_att, key) == tuto.login(nickname="first", password="secret")
        with peer.transaction():
            peer.delete(tuto.login_att, key)
        assert db.get(tuto.login_att, key) is None
        assert not db.has(tuto.login_att, key)

    def test_concurrent_transactions_both_land(
        self, db: Databasing, db_factory: DatabaseFactory, tuto: Tuto
    ) -> None:
        peer = db_factory.peer(db)
        mine, theirs, shared = (tuto.login_att.create_key() for _ in range(3))
        db.begin_transaction("immediate")
        peer.begin_transaction("immediate")
        db.set(tuto.login_att, mine, tuto.login(nickname="mine"))
        peer.set(tuto.login_att, theirs, tuto.login(nickname="theirs"))
        db.set(tuto.login_att, shared, tuto.login(nickname="first"))
        peer.set(tuto.login_att, shared, tuto.login(nickname="second"))
        db.commit()
        peer.commit()
        for reader in (db, peer):
            assert reader.keys(tuto.login_att) == {mine, theirs, shared}
            assert reader.get(tuto.login_att, shared).nickname == "second"  # last commit wins

    def test_threads_writing_through_their_own_connections(
        self, db: Databasing, db_factory: DatabaseFactory, tuto: Tuto
    ) -> None:
        peers = [db_factory.peer(db) for _ in range(3)]
        errors: list[BaseException] = []

        def work(conn: Databasing, index: int) -> None:
            try:
                for n in range(20):
                    with conn.transaction():
                        conn.set(
                            tuto.login_att,
                            tuto.login_att.create_key(),
                            tuto.login(nickname=f"{index}-{n}"),
                        )
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(p, i)) for i, p in enumerate(peers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        names = {doc.nickname for _, doc in db.enumerate(tuto.login_att)}
        assert names == {f"{i}-{n}" for i in range(3) for n in range(20)}

    # -- documents ------------------------------------------------------------------------
    def test_set_get_has_keys_delete(self, db: Databasing, tuto: Tuto) -> None:
        att = tuto.login_att
        a, b = att.create_key(), att.create_key()
        assert db.keys(att) == set()
        assert db.enumerate(att) == []
        assert db.get(att, a) is None
        assert not db.has(att, a)
        with db.transaction():
            assert db.set(att, a, tuto.login(nickname="ada", password="pw")) is True
            assert db.set(att, b, tuto.login(nickname="bob")) is True
        assert db.keys(att) == {a, b}
        assert db.has(att, a) and db.has(att, b)
        doc = db.get(att, a)
        assert doc == tuto.login(nickname="ada", password="pw")
        assert (doc.nickname, doc.password) == ("ada", "pw")
        assert [k for k, _ in db.enumerate(att)] == sorted([a, b])
        with db.transaction():
            assert db.set(att, a, tuto.login(nickname="ada2")) is True
            assert db.delete(att, b) is True
            assert db.delete(att, b) is False
            assert db.delete(att, att.create_key()) is False
        assert db.keys(att) == {a}
        assert db.get(att, a) == tuto.login(nickname="ada2")
        assert db.get(att, b) is None

    def test_get_returns_a_copy(self, db: Databasing, tuto: Tuto) -> None:
        att = tuto.login_att
        key = att.create_key()
        value = tuto.login(nickname="ada")
        with db.transaction():
            db.set(att, key, value)
            value.nickname = "changed after set"
            inside = db.get(att, key)
            inside.nickname = "changed inside"
        assert db.get(att, key).nickname == "ada"
        first = db.get(att, key)
        first.nickname = "changed outside"
        assert db.get(att, key).nickname == "ada"

    def test_attachments_are_separate(self, db: Databasing, tuto: Tuto) -> None:
        key = tuto.login_att.create_key()
        with db.transaction():
            db.set(tuto.login_att, key, tuto.login(nickname="ada"))
            db.set(tuto.identity_att, key, tuto.identity(firstname="Ada", lastname="Lovelace"))
        assert db.get(tuto.identity_att, key).lastname == "Lovelace"
        assert db.keys(tuto.account_att) == set()
        assert not db.has(tuto.account_att, key)
        with db.transaction():
            db.delete(tuto.login_att, key)
        assert db.has(tuto.identity_att, key)
        assert not db.has(tuto.login_att, key)

    def test_attachment_by_identifier(self, db: Databasing, tuto: Tuto) -> None:
        key = tuto.login_att.create_key()
        with db.transaction():
            db.set("Tuto::User.login", key, tuto.login(nickname="by name"))
        assert db.get(tuto.login_att, key).nickname == "by name"
        assert db.keys("Tuto::User.login") == {key}
        assert db.has("Tuto::User.login", key)

    def test_enumeration_and_dict_values(self, db: Databasing, tuto: Tuto) -> None:
        key = tuto.account_att.create_key()
        with db.transaction():
            db.set(tuto.account_att, key, tuto.account(state=tuto.status.active))
        assert db.get(tuto.account_att, key).state == tuto.status.active
        with db.transaction():
            db.set(tuto.account_att, key, {"state": tuto.status.completed})
            db.set(tuto.login_att, key, {"nickname": "from a dict"})
        assert db.get(tuto.account_att, key).state == tuto.status.completed
        assert db.get(tuto.login_att, key) == tuto.login(nickname="from a dict")
        default = tuto.account_att.create_key()
        with db.transaction():
            db.set(tuto.account_att, default, tuto.account())
        assert db.get(tuto.account_att, default).state == tuto.status.pending

    def test_sub_concept_keys(
        self, db: Databasing, db_factory: DatabaseFactory, tuto: Tuto
    ) -> None:
        # A key of a sub-concept is a key of the attachment's concept; another connection
        # adds the sub-concept and writes with it, and this one reads it back.
        peer = db_factory.peer(db)
        base = tuto_definitions()
        extension = base.definitions
        ns = extension.namespace("Tuto", TUTO_UUID)
        admin = extension.create_concept(ns, "Admin", parent=base.user)
        peer.extend_definitions(extension)
        boss = Key(admin)
        user = tuto.login_att.create_key(boss.id)  # same instance id, another concept
        with peer.transaction():
            peer.set(tuto.login_att, boss, tuto.login(nickname="boss"))
        with db.transaction():
            db.set(tuto.login_att, user, tuto.login(nickname="user"))
        keys = db.keys(tuto.login_att)
        assert keys == {boss, user}
        found = next(k for k in keys if k == boss)
        assert found.concept.qualified_name == "Tuto::Admin"
        assert db.get(tuto.login_att, boss).nickname == "boss"
        assert db.get(tuto.login_att, user).nickname == "user"
        assert [k for k, _ in db.enumerate(tuto.login_att)] == sorted([boss, user])

    def test_many_documents(self, db: Databasing, tuto: Tuto) -> None:
        keys = [tuto.login_att.create_key() for _ in range(300)]
        with db.transaction():
            for i, key in enumerate(keys):
                db.set(tuto.login_att, key, tuto.login(nickname=f"user{i}"))
        assert db.keys(tuto.login_att) == set(keys)
        listed = db.enumerate(tuto.login_att)
        assert [k for k, _ in listed] == sorted(keys)
        by_key = dict(listed)
        assert all(by_key[k].nickname == f"user{i}" for i, k in enumerate(keys))

    # -- errors ---------------------------------------------------------------------------
    def test_wrong_value_type(self, db: Databasing, tuto: Tuto) -> None:
        key = tuto.login_att.create_key()
        db.begin_transaction()
        with pytest.raises(ValidationError) as info:
            db.set(tuto.login_att, key, {"nickname": 5})
        message = str(info.value)
        assert "Tuto::User.login" in message
        assert str(key.id) in message
        assert ".nickname" in message
        with pytest.raises(ValidationError, match=r"Tuto::User\.login.*\.password"):
            db.set(tuto.login_att, key, {"nickname": "ok", "password": None})
        with pytest.raises(ValidationError, match=r"Tuto::User\.login"):
            db.set(tuto.login_att, key, tuto.identity(firstname="wrong struct"))
        with pytest.raises(ValidationError, match=r"Tuto::User\.login"):
            db.set(tuto.login_att, key, 42)
        with pytest.raises(ValidationError, match=r"Tuto::User\.portrait.*\.width"):
            db.set(tuto.portrait_att, key, {"width": 70_000})
        with pytest.raises(ValidationError, match=r"Tuto::User\.account.*\.state"):
            db.set(tuto.account_att, key, {"state": "archived"})
        # Nothing was written and the transaction is still usable.
        assert not db.has(tuto.login_att, key)
        db.set(tuto.login_att, key, tuto.login(nickname="fine"))
        db.commit()
        assert db.keys(tuto.login_att) == {key}

    def test_wrong_keys(self, db: Databasing, tuto: Tuto) -> None:
        att = tuto.login_att
        stranger = foreign_key()
        nil = Key(tuto.user, uuid.UUID(int=0))
        for read in (db.get, db.has):
            with pytest.raises(ValidationError, match=r"Tuto::User\.login"):
                read(att, stranger)
            with pytest.raises(ValidationError):
                read(att, "not a key")  # type: ignore[arg-type]
        assert db.get(att, nil) is None
        with db.transaction():
            with pytest.raises(ValidationError, match=r"Tuto::User\.login"):
                db.set(att, stranger, tuto.login())
            with pytest.raises(ValidationError, match="nil"):
                db.set(att, nil, tuto.login())
            with pytest.raises(ValidationError):
                db.set(att, str(att.create_key().id), tuto.login())  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                db.delete(att, stranger)
        assert db.keys(att) == set()

    def test_unknown_attachment(self, db_factory: DatabaseFactory, tuto: Tuto) -> None:
        partial = tuto_definitions(with_account=False)
        db = db_factory(partial.definitions)
        account = tuto.account_att
        key = account.create_key()
        with pytest.raises(UnknownAttachmentError):
            db.keys(account)
        with pytest.raises(UnknownAttachmentError):
            db.get(account, key)
        with pytest.raises(UnknownAttachmentError):
            db.has("Tuto::User.account", key)
        with pytest.raises(UnknownAttachmentError):
            db.enumerate("Tuto::User.nothing")
        with db.transaction():
            with pytest.raises(UnknownAttachmentError):
                db.set(account, key, tuto.account())
            with pytest.raises(UnknownAttachmentError):
                db.delete(account, key)

    def test_missing_blob(self, db: Databasing, tuto: Tuto) -> None:
        att = tuto.portrait_att
        key = att.create_key()
        unknown = blob_id_for(b"never stored")
        db.begin_transaction()
        with pytest.raises(MissingBlobError):
            db.set(att, key, tuto.texture(width=1, height=1, pixels=unknown))
        with pytest.raises(MissingBlobError):
            db.set(att, key, {"pixels": unknown.hex()})  # the text form is checked too
        assert not db.has(att, key)
        # A blob written earlier in the same transaction counts.
        pixels = db.create_blob(b"\x00\xff" * 8, BlobLayout("uchar", 2))
        db.set(att, key, tuto.texture(width=4, height=2, pixels=pixels))
        # The invalid id (no blob) needs no blob.
        empty = att.create_key()
        db.set(att, empty, tuto.texture(width=0, height=0, pixels=BlobId.INVALID))
        by_text = att.create_key()
        db.set(att, by_text, {"width": 2, "pixels": pixels.hex()})
        db.commit()
        assert db.get(att, key).pixels == pixels
        assert db.get(att, empty).pixels == BlobId.INVALID
        assert db.get(att, by_text) == tuto.texture(width=2, pixels=pixels)
        assert isinstance(db.get(att, by_text).pixels, BlobId)
        # A blob deleted in the transaction no longer counts.
        db.begin_transaction()
        assert db.del_blob(pixels) is True
        with pytest.raises(MissingBlobError):
            db.set(att, att.create_key(), tuto.texture(pixels=pixels))
        db.rollback()
        # A committed blob counts.
        other = att.create_key()
        with db.transaction():
            db.set(att, other, tuto.texture(pixels=pixels))
        assert db.get(att, other).pixels == pixels

    # -- definitions ----------------------------------------------------------------------
    def test_extend_definitions(self, db_factory: DatabaseFactory, tuto: Tuto) -> None:
        partial = tuto_definitions(with_account=False)
        db = db_factory(partial.definitions)
        key = self.commit_login(db, tuto)
        before = db.definitions_hexdigest()
        info = db.extend_definitions(tuto.definitions)
        assert info.count() == 1
        assert info.attachments == [tuto.account_att.runtime_id]
        assert db.definitions_hexdigest() == tuto.definitions.hexdigest() != before
        assert db.definitions().check_attachment("Tuto::User.account")
        with db.transaction():
            db.set(tuto.account_att, key, tuto.account(state=tuto.status.active))
        assert db.get(tuto.account_att, key).state == tuto.status.active
        assert db.get(tuto.login_att, key).nickname == "ada"
        assert db.extend_definitions(tuto.definitions).count() == 0
        assert db.extend_definitions(partial.definitions).count() == 0
        assert db.definitions().is_equal(tuto.definitions)

    def test_extend_definitions_conflict(self, db: Databasing, tuto: Tuto) -> None:
        before = db.definitions_hexdigest()
        clash = Definitions()
        ns = clash.namespace("Tuto", TUTO_UUID)
        clash.create_concept(ns, "Team")  # would be new, but the extension is atomic
        clash.create_structure(ns, "Login", [Field("email", STRING)])
        with pytest.raises(DefinitionConflictError):
            db.extend_definitions(clash)
        assert db.definitions_hexdigest() == before
        assert db.definitions().query_type("Tuto::Team") is None

    def test_extend_definitions_refused_in_transaction(
        self, db_factory: DatabaseFactory, tuto: Tuto
    ) -> None:
        db = db_factory(tuto_definitions(with_account=False).definitions)
        db.begin_transaction()
        with pytest.raises(TransactionError):
            db.extend_definitions(tuto.definitions)
        assert db.in_transaction()
        db.rollback()
        assert db.extend_definitions(tuto.definitions).count() == 1

    def test_definitions_refreshed_from_peer(self, db_factory: DatabaseFactory, tuto: Tuto) -> None:
        db = db_factory(tuto_definitions(with_account=False).definitions)
        peer = db_factory.peer(db)
        assert peer.definitions().query_attachment("Tuto::User.account") is None
        db.extend_definitions(tuto.definitions)
        assert peer.definitions().query_attachment("Tuto::User.account") is not None
        assert peer.definitions_hexdigest() == db.definitions_hexdigest()
        # A fresh peer connection uses a new attachment without asking first.
        other = db_factory.peer(db)
        key = tuto.account_att.create_key()
        with db.transaction():
            db.set(tuto.account_att, key, tuto.account(state=tuto.status.completed))
        assert other.get(tuto.account_att, key).state == tuto.status.completed

    # -- blobs ----------------------------------------------------------------------------
    def test_create_blob_is_idempotent(self, db: Databasing) -> None:
        data = b"some pixels"
        with db.transaction():
            first = db.create_blob(data)
            assert db.create_blob(data) == first
        with db.transaction():
            assert db.create_blob(bytearray(data)) == first
            assert db.create_blob(memoryview(data)) == first
        assert first == blob_id_for(data)
        assert isinstance(first, BlobId)
        assert db.blob_ids() == {first}
        assert db.blob(first) == data
        assert db.blob_statistics().count == 1
        with db.transaction():
            floats = db.create_blob(data[:8], BlobLayout("float", 2))
        assert floats != first
        assert floats == blob_id_for(data[:8], BlobLayout("float", 2).code, 2)
        info = db.blob_info(floats)
        assert info is not None
        assert (info.blob_id, info.layout, info.size) == (floats, BlobLayout("float", 2), 8)

    def test_blob_reads(self, db: Databasing) -> None:
        data = bytes(range(256)) * (3 * MIB // 256 + 7)  # spans several storage chunks
        unknown = blob_id_for(b"unknown")
        with db.transaction():
            blob_id = db.create_blob(data)
        assert db.blob(blob_id) == data
        assert db.read_blob(blob_id, 10) == data[:10]
        assert db.read_blob(blob_id, 100, MIB - 50) == data[MIB - 50 : MIB + 50]
        assert db.read_blob(blob_id, 0, len(data)) == b""
        assert db.read_blob(blob_id, 5, len(data) - 5) == data[-5:]
        for size, offset in ((1, len(data)), (len(data) + 1, 0), (-1, 0), (1, -1)):
            with pytest.raises(ValueError):
                db.read_blob(blob_id, size, offset)
        with pytest.raises(MissingBlobError):
            db.read_blob(unknown, 1)
        assert db.blob(unknown) is None
        assert db.blob_info(unknown) is None
        infos = db.blob_infos([unknown, blob_id])
        assert [(i.blob_id, i.size) for i in infos] == [(blob_id, len(data))]

    def test_blob_stream(self, db: Databasing) -> None:
        pieces = [b"abc" * 1000, b"", b"xyz" * 700_000, b"tail"]
        content = b"".join(pieces)
        with db.transaction():
            stream = db.blob_stream(BlobLayout("ushort", 1))
            for piece in pieces:
                assert stream.write(piece) == len(piece)
            blob_id = stream.close()
            assert db.blob_info(blob_id) is not None
        assert blob_id == blob_id_for(content, BlobLayout("ushort").code, 1)
        assert db.blob(blob_id) == content
        assert db.read_blob(blob_id, 6, 2999) == content[2999:3005]
        with db.transaction():
            sized = db.blob_stream(size=4)
            sized.write(b"ab")
            sized.write(b"cd")
            small = sized.close()
            assert db.create_blob(b"abcd") == small
            overflow = db.blob_stream(size=3)
            with pytest.raises(CommitDBError, match="overflow"):
                overflow.write(b"abcd")
            short = db.blob_stream(size=3)
            short.write(b"ab")
            with pytest.raises(CommitDBError, match="short"):
                short.close()
            aborted = db.blob_stream()
            aborted.write(b"discarded")
            aborted.abort()
        assert db.blob(small) == b"abcd"
        assert db.blob_ids() == {blob_id, small}

    def test_del_blob(self, db: Databasing) -> None:
        with db.transaction():
            kept = db.create_blob(b"kept")
            gone = db.create_blob(b"gone")
        with db.transaction():
            assert db.del_blob(gone) is True
            assert db.del_blob(gone) is False
            assert db.del_blob(blob_id_for(b"never")) is False
            assert db.blob(gone) is None
            assert db.blob_ids() == {kept}
            assert db.blob_info(gone) is None
            with pytest.raises(MissingBlobError):
                db.read_blob(gone, 1)
        assert db.blob_ids() == {kept}
        assert db.blob(gone) is None
        # Deleted then created again in one transaction: stored.
        with db.transaction():
            assert db.del_blob(kept) is True
            assert db.create_blob(b"kept") == kept
        assert db.blob(kept) == b"kept"
        # Created then deleted in one transaction: not stored.
        with db.transaction():
            temp = db.create_blob(b"temp")
            assert db.del_blob(temp) is True
        assert db.blob(temp) is None

    def test_blob_writes_are_transactional(
        self, db: Databasing, db_factory: DatabaseFactory
    ) -> None:
        peer = db_factory.peer(db)
        with db.transaction():
            stored = db.create_blob(b"stored")
        db.begin_transaction()
        staged = db.create_blob(b"staged")
        stream = db.blob_stream()
        stream.write(b"streamed")
        streamed = stream.close()
        assert db.del_blob(stored) is True
        assert db.blob(staged) == b"staged"
        assert db.read_blob(streamed, 3, 2) == b"rea"
        assert db.blob_ids() == {staged, streamed}
        assert peer.blob_ids() == {stored}
        assert peer.blob(staged) is None
        db.rollback()
        assert db.blob_ids() == {stored}
        assert db.blob(staged) is None
        assert db.blob(streamed) is None
        assert db.blob(stored) == b"stored"

    def test_blob_statistics(self, db: Databasing) -> None:
        stats = db.blob_statistics()
        assert (stats.count, stats.total_size, stats.min_size, stats.max_size) == (0, 0, 0, 0)
        with db.transaction():
            db.create_blob(b"a")
            db.create_blob(b"bbbb")
            db.create_blob(b"cc")
            db.create_blob(b"cc")
        stats = db.blob_statistics()
        assert (stats.count, stats.total_size, stats.min_size, stats.max_size) == (3, 7, 1, 4)
        with db.transaction():
            db.del_blob(blob_id_for(b"bbbb"))
            db.create_blob(b"ddddddddd")
            stats = db.blob_statistics()
            assert (stats.count, stats.total_size, stats.min_size, stats.max_size) == (
                3,
                12,
                1,
                9,
            )
        assert db.blob_statistics().total_size == 12
