// The S3-compatible backup tier against moto's S3 server (and Redis) on loopback.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, remoteAuthRoundTrip, tempDir, zipProfile } from './helpers.mjs'
import { startMoto, startRedis } from './servers.mjs'

let moto
let bucketCount = 0
// One moto for the file (it takes seconds to start); each test uses its own bucket.
const stops = []
test.before(async () => {
  moto = await startMoto({ teardown: (stop) => stops.push(stop) })
})
test.after.always(async () => {
  for (const stop of stops) await stop()
})

async function freshBucket() {
  return moto.bucket(`sessions-${++bucketCount}`)
}

const s3Options = (bucket, extra = {}) => ({
  endpoint: moto.endpoint,
  bucket,
  forcePathStyle: true,
  accessKeyId: 'test-key',
  secretAccessKey: 'test-secret',
  ...extra,
})

async function zipFor(t, seed = 1) {
  const root = tempDir(t)
  makeProfile(path.join(root, 'profile'), { junk: false, seed })
  const zip = path.join(root, 'session.zip')
  await zipProfile(path.join(root, 'profile'), zip)
  return { root, zip }
}

test.serial('RemoteAuth round trip through Redis + S3; logout removes the session from both', async (t) => {
  const redis = await startRedis(t)
  const bucket = await freshBucket()
  const root = tempDir(t)
  await remoteAuthRoundTrip(t, { root, storeOptions: { redis: { url: redis.url }, s3: s3Options(bucket) } })
  t.is(redis.cli('DBSIZE'), '0')
  t.deepEqual(await moto.keys(bucket), [])
})

test('Redis flushed: extract restores from S3 and re-warms Redis; a corrupt Redis copy loses to the good backup', async (t) => {
  const redis = await startRedis(t)
  const bucket = await freshBucket()
  const { root, zip } = await zipFor(t)
  const store = new RustStore({ redis: { url: redis.url }, s3: s3Options(bucket), saveErrors: 'reject' })
  const saved = await store.save({ session: 'RemoteAuth-fb', path: zip })
  t.is((await moto.keys(bucket)).length, 1)

  redis.cli('FLUSHALL')
  t.true(await store.sessionExists({ session: 'RemoteAuth-fb' }), 'the backup answers for a flushed primary')
  const restored = await store.extract({ session: 'RemoteAuth-fb', path: path.join(root, 'a.zip') })
  t.is(restored.storedBytes, saved.storedBytes)
  t.is(redis.cli('EXISTS', 'wa:session:RemoteAuth-fb'), '1', 'the primary was re-warmed')

  redis.cli('SET', 'wa:session:RemoteAuth-fb', 'garbage that fails the checksum')
  await store.extract({ session: 'RemoteAuth-fb', path: path.join(root, 'b.zip') })
  t.true(fs.readFileSync(path.join(root, 'b.zip')).equals(fs.readFileSync(path.join(root, 'a.zip'))))
  t.not(redis.cli('GET', 'wa:session:RemoteAuth-fb'), 'garbage that fails the checksum', 'the bad copy was replaced')
})

test('retention keeps exactly the newest N versions', async (t) => {
  const bucket = await freshBucket()
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  const store = new RustStore({ dir: path.join(root, 'store'), s3: s3Options(bucket), saveErrors: 'reject' })
  for (let i = 0; i < 5; i++) await store.save({ session: 'RemoteAuth-ret', path: zip })
  const keys = await moto.keys(bucket)
  t.is(keys.length, 3, keys.join())
  t.true(keys.every((k) => /^whatsapp-sessions\/RemoteAuth-ret\/\d{13}-[0-9a-f]{8}\.wwrs$/.test(k)), keys.join())
  const two = new RustStore({ dir: path.join(root, 'store'), s3: s3Options(bucket, { keepVersions: 2, prefix: 'two/' }) })
  for (let i = 0; i < 4; i++) await two.save({ session: 'RemoteAuth-ret', path: zip })
  t.is((await moto.keys(bucket, 'two/')).length, 2)
})

