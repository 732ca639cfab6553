// saveProfile / restoreProfile: a profile folder straight to every tier and back, no zip; sessions saved from a
// zip restore into a folder and the other way round.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, require, tempDir, zipProfile } from './helpers.mjs'
import { startMoto, startRedis } from './servers.mjs'

const unzipper = require('unzipper')

/** Every file below `root`, relative, with its bytes. */
function files(root) {
  const out = {}
  for (const rel of fs.readdirSync(root, { recursive: true })) {
    const full = path.join(root, rel)
    if (fs.statSync(full).isFile()) out[rel.split(path.sep).join('/')] = fs.readFileSync(full)
  }
  return out
}

function sameFiles(t, root, kept, label) {
  const got = files(root)
  t.deepEqual(Object.keys(got).sort(), Object.keys(kept).sort(), `${label}: exactly the kept files`)
  for (const [rel, data] of Object.entries(kept)) t.true(got[rel]?.equals(data), `${label}: ${rel}`)
}

async function tiers(t) {
  const redis = await startRedis(t)
  const moto = await startMoto(t)
  const s3 = (bucket, more) => ({ endpoint: moto.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', ...more })
  const dir = path.join(tempDir(t), 'store')
  return {
    local: { dir },
    redis: { redis: { url: redis.url } },
    s3: { primary: 'none', s3: s3(await moto.bucket('whole')) },
    's3 incremental': { primary: 'none', s3: s3(await moto.bucket('incr'), { incremental: true }) },
    'redis + s3 backups, encrypted': {
      redis: { url: redis.url, prefix: 'enc:' },
      s3: s3(await moto.bucket('backups'), { backupIntervalMs: 0 }),
      encryption: { key: Buffer.alloc(32, 9).toString('base64') },
    },
  }
}

test.serial('a profile folder round-trips through every tier, and the old folder is replaced whole', async (t) => {
  for (const [name, options] of Object.entries(await tiers(t))) {
    const root = tempDir(t)
    const store = new RustStore({ dataPath: path.join(root, 'auth'), ...options })
    const profile = path.join(root, 'auth', 'RemoteAuth-acct')
    const kept = makeProfile(profile, { size: 'medium', seed: 3 })
    const saved = await store.saveProfile({ session: 'RemoteAuth-acct', dir: profile })
    t.is(saved.session, 'RemoteAuth-acct')
    t.is(saved.zipBytes, 0, `${name}: made from a folder, not a zip`)
    t.false(fs.readdirSync(path.join(root, 'auth')).some((f) => f.endsWith('.zip')), `${name}: no zip written`)

    fs.writeFileSync(path.join(profile, 'Default/IndexedDB/after-the-save'), 'must go')
    const again = new RustStore({ dataPath: path.join(root, 'auth'), ...options }) // a restarted process
    const restored = await again.restoreProfile({ session: 'RemoteAuth-acct', dir: profile })
    t.is(restored.savedAt, saved.savedAt, name)
    sameFiles(t, profile, kept, name)
    t.deepEqual(fs.readdirSync(path.join(root, 'auth')), ['RemoteAuth-acct'], `${name}: nothing left beside it`)
    await again.delete({ session: 'RemoteAuth-acct' })
    await again.close()
    await store.close()
  }
})

test('a zip-saved session restores into a folder, and a folder-saved one through extract', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth'), saveErrors: 'reject' })
  const source = path.join(root, 'source')
  const kept = makeProfile(source, { seed: 5 })

  await zipProfile(source, path.join(root, 'z.zip'))
  await store.save({ session: 'RemoteAuth-z', path: path.join(root, 'z.zip') })
  const viaDir = path.join(root, 'auth', 'RemoteAuth-z')
  await store.restoreProfile({ session: 'RemoteAuth-z', dir: viaDir })
  sameFiles(t, viaDir, kept, 'zip → folder')

  await store.saveProfile({ session: 'RemoteAuth-d', dir: source })
  const zip = path.join(root, 'd.zip')
  await store.extract({ session: 'RemoteAuth-d', path: zip })
  const viaZip = path.join(root, 'unzipped')
  await (await unzipper.Open.file(zip)).extract({ path: viaZip })
  fs.rmSync(path.join(viaZip, 'wwebjs-rust-store.pad'), { force: true })
  sameFiles(t, viaZip, kept, 'folder → zip')
})

test('errors are coded and leave the folder as it was', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth') })
  const profile = path.join(root, 'auth', 'RemoteAuth-e')
  fs.mkdirSync(path.join(profile, 'Default'), { recursive: true })
  fs.writeFileSync(path.join(profile, 'Default', 'Preferences'), '{}')

  let err = await t.throwsAsync(store.restoreProfile({ session: 'RemoteAuth-e', dir: profile }))
  t.is(err.code, 'ERR_SESSION_NOT_FOUND')
  t.deepEqual(Object.keys(files(profile)), ['Default/Preferences'])
  err = await t.throwsAsync(store.saveProfile({ session: 'RemoteAuth-e', dir: profile }))
  t.is(err.code, 'ERR_EMPTY_SESSION', 'saveProfile rejects whatever saveErrors says')
  err = await t.throwsAsync(store.saveProfile({ session: '../x', dir: profile }))
  t.is(err.code, 'ERR_SESSION_NAME')
  err = await t.throwsAsync(store.saveProfile({ session: 'RemoteAuth-e' }))
  t.is(err.code, 'ERR_INVALID_ARG')
  t.false(await store.sessionExists({ session: 'RemoteAuth-e' }))
})
