// Incremental backups (`s3.incremental`) against moto: an evolving profile backed up ten times, next to the same
// saves as whole archives in another bucket; every version restored by name and by time; encryption; verify.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, evolveProfile, makeProfile, require, tempDir, zipProfile } from './helpers.mjs'
import { motoForFile } from './servers.mjs'

const unzipper = require('unzipper')
const bin = path.resolve('bin/wwebjs-rust-store.js')

const moto = motoForFile(test)
let buckets = 0

const s3 = (bucket, extra = {}) => ({
  endpoint: moto.endpoint,
  bucket,
  forcePathStyle: true,
  accessKeyId: 'test-key',
  secretAccessKey: 'test-secret',
  backupIntervalMs: 0,
  keepVersions: 10,
  ...extra,
})

async function files(zip) {
  const out = {}
  for (const entry of (await unzipper.Open.file(zip)).files) {
    if (entry.type === 'File') out[entry.path] = await entry.buffer()
  }
  return out
}

/** Ten ten-minute versions of a profile, each zipped as RemoteAuth would. */
async function tenVersions(root, size) {
  const profile = path.join(root, 'profile')
  makeProfile(profile, { size, junk: false, seed: 5 })
  const zips = []
  for (let step = 0; step < 10; step++) {
    if (step > 0) evolveProfile(profile, { step, seed: 5 })
    const zip = path.join(root, `v${step}.zip`)
    await zipProfile(profile, zip)
    zips.push(zip)
  }
  return zips
}

test('ten evolving versions: each backup uploads a fraction of a whole archive, ten cost ~2 archives, each restores by name and by time', async (t) => {
  const root = tempDir(t)
  const [chunked, whole] = [await moto.bucket(`inc-${++buckets}`), await moto.bucket(`whole-${++buckets}`)]
  const incremental = new RustStore({ dir: path.join(root, 'a'), s3: s3(chunked, { incremental: true }), saveErrors: 'reject' })
  const archives = new RustStore({ dir: path.join(root, 'b'), s3: s3(whole), saveErrors: 'reject' })
  const zips = await tenVersions(root, 'medium')
  const uploads = []
  for (const [step, zip] of zips.entries()) {
    const [a, b] = [await moto.bytes(chunked), await moto.bytes(whole)]
    await incremental.save({ session: 'RemoteAuth-inc', path: zip })
    await archives.save({ session: 'RemoteAuth-inc', path: zip })
    uploads.push({ step, incremental: (await moto.bytes(chunked)) - a, whole: (await moto.bytes(whole)) - b })
  }
  t.log(uploads.map((u) => `v${u.step}: ${u.incremental} B of ${u.whole} B`).join('\n'))
  for (const u of uploads.slice(1)) {
    // A pack of a few new chunks and the manifest: measured ~3 %; ~30 % when the log is flushed into a table or two
    // tables are merged (new bytes, every 4th version here).
    const share = u.step % 4 === 0 ? 0.4 : 0.1
    t.true(u.incremental <= u.whole * share, `v${u.step}: ${u.incremental} of ${u.whole}`)
  }
  const [stored, wholeStored] = [await moto.bytes(chunked), await moto.bytes(whole)]
  const oneArchive = wholeStored / 10
  // Measured ~1.6 archives for all ten.
  t.true(stored <= oneArchive * 2, `10 versions in ${stored} B, one archive ${oneArchive} B`)

  const stats = await incremental.stats()
  t.is(stats.incremental.versions, 10)
  t.is(stats.incremental.storedBytes, stored, 'stats count every manifest and chunk in the bucket')
  t.true(stats.incremental.dedupRatio > 3, `dedup ${stats.incremental.dedupRatio}`)
  const later = uploads.slice(1).map((u) => u.incremental)
  const mean = later.reduce((a, b) => a + b, 0) / later.length
  t.is(stats.incremental.averageUploadedBytes, Math.floor(mean), 'manifests record what was uploaded')
  t.is((await archives.stats()).incremental, undefined, 'no incremental figures without incremental versions')

  const versions = await incremental.listBackups('RemoteAuth-inc')
  t.is(versions.length, 10)
  t.true(versions.every((v) => v.incremental && /^\d{13}-[0-9a-f]{8}\.wwmf$/.test(v.id)))
  for (const [i, v] of versions.entries()) {
    const out = path.join(root, 'out', `${i}.zip`)
    const info = await incremental.extract({ session: 'RemoteAuth-inc', path: out, version: v.id })
    t.deepEqual(await files(out), await files(zips[i]), `version ${i} restores byte for byte`)
    t.true(info.savedAt <= v.savedAt)
  }
  const at = path.join(root, 'out', 'at.zip')
  await incremental.extract({ session: 'RemoteAuth-inc', path: at, at: versions[3].savedAt + 1 })
  t.deepEqual(await files(at), await files(zips[3]), 'point in time: the newest version saved at or before it')
  const before = await incremental.extract({ session: 'RemoteAuth-inc', path: at, at: 1 }).catch((e) => e)
  t.is(before.code, 'ERR_VERSION_NOT_FOUND')
  const wrong = await incremental.extract({ session: 'RemoteAuth-inc', path: at, version: 'nope.wwmf' }).catch((e) => e)
  t.is(wrong.code, 'ERR_VERSION_NOT_FOUND')
  const both = await incremental.extract({ session: 'RemoteAuth-inc', path: at, version: versions[0].id, at: 1 }).catch((e) => e)
  t.is(both.code, 'ERR_INVALID_ARG')

  await incremental.delete({ session: 'RemoteAuth-inc' })
  t.deepEqual(await moto.liveKeys(chunked), [], 'logout leaves no chunk behind (only its mark)')
})

