// Backups across processes and under a slow or faulty bucket (moto behind `s3-proxy.mjs`): versions in the order
// of the saves they hold, write-backs that never land over a newer save, a logout that stays logged out, and
// downloads bounded by timeoutMs. Each race is made to happen by holding one request open in the proxy.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import test from 'ava'

import { RustStore, tempDir, whichVersion, zips } from './helpers.mjs'
import { faultyProxy } from './s3-proxy.mjs'
import { motoForFile, startRedis } from './servers.mjs'

const moto = motoForFile(test)
const bin = path.resolve('bin/wwebjs-rust-store.js')
const session = 'RemoteAuth-o'
const versionsOf = ({ method, url }) => method === 'GET' && url.includes(`/${session}/`) && /\.ww(rs|mf)/.test(url)
const listingOf = ({ method, url }) => method === 'GET' && url.includes('list-type=2') && url.includes(`${session}%2F`)

async function site(t, bucketName, s3 = {}) {
  const redis = await startRedis(t)
  const bucket = await moto.bucket(bucketName)
  const proxy = await faultyProxy(t, Number(new URL(moto.endpoint).port))
  const s3Options = { endpoint: proxy.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0, timeoutMs: 5000, ...s3 }
  const open = (extra = {}) => new RustStore({ redis: { url: redis.url }, s3: s3Options, saveErrors: 'reject', ...extra })
  const bucketOnly = () => new RustStore({ primary: 'none', s3: { ...s3Options, endpoint: moto.endpoint } })
  const env = { PATH: process.env.PATH, REDIS_URL: redis.url, S3_BUCKET: bucket, S3_ENDPOINT: proxy.endpoint, S3_FORCE_PATH_STYLE: 'true', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY: 's' }
  const cli = (args, extra = {}) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [bin, ...args], { env: { ...env, ...extra }, cwd: tempDir(t) })
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (out += d))
      child.on('exit', (code) => resolve({ code, out }))
    })
  return { redis, bucket, proxy, open, bucketOnly, cli }
}

async function extracted(t, store, versions) {
  const zip = path.join(tempDir(t), 'out.zip')
  await store.extract({ session, path: zip })
  return whichVersion(zip, versions)
}

test.serial('a late backup of an older save never becomes the newest version', async (t) => {
  const { proxy, open, bucketOnly } = await site(t, 'order')
  const versions = await zips(t, 3)
  const service = open()
  await service.save({ session, path: versions[0].zip })
  // X's backup has read the primary and is listing the bucket (held) when Y is saved and backed up.
  const held = proxy.hold(listingOf)
  const x = service.save({ session, path: versions[1].zip })
  await held.reached
  await service.save({ session, path: versions[2].zip })
  held.release()
  await x
  await service.close()
  t.is(await extracted(t, bucketOnly(), versions), 2, 'the bucket\'s newest version is Y, the newest save')
  const other = open()
  await other.restoreAll()
  t.is(await extracted(t, other, versions), 2, 'restoreAll kept the primary\'s Y')
})

test.serial('the CLI\'s restore in another process never writes over a save that landed while it ran', async (t) => {
  const { proxy, open, cli } = await site(t, 'restore')
  const versions = await zips(t, 2)
  const service = open()
  await service.save({ session, path: versions[0].zip })
  // The primary lost the session (a flushed Redis); the operator restores from the bucket, its download held.
  const primaryOnly = open({ s3: undefined })
  await primaryOnly.delete({ session })
  const held = proxy.hold(versionsOf)
  const restore = cli(['restore'])
  await held.reached
  await service.save({ session, path: versions[1].zip })
  held.release()
  const { code, out } = await restore
  t.is(code, 0, out)
  t.is(await extracted(t, primaryOnly, versions), 1, 'the acknowledged save Y stands')
  await service.close()
})

test.serial('a logout while the CLI\'s rotate-key rewrites the session\'s backup stays a logout', async (t) => {
  const { bucket, proxy, open, cli } = await site(t, 'rotate')
  const [oldKey, newKey] = [randomBytes(32).toString('base64'), randomBytes(32).toString('base64')]
  const versions = await zips(t, 1)
  const service = open({ encryption: { key: oldKey } })
  await service.save({ session, path: versions[0].zip })
  // The rotation has read the version (its reply held) when the service logs the session out.
  const held = proxy.hold(versionsOf)
  const rotation = cli(['rotate-key'], { SESSION_ENCRYPTION_KEY: newKey, SESSION_ENCRYPTION_PREVIOUS_KEYS: oldKey })
  await held.reached
  await service.delete({ session })
  held.release()
  const { code, out } = await rotation
  t.true(code === 0 || code === 1, out)
  const rotated = open({ encryption: { key: newKey, previousKeys: [oldKey] } })
  t.false(await rotated.sessionExists({ session }), 'the logged-out session does not come back')
  t.deepEqual(await moto.liveKeys(bucket), [], 'no version left in the bucket')
  await service.close()
})

test.serial('a download that trickles is cut off by timeoutMs, coded', async (t) => {
  const { proxy, bucketOnly } = await site(t, 'trickle')
  const versions = await zips(t, 1)
  const writer = bucketOnly()
  await writer.save({ session, path: versions[0].zip })
  const slow = new RustStore({ primary: 'none', s3: { endpoint: proxy.endpoint, bucket: 'trickle', forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', timeoutMs: 2000 } })
  const stop = proxy.trickle(versionsOf, 200)
  t.timeout(60_000)
  const err = await t.throwsAsync(slow.extract({ session, path: path.join(tempDir(t), 'x.zip') }))
  t.is(err.code, 'ERR_S3_TIMEOUT', err.message)
  stop()
  t.is(await extracted(t, slow, versions), 0, 'and a whole copy once the bucket is well again')
  const cut = proxy.truncate(versionsOf)
  const truncated = await t.throwsAsync(slow.extract({ session, path: path.join(tempDir(t), 'y.zip') }))
  t.regex(truncated.code, /^ERR_S3_|ERR_ARCHIVE_CORRUPT/, truncated.message)
  cut()
})
