// SafeRemoteAuth over a RustStore moves the profile folder straight to the store and back (saveProfile /
// restoreProfile): no zip on either side, on each supported whatsapp-web.js, on the embedded tier and on Redis with
// S3 backups; sessions saved by either path restore by the other.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, require, tempDir, waitForFiles } from './helpers.mjs'
import { startMoto, startRedis } from './servers.mjs'

const { started } = require('../support/remoteauth.js')
const { safeRemoteAuth } = require('../safe-remote-auth.js')
const VERSIONS = ['wwebjs-1.34.4', 'wwebjs-1.34.6', 'whatsapp-web.js']

function RemoteAuthOf(pkg) {
  return require(`${pkg}/src/authStrategies/RemoteAuth.js`)
}


/** Counts the store's zip calls (`save`, `extract`), which the direct path must never make. */
function zipCalls(store) {
  const calls = []
  for (const name of ['save', 'extract']) {
    const original = store[name].bind(store)
    store[name] = (args) => {
      calls.push(name)
      return original(args)
    }
  }
  return calls
}

/** Every file below `root`, relative. */
function listing(root) {
  return fs
    .readdirSync(root, { recursive: true })
    .filter((rel) => fs.statSync(path.join(root, rel)).isFile())
    .map((rel) => rel.split(path.sep).join('/'))
    .sort()
}

function sameFiles(t, root, kept, label) {
  t.deepEqual(listing(root), Object.keys(kept).sort(), `${label}: exactly the kept files`)
  for (const [rel, data] of Object.entries(kept)) t.true(fs.readFileSync(path.join(root, rel)).equals(data), `${label}: ${rel}`)
}

/** Runs `fn` with `root` as the cwd (RemoteAuth 1.34.4 writes its zip there). */
async function inDir(t, root, fn) {
  const cwd = process.cwd()
  process.chdir(root)
  try {
    return await fn()
  } finally {
    process.chdir(cwd)
  }
}

