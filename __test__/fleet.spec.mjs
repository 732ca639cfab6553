// A fleet of worker processes on one real Redis: spread, failover after kill -9, a worker cut off from Redis,
// drain and a joining worker. Every check of "one owner" reads the assignment logs the workers write.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import test from 'ava'

import { faultProxy } from './fault-proxy.mjs'
import {
  doubleOwners,
  fleetCli,
  evenlySpread,
  maxInHandoff,
  now,
  ownerIntervals,
  readLogs,
  running,
  saveSessions,
  startWorker,
  timing,
  until,
} from './fleet-harness.mjs'
import { RustStore, tempDir } from './helpers.mjs'
import { startRedis } from './servers.mjs'

const fast = { connectTimeoutMs: 400, commandTimeoutMs: 400 }

test.serial('40 sessions over 3 workers: one owner each, within ±1 of even; kill -9 moves them whole, never two owners', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names, stored } = await saveSessions(root, redis, 40)
  t.deepEqual(stored, names)
  const workers = []
  for (const workerId of ['a', 'b', 'c']) workers.push(await startWorker(t, root, { workerId, redis }))
  const spread = await until('40 spread over a, b, c', async () => {
    const now = await running(workers)
    return evenlySpread(now, names) && now
  })
  t.deepEqual(Object.values(spread).map((l) => l.length).sort(), [13, 13, 14])

  const [a, b, c] = workers
  const victims = spread.c
  // c backs each of its sessions up once more (v2, through the fleet's lease): failover must restore that one.
  const bumped = await c.ask('bump')
  t.deepEqual(Object.keys(bumped).sort(), [...victims].sort())
  t.true(Object.values(bumped).every(Boolean), 'every v2 backup stored')
  const killedAt = await c.kill()
  const after = await until("c's sessions on a and b", async () => {
    const now = await running([a, b])
    return evenlySpread(now, names) && now
  })
  t.deepEqual(Object.values(after).map((l) => l.length), [20, 20])

  const entries = readLogs(workers)
  const intervals = ownerIntervals(entries, { c: killedAt })
  t.deepEqual(doubleOwners(intervals), [])
  // Restored whole: every start restored exactly the tree saved for that session, a moved one its newest backup
  // (c's v2); SafeRemoteAuth took the fleet's own lease token and left renewing it to the fleet.
  const started = entries.filter((e) => e.event === 'started')
  t.true(started.length >= 40 + victims.length)
  for (const e of started) {
    const version = victims.includes(e.session) && e.t > killedAt ? 'v2' : 'v1'
    t.is(e.marker, `${e.session} ${version}`)
    t.deepEqual(e.tree, ['Default/IndexedDB/data.log:2048', `Default/Local Storage/marker.txt:${e.marker.length}`])
    t.true(e.adopted)
    t.false(e.ownRenewals)
  }
  // Each moved session was taken under a new lease token (so only once c's lease had expired: the lease, not a
  // clock here, orders it), within the documented bound (ttl + renew) plus the queue of starts
  // (maxConcurrentStarts at a time) on a loaded machine.
  const moved = intervals.filter((i) => victims.includes(i.session) && i.worker !== 'c' && i.from > killedAt)
  t.is(new Set(moved.map((i) => i.session)).size, victims.length)
  for (const m of moved) {
    const before = intervals.find((i) => i.session === m.session && i.worker === 'c')
    t.not(m.token, before.token)
  }
  const first = Math.min(...moved.map((m) => m.from))
  const last = Math.max(...moved.map((m) => m.from))
  t.log(`failover of ${victims.length} sessions: first ${first - killedAt} ms, last ${last - killedAt} ms (ttl ${timing.ttlMs} + renew ${timing.renewEveryMs})`)
  t.true(last - killedAt <= timing.ttlMs + timing.renewEveryMs + 10_000, `last start ${last - killedAt} ms after the kill`)
  const statuses = await Promise.all([a.ask('status'), b.ask('status')])
  t.is(statuses[0].failovers + statuses[1].failovers, victims.length)
  t.deepEqual(statuses[0].workers.map((w) => w.id), ['a', 'b'])
})

