// `node bench/profile.mjs` (part of `npm run bench`): SafeRemoteAuth's backup and restore of whole profiles,
// three ways in one run, on whatsapp-web.js 1.34.7's RemoteAuth:
//   direct: SafeRemoteAuth + RustStore, saveProfile / restoreProfile (no zip);
//   zip:    SafeRemoteAuth + RustStore with directProfile: false (RemoteAuth's copy + archiver zip, store.save;
//           store.extract + unzipper's directory reader);
//   seed:   plain RemoteAuth + the seed's Redis store (bench/contenders/seed-redis-store.js).
// Per operation: wall time, JS-thread time (event-loop utilisation's active ms) and the event loop's longest
// delay, p50 of RUNS. Writes bench/profile.md. Profiles from support/synthetic-profile.js (junk included, as
// RemoteAuth has to walk past it).
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

import { startServers } from './servers.mjs'

const require = createRequire(import.meta.url)
const { RustStore } = require('../index.js')
const { safeRemoteAuth } = require('../safe-remote-auth.js')
const { makeProfile } = require('../support/synthetic-profile.js')
const { fakeClient } = require('../support/remoteauth.js')
const Redis = require('ioredis')
const RemoteAuth = require('whatsapp-web.js/src/authStrategies/RemoteAuth.js')
const SafeRemoteAuth = safeRemoteAuth(RemoteAuth)
const { SeedRedisStore: SeedStore } = require('./contenders/seed-redis-store.js')
const RUNS = Number(process.env.RUNS ?? 5)
const SIZES = (process.env.SIZES ?? "small,medium,large").split(",")

/** Times `fn` on the JS thread: wall ms, ELU active ms, event-loop max delay ms. */
async function measure(fn) {
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  const elu = performance.eventLoopUtilization()
  const t0 = performance.now()
  await fn()
  const wall = performance.now() - t0
  const busy = performance.eventLoopUtilization(elu).active
  h.disable()
  return { wall, busy, loopMax: h.max / 1e6 }
}

const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function auth(Class, store, dataPath, extra = {}) {
  const a = new Class({ store, dataPath, clientId: 'bench', backupSyncIntervalMs: 60_000, ...extra })
  a.setup(fakeClient())
  return a
}

async function run() {
  const servers = await startServers()
  const redis = new Redis(servers.redis.url)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-profile-bench-'))
  const cwd = process.cwd()
  // The seed's store reads `<cwd>/<session>.zip`; RemoteAuth 1.34.7 writes `<dataPath>/<session>.zip`: one folder.
  process.chdir(root)
  const rows = []
  try {
    for (const size of SIZES) {
      const ways = {
        direct: () => auth(SafeRemoteAuth, new RustStore({ dir: path.join(root, 'store-direct'), dataPath: root }), root),
        zip: () => auth(SafeRemoteAuth, new RustStore({ dir: path.join(root, 'store-zip'), dataPath: root }), root, { directProfile: false }),
        seed: () => auth(RemoteAuth, new SeedStore({ redis, prefix: `bench-${size}:` }), root),
      }
      for (const [way, make] of Object.entries(ways)) {
        const backups = []
        const restores = []
        let stored = null
        for (let i = 0; i < RUNS; i++) {
          const strategy = make()
          await strategy.beforeBrowserInitialized() // nothing stored on the first run: a fresh profile
          makeProfile(strategy.userDataDir, { size, seed: 1 }) // the logged-in profile, with the caches a browser writes
          backups.push(await measure(() => (way === 'seed' ? strategy.storeRemoteSession() : strategy.backup())))
          const next = make()
          restores.push(await measure(() => next.beforeBrowserInitialized()))
          stored = next.store.listSessions ? (await next.store.listSessions())[0].storedBytes : Number(await redis.strlen(`bench-${size}:RemoteAuth-bench`))
        }
        const row = { size, way, stored }
        for (const [name, xs] of [['backup', backups], ['restore', restores]]) {
          for (const k of ['wall', 'busy', 'loopMax']) row[`${name}.${k}`] = p50(xs.map((x) => x[k]))
        }
        rows.push(row)
        console.log(JSON.stringify(row))
      }
    }
  } finally {
    process.chdir(cwd)
    redis.disconnect()
    await servers.stop()
    fs.rmSync(root, { recursive: true, force: true })
  }
  return rows
}

const rows = await run()
const f = (x) => x.toFixed(x < 10 ? 1 : 0)
const lines = [
  `# SafeRemoteAuth profile backup / restore (\`node bench/profile.mjs\`)`,
  '',
  `${os.cpus().length} × ${os.cpus()[0].model}, Node ${process.version}, addon build: ${process.env.BENCH_BUILD ?? 'as built'}; p50 of ${RUNS}. ms.`,
  '',
  '| profile | way | stored KiB | backup | JS thread | loop max | restore | JS thread | loop max |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.size} | ${r.way} | ${(r.stored / 1024).toFixed(0)} | ${f(r['backup.wall'])} | ${f(r['backup.busy'])} | ${f(r['backup.loopMax'])} | ${f(r['restore.wall'])} | ${f(r['restore.busy'])} | ${f(r['restore.loopMax'])} |`),
  '',
]
fs.writeFileSync(new URL('./profile.md', import.meta.url), lines.join('\n'))
console.log(lines.join('\n'))
