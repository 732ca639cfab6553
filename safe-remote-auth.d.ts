import type { RemoteAuth } from 'whatsapp-web.js'

/** Events SafeRemoteAuth emits on the client, besides RemoteAuth's own. */
export declare const Events: Readonly<{
  /** A backup attempt failed: `(err: Error & { code?: string, attempt: number })`. It is retried. */
  BACKUP_FAILED: 'remote_session_backup_failed'
  /** Every attempt of one backup failed: `(err)`. The next interval tries again. */
  BACKUP_GAVE_UP: 'remote_session_backup_gave_up'
  /** Another replica took the session: `(err)` with code ERR_LEASE_LOST. Backups stop; a delete on disconnect or logout deletes nothing. */
  LEASE_LOST: 'remote_session_lease_lost'
  /** The lease had expired (the store was unreachable for longer than its ttl) and nobody took it: `({ session })`. It is this replica's again; backups go on. */
  LEASE_RETAKEN: 'remote_session_lease_retaken'
  /** A renewal could not reach the store: `(err)`. Tried again at the next tick. */
  LEASE_RENEW_FAILED: 'remote_session_lease_renew_failed'
}>

export interface SafeRemoteAuthOptions {
  /** Wait before the first backup of a new login. Default 60000 (RemoteAuth's silent minute); 0: at once. */
  firstBackupDelayMs?: number
  /** Waits between attempts of a failed backup. Default [5000, 30000, 120000]. */
  retryDelaysMs?: number[]
  /** Delete the stored session when WhatsApp disconnects the client (CONFLICT, UNPAIRED, …). Default false: only `logout()` deletes. */
  deleteOnDisconnect?: boolean
  /** Back up once more in `destroy()`. Default true. */
  backupOnDestroy?: boolean
  /** Own the session through the store's lease; a second replica's `initialize()` fails with ERR_LEASE_HELD. Released on `destroy()` and `logout()`. With `token` (a fleet's: use `forFleet`) the fleet holds, renews and releases it. */
  lease?: boolean | { ttlMs?: number; renewEveryMs?: number; token?: string }
  /** With a store that has `saveProfile` / `restoreProfile` (RustStore): back up and restore the profile folder directly, no temp copy and no zip, each LevelDB read as a consistent snapshot. Default true; false keeps RemoteAuth's zip path. */
  directProfile?: boolean
}

type RemoteAuthOptions = ConstructorParameters<typeof RemoteAuth>[0]

export declare class SafeRemoteAuthClass extends RemoteAuth {
  constructor(options: RemoteAuthOptions & SafeRemoteAuthOptions)
  /** The auth strategy for a session a fleet started, from `onStart`'s argument: adopts the fleet's lease (renewed and released by the fleet). `options.store` must be the store the fleet runs on. */
  static forFleet<T extends typeof SafeRemoteAuthClass>(
    this: T,
    start: { clientId: string; token: string; ttlMs: number; renewEveryMs: number },
    options: RemoteAuthOptions & Omit<SafeRemoteAuthOptions, 'lease'>,
  ): InstanceType<T>
  /** One backup with retries; resolves true when stored, false after giving up. Never rejects. */
  backup(options?: { emit?: boolean }): Promise<boolean>
}

/** SafeRemoteAuth over a given RemoteAuth class (e.g. from a pinned whatsapp-web.js). */
export declare function safeRemoteAuth(remoteAuth: typeof RemoteAuth): typeof SafeRemoteAuthClass

/** SafeRemoteAuth over `require('whatsapp-web.js').RemoteAuth`. */
export declare const SafeRemoteAuth: typeof SafeRemoteAuthClass
