// Redis lost its data (FLUSHALL here; a restart without persistence or a failover to a replica without the
// leases looks the same): every lease and owner key is gone at once, while the holders still run their sessions.
// Another store must not take a session then: fresh takes wait one ttl (the liveness marker's quarantine), the
// holders retake theirs by renewing, and a session whose holder died is taken after the quarantine.
import test from 'ava'

import { RustStore } from './helpers.mjs'
import { startCluster, startRedis } from './servers.mjs'

const ttlMs = 3_000
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const held = async (t, promise) => t.is((await t.throwsAsync(promise)).code, 'ERR_LEASE_HELD')

async function noTakeoverAfterLoss(t, redis, flushAll) {
  const [a, b] = [0, 1].map(() => new RustStore({ redis, saveErrors: 'reject' }))
  const [kept, orphaned] = ['RemoteAuth-kept', 'RemoteAuth-orphaned']
  const token = await a.acquireLease(kept, { ttlMs })
  await a.acquireLease(orphaned, { ttlMs }) // its holder "dies": never renewed after the loss
  await b.acquireLease('RemoteAuth-b', { ttlMs }) // b has taken a lease before: it is not a process starting up
  flushAll()
  const lostAt = performance.now()

  // Before the holder's next renewal: the lease is free in Redis, yet refused.
  await held(t, b.acquireLease(kept, { ttlMs }))
  await held(t, b.acquireLease(orphaned, { ttlMs }))
  t.is(await a.renewLease(kept, token, { ttlMs }), 'retaken', 'the holder takes its lease back')
  // The holder keeps renewing past the quarantine; b keeps trying and never gets it.
  while (performance.now() - lostAt < ttlMs + 1_000) {
    await held(t, b.acquireLease(kept, { ttlMs }))
    t.is(await a.renewLease(kept, token, { ttlMs }), 'renewed')
    await sleep(300)
  }
  // The orphaned lease: free once the quarantine (one ttl from b's first refused try) is over.
  const takenBy = await b.acquireLease(orphaned, { ttlMs })
  t.regex(takenBy, /^[0-9a-f]{32}$/)
  t.true(performance.now() - lostAt >= ttlMs, 'not before one ttl after the loss')
  await Promise.all([a.close(), b.close()])
}

test.serial('FLUSHALL on one redis-server: no store takes a lease its holder still renews', async (t) => {
  const redis = await startRedis(t)
  await noTakeoverAfterLoss(t, { url: redis.url }, () => t.is(redis.cli('FLUSHALL'), 'OK'))
})

test.serial('FLUSHALL on every node of a Redis Cluster: the same, with one marker per slot', async (t) => {
  const nodes = await startCluster(t)
  await noTakeoverAfterLoss(t, { nodes: nodes.map((n) => n.url) }, () => {
    for (const node of nodes) t.is(node.cli('FLUSHALL'), 'OK')
  })
})

test.serial('a new keyspace is not quarantined: the first take is granted at once', async (t) => {
  const redis = await startRedis(t)
  const store = new RustStore({ redis: { url: redis.url, prefix: 'fresh:' }, saveErrors: 'reject' })
  t.regex(await store.acquireLease('RemoteAuth-new', { ttlMs: 60_000 }), /^[0-9a-f]{32}$/)
  t.is(redis.cli('GET', '{fresh:alive}:marker'), '0', 'the marker is set as old')
  await store.close()
})

test.serial('a store starting on a keyspace with leases but no (or an unreadable) marker waits one ttl', async (t) => {
  const redis = await startRedis(t)
  const a = new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' })
  await a.acquireLease('RemoteAuth-other', { ttlMs })
  redis.cli('DEL', '{wa:session:alive}:marker') // as after a loss that the holder's renewals already refilled
  const b = new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' })
  await held(t, b.acquireLease('RemoteAuth-free', { ttlMs }))
  t.regex(redis.cli('GET', '{wa:session:alive}:marker'), /^[1-9][0-9]{12}$/, "set to Redis's clock in ms")
  redis.cli('SET', '{wa:session:alive}:marker', 'garbage') // unreadable: as missing
  await held(t, b.acquireLease('RemoteAuth-free', { ttlMs }))
  t.regex(redis.cli('GET', '{wa:session:alive}:marker'), /^[1-9][0-9]{12}$/)
  await Promise.all([a.close(), b.close()])
})

test.serial("FLUSHALL on one Cluster node quarantines its slots only", async (t) => {
  const nodes = await startCluster(t)
  const redis = { nodes: nodes.map((n) => n.url) }
  const [a, b] = [0, 1].map(() => new RustStore({ redis, saveErrors: 'reject' }))
  const sessions = Array.from({ length: 8 }, (_, i) => `RemoteAuth-slot${i}`)
  const tokens = {}
  for (const session of sessions) tokens[session] = await a.acquireLease(session, { ttlMs: 60_000 })
  const onFirst = (session) => {
    const slot = nodes[0].cli('CLUSTER', 'KEYSLOT', `{wa:session:${session}}:lease`)
    return nodes[0].cli('CLUSTER', 'COUNTKEYSINSLOT', slot) !== '0'
  }
  const [lost, kept] = [sessions.filter(onFirst), sessions.filter((s) => !onFirst(s))]
  t.true(lost.length > 0 && kept.length > 0, `seeded names spread over the nodes: ${lost} | ${kept}`)
  t.is(nodes[0].cli('FLUSHALL'), 'OK')
  for (const session of lost) await held(t, b.acquireLease(session, { ttlMs: 60_000 }))
  // The other nodes kept their markers: a lease released there is taken at once.
  await a.releaseLease(kept[0], tokens[kept[0]])
  t.regex(await b.acquireLease(kept[0], { ttlMs: 60_000 }), /^[0-9a-f]{32}$/)
  for (const session of lost) t.is(await a.renewLease(session, tokens[session], { ttlMs: 60_000 }), 'retaken')
  await Promise.all([a.close(), b.close()])
})
