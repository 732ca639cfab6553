// Fleet specs' parts: sessions saved through the real RemoteAuth, worker processes (support/fleet-worker.js),
// a TCP proxy the test can cut, and checks over the workers' assignment logs.
import { fork, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { RustStore, remoteAuth } from './helpers.mjs'
import { startMoto, startRedis } from './servers.mjs'

const workerScript = path.resolve(import.meta.dirname, '../support/fleet-worker.js')
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
/** CLOCK_MONOTONIC in ms: system-wide on Linux, so the workers' log times and the spec's marks compare. */
export const now = () => Number(process.hrtime.bigint() / 1000n) / 1000

/** Timing used by the specs: short, and within the rule (2 × 300 + 1000 ≤ 2500). */
export const timing = { ttlMs: 2500, renewEveryMs: 300, stopTimeoutMs: 1000, maxConcurrentStarts: 4 }

/**
 * `count` sessions saved by whatsapp-web.js's RemoteAuth, each profile holding a marker naming it; with `s3`
 * (RustStore's option), backed up there too.
 */
/** A Redis and a moto bucket of the test's own, with `count` sessions saved through both (backed up at once). */
export async function startBackedUpFleet(t, root, count) {
  const [server, moto] = await Promise.all([startRedis(t), startMoto(t)])
  const s3 = { endpoint: moto.endpoint, bucket: await moto.bucket('fleet'), forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0 }
  const redis = { url: server.url, connectTimeoutMs: 400, commandTimeoutMs: 400 }
  const { names, stored } = await saveSessions(root, redis, count, { s3 })
  t.deepEqual(stored, names)
  return { server, moto, s3, redis, names }
}

export async function saveSessions(root, redis, count, { from = 0, s3 } = {}) {
  const dataPath = path.join(root, 'seed')
  const store = new RustStore({ redis, s3, dataPath, saveErrors: 'reject' })
  const names = []
  for (let i = from; i < from + count; i++) {
    const clientId = `acct${String(i).padStart(3, '0')}`
    const { auth } = remoteAuth('whatsapp-web.js', { store, clientId, dataPath })
    await auth.beforeBrowserInitialized()
    const dir = path.join(auth.userDataDir, 'Default/Local Storage')
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'marker.txt'), `RemoteAuth-${clientId} v1`)
    fs.mkdirSync(path.join(auth.userDataDir, 'Default/IndexedDB'), { recursive: true })
    fs.writeFileSync(path.join(auth.userDataDir, 'Default/IndexedDB/data.log'), Buffer.alloc(2048, i))
    await auth.storeRemoteSession({ emit: false })
    names.push(`RemoteAuth-${clientId}`)
  }
  const stored = (await store.listSessions()).map((s) => s.session).sort()
  await store.close()
  return { names, stored }
}

/**
 * A worker process; `ask(cmd)` talks to it over IPC. Killed at teardown. `name` (default `workerId`) names its
 * data directory, its log and its entries in the log: two processes given one `workerId` stay apart.
 */
export async function startWorker(t, root, { workerId, name = workerId, redis, capacity = 20, ...rest }) {
  const dataPath = path.join(root, name)
  fs.mkdirSync(dataPath, { recursive: true })
  const log = path.join(root, `${name}.log`)
  const opts = { workerId, name, redis, capacity, dataPath, log, ...timing, ...rest }
  const child = fork(workerScript, [JSON.stringify(opts)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise((resolve) => child.once('exit', () => resolve(now())))
  t.teardown(() => child.kill('SIGKILL'))
  await new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', () => reject(new Error(`worker ${workerId} exited before it was ready`)))
  })
  let next = 0
  const pending = new Map()
  child.on('message', ({ id, reply }) => pending.get(id)?.(reply))
  return {
    workerId,
    name,
    log,
    child,
    exited,
    ask(cmd) {
      const id = ++next
      return new Promise((resolve) => {
        pending.set(id, resolve)
        child.send({ id, cmd })
      })
    },
    /** SIGKILL; resolves with the time it was gone. */
    async kill() {
      child.kill('SIGKILL')
      return exited
    },
  }
}

