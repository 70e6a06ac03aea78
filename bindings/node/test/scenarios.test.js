// The scenarios every binding passes, in Node.js against a real relay (the zerok-relay
// binary, on loopback) and a local-folder vault, both started by the test: two clients pair
// and exchange messages both ways with events; one backs a folder up; a third restores
// that folder and its messages from the recovery key; a wrong key and a stopped relay
// reject with their named codes. The relay binary is $ZEROK_RELAY, else the workspace's
// target/{debug,release}/zerok-relay.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const { Client, ZerokError } = require('..');

const ROOT = path.resolve(__dirname, '..', '..', '..');

function relayBinary() {
  if (process.env.ZEROK_RELAY) return process.env.ZEROK_RELAY;
  for (const profile of ['debug', 'release']) {
    const p = path.join(ROOT, 'target', profile, 'zerok-relay');
    if (fs.existsSync(p)) return p;
  }
  throw new Error('no zerok-relay binary: build it (cargo build --bin zerok-relay) or set ZEROK_RELAY');
}

/** zerok-relay on loopback; resolves once it printed its address. */
async function startRelay(data) {
  const proc = spawn(relayBinary(), ['--data-dir', data, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--json'], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, ZEROK_LOG: 'warn' },
  });
  const lines = readline.createInterface({ input: proc.stdout });
  const [first] = await Promise.race([
    new Promise((resolve) => lines.once('line', (l) => resolve([l]))),
    new Promise((_, reject) => proc.once('exit', (c) => reject(new Error(`relay exited with ${c}`)))),
  ]);
  // Resolves to the exit code (null when a signal ended it); SIGKILL after 10 s.
  const stop = () =>
    new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
      const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      proc.once('exit', (code) => {
        clearTimeout(kill);
        resolve(code);
      });
      proc.kill('SIGTERM');
    });
  return { addr: JSON.parse(first).addr, stop };
}

/** The next event of `kind` from `events` (an async iterator), within 10 s. */
async function nextOf(events, kind) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${kind} event within 10 s`)), 10_000);
  });
  const find = (async () => {
    for (;;) {
      const { value, done } = await events.next();
      if (done) throw new Error(`the client closed before a ${kind} event`);
      if (value.kind === kind) return value;
    }
  })();
  try {
    return await Promise.race([find, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof ZerokError, `${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test('pair, exchange, back up, restore, and fail by name', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zerok-node-'));
  const relay = await startRelay(path.join(tmp, 'relay'));
  const state = path.join(tmp, 'a-state');
  fs.mkdirSync(state);
  fs.writeFileSync(path.join(state, 'notes.db'), 'the state on monday');
  const vault = path.join(tmp, 'vault');
  const clients = [];
  try {
    const [a, b, c] = ['A', 'B', 'C'].map((name) => {
      const client = new Client(path.join(tmp, name.toLowerCase()), name);
      clients.push(client);
      return client;
    });
    const aEvents = a.events();
    const bEvents = b.events();
    await a.createGroup([relay.addr]);
    const invite = await a.createInvite();
    assert.ok(invite.url.startsWith('zerok://') && invite.expiresInSecs > 0);
    await b.joinGroup(invite.url);

    const pushed = await a.push('hello from a');
    assert.equal((await nextOf(aEvents, 'blob-pushed')).blobId, pushed.blobId);
    assert.equal((await nextOf(bEvents, 'blob-available')).cursor, pushed.cursor);
    assert.deepEqual((await b.pull()).map((m) => m.data.toString()), ['hello from a']);
    await b.push(Buffer.from('hello from b'));
    await nextOf(aEvents, 'blob-available');
    assert.ok((await a.pull()).some((m) => m.data.toString() === 'hello from b'));
    const status = await a.status();
    assert.ok(status.inGroup && status.status === 'connected', JSON.stringify(status));

    await a.onPause(500);
    assert.equal((await a.status()).status, 'disconnected');
    await b.push('while a slept');
    assert.deepEqual((await a.onResume()).map((m) => m.data.toString()), ['while a slept']);

    const recovery = await a.createVault(vault);
    await a.enableBackup(vault, [state]);
    const saved = await a.backupNow();
    assert.equal((await nextOf(aEvents, 'backup-saved')).snapshotId, saved.snapshotId);
    assert.equal((await a.backupStatus()).lastSnapshot, saved.snapshotId);
    await b.push('after the snapshot');

    const target = path.join(tmp, 'restored');
    await rejectsWith(c.restoreNewDevice(vault, '0000-0000-0000-0000', target), 'WrongKey');
    assert.ok(!fs.existsSync(target), 'a wrong key writes nothing');

    const restored = await c.restoreNewDevice(vault, recovery, target);
    assert.equal(restored.snapshotId, saved.snapshotId);
    assert.equal(fs.readFileSync(path.join(target, 'notes.db'), 'utf8'), 'the state on monday');
    assert.deepEqual(restored.messages.map((m) => m.data.toString()), ['after the snapshot']);
    await c.connect();
    assert.equal((await c.status()).status, 'connected');

    await c.disconnect();
    assert.equal(await relay.stop(), 0, 'the relay stops gracefully on SIGTERM');
    await assert.rejects(b.push('into the void'), (e) => e.code === 'Unreachable' && e.retryable === true);
    await rejectsWith(c.connect(), 'Unreachable');
    await a.close();
    await rejectsWith(a.push('after close'), 'Closed');
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await relay.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('bad input is named', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zerok-node-'));
  const x = new Client(path.join(tmp, 'x'));
  try {
    await rejectsWith(x.createGroup(['not an address']), 'InvalidInput');
    await rejectsWith(x.push('no group yet'), 'InvalidInput');
    await rejectsWith(x.connect(), 'NotFound');
  } finally {
    await x.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
