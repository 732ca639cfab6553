'use strict'
// Several fleet workers in one process, for the large fleet benchmark (bench/fleet.mjs): each a RustStore of its
// own (one member per store) with fake clients whose onStart resolves at once. Starts go to one log (JSON lines,
// CLOCK_MONOTONIC ms, as support/fleet-worker.js writes them); the parent asks over IPC for the running sessions.
//
// argv[2]: JSON { ids: [workerId…], redis, capacity, log, timing: { ttlMs, renewEveryMs, stopTimeoutMs }, maxConcurrentStarts }

const fs = require('node:fs')
const { RustStore } = require('../index.js')

const opts = JSON.parse(process.argv[2])
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000
const log = (entry) => fs.appendFileSync(opts.log, JSON.stringify({ t: now(), ...entry }) + '\n')

const members = opts.ids.map((workerId) => {
  const store = new RustStore({ redis: opts.redis })
  return store.fleet({
    workerId,
    capacity: opts.capacity,
    maxConcurrentStarts: opts.maxConcurrentStarts,
    ...opts.timing,
    async onStart({ session, token }) {
      log({ event: 'start', worker: workerId, session, token })
    },
    async onStop(session, reason) {
      log({ event: 'stop', worker: workerId, session, reason })
    },
    onEvent() {},
  })
})

process.on('message', async ({ id, cmd }) => {
  let reply = null
  if (cmd === 'running') reply = members.flatMap((m) => m.status().running)
  if (cmd === 'close') reply = await Promise.all(members.map((m) => m.close()))
  process.send({ id, reply })
})
process.send({ ready: true })
