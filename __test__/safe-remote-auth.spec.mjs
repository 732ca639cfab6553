// SafeRemoteAuth against whatsapp-web.js's own RemoteAuth, on the real code paths (no browser): each fix next
// to the original behaviour it replaces.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, require, tempDir } from './helpers.mjs'

const { started } = require('../support/remoteauth.js')
const { safeRemoteAuth, Events } = require('../safe-remote-auth.js')
const RemoteAuth = require('whatsapp-web.js/src/authStrategies/RemoteAuth.js')
const SafeRemoteAuth = safeRemoteAuth(RemoteAuth)


function countMissing(root, kept) {
  return Object.entries(kept).filter(([rel, data]) => {
    try {
      return fs.statSync(path.join(root, rel)).size !== data.length
    } catch {
      return true
    }
  }).length
}

test('restore resolves only once every file is written', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath })
  const first = await started(SafeRemoteAuth, { store, dataPath })
  const kept = makeProfile(first.auth.userDataDir, { size: 'medium', junk: false })
  await first.auth.backup()
  t.true(await store.sessionExists({ session: 'RemoteAuth-acct' }))

  let originalMissing = 0
  for (let run = 0; run < 5; run++) {
    fs.rmSync(first.auth.userDataDir, { recursive: true })
    const safe = await started(SafeRemoteAuth, { store, dataPath })
    t.is(countMissing(safe.auth.userDataDir, kept), 0, `run ${run}: every file is there when restore resolves`)
    fs.rmSync(first.auth.userDataDir, { recursive: true })
    const original = await started(RemoteAuth, { store, dataPath })
    originalMissing += countMissing(original.auth.userDataDir, kept)
    await new Promise((resolve) => setTimeout(resolve, 200)) // let the original's writes land before the next run
  }
  t.log(`whatsapp-web.js RemoteAuth: ${originalMissing} of ${5 * Object.keys(kept).length} files missing when restore resolved`)
})

test('a failing backup is reported and retried, never a rejection', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const dir = path.join(root, 'store')
  const store = new RustStore({ dir, dataPath, saveErrors: 'reject' })
  const safe = await started(SafeRemoteAuth, { store, dataPath, retryDelaysMs: [100, 100] })
  makeProfile(safe.auth.userDataDir, { junk: false })
  const original = await started(RemoteAuth, { store, dataPath, clientId: 'orig' })
  makeProfile(original.auth.userDataDir, { junk: false })

  fs.rmSync(dir, { recursive: true }) // the store cannot be reached
  const err = await t.throwsAsync(original.auth.storeRemoteSession())
  t.is(err.code, 'ERR_TIER_UNAVAILABLE', 'RemoteAuth rejects: from its timer, an unhandled rejection that ends Node')

  const failures = []
  safe.client.emit = (name, ...args) => {
    safe.client.events.push([name, ...args])
    if (name === Events.BACKUP_FAILED) {
      failures.push(args[0])
      fs.mkdirSync(dir, { recursive: true }) // the store comes back before the retry
    }
  }
  t.true(await safe.auth.backup())
  t.is(failures.length, 1)
  t.is(failures[0].code, 'ERR_TIER_UNAVAILABLE')
  t.true(await store.sessionExists({ session: 'RemoteAuth-acct' }), 'the retry stored it')

  // Down for good: every attempt is reported, then it gives up; still no rejection.
  fs.rmSync(dir, { recursive: true })
  safe.client.events.length = 0
  safe.client.emit = (name, ...args) => safe.client.events.push([name, ...args])
  t.false(await safe.auth.backup())
  const names = safe.client.events.map(([name]) => name)
  t.is(names.filter((n) => n === Events.BACKUP_FAILED).length, 3)
  t.is(names.at(-1), Events.BACKUP_GAVE_UP)
})

