// Issue #14, between tiers: which copy wins, which tier a setting names, what a backup or a rotation may write.
// Real redis-server and moto on loopback.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import test from 'ava'

import { RustStore, eventually, makeProfile, tempDir, zipProfile } from './helpers.mjs'
import { motoForFile, startRedis } from './servers.mjs'

const bin = path.resolve('bin/wwebjs-rust-store.js')
const moto = motoForFile(test)
let bucketCount = 0

const freshBucket = () => moto.bucket(`tiers-${++bucketCount}`)
const s3Options = (bucket, extra = {}) => ({
  endpoint: moto.endpoint,
  bucket,
  forcePathStyle: true,
  accessKeyId: 'k',
  secretAccessKey: 's',
  backupIntervalMs: 0,
  ...extra,
})
const s3Env = (bucket) => ({
  S3_BUCKET: bucket,
  S3_ENDPOINT: moto.endpoint,
  S3_FORCE_PATH_STYLE: 'true',
  S3_ACCESS_KEY_ID: 'k',
  S3_SECRET_ACCESS_KEY: 's',
})

function cli(cwd, args, env = {}) {
  const res = spawnSync(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
  if (res.error) throw res.error
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

async function zipFor(t, seed = 1) {
  const root = tempDir(t)
  makeProfile(path.join(root, 'profile'), { junk: false, seed })
  const zip = path.join(root, 'session.zip')
  await zipProfile(path.join(root, 'profile'), zip)
  return zip
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('#9 fromEnv({ dir }) and the CLI --dir use the directory even when REDIS_URL is set', async (t) => {
  const redis = await startRedis(t)
  const root = tempDir(t)
  const zip = await zipFor(t)
  const dir = path.join(root, 'store')
  const script = `
    const { RustStore } = require(${JSON.stringify(path.resolve('index.js'))})
    RustStore.fromEnv({ dir: ${JSON.stringify(dir)}, saveErrors: 'reject' })
      .save({ session: 'RemoteAuth-opt', path: ${JSON.stringify(zip)} })
      .catch((e) => { console.error(e.code, e.message); process.exit(1) })`
  const env = { PATH: process.env.PATH, REDIS_URL: redis.url }
  const res = spawnSync(process.execPath, ['-e', script], { cwd: root, env, encoding: 'utf8' })
  t.is(res.status, 0, res.stderr)
  t.is(redis.cli('DBSIZE'), '0', 'nothing went to Redis')
  t.true(fs.existsSync(path.join(dir, 'RemoteAuth-opt.wwrs')), 'the option named the directory')

  // A session only Redis has: `--dir` must not find (or clean up) it there.
  await new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' }).save({ session: 'RemoteAuth-red', path: zip })
  const out = path.join(root, 'red.zip')
  const extracted = cli(root, ['extract', 'RemoteAuth-red', '--out', out, '--dir', dir], { REDIS_URL: redis.url })
  t.is(extracted.code, 1, extracted.stdout)
  t.regex(extracted.stderr, /ERR_SESSION_NOT_FOUND/)
  const stats = cli(root, ['stats', '--json', '--dir', dir], { REDIS_URL: redis.url, ...s3Env('nowhere') })
  t.is(stats.code, 0, stats.stderr)
  t.deepEqual(stats.json().tiers.map((tier) => tier.tier), ['dir'], 'neither REDIS_URL nor S3_BUCKET pulled in')
  // Both a directory and Redis named as the primary: refused, not guessed.
  const both = cli(root, ['stats', '--dir', dir, '--redis-url', redis.url])
  t.is(both.code, 2)
  t.regex(both.stderr, /ERR_INVALID_OPTION/)
})

test('#6 backupAll writes no version for a save the newest version already holds', async (t) => {
  const bucket = await freshBucket()
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), s3: s3Options(bucket, { keepVersions: 3 }), saveErrors: 'reject' })
  for (let i = 0; i < 3; i++) {
    await store.save({ session: 'RemoteAuth-hist', path: await zipFor(t, i + 1) })
    await sleep(3)
  }
  const history = await moto.keys(bucket)
  t.is(history.length, 3)
  for (let i = 0; i < 3; i++) t.like(await store.backupAll(), { sessions: 1, copied: 0, skipped: 1 })
  t.deepEqual(await moto.keys(bucket), history, 'the point-in-time history is kept')
  const dir = cli(root, ['backup', '--json', '--dir', path.join(root, 'store'), '--s3-bucket', bucket], s3Env(bucket))
  t.is(dir.code, 0, dir.stderr)
  t.like(dir.json(), { copied: 0, skipped: 1 })
  t.deepEqual(await moto.keys(bucket), history)
})

