// The fleet's promise under faults, with worker processes on a real Redis and a fault proxy before one of them:
// a worker cut off (packets held, connections reset) or cut off while onStart runs stops before another worker
// can start its sessions; a failed onStop keeps the session fenced until its lease expires; a drain nobody can
// take over is one stop round; close resolves while an onStart never settles; an onStart past startTimeoutMs is
// given up and its session moves only once its lease expired. Every log time is CLOCK_MONOTONIC.
import test from 'ava'

import { faultProxy } from './fault-proxy.mjs'
import { doubleOwners, evenlySpread, fleetCli, now, ownerIntervals, readLogs, running, saveSessions, sleep, startWorker, until } from './fleet-harness.mjs'
import { tempDir } from './helpers.mjs'
import { startRedis } from './servers.mjs'

const fast = { connectTimeoutMs: 400, commandTimeoutMs: 400 }
// 2 × 600 + 1000 ≤ 3000: the stop begins 2000 ms after the last renewal that succeeded, and ends by 3000.
const timing = { ttlMs: 3000, renewEveryMs: 600, stopTimeoutMs: 1000 }
const sorted = (list) => [...list].sort()

test.serial('cut off from Redis (packets held, then connections reset): the worker stops before anyone else starts; one owner throughout', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 6)
  const proxy = await faultProxy(t, server.port)
  // A stop that takes 600 ms: it must begin by the local deadline to end before the lease can expire.
  const common = { light: true, stopDelayMs: 600, ...timing }
  const a = await startWorker(t, root, { workerId: 'a', redis, ...common })
  const b = await startWorker(t, root, { workerId: 'b', redis: { url: proxy.url, ...fast }, ...common })
  for (const mode of ['hold', 'reset']) {
    const spread = await until('6 spread', async () => {
      const now = await running([a, b])
      return evenlySpread(now, names) && now.b.length > 0 && now
    })
    const cutAt = now()
    proxy.set(mode)
    await until(`${mode}: b's sessions on a`, async () => evenlySpread(await running([a]), names))
    const stops = readLogs([b]).filter((e) => e.event === 'stop' && e.t >= cutAt)
    t.deepEqual(sorted(stops.map((e) => e.session)), sorted(spread.b), mode)
    t.true(stops.every((e) => e.reason === 'lost'))
    // The last renewal that succeeded was sent before the cut, so the lease lives until at least cutAt + ttl:
    // every stop (600 ms long) ended before then, i.e. it began by the local deadline, not when a call returned.
    for (const e of stops) t.true(e.t - cutAt < timing.ttlMs, `${mode}: ${e.session} stopped ${e.t - cutAt} ms after the cut`)
    proxy.set('pass')
    await until(`${mode}: b back with its share`, async () => evenlySpread(await running([a, b]), names) && (await b.ask('status')).connected)
  }
  t.deepEqual(doubleOwners(ownerIntervals(readLogs([a, b]))), [])
})

test.serial('cut off while onStart runs: the start is aborted (signal reason lost), onStop follows, and only then may another worker start it', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 2)
  const proxy = await faultProxy(t, server.port)
  const b = await startWorker(t, root, { workerId: 'b', redis: { url: proxy.url, ...fast }, light: true, startHangs: true, ...timing })
  await until('both starting on b', async () => (await b.ask('status')).starting === 2)
  const cutAt = now()
  proxy.set('hold')
  const a = await startWorker(t, root, { workerId: 'a', redis, light: true, ...timing })
  await until('a runs both', async () => sorted((await a.ask('status')).running).join() === sorted(names).join())
  const logs = readLogs([a, b])
  const aborted = logs.filter((e) => e.worker === 'b' && e.event === 'aborted')
  t.deepEqual(sorted(aborted.map((e) => e.session)), sorted(names))
  t.true(aborted.every((e) => e.reason === 'lost' && e.t - cutAt < timing.ttlMs))
  const stopped = logs.filter((e) => e.worker === 'b' && e.event === 'stop')
  t.deepEqual(sorted(stopped.map((e) => `${e.session} ${e.reason}`)), sorted(names.map((s) => `${s} lost`)))
  for (const e of stopped) {
    const next = logs.find((x) => x.worker === 'a' && x.event === 'start' && x.session === e.session)
    t.true(next.t > e.t, `${e.session}: a started it ${next.t - e.t} ms after b's onStop ended`)
  }
  t.deepEqual(doubleOwners(ownerIntervals(logs)), [])
})