test.serial('a worker cut off from Redis stops its sessions before another starts them, then rejoins', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 30)
  const proxy = await faultProxy(t, server.port)
  const a = await startWorker(t, root, { workerId: 'a', redis })
  const b = await startWorker(t, root, { workerId: 'b', redis })
  const c = await startWorker(t, root, { workerId: 'c', redis: { url: proxy.url, ...fast } })
  const workers = [a, b, c]
  const spread = await until('30 spread', async () => {
    const now = await running(workers)
    return evenlySpread(now, names) && now
  })
  proxy.set('refuse')
  await until("c's sessions on a and b", async () => evenlySpread(await running([a, b]), names))
  const cStatus = await c.ask('status')
  t.deepEqual(cStatus.running, [])
  t.false(cStatus.connected)
  const cut = readLogs([c]).filter((e) => e.event === 'stop')
  t.deepEqual(cut.map((e) => e.session).sort(), [...spread.c].sort())
  t.true(cut.every((e) => e.reason === 'lost'))

  proxy.set('pass')
  await until('c back with its share', async () => evenlySpread(await running(workers), names))
  const intervals = ownerIntervals(readLogs(workers))
  t.deepEqual(doubleOwners(intervals), [])
  // Every session c lost was started by a or b only after c had stopped it.
  for (const stop of cut) {
    const next = intervals.find((i) => i.session === stop.session && i.worker !== 'c' && i.from >= stop.t)
    t.truthy(next, stop.session)
  }
})

test.serial('drain() hands every session off and a 4th worker takes its share: bounded handoffs, one owner', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 40)
  const [a, b, c] = [await startWorker(t, root, { workerId: 'a', redis }), await startWorker(t, root, { workerId: 'b', redis }), await startWorker(t, root, { workerId: 'c', redis })]
  await until('40 spread', async () => evenlySpread(await running([a, b, c]), names))
  const before = (await a.ask('status')).running
  // a's profiles change after their last backup (v3): only the final backup of the handoff holds that.
  t.deepEqual(Object.keys(await a.ask('touch')).sort(), [...before].sort())

  const drainAt = now()
  await a.ask('drain')
  t.deepEqual((await a.ask('status')).running, [])
  const drained = readLogs([a]).filter((e) => e.event === 'stop' && e.t >= drainAt)
  t.deepEqual(drained.map((e) => e.session).sort(), [...before].sort())
  t.true(drained.every((e) => e.reason === 'drain'))
  await until('b and c full', async () => evenlySpread(await running([b, c]), names))
  const takenOver = readLogs([b, c]).filter((e) => e.event === 'started' && e.t >= drainAt)
  t.deepEqual(takenOver.map((e) => e.session).sort(), [...before].sort())
  t.deepEqual(takenOver.filter((e) => e.marker !== `${e.session} v3`), [], 'each handoff carried the final backup')

  const d = await startWorker(t, root, { workerId: 'd', redis })
  const joined = await until('b, c, d even', async () => {
    const now = await running([b, c, d])
    return evenlySpread(now, names) && now
  })
  t.true(joined.d.length >= 13, `d runs ${joined.d.length}`)
  const intervals = ownerIntervals(readLogs([a, b, c, d]))
  t.deepEqual(doubleOwners(intervals), [])
  // Down at once: at most maxConcurrentStarts from the one draining worker, and from each of the two that gave
  // sessions to d.
  const drainPeak = maxInHandoff(intervals, ['drain'])
  const joinPeak = maxInHandoff(intervals, ['rebalance'])
  t.log(`in handoff at once: drain ${drainPeak}, join ${joinPeak}`)
  t.true(drainPeak >= 1 && drainPeak <= timing.maxConcurrentStarts)
  t.true(joinPeak >= 1 && joinPeak <= 2 * timing.maxConcurrentStarts)
  // status() is b's view as of its last round: wait for a round that saw d's starts.
  const status = await until('b sees nothing unassigned', async () => {
    const now = await b.ask('status')
    return now.unassigned.length === 0 && now
  })
  t.is(status.workers.find((w) => w.id === 'a').draining, true)

  // The CLI reads the same from Redis alone; --pause stops a session everywhere, --unpin brings it back.
  const cli = (...args) => fleetCli(t, root, server.url, ...args)
  const view = JSON.parse(cli('--json'))
  t.deepEqual(view.workers.map((w) => [w.id, w.draining]), [['a', true], ['b', false], ['c', false], ['d', false]])
  t.is(view.workers.reduce((n, w) => n + w.running, 0), 40)
  t.deepEqual(view.unassigned, [])
  t.regex(cli(), /4 workers, capacity 60, 40 sessions, 40 running, 0 unassigned/)
  // The same worker's Prometheus families, as of its last heartbeat.
  const series = (text, name) => Number(new RegExp(`^${name}\\{group="default",worker="b"\\} (\\S+)$`, 'm').exec(text)?.[1])
  const settledMetrics = await until('b metrics settled', async () => {
    const text = await b.ask('metrics')
    const running = (await b.ask('status')).running.length
    const settled = series(text, 'wwebjs_rust_store_fleet_running_sessions') === running && series(text, 'wwebjs_rust_store_fleet_unassigned_sessions') === 0
    return settled && series(text, 'wwebjs_rust_store_fleet_workers') === 4 && text
  })
  t.is(series(settledMetrics, 'wwebjs_rust_store_fleet_capacity_sessions'), 20)
  t.is(series(settledMetrics, 'wwebjs_rust_store_fleet_connected'), 1)
  t.is(series(settledMetrics, 'wwebjs_rust_store_fleet_draining'), 0)
  t.is(series(settledMetrics, 'wwebjs_rust_store_fleet_oldest_unassigned_seconds'), 0)
  t.is(series(settledMetrics, 'wwebjs_rust_store_fleet_handoffs_total'), (await b.ask('status')).handoffs)
  t.true(series(settledMetrics, 'wwebjs_rust_store_fleet_handoffs_total') >= 1, 'b handed sessions to d')
  const documented = [...fs.readFileSync('docs/operations.md', 'utf8').matchAll(/^\| `(wwebjs_rust_store_fleet_[a-z_]+)` \|/gm)].map((m) => m[1])
  t.is(documented.length, 10)
  t.deepEqual(documented.filter((name) => Number.isNaN(series(settledMetrics, name))), [], 'every documented fleet family is there')
  const paused = joined.d[0]
  t.deepEqual(JSON.parse(cli('--json', '--pause', paused)).paused, [paused])
  await until('paused session stopped', async () => !Object.values(await running([b, c, d])).flat().includes(paused))
  cli('--unpin', paused)
  await until('unpaused session back', async () => evenlySpread(await running([b, c, d]), names))
})