test('#11 rotate-key without acceptPlain reports plain copies and leaves them plain', async (t) => {
  const redis = await startRedis(t)
  const bucket = await freshBucket()
  const root = tempDir(t)
  const plain = new RustStore({ redis: { url: redis.url }, s3: s3Options(bucket), saveErrors: 'reject' })
  await plain.save({ session: 'RemoteAuth-forged', path: await zipFor(t) })
  const key = Buffer.alloc(32, 7).toString('base64')
  const env = { REDIS_URL: redis.url, ...s3Env(bucket), SESSION_ENCRYPTION_KEY: key }
  const rotated = cli(root, ['rotate-key', '--json'], env)
  t.is(rotated.code, 1, rotated.stdout)
  const out = rotated.json()
  t.is(out.primary.copied, 0)
  t.is(out.backups.copied, 0)
  t.deepEqual([...out.primary.failures, ...out.backups.failures].map((f) => f.code), ['ERR_DECRYPT', 'ERR_DECRYPT'])
  const strict = new RustStore({ redis: { url: redis.url }, s3: s3Options(bucket), encryption: { key } })
  const err = await t.throwsAsync(strict.extract({ session: 'RemoteAuth-forged', path: path.join(root, 'x.zip') }))
  t.is(err.code, 'ERR_DECRYPT', 'still plain, so still refused')
  redis.cli('FLUSHALL')
  const fromBucket = await t.throwsAsync(strict.extract({ session: 'RemoteAuth-forged', path: path.join(root, 'y.zip') }))
  t.is(fromBucket.code, 'ERR_DECRYPT', 'the bucket copy is still plain too')

  const accepted = cli(root, ['rotate-key', '--json'], { ...env, SESSION_ENCRYPTION_ACCEPT_PLAIN: 'true' })
  t.is(accepted.code, 0, accepted.stdout + accepted.stderr)
  t.is(accepted.json().backups.copied, 1, 'with acceptPlain a rotation seals them')
})

