// Issue #13, with a real browser: Debian's Chromium stores a WhatsApp-Web-like login (IndexedDB + localStorage
// of https://web.whatsapp.com, served by a local HTTPS server), whatsapp-web.js 1.34.7's plain RemoteAuth backs
// the profile up into RustStore, the profile is wiped, RemoteAuth restores it, and Chromium must read the same
// data back. Serial: each test runs a browser, and two at once would only fight for the 2 cores.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, remoteAuth, require, tempDir } from './helpers.mjs'
import { pageServerForFile } from './page-server.mjs'
import { startMoto, startRedis } from './servers.mjs'

const { visitPage } = require('../support/chromium-page.js')
const { expectedSession, sessionDifferences } = require('../support/session-data.js')
const { fileHashes, fileLosses, fileSizes, waitForSettled } = require('../support/profile-files.js')
const { dropFolderStore } = require('../support/drop-folder-store.js')

// big: ~4 MB of IndexedDB, enough for LevelDB to flush a table (.ldb) beside its log; small: a fresh login.
const SIZES = { big: { seed: 13, messages: 6000 }, small: { seed: 5, messages: 40 } }
const KEPT = ['Default/IndexedDB', 'Default/Local Storage'] // what RemoteAuth backs up, under Chromium's names
const IDB = 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb'
const CLIENT = 'chromium'

const page = pageServerForFile(test)

/** The profile has WhatsApp Web's folders, and for `big` LevelDB files of a real session's size. */
function checkProfileShape(t, profile, size) {
  const idb = fileSizes(path.join(profile, IDB))
  const names = Object.keys(idb)
  t.true(names.includes('CURRENT'), `IndexedDB is a LevelDB under ${IDB}: ${names.join(', ')}`)
  t.true(Object.keys(fileSizes(path.join(profile, 'Default/Local Storage/leveldb'))).includes('CURRENT'), 'Local Storage is a LevelDB')
  if (size === 'big') {
    const bytes = (ext) => names.filter((n) => n.endsWith(ext)).map((n) => idb[n])
    t.true(bytes('.ldb').some((b) => b > 100_000), `a table of real size: ${JSON.stringify(idb)}`)
    t.true(bytes('.log').some((b) => b > 100_000), `a log of real size: ${JSON.stringify(idb)}`)
  }
}

const tiers = {
  embedded: async (t, root) => ({ options: { dir: path.join(root, 'store') } }),
  redis: async (t) => {
    const redis = await startRedis(t)
    return {
      options: { redis: { url: redis.url } },
      afterSave: () => t.is(redis.cli('EXISTS', `wa:session:RemoteAuth-${CLIENT}`), '1', 'the session is in Redis'),
    }
  },
  // Redis is flushed after the save, so the restore has to come from the S3 copy.
  redisS3: async (t) => {
    const redis = await startRedis(t)
    const moto = await startMoto(t)
    const bucket = await moto.bucket('sessions')
    const s3 = { endpoint: moto.endpoint, bucket, forcePathStyle: true, accessKeyId: 'test-key', secretAccessKey: 'test-secret', backupIntervalMs: 0 }
    return {
      options: { redis: { url: redis.url }, s3 },
      afterSave: async () => {
        t.true((await moto.keys(bucket)).length > 0, 'the save reached S3')
        redis.cli('FLUSHALL')
      },
    }
  },
}

/**
 * Chromium writes the session into RemoteAuth's profile, RemoteAuth backs it up into the tier's RustStore, the
 * profile and any zip are wiped, a new store and RemoteAuth restore it, and Chromium reads it back.
 * `wrap` can put a store in front of RustStore. Resolves what was expected, what was read and the file losses.
 */