test.serial('backup and restore of the folder on every release and tier (embedded, Redis + S3, S3 incremental), no zip written or asked for', async (t) => {
  const redis = await startRedis(t)
  const moto = await startMoto(t)
  const bucket = await moto.bucket('profiles')
  const tiers = {
    local: (root) => ({ dir: path.join(root, 'store') }),
    'redis + s3': () => ({
      redis: { url: redis.url, prefix: `p${Math.random().toString(36).slice(2)}:` },
      s3: { endpoint: moto.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0 },
    }),
    's3 alone, incremental': () => ({
      primary: 'none',
      s3: { endpoint: moto.endpoint, bucket, prefix: `p${Math.random().toString(36).slice(2)}/`, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', incremental: true },
    }),
  }
  for (const pkg of VERSIONS) {
    for (const [tier, options] of Object.entries(tiers)) {
      const label = `${pkg} on ${tier}`
      const root = tempDir(t)
      const dataPath = path.join(root, 'auth')
      const storeOptions = { dataPath, ...options(root) }
      await inDir(t, root, async () => {
        const SafeRemoteAuth = safeRemoteAuth(RemoteAuthOf(pkg))
        const store = new RustStore(storeOptions)
        const calls = zipCalls(store)
        const first = await started(SafeRemoteAuth, { store, dataPath })
        t.true(first.auth.directProfile, label)
        t.deepEqual(listing(first.auth.userDataDir), [], `${label}: nothing stored, a fresh empty profile`)
        const kept = makeProfile(first.auth.userDataDir, { size: 'medium', seed: 11 })
        t.true(await first.auth.backup({ emit: true }), label)
        t.deepEqual(first.client.events.map(([name]) => name), ['remote_session_saved'], label)
        await first.auth.destroy() // one more backup, of the same folder

        // A restarted process over the same storage: the old (changed) profile is replaced whole.
        fs.writeFileSync(path.join(first.auth.userDataDir, 'Default', 'IndexedDB', 'stray'), 'x')
        const store2 = new RustStore(storeOptions)
        calls.push(...zipCalls(store2))
        const second = await started(SafeRemoteAuth, { store: store2, dataPath })
        sameFiles(t, second.auth.userDataDir, kept, label)
        t.deepEqual(calls, [], `${label}: neither save nor extract was called`)
        t.deepEqual(fs.readdirSync(dataPath), ['RemoteAuth-acct'], `${label}: no zip, temp or aside folder`)
        t.deepEqual(fs.readdirSync(root).filter((f) => f.endsWith('.zip')), [], label)

        await second.auth.logout()
        t.false(await store2.sessionExists({ session: 'RemoteAuth-acct' }), label)
        await store2.close()
        await store.close()
      })
    }
  }
})

test.serial('a session saved by the zip path restores by the folder path, and back', async (t) => {
  for (const pkg of VERSIONS) {
    const RemoteAuth = RemoteAuthOf(pkg)
    const SafeRemoteAuth = safeRemoteAuth(RemoteAuth)
    const root = tempDir(t)
    const dataPath = path.join(root, 'auth')
    await inDir(t, root, async () => {
      const store = new RustStore({ dir: path.join(root, 'store'), dataPath, saveErrors: 'reject' })
      // Plain RemoteAuth saves a zip; SafeRemoteAuth restores the folder from it.
      const plain = await started(RemoteAuth, { store, dataPath })
      const kept = makeProfile(plain.auth.userDataDir, { seed: 21 })
      await plain.auth.storeRemoteSession()
      const safe = await started(SafeRemoteAuth, { store, dataPath })
      sameFiles(t, safe.auth.userDataDir, kept, `${pkg}: zip → folder`)

      // SafeRemoteAuth saves the folder; plain RemoteAuth and SafeRemoteAuth's zip path restore it.
      const changed = makeProfile(safe.auth.userDataDir, { seed: 22 })
      t.true(await safe.auth.backup())
      fs.rmSync(safe.auth.userDataDir, { recursive: true })
      const again = await started(RemoteAuth, { store, dataPath })
      await waitForFiles(again.auth.userDataDir, changed)
      for (const [rel, data] of Object.entries(changed)) {
        t.true(fs.readFileSync(path.join(again.auth.userDataDir, rel)).equals(data), `${pkg}: folder → zip: ${rel}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 200)) // RemoteAuth's unzip may still be writing
      const zipPath = await started(SafeRemoteAuth, { store, dataPath, directProfile: false })
      t.false(zipPath.auth.directProfile)
      fs.rmSync(path.join(zipPath.auth.userDataDir, 'wwebjs-rust-store.pad'), { force: true })
      sameFiles(t, zipPath.auth.userDataDir, changed, `${pkg}: folder → SafeRemoteAuth's zip path`)
    })
  }
})

test('a failed restore keeps the old profile and rejects with a code; other stores keep the zip path', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const SafeRemoteAuth = safeRemoteAuth(RemoteAuthOf('whatsapp-web.js'))
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath })
  const first = await started(SafeRemoteAuth, { store, dataPath })
  makeProfile(first.auth.userDataDir, { seed: 1 })
  t.true(await first.auth.backup())
  const before = listing(first.auth.userDataDir)
  const stored = path.join(root, 'store', 'RemoteAuth-acct.wwrs')
  const bytes = fs.readFileSync(stored)
  bytes[bytes.length - 1] ^= 1
  fs.writeFileSync(stored, bytes)
  const err = await t.throwsAsync(started(SafeRemoteAuth, { store, dataPath }))
  t.is(err.code, 'ERR_ARCHIVE_CORRUPT')
  t.deepEqual(listing(first.auth.userDataDir), before, 'the old profile is still there, whole (RemoteAuth deletes it first)')

  const other = { sessionExists: async () => false, save: async () => {}, extract: async () => {}, delete: async () => {} }
  t.false(new SafeRemoteAuth({ store: other, dataPath, backupSyncIntervalMs: 60_000 }).directProfile)
  t.throws(() => new SafeRemoteAuth({ store, dataPath, backupSyncIntervalMs: 60_000, directProfile: 'yes' }), {
    code: 'ERR_INVALID_OPTION',
  })
})