test.serial('a worker cut off during onStart, back and draining, never erases the new owner\'s entry: the CLI and Prometheus show the session assigned, no unassigned event', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 1)
  const [session] = names
  const proxy = await faultProxy(t, server.port)
  // The cut falls right after a's lease is taken: its owner entry, and all it sends after, land only once healed.
  proxy.holdAfter(':lease')
  const unassignedAlertMs = 2000
  const common = { light: true, unassignedAlertMs, ...timing }
  const a = await startWorker(t, root, { workerId: 'a', redis: { url: proxy.url, ...fast }, startHangs: true, ...common })
  await until('a starting', () => readLogs([a]).some((e) => e.event === 'start'))
  t.is(proxy.mode, 'hold')
  const cli = (...args) => JSON.parse(fleetCli(t, root, server.url, '--json', ...args))
  // Pinned to b (a cannot see it while cut off): once back, a has no claim on the session, so b keeps it.
  cli('--pin', session, '--to', 'b')
  const b = await startWorker(t, root, { workerId: 'b', redis, ...common })
  await until('a gave its start up', () => readLogs([a]).some((e) => e.event === 'stop'))
  await until('b runs it', async () => (await b.ask('status')).running.includes(session))
  // Back: what a sent while cut off (its owner entry, its removal) lands now; then it drains.
  const backAt = now()
  proxy.set('pass')
  await a.ask('drain')
  // Past the alert's bound, several rounds of both.
  await sleep(unassignedAlertMs + 4 * timing.renewEveryMs)
  const view = cli()
  t.deepEqual(view.unassigned, [])
  t.deepEqual(view.workers.map((w) => [w.id, w.running]), [['a', 0], ['b', 1]])
  const series = (text, name) => Number(new RegExp(`^${name}\\{group="default",worker="b"\\} (\\S+)$`, 'm').exec(text)?.[1])
  const metrics = await b.ask('metrics')
  t.is(series(metrics, 'wwebjs_rust_store_fleet_unassigned_sessions'), 0)
  t.is(series(metrics, 'wwebjs_rust_store_fleet_running_sessions'), 1)
  t.deepEqual((await a.ask('status')).unassigned, [])
  const logs = readLogs([a, b])
  t.deepEqual(logs.filter((e) => e.t > backAt && e.type === 'unassigned'), [])
  t.deepEqual(logs.filter((e) => e.worker === 'b' && e.event === 'stop'), [], 'b kept the session')
  t.deepEqual(doubleOwners(ownerIntervals(logs)), [])
})

test.serial('a failed onStop keeps the fence: the old store cannot write the session, which moves only once its lease expired', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 2)
  const a = await startWorker(t, root, { workerId: 'a', redis, stopFails: true, ...timing })
  await until('a runs both', async () => (await a.ask('status')).running.length === 2)
  const b = await startWorker(t, root, { workerId: 'b', redis, light: true, ...timing })
  await a.ask('drain') // resolves although every onStop throws
  const failed = readLogs([a]).filter((e) => e.event === 'stop-failed')
  t.deepEqual(sorted(failed.map((e) => e.session)), sorted(names))
  t.is(readLogs([a]).filter((e) => e.event === 'fleet-event' && e.type === 'stopFailed').length, 2)
  // a's clients are still there and try to save: refused, the session's copy is the fence's.
  t.deepEqual(await a.ask('save'), Object.fromEntries(names.map((s) => [s, 'ERR_LEASE_LOST'])))
  await until('b runs both', async () => (await b.ask('status')).running.length === 2)
  // Not released: b could take each only once a's lease expired (a renewed it until onStop failed).
  for (const f of failed) {
    const next = readLogs([b]).find((e) => e.event === 'start' && e.session === f.session)
    t.true(next.t - f.t >= timing.ttlMs - 2 * timing.renewEveryMs, `${f.session}: taken ${next.t - f.t} ms after the failed stop`)
  }
})

test.serial('drain with nobody to take over stops its sessions in parallel; close resolves while an onStart never settles', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 8)
  const a = await startWorker(t, root, { workerId: 'a', redis, light: true, stopDelayMs: 500, maxConcurrentStarts: 2, ...timing })
  await until('a runs all 8', async () => (await a.ask('status')).running.length === 8)
  const drainAt = now()
  await a.ask('drain')
  const tookMs = now() - drainAt
  const logs = readLogs([a]).filter((e) => e.t >= drainAt)
  const stopping = logs.filter((e) => e.event === 'stopping')
  const stops = logs.filter((e) => e.event === 'stop')
  t.deepEqual(sorted(stops.map((e) => e.session)), sorted(names))
  t.true(stops.every((e) => e.reason === 'drain'))
  // One round: every stop began before the first one ended (not two at a time, waiting for a taker).
  t.true(Math.max(...stopping.map((e) => e.t)) < Math.min(...stops.map((e) => e.t)))
  t.log(`drain of 8 with nobody to take them: ${Math.round(tookMs)} ms`)

  const c = await startWorker(t, root, { workerId: 'c', redis, light: true, startForever: true, maxConcurrentStarts: 2, ...timing })
  await until('c starting 2', async () => (await c.ask('status')).starting === 2)
  await c.ask('close')
  const closed = readLogs([c])
  t.is(closed.filter((e) => e.event === 'fleet-event' && e.type === 'startFailed').length, 2)
  t.is(closed.filter((e) => e.event === 'stop' && e.reason === 'close').length, 2)
})

