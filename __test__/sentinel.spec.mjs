// The Sentinel tier against real servers: a primary, a replica and three redis-sentinel processes on loopback, with
// passwords on the data nodes and on the sentinels, started once for the file. The last test kills the primary.
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, remoteAuthRoundTrip, require, tempDir, zipProfile } from './helpers.mjs'
import { startMoto, startSentinels } from './servers.mjs'

const unzipper = require('unzipper')
const { writeZip } = require('../support/zip-profile.js')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const PASSWORD = 'data p@ss-s3cret'
const SENTINEL_PASSWORD = 'sentinel-s3cret'

let set
const stops = []
test.before(async () => {
  set = await startSentinels({ teardown: (stop) => stops.push(stop) }, { password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD })
})
test.after.always(async () => {
  for (const stop of stops.reverse()) await stop()
})

const redisOptions = (more = {}) => ({
  sentinels: set.addrs,
  name: set.name,
  password: PASSWORD,
  sentinelPassword: SENTINEL_PASSWORD,
  connectTimeoutMs: 10_000,
  commandTimeoutMs: 3000,
  replicaTimeoutMs: 1000,
  ...more,
})

/** `n` distinct session zips (RemoteAuth's shape) and each one's file contents. */
async function zips(t, n) {
  const root = tempDir(t)
  const out = []
  for (let i = 0; i < n; i++) {
    const kept = makeProfile(path.join(root, `p${i}`), { junk: false, seed: 300 + i })
    await zipProfile(path.join(root, `p${i}`), path.join(root, `${i}.zip`))
    out.push({ zip: path.join(root, `${i}.zip`), kept })
  }
  return out
}

/**
 * A session zip unique to one save attempt: a fixed LevelDB-like body and a marker naming the attempt, so a
 * restore tells exactly which attempt it holds (no two attempts share bytes that could pass for each other).
 */
async function attemptZip(dir, session, attempt) {
  const zip = path.join(dir, `${session}-${attempt}.zip`)
  const id = `${session}#${attempt}`
  await writeZip(zip, (archive) => {
    archive.append(Buffer.alloc(20_000, attempt % 251), { name: 'Default/IndexedDB/db.leveldb/000003.log' })
    archive.append(id, { name: 'Default/Local Storage/leveldb/attempt' })
  })
  return { zip, id }
}

/** The attempt a zip holds, or null when it is not one whole attempt. */
async function whichAttempt(zip) {
  const files = {}
  // The pad extract adds after a run of small files is not the session's (a RemoteAuth restore removes it).
  const entries = (await unzipper.Open.file(zip)).files.filter((e) => e.type === 'File' && e.path !== 'wwebjs-rust-store.pad')
  for (const entry of entries) files[entry.path] = await entry.buffer()
  const id = files['Default/Local Storage/leveldb/attempt']?.toString()
  const attempt = Number(id?.split('#')[1])
  const whole = Object.keys(files).length === 2 && files['Default/IndexedDB/db.leveldb/000003.log']?.equals(Buffer.alloc(20_000, attempt % 251))
  return whole ? id : null
}

/** Which of `versions` a zip holds, whole; -1 if none. */
async function whichVersion(zip, versions) {
  const files = {}
  for (const entry of (await unzipper.Open.file(zip)).files.filter((e) => e.type === 'File')) files[entry.path] = await entry.buffer()
  return versions.findIndex(({ kept }) => Object.keys(files).length === Object.keys(kept).length && Object.entries(kept).every(([rel, data]) => files[rel]?.equals(data)))
}

test.serial('RemoteAuth round-trips through RustStore on Sentinel, passwords on Redis and on the sentinels', async (t) => {
  const root = tempDir(t)
  await remoteAuthRoundTrip(t, { root, storeOptions: { redis: redisOptions() } })
  t.is(set.primary.cli('DBSIZE'), '0', 'logout deleted the key on the primary')
})

