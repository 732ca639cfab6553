'use strict'
// One fleet worker in its own process, for the fleet specs and bench: a RustStore on the given Redis, a fleet
// worker on it, and per started session a SafeRemoteAuth (on a fake client, no browser) that takes the fleet's
// lease and restores the profile. Every start and stop goes to an assignment log (JSON lines) with this worker,
// the session, the lease token and the time; the parent steers it over IPC (status, drain, close).
//
// argv[2]: JSON { workerId, name (in the log; default workerId), redis: { url } | { nodes }, s3 (RustStore's option), capacity, ttlMs,
//   renewEveryMs, stopTimeoutMs, startTimeoutMs, maxConcurrentStarts, backupListEveryMs, dataPath, log, startDelayMs, stopDelayMs,
//   startHangs, startForever, firstStartSettlesAfterMs, stopFails, light }
// Times are CLOCK_MONOTONIC (process.hrtime.bigint, system-wide on Linux) in ms, so the logs of several worker
// processes and the spec's own marks are on one clock.

const fs = require('node:fs')
const path = require('node:path')
const { RustStore } = require('../index.js')
const { SafeRemoteAuth } = require('../safe-remote-auth.js')
const { fakeClient } = require('./remoteauth.js')

const opts = JSON.parse(process.argv[2])
const store = new RustStore({ redis: opts.redis, s3: opts.s3, dataPath: opts.dataPath, dir: path.join(opts.dataPath, 'unused') })
const auths = new Map()
/** Sessions whose onStart was called here at least once. */
const started = new Set()
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000
const log = (entry) => fs.appendFileSync(opts.log, JSON.stringify({ t: now(), worker: opts.name ?? opts.workerId, ...entry }) + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const markerPath = (auth) => path.join(auth.userDataDir, 'Default/Local Storage/marker.txt')

/** What the restored profile says it is: the marker the spec saved in it. */
function marker(auth) {
  try {
    return fs.readFileSync(markerPath(auth), 'utf8')
  } catch {
    return null
  }
}

/** Every file of the restored profile, `path:size`, sorted: the spec compares it with the tree it saved. */
function tree(auth) {
  return fs
    .readdirSync(auth.userDataDir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => {
      const full = path.join(d.parentPath ?? d.path, d.name)
      return `${path.relative(auth.userDataDir, full)}:${fs.statSync(full).size}`
    })
    .sort()
}

/**
 * A new version of every running session: its marker says `version`; backed up now (through the fleet's lease)
 * when `backup`, else left for the final backup of `onStop`.
 */
async function mark(version, backup) {
  const out = {}
  for (const [session, { auth }] of auths) {
    if (!auth) continue
    fs.writeFileSync(markerPath(auth), `${session} ${version}`)
    out[session] = backup ? await auth.backup() : true
  }
  return out
}

/** Saves every session this process still has a client for, straight through the store: true, or the error code. */
async function saveAll() {
  const out = {}
  for (const [session, { auth }] of auths) {
    if (!auth) continue
    fs.writeFileSync(markerPath(auth), `${session} stale`)
    out[session] = await store.saveProfile({ session, dir: auth.userDataDir }).then(() => true, (err) => err.code)
  }
  return out
}

const fleet = store.fleet({
  ...(opts.workerId === 'hostname' ? {} : { workerId: opts.workerId }),
  capacity: opts.capacity,
  ttlMs: opts.ttlMs,
  renewEveryMs: opts.renewEveryMs,
  stopTimeoutMs: opts.stopTimeoutMs,
  maxConcurrentStarts: opts.maxConcurrentStarts,
  unassignedAlertMs: opts.unassignedAlertMs,
  ...(opts.backupListEveryMs === undefined ? {} : { backupListEveryMs: opts.backupListEveryMs }),
  ...(opts.startTimeoutMs === undefined ? {} : { startTimeoutMs: opts.startTimeoutMs }),
  async onStart(start) {
    const { session, token, signal } = start
    // Logged before the client exists: an owner's interval starts at its first step.
    log({ event: 'start', session, token })
    if (opts.startForever) await new Promise(() => {}) // ignores its signal: never settles
    if (opts.firstStartSettlesAfterMs && !started.has(session)) {
      // A start that hangs past startTimeoutMs, ignoring its signal (only logging it), and resolves long after.
      started.add(session)
      signal.addEventListener('abort', () => log({ event: 'aborted', session, token, reason: signal.reason }), { once: true })
      await sleep(opts.firstStartSettlesAfterMs)
      log({ event: 'settled-late', session, token })
      return
    }
    if (opts.startHangs) {
      // A start that never finishes by itself (a Chromium that does not come up): it ends when the fleet aborts it.
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      log({ event: 'aborted', session, token, reason: signal.reason })
      throw new Error(`start of ${session} aborted: ${signal.reason}`)
    }
    if (opts.light) {
      auths.set(session, { token })
    } else {
      const auth = SafeRemoteAuth.forFleet(start, { store, dataPath: opts.dataPath, backupSyncIntervalMs: 60_000 })
      auth.setup(fakeClient())
      await auth.beforeBrowserInitialized()
      // As the client does once WhatsApp is ready: from then on backups run, and destroy() backs up once more.
      await auth.afterAuthReady()
      auths.set(session, { token, auth })
      // ownRenewals: a renew timer of its own would renew the fleet's lease a second time.
      log({ event: 'started', session, token, marker: marker(auth), tree: tree(auth), adopted: auth.lease.token === token, ownRenewals: Boolean(auth.lease.timer) })
    }
    if (opts.startDelayMs) await sleep(opts.startDelayMs)
  },
  async onStop(session, reason) {
    log({ event: 'stopping', session, reason })
    const held = auths.get(session)
    if (opts.stopDelayMs) await sleep(opts.stopDelayMs)
    if (opts.stopFails) {
      // The client is not gone (its destroy failed): it stays, and keeps trying to back up.
      log({ event: 'stop-failed', session, token: held?.token, reason })
      throw new Error(`onStop of ${session} failed`)
    }
    auths.delete(session)
    if (held?.auth) await held.auth.destroy()
    // Logged once the client is gone: an owner's interval ends here.
    log({ event: 'stop', session, token: held?.token, reason })
  },
  onEvent(event) {
    log({ event: 'fleet-event', type: event.type, session: event.session, forMs: event.forMs, code: event.code, message: event.message })
  },
})

process.on('message', async ({ id, cmd }) => {
  let reply
  if (cmd === 'status') reply = fleet.status()
  if (cmd === 'now') reply = now()
  if (cmd === 'metrics') reply = await store.metrics()
  if (cmd === 'drain') reply = await fleet.drain()
  if (cmd === 'bump') reply = await mark('v2', true)
  if (cmd === 'save') reply = await saveAll()
  if (cmd === 'touch') reply = await mark('v3', false)
  if (cmd === 'close') reply = await fleet.close()
  process.send({ id, reply: reply ?? null })
  if (cmd === 'close') process.disconnect()
})
process.send({ ready: true })
