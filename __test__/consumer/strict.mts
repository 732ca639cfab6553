// Compiled under `tsc --strict` by __test__/typings.spec.mjs, with the package's own declarations checked (no
// skipLibCheck for them): every type the package exports is used here as an application would use it. The spec
// fails when an export of index.d.ts, safe-remote-auth.d.ts or browser.d.ts is missing from this file.
import {
  __napiBindingTarget,
  type BackupStatus,
  type BackupVersion,
  type CliOutput,
  type DiskAlertOptions,
  type DiskStats,
  type EncryptionOptions,
  type EntryFailure,
  type ExportedSession,
  type ExportOptions,
  type ExportReport,
  type ExtractArgs,
  Fleet,
  type FleetEvent,
  type FleetOptions,
  type FleetSession,
  type FleetStatus,
  type FleetUnassigned,
  type FleetWorker,
  type ImportedSession,
  type ImportOptions,
  type ImportReport,
  type IncrementalStats,
  type JsFleet,
  type LargestSession,
  type LeftoverStats,
  type LeaseOptions,
  type MemoryStats,
  type MetricsAddress,
  type ProfileArgs,
  type RedisOptions,
  type RedisTlsOptions,
  runCli,
  RustStore,
  type RustStoreOptions,
  type S3Options,
  type SaveArgs,
  type SessionArgs,
  type StoredSession,
  type StoreStats,
  type TierStats,
  type TransferArgs,
  type TransferFailure,
  type TransferS3Options,
  type TransferSummary,
} from 'wwebjs-rust-store'
import {
  chromiumArgs,
  defaultKeptCaches,
  defaultTrimDatabases,
  protectedDatabases,
  trimProfile,
  type TrimmableClient,
  type TrimProfileOptions,
  type TrimProfileResult,
} from 'wwebjs-rust-store/browser'
import {
  Events,
  SafeRemoteAuth,
  SafeRemoteAuthClass,
  safeRemoteAuth,
  type SafeRemoteAuthOptions,
} from 'wwebjs-rust-store/safe-remote-auth'
import { Client, RemoteAuth } from 'whatsapp-web.js'

const target: 'native' | 'wasm32-wasi' | 'wasm32-wasip1' = __napiBindingTarget

const tls: RedisTlsOptions = { caFile: '/etc/ssl/ca.pem', insecure: false }
const redis: RedisOptions = {
  url: 'rediss://redis:6380',
  tls,
  prefix: 'wa:session:',
  ttlSeconds: 0,
  connectTimeoutMs: 5000,
  commandTimeoutMs: 10000,
  minReplicas: 1,
  replicaTimeoutMs: 2000,
}
const sentinel: RedisOptions = { sentinels: ['10.0.0.1:26379'], name: 'mymaster', password: 'p', db: 0 }
const s3: S3Options = { bucket: 'sessions', endpoint: 'http://minio:9000', forcePathStyle: true, keepVersions: 5, incremental: true }
const encryption: EncryptionOptions = { key: 'k', previousKeys: ['old'], acceptPlain: false }
const diskAlert: DiskAlertOptions = { webhookUrl: 'https://hooks.example/x', minFreeBytes: 1 << 30, checkIntervalMs: 60_000 }
const options: RustStoreOptions = {
  dataPath: '.wwebjs_auth',
  redis,
  s3,
  encryption,
  diskAlert,
  keep: ['Default/IndexedDB'],
  saveErrors: 'reject',
  onError: (err) => console.error(err.code, err.message),
  metricsPort: 0,
  metricsHost: '0.0.0.0',
}
const noPrimary: RustStoreOptions = { primary: 'none', s3 }
const store = new RustStore(options)
const fromEnv: RustStore = RustStore.fromEnv({ redis: sentinel })
new RustStore()
new RustStore(null)
new RustStore(noPrimary)
// @ts-expect-error: an unknown option is refused at compile time, as it is at run time (ERR_INVALID_OPTION)
new RustStore({ dirr: './x' })
// @ts-expect-error: and at every level
new RustStore({ redis: { url: 'redis://redis:6379', ttl: 5 } })
// @ts-expect-error: a wrong type too
new RustStore({ dir: 42 })

