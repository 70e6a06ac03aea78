"""zerok: zero-knowledge sync and encrypted cloud backup for local-first apps, for asyncio.

One :class:`Client` per device. Its work runs on a Rust runtime of its own (the GIL is
released while it runs); every method is a coroutine::

    async with zerok.Client("/var/lib/myapp/zerok", device_name="laptop") as client:
        await client.create_group(["<relay endpoint id>@127.0.0.1:4433"])
        invite = await client.create_invite()        # show invite.url as a QR code
        await client.push(b"the app's change")
        async for event in client.events():         # connected, blob-available, ...
            if event.kind == "blob-available":
                for message in await client.pull():
                    apply(message.data)

Failures raise a :class:`ZerokError` subclass named for what the app does next
(:class:`WrongKeyError`, :class:`UnreachableError`, ...), with ``retryable`` set when the
same call may succeed later. Secrets stay inside: what comes out is the recovery key (once,
from :meth:`Client.create_vault`) and invites.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, List, Optional, Sequence, TypeVar

from . import _native

__all__ = [
    "Client",
    "Invite",
    "Pushed",
    "Message",
    "SyncStatus",
    "BackupReport",
    "BackupStatus",
    "Restored",
    "Event",
    "ZerokError",
    "WrongKeyError",
    "RevokedError",
    "UnreachableError",
    "NotFoundError",
    "CorruptError",
    "QuotaError",
    "InvalidInputError",
    "InviteError",
    "ClosedError",
]


class ZerokError(Exception):
    """A failed call. ``kind`` names it; ``retryable`` says whether trying again may help."""

    kind = "Other"

    def __init__(self, message: str, retryable: bool = False, kind: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        if kind is not None:
            self.kind = kind


class WrongKeyError(ZerokError):
    """The recovery key opens nothing here (also a mistyped one)."""

    kind = "WrongKey"


class RevokedError(ZerokError):
    """This device was removed from the sync group."""

    kind = "Revoked"


class UnreachableError(ZerokError):
    """No relay or store answered; try again later."""

    kind = "Unreachable"


class NotFoundError(ZerokError):
    """No vault, snapshot or sync group where one was asked for."""

    kind = "NotFound"


class CorruptError(ZerokError):
    """Stored or relayed data failed verification."""

    kind = "Corrupt"


class QuotaError(ZerokError):
    """A relay refused for size, quota or rate."""

    kind = "Quota"


class InvalidInputError(ZerokError):
    """An argument that cannot be used, or a call made in the wrong state."""

    kind = "InvalidInput"


class InviteError(ZerokError):
    """An invite that is malformed, expired, used or cancelled."""

    kind = "Invite"


class ClosedError(ZerokError):
    """The client was closed."""

    kind = "Closed"


_BY_KIND = {
    cls.kind: cls
    for cls in (
        WrongKeyError,
        RevokedError,
        UnreachableError,
        NotFoundError,
        CorruptError,
        QuotaError,
        InvalidInputError,
        InviteError,
        ClosedError,
    )
}

T = TypeVar("T")


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except _native.NativeError as e:
        kind, message, retryable = e.args
        raise _BY_KIND.get(kind, ZerokError)(message, retryable, kind) from None


@dataclass(frozen=True)
class Invite:
    """An invite: ``url`` for a QR code (it holds the group secret), or the short ``code``."""

    url: str = field(repr=False)
    code: str = field(repr=False)
    expires_in_secs: int = 0


@dataclass(frozen=True)
class Pushed:
    """A push the first relay acknowledged."""

    blob_id: str
    cursor: int


@dataclass(frozen=True)
class Message:
    """A message received, decrypted and sender-checked."""

    cursor: int
    blob_id: str
    sender: str
    data: bytes


@dataclass(frozen=True)
class SyncStatus:
    """Where sync stands: ``status`` is ``connected``, ``reconnecting`` or ``disconnected``."""

    in_group: bool
    status: str
    attempt: Optional[int]
    last_cursor: int
    device_id: Optional[str]


@dataclass(frozen=True)
class BackupReport:
    """A snapshot saved."""

    snapshot_id: str
    files: int
    bytes_added: int


@dataclass(frozen=True)
class BackupStatus:
    """Where cloud backup stands."""

    enabled: bool
    running: bool
    last_snapshot: Optional[str]
    last_error: Optional[str]
    snapshots: int


@dataclass(frozen=True)
class Restored:
    """What restoring a new device brought; apply ``messages`` in order."""

    snapshot_id: Optional[str]
    files: int
    bytes: int
    lost: List[str]
    messages: List[Message]
    messages_missing: int


@dataclass(frozen=True)
class Event:
    """Something that happened. ``kind``: ``connected``, ``disconnected``, ``reconnecting``,
    ``status-changed``, ``blob-available``, ``blob-pushed``, ``device-revoked``, ``rotated``,
    ``backup-started``, ``backup-saved`` or ``error``; the other fields as the kind uses them."""

    kind: str
    relay: Optional[str] = None
    cursor: Optional[int] = None
    blob_id: Optional[str] = None
    device: Optional[str] = None
    snapshot_id: Optional[str] = None
    status: Optional[str] = None
    attempt: Optional[int] = None
    message: Optional[str] = None


def _message(m: tuple) -> Message:
    cursor, blob_id, sender, data = m
    return Message(cursor, blob_id, sender, bytes(data))


class Client:
    """One device: sync, cloud backup and new-device restore. Its state (keys, group,
    cursors, outbox) is kept in ``state_dir``, one folder per device."""

    def __init__(self, state_dir: "os.PathLike[str] | str", device_name: Optional[str] = None) -> None:
        self._h = _native.Handle(os.fspath(state_dir), device_name)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> bool:
        await self.close()
        return False

    async def create_group(self, relays: Sequence[str]) -> None:
        """Creates a sync group with this device as its first member and connects.
        ``relays``: ``ENDPOINT_ID@IP:PORT`` each, the first one primary."""
        if isinstance(relays, str):
            raise TypeError("relays: a list of ENDPOINT_ID@IP:PORT strings, not one string")
        await _call(self._h.create_group(list(relays)))

    async def join_group(self, invite: str, relay: Optional[str] = None) -> None:
        """Joins from an invite URL, or a short code looked up at ``relay``, and connects."""
        await _call(self._h.join_group(invite, relay))

    async def connect(self) -> None:
        """Connects to this device's group (after the app restarts)."""
        await _call(self._h.connect())

    async def disconnect(self) -> None:
        """Lets pushes under way finish, then closes the connections."""
        await _call(self._h.disconnect())

    async def register_push_token(self, token: str, platform: str, app_id: Optional[str] = None) -> None:
        """Lets the relays wake this device with a silent push (``platform``: ``apns`` or
        ``fcm``; ``app_id``: the APNs bundle id) when a message arrives while it is offline."""
        await _call(self._h.register_push_token(token, platform, app_id))

    async def on_pause(self, budget_ms: int = 500) -> None:
        """The app goes to the background: sends what waits in the outbox within
        ``budget_ms``, then disconnects (the rest stays queued)."""
        await _call(self._h.on_pause(budget_ms))

    async def on_resume(self) -> List[Message]:
        """The app is back (or a push notification woke it): reconnects and pulls."""
        return [_message(m) for m in await _call(self._h.on_resume())]

    async def create_invite(self) -> Invite:
        """An invite for one more device (once, for 10 minutes)."""
        return Invite(*await _call(self._h.create_invite()))

    async def push(self, data: bytes) -> Pushed:
        """Encrypts, signs and pushes ``data`` to the group."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: bytes, not {type(data).__name__}")
        return Pushed(*await _call(self._h.push(bytes(data))))

    async def pull(self) -> List[Message]:
        """Everything new since the last pull, in order."""
        return [_message(m) for m in await _call(self._h.pull())]

    async def pull_after(self, cursor: int) -> List[Message]:
        """The group's messages after ``cursor``, read again (the saved cursor stays)."""
        return [_message(m) for m in await _call(self._h.pull_after(cursor))]

    async def status(self) -> SyncStatus:
        return SyncStatus(*await _call(self._h.status()))

    async def create_vault(self, url: str) -> str:
        """Creates a vault (a folder path, ``file://...`` or ``s3://bucket/prefix``) and keeps
        this device's key to it. Returns the recovery key: show it to the user once."""
        return await _call(self._h.create_vault(url))

    async def enable_backup(
        self,
        vault: str,
        paths: Sequence["os.PathLike[str] | str"],
        interval_secs: Optional[int] = None,
        after_messages: Optional[int] = None,
    ) -> None:
        """Snapshots ``paths`` to ``vault`` every ``interval_secs``, after ``after_messages``
        messages, and on :meth:`backup_now`."""
        folders = [os.fspath(p) for p in paths]
        await _call(self._h.enable_backup(vault, folders, interval_secs, after_messages))

    async def backup_now(self) -> BackupReport:
        return BackupReport(*await _call(self._h.backup_now()))

    async def backup_status(self) -> BackupStatus:
        return BackupStatus(*await _call(self._h.backup_status()))

    async def disable_backup(self) -> None:
        await _call(self._h.disable_backup())

    async def restore_new_device(
        self,
        vault: str,
        recovery_key: str,
        target: "os.PathLike[str] | str",
        snapshot: Optional[str] = None,
    ) -> Restored:
        """Makes this device the one backed up to ``vault``: restores its latest snapshot (or
        ``snapshot``) into ``target``, rejoins its sync group and returns every message after
        the snapshot. Then :meth:`connect` connects to the group."""
        sid, files, size, lost, messages, missing = await _call(
            self._h.restore_new_device(vault, recovery_key, os.fspath(target), snapshot)
        )
        return Restored(sid, files, size, list(lost), [_message(m) for m in messages], missing)

    async def events(self) -> AsyncIterator[Event]:
        """Events as they come, until the client closes. One reader at a time: two iterators
        share one stream (each event goes to one of them). Cancelling a wait (``wait_for``)
        ends the iterator; take a new one to go on."""
        while True:
            try:
                e = await _call(self._h.next_event())
            except ClosedError:
                return
            if e is None:
                return
            yield Event(*e)

    async def close(self) -> None:
        """Stops cloud backup, then sync (pushes under way finish); later calls raise
        :class:`ClosedError`."""
        try:
            await _call(self._h.close())
        except ClosedError:
            pass
