/// <reference types="node" />
// Types of zerok for Node.js (see zerok.js).

/** What went wrong, named for what the app does next. */
export type ErrorCode =
  | 'WrongKey' | 'Revoked' | 'Unreachable' | 'NotFound' | 'Corrupt' | 'Quota'
  | 'InvalidInput' | 'Invite' | 'Closed' | 'Other';

export class ZerokError extends Error {
  readonly code: ErrorCode;
  /** Whether the same call may succeed later. */
  readonly retryable: boolean;
}

export interface Invite { url: string; code: string; expiresInSecs: number }
export interface Pushed { blobId: string; cursor: number }
export interface Message { cursor: number; blobId: string; sender: string; data: Buffer }
export interface SyncStatus {
  inGroup: boolean;
  status: 'connected' | 'reconnecting' | 'disconnected';
  attempt?: number;
  lastCursor: number;
  deviceId?: string;
}
export interface BackupReport { snapshotId: string; files: number; bytesAdded: number }
export interface BackupStatus {
  enabled: boolean; running: boolean; lastSnapshot?: string; lastError?: string; snapshots: number;
}
export interface Restored {
  snapshotId?: string; files: number; bytes: number; lost: string[];
  /** Every message after the snapshot, in order: apply them. */
  messages: Message[];
  messagesMissing: number;
}
export type EventKind =
  | 'connected' | 'disconnected' | 'reconnecting' | 'status-changed' | 'blob-available'
  | 'blob-pushed' | 'device-revoked' | 'rotated' | 'backup-started' | 'backup-saved' | 'error';
export interface Event {
  kind: EventKind;
  relay?: string; cursor?: number; blobId?: string; device?: string; snapshotId?: string;
  status?: string; attempt?: number; message?: string;
}

export class Client {
  /** A device whose state (keys, group, cursors, outbox) is kept in `stateDir`. */
  constructor(stateDir: string, deviceName?: string);
  /** Creates a sync group at `relays` (`ENDPOINT_ID@IP:PORT`, the first primary) and connects. */
  createGroup(relays: string[]): Promise<void>;
  /** Joins from an invite URL, or a short code looked up at `relay`, and connects. */
  joinGroup(invite: string, relay?: string): Promise<void>;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  /** Lets the relays wake this device with a silent push when a message arrives while it is offline. */
  registerPushToken(token: string, platform: 'apns' | 'fcm', appId?: string): Promise<void>;
  /** The app goes to the background: flushes the outbox within budgetMs (default 500), then disconnects. */
  onPause(budgetMs?: number): Promise<void>;
  /** The app is back (or a push notification woke it): reconnects and pulls. */
  onResume(): Promise<Message[]>;
  createInvite(): Promise<Invite>;
  push(data: Uint8Array | string): Promise<Pushed>;
  pull(): Promise<Message[]>;
  pullAfter(cursor: number): Promise<Message[]>;
  status(): Promise<SyncStatus>;
  /** Creates a vault and keeps this device's key; resolves to the recovery key (show it once). */
  createVault(url: string): Promise<string>;
  enableBackup(vault: string, paths: string[], options?: { intervalSecs?: number; afterMessages?: number }): Promise<void>;
  backupNow(): Promise<BackupReport>;
  backupStatus(): Promise<BackupStatus>;
  disableBackup(): Promise<void>;
  /** Makes this device the one backed up to `vault`; then `connect()`. */
  restoreNewDevice(vault: string, recoveryKey: string, target: string, snapshot?: string): Promise<Restored>;
  nextEvent(): Promise<Event | null>;
  events(): AsyncIterableIterator<Event>;
  close(): Promise<void>;
}
