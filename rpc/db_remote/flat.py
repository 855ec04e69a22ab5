"""The async remote flat database, :class:`AsyncDatabaseRemote`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from commitdb.ids import BlobId
from commitdb.types import Attachment, OptionalType
from commitdb.values import Key
from rpc.db_remote.base import _AsyncBase
from rpc.db_remote.wire import _check_key, _key_wire, _value_wire

__all__ = ("AsyncDatabaseRemote",)


class AsyncDatabaseRemote(_AsyncBase):
    """A flat database served by ``commitdb serve`` (async API; the local names).

    Transactions belong to this connection (its session on the server) and are rolled back
    if the connection drops.
    """

    kind = "flat"

    def __repr__(self) -> str:
        return f"<AsyncDatabaseRemote {self.name}>"

    async def begin_transaction(self, mode: str | None = "deferred") -> None:
        """Open this session's transaction."""
        await self._call("begin_transaction", mode)

    async def commit(self) -> None:
        """Write this session's transaction and end it."""
        await self._call("commit")

    async def rollback(self) -> None:
        """Discard this session's transaction and end it."""
        await self._call("rollback")

    async def in_transaction(self) -> bool:
        """True while this session has a transaction open."""
        return bool(await self._call("in_transaction"))

    @asynccontextmanager
    async def transaction(
        self, mode: str | None = "deferred"
    ) -> AsyncIterator[AsyncDatabaseRemote]:
        """A block in a transaction: commit on success, roll back on exception."""
        await self.begin_transaction(mode)
        try:
            yield self
        except BaseException:
            with anyio.CancelScope(shield=True):
                if not self.is_closed():
                    await self.rollback()
            raise
        try:
            await self.commit()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if not self.is_closed() and await self.in_transaction():
                    await self.rollback()
            raise

    async def _ak(self, attachment: Attachment | str, key: Key, write: bool) -> Attachment:
        att = await self._attachment(attachment)
        _check_key(att, key, write=write)
        return att

    async def keys(self, attachment: Attachment | str) -> set[Key]:
        """Keys of the documents of an attachment."""
        att = await self._attachment(attachment)
        w = await self._call("keys", att.runtime_id.bytes)
        return await self._with_defs(lambda d: {d.key(k) for k in w})

    async def has(self, attachment: Attachment | str, key: Key) -> bool:
        """True if the document exists."""
        att = await self._ak(attachment, key, False)
        return bool(await self._call("has", att.runtime_id.bytes, _key_wire(key)))

    async def get(self, attachment: Attachment | str, key: Key) -> Any:
        """A copy of the document, or None."""
        att = await self._ak(attachment, key, False)
        w = await self._call("get", att.runtime_id.bytes, _key_wire(key))
        t = OptionalType(att.document_type)
        return await self._with_defs(lambda d: d.value(w, t))

    async def enumerate(self, attachment: Attachment | str) -> list[tuple[Key, Any]]:
        """(key, document copy) pairs, in key order."""
        att = await self._attachment(attachment)
        w = await self._call("enumerate", att.runtime_id.bytes)
        t = att.document_type
        return await self._with_defs(lambda d: [(d.key(k), d.value(v, t)) for k, v in w])

    async def set(self, attachment: Attachment | str, key: Key, value: Any) -> bool:
        """Create or replace a document in this session's transaction."""
        att = await self._ak(attachment, key, True)
        wire = _value_wire(att, key, value)
        return bool(await self._call("set", att.runtime_id.bytes, _key_wire(key), wire))

    async def delete(self, attachment: Attachment | str, key: Key) -> bool:
        """Delete a document in this session's transaction; returns whether it existed."""
        att = await self._ak(attachment, key, True)
        return bool(await self._call("delete", att.runtime_id.bytes, _key_wire(key)))

    async def del_blob(self, blob_id: BlobId) -> bool:
        """Delete a blob in this session's transaction; returns whether it existed."""
        return bool(await self._call("del_blob", bytes(blob_id)))
