// The fleet's costs (issue #20), at the default timing (ttl 30 s, renewals every 6 s) and a fast one (ttl 5 s,
// every 1 s): the time from a worker's SIGKILL to the last of its sessions running elsewhere (200 sessions over 4
// worker processes, fake clients that start at once), and the Redis commands per second the fleet costs at rest
// (heartbeats, renewals, checks), per session. Redis counts every command a script runs, so a lease renewal
// (EVAL + GET + SET + PEXPIRE) counts 4: the figure is commands processed, not round trips.
// `npm run bench:fleet [-- --quick]`; writes bench/fleet.md; figures go to docs/benchmarks.md.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { readLogs, running, saveSessions, sleep, startWorker, until } from '../__test__/fleet-harness.mjs'
import { startRedis } from '../__test__/servers.mjs'

const quick = process.argv.includes('--quick')
const SESSIONS = Number(process.env.FLEET_SESSIONS ?? 200)
const WORKERS = ['w1', 'w2', 'w3', 'w4']
const timings = [
  { name: 'default', ttlMs: 30_000, renewEveryMs: 6_000, stopTimeoutMs: 10_000 },
  { name: 'fast', ttlMs: 5_000, renewEveryMs: 1_000, stopTimeoutMs: 1_500 },
].filter((t) => !quick || t.name === 'fast')

async function measure(timing) {
  const stops = []
  const t = { teardown: (fn) => stops.push(fn) }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-fleet-bench-'))
  try {
    const server = await startRedis(t)
    const redis = { url: server.url }
    const { names } = await saveSessions(root, redis, SESSIONS)
    const { name, ...options } = timing
    const workers = []
    for (const workerId of WORKERS) {
      workers.push(await startWorker(t, root, { workerId, redis, capacity: SESSIONS, light: true, maxConcurrentStarts: 16, ...options }))
    }
    const all = async (list) => Object.values(await running(list)).flat().length === names.length
    await until('all running', () => all(workers), 1200)
    await sleep(2 * timing.renewEveryMs)

    // At rest: nothing moves; whole renewal intervals, so every worker's beats and renewals are counted evenly.
    const commands = () => Number(/total_commands_processed:(\d+)/.exec(server.cli('INFO', 'stats'))[1])
    const restMs = (quick ? 3 : 5) * timing.renewEveryMs
    const before = commands()
    await sleep(restMs)
    const perSecond = ((commands() - before - 1) * 1000) / restMs

    const victim = workers.at(-1)
    const victims = (await victim.ask('status')).running
    const killedAt = await victim.kill()
    await until('failed over', () => all(workers.slice(0, -1)), 1200)
    const starts = readLogs(workers.slice(0, -1)).filter((e) => e.event === 'start' && victims.includes(e.session) && e.t > killedAt)
    const failoverMs = Math.max(...starts.map((e) => e.t)) - killedAt
    for (const w of workers.slice(0, -1)) await w.ask('close')
    return { name, ...timing, victims: victims.length, failoverMs, perSecond, perSession: perSecond / SESSIONS }
  } finally {
    while (stops.length) await stops.pop()()
    fs.rmSync(root, { recursive: true, force: true })
  }
}

const rows = []
for (const timing of timings) {
  const row = await measure(timing)
  rows.push(row)
  console.log(`${row.name}: failover of ${row.victims} sessions ${row.failoverMs} ms; at rest ${row.perSecond.toFixed(1)} commands/s`)
}

const s = (ms) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
const met = (ok) => (ok ? 'met' : '**not met**')
const md = [
  '# Fleet benchmark',
  '',
  `- ${SESSIONS} sessions over ${WORKERS.length} worker processes (fake clients: \`onStart\` resolves at once), one redis-server on loopback`,
  `- machine: ${os.cpus()[0].model}, ${os.cpus().length} cores, Node ${process.version}; ${new Date().toISOString()}${quick ? ', **--quick run**' : ''}`,
  '',
  '| timing | ttl | renew every | failover of one worker\'s sessions (SIGKILL → last start) | goal ≤ ttl + 5 s | Redis commands/s at rest | per session | goal ≤ 1 |',
  '|---|---|---|---|---|---|---|---|',
  ...rows.map((r) =>
    `| ${r.name} | ${s(r.ttlMs)} | ${s(r.renewEveryMs)} | ${r.victims} sessions in ${s(r.failoverMs)} | ${met(r.failoverMs <= r.ttlMs + 5_000)} | ${r.perSecond.toFixed(0)} | ${r.perSession.toFixed(2)} | ${met(r.perSession <= 1)} |`),
  '',
]
fs.writeFileSync(new URL('./fleet.md', import.meta.url), md.join('\n'))
console.log(md.join('\n'))
