// The fleet across a Sentinel failover (issue #25 item 11): a lease that only the old primary held must not let a
// second worker start the session on the promoted replica while the first still runs it, and a primary left
// without a replica (the old side of a failover) must not keep its owners running. Real servers on
// loopback: a primary, a replica and three sentinels (servers.mjs), worker processes (fleet-harness.mjs), and
// fault proxies that hold the replication stream and the first worker's way to the sentinels. Log times are
// CLOCK_MONOTONIC.
import test from 'ava'

import { faultProxy } from './fault-proxy.mjs'
import { doubleOwners, now, ownerIntervals, readLogs, saveSessions, startWorker, until } from './fleet-harness.mjs'
import { tempDir } from './helpers.mjs'
import { startSentinels } from './servers.mjs'

// 2 × 3000 + 6000 ≤ 20000: a worker that cannot renew stops a session 14 s after its last renewal that counted,
// far longer than the failover and the second worker's start take, so on a store whose lease was never
// replicated the overlap is certain, not a matter of timing.
const timing = { ttlMs: 20_000, renewEveryMs: 3000, stopTimeoutMs: 6000 }
const redisTimeouts = { connectTimeoutMs: 2000, commandTimeoutMs: 2500, replicaTimeoutMs: 1000 }

test.serial('a lease the promoted replica never got: nobody starts the session twice across a Sentinel failover', async (t) => {
  // The sentinels would re-point the replica to the primary's own address after failover-timeout; 120 s is past
  // this test.
  const set = await startSentinels(t, { failoverTimeoutMs: 120_000 })
  const root = tempDir(t)
  const direct = { sentinels: set.addrs, name: set.name, ...redisTimeouts }
  const { names } = await saveSessions(root, direct, 1)
  const [session] = names
  const leaseOwner = `{wa:session:${session}}:owner`

  // The replica replicates through a proxy, in sync with the stored session; then the proxy holds the stream: what
  // the primary writes from now on reaches no replica (the replica's link still looks up to everyone).
  const replication = await faultProxy(t, set.primary.port)
  set.replica.cli('REPLICAOF', '127.0.0.1', String(replication.port))
  await until('the replica in sync through the proxy', () => set.replica.cli('INFO', 'replication').includes('master_link_status:up'))
  await until('the session on the replica', () => set.replica.cli('EXISTS', `wa:session:${session}`) === '1')
  replication.set('hold')

  // Worker a reaches the sentinels through proxies, so the test can cut it off from the new primary later.
  const sentinelProxies = await Promise.all(set.sentinels.map((s) => faultProxy(t, s.port)))
  const proxied = { ...direct, sentinels: sentinelProxies.map((p) => `127.0.0.1:${p.port}`) }
  const a = await startWorker(t, root, { workerId: 'a', redis: proxied, light: true, ...timing })
  // a writes on the primary alone. Its heartbeat carries its leases (the epoch) and is waited for like them: a
  // beat no replica confirmed counts for nothing, so a takes nothing. Had it taken the lease on its own, waited
  // for, the take fails (ERR_REDIS_REPLICAS) and is given back, leaving the owner key `released`; not waited
  // for, a starts the session.
  const took = await until("a's take of the lease, or its beat refused", async () => {
    if (readLogs([a]).some((e) => e.event === 'start')) return 'started'
    if (set.primary.cli('GET', leaseOwner) === 'released') return 'given back'
    const beat = set.primary.cli('ZSCORE', '{wa:session:fleet:default}:members', 'a') !== ''
    return beat && !(await a.ask('status')).connected && 'beat unconfirmed'
  })
  t.log(`a's take: ${took}`)

  // a is cut off from the sentinels (so from the new primary), then the replica is promoted without the lease.
  for (const p of sentinelProxies) p.set('hold')
  const failoverAt = now()
  t.is(set.sentinels[0].cli('SENTINEL', 'FAILOVER', set.name), 'OK')
  await until('the replica promoted', () => set.primaryPort() === set.replica.port, 600)
  t.is(set.replica.cli('EXISTS', `{wa:session:${session}}:lease`), '0', 'the promoted replica never got the lease')

  const b = await startWorker(t, root, { workerId: 'b', redis: direct, light: true, ...timing })
  await until('b runs the session', async () => (await b.ask('status')).running.includes(session), 600)
  // Until a's own run (if it had one) is over: its stop is logged once its client is gone.
  await until("a's run over", () => {
    const logs = readLogs([a])
    return logs.filter((e) => e.event === 'start').length === logs.filter((e) => e.event === 'stop').length
  }, 600)

  const logs = readLogs([a, b])
  const intervals = ownerIntervals(logs)
  t.log(intervals.map((i) => `${i.worker}: ${(i.from - failoverAt).toFixed(0)} → ${(i.to - failoverAt).toFixed(0)} ms (${i.reason})`))
  t.deepEqual(doubleOwners(intervals), [], 'never two owners of the session at one instant')
  t.true(intervals.some((i) => i.worker === 'b'), 'b took the session after the failover')
})

test.serial('a primary left without a replica cannot renew a lease: the owner stops its session rather than run on what a failover could lose', async (t) => {
  const set = await startSentinels(t)
  const root = tempDir(t)
  const redis = { sentinels: set.addrs, name: set.name, ...redisTimeouts }
  const { names } = await saveSessions(root, redis, 1)
  const fast = { ttlMs: 3000, renewEveryMs: 600, stopTimeoutMs: 1000 }
  const a = await startWorker(t, root, { workerId: 'a', redis, light: true, ...fast })
  await until('a runs the session', async () => (await a.ask('status')).running.includes(names[0]))
  // The replica leaves its primary, as a promoted replica does (REPLICAOF NO ONE), and the sentinels are stopped
  // so they neither switch nor point it back: the old primary, alone, still calls itself primary and answers.
  for (const s of set.sentinels) s.proc.kill('SIGSTOP')
  t.teardown(() => set.sentinels.forEach((s) => s.proc.kill('SIGCONT')))
  const detachedAt = now()
  set.replica.cli('REPLICAOF', 'NO', 'ONE')
  await until("a's session stopped", () => readLogs([a]).find((e) => e.event === 'stop'), 300)
  const [stop] = readLogs([a]).filter((e) => e.event === 'stop')
  t.is(stop.reason, 'lost')
  // Its last renewal that counted was sent before the detach, so the stop came within ttl of it.
  t.true(stop.t - detachedAt < fast.ttlMs, `stopped ${(stop.t - detachedAt).toFixed(0)} ms after the detach`)
  t.deepEqual((await a.ask('status')).running, [], 'and nothing starts while the primary has no replica')
})
