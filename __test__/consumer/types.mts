// Type-checked from an ES module: the named exports and their types resolve through the exports map.
import { RustStore } from 'wwebjs-rust-store'
import { chromiumArgs, trimProfile } from 'wwebjs-rust-store/browser'
import { Events, SafeRemoteAuth, safeRemoteAuth, type SafeRemoteAuthOptions } from 'wwebjs-rust-store/safe-remote-auth'

const store: RustStore = new RustStore({ dir: 'store' })
const args: readonly string[] = chromiumArgs
const event: 'remote_session_lease_lost' = Events.LEASE_LOST
const options: SafeRemoteAuthOptions = { firstBackupDelayMs: 0 }
const auth = new SafeRemoteAuth({ store, backupSyncIntervalMs: 60_000, ...options })
const backup: Promise<boolean> = auth.backup()
export const used = [args, event, backup, trimProfile, safeRemoteAuth]
