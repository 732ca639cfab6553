// The locks between incremental backups and prunes of one session, across processes (moto behind
// `s3-proxy.mjs`): a prune that dies mid-way holds backups off for seconds, not minutes, and one that is stopped
// and resumed after a backup took its lock over deletes nothing that backup needs. The prune is caught mid-way
// by holding its listing of the session's versions in the proxy, never by sleeps.
import { spawn } from 'node:child_process'
import path from 'node:path'
import test from 'ava'

import { RustStore, tempDir, whichVersion, zips } from './helpers.mjs'
import { exitOf } from './processes.mjs'
import { faultyProxy } from './s3-proxy.mjs'
import { motoForFile } from './servers.mjs'

const moto = motoForFile(test)
const bin = path.resolve('bin/wwebjs-rust-store.js')
const session = 'RemoteAuth-l'
/** The prune's listing of the session's versions (the backups' packs and locks live under `~/`). */
const versionListing = ({ method, url }) => {
  const prefix = new URL(url, 'http://proxy').searchParams.get('prefix')
  return method === 'GET' && !!prefix?.endsWith(`/${session}/`) && !prefix.includes('~')
}
const locksIn = async (bucket) => (await moto.keys(bucket)).filter((k) => k.includes(`/${session}/locks/`))

async function site(t, bucketName) {
  const bucket = await moto.bucket(bucketName)
  const proxy = await faultyProxy(t, Number(new URL(moto.endpoint).port))
  const s3 = { bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0, keepVersions: 10, incremental: true }
  // The service: the bucket is its only tier, so each save is a backup and fails if the backup does.
  const service = new RustStore({ primary: 'none', s3: { ...s3, endpoint: moto.endpoint }, saveErrors: 'reject' })
  // The operator's `cleanup --execute` (a prune of every session), through the proxy.
  const prune = () => {
    const env = {
      PATH: process.env.PATH,
      SESSION_STORE_DIR: tempDir(t),
      S3_BUCKET: bucket,
      S3_ENDPOINT: proxy.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: 'k',
      S3_SECRET_ACCESS_KEY: 's',
    }
    const child = spawn(process.execPath, [bin, 'cleanup', '--execute', '--json'], { env, cwd: tempDir(t) })
    t.teardown(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'))
    return { child, exited: exitOf(child) }
  }
  return { bucket, proxy, service, prune }
}

async function extracted(t, store, versions, version) {
  const zip = path.join(tempDir(t), `${version ?? 'newest'}.zip`)
  await store.extract({ session, path: zip, version })
  return whichVersion(zip, versions)
}

test.serial('a prune killed mid-way holds the session\'s backups off for seconds: the next save succeeds', async (t) => {
  t.timeout(60_000)
  const { bucket, proxy, service, prune } = await site(t, 'killed')
  const versions = await zips(t, 2)
  await service.save({ session, path: versions[0].zip })
  const held = proxy.hold(versionListing)
  const { child, exited } = prune()
  await held.reached
  const [lock] = await locksIn(bucket)
  t.regex(lock ?? '', /\/locks\/prune-/, 'the prune holds its lock')
  child.kill('SIGKILL')
  t.is((await exited).signal, 'SIGKILL')
  held.release()
  // Before: the dead prune's lock held every backup off for 5 minutes, so this save failed ERR_BACKUP_BUSY
  // after its 30 s wait. Now the lock is stale once it misses three 4 s heartbeats.
  await service.save({ session, path: versions[1].zip })
  t.false((await locksIn(bucket)).includes(lock), 'the taker removed the dead prune\'s lock')
  t.deepEqual(await locksIn(bucket), [], 'and released its own')
  t.is(await extracted(t, service, versions), 1)
})

test.serial('a prune stopped mid-way, resumed after a backup took its lock over, deletes nothing: every version restores whole', async (t) => {
  t.timeout(60_000)
  const { bucket, proxy, service, prune } = await site(t, 'stopped')
  const versions = await zips(t, 3)
  await service.save({ session, path: versions[0].zip })
  await service.save({ session, path: versions[1].zip })
  // The prune has its listing of the versions (two) in hand, not yet read, when it is stopped.
  const held = proxy.hold(versionListing)
  const { child, exited } = prune()
  await held.reached
  child.kill('SIGSTOP')
  held.release()
  // A backup meanwhile outwaits the stopped prune's lock, takes it over, and writes a pack the prune's listing
  // of versions does not account for (its manifest came later).
  await service.save({ session, path: versions[2].zip })
  const before = await moto.keys(bucket)
  child.kill('SIGCONT')
  const { code, stdout } = await exited
  const report = JSON.parse(stdout)
  t.is(code, 1, stdout)
  t.deepEqual(report.failures.map((f) => [f.target, f.code]), [[session, 'ERR_BACKUP_LOCK_LOST']], 'it stopped itself, coded')
  t.deepEqual(await moto.keys(bucket), before, 'the resumed prune deleted nothing')
  const listed = await service.listBackups(session)
  t.is(listed.length, 3)
  for (const [at, { id }] of listed.entries()) t.is(await extracted(t, service, versions, id), at, `version ${id} restores whole`)
  t.is(await extracted(t, service, versions), 2, 'the newest is the last save')
})