test.serial('a session saved while the fleet runs is started; a pinned one runs only on its worker; a logout stops it', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url, ...fast }
  const { names } = await saveSessions(root, redis, 6)
  const [a, b] = [await startWorker(t, root, { workerId: 'a', redis, light: true }), await startWorker(t, root, { workerId: 'b', redis, light: true })]
  const spread = await until('6 spread', async () => {
    const now = await running([a, b])
    return evenlySpread(now, names) && now
  })
  const cli = (...args) => JSON.parse(fleetCli(t, root, server.url, '--json', ...args))
  // Pinned to b a session a runs: a hands it over, b runs it.
  const pinned = spread.a[0]
  t.deepEqual(cli('--pin', pinned, '--to', 'b').pinned, [[pinned, 'b']])
  await until('pinned session on b only', async () => {
    const now = await running([a, b])
    return now.b.includes(pinned) && !now.a.includes(pinned)
  })
  // A login that appears while the fleet runs (saved through RemoteAuth by another process) is started once.
  const { names: late } = await saveSessions(root, redis, 1, { from: 100 })
  const all = [...names, ...late]
  await until('the new session runs', async () => evenlySpread(await running([a, b]), all))
  // b dies: a takes everything but the pinned session, which waits for b (and is reported unassigned).
  const killedAt = await b.kill()
  const status = await until('a runs all but the pinned one', async () => {
    const now = await a.ask('status')
    const want = all.filter((s) => s !== pinned).sort()
    const waiting = now.unassigned.map((u) => u.session)
    return JSON.stringify([...now.running].sort()) === JSON.stringify(want) && waiting.length === 1 && waiting[0] === pinned && now
  })
  t.is(status.workers.length, 1)
  // A logout (the stored session deleted) stops it on its owner: 'deleted'.
  const gone = late[0]
  const store = new RustStore({ redis, dataPath: path.join(root, 'seed') })
  await store.delete({ session: gone })
  await until('deleted session stopped', async () => !(await a.ask('status')).running.includes(gone))
  const entries = readLogs([a, b])
  t.deepEqual(entries.filter((e) => e.event === 'stop' && e.session === gone).map((e) => [e.worker, e.reason]), [['a', 'deleted']])
  t.false(entries.some((e) => e.event === 'start' && e.session === pinned && e.worker === 'a' && e.t > killedAt), 'a never starts the pinned session')
  t.deepEqual(doubleOwners(ownerIntervals(entries, { b: killedAt })), [])
  await a.ask('close')
})