test('a disconnect (CONFLICT, UNPAIRED, ...) keeps the stored session; logout() deletes it', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath })
  const original = await started(RemoteAuth, { store, dataPath, clientId: 'orig' })
  makeProfile(original.auth.userDataDir, { junk: false })
  await original.auth.storeRemoteSession()
  await original.auth.disconnect()
  t.false(await store.sessionExists({ session: 'RemoteAuth-orig' }), 'RemoteAuth deletes the login on any disconnect')

  const safe = await started(SafeRemoteAuth, { store, dataPath })
  makeProfile(safe.auth.userDataDir, { junk: false })
  await safe.auth.backup()
  await safe.auth.disconnect()
  t.true(await store.sessionExists({ session: 'RemoteAuth-acct' }), 'SafeRemoteAuth keeps it')
  t.false(fs.existsSync(safe.auth.userDataDir), 'the local profile goes, as in RemoteAuth')

  const again = await started(SafeRemoteAuth, { store, dataPath })
  t.true(fs.existsSync(path.join(again.auth.userDataDir, 'Default', 'IndexedDB')), 'and restores on the next start')
  await again.auth.logout()
  t.false(await store.sessionExists({ session: 'RemoteAuth-acct' }), 'an explicit logout deletes it')

  const opted = await started(SafeRemoteAuth, { store, dataPath, clientId: 'opt', deleteOnDisconnect: true })
  makeProfile(opted.auth.userDataDir, { junk: false })
  await opted.auth.backup()
  await opted.auth.disconnect()
  t.false(await store.sessionExists({ session: 'RemoteAuth-opt' }), 'deleteOnDisconnect: the original behaviour')
})

test('destroy() backs up the latest profile; the first backup can run at once', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath })
  const session = async (name) => (await store.listSessions()).find((s) => s.session === name)
  const grow = (auth) => fs.appendFileSync(path.join(auth.userDataDir, 'Default/Local Storage/leveldb/000003.log'), Buffer.alloc(5000, 1))

  const original = await started(RemoteAuth, { store, dataPath, clientId: 'orig' })
  makeProfile(original.auth.userDataDir, { junk: false })
  await original.auth.storeRemoteSession()
  const before = await session('RemoteAuth-orig')
  grow(original.auth)
  await original.auth.destroy()
  t.is((await session('RemoteAuth-orig')).filesBytes, before.filesBytes, 'RemoteAuth drops the changes since its last backup')

  const safe = await started(SafeRemoteAuth, { store, dataPath, firstBackupDelayMs: 0 })
  makeProfile(safe.auth.userDataDir, { junk: false })
  await safe.auth.afterAuthReady() // a new login: stored at once, not after a silent minute
  t.deepEqual(safe.client.events.map(([name]) => name), ['remote_session_saved'])
  const first = await session('RemoteAuth-acct')
  grow(safe.auth)
  await safe.auth.destroy()
  t.is((await session('RemoteAuth-acct')).filesBytes, first.filesBytes + 5000, 'the last changes are stored')
})

test('destroy() during the silent first-backup wait ends it: no late backup, no timer left behind', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath })
  const safe = await started(SafeRemoteAuth, { store, dataPath }) // firstBackupDelayMs: the default minute
  makeProfile(safe.auth.userDataDir, { junk: false })
  const waiting = safe.auth.afterAuthReady()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const started_ = Date.now()
  await safe.auth.destroy() // backs up once, as shutdown should
  await waiting
  t.true(Date.now() - started_ < 5_000, 'the minute is cut short')
  const [stored] = await store.listSessions()
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.deepEqual(await store.listSessions(), [stored], 'nothing saves after destroy()')
  t.deepEqual(safe.client.events.map(([name]) => name), [], 'no remote_session_saved from the abandoned first backup')
})

test('options are checked', (t) => {
  const store = new RustStore({ dir: path.join(tempDir(t), 'store') })
  const badLeases = [{ lease: { ttlMs: 1000, renewEveryMs: 1000 } }, { lease: { ttlMs: 0 } }]
  for (const bad of [{ firstBackupDelayMs: -1 }, { retryDelaysMs: [1, 'x'] }, { retryDelaysMs: 5 }, ...badLeases]) {
    const err = t.throws(() => new SafeRemoteAuth({ store, backupSyncIntervalMs: 60_000, ...bad }))
    t.is(err.code, 'ERR_INVALID_OPTION')
  }
})
