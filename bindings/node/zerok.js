// zerok for Node.js: zero-knowledge sync and encrypted cloud backup for local-first apps.
// One Client per device; every method returns a Promise and its work runs on a Rust
// runtime of the client's own. Failures reject with a ZerokError whose `code` names what
// the app does next (WrongKey, Unreachable, …) and whose `retryable` says whether trying
// again later may help. Secrets stay inside: what comes out is the recovery key (once, from
// createVault) and invites.
'use strict';
const path = require('node:path');

const native = require(path.join(__dirname, 'zerok.node'));

class ZerokError extends Error {
  constructor(code, message, retryable) {
    super(message);
    this.name = 'ZerokError';
    this.code = code;
    this.retryable = retryable;
  }
}

/** The addon's rejection (`KIND|RETRYABLE|text`) as a ZerokError; anything else as it is. */
function named(e) {
  const m = /^([A-Za-z]+)\|(true|false)\|([\s\S]*)$/.exec(e && e.message);
  return m ? new ZerokError(m[1], m[3], m[2] === 'true') : e;
}

async function call(promise) {
  try {
    return await promise;
  } catch (e) {
    throw named(e);
  }
}

class Client {
  /** A device whose state (keys, group, cursors, outbox) is kept in `stateDir`. */
  constructor(stateDir, deviceName) {
    try {
      this.handle = new native.Handle(String(stateDir), deviceName ?? null);
    } catch (e) {
      throw named(e);
    }
  }

  async createGroup(relays) { return call(this.handle.createGroup(relays)); }
  async joinGroup(invite, relay) { return call(this.handle.joinGroup(invite, relay ?? null)); }
  async connect() { return call(this.handle.connect()); }
  async disconnect() { return call(this.handle.disconnect()); }
  /** Lets the relays wake this device with a silent push (platform 'apns' or 'fcm'). */
  async registerPushToken(token, platform, appId) {
    return call(this.handle.registerPushToken(token, platform, appId ?? null));
  }
  /** The app goes to the background: flushes the outbox within budgetMs, then disconnects. */
  async onPause(budgetMs = 500) { return call(this.handle.onPause(budgetMs)); }
  /** The app is back (or a push woke it): reconnects and pulls. */
  async onResume() { return call(this.handle.onResume()); }
  async createInvite() { return call(this.handle.createInvite()); }
  async push(data) { return call(this.handle.push(Buffer.from(data))); }
  async pull() { return call(this.handle.pull()); }
  async pullAfter(cursor) { return call(this.handle.pullAfter(cursor)); }
  async status() { return call(this.handle.status()); }
  async createVault(url) { return call(this.handle.createVault(url)); }
  async enableBackup(vault, paths, options = {}) {
    const { intervalSecs = null, afterMessages = null } = options;
    return call(this.handle.enableBackup(vault, paths.map(String), intervalSecs, afterMessages));
  }
  async backupNow() { return call(this.handle.backupNow()); }
  async backupStatus() { return call(this.handle.backupStatus()); }
  async disableBackup() { return call(this.handle.disableBackup()); }
  async restoreNewDevice(vault, recoveryKey, target, snapshot) {
    return call(this.handle.restoreNewDevice(vault, recoveryKey, String(target), snapshot ?? null));
  }
  async nextEvent() { return call(this.handle.nextEvent()); }

  /** Events as they come, until the client closes (one reader at a time). */
  async *events() {
    for (;;) {
      const event = await this.nextEvent();
      if (event === null) return;
      yield event;
    }
  }

  /** Stops cloud backup, then sync; later calls reject with code Closed. */
  async close() {
    try {
      await call(this.handle.close());
    } catch (e) {
      if (e.code !== 'Closed') throw e;
    }
  }
}

module.exports = { Client, ZerokError };
