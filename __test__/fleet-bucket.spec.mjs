// Issue #25 item 9: the fleet's sessions are the store's, the primary's (a real redis-server) and the bucket's (moto).
// A session whose Redis key is gone (as eviction, or a restart without persistence, leaves it) is written back from
// its backup and runs on; one only the bucket holds is started; only a delete (a logout) stops a session as
// 'deleted', and then it stays gone. Workers are processes (support/fleet-worker.js), their logs on one clock.
import path from 'node:path'
import test from 'ava'

import { doubleOwners, evenlySpread, now, ownerIntervals, readLogs, running, startBackedUpFleet, sleep, startWorker, until } from './fleet-harness.mjs'
import { RustStore, tempDir } from './helpers.mjs'

/** The Redis key of a session (the default prefix): what eviction removes. */
const redisKey = (session) => `wa:session:${session}`
const sorted = (list) => [...list].sort()

/** Sessions restored (reported by `onEvent`), and the workers' restores counted as missing-copy fallbacks. */
function restoredIn(entries) {
  return sorted(entries.filter((e) => e.event === 'fleet-event' && e.type === 'restored').map((e) => e.session))
}

async function fallbacks(workers) {
  let total = 0
  for (const w of workers) {
    const text = await w.ask('metrics')
    const line = text.split('\n').find((l) => l.startsWith('wwebjs_rust_store_restore_fallbacks_total{') && l.includes('reason="missing"'))
    total += Number(line?.split(' ').pop() ?? 0)
  }
  return total
}

test.serial('sessions Redis lost run on, restored from the bucket; only a delete stops one, and it stays gone', async (t) => {
  const root = tempDir(t)
  const { server, s3, redis, names } = await startBackedUpFleet(t, root, 6)
  // Redis alone: what the primary holds.
  const primary = new RustStore({ redis, dir: path.join(root, 'unused') })
  const inPrimary = async () => sorted((await primary.listSessions()).map((s) => s.session))

  // Evicted before any worker ran it: only the bucket holds it.
  const only = names[5]
  t.is(server.cli('DEL', redisKey(only)), '1')
  t.deepEqual(await inPrimary(), names.slice(0, 5))
  const options = { redis, s3, light: true, backupListEveryMs: 1000 }
  const workers = [await startWorker(t, root, { workerId: 'a', ...options }), await startWorker(t, root, { workerId: 'b', ...options })]
  const placed = await until('all 6 run, the one only the bucket held too', async () => {
    const now = await running(workers)
    return evenlySpread(now, names) && now
  })
  t.deepEqual(await inPrimary(), names, 'written back to Redis')
  t.deepEqual(restoredIn(readLogs(workers)), [only])

  // Redis loses three running sessions' keys: their owners keep them and write them back.
  const lost = names.slice(0, 3)
  const evictedAt = now()
  for (const session of lost) t.is(server.cli('DEL', redisKey(session)), '1')
  await until('the lost sessions back in Redis', async () => JSON.stringify(await inPrimary()) === JSON.stringify(names))
  await sleep(3000) // ten rounds, three listings of the bucket
  t.deepEqual(await running(workers), placed, 'nothing stopped or moved')
  let entries = readLogs(workers)
  const since = (at) => entries.filter((e) => e.t > at && (e.event === 'start' || e.event === 'stop'))
  t.deepEqual(since(evictedAt), [], 'no session stopped or started since')
  t.deepEqual(restoredIn(entries), sorted([only, ...lost]), 'each restore reported')
  t.is(await fallbacks(workers), 4, 'and counted')

  // A logout: the session deleted by another process (no lease): stopped as 'deleted' on its owner, never back.
  const gone = names[3]
  const deletedAt = now()
  const admin = new RustStore({ redis, s3, dataPath: path.join(root, 'admin') })
  await admin.delete({ session: gone })
  await until('the deleted session stopped', async () => !Object.values(await running(workers)).flat().includes(gone))
  await sleep(3500) // three more listings of the bucket
  t.false(Object.values(await running(workers)).flat().includes(gone), 'not started again')
  t.false(await primary.sessionExists({ session: gone }), 'not written back')
  t.false(await admin.sessionExists({ session: gone }))
  entries = readLogs(workers)
  // (Five sessions over two workers: one may move, a rebalance; the deleted one only stops.)
  const ofGone = since(deletedAt).filter((e) => e.session === gone)
  t.deepEqual(ofGone.map((e) => [e.event, e.reason]), [['stop', 'deleted']])
  const rest = names.filter((s) => s !== gone)
  await until('the other five run', async () => evenlySpread(await running(workers), rest))
  t.deepEqual(doubleOwners(ownerIntervals(entries)), [])
  for (const w of workers) await w.ask('close')
})
