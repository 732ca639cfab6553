// The S3-compatible backup tier against moto's S3 server (and Redis) on loopback.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, remoteAuthRoundTrip, tempDir, zipProfile } from './helpers.mjs'
import { motoForFile, startMoto, startRedis } from './servers.mjs'

const moto = motoForFile(test)
let bucketCount = 0

async function freshBucket() {
  return moto.bucket(`sessions-${++bucketCount}`)
}

const s3Options = (bucket, extra = {}) => ({
  endpoint: moto.endpoint,
  bucket,
  forcePathStyle: true,
  accessKeyId: 'test-key',
  secretAccessKey: 'test-secret',
  backupIntervalMs: 0, // back up within every save; the interval mode has its own tests
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
  t.deepEqual(await moto.liveKeys(bucket), [], 'only the logout\'s mark is left')
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
  t.deepEqual(await moto.liveKeys(bucket), [])
})

test('S3 down: save still lands on the primary and the backup failure is reported; asking S3 is an error', async (t) => {
  const own = await startMoto(t)
  await own.bucket('down')
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  const errors = []
  const s3 = { endpoint: own.endpoint, bucket: 'down', forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 'secret-never-shown', timeoutMs: 3000, backupIntervalMs: 0 }
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
  const progress = []
  const down = await fresh.restoreAll({ concurrency: 8, onProgress: (done, total) => progress.push([done, total]) })
  t.like(down, { sessions: 200, copied: 200, failed: 0 })
  for (let i = 0; i < 50 && progress.length < 200; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.is(progress.length, 200, 'one progress call per session')
  t.deepEqual(progress.at(-1), [200, 200])
  t.true(progress.every(([done, total], i) => done === i + 1 && total === 200))
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('interval mode: saves return before the backup, the timer backs up the newest copy', async (t) => {
  const bucket = await freshBucket()
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  // Long enough that both saves finish before the first tick even on a loaded machine.
  const store = new RustStore({ dir: path.join(root, 'store'), s3: s3Options(bucket, { backupIntervalMs: 5000 }), saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-iv', path: zip })
  await store.save({ session: 'RemoteAuth-iv', path: zip })
  t.deepEqual(await moto.keys(bucket), [], 'nothing uploaded by the save itself')
  t.like(store.backupStatus(), { pending: 1, backedUp: 0 })
  for (let i = 0; i < 300 && store.backupStatus().pending > 0; i++) await sleep(100)
  t.like(store.backupStatus(), { pending: 0, backedUp: 1, failed: 0 })
  t.is((await moto.keys(bucket)).length, 1, 'two saves, one backup of the newest')
  t.true(store.backupStatus().lastSuccessAt > Date.now() - 60_000)
})

test('close() flushes pending backups and stops the timer', async (t) => {
  const bucket = await freshBucket()
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  const store = new RustStore({ dir: path.join(root, 'store'), s3: s3Options(bucket, { backupIntervalMs: 600_000 }) })
  for (const session of ['RemoteAuth-c1', 'RemoteAuth-c2', 'RemoteAuth-c3']) await store.save({ session, path: zip })
  await store.delete({ session: 'RemoteAuth-c3' })
  t.is(store.backupStatus().pending, 2, 'a deleted session is not backed up')
  const flushed = await store.close()
  t.like(flushed, { sessions: 2, copied: 2, failed: 0 })
  // A version of each saved session, and the logout's mark for c3 (written though no backup of it had landed:
  // a late backup of it from another process must find it logged out).
  const keys = (await moto.keys(bucket)).sort()
  t.is(keys.length, 3, keys.join(' '))
  t.regex(keys[0], /\/RemoteAuth-c1\/[^/]+\.wwrs$/)
  t.regex(keys[1], /\/RemoteAuth-c2\/[^/]+\.wwrs$/)
  t.regex(keys[2], /\/RemoteAuth-c3\/[^/]+\.gone$/)
  t.false(await store.sessionExists({ session: 'RemoteAuth-c3' }))
  t.is(store.backupStatus().pending, 0)
})

test.serial('interval mode with S3 down: failures are reported with the session, retried, and converge when S3 returns', async (t) => {
  const own = await startMoto(t)
  await own.bucket('flaky')
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  const errors = []
  const s3 = { endpoint: own.endpoint, bucket: 'flaky', forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', timeoutMs: 2000, backupIntervalMs: 300 }
  const store = new RustStore({ dir: path.join(root, 'store'), s3, onError: (e) => errors.push(e) })
  await own.stop()
  t.not(await store.save({ session: 'RemoteAuth-flaky', path: zip }), null, 'the primary took the save')
  for (let i = 0; i < 300 && errors.length === 0; i++) await sleep(100)
  t.true(errors.length >= 1)
  t.regex(errors[0].code, /^ERR_S3_(UNAVAILABLE|TIMEOUT)$/)
  t.is(errors[0].session, 'RemoteAuth-flaky')
  t.like(store.backupStatus(), { pending: 1 })
  t.true(store.backupStatus().failed >= 1)

  await own.start()
  await own.bucket('flaky') // moto keeps nothing across a restart
  const flushed = await store.close() // the timer may have got there first; either way it converges
  t.is(flushed.failed, 0)
  t.is((await own.keys('flaky')).length, 1)
  t.like(store.backupStatus(), { pending: 0, backedUp: 1 })
})

test('RustStore.fromEnv() reads REDIS_URL, the S3_ and R2_ names, and SESSION_BACKUP_ENABLED', async (t) => {
  const redis = await startRedis(t)
  const bucket = await freshBucket()
  const { root, zip } = await zipFor(t)
  const script = `
    const { RustStore } = require(${JSON.stringify(path.resolve('index.js'))})
    ;(async () => {
      const store = RustStore.fromEnv({ saveErrors: 'reject' })
      await store.save({ session: 'RemoteAuth-env', path: ${JSON.stringify(zip)} })
      const closed = await store.close()
      console.log(JSON.stringify({ closed, list: (await store.listSessions()).map((s) => s.session) }))
    })().catch((e) => { console.error(e.code, e.message); process.exit(1) })`
  const env = {
    ...process.env,
    REDIS_URL: redis.url,
    S3_ENDPOINT: moto.endpoint,
    S3_BUCKET: bucket,
    S3_REGION: 'eu-west-1',
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'k',
    S3_SECRET_ACCESS_KEY: 's',
    SESSION_BACKUP_INTERVAL_MS: '600000',
  }
  const res = spawnSync(process.execPath, ['-e', script], { cwd: root, env, encoding: 'utf8' })
  t.is(res.status, 0, res.stderr)
  const out = JSON.parse(res.stdout)
  t.deepEqual(out.list, ['RemoteAuth-env'])
  t.like(out.closed, { copied: 1 }, 'interval mode from SESSION_BACKUP_INTERVAL_MS, flushed by close()')
  t.is(redis.cli('EXISTS', 'wa:session:RemoteAuth-env'), '1')
  t.is((await moto.keys(bucket)).length, 1)

  const off = spawnSync(process.execPath, ['-e', script.replace('RemoteAuth-env', 'RemoteAuth-off')], {
    cwd: root,
    env: { ...env, SESSION_BACKUP_ENABLED: 'false' },
    encoding: 'utf8',
  })
  t.is(off.status, 0, off.stderr)
  t.like(JSON.parse(off.stdout).closed, { sessions: 0 }, 'backups off')
  t.is((await moto.keys(bucket)).length, 1)

  const r2Bucket = await freshBucket()
  const r2 = spawnSync(process.execPath, ['-e', script.replace('RemoteAuth-env', 'RemoteAuth-r2')], {
    cwd: root,
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      R2_ENDPOINT: moto.endpoint,
      R2_BUCKET: r2Bucket,
      R2_FORCE_PATH_STYLE: '1',
      R2_ACCESS_KEY_ID: 'k',
      R2_SECRET_ACCESS_KEY: 's',
    },
    encoding: 'utf8',
  })
  t.is(r2.status, 0, r2.stderr)
  const r2Keys = await moto.keys(r2Bucket)
  t.is(r2Keys.length, 1, 'R2_ names configure the backup')
  t.true(r2Keys[0].startsWith('whatsapp-sessions/RemoteAuth-r2/'), r2Keys[0])
})

test('a delete racing interval backups leaves nothing behind; restoreAll keeps a newer primary copy', async (t) => {
  const bucket = await freshBucket()
  const root = tempDir(t)
  const { zip } = await zipFor(t)
  const store = new RustStore({ dir: path.join(root, 'store'), s3: s3Options(bucket, { backupIntervalMs: 600_000 }), saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-gone', path: zip })
  const flushing = store.close() // a backup on its way...
  await store.delete({ session: 'RemoteAuth-gone' }) // ...and a logout
  await flushing
  t.false(await store.sessionExists({ session: 'RemoteAuth-gone' }), 'the logout stays a logout')
  t.deepEqual(await moto.liveKeys(bucket), [])

  const everySave = new RustStore({ dir: path.join(root, 'store'), s3: s3Options(bucket), saveErrors: 'reject' })
  await everySave.save({ session: 'RemoteAuth-new', path: zip }) // backed up: version A
  await new Promise((resolve) => setTimeout(resolve, 5))
  const local = new RustStore({ dir: path.join(root, 'store'), saveErrors: 'reject' })
  const newer = await local.save({ session: 'RemoteAuth-new', path: zip }) // saved after the backup, not backed up
  const restored = await everySave.restoreAll()
  t.like(restored, { sessions: 1, copied: 0, skipped: 1 })
  t.is((await local.listSessions())[0].savedAt, newer.savedAt, 'the newer primary copy was kept')
})

test('fromEnv refuses a backup switch it cannot honour', (t) => {
  const script = `try { require(${JSON.stringify(path.resolve('index.js'))}).RustStore.fromEnv() } catch (e) { console.log(e.code); process.exit(3) }`
  for (const env of [{ SESSION_BACKUP_ENABLED: 'true' }, { SESSION_BACKUP_ENABLED: 'enabled', S3_BUCKET: 'b' }, { S3_BUCKET: 'b', SESSION_BACKUP_INTERVAL_MS: 'ten minutes' }]) {
    const res = spawnSync(process.execPath, ['-e', script], { cwd: tempDir(t), env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
    t.is(res.status, 3, JSON.stringify(env))
    t.is(res.stdout.trim(), 'ERR_INVALID_OPTION', JSON.stringify(env))
  }
})
