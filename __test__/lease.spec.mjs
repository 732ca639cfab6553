// One owner per session across replicas: leases on a real redis-server (and a Redis Cluster), fenced saves,
// and SafeRemoteAuth refusing to run a session another replica owns.
import path from 'node:path'
import test from 'ava'

import { RustStore, eventually, makeProfile, require, tempDir, zipProfile } from './helpers.mjs'
import { startCluster, startRedis } from './servers.mjs'

const { fakeClient } = require('../support/remoteauth.js')
const { safeRemoteAuth, Events } = require('../safe-remote-auth.js')
const SafeRemoteAuth = safeRemoteAuth(require('whatsapp-web.js/src/authStrategies/RemoteAuth.js'))

async function zipFor(t, seed) {
  const root = tempDir(t)
  makeProfile(path.join(root, 'p'), { junk: false, seed })
  await zipProfile(path.join(root, 'p'), path.join(root, 's.zip'))
  return path.join(root, 's.zip')
}

async function replicasShareOneOwner(t, redis) {
  const [a, b] = [0, 1].map(() => new RustStore({ redis, saveErrors: 'reject' }))
  const session = 'RemoteAuth-leased'
  const zip = await Promise.all([1, 2, 3, 4].map((seed) => zipFor(t, seed))) // ready before the clock runs
  const token = await a.acquireLease(session, { ttlMs: 2_000 })
  t.regex(token, /^[0-9a-f]{32}$/)
  t.is((await t.throwsAsync(b.acquireLease(session))).code, 'ERR_LEASE_HELD')
  await a.save({ session, path: zip[0] })

  await new Promise((resolve) => setTimeout(resolve, 2_500)) // replica A stalls past its lease
  const theirs = await b.acquireLease(session, { ttlMs: 60_000 })
  const fromB = await b.save({ session, path: zip[1] })
  t.is((await t.throwsAsync(a.save({ session, path: zip[2] }))).code, 'ERR_LEASE_LOST')
  t.is((await t.throwsAsync(a.renewLease(session, token))).code, 'ERR_LEASE_LOST')
  t.is((await a.listSessions()).find((s) => s.session === session).savedAt, fromB.savedAt, "B's copy stands")

  await b.releaseLease(session, theirs)
  await a.acquireLease(session)
  await a.save({ session, path: zip[3] })
  t.deepEqual((await a.listSessions()).map((s) => s.session), [session], 'lease keys are not sessions')
}

test.serial('leases on one redis-server: the second replica is refused, a stalled one is fenced out', async (t) => {
  const redis = await startRedis(t)
  await replicasShareOneOwner(t, { url: redis.url })
})

test.serial('leases on a Redis Cluster', async (t) => {
  const cluster = await startCluster(t)
  await replicasShareOneOwner(t, { nodes: cluster.map((n) => n.url) })
})

