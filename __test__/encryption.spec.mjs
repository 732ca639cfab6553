// Encryption at rest: every tier holds ciphertext, a missing or wrong key is ERR_DECRYPT with nothing written,
// keys rotate with `wwebjs-rust-store rotate-key`, and key material never shows in an error.
import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, remoteAuthRoundTrip, tempDir, zipProfile } from './helpers.mjs'
import { startMoto, startRedis } from './servers.mjs'

const newKey = () => crypto.randomBytes(32).toString('base64')
const bin = path.resolve('bin/wwebjs-rust-store.js')

function cli(cwd, args, env) {
  const res = spawnSync(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

async function zipFor(t, seed = 1) {
  const root = tempDir(t)
  makeProfile(path.join(root, 'p'), { junk: false, seed })
  await zipProfile(path.join(root, 'p'), path.join(root, 's.zip'))
  return path.join(root, 's.zip')
}

test.serial('RemoteAuth round trip with an encrypted embedded store', async (t) => {
  const root = tempDir(t)
  const key = newKey()
  await remoteAuthRoundTrip(t, { root, storeOptions: { dir: path.join(root, 'store'), encryption: { key } } })
})

test('the stored file is ciphertext; without the key, or with another, extract is ERR_DECRYPT and writes nothing', async (t) => {
  const root = tempDir(t)
  const key = newKey()
  const dir = path.join(root, 'store')
  const store = new RustStore({ dir, encryption: { key }, saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-enc', path: await zipFor(t) })
  const stored = fs.readFileSync(path.join(dir, 'RemoteAuth-enc.wwrs'))
  t.is(stored.readUInt16LE(4), 3, 'format version 3')
  t.is(stored.readUInt16LE(6), 6, 'zip payload, encrypted')
  t.not(stored.readUInt32LE(76 + 32), 0x04034b50, 'no zip entry where the ciphertext starts')

  const out = path.join(root, 'out', 'RemoteAuth-enc.zip')
  fs.mkdirSync(path.dirname(out))
  fs.writeFileSync(out, 'previous')
  for (const other of [new RustStore({ dir }), new RustStore({ dir, encryption: { key: newKey() } })]) {
    const err = await t.throwsAsync(other.extract({ session: 'RemoteAuth-enc', path: out }))
    t.is(err.code, 'ERR_DECRYPT')
    t.false(err.message.includes(key))
  }
  t.is(fs.readFileSync(out, 'utf8'), 'previous', 'the file at path is untouched')
  t.deepEqual(fs.readdirSync(path.dirname(out)), ['RemoteAuth-enc.zip'], 'no temp file left')
  await store.extract({ session: 'RemoteAuth-enc', path: out })
  t.true(fs.statSync(out).size > 1000)
})

test('bad keys are refused by code without echoing them', (t) => {
  const short = crypto.randomBytes(16).toString('base64')
  for (const encryption of [{ key: short }, { key: 'not base64 at all!' }, { key: newKey(), previousKeys: [short] }]) {
    const err = t.throws(() => new RustStore({ dir: path.join(tempDir(t), 's'), encryption }))
    t.is(err.code, 'ERR_INVALID_OPTION')
    t.false(err.message.includes(short))
  }
})

test.serial('rotate-key moves Redis copies and every S3 version to the new key; the old key can then go', async (t) => {
  const redis = await startRedis(t)
  const moto = await startMoto(t)
  const bucket = await moto.bucket('rotate')
  const root = tempDir(t)
  const [oldKey, key] = [newKey(), newKey()]
  const s3 = { endpoint: moto.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0 }
  const before = new RustStore({ redis: { url: redis.url }, s3, encryption: { key: oldKey }, saveErrors: 'reject' })
  for (const [i, name] of ['RemoteAuth-a', 'RemoteAuth-b'].entries()) {
    await before.save({ session: name, path: await zipFor(t, i + 3) })
    await before.save({ session: name, path: await zipFor(t, i + 3) }) // two versions each in S3
  }
  const env = {
    REDIS_URL: redis.url,
    S3_BUCKET: bucket,
    S3_ENDPOINT: moto.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'k',
    S3_SECRET_ACCESS_KEY: 's',
  }
  const onlyNew = { ...env, SESSION_ENCRYPTION_KEY: key }
  const bad = cli(root, ['verify', '--json'], onlyNew)
  t.is(bad.code, 1, 'the new key alone cannot read the old copies')
  t.true(bad.json().bad.every((b) => b.code === 'ERR_DECRYPT'))
  t.is(bad.json().bad.length, 2 + 4)

  const rotated = cli(root, ['rotate-key', '--json'], { ...onlyNew, SESSION_ENCRYPTION_PREVIOUS_KEYS: oldKey })
  t.is(rotated.code, 0, rotated.stderr)
  t.is(rotated.json().primary.copied, 2)
  t.is(rotated.json().backups.copied, 2)
  for (const secret of [oldKey, key]) t.false(rotated.stdout.includes(secret) || rotated.stderr.includes(secret))
  const again = cli(root, ['rotate-key', '--json'], { ...onlyNew, SESSION_ENCRYPTION_PREVIOUS_KEYS: oldKey })
  t.is(again.json().primary.skipped, 2, 'nothing left under the old key')

  t.is(cli(root, ['verify'], onlyNew).code, 0)
  const after = new RustStore({ redis: { url: redis.url }, s3, encryption: { key } })
  await after.extract({ session: 'RemoteAuth-a', path: path.join(root, 'a.zip') })
  redis.cli('FLUSHALL')
  await after.extract({ session: 'RemoteAuth-b', path: path.join(root, 'b.zip') }) // from an S3 version
  t.true(fs.statSync(path.join(root, 'b.zip')).size > 1000)
})

test('fromEnv reads SESSION_ENCRYPTION_KEY', async (t) => {
  const root = tempDir(t)
  const key = newKey()
  process.env.SESSION_ENCRYPTION_KEY = key
  t.teardown(() => delete process.env.SESSION_ENCRYPTION_KEY)
  const store = RustStore.fromEnv({ dir: path.join(root, 'store'), saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-env', path: await zipFor(t) })
  const err = await t.throwsAsync(new RustStore({ dir: path.join(root, 'store') }).extract({ session: 'RemoteAuth-env', path: path.join(root, 'x.zip') }))
  t.is(err.code, 'ERR_DECRYPT')
})

test('a keyed store refuses plain sessions (anyone with write access could make one) unless acceptPlain', async (t) => {
  const root = tempDir(t)
  const dir = path.join(root, 'store')
  await new RustStore({ dir, saveErrors: 'reject' }).save({ session: 'RemoteAuth-plain', path: await zipFor(t) })
  const key = newKey()
  const target = path.join(root, 'out.zip')
  const strict = new RustStore({ dir, encryption: { key } })
  t.is((await t.throwsAsync(strict.extract({ session: 'RemoteAuth-plain', path: target }))).code, 'ERR_DECRYPT')
  t.false(fs.existsSync(target))
  await new RustStore({ dir, encryption: { key, acceptPlain: true } }).extract({ session: 'RemoteAuth-plain', path: target })
  t.true(fs.statSync(target).size > 1000)
})