async function everyMethod(): Promise<void> {
  const session: SessionArgs = { session: 'RemoteAuth-a' }
  const exists: boolean = await store.sessionExists(session)
  const saveArgs: SaveArgs = { session: 'RemoteAuth-a', path: '/tmp/a.zip', saveErrors: 'report' }
  const saved: StoredSession | null = await store.save(saveArgs)
  const profile: ProfileArgs = { session: 'RemoteAuth-a', dir: '.wwebjs_auth/RemoteAuth-a' }
  const profiled: StoredSession = await store.saveProfile(profile)
  await store.restoreProfile(profile)
  const extractArgs: ExtractArgs = { session: 'RemoteAuth-a', path: 'a.zip', at: Date.now() }
  const extracted: StoredSession = await store.extract(extractArgs)
  const versions: BackupVersion[] = await store.listBackups('RemoteAuth-a')
  await store.delete(session)
  const transfer: TransferArgs = { concurrency: 4, onProgress: (done: number, total: number) => console.log(done / total) }
  const summary: TransferSummary = await store.restoreAll(transfer)
  const failure: TransferFailure | undefined = summary.failures[0]
  const failedSession: string | undefined = failure?.session
  await store.backupAll()
  const closed: TransferSummary = await store.close()
  const backups: BackupStatus | null = store.backupStatus()
  const stats: StoreStats = await store.stats()
  const tier: TierStats | undefined = stats.tiers[0]
  const role: 'primary' | 'backup' | undefined = tier?.role
  const largest: LargestSession | undefined = stats.largestSession
  const disk: DiskStats | undefined = stats.disk
  const incremental: IncrementalStats | undefined = stats.incremental
  const memory: MemoryStats | undefined = stats.memory
  const leftovers: LeftoverStats = stats.crashLeftovers
  const leftoverBytes: number = leftovers.bytes
  const text: string = await store.metrics()
  const address: MetricsAddress | null = store.metricsAddress()
  const url: string | undefined = address?.url
  const lease: LeaseOptions = { ttlMs: 30_000 }
  const token: string = await store.acquireLease('RemoteAuth-a', lease)
  const renewed: 'renewed' | 'retaken' = await store.renewLease('RemoteAuth-a', token, lease)
  await store.releaseLease('RemoteAuth-a', token)
  const transferS3: TransferS3Options = { endpoint: 'http://minio:9000', forcePathStyle: true }
  const importOptions: ImportOptions = { execute: true, pattern: 'wa:*', concurrency: 8, s3: transferS3 }
  const imported: ImportReport = await store.importFrom('s3://old/prefix/', importOptions)
  const entry: ImportedSession | undefined = imported.sessions[0]
  const status: ImportedSession['status'] | undefined = entry?.status
  const entryError: EntryFailure | undefined = entry?.error
  const exportOptions: ExportOptions = { sessions: ['RemoteAuth-a'], at: 0 }
  const exported: ExportReport = await store.exportTo('./out', exportOptions)
  const written: ExportedSession | undefined = exported.sessions[0]
  const listed: StoredSession[] = await store.listSessions()
  const cli: CliOutput = await runCli(['stats', '--json'])
  console.log(exists, saved, profiled, extracted, versions, failedSession, closed, backups, role, largest, disk)
  console.log(incremental, memory, text, url, renewed, status, entryError, written, listed, cli.code)
}

async function fleetWorker(): Promise<void> {
  const onStart = async (start: FleetSession): Promise<void> => {
    const client = new Client({ authStrategy: SafeRemoteAuth.forFleet(start, { store, backupSyncIntervalMs: 300_000 }) })
    await client.initialize()
  }
  const onEvent = (event: FleetEvent): void => {
    const kind: 'unassigned' | 'startFailed' | 'startTimedOut' | 'stopFailed' | 'duplicateWorker' | 'restored' | 'restoreFailed' =
      event.type
    const code: string | undefined = event.code
    console.log(kind, code, event.session, event.forMs, event.message)
  }
  const fleetOptions: FleetOptions = {
    workerId: 'worker-1',
    capacity: 20,
    ttlMs: 30_000,
    backupListEveryMs: 60_000,
    startTimeoutMs: 120_000,
    onStart,
    onStop: async (session: string, reason) => console.log(session, reason),
    onEvent,
  }
  const givenUp: Parameters<FleetOptions['onStop']>[1] = 'timeout'
  console.log(givenUp)
  const fleet: Fleet = store.fleet(fleetOptions)
  const same: JsFleet = fleet
  const status: FleetStatus = same.status()
  const worker: FleetWorker | undefined = status.workers[0]
  const waiting: FleetUnassigned | undefined = status.unassigned[0]
  console.log(worker?.id, waiting?.forMs, status.connected)
  await fleet.pin('RemoteAuth-a', 'worker-2')
  await fleet.pause('RemoteAuth-a')
  await fleet.unpin('RemoteAuth-a')
  await fleet.drain()
  await fleet.close()
  await store.close()
}

async function browser(client: TrimmableClient): Promise<TrimProfileResult> {
  const trim: TrimProfileOptions = { databases: [...defaultTrimDatabases], keepCaches: [...defaultKeptCaches] }
  const args: readonly string[] = [...chromiumArgs, ...protectedDatabases]
  console.log(args)
  return trimProfile(client, trim)
}

function safeAuth(): void {
  const options: SafeRemoteAuthOptions = {
    firstBackupDelayMs: 0,
    retryDelaysMs: [5000],
    deleteOnDisconnect: false,
    backupOnDestroy: true,
    lease: { ttlMs: 30_000, renewEveryMs: 10_000 },
    directProfile: true,
  }
  const auth: SafeRemoteAuthClass = new SafeRemoteAuth({ store, backupSyncIntervalMs: 60_000, clientId: 'a', ...options })
  const Pinned: typeof SafeRemoteAuthClass = safeRemoteAuth(RemoteAuth)
  const viaFactory = new Pinned({ store, backupSyncIntervalMs: 60_000 })
  const lost: 'remote_session_lease_lost' = Events.LEASE_LOST
  const backedUp: Promise<boolean> = auth.backup({ emit: true })
  console.log(viaFactory, lost, backedUp)
}

export const used = [target, fromEnv, everyMethod, fleetWorker, browser, safeAuth]
