// The guest API against tauri's IPC mocks (no webview runs here; the Rust side of each
// command is tested in tests/ipc.rs): what each wrapper sends, how it turns replies and
// rejections into the documented shapes, and how events reach a handler.
import { test, beforeEach } from 'node:test'
import assert from 'node:assert/strict'

import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import { emit } from '@tauri-apps/api/event'
import * as zerok from '../dist-js/index.js'

// The mocks keep their state on `window`.
globalThis.window ??= globalThis

let calls
beforeEach(() => {
  clearMocks()
  calls = []
})

function answer(replies, options) {
  mockIPC((cmd, args) => {
    calls.push([cmd, args])
    const reply = replies[cmd]
    if (reply instanceof Error || (reply && reply.reject)) throw reply.reject ?? reply
    return typeof reply === 'function' ? reply(args) : reply
  }, options)
}

test('bytes go out as the raw body and come back as Uint8Array', async () => {
  answer({
    'plugin:zerok|sync_push': { blobId: 'ab', cursor: 7 },
    'plugin:zerok|sync_pull': { blobs: [{ cursor: 7, blobId: 'ab', sender: 'cd', data: [104, 105] }], hasMore: false, maxCursor: 7 },
  })
  const bytes = new TextEncoder().encode('hi')
  assert.deepEqual(await zerok.syncPush(bytes), { blobId: 'ab', cursor: 7 })
  assert.equal(calls[0][0], 'plugin:zerok|sync_push')
  assert.ok(calls[0][1] instanceof Uint8Array, 'the payload is the bytes themselves')
  assert.deepEqual([...calls[0][1]], [104, 105])

  const pulled = await zerok.syncPull(3)
  assert.deepEqual(calls[1], ['plugin:zerok|sync_pull', { afterCursor: 3 }])
  assert.ok(pulled.blobs[0].data instanceof Uint8Array)
  assert.equal(new TextDecoder().decode(pulled.blobs[0].data), 'hi')
  await zerok.syncPull()
  assert.deepEqual(calls[2][1], {})
})

test('arguments are sent under the names the commands take', async () => {
  answer({
    'plugin:zerok|sync_join_invite': { inGroup: true, status: 'connected', attempt: null, lastCursor: 0, deviceId: 'x' },
    'plugin:zerok|restore_new_device': { target: '/t', snapshotId: 's', files: 1, bytes: 2, lost: [], messages: [{ cursor: 1, blobId: 'b', sender: 'd', data: [1] }], messagesMissing: 0 },
    'plugin:zerok|backup_enable': { enabled: true, running: false, lastSnapshot: null, lastError: null, snapshots: 0 },
    'plugin:zerok|on_pause': null,
    'plugin:zerok|register_push_token': null,
  })
  await zerok.syncJoinInvite('ABCD-EFGH', 'relay@127.0.0.1:1')
  await zerok.backupEnable({ intervalSecs: 60 })
  const restored = await zerok.restoreNewDevice('key words')
  await zerok.onPause(250)
  await zerok.registerPushToken('tok', 'fcm')
  assert.deepEqual(calls.map(([, a]) => a), [
    { invite: 'ABCD-EFGH', relay: 'relay@127.0.0.1:1' },
    { schedule: { intervalSecs: 60 } },
    { recoveryKey: 'key words' },
    { budgetMs: 250 },
    { token: 'tok', platform: 'fcm' },
  ])
  assert.ok(restored.messages[0].data instanceof Uint8Array)
})

test('a rejection becomes a ZerokError with its kind and whether to retry', async () => {
  answer({
    'plugin:zerok|sync_push': { reject: { kind: 'Unreachable', message: 'no relay answered', retryable: true } },
    'plugin:zerok|sync_status': { reject: 'plugin:zerok|sync_status not allowed' },
  })
  await assert.rejects(zerok.syncPush(new Uint8Array([1])), (e) => {
    assert.ok(e instanceof zerok.ZerokError)
    assert.deepEqual([e.kind, e.message, e.retryable], ['Unreachable', 'no relay answered', true])
    return true
  })
  await assert.rejects(zerok.syncStatus(), (e) => e instanceof zerok.ZerokError && e.kind === 'Other' && /not allowed/.test(e.message))
})

test('events reach the handler of their kind until unlistened', async () => {
  answer({}, { shouldMockEvents: true })
  const heard = []
  const unlisten = await zerok.onEvent('blob-available', (e) => heard.push(e))
  await emit('zerok://blob-available', { kind: 'blob-available', cursor: 9 })
  await emit('zerok://backup-saved', { kind: 'backup-saved', snapshotId: 's' })
  unlisten()
  await emit('zerok://blob-available', { kind: 'blob-available', cursor: 10 })
  assert.deepEqual(heard, [{ kind: 'blob-available', cursor: 9 }])
})
