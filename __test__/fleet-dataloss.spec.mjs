// The fleet when Redis lost its data (FLUSHALL; a restart without persistence looks the same): every lease,
// owner key and heartbeat is gone at once, while the workers still run their sessions, which the bucket still
// lists. A worker that no longer sees the other's heartbeat must not take the other's sessions: fresh takes wait
// one ttl (the liveness marker), owners retake theirs by renewing. A session whose owner died with the loss is
// taken once that ttl passed. Workers are processes (support/fleet-worker.js), their logs on one clock.
import test from 'ava'

import { doubleOwners, evenlySpread, now, ownerIntervals, readLogs, running, startBackedUpFleet, sleep, startWorker, timing, until } from './fleet-harness.mjs'
import { tempDir } from './helpers.mjs'

test.serial('FLUSHALL under two workers: nobody takes a running session; a dead owner\'s move after one ttl', async (t) => {
  const root = tempDir(t)
  const { server, s3, redis, names } = await startBackedUpFleet(t, root, 6)
  const options = { redis, s3, light: true, backupListEveryMs: 1000 }
  const workers = [await startWorker(t, root, { workerId: 'a', ...options }), await startWorker(t, root, { workerId: 'b', ...options })]
  const [a, b] = workers
  const placed = await until('6 spread over a and b', async () => {
    const now = await running(workers)
    return evenlySpread(now, names) && now
  })

  // Both keep running: every session stays where it was, through two ttls after the loss.
  const lostAt = now()
  t.is(server.cli('FLUSHALL'), 'OK')
  while (now() - lostAt < 2 * timing.ttlMs) {
    t.deepEqual(await running(workers), placed, 'no session moved')
    await sleep(200)
  }
  const moves = readLogs(workers).filter((e) => e.t > lostAt && (e.event === 'start' || e.event === 'stop'))
  t.deepEqual(moves, [], 'no start or stop after the loss')

  // Lost again, and a dies with it: its sessions move to b, only after the quarantine.
  const again = now()
  t.is(server.cli('FLUSHALL'), 'OK')
  const killedAt = await a.kill()
  await until('b runs all 6', async () => (await b.ask('status')).running.length === names.length)
  const entries = readLogs(workers)
  const taken = entries.filter((e) => e.worker === 'b' && e.event === 'start' && e.t > again)
  t.deepEqual(taken.map((e) => e.session).sort(), [...placed.a].sort())
  for (const e of taken) t.true(e.t - again >= timing.ttlMs, `${e.session} taken ${e.t - again} ms after the loss`)
  t.deepEqual(doubleOwners(ownerIntervals(entries, { a: killedAt })), [])
})
