// The Redis tier against a real redis-server on loopback.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, eventually, makeProfile, remoteAuthRoundTrip, tempDir, zipProfile } from './helpers.mjs'
import { startCluster, startRedis } from './servers.mjs'

const DAY = 24 * 3600 * 1000

async function zipFor(t, { size = 'small', seed = 1 } = {}) {
  const root = tempDir(t)
  makeProfile(path.join(root, 'profile'), { junk: false, size, seed })
  const zip = path.join(root, 'session.zip')
  await zipProfile(path.join(root, 'profile'), zip)
  return { root, zip }
}

test.serial('RemoteAuth backs up to Redis and restores from it', async (t) => {
  const redis = await startRedis(t)
  const root = tempDir(t)
  await remoteAuthRoundTrip(t, { root, storeOptions: { redis: { url: redis.url } } })
  t.is(redis.cli('DBSIZE'), '0', 'logout deleted the key')
})

test.serial('a long history (13 MB of IndexedDB) round-trips through Redis', async (t) => {
  const redis = await startRedis(t)
  const root = tempDir(t)
  const { stored } = await remoteAuthRoundTrip(t, { root, size: 'large', storeOptions: { redis: { url: redis.url } } })
  t.true(stored.filesBytes > 13_000_000)
})

test('keys carry the prefix and a TTL that every save refreshes; 0 means no expiry', async (t) => {
  const redis = await startRedis(t)
  const { zip } = await zipFor(t)
  const store = new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-ttl', path: zip })
  const pttl = Number(redis.cli('PTTL', 'wa:session:RemoteAuth-ttl'))
  t.true(pttl > 30 * DAY - 60_000 && pttl <= 30 * DAY, `${pttl}`)

  redis.cli('PEXPIRE', 'wa:session:RemoteAuth-ttl', '5000')
  await store.save({ session: 'RemoteAuth-ttl', path: zip })
  t.true(Number(redis.cli('PTTL', 'wa:session:RemoteAuth-ttl')) > 30 * DAY - 60_000, 'save refreshed the TTL')

  const custom = new RustStore({ redis: { url: redis.url, prefix: 'app1:', ttlSeconds: 90 }, saveErrors: 'reject' })
  await custom.save({ session: 'RemoteAuth-ttl', path: zip })
  const short = Number(redis.cli('PTTL', 'app1:RemoteAuth-ttl'))
  t.true(short > 80_000 && short <= 90_000, `${short}`)

  const forever = new RustStore({ redis: { url: redis.url, prefix: 'forever:', ttlSeconds: 0 }, saveErrors: 'reject' })
  await forever.save({ session: 'RemoteAuth-ttl', path: zip })
  t.is(redis.cli('PTTL', 'forever:RemoteAuth-ttl'), '-1')
})

test('listSessions scans only its prefix and reads metadata without the blob', async (t) => {
  const redis = await startRedis(t)
  const { zip } = await zipFor(t)
  const store = new RustStore({ redis: { url: redis.url, prefix: 'svc*[1]:' }, saveErrors: 'reject' })
  const names = Array.from({ length: 30 }, (_, i) => `RemoteAuth-u${String(i).padStart(2, '0')}`)
  for (const session of names) await store.save({ session, path: zip })
  redis.cli('SET', 'svcX1:RemoteAuth-other', 'not ours')
  redis.cli('SET', 'unrelated', 'x')
  const listed = await store.listSessions()
  t.deepEqual(listed.map((s) => s.session), names)
  const bytes = fs.statSync(zip).size
  for (const s of listed) {
    t.is(s.zipBytes, bytes)
    t.true(s.storedBytes > 0 && s.storedBytes <= bytes)
    t.true(Math.abs(Date.now() - s.savedAt) < 60_000)
  }
})

test('a password-protected server: the right password works, a wrong one is ERR_REDIS_AUTH without the secret', async (t) => {
  const redis = await startRedis(t, { password: 'p@ss w0rd' })
  const { zip } = await zipFor(t)
  const store = new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-pw', path: zip })
  t.true(await store.sessionExists({ session: 'RemoteAuth-pw' }))

  const wrong = new RustStore({ redis: { url: `redis://:hunter2-secret@127.0.0.1:${redis.port}` } })
  const err = await t.throwsAsync(wrong.sessionExists({ session: 'RemoteAuth-pw' }))
  t.is(err.code, 'ERR_REDIS_AUTH', err.message)
  t.false(err.message.includes('hunter2-secret'), err.message)
  t.false(err.stack.includes('hunter2-secret'))
})