test.serial('a wrong password, for the sentinels or for the data nodes, is ERR_REDIS_AUTH without the secret', async (t) => {
  const { zip } = (await zips(t, 1))[0]
  for (const wrong of [{ sentinelPassword: 'wrong-sentinel-s3cret' }, { password: 'wrong-data-s3cret' }]) {
    const store = new RustStore({ redis: redisOptions({ ...wrong, connectTimeoutMs: 2000 }), saveErrors: 'reject' })
    const err = await t.throwsAsync(store.save({ session: 'RemoteAuth-auth', path: zip }))
    t.is(err.code, 'ERR_REDIS_AUTH', err.message)
    t.false(err.message.includes('s3cret'), err.message)
    t.is((await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-auth' }))).code, 'ERR_REDIS_AUTH')
  }
})

test.serial('a save waits for the replica: with the replica stopped it fails ERR_REDIS_REPLICAS to onError, then lands', async (t) => {
  const versions = await zips(t, 2)
  const errors = []
  const store = new RustStore({ redis: redisOptions(), onError: (err) => errors.push(err) })
  const session = 'RemoteAuth-wait'
  t.truthy(await store.save({ session, path: versions[0].zip }))
  t.is(set.replica.cli('EXISTS', `wa:session:${session}`), '1', 'the acknowledged save is on the replica')

  set.replica.proc.kill('SIGSTOP')
  try {
    t.is(await store.save({ session, path: versions[1].zip }), null, "RemoteAuth's timer sees a resolved failure")
  } finally {
    set.replica.proc.kill('SIGCONT')
  }
  t.deepEqual(errors.map((e) => e.code), ['ERR_REDIS_REPLICAS'])
  t.false(errors[0].message.includes('s3cret'))

  // Two replicas asked of a primary that has one: never enough, so never a silent success.
  const strict = new RustStore({ redis: redisOptions({ minReplicas: 2, replicaTimeoutMs: 300 }), saveErrors: 'reject' })
  t.is((await t.throwsAsync(strict.save({ session, path: versions[1].zip }))).code, 'ERR_REDIS_REPLICAS')
  // 0 turns the wait off.
  const relaxed = new RustStore({ redis: redisOptions({ minReplicas: 0 }), saveErrors: 'reject' })
  set.replica.proc.kill('SIGSTOP')
  try {
    t.truthy(await relaxed.save({ session, path: versions[1].zip }))
  } finally {
    set.replica.proc.kill('SIGCONT')
  }
  t.truthy(await store.save({ session, path: versions[0].zip }), 'with the replica back, saves land again')
  await store.delete({ session })
})

test.serial('the primary SIGKILLed under saves: every acknowledged save restores whole, and saves go on without a restart', async (t) => {
  const out = tempDir(t)
  const attempts = tempDir(t)
  const failures = []
  const store = new RustStore({ redis: redisOptions(), saveErrors: 'reject' })
  const sessions = ['a', 'b', 'c', 'd', 'e', 'f'].map((s) => `RemoteAuth-fo-${s}`)
  // Per session: its last acknowledged attempt, and the attempts tried since (a failed save may still land). Every
  // attempt saves bytes of its own, so a lost acknowledged save cannot pass for another attempt.
  const state = new Map(sessions.map((s) => [s, { acked: null, since: [], next: 0 }]))
  const attempt = (session) => attemptZip(attempts, session, state.get(session).next++)
  for (const session of sessions) {
    const { zip, id } = await attempt(session)
    await store.save({ session, path: zip })
    state.get(session).acked = id
  }
  const leased = sessions[0]
  const token = await store.acquireLease(leased, { ttlMs: 120_000 })
  const counts = { saved: 0, saveFailed: 0, existsFalse: 0, existsFailed: 0 }
  let running = true
  const worker = async (w) => {
    for (let i = 0; running; i++) {
      // Each worker saves its own two sessions, one save at a time: what lands last is the last attempt.
      const session = sessions[w * 2 + (i % 2)]
      const s = state.get(session)
      const { zip, id } = await attempt(session)
      s.since.push(id)
      try {
        await store.save({ session, path: zip })
        s.acked = id
        s.since = []
        counts.saved++
      } catch (err) {
        counts.saveFailed++
        failures.push(err)
      }
      try {
        if (!(await store.sessionExists({ session }))) counts.existsFalse++
      } catch (err) {
        counts.existsFailed++
        failures.push(err)
      }
    }
  }
  const workers = [0, 1, 2].map(worker)
  await sleep(500)
  const before = counts.saved
  const oldPort = set.primary.port
  await set.primary.kill()
  // Until the sentinels name the replica and a save made after that has landed on it.
  let after
  for (let i = 0; i < 400 && after === undefined; i++) {
    await sleep(100)
    if (set.primaryPort() === set.replica.port) after = counts.saved
  }
  t.truthy(after !== undefined, 'the sentinels promoted the replica')
  for (let i = 0; i < 200 && counts.saved <= after + 6; i++) await sleep(100)
  running = false
  await Promise.all(workers)
  t.log({ ...counts, before, after, codes: [...new Set(failures.map((e) => e.code))] })

  t.true(before > 0 && counts.saved > after + 6, 'saves ran before the kill and went on after the failover')
  t.is(counts.existsFalse, 0, 'sessionExists never answered false for a stored session')
  for (const err of failures) t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT', 'ERR_REDIS_REPLICAS'].includes(err.code), `${err.code}: ${err.message}`)
  t.true(failures.every((e) => !e.message.includes('s3cret')))
  t.not(set.primaryPort(), oldPort)

  // The new primary holds every session, each as its last acknowledged save or a later attempt, whole.
  t.deepEqual((await store.listSessions()).map((s) => s.session).sort(), sessions)
  const fresh = new RustStore({ redis: redisOptions(), saveErrors: 'reject' })
  for (const session of sessions) {
    const target = path.join(out, `${session}.zip`)
    await fresh.extract({ session, path: target })
    const { acked, since } = state.get(session)
    const found = await whichAttempt(target)
    t.true(found === acked || since.includes(found), `${session}: restored ${found}, acknowledged ${acked}, tried since ${since}`)
  }
  t.is(set.replica.cli('EXISTS', `wa:session:${sessions[1]}`), '1', 'the keys live on the promoted replica')
  // The lease: taken and renewed only as replicated, so its owner still holds it on the new primary. That primary
  // has no replica left, so it cannot renew it there (a lease a failover could lose does not count; item 11).
  t.is(set.replica.cli('GET', `{wa:session:${leased}}:lease`), token)
  t.is((await t.throwsAsync(store.renewLease(leased, token, { ttlMs: 60_000 }))).code, 'ERR_REDIS_REPLICAS')
  t.is((await t.throwsAsync(fresh.acquireLease(leased))).code, 'ERR_LEASE_HELD')
  await store.releaseLease(leased, token)
  const stats = await store.stats()
  t.truthy(stats)
})

test.serial('restoreAll on Sentinel: sessions gone from the primary after the failover come back from the S3 backups', async (t) => {
  const moto = await startMoto(t)
  const s3 = { endpoint: moto.endpoint, bucket: await moto.bucket('sentinel'), forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0 }
  const versions = await zips(t, 3)
  const store = new RustStore({ redis: redisOptions(), s3, saveErrors: 'reject' })
  const sessions = versions.map((_, i) => `RemoteAuth-ra-${i}`)
  for (const [i, session] of sessions.entries()) await store.save({ session, path: versions[i].zip })
  const primary = set.nodes.find((n) => n.port === set.primaryPort())
  for (const session of sessions) t.is(primary.cli('DEL', `wa:session:${session}`), '1')
  const summary = await store.restoreAll()
  t.like(summary, { copied: sessions.length, failed: 0 })
  for (const session of sessions) t.is(primary.cli('EXISTS', `wa:session:${session}`), '1', `${session} back on the primary the sentinels name`)
  const out = tempDir(t)
  for (const [i, session] of sessions.entries()) {
    const target = path.join(out, `${session}.zip`)
    await store.extract({ session, path: target })
    t.is(await whichVersion(target, versions), i, `${session} restores whole`)
  }
  await store.close()
})

test.serial('a single server (url) waits only when asked: minReplicas 1 on a primary without replicas is ERR_REDIS_REPLICAS', async (t) => {
  // After the failover the promoted replica is a primary with no replica left.
  const { zip } = (await zips(t, 1))[0]
  const asked = new RustStore({ redis: { url: set.replica.url, minReplicas: 1, replicaTimeoutMs: 200 }, saveErrors: 'reject' })
  const err = await t.throwsAsync(asked.save({ session: 'RemoteAuth-url-wait', path: zip }))
  t.is(err.code, 'ERR_REDIS_REPLICAS')
  t.false(err.message.includes('s3cret'), err.message)
  const plain = new RustStore({ redis: { url: set.replica.url }, saveErrors: 'reject' })
  t.truthy(await plain.save({ session: 'RemoteAuth-url-wait', path: zip }), 'the default does not wait')
  const cluster = t.throws(() => new RustStore({ redis: { nodes: ['redis://127.0.0.1:1'], minReplicas: 1 } }))
  t.is(cluster.code, 'ERR_INVALID_OPTION')
})