test('keepVersions prunes manifests and the chunks only they used; turning incremental on keeps the archives readable', async (t) => {
  const root = tempDir(t)
  const bucket = await moto.bucket(`prune-${++buckets}`)
  const zips = await tenVersions(root, 'small')
  const before = new RustStore({ dir: path.join(root, 'a'), s3: s3(bucket, { keepVersions: 3 }), saveErrors: 'reject' })
  await before.save({ session: 'RemoteAuth-p', path: zips[0] })
  const after = new RustStore({ dir: path.join(root, 'a'), s3: s3(bucket, { keepVersions: 3, incremental: true }), saveErrors: 'reject' })
  for (const zip of zips.slice(1, 3)) await after.save({ session: 'RemoteAuth-p', path: zip })
  let versions = await after.listBackups('RemoteAuth-p')
  t.deepEqual(versions.map((v) => v.incremental), [false, true, true])
  const first = path.join(root, 'first.zip')
  await after.extract({ session: 'RemoteAuth-p', path: first, version: versions[0].id })
  t.deepEqual(await files(first), await files(zips[0]), 'the archive written before the switch still restores')

  for (const zip of zips.slice(3)) await after.save({ session: 'RemoteAuth-p', path: zip })
  versions = await after.listBackups('RemoteAuth-p')
  t.is(versions.length, 3)
  const keys = await moto.keys(bucket)
  t.false(keys.some((k) => k.endsWith('.wwrs')), 'the old archive was pruned')
  t.false(keys.some((k) => k.includes('/locks/')), 'no lock left behind')
  const packs = keys.filter((k) => k.includes('/packs/'))
  // Pruned manifests took their packs along: what is left is what three versions read (one pack per backup, and
  // the first one, whose chunks they all still use).
  t.true(packs.length <= 5, packs.join())
  const packBytes = (await Promise.all(packs.map((k) => moto.getObject(bucket, k)))).reduce((a, b) => a + b.length, 0)
  t.true(packBytes < 400_000, `${packBytes} B of packs for three versions of a ~230 KB profile`)
  const last = path.join(root, 'last.zip')
  await after.extract({ session: 'RemoteAuth-p', path: last, version: versions[2].id })
  t.deepEqual(await files(last), await files(zips[9]))
})