async function browserRoundTrip(t, { size, tier, wrap = (store) => store }) {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const { options: tierOptions, afterSave } = await tiers[tier](t, root)
  const options = { dataPath, saveErrors: 'reject', ...tierOptions }
  const expected = expectedSession(SIZES[size])
  const query = { mode: 'write', ...SIZES[size] }

  // First start: nothing stored, so RemoteAuth hands the browser an empty profile.
  const first = remoteAuth('whatsapp-web.js', { store: wrap(new RustStore(options), dataPath), clientId: CLIENT, dataPath })
  await first.auth.beforeBrowserInitialized()
  const profile = first.auth.userDataDir
  t.is(first.client.options.puppeteer.userDataDir, profile)
  const written = await visitPage(profile, { port: page.port, query })
  t.deepEqual(sessionDifferences(expected, written), [], 'the page stored exactly the generated data')
  checkProfileShape(t, profile, size)
  const kept = fileHashes(profile, KEPT)
  const keptSizes = Object.fromEntries(Object.entries(fileSizes(profile)).filter(([f]) => f in kept))

  await first.auth.storeRemoteSession({ emit: true })
  t.deepEqual(first.client.events.map(([name]) => name), ['remote_session_saved'])
  await afterSave?.()

  // A new process on another disk: the profile, RemoteAuth's zip and temp folder are gone.
  for (const p of [profile, path.join(dataPath, `RemoteAuth-${CLIENT}.zip`), path.join(dataPath, `wwebjs_temp_session_${CLIENT}`)]) {
    fs.rmSync(p, { recursive: true, force: true })
  }
  const second = remoteAuth('whatsapp-web.js', { store: wrap(new RustStore(options), dataPath), clientId: CLIENT, dataPath })
  await second.auth.beforeBrowserInitialized()
  t.is(second.auth.userDataDir, profile)
  const early = fileSizes(profile)
  const settled = await waitForSettled(profile, { expected: keptSizes })
  const late = Object.keys(settled).filter((f) => early[f] !== settled[f])
  if (late.length > 0) t.log(`${tier}/${size}: still being written when RemoteAuth resolved: ${late.join(', ')}`)
  t.false(fs.existsSync(path.join(dataPath, `RemoteAuth-${CLIENT}.zip`)), 'RemoteAuth removed the restored zip')

  // Evidence for the report: which backed-up files the restore did not give back byte for byte.
  const losses = fileLosses(kept, fileHashes(profile, KEPT))
  if (losses.missing.length > 0 || losses.changed.length > 0) t.log(`${tier}/${size}: restore vs backup ${JSON.stringify(losses)}`)

  const read = await visitPage(profile, { port: page.port, query: { mode: 'read' } })
  return { expected, read, losses }
}

test.serial('control: Chromium reads its own data back after a clean close, no store involved', async (t) => {
  const profile = path.join(tempDir(t), 'profile')
  const expected = expectedSession(SIZES.big)
  const written = await visitPage(profile, { port: page.port, query: { mode: 'write', ...SIZES.big } })
  t.deepEqual(sessionDifferences(expected, written), [])
  checkProfileShape(t, profile, 'big')
  const read = await visitPage(profile, { port: page.port, query: { mode: 'read' } })
  t.deepEqual(sessionDifferences(expected, read), [])
  // The same check on an empty profile reports every store: it can fail.
  const empty = await visitPage(path.join(tempDir(t), 'empty'), { port: page.port, query: { mode: 'read' } })
  t.is(sessionDifferences(expected, empty).length, Object.keys(expected.counts).length + 1)
})

for (const [tier, size] of [
  ['embedded', 'big'],
  ['embedded', 'small'],
  ['redis', 'big'],
  ['redisS3', 'big'],
]) {
  test.serial(`RemoteAuth restores a Chromium login from RustStore (${tier}, ${size})`, async (t) => {
    const { expected, read } = await browserRoundTrip(t, { size, tier })
    t.deepEqual(sessionDifferences(expected, read), [], 'Chromium reads back every record and key')
    t.is(read.digest, expected.digest)
  })
}

test.serial('negative control: a store that drops Default/Local Storage fails the same check', async (t) => {
  const wrap = (store, dataPath) => dropFolderStore(store, { dataPath, folder: 'Default/Local Storage' })
  const { expected, read, losses } = await browserRoundTrip(t, { size: 'big', tier: 'embedded', wrap })
  t.true(losses.missing.some((f) => f.startsWith('Default/Local Storage/')), JSON.stringify(losses))
  // IndexedDB still comes back whole; the check names the lost localStorage keys and the digest.
  t.deepEqual(sessionDifferences(expected, read), [
    `localStorage: 0 read back, ${expected.counts.localStorage} written`,
    'digest: the values read back differ from those written',
  ])
})