test.serial("a renewal of a held lease runs 3 commands and leaves the owner key alone; the owner key decides a retake", async (t) => {
  const redis = await startRedis(t)
  const [a, b] = [0, 1].map(() => new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' }))
  const session = 'RemoteAuth-renewed'
  const [lease, owner] = [`{wa:session:${session}}:lease`, `{wa:session:${session}}:owner`]
  const token = await a.acquireLease(session, { ttlMs: 60_000 })
  const calls = () => Object.fromEntries([...redis.cli('INFO', 'commandstats').matchAll(/cmdstat_([^:]+):calls=(\d+)/g)].map((m) => [m[1], Number(m[2])]))
  const processed = () => Number(/total_commands_processed:(\d+)/.exec(redis.cli('INFO', 'stats'))[1])
  redis.cli('PEXPIRE', owner, '5000') // the owner key's expiry is not the renewal's to refresh
  const [before, total] = [calls(), processed()]
  t.is(await a.renewLease(session, token, { ttlMs: 60_000 }), 'renewed')
  const after = calls()
  // Between the two INFO stats readings (each counted after it ran): the first one, the renewal, INFO commandstats.
  t.is(processed() - total - 2, 3, 'EVAL + GET + PEXPIRE')
  t.is(after.set ?? 0, before.set ?? 0, 'no SET of the owner key')
  t.true(Number(redis.cli('PTTL', owner)) <= 5000, 'the owner key keeps its expiry')
  t.true(Number(redis.cli('PTTL', lease)) > 50_000, 'the lease is extended')

  // Expired, the owner key gone (a week without a take or a save, or lost data): the token takes it again.
  redis.cli('DEL', lease, owner)
  t.is(await a.renewLease(session, token, { ttlMs: 60_000 }), 'retaken')
  t.is(redis.cli('GET', owner), token, 'the retake names the token again')
  // Expired, the owner key naming another token: lost.
  redis.cli('DEL', lease)
  redis.cli('SET', owner, 'another')
  t.is((await t.throwsAsync(a.renewLease(session, token))).code, 'ERR_LEASE_LOST')
  t.is(redis.cli('EXISTS', lease), '0', 'not taken')
  await b.acquireLease(session)
  await Promise.all([a.close(), b.close()])
})

test.serial('SafeRemoteAuth with a lease: a second replica cannot start; a replica that lost it stops backing up', async (t) => {
  const redis = await startRedis(t)
  const root = tempDir(t)
  const replica = (name) => {
    const dataPath = path.join(root, name)
    const store = new RustStore({ redis: { url: redis.url }, dataPath, saveErrors: 'reject' })
    const auth = new SafeRemoteAuth({ store, dataPath, clientId: 'acct', backupSyncIntervalMs: 60_000, lease: { ttlMs: 1_000, renewEveryMs: 100 } })
    const client = fakeClient()
    auth.setup(client)
    return { auth, client, store }
  }
  const a = replica('a')
  await a.auth.beforeBrowserInitialized()
  makeProfile(a.auth.userDataDir, { junk: false })
  t.true(await a.auth.backup())

  const b = replica('b')
  t.is((await t.throwsAsync(b.auth.beforeBrowserInitialized())).code, 'ERR_LEASE_HELD', 'initialize() fails loudly')

  // Another owner takes the lease from under A (here: written straight into Redis, for 1 s); B then takes it.
  redis.cli('SET', '{wa:session:RemoteAuth-acct}:lease', 'another-owner', 'PX', '1000')
  const lost = await eventually(() => a.client.events.find(([name]) => name === Events.LEASE_LOST) ?? Promise.reject(new Error('not yet')))
  t.truthy(lost, 'A is told')
  t.is(lost[1].code, 'ERR_LEASE_LOST')
  t.false(await a.auth.backup(), 'and backs up no more')
  await eventually(() => b.auth.beforeBrowserInitialized(), 30) // once that owner's second is up
  await b.auth.destroy()
  await a.auth.destroy()
  const c = replica('c')
  await c.auth.beforeBrowserInitialized() // B released it on destroy
  await c.auth.destroy()
})

test.serial('SafeRemoteAuth.forFleet adopts the lease the fleet holds: no second renewal, left held by destroy(); another store is refused', async (t) => {
  const redis = await startRedis(t)
  const root = tempDir(t)
  const session = 'RemoteAuth-acct'
  const store = new RustStore({ redis: { url: redis.url }, dataPath: path.join(root, 'a'), saveErrors: 'reject' })
  // What the fleet did before onStart: took the lease on this store.
  const ttlMs = 1_000
  const token = await store.acquireLease(session, { ttlMs })
  const calls = { renewLease: 0, releaseLease: 0 }
  const counted = new Proxy(store, {
    get(target, name) {
      const value = Reflect.get(target, name)
      if (typeof value !== 'function') return value
      return (...args) => {
        if (name in calls) calls[name]++
        return value.apply(target, args)
      }
    },
  })
  const start = { session, clientId: 'acct', token, ttlMs, renewEveryMs: 100 }
  const auth = SafeRemoteAuth.forFleet(start, { store: counted, dataPath: path.join(root, 'a'), backupSyncIntervalMs: 60_000 })
  auth.setup(fakeClient())
  await auth.beforeBrowserInitialized()
  t.is(auth.lease.token, token, 'the fleet token, adopted')
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.is(calls.renewLease, 0, 'the fleet renews it, SafeRemoteAuth does not')
  makeProfile(auth.userDataDir, { junk: false })
  t.true(await auth.backup(), 'saves are fenced by the fleet token and go through')
  await auth.destroy()
  t.is(calls.releaseLease, 0, 'released by the fleet after onStop, not by destroy()')
  t.is(await store.renewLease(session, token, { ttlMs }), 'renewed', 'still held by the fleet token')

  // A client built on another store would not be fenced by the fleet's token: refused before it restores anything.
  const other = new RustStore({ redis: { url: redis.url }, dataPath: path.join(root, 'b') })
  const stray = SafeRemoteAuth.forFleet(start, { store: other, dataPath: path.join(root, 'b'), backupSyncIntervalMs: 60_000 })
  stray.setup(fakeClient())
  t.is((await t.throwsAsync(stray.beforeBrowserInitialized())).code, 'ERR_LEASE_HELD')
  await store.releaseLease(session, token)
  const late = SafeRemoteAuth.forFleet(start, { store: other, dataPath: path.join(root, 'b'), backupSyncIntervalMs: 60_000 })
  late.setup(fakeClient())
  t.is((await t.throwsAsync(late.beforeBrowserInitialized())).code, 'ERR_INVALID_OPTION', 'a token this store does not hold')
  t.is((await store.acquireLease(session, { ttlMs })).length, 32, 'and the lease it took meanwhile was given back')
  t.throws(() => SafeRemoteAuth.forFleet({ ...start, token: '' }, { store, backupSyncIntervalMs: 60_000 }), { code: 'ERR_INVALID_OPTION' })
})