test('encrypted incremental backups: nothing readable in the bucket; verify checks every chunk and names a damaged version', async (t) => {
  const root = tempDir(t)
  const bucket = await moto.bucket(`enc-${++buckets}`)
  const key = Buffer.alloc(32, 9).toString('base64')
  const options = { dir: path.join(root, 'store'), s3: s3(bucket, { incremental: true }), encryption: { key }, saveErrors: 'reject' }
  const store = new RustStore(options)
  const zips = await tenVersions(root, 'small')
  for (const zip of zips.slice(0, 3)) await store.save({ session: 'RemoteAuth-e', path: zip })
  // zstd alone would hide the text, so look at what each object says it is: WWCK / WWMF with the encrypted flag.
  const stored = await moto.keys(bucket)
  const objects = await Promise.all(stored.filter((k) => !k.includes('/locks/')).map((k) => moto.getObject(bucket, k)))
  const packs = objects.filter((o) => o.subarray(0, 4).toString() === 'WWCK')
  const manifests = objects.filter((o) => o.subarray(0, 4).toString() === 'WWMF')
  t.is(manifests.length, 3)
  t.is(packs.length, 3, 'one pack per backup')
  t.true(packs.every((o) => o[4] === 3), 'chunks: zstd, then encrypted')
  t.true(manifests.every((o) => o[4] === 1), 'every manifest encrypted')

  const env = {
    SESSION_STORE_DIR: path.join(root, 'store'),
    S3_BUCKET: bucket,
    S3_ENDPOINT: moto.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'test-key',
    S3_SECRET_ACCESS_KEY: 'test-secret',
    SESSION_ENCRYPTION_KEY: key,
  }
  const cli = (args) => spawnSync(process.execPath, [bin, ...args], { cwd: root, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
  const ok = cli(['verify', '--json'])
  t.is(ok.status, 0, ok.stderr)
  t.is(JSON.parse(ok.stdout).checked, 4, 'the primary copy and three versions')
  const stats = cli(['stats'])
  t.regex(stats.stdout, /incremental\s+3 versions of 1 sessions/)
  t.regex(stats.stdout, /uploaded per backup\s+\d/)
  const listed = cli(['versions', 'RemoteAuth-e', '--json'])
  const versions = JSON.parse(listed.stdout)
  t.is(versions.length, 3)
  const out = path.join(root, 'v1.zip')
  const extracted = cli(['extract', 'RemoteAuth-e', '--out', out, '--at', new Date(versions[1].saved_at_ms).toISOString()])
  t.is(extracted.status, 0, extracted.stderr)
  t.deepEqual(await files(out), await files(zips[1]))

  // One pack overwritten with garbage: every version that reads from it is reported, and the exit code says so.
  const pack = (await moto.keys(bucket)).find((k) => k.includes('/packs/'))
  await moto.putObject(bucket, pack, Buffer.from('garbage'))
  const bad = cli(['verify', '--json'])
  t.is(bad.status, 1)
  const report = JSON.parse(bad.stdout)
  t.true(report.bad.length >= 1 && report.bad.every((b) => b.code === 'ERR_ARCHIVE_CORRUPT' && /\.wwmf$/.test(b.version)), bad.stdout)

  const keyless = new RustStore({ dir: path.join(root, 'other'), s3: s3(bucket, { incremental: true }) })
  const err = await keyless.extract({ session: 'RemoteAuth-e', path: out, version: versions[2].id }).catch((e) => e)
  t.is(err.code, 'ERR_DECRYPT')
})

test('cleanup finds the packs no version references (an interrupted backup) and removes only those', async (t) => {
  const root = tempDir(t)
  const bucket = await moto.bucket(`orphans-${++buckets}`)
  const store = new RustStore({ dir: path.join(root, 'store'), s3: s3(bucket, { incremental: true }), saveErrors: 'reject' })
  const [zip] = await tenVersions(root, 'small')
  await store.save({ session: 'RemoteAuth-o', path: zip })
  const before = await moto.keys(bucket)
  // What backups cut off before their manifests leave: packs that no version reads.
  const orphans = ['a'.repeat(64), 'b'.repeat(64)].map((id) => `whatsapp-sessions/~/RemoteAuth-o/packs/${id}`)
  for (const key of orphans) await moto.putObject(bucket, key, Buffer.alloc(900))
  const env = {
    SESSION_STORE_DIR: path.join(root, 'store'),
    WWEBJS_DATA_PATH: path.join(root, 'auth'),
    S3_BUCKET: bucket,
    S3_ENDPOINT: moto.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'test-key',
    S3_SECRET_ACCESS_KEY: 'test-secret',
  }
  const cli = (args) => spawnSync(process.execPath, [bin, ...args], { cwd: root, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
  const dry = cli(['cleanup', '--json'])
  t.is(dry.status, 0, dry.stderr)
  t.deepEqual(JSON.parse(dry.stdout).unreferenced_packs, [{ session: 'RemoteAuth-o', packs: 2, bytes: 1800, skipped: false }])
  t.is((await moto.keys(bucket)).length, before.length + 2, 'a dry run deletes nothing')
  const run = cli(['cleanup', '--execute'])
  t.is(run.status, 0, run.stderr)
  t.regex(run.stdout, /and 2 unreferenced backup packs \(1\.76 KiB\)/)
  t.deepEqual(await moto.keys(bucket), before, 'exactly the orphans went')
  const out = path.join(root, 'out.zip')
  await store.extract({ session: 'RemoteAuth-o', path: out, version: (await store.listBackups('RemoteAuth-o'))[0].id })
  t.deepEqual(await files(out), await files(zip))
})

/** The CLI on `bucket` beside a store in `dir`. */
function cliOn(root, dir, bucket) {
  const env = {
    PATH: process.env.PATH,
    SESSION_STORE_DIR: dir,
    S3_BUCKET: bucket,
    S3_ENDPOINT: moto.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'test-key',
    S3_SECRET_ACCESS_KEY: 'test-secret',
    SESSION_BACKUP_INCREMENTAL: 'true',
  }
  return (args) => spawnSync(process.execPath, [bin, ...args], { cwd: root, env, encoding: 'utf8' })
}

/** Saves `zips` one after another; returns the key of the pack the last save added. */
async function saveAndFindLastPack(store, bucket, session, zips) {
  let before = []
  for (const zip of zips) {
    before = await moto.keys(bucket)
    await store.save({ session, path: zip })
  }
  const added = (await moto.keys(bucket)).filter((k) => k.includes('/packs/') && !before.includes(k))
  if (added.length !== 1) throw new Error(`expected one new pack, got ${added}`)
  return added[0]
}

/** One byte flipped inside the pack's first chunk. */
async function flipByte(bucket, key) {
  const bytes = await moto.getObject(bucket, key)
  bytes[20] ^= 1
  await moto.putObject(bucket, key, bytes)
}

/** Each listed version of `session` restores to the files of the zip `expected` gives for it. */
async function restoresWhole(t, store, root, session, expected) {
  for (const [i, v] of (await store.listBackups(session)).entries()) {
    const out = path.join(root, 'check', `${v.id}.zip`)
    await store.extract({ session, path: out, version: v.id })
    t.deepEqual(await files(out), await files(expected(i, v)), `${v.id} restores whole`)
  }
}

test('a damaged pack: verify names the unreadable versions and marks the chunk, backup writes the save again, and no later save reuses the chunk', async (t) => {
  const root = tempDir(t)
  const bucket = await moto.bucket(`damage-${++buckets}`)
  const [dir, session] = [path.join(root, 'store'), 'RemoteAuth-d']
  const options = { dir, s3: s3(bucket, { incremental: true, keepVersions: 3 }), saveErrors: 'reject' }
  const zips = await tenVersions(root, 'small')
  const pack = await saveAndFindLastPack(new RustStore(options), bucket, session, zips.slice(0, 2))
  await flipByte(bucket, pack)
  const cli = cliOn(root, dir, bucket)

  const verified = cli(['verify', '--json'])
  t.is(verified.status, 1, verified.stderr)
  const [first, second] = await new RustStore(options).listBackups(session)
  const report = JSON.parse(verified.stdout)
  t.deepEqual(report.bad.map((b) => [b.version, b.code]), [[`${session}/${second.id}`, 'ERR_ARCHIVE_CORRUPT']], 'exactly the version reading the pack')
  const packId = pack.split('/').pop()
  t.true((await moto.keys(bucket)).some((k) => k.startsWith(`whatsapp-sessions/~/${session}/damaged/${packId}.`)), 'marked in the bucket')

  // The primary holds the save the damaged version holds: `backup` writes it again (same time, a name of its own).
  const backedUp = cli(['backup', '--json'])
  t.is(backedUp.status, 0, backedUp.stderr)
  const store = new RustStore(options) // a restarted service: nothing of the damage in memory
  const versions = await store.listBackups(session)
  t.deepEqual(versions.map((v) => v.savedAt), [first.savedAt, second.savedAt])
  t.not(versions[1].id, second.id)
  t.true(versions.every((v) => v.incremental))
  await restoresWhole(t, store, root, session, (i) => zips[i])

  // Three saves, the first of the same files again: none reuses the damaged copy; each restores whole.
  for (const zip of [zips[1], zips[2], zips[3]]) await store.save({ session, path: zip })
  t.is((await store.listBackups(session)).length, 3, 'keepVersions')
  await restoresWhole(t, store, root, session, (i) => [zips[1], zips[2], zips[3]][i])
  const clean = cli(['verify', '--json'])
  t.is(clean.status, 0, clean.stdout)
})

test('a prune keeps the newest readable version when newer saves reused a damaged chunk no one had found; verify --repair rewrites them from the primary', async (t) => {
  const root = tempDir(t)
  const bucket = await moto.bucket(`damage-${++buckets}`)
  const [dir, session] = [path.join(root, 'store'), 'RemoteAuth-p']
  const options = { dir, s3: s3(bucket, { incremental: true, keepVersions: 2 }), saveErrors: 'reject' }
  const zips = await tenVersions(root, 'small')
  const pack = await saveAndFindLastPack(new RustStore(options), bucket, session, zips.slice(0, 2))
  await flipByte(bucket, pack)

  // A restarted service saves the same files again: nothing knew of the damage, so the new version reuses the
  // chunk; keepVersions 2 would prune the first version, the only one that reads.
  const store = new RustStore(options)
  await store.save({ session, path: zips[1] })
  const versions = await store.listBackups(session)
  t.is(versions.length, 3, 'the first version is kept')
  const out = path.join(root, 'first.zip')
  await store.extract({ session, path: out, version: versions[0].id })
  t.deepEqual(await files(out), await files(zips[0]))

  const cli = cliOn(root, dir, bucket)
  const verified = cli(['verify', '--json'])
  t.is(verified.status, 1)
  const unreadable = versions.slice(1).map((v) => `${session}/${v.id}`)
  t.deepEqual(JSON.parse(verified.stdout).bad.map((b) => b.version), unreadable, 'every unreadable version named')

  const repaired = cli(['verify', '--repair', '--json'])
  t.is(repaired.status, 0, repaired.stdout + repaired.stderr)
  const report = JSON.parse(repaired.stdout)
  t.deepEqual(report.bad, [])
  t.deepEqual(report.repaired.map((r) => [r.version, r.outcome]), unreadable.map((v) => [v, 'rewritten']))
  await restoresWhole(t, store, root, session, (i) => zips[Math.min(i, 1)])
  const text = cli(['verify', '--repair'])
  t.is(text.status, 0)
  t.regex(text.stdout, /checked 4 stored copies: 4 good, 0 bad/)
})