test('the newest version damaged: extract takes the previous good one', async (t) => {
  const bucket = await freshBucket()
  const { root, zip } = await zipFor(t)
  const store = new RustStore({ primary: 'none', s3: s3Options(bucket), saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-dmg', path: zip })
  await new Promise((resolve) => setTimeout(resolve, 5)) // distinct version timestamps
  await store.save({ session: 'RemoteAuth-dmg', path: zip })
  const [older, newest] = await moto.keys(bucket)
  await moto.putObject(bucket, newest, 'cut short')
  await store.extract({ session: 'RemoteAuth-dmg', path: path.join(root, 'x.zip') })
  t.true(fs.statSync(path.join(root, 'x.zip')).size > 0)
  await moto.putObject(bucket, older, 'also cut')
  const err = await t.throwsAsync(store.extract({ session: 'RemoteAuth-dmg', path: path.join(root, 'y.zip') }))
  t.is(err.code, 'ERR_ARCHIVE_CORRUPT', 'damaged everywhere is not "no session"')
  t.false(fs.existsSync(path.join(root, 'y.zip')))
})

test('S3 alone (primary: none): save, exists, list, extract, delete', async (t) => {
  const bucket = await freshBucket()
  const { root, zip } = await zipFor(t)
  const store = new RustStore({ primary: 'none', s3: s3Options(bucket), saveErrors: 'reject' })
  t.false(await store.sessionExists({ session: 'RemoteAuth-solo' }))
  await store.save({ session: 'RemoteAuth-solo', path: zip })
  t.true(await store.sessionExists({ session: 'RemoteAuth-solo' }))
  t.deepEqual((await store.listSessions()).map((s) => s.session), ['RemoteAuth-solo'])
  await store.extract({ session: 'RemoteAuth-solo', path: path.join(root, 'out.zip') })
  await store.delete({ session: 'RemoteAuth-solo' })
  t.false(await store.sessionExists({ session: 'RemoteAuth-solo' }))
  t.deepEqual(await moto.keys(bucket), [])
})

test('S3 down: save still lands on the primary and the backup failure is reported; asking S3 is an error', async (t) => {
  const own = await startMoto(t)
  await own.bucket('down')
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  const errors = []
  const s3 = { endpoint: own.endpoint, bucket: 'down', forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 'secret-never-shown', timeoutMs: 3000 }
  const store = new RustStore({ dir: path.join(root, 'store'), s3, saveErrors: 'reject', onError: (e) => errors.push(e) })
  await own.stop()
  const saved = await store.save({ session: 'RemoteAuth-down', path: zip })
  t.is(saved.session, 'RemoteAuth-down', 'the save completed on the primary')
  t.is(errors.length, 1)
  t.regex(errors[0].code, /^ERR_S3_(UNAVAILABLE|TIMEOUT)$/, errors[0].message)
  t.false(errors[0].message.includes('secret-never-shown'))
  t.true(await store.sessionExists({ session: 'RemoteAuth-down' }), 'the primary answers')
  t.regex((await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-elsewhere' }))).code, /^ERR_S3_/)
})

test.serial('backupAll then restoreAll of 200 sessions into an empty primary', async (t) => {
  const bucket = await freshBucket()
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  const first = new RustStore({ dir: path.join(root, 'a'), saveErrors: 'reject' })
  const names = Array.from({ length: 200 }, (_, i) => `RemoteAuth-r${String(i).padStart(3, '0')}`)
  await Promise.all(names.map((session) => first.save({ session, path: zip })))
  const withBackup = new RustStore({ dir: path.join(root, 'a'), s3: s3Options(bucket) })
  const up = await withBackup.backupAll({ concurrency: 16 })
  t.like(up, { sessions: 200, copied: 200, failed: 0 })

  const fresh = new RustStore({ dir: path.join(root, 'b'), s3: s3Options(bucket) })
  t.deepEqual(await fresh.listSessions(), [])
  const down = await fresh.restoreAll({ concurrency: 8 })
  t.like(down, { sessions: 200, copied: 200, failed: 0 })
  t.is(down.bytes, up.bytes)
  t.deepEqual((await fresh.listSessions()).map((s) => s.session), names)
})

test('bad S3 options are ERR_INVALID_OPTION', (t) => {
  for (const s3 of [
    { bucket: '' },
    { bucket: 'b', endpoint: 'ftp://x' },
    { bucket: 'b', accessKeyId: 'only-id' },
    { bucket: 'b', r2AccountId: 'acc', endpoint: 'https://x' },
    { bucket: 'b', keepVersions: 0 },
  ]) {
    t.is(t.throws(() => new RustStore({ s3 })).code, 'ERR_INVALID_OPTION', JSON.stringify(s3))
  }
  t.is(t.throws(() => new RustStore({ primary: 'none' })).code, 'ERR_INVALID_OPTION')
})
