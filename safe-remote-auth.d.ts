import type { RemoteAuth } from 'whatsapp-web.js'

/** Events SafeRemoteAuth emits on the client, besides RemoteAuth's own. */
export declare const Events: Readonly<{
  /** A backup attempt failed: `(err: Error & { code?: string, attempt: number })`. It is retried. */
  BACKUP_FAILED: 'remote_session_backup_failed'
  /** Every attempt of one backup failed: `(err)`. The next interval tries again. */
  BACKUP_GAVE_UP: 'remote_session_backup_gave_up'
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
}

type RemoteAuthOptions = ConstructorParameters<typeof RemoteAuth>[0]

export declare class SafeRemoteAuthClass extends RemoteAuth {
  constructor(options: RemoteAuthOptions & SafeRemoteAuthOptions)
  /** One backup with retries; resolves true when stored, false after giving up. Never rejects. */
  backup(options?: { emit?: boolean }): Promise<boolean>
}

/** SafeRemoteAuth over a given RemoteAuth class (e.g. from a pinned whatsapp-web.js). */
export declare function safeRemoteAuth(remoteAuth: typeof RemoteAuth): typeof SafeRemoteAuthClass

/** SafeRemoteAuth over `require('whatsapp-web.js').RemoteAuth`. */
export declare const SafeRemoteAuth: typeof SafeRemoteAuthClass
