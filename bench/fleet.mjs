// The fleet's costs: the time from a worker's SIGKILL to the last of its sessions running elsewhere (200
// sessions over 4 worker processes with fake clients), and the Redis commands per second the fleet costs at
// rest (heartbeats, renewals, checks), per 1,000 sessions. `node bench/fleet.mjs`; figures go to
// docs/benchmarks.md.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { readLogs, running, saveSessions, sleep, startWorker, until } from '../__test__/fleet-harness.mjs'
import { startRedis } from '../__test__/servers.mjs'

const SESSIONS = Number(process.env.FLEET_SESSIONS ?? 200)
const timing = { ttlMs: 5000, renewEveryMs: 1000, stopTimeoutMs: 1500, maxConcurrentStarts: 16 }
const stops = []
const t = { teardown: (fn) => stops.push(fn) }
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-fleet-bench-'))

try {
  const server = await startRedis(t)
  const redis = { url: server.url }
  const { names } = await saveSessions(root, redis, SESSIONS)
  const workers = []
  for (const workerId of ['w1', 'w2', 'w3', 'w4']) {
    workers.push(await startWorker(t, root, { workerId, redis, capacity: SESSIONS, light: true, ...timing }))
  }
  const all = async (list) => Object.values(await running(list)).flat().length === names.length
  await until('all running', () => all(workers), 1200)
  await sleep(2 * timing.renewEveryMs)

  const commands = () => Number(/total_commands_processed:(\d+)/.exec(server.cli('INFO', 'stats'))[1])
  const restMs = 10_000
  const before = commands()
  await sleep(restMs)
  const opsPerSecond = ((commands() - before - 1) * 1000) / restMs

  const victim = workers[3]
  const victims = (await victim.ask('status')).running
  const killedAt = await victim.kill()
  await until('failed over', () => all(workers.slice(0, 3)), 1200)
  const starts = readLogs(workers.slice(0, 3)).filter((e) => e.event === 'start' && victims.includes(e.session) && e.t > killedAt)
  const failoverMs = Math.max(...starts.map((e) => e.t)) - killedAt
  const bound = timing.ttlMs + timing.renewEveryMs
  console.log(`fleet: ${SESSIONS} sessions, 4 workers, ttl ${timing.ttlMs} ms, renew every ${timing.renewEveryMs} ms`)
  console.log(`failover of ${victims.length} sessions: ${failoverMs} ms (bound ttl + renew = ${bound} ms)`)
  console.log(`at rest: ${opsPerSecond.toFixed(1)} Redis commands/s, ${((opsPerSecond * 1000) / SESSIONS).toFixed(1)} per 1,000 sessions`)
  for (const w of workers.slice(0, 3)) await w.ask('close')
} finally {
  while (stops.length) await stops.pop()()
  fs.rmSync(root, { recursive: true, force: true })
}