test.serial('options: the timing rule and bad callbacks are refused with ERR_INVALID_OPTION; pause stops a session', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const store = new RustStore({ redis: { url: server.url }, dataPath: root })
  const noop = async () => {}
  const bad = [
    { workerId: 'w', capacity: 1, ttlMs: 3000, renewEveryMs: 1500, onStart: noop, onStop: noop },
    { workerId: 'w', capacity: 1, ttlMs: 3000, stopTimeoutMs: 2500, onStart: noop, onStop: noop },
    { workerId: 'w', capacity: 0, onStart: noop, onStop: noop },
    { workerId: 'bad id', capacity: 1, onStart: noop, onStop: noop },
    { workerId: 'w', capacity: 1, onStart: 'no', onStop: noop },
    { workerId: 'w', capacity: 1, onStart: noop },
    // Shorter than a renewal interval (600 ms here), longer than a day, not whole.
    { workerId: 'w', capacity: 1, ttlMs: 3000, startTimeoutMs: 500, onStart: noop, onStop: noop },
    { workerId: 'w', capacity: 1, startTimeoutMs: 86_400_001, onStart: noop, onStop: noop },
    { workerId: 'w', capacity: 1, startTimeoutMs: 1500.5, onStart: noop, onStop: noop },
  ]
  for (const options of bad) {
    t.is(t.throws(() => store.fleet(options)).code, 'ERR_INVALID_OPTION', JSON.stringify(options))
  }
  t.regex(t.throws(() => store.fleet(bad[6])).message, /fleet\.startTimeoutMs/)
  t.is(t.throws(() => new RustStore({ dir: root + '/x', primary: 'none', s3: undefined }).fleet({})).code, 'ERR_INVALID_OPTION')

  // In one process: a start is done when onStart's promise resolves; pause stops it ('paused'); close stops the rest.
  const { names } = await saveSessions(root, { url: server.url }, 2)
  const events = []
  let release
  const gate = new Promise((resolve) => (release = resolve))
  const fleet = store.fleet({
    workerId: 'solo',
    capacity: 5,
    ...timing,
    onStart: async ({ session, clientId, token }) => {
      events.push(['start', session, clientId, token.length])
      await gate
    },
    onStop: (session, reason) => events.push(['stop', session, reason]),
  })
  // One member per store: a second fleet on it would hold the same lease tokens.
  t.is(t.throws(() => store.fleet({ workerId: 'other', capacity: 1, onStart: noop, onStop: noop })).code, 'ERR_INVALID_OPTION')
  await until('both starting', () => fleet.status().starting === 2)
  t.deepEqual(fleet.status().running, [])
  release()
  await until('both running', () => fleet.status().running.length === 2)
  t.deepEqual(events.map((e) => e.slice(0, 3)).sort(), names.map((s) => ['start', s, s.replace('RemoteAuth-', '')]))
  t.true(events.every((e) => e[3] === 32))
  await fleet.pause(names[0])
  await until('paused one stopped', () => fleet.status().running.length === 1)
  t.deepEqual(events.at(-1), ['stop', names[0], 'paused'])
  t.is(fleet.status().paused, 1)
  await fleet.close()
  t.deepEqual(events.at(-1), ['stop', names[1], 'close'])
  t.deepEqual(fleet.status().running, [])
  // Closed, the store may run a member again; without a workerId it is the host's name.
  const named = store.fleet({ capacity: 1, group: 'named', ...timing, onStart: noop, onStop: noop })
  t.is(named.status().workerId, os.hostname())
  await named.close()
})

test.serial("store.close() closes the store's fleet member first: onStop 'close', leases released, left; twice is harmless", async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url }
  const { names } = await saveSessions(root, redis, 2)
  const store = new RustStore({ redis, dataPath: root })
  const events = []
  let release
  const gate = new Promise((resolve) => (release = resolve))
  store.fleet({
    workerId: 'closer',
    capacity: 5,
    // A long stop budget: the held onStop must not time out (a timed-out stop keeps its lease fenced).
    ...timing,
    ttlMs: 30_000,
    stopTimeoutMs: 20_000,
    onStart: ({ session }) => events.push(['start', session]),
    // Held open until the test saw close() still pending: it must wait for the member's stops.
    onStop: async (session, reason) => {
      events.push(['stop', session, reason])
      await gate
      events.push(['stopped', session])
    },
  })
  const cli = () => JSON.parse(fleetCli(t, root, server.url, '--json'))
  await until('closer running both', () => cli().workers.some((w) => w.id === 'closer' && w.running === 2))
  let closed = false
  const closing = store.close().then(() => (closed = true))
  await until('both stopping', () => events.filter((e) => e[0] === 'stop').length === 2)
  t.false(closed, 'close() waits for the onStops')
  release()
  await closing
  t.deepEqual(events.filter((e) => e[0] === 'stop').sort(), names.map((s) => ['stop', s, 'close']))
  t.is(events.filter((e) => e[0] === 'stopped').length, 2)
  // Left the fleet at once (not by its heartbeat expiring), its leases released (not left to expire).
  t.deepEqual(cli().workers.map((w) => w.id), [])
  const other = new RustStore({ redis, dataPath: path.join(root, 'other') })
  for (const session of names) t.is(typeof (await other.acquireLease(session, { ttlMs: 60_000 })), 'string')
  // Twice is harmless; the closed store runs no new member (its close() would not stop it).
  await store.close()
  t.is(events.filter((e) => e[0] === 'stop').length, 2)
  const noop = async () => {}
  t.is(t.throws(() => store.fleet({ workerId: 'late', capacity: 1, onStart: noop, onStop: noop })).code, 'ERR_INVALID_OPTION')
})
