"""The scenarios every binding passes, in Python against a real relay (the ``zerok-relay``
binary, on loopback) and a local-folder vault, both started by the test: two clients pair
and exchange messages both ways with events; one backs a folder up; a third restores that
folder and its messages from the recovery key; a wrong key and a stopped relay raise their
named errors.

The relay binary is ``$ZEROK_RELAY``, else the workspace's ``target/{debug,release}/zerok-relay``.
"""

import asyncio
import json
import os
import pathlib
import subprocess

import pytest

import zerok

ROOT = pathlib.Path(__file__).resolve().parents[3]


def relay_binary() -> str:
    given = os.environ.get("ZEROK_RELAY")
    if given:
        return given
    for profile in ("debug", "release"):
        path = ROOT / "target" / profile / "zerok-relay"
        if path.exists():
            return str(path)
    pytest.fail("no zerok-relay binary: build it (cargo build --bin zerok-relay) or set ZEROK_RELAY")


class RelayProcess:
    """``zerok-relay`` on loopback, stopped gracefully by :meth:`stop`."""

    def __init__(self, data: pathlib.Path) -> None:
        self.proc = subprocess.Popen(
            [relay_binary(), "--data-dir", str(data), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "ZEROK_LOG": "warn"},
        )
        self.addr = json.loads(self.proc.stdout.readline())["addr"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
            assert code == 0, "the relay stops gracefully on SIGTERM"


@pytest.fixture
def relay(tmp_path):
    r = RelayProcess(tmp_path / "relay")
    yield r
    r.stop()


async def next_of(client: zerok.Client, events, kind: str) -> zerok.Event:
    async def find():
        async for e in events:
            if e.kind == kind:
                return e
        raise AssertionError(f"the client closed before a {kind} event")

    return await asyncio.wait_for(find(), timeout=10)


def test_pair_exchange_back_up_restore_and_fail_by_name(tmp_path, relay):
    asyncio.run(asyncio.wait_for(scenario(tmp_path, relay), timeout=180))


async def scenario(tmp_path: pathlib.Path, relay: RelayProcess) -> None:
    state = tmp_path / "a-state"
    state.mkdir()
    (state / "notes.db").write_bytes(b"the state on monday")
    vault = str(tmp_path / "vault")
    async with zerok.Client(tmp_path / "a", "A") as a, zerok.Client(tmp_path / "b", "B") as b, zerok.Client(
        tmp_path / "c", "C"
    ) as c:
        a_events, b_events = a.events(), b.events()
        await a.create_group([relay.addr])
        invite = await a.create_invite()
        assert invite.url.startswith("zerok://") and invite.expires_in_secs > 0
        await b.join_group(invite.url)

        pushed = await a.push(b"hello from a")
        assert (await next_of(a, a_events, "blob-pushed")).blob_id == pushed.blob_id
        assert (await next_of(b, b_events, "blob-available")).cursor == pushed.cursor
        assert [m.data for m in await b.pull()] == [b"hello from a"]
        await b.push(b"hello from b")
        await next_of(a, a_events, "blob-available")
        assert b"hello from b" in [m.data for m in await a.pull()]
        status = await a.status()
        assert status.in_group and status.status == "connected", status

        await a.on_pause(500)
        assert (await a.status()).status == "disconnected"
        await b.push(b"while a slept")
        assert [m.data for m in await a.on_resume()] == [b"while a slept"]

        recovery = await a.create_vault(vault)
        await a.enable_backup(vault, [state])
        saved = await a.backup_now()
        assert (await next_of(a, a_events, "backup-saved")).snapshot_id == saved.snapshot_id
        assert (await a.backup_status()).last_snapshot == saved.snapshot_id
        await b.push(b"after the snapshot")

        target = tmp_path / "restored"
        with pytest.raises(zerok.WrongKeyError) as wrong:
            await c.restore_new_device(vault, "0000-0000-0000-0000", target)
        assert not wrong.value.retryable
        assert not target.exists(), "a wrong key writes nothing"

        restored = await c.restore_new_device(vault, recovery, target)
        assert restored.snapshot_id == saved.snapshot_id
        assert (target / "notes.db").read_bytes() == b"the state on monday"
        assert [m.data for m in restored.messages] == [b"after the snapshot"]
        await c.connect()
        assert (await c.status()).status == "connected"

        await c.disconnect()
        relay.stop()
        with pytest.raises(zerok.UnreachableError) as down:
            await b.push(b"into the void")
        assert down.value.retryable
        with pytest.raises(zerok.UnreachableError):
            await c.connect()

    with pytest.raises(zerok.ClosedError):
        await a.push(b"after close")


def test_bad_input_is_named(tmp_path):
    async def run():
        async with zerok.Client(tmp_path / "x") as x:
            with pytest.raises(zerok.InvalidInputError):
                await x.create_group(["not an address"])
            with pytest.raises(zerok.InvalidInputError):
                await x.push(b"no group yet")
            with pytest.raises(zerok.NotFoundError):
                await x.connect()

    asyncio.run(run())
