// A lease over a client's whole life (issue #14): outages longer than its ttl, the default store options,
// logout, and deletes by a replica that lost it. Real redis-server and moto; whatsapp-web.js's own RemoteAuth.
import path from 'node:path'
import test from 'ava'

import { RustStore, eventually, makeProfile, require, tempDir, zipProfile } from './helpers.mjs'
import { startMoto, startRedis } from './servers.mjs'

const { fakeClient } = require('../support/remoteauth.js')
const { safeRemoteAuth, Events } = require('../safe-remote-auth.js')
const SafeRemoteAuth = safeRemoteAuth(require('whatsapp-web.js/src/authStrategies/RemoteAuth.js'))

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const SESSION = 'RemoteAuth-acct'

/** A replica: SafeRemoteAuth on a fake client over its own store (README setup: the store's default options). */
function replicaOf(t, redis, { lease = { ttlMs: 1_000 }, storeOptions = {}, ...options } = {}) {
  const root = tempDir(t)
  return (name) => {
    const dataPath = path.join(root, name)
    const store = new RustStore({ redis: { url: redis.url }, dataPath, onError: () => {}, ...storeOptions })
    const auth = new SafeRemoteAuth({ store, dataPath, clientId: 'acct', backupSyncIntervalMs: 60_000, lease, ...options })
    const client = fakeClient()
    auth.setup(client)
    return { auth, client, store, names: () => client.events.map(([event]) => event) }
  }
}

async function savedAt(store) {
  return (await store.listSessions()).find((s) => s.session === SESSION)?.savedAt
}

async function zipFor(t, seed) {
  const root = tempDir(t)
  makeProfile(path.join(root, 'p'), { junk: false, seed })
  await zipProfile(path.join(root, 'p'), path.join(root, 's.zip'))
  return path.join(root, 's.zip')
}

for (const [what, appendonly] of [['kept (append-only file)', true], ['lost (no persistence)', false]]) {
  test.serial(`item 1: Redis down longer than the lease, its data ${what}: the lease is taken again, backups resume`, async (t) => {
    const redis = await startRedis(t, { appendonly })
    const replica = replicaOf(t, redis)
    const a = replica('a')
    await a.auth.beforeBrowserInitialized()
    makeProfile(a.auth.userDataDir, { junk: false })
    t.true(await a.auth.backup())
    const first = await savedAt(a.store)

    await redis.stop()
    await sleep(2_000) // twice the lease's ttl
    await redis.start()
    const retaken = await eventually(() => a.client.events.find(([e]) => e === Events.LEASE_RETAKEN) ?? Promise.reject(new Error('not yet')))
    t.is(retaken[1].session, SESSION, 'the event says which lease was taken again')
    t.true(a.names().includes(Events.LEASE_RENEW_FAILED), 'the outage was reported')
    t.false(a.names().includes(Events.LEASE_LOST), 'nobody else took it: not lost')

    t.true(await a.auth.backup(), 'backups resume')
    t.true((await savedAt(a.store)) > (appendonly ? first : 0))
    const b = replica('b')
    t.is((await t.throwsAsync(b.auth.beforeBrowserInitialized())).code, 'ERR_LEASE_HELD', 'A still owns it')
    await a.auth.destroy()
  })
}

test.serial('item 1: a lease taken by another replica during the outage stays lost', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const replica = replicaOf(t, redis)
  const a = replica('a')
  await a.auth.beforeBrowserInitialized()
  makeProfile(a.auth.userDataDir, { junk: false })
  t.true(await a.auth.backup())
  clearInterval(a.auth.lease.timer) // A stalls: no renewals
  await sleep(1_200)
  const b = replica('b')
  await b.auth.beforeBrowserInitialized()
  await b.auth.releaseLease() // and gives it up again: A still must not take it back silently
  t.false(await a.auth.backup())
  t.true(a.names().includes(Events.LEASE_LOST))
  t.false(a.names().includes(Events.LEASE_RETAKEN))
})

test.serial('item 2: with the default store options (saveErrors: report) failures reach retries and events', async (t) => {
  const redis = await startRedis(t)
  const replica = replicaOf(t, redis, { lease: false, retryDelaysMs: [50, 50] })
  const a = replica('a')
  await a.auth.beforeBrowserInitialized()
  makeProfile(a.auth.userDataDir, { junk: false })
  const alive = setInterval(() => {}, 1_000) // the retry waits are unref'd: a client's browser keeps Node alive
  t.teardown(() => clearInterval(alive))
  await redis.stop()
  t.false(await a.auth.backup(), 'a Redis outage is a failed backup')
  const failed = a.client.events.filter(([e]) => e === Events.BACKUP_FAILED)
  t.deepEqual(failed.map(([, err]) => [err.code, err.attempt]), [1, 2, 3].map((n) => ['ERR_REDIS_UNAVAILABLE', n]))
  t.is(a.names().at(-1), Events.BACKUP_GAVE_UP)

  // Plain RemoteAuth over the same store keeps the store's default: it resolves, never rejects.
  const RemoteAuth = require('whatsapp-web.js/src/authStrategies/RemoteAuth.js')
  const plain = new RemoteAuth({ store: a.store, dataPath: path.join(tempDir(t), 'p'), clientId: 'plain', backupSyncIntervalMs: 60_000 })
  plain.setup(fakeClient())
  makeProfile(path.join(plain.dataPath, 'RemoteAuth-plain'), { junk: false })
  plain.userDataDir = path.join(plain.dataPath, 'RemoteAuth-plain')
  plain.sessionName = 'RemoteAuth-plain'
  await t.notThrowsAsync(plain.storeRemoteSession())
  await redis.start()

  // An empty profile (nothing RustStore keeps): ERR_EMPTY_SESSION, retried and reported, not "saved".
  const empty = replica('empty')
  await empty.auth.beforeBrowserInitialized() // nothing stored: RemoteAuth makes an empty profile
  t.false(await empty.auth.backup({ emit: true }))
  t.is(empty.client.events.find(([e]) => e === Events.BACKUP_FAILED)?.[1].code, 'ERR_EMPTY_SESSION')
  t.false(empty.names().includes('remote_session_saved'))
})