test('a unix socket URL works', async (t) => {
  const redis = await startRedis(t, { unixSocket: true })
  const { zip, root } = await zipFor(t)
  const store = new RustStore({ redis: { url: `unix://${redis.socket}` }, saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-sock', path: zip })
  await store.extract({ session: 'RemoteAuth-sock', path: path.join(root, 'out.zip') })
  t.true(fs.statSync(path.join(root, 'out.zip')).size > 0)
  t.is(redis.cli('EXISTS', 'wa:session:RemoteAuth-sock'), '1')
})

test.serial('an outage is a coded error from every method, never "no session", and the store recovers by itself', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const { zip, root } = await zipFor(t)
  const errors = []
  const store = new RustStore({ redis: { url: redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 2000 }, onError: (e) => errors.push(e) })
  t.not(await store.save({ session: 'RemoteAuth-out', path: zip }), null)

  await redis.stop()
  const unavailable = /^ERR_REDIS_(UNAVAILABLE|TIMEOUT)$/
  t.regex((await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-out' }))).code, unavailable)
  t.regex((await t.throwsAsync(store.extract({ session: 'RemoteAuth-out', path: path.join(root, 'x.zip') }))).code, unavailable)
  t.regex((await t.throwsAsync(store.delete({ session: 'RemoteAuth-out' }))).code, unavailable)
  t.regex((await t.throwsAsync(store.listSessions())).code, unavailable)
  t.is(await store.save({ session: 'RemoteAuth-out', path: zip }), null, 'a save during the outage is reported, not thrown')
  t.is(errors.length, 1)
  t.regex(errors[0].code, unavailable)
  t.false(fs.existsSync(path.join(root, 'x.zip')))

  await redis.start()
  // The same store object reconnects on its own; the session written before the outage is whole.
  t.true(await eventually(() => store.sessionExists({ session: 'RemoteAuth-out' })))
  await store.extract({ session: 'RemoteAuth-out', path: path.join(root, 'x.zip') })
  t.true(fs.statSync(path.join(root, 'x.zip')).size > 0)
})

test('a store made while Redis is down fails loudly, then works once Redis is up', async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  const store = new RustStore({ redis: { url: redis.url, connectTimeoutMs: 500 } })
  t.regex((await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-x' }))).code, /^ERR_REDIS_(UNAVAILABLE|TIMEOUT)$/)
  await redis.start()
  t.false(await eventually(() => store.sessionExists({ session: 'RemoteAuth-x' })))
})

test('bad Redis options are ERR_INVALID_OPTION', (t) => {
  for (const redis of [{ url: 'http://127.0.0.1:1' }, { url: 'redis://127.0.0.1:1', ttlSeconds: -5 }]) {
    t.is(t.throws(() => new RustStore({ redis })).code, 'ERR_INVALID_OPTION', JSON.stringify(redis))
  }
})

test.serial('RemoteAuth round trip over TLS (rediss://) with the test CA', async (t) => {
  const redis = await startRedis(t, { tls: true })
  const root = tempDir(t)
  await remoteAuthRoundTrip(t, { root, storeOptions: { redis: { url: redis.url, tls: { caFile: redis.certs.ca } } } })
})

test('TLS: an unknown CA is refused, insecure skips the check, a plain client gets no session', async (t) => {
  const redis = await startRedis(t, { tls: true })
  const untrusted = new RustStore({ redis: { url: redis.url, connectTimeoutMs: 2000 } })
  const err = await t.throwsAsync(untrusted.sessionExists({ session: 'RemoteAuth-tls' }))
  t.regex(err.code, /^ERR_REDIS/, err.message)
  const insecure = new RustStore({ redis: { url: redis.url, tls: { insecure: true } } })
  t.false(await insecure.sessionExists({ session: 'RemoteAuth-tls' }))
  const plain = new RustStore({ redis: { url: `redis://127.0.0.1:${redis.port}`, connectTimeoutMs: 1000, commandTimeoutMs: 1000 } })
  t.regex((await t.throwsAsync(plain.sessionExists({ session: 'RemoteAuth-tls' }))).code, /^ERR_REDIS/)
})

test.serial('Redis Cluster: RemoteAuth round trip, and sessions spread over the primaries are all listed', async (t) => {
  const nodes = await startCluster(t)
  const redis = { nodes: nodes.map((n) => n.url) }
  const root = tempDir(t)
  await remoteAuthRoundTrip(t, { root, storeOptions: { redis } })

  const { zip } = await zipFor(t)
  const store = new RustStore({ redis, saveErrors: 'reject' })
  const names = Array.from({ length: 40 }, (_, i) => `RemoteAuth-c${String(i).padStart(2, '0')}`)
  await Promise.all(names.map((session) => store.save({ session, path: zip })))
  const perNode = nodes.map((n) => Number(n.cli('DBSIZE')))
  t.is(perNode.reduce((a, b) => a + b, 0), names.length)
  t.true(perNode.filter((n) => n > 0).length >= 2, `keys on ${perNode}`)
  t.deepEqual((await store.listSessions()).map((s) => s.session), names)
  const pttl = Number(nodes[0].cli('-c', 'PTTL', 'wa:session:RemoteAuth-c00')) // -c follows MOVED
  t.true(pttl > 29 * DAY, `${pttl}`)
  for (const session of names) await store.delete({ session })
  t.deepEqual(await store.listSessions(), [])
})

test.serial('redis-server stopped while saves are in flight: coded errors, and no session left half-written', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const { zip, root } = await zipFor(t, { size: 'medium' })
  const errors = []
  const store = new RustStore({ redis: { url: redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 2000 }, onError: (e) => errors.push(e) })
  // Ten saves land; then the server holds every write (CLIENT PAUSE) while thirty more are sent, and stops
  // with those thirty in flight.
  const landed = Array.from({ length: 10 }, (_, i) => `RemoteAuth-f${i}`)
  t.false((await Promise.all(landed.map((session) => store.save({ session, path: zip })))).includes(null))
  redis.cli('CLIENT', 'PAUSE', '20000', 'WRITE')
  const held = Array.from({ length: 30 }, (_, i) => `RemoteAuth-h${i}`)
  const saves = Promise.all(held.map((session) => store.save({ session, path: zip })))
  await new Promise((resolve) => setTimeout(resolve, 500))
  await redis.stop()
  const results = await saves
  t.is(results.filter((r) => r === null).length, errors.length, 'every save either stored or reported')
  t.is(errors.length, 30, 'the held saves failed')
  for (const e of errors) t.regex(e.code, /^ERR_REDIS_(UNAVAILABLE|TIMEOUT)$/, e.message)

  await redis.start()
  const listed = await eventually(() => store.listSessions()) // the same store works again
  // Every key that survived is a whole, checksum-valid archive.
  for (const { session } of listed) {
    await store.extract({ session, path: path.join(root, 'restored', `${session}.zip`) })
  }
  t.deepEqual(listed.map((s) => s.session).sort(), landed.slice().sort(), 'the landed saves survived, whole')
})

test('an ACL user limited to its key prefix works, and a prefix outside its grant is ERR_REDIS_AUTH', async (t) => {
  const redis = await startRedis(t)
  redis.cli('ACL', 'SETUSER', 'wwebjs', 'on', '>app-secret', '~wa:session:*', '+@all', '-@dangerous', '+scan', '+info')
  const { zip } = await zipFor(t)
  const url = `redis://wwebjs:app-secret@127.0.0.1:${redis.port}`
  const store = new RustStore({ redis: { url }, saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-acl', path: zip })
  t.deepEqual((await store.listSessions()).map((s) => s.session), ['RemoteAuth-acl'])
  const outside = new RustStore({ redis: { url, prefix: 'other:' } })
  const err = await t.throwsAsync(outside.sessionExists({ session: 'RemoteAuth-acl' }))
  t.is(err.code, 'ERR_REDIS_AUTH', err.message)
  t.false(err.message.includes('app-secret'))
})
