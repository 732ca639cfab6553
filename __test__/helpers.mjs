import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

export const require = createRequire(import.meta.url)
export const { RustStore } = require('../index.js')
export const { makeProfile, evolveProfile, duSync } = require('../support/synthetic-profile.js')
export const { remoteAuth, waitForFiles } = require('../support/remoteauth.js')
export const { zipProfile } = require('../support/zip-profile.js')

/** The first answer of `attempt()` that does not throw, trying every 100 ms for up to `tries` times. */
export async function eventually(attempt, tries = 50) {
  for (let i = 1; ; i++) {
    try {
      return await attempt()
    } catch (err) {
      if (i >= tries) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

/** A zip of a synthetic profile (seed `seed`) as RemoteAuth writes it, named `name` in a fresh temp directory. */
export async function profileZip(t, seed, name = 's.zip') {
  const dir = tempDir(t)
  makeProfile(path.join(dir, 'p'), { junk: false, seed })
  await zipProfile(path.join(dir, 'p'), path.join(dir, name))
  return path.join(dir, name)
}

/** A fresh temp directory, removed when the test ends. */
export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** `n` distinct session zips (RemoteAuth's shape) and each one's file contents. */
export async function zips(t, n, size = 'small') {
  const root = tempDir(t)
  const out = []
  for (let i = 0; i < n; i++) {
    const kept = makeProfile(path.join(root, `p${i}`), { junk: false, seed: 100 + i, size })
    await zipProfile(path.join(root, `p${i}`), path.join(root, `${i}.zip`))
    out.push({ zip: path.join(root, `${i}.zip`), kept })
  }
  return out
}

/** The files of a zip, by name. */
export async function filesOf(zip) {
  const dir = await require('unzipper').Open.file(zip)
  const files = {}
  for (const entry of dir.files.filter((e) => e.type === 'File')) files[entry.path] = await entry.buffer()
  return files
}

/** Which of `versions` a zip holds, whole; -1 if none. */
export async function whichVersion(zip, versions) {
  const files = await filesOf(zip)
  return versions.findIndex(({ kept }) => Object.entries(kept).every(([rel, data]) => files[rel]?.equals(data)) && Object.keys(files).length === Object.keys(kept).length)
}

/**
 * whatsapp-web.js's own RemoteAuth (package `pkg`) backs a profile up into RustStore, the profile is wiped, a new
 * store (a restarted process) restores it, and logout deletes it. Runs in `root`, which becomes the cwd
 * (RemoteAuth 1.34.4 writes its zip there), so callers run serially.
 */
export async function remoteAuthRoundTrip(t, { pkg = 'whatsapp-web.js', root, storeOptions, size = 'small' }) {
  const cwd = process.cwd()
  process.chdir(root)
  t.teardown(() => process.chdir(cwd))
  const dataPath = path.join(root, 'auth')
  const options = { dataPath, ...storeOptions }

  // First start: nothing stored, RemoteAuth makes an empty profile; the browser would then fill it.
  const first = remoteAuth(pkg, { store: new RustStore(options), clientId: 'acct1', dataPath })
  await first.auth.beforeBrowserInitialized()
  const profile = first.auth.userDataDir
  t.is(profile, path.join(dataPath, 'RemoteAuth-acct1'))
  const kept = makeProfile(profile, { seed: 7, size })
  const profileBytes = duSync(profile)

  await first.auth.storeRemoteSession({ emit: true })
  t.deepEqual(first.client.events.map(([name]) => name), ['remote_session_saved'])
  t.false(fs.existsSync(path.join(root, 'RemoteAuth-acct1.zip')), 'RemoteAuth removed its zip')
  t.false(fs.existsSync(path.join(dataPath, 'RemoteAuth-acct1.zip')), 'RemoteAuth removed its zip')

  // A new process: a new store on the same storage, the local profile gone.
  fs.rmSync(profile, { recursive: true, force: true })
  const store = new RustStore(options)
  const [stored] = await store.listSessions()
  t.is(stored.session, 'RemoteAuth-acct1')
  t.true(stored.storedBytes <= stored.zipBytes, `stored ${stored.storedBytes} B > zip ${stored.zipBytes} B`)
  const factor = size === 'small' ? 50 : 2 // a long history is mostly kept data
  t.true(stored.storedBytes * factor < profileBytes, `stored ${stored.storedBytes} B of a ${profileBytes} B profile`)

  const second = remoteAuth(pkg, { store, clientId: 'acct1', dataPath })
  await second.auth.beforeBrowserInitialized()
  await waitForFiles(profile, kept)
  for (const [rel, data] of Object.entries(kept)) {
    t.true(fs.readFileSync(path.join(profile, rel)).equals(data), rel)
  }
  for (const junk of ['Default/Cache', 'Default/Service Worker', 'Default/Code Cache', 'Default/Preferences', 'Local State']) {
    t.false(fs.existsSync(path.join(profile, junk)), `${junk} must not come back`)
  }
  t.false(fs.existsSync(path.join(dataPath, 'RemoteAuth-acct1.zip')), 'RemoteAuth removed the restored zip')

  await second.auth.logout()
  t.false(await store.sessionExists({ session: 'RemoteAuth-acct1' }))
  t.deepEqual(await store.listSessions(), [])
  t.false(fs.existsSync(profile))
  return { stored, profileBytes }
}