test.serial('an onStart that never settles is given up at startTimeoutMs (reason timeout, startTimedOut, onStop), its lease left to expire before anyone starts the session again; its late settling runs nothing', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names: [session] } = await saveSessions(root, redis, 1)
  const startTimeoutMs = 1500
  // a's onStart ignores its signal and resolves long after it was given up (and after its onStop).
  const settlesAfterMs = startTimeoutMs + timing.stopTimeoutMs + 500
  const a = await startWorker(t, root, { workerId: 'a', redis, light: true, startTimeoutMs, firstStartSettlesAfterMs: settlesAfterMs, ...timing })
  await until('a starting', () => readLogs([a]).some((e) => e.event === 'start'))
  const b = await startWorker(t, root, { workerId: 'b', redis, light: true, startTimeoutMs, ...timing })
  const given = await until('a gave its start up', () => readLogs([a]).find((e) => e.event === 'stop'))
  // Handed on: with a draining, the session is b's, which can take it only once a's lease expired.
  await a.ask('drain')
  await until('b runs it', async () => (await b.ask('status')).running.includes(session))
  await until('a\'s onStart settled late', () => readLogs([a]).some((e) => e.event === 'settled-late'))
  const logs = readLogs([a, b])
  const of = (worker, event) => logs.filter((e) => e.worker === worker && e.event === event)
  const [start] = of('a', 'start')
  const [aborted] = of('a', 'aborted')
  t.is(aborted.reason, 'timeout')
  // Given up at startTimeoutMs after onStart was called (measured from just before this log line).
  t.true(aborted.t - start.t >= startTimeoutMs - 50 && aborted.t - start.t < startTimeoutMs + timing.renewEveryMs, `aborted after ${aborted.t - start.t} ms`)
  const events = logs.filter((e) => e.worker === 'a' && e.event === 'fleet-event')
  t.deepEqual(events.map((e) => [e.type, e.session, e.forMs]), [['startTimedOut', session, startTimeoutMs]])
  // onStop follows half the stop budget after the abort (onStart did not settle by then).
  t.is(given.reason, 'timeout')
  t.true(given.t - aborted.t >= timing.stopTimeoutMs / 2 - 50, `onStop ${given.t - aborted.t} ms after the abort`)
  // Not released: a renewed the lease until its onStop returned, so b could start the session only once it had
  // expired, at least ttl − one renewal interval later (a released lease is taken within a round).
  const [next] = of('b', 'start')
  t.true(next.t - given.t >= timing.ttlMs - 2 * timing.renewEveryMs, `b started it ${next.t - given.t} ms after a's onStop`)
  // The late settling started nothing on a: one start, nothing running or starting there.
  t.is(of('a', 'start').length, 1)
  const status = await a.ask('status')
  t.deepEqual([status.running, status.starting], [[], 0])
  t.deepEqual(doubleOwners(ownerIntervals(logs)), [])
  await a.ask('close')
  await b.ask('close')
  t.true(readLogs([b]).some((e) => e.event === 'stop' && e.reason === 'close'))
})

test.serial('a second process given a live workerId is refused (ERR_FLEET_DUPLICATE_WORKER) and runs nothing; the first keeps its sessions', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 4)
  const first = await startWorker(t, root, { workerId: 'w', redis, light: true, ...timing })
  await until('the first runs all 4', async () => sorted((await first.ask('status')).running).join() === sorted(names).join())
  const second = await startWorker(t, root, { workerId: 'w', name: 'w-second', redis, light: true, ...timing })
  const refused = await until('the second refused', () => readLogs([second]).find((e) => e.type === 'duplicateWorker'))
  t.is(refused.code, 'ERR_FLEET_DUPLICATE_WORKER')
  t.regex(refused.message, /"w"/)
  await second.ask('close') // it closed itself: resolves at once
  // The first is undisturbed for longer than a heartbeat's ttl: all its sessions, nothing stopped, no event.
  await sleep(timing.ttlMs + 2 * timing.renewEveryMs)
  const status = await first.ask('status')
  t.deepEqual(sorted(status.running), sorted(names))
  t.true(status.connected)
  t.deepEqual(status.workers.map((w) => w.id), ['w'])
  const logs = readLogs([first, second])
  t.deepEqual(logs.filter((e) => e.worker === 'w-second' && e.event === 'start'), [])
  t.deepEqual(logs.filter((e) => e.worker === 'w' && ['stop', 'fleet-event'].includes(e.event)), [])
  t.deepEqual(doubleOwners(ownerIntervals(logs)), [])
})
