// The guest API of tauri-plugin-zerok: typed wrappers over `invoke('plugin:zerok|…')` and
// `listen('zerok://…')`. Bytes go to Rust as the raw request body (no JSON number arrays on
// the way out); what comes back has bytes as `Uint8Array`. A failed command rejects with a
// `ZerokError` whose `kind` a page branches on and `retryable` says to try again later.

import { invoke } from '@tauri-apps/api/core'
import { listen, type Event, type UnlistenFn } from '@tauri-apps/api/event'

/** The kinds a command fails with. */
export type ErrorKind =
  | 'WrongKey'
  | 'Revoked'
  | 'Unreachable'
  | 'NotFound'
  | 'Corrupt'
  | 'Quota'
  | 'InvalidInput'
  | 'Invite'
  | 'Closed'
  | 'Other'

/** A failed command. */
export class ZerokError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message)
    this.name = 'ZerokError'
  }
}

/** An invite to show the user who pairs (it holds the group's secret: show it to nobody else). */
export interface Invite {
  /** The `zerok://…` URL to render as a QR code. */
  qrCode: string
  /** The short code to type on the other device. */
  shortCode: string
  /** When it stops working, Unix milliseconds. */
  expiresAt: number
}

export interface PushResult {
  blobId: string
  cursor: number
}

/** A message received, decrypted and checked to come from a member. */
export interface Blob {
  cursor: number
  blobId: string
  /** The device that pushed it (hex). */
  sender: string
  data: Uint8Array
}

export interface PullResult {
  blobs: Blob[]
  /** Pull again: more wait (one read stops after so many pages; after a key rotation the old group is read out first). */
  hasMore: boolean
  /** The cursor the read reached (past messages it refused too): give it as `afterCursor` to read on from there. */
  maxCursor: number
}

export interface SyncStatus {
  inGroup: boolean
  status: 'connected' | 'reconnecting' | 'disconnected'
  attempt: number | null
  lastCursor: number
  deviceId: string | null
}

export interface BackupSchedule {
  /** Every this many seconds (default hourly). */
  intervalSecs?: number
  /** After this many messages pushed or pulled (default 100). */
  afterMessages?: number
}

export interface BackupStatus {
  enabled: boolean
  running: boolean
  lastSnapshot: string | null
  lastError: string | null
  snapshots: number
}

export interface BackupReport {
  snapshotId: string
  files: number
  bytesAdded: number
}

export interface Restored {
  /** The folder restored into (the app's setting). */
  target: string
  snapshotId: string | null
  files: number
  bytes: number
  /** Paths whose data was lost or damaged. */
  lost: string[]
  /** The messages after the snapshot, in order, for the app to apply. */
  messages: Blob[]
  /** Messages after the snapshot the relay no longer held. */
  messagesMissing: number
}

/** An event's payload; which fields are set depends on `kind`. */
export interface ZerokEvent {
  kind: string
  relay?: string
  cursor?: number
  blobId?: string
  device?: string
  snapshotId?: string
  status?: string
  attempt?: number
  message?: string
}

/** The events a page listens to (`zerok://<kind>`). */
export type EventKind =
  | 'connected'
  | 'disconnected'
  | 'reconnecting'
  | 'status-changed'
  | 'blob-available'
  | 'blob-pushed'
  | 'device-revoked'
  | 'rotated'
  | 'backup-started'
  | 'backup-saved'
  | 'resumed'
  | 'error'

type Wire<T> = T extends Uint8Array
  ? number[]
  : T extends (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T

async function call<T>(cmd: string, args?: Record<string, unknown> | Uint8Array): Promise<T> {
  try {
    return await invoke<T>(`plugin:zerok|${cmd}`, args)
  } catch (e) {
    const err = e as { kind?: ErrorKind; message?: string; retryable?: boolean } | string
    if (typeof err === 'object' && err !== null && typeof err.kind === 'string') {
      throw new ZerokError(err.kind, err.message ?? '', err.retryable === true)
    }
    throw new ZerokError('Other', String(e), false)
  }
}

function blob(b: Wire<Blob>): Blob {
  return { ...b, data: Uint8Array.from(b.data) }
}

/** Connects this device's group, or creates one at `relays` (or the app's) if it has none. */
export const syncEnable = (relays?: string[]) => call<SyncStatus>('sync_enable', relays ? { relays } : {})

/** Disconnects; the group and the outbox stay. */
export const syncDisable = () => call<SyncStatus>('sync_disable')

/** An invite for one more device (once, for ten minutes). */
export const syncCreateInvite = () => call<Invite>('sync_create_invite')

/** Joins the group of an invite URL, or of a short code looked up at `relay`. */
export const syncJoinInvite = (invite: string, relay?: string) =>
  call<SyncStatus>('sync_join_invite', relay ? { invite, relay } : { invite })

/** Encrypts, signs and pushes `data` to the group. */
export const syncPush = (data: Uint8Array) => call<PushResult>('sync_push', data)

/** What is new since the last pull; with `afterCursor`, the messages after it read again. */
export async function syncPull(afterCursor?: number): Promise<PullResult> {
  const got = await call<Wire<PullResult>>('sync_pull', afterCursor === undefined ? {} : { afterCursor })
  return { ...got, blobs: got.blobs.map(blob) }
}

export const syncStatus = () => call<SyncStatus>('sync_status')

/** The primary relay's last pulled cursor. */
export const syncLastCursor = () => call<number>('sync_last_cursor')

/** Creates the app's vault; resolves to the recovery key, for the user to write down (shown once). */
export const vaultCreate = () => call<string>('vault_create')

/** Turns cloud backup of the app's folders on. */
export const backupEnable = (schedule?: BackupSchedule) =>
  call<BackupStatus>('backup_enable', schedule ? { schedule } : {})

export const backupDisable = () => call<BackupStatus>('backup_disable')

/** Takes a snapshot now. */
export const backupNow = () => call<BackupReport>('backup_now')

export const backupStatus = () => call<BackupStatus>('backup_status')

/** Makes this device the one backed up to the app's vault (then `syncEnable()` connects). */
export async function restoreNewDevice(recoveryKey: string, snapshot?: string): Promise<Restored> {
  const got = await call<Wire<Restored>>('restore_new_device', snapshot ? { recoveryKey, snapshot } : { recoveryKey })
  return { ...got, messages: got.messages.map(blob) }
}

/** The page is hidden: sends the outbox within `budgetMs` (or the app's budget), then disconnects. */
export const onPause = (budgetMs?: number) => call<void>('on_pause', budgetMs === undefined ? {} : { budgetMs })

/** The page is back (or a push woke the app): reconnects and pulls. */
export async function onResume(): Promise<Blob[]> {
  return (await call<Wire<Blob>[]>('on_resume')).map(blob)
}

/** Registers the app's push token at the group's relays, so a message wakes the app. */
export const registerPushToken = (token: string, platform: 'apns' | 'fcm', appId?: string) =>
  call<void>('register_push_token', appId ? { token, platform, appId } : { token, platform })

/** Calls `handler` on each `zerok://<kind>` event until the returned function is called. */
export function onEvent(kind: EventKind, handler: (event: ZerokEvent) => void): Promise<UnlistenFn> {
  return listen<ZerokEvent>(`zerok://${kind}`, (e: Event<ZerokEvent>) => handler(e.payload))
}