/** Polls `check` (every 100 ms, up to `tries`) until it returns a truthy value. */
export async function until(what, check, tries = 400) {
  let last
  for (let i = 0; i < tries; i++) {
    last = await check()
    if (last) return last
    await sleep(100)
  }
  throw new Error(`never happened: ${what}`)
}

/** Each worker's running sessions, by asking every worker. */
export async function running(workers) {
  const out = {}
  for (const w of workers) out[w.name] = (await w.ask('status')).running
  return out
}

/** True when every session runs on exactly one of `workers` and the counts are within ±1 of even. */
export function evenlySpread(byWorker, sessions) {
  const all = Object.values(byWorker).flat()
  if (all.length !== sessions.length || new Set(all).size !== sessions.length) return false
  const even = sessions.length / Object.keys(byWorker).length
  return Object.values(byWorker).every((list) => Math.abs(list.length - even) < 1)
}

export function readLogs(workers) {
  return workers
    .flatMap((w) => (fs.existsSync(w.log) ? fs.readFileSync(w.log, 'utf8').trim().split('\n').filter(Boolean) : []))
    .map((line) => JSON.parse(line))
    .sort((a, b) => a.t - b.t)
}

/**
 * Owner intervals per session from the logs: from `start` (before the client exists) to `stop` (after it is
 * gone), or to the process's death for a worker killed while it ran the session.
 */
export function ownerIntervals(entries, deaths = {}) {
  const open = new Map()
  const intervals = []
  for (const e of entries) {
    const key = `${e.session}\0${e.worker}`
    if (e.event === 'start') open.set(key, e)
    if (e.event === 'stop' && open.has(key)) {
      intervals.push({ session: e.session, worker: e.worker, token: open.get(key).token, from: open.get(key).t, to: e.t, reason: e.reason })
      open.delete(key)
    }
  }
  for (const s of open.values()) {
    intervals.push({ session: s.session, worker: s.worker, token: s.token, from: s.t, to: deaths[s.worker] ?? Infinity, reason: 'open' })
  }
  return intervals
}

/** Sessions that had two owners at one instant (with both intervals), from the logs. */
export function doubleOwners(intervals) {
  const bySession = new Map()
  for (const i of intervals) bySession.set(i.session, [...(bySession.get(i.session) ?? []), i])
  const doubles = []
  for (const list of bySession.values()) {
    list.sort((a, b) => a.from - b.from)
    for (let k = 1; k < list.length; k++) {
      if (list[k].from < list[k - 1].to) doubles.push([list[k - 1], list[k]])
    }
  }
  return doubles
}

/** The most sessions that were between a handoff's stop and the next start at one instant. */
export function maxInHandoff(intervals, reasons = ['drain', 'rebalance']) {
  const events = []
  const bySession = new Map()
  for (const i of intervals) bySession.set(i.session, [...(bySession.get(i.session) ?? []), i])
  for (const list of bySession.values()) {
    list.sort((a, b) => a.from - b.from)
    for (let k = 0; k + 1 < list.length; k++) {
      if (!reasons.includes(list[k].reason)) continue
      events.push([list[k].to, 1], [list[k + 1].from, -1])
    }
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let now = 0
  let max = 0
  for (const [, d] of events) max = Math.max(max, (now += d))
  return max
}

/** Runs `npx wwebjs-rust-store fleet ...args` against `url` from `root`; asserts exit 0 and returns stdout. */
export function fleetCli(t, root, url, ...args) {
  const res = spawnSync(process.execPath, [path.resolve('bin/wwebjs-rust-store.js'), 'fleet', ...args], { cwd: root, env: { PATH: process.env.PATH, REDIS_URL: url }, encoding: 'utf8' })
  t.is(res.status, 0, res.stderr)
  return res.stdout
}
