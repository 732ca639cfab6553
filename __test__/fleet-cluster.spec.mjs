// The fleet on a Redis Cluster (3 primaries): membership keys share one slot, session leases hash by session;
// 30 sessions over 3 worker processes spread within ±1 of even, one owner each, and a closed worker's sessions
// move to the other two.
import test from 'ava'

import { doubleOwners, evenlySpread, now, ownerIntervals, readLogs, running, saveSessions, startWorker, until } from './fleet-harness.mjs'
import { tempDir } from './helpers.mjs'
import { startCluster } from './servers.mjs'

test('fleet on Redis Cluster: spread within ±1 of even, one owner each, close() hands off', async (t) => {
  const root = tempDir(t)
  const nodes = await startCluster(t)
  const redis = { nodes: nodes.map((n) => n.url), connectTimeoutMs: 1000, commandTimeoutMs: 1000 }
  const { names, stored } = await saveSessions(root, redis, 30)
  t.deepEqual(stored, names)
  const workers = []
  for (const workerId of ['a', 'b', 'c']) workers.push(await startWorker(t, root, { workerId, redis }))
  const spread = await until('30 spread over a, b, c', async () => {
    const now = await running(workers)
    return evenlySpread(now, names) && now
  })
  t.deepEqual(Object.values(spread).map((l) => l.length), [10, 10, 10])
  // The group's keys share one slot (a script over keys of two slots fails with CROSSSLOT on a cluster).
  const group = '{wa:session:fleet:default}'
  t.is(nodes[0].cli('-c', 'EXISTS', `${group}:members`, `${group}:info`, `${group}:map:owners`), '3')

  const [a, b, c] = workers
  const closeAt = now()
  const held = (await c.ask('status')).running
  await c.ask('close')
  await until('a and b hold all 30', async () => evenlySpread(await running([a, b]), names))
  const entries = readLogs(workers)
  // Before the close c may have handed sessions on while the others joined (rebalance); after it, every stop is
  // the close's, one per session it held.
  const closed = entries.filter((e) => e.worker === 'c' && e.event === 'stop' && e.t >= closeAt)
  t.deepEqual(closed.map((e) => e.session).sort(), [...held].sort())
  t.true(closed.every((e) => e.reason === 'close'), JSON.stringify(closed.map((e) => e.reason)))
  t.deepEqual(doubleOwners(ownerIntervals(entries)), [])
})