test('#5 a primary copy with an intact header but a damaged body is repaired by restoreAll and by extract', async (t) => {
  const redis = await startRedis(t)
  const bucket = await freshBucket()
  const root = tempDir(t)
  const store = new RustStore({ redis: { url: redis.url }, s3: s3Options(bucket), saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-dmg', path: await zipFor(t) })
  const good = redis.cli('GET', 'wa:session:RemoteAuth-dmg').length
  const redisOnly = new RustStore({ redis: { url: redis.url } })

  redis.cli('SETRANGE', 'wa:session:RemoteAuth-dmg', '300', 'garbage')
  t.is((await t.throwsAsync(redisOnly.extract({ session: 'RemoteAuth-dmg', path: path.join(root, 'a.zip') }))).code, 'ERR_ARCHIVE_CORRUPT')
  t.like(await store.restoreAll(), { sessions: 1, copied: 1, skipped: 0 })
  await redisOnly.extract({ session: 'RemoteAuth-dmg', path: path.join(root, 'b.zip') })
  t.is(redis.cli('GET', 'wa:session:RemoteAuth-dmg').length, good)

  redis.cli('SETRANGE', 'wa:session:RemoteAuth-dmg', '300', 'garbage')
  await store.extract({ session: 'RemoteAuth-dmg', path: path.join(root, 'c.zip') })
  await redisOnly.extract({ session: 'RemoteAuth-dmg', path: path.join(root, 'd.zip') }) // throws if still damaged
  t.true(fs.readFileSync(path.join(root, 'd.zip')).equals(fs.readFileSync(path.join(root, 'b.zip'))), 'the extract wrote the good copy back')
})

test('#7 a logout landing while an extract reads the backup is not undone by the write-back', async (t) => {
  const redis = await startRedis(t)
  const bucket = await freshBucket()
  const root = tempDir(t)
  const zip = await zipFor(t)
  const store = new RustStore({ redis: { url: redis.url }, s3: s3Options(bucket), saveErrors: 'reject' })
  let resurrected = 0
  for (let i = 0; i < 6; i++) {
    await store.save({ session: 'RemoteAuth-race', path: zip })
    redis.cli('DEL', 'wa:session:RemoteAuth-race') // the primary lost it: the extract goes to the bucket
    const extracting = store.extract({ session: 'RemoteAuth-race', path: path.join(root, `${i}.zip`) }).catch((e) => e)
    await sleep(i) // the logout lands somewhere in the extract's reads
    await store.delete({ session: 'RemoteAuth-race' })
    await extracting
    if (await store.sessionExists({ session: 'RemoteAuth-race' })) resurrected++
    redis.cli('DEL', 'wa:session:RemoteAuth-race')
  }
  t.is(resurrected, 0, 'every logout stays a logout')
})

test('#8 restoreAll keeps a primary copy saved after the backup by a replica whose clock lags', async (t) => {
  const bucket = await freshBucket()
  const root = tempDir(t)
  const [lagging, primaryDir] = [path.join(root, 'lagging'), path.join(root, 'store')]
  // The lagging replica packs its save first: its save time is older than the backup's...
  await new RustStore({ dir: lagging, saveErrors: 'reject' }).save({ session: 'RemoteAuth-skew', path: await zipFor(t, 2) })
  await sleep(20)
  const store = new RustStore({ dir: primaryDir, s3: s3Options(bucket), saveErrors: 'reject' })
  const backedUp = await store.save({ session: 'RemoteAuth-skew', path: await zipFor(t, 1) })
  // ...but it lands on the primary after the backup: the newest save, not yet backed up.
  fs.copyFileSync(path.join(lagging, 'RemoteAuth-skew.wwrs'), path.join(primaryDir, 'RemoteAuth-skew.wwrs'))
  const newest = (await store.listSessions())[0]
  t.true(newest.savedAt < backedUp.savedAt, 'its clock lags the backup writer')
  t.like(await store.restoreAll(), { copied: 0, skipped: 1 })
  t.is((await store.listSessions())[0].savedAt, newest.savedAt, 'the newer save stays')

  // A primary copy the bucket already holds an older version of (a Redis brought back from a snapshot) is replaced.
  const stale = fs.readFileSync(path.join(primaryDir, 'RemoteAuth-skew.wwrs'))
  await store.backupAll() // the lagging save is backed up now
  await store.save({ session: 'RemoteAuth-skew', path: await zipFor(t, 3) })
  const latest = (await store.listSessions())[0]
  fs.writeFileSync(path.join(primaryDir, 'RemoteAuth-skew.wwrs'), stale)
  t.like(await store.restoreAll(), { copied: 1, skipped: 0 })
  t.is((await store.listSessions())[0].savedAt, latest.savedAt)
})

/** Redis as the seed's compose file runs it, scaled down: a memory limit and a policy that evicts. */
function evicting(redis, policy = 'allkeys-lru') {
  redis.cli('CONFIG', 'SET', 'maxmemory', '3mb')
  redis.cli('CONFIG', 'SET', 'maxmemory-policy', policy)
}

test('#14 a Redis-only store refuses a Redis that evicts keys, with a code naming the fix', async (t) => {
  const redis = await startRedis(t)
  const zip = await zipFor(t)
  for (const policy of ['allkeys-lru', 'volatile-ttl']) {
    evicting(redis, policy)
    const store = new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' })
    const err = await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-ev' }))
    t.is(err.code, 'ERR_REDIS_EVICTION', policy)
    t.regex(err.message, new RegExp(`${policy}.*noeviction.*backup tier`))
    t.is((await t.throwsAsync(store.save({ session: 'RemoteAuth-ev', path: zip }))).code, 'ERR_REDIS_EVICTION')
    t.is(redis.cli('DBSIZE'), '0', 'nothing was written')
  }
  redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
  const fine = new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' })
  await fine.save({ session: 'RemoteAuth-ev', path: zip })
  t.like((await fine.stats()).memory, { maxmemory: 3 * 1024 * 1024, policy: 'noeviction' })
})

test('#14 with a backup tier an evicting Redis is a cache: no login is lost, stats show the evictions', async (t) => {
  const redis = await startRedis(t)
  const bucket = await freshBucket()
  const root = tempDir(t)
  const zip = await zipFor(t)
  evicting(redis)
  // The default 10-minute backup timer: today's saves would wait in Redis alone.
  const store = new RustStore({ redis: { url: redis.url }, s3: s3Options(bucket, { backupIntervalMs: 600_000 }), saveErrors: 'reject' })
  const names = Array.from({ length: 40 }, (_, i) => `RemoteAuth-c${i}`)
  for (const session of names) await store.save({ session, path: zip })
  const inRedis = Number(redis.cli('DBSIZE'))
  t.true(inRedis < 40, `Redis kept ${inRedis} of 40: it did evict`)
  const missing = []
  for (const session of names) if (!(await store.sessionExists({ session }))) missing.push(session)
  t.deepEqual(missing, [], 'every login is still there')
  t.like(store.backupStatus(), { pending: 0 })
  const evicted = names.find((n) => redis.cli('EXISTS', `wa:session:${n}`) === '0')
  const info = await store.extract({ session: evicted, path: path.join(root, 'e.zip') })
  t.is(info.session, evicted)
  const stats = await store.stats()
  t.like(stats.memory, { maxmemory: 3 * 1024 * 1024, policy: 'allkeys-lru' })
  t.true(stats.memory.evictedKeys > 0 && stats.memory.usedMemory > 0, JSON.stringify(stats.memory))
  const cliStats = cli(root, ['stats', '--json'], { REDIS_URL: redis.url, ...s3Env(bucket) })
  t.is(cliStats.code, 0, cliStats.stderr)
  t.like(cliStats.json().memory, { maxmemory: 3 * 1024 * 1024, policy: 'allkeys-lru' })
  t.regex(cli(root, ['stats', '--prometheus'], { REDIS_URL: redis.url, ...s3Env(bucket) }).stdout, /wwebjs_rust_store_redis_evicted_keys_total\{policy="allkeys-lru"\} [1-9]/)
})

test('#14 the low-disk webhook has a Redis-memory sibling: evictions (or 90 % of maxmemory) are POSTed', async (t) => {
  const received = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => received.push(JSON.parse(body)) && res.writeHead(204).end())
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const diskAlert = { webhookUrl: `http://127.0.0.1:${server.address().port}/hook`, minFreeBytes: 0, checkIntervalMs: 50 }
  const [calm, full] = [await startRedis(t), await startRedis(t)]
  const bucket = await freshBucket()
  const zip = await zipFor(t)
  const quiet = new RustStore({ redis: { url: calm.url }, diskAlert, saveErrors: 'reject' })
  for (let i = 0; i < 5; i++) await quiet.save({ session: `RemoteAuth-q${i}`, path: zip })
  await sleep(500)
  t.deepEqual(received, [], 'no limit, no evictions: nothing to say')
  await quiet.close()

  evicting(full)
  const store = new RustStore({ redis: { url: full.url }, s3: s3Options(bucket), diskAlert, saveErrors: 'reject' })
  await sleep(200) // the first reading is the baseline
  for (let i = 0; i < 40; i++) await store.save({ session: `RemoteAuth-m${i}`, path: zip })
  const [alert] = await eventually(() => (received.length ? received : Promise.reject(new Error('no alert'))))
  t.like(alert, { event: 'redis_memory', maxmemory: 3 * 1024 * 1024, policy: 'allkeys-lru' })
  t.true(alert.new_evictions > 0 || alert.used_memory * 10 >= alert.maxmemory * 9, JSON.stringify(alert))
  await store.close()
})
