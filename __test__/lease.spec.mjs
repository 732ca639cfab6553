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
