// The fleet's leases ride its workers' heartbeats (issue #25, cost at rest; docs/fleet.md "Leases held by the
// heartbeat"): a worker's beat renews every lease it holds at once, so at rest no command is sent per session;
// a lease lasts as long as its holder's heartbeat, and once that ran out it is free to every taker, the plain ones
// too (the CLI, SafeRemoteAuth's own lease). Real redis-server on loopback, workers as processes.
import test from 'ava'

import { now, running, saveSessions, sleep, startWorker, timing, until } from './fleet-harness.mjs'
import { RustStore, tempDir } from './helpers.mjs'
import { startRedis } from './servers.mjs'

const SESSIONS = 24
const leaseKey = (session) => `{wa:session:${session}}:lease`
const epochOf = (server, id) => server.cli('HGET', '{wa:session:fleet:default}:epochs', id)
const processed = (server) => Number(/total_commands_processed:(\d+)/.exec(server.cli('INFO', 'stats'))[1])

test.serial('leases ride the heartbeat: none renewed one by one at rest, and free to any taker once it ran out', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url }
  const { names } = await saveSessions(root, redis, SESSIONS)
  const a = await startWorker(t, root, { workerId: 'a', redis, capacity: SESSIONS, light: true })
  await until(`a runs all ${SESSIONS}`, async () => (await running([a])).a?.length === SESSIONS)

  // Each lease names a's live epoch and has no expiry of its own (a take is plain, moved onto the epoch by the
  // next renewal round).
  const epoch = epochOf(server, 'a')
  t.regex(epoch, /^\d+$/)
  const underEpoch = new RegExp(`^[0-9a-f]{32} default a ${epoch}$`)
  await until('every lease under a\'s epoch', () => names.every((s) => underEpoch.test(server.cli('GET', leaseKey(s)))))
  for (const session of names) {
    t.regex(server.cli('GET', leaseKey(session)), new RegExp(`^[0-9a-f]{32} default a ${epoch}$`), session)
    t.is(server.cli('PTTL', leaseKey(session)), '-1', session)
  }

  // At rest, over ten rounds: what the worker sends per round does not depend on its sessions (a renewal each
  // would be 3 commands per session per round, 72 here; the beat and the round's reads are about a dozen).
  const rounds = 10
  const before = processed(server)
  await sleep(rounds * timing.renewEveryMs)
  const perRound = (processed(server) - before - 1) / rounds
  t.log(`at rest: ${perRound.toFixed(1)} commands per round for ${SESSIONS} sessions`)
  t.true(perRound < SESSIONS, `${perRound} commands per round`)
  t.is(epochOf(server, 'a'), epoch, 'a live worker keeps its epoch')

  // A plain taker (another store's acquireLease, as the CLI's delete does) is refused while a's heartbeat lives,
  // and given the lease once it ran out: no lease outlives its holder's heartbeat.
  const other = new RustStore({ redis })
  t.teardown(() => other.close())
  const [first, second] = names
  const refused = await t.throwsAsync(other.acquireLease(first, { ttlMs: 60_000 }))
  t.is(refused.code, 'ERR_LEASE_HELD')
  const killedAt = await a.kill()
  t.is((await t.throwsAsync(other.acquireLease(first, { ttlMs: 60_000 }))).code, 'ERR_LEASE_HELD', 'a\'s heartbeat still lives')
  const token = await until('the lease free to a plain taker', () => other.acquireLease(first, { ttlMs: 60_000 }).catch(() => null))
  t.true(now() - killedAt >= timing.ttlMs - 2 * timing.renewEveryMs, `taken ${now() - killedAt} ms after a died`)
  t.is(server.cli('GET', leaseKey(first)), token, 'a plain lease now')
  // And to a worker: b takes the rest, each under its own epoch.
  const b = await startWorker(t, root, { workerId: 'b', redis, capacity: SESSIONS, light: true })
  await until(`b runs the other ${SESSIONS - 1}`, async () => (await running([b])).b?.length === SESSIONS - 1)
  await until('b holds them under its epoch', () => server.cli('GET', leaseKey(second)).endsWith(` default b ${epochOf(server, 'b')}`))
})

test.serial('an epoch that died under a running worker (its heartbeat lost): its leases move onto the next, nothing stops', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = { url: server.url }
  const { names } = await saveSessions(root, redis, 4)
  const a = await startWorker(t, root, { workerId: 'a', redis, light: true })
  await until('a runs all 4', async () => (await running([a])).a?.length === 4)
  const old = epochOf(server, 'a')
  // The heartbeat's keys vanish (evicted, deleted by hand; FLUSHALL too, fleet-dataloss.spec): the leases name an
  // epoch that is dead. The next beat finds a gone and starts a new epoch; a then holds each lease under it (its
  // own still: nobody else took them), well within the deadline, so no session stops.
  t.is(server.cli('DEL', '{wa:session:fleet:default}:members', '{wa:session:fleet:default}:epochs'), '2')
  await until('every lease under a\'s new epoch', () => {
    const epoch = epochOf(server, 'a')
    return epoch && epoch !== old && names.every((s) => server.cli('GET', leaseKey(s)).endsWith(` default a ${epoch}`))
  })
  t.true(BigInt(epochOf(server, 'a')) > BigInt(old), 'an epoch is never given twice')
  await sleep(timing.ttlMs)
  t.deepEqual((await running([a])).a?.sort(), [...names].sort(), 'still running, all of them')
})