test.serial('item 2: with the default store options a lost lease stops the backups', async (t) => {
  const redis = await startRedis(t)
  const replica = replicaOf(t, redis)
  const a = replica('a')
  await a.auth.beforeBrowserInitialized()
  makeProfile(a.auth.userDataDir, { junk: false })
  t.true(await a.auth.backup())
  clearInterval(a.auth.lease.timer) // A stalls past its lease; B takes it
  await sleep(1_200)
  await replica('b').auth.beforeBrowserInitialized()
  t.false(await a.auth.backup())
  t.is(a.client.events.find(([e]) => e === Events.BACKUP_FAILED)?.[1].code, 'ERR_LEASE_LOST')
  t.true(a.names().includes(Events.LEASE_LOST))
})

test.serial('item 3: logout() gives the lease up; a failed start rethrows its own error and leaves no lease', async (t) => {
  const redis = await startRedis(t)
  const replica = replicaOf(t, redis, { lease: { ttlMs: 1_000, renewEveryMs: 100 } })
  const a = replica('a')
  await a.auth.beforeBrowserInitialized()
  makeProfile(a.auth.userDataDir, { junk: false })
  t.true(await a.auth.backup())
  await a.auth.logout()
  t.false(await a.store.sessionExists({ session: SESSION }), 'the login is deleted')
  await sleep(1_500) // longer than the ttl: a renew timer left running would still hold it
  const b = replica('b')
  await t.notThrowsAsync(b.auth.beforeBrowserInitialized(), 'another replica can start the client id')
  await b.auth.destroy()

  const c = replica('c')
  c.client.options.puppeteer.userDataDir = '/somewhere/else' // RemoteAuth throws before it sets sessionName
  const err = await t.throwsAsync(c.auth.beforeBrowserInitialized())
  t.regex(err.message, /not compatible with a user-supplied userDataDir/)
  const d = replica('d')
  await t.notThrowsAsync(d.auth.beforeBrowserInitialized(), 'the failed start released the lease')
  await d.auth.destroy()
})

test.serial('item 4: a store whose lease was taken deletes nothing (primary and every backup version)', async (t) => {
  const [redis, moto] = await Promise.all([startRedis(t), startMoto(t)])
  const bucket = await moto.bucket('sessions')
  const s3 = { endpoint: moto.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0 }
  const [a, b] = [0, 1].map(() => new RustStore({ redis: { url: redis.url }, s3, saveErrors: 'reject' }))
  const zips = await Promise.all([1, 2].map((seed) => zipFor(t, seed)))
  await a.acquireLease(SESSION, { ttlMs: 1_000 })
  await a.save({ session: SESSION, path: zips[0] })
  await sleep(1_200) // A stalls past its lease
  await b.acquireLease(SESSION, { ttlMs: 60_000 })
  const fromB = await b.save({ session: SESSION, path: zips[1] })

  t.is((await t.throwsAsync(a.delete({ session: SESSION }))).code, 'ERR_LEASE_LOST')
  t.is(await savedAt(b), fromB.savedAt, "B's copy stands")
  t.is((await b.listBackups(SESSION)).length, 2, 'every backup version stays')
  t.is((await t.throwsAsync(a.delete({ session: SESSION }))).code, 'ERR_LEASE_LOST', 'still refused')
  await b.delete({ session: SESSION })
  t.false(await b.sessionExists({ session: SESSION }), "the owner's delete works")
  t.deepEqual(await b.listBackups(SESSION), [])
})

test.serial('item 4: SafeRemoteAuth with deleteOnDisconnect on the replica that lost the lease keeps the new owner\'s login', async (t) => {
  const redis = await startRedis(t)
  const replica = replicaOf(t, redis, { deleteOnDisconnect: true })
  const a = replica('a')
  await a.auth.beforeBrowserInitialized()
  makeProfile(a.auth.userDataDir, { junk: false })
  t.true(await a.auth.backup())
  clearInterval(a.auth.lease.timer) // A stalls past its lease
  await sleep(1_200)
  const b = replica('b')
  await b.auth.beforeBrowserInitialized()
  t.true(await b.auth.backup())
  const fromB = await savedAt(b.store)

  await t.notThrowsAsync(a.auth.disconnect(), 'CONFLICT on A: nothing rejects into the client')
  t.true(a.names().includes(Events.LEASE_LOST))
  t.is(await savedAt(b.store), fromB, "B's login stands")
  await b.auth.destroy()
})

test('item 4: the embedded tier fences deletes too', async (t) => {
  const dir = path.join(tempDir(t), 'store')
  const [a, b] = [0, 1].map(() => new RustStore({ dir, saveErrors: 'reject' }))
  const zip = await zipFor(t, 1)
  await a.acquireLease('RemoteAuth-embedded', { ttlMs: 200 })
  await sleep(300)
  await b.acquireLease('RemoteAuth-embedded')
  await b.save({ session: 'RemoteAuth-embedded', path: zip })
  t.is((await t.throwsAsync(a.delete({ session: 'RemoteAuth-embedded' }))).code, 'ERR_LEASE_LOST')
  t.true(await b.sessionExists({ session: 'RemoteAuth-embedded' }))
})
