// The real whatsapp-web.js RemoteAuth, three releases that disagree on where the zip lives, against RustStore.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, remoteAuth, waitForFiles, tempDir, duSync } from './helpers.mjs'

const releases = [
  ['whatsapp-web.js', '1.34.7: zip in dataPath, bare session name'],
  ['wwebjs-1.34.6', '1.34.6: zip in dataPath, absolute path as session'],
  ['wwebjs-1.34.4', '1.34.4: zip in the current directory'],
]

// Each test changes the working directory (1.34.4 writes its zip there), so they run one at a time.
for (const [pkg, label] of releases) {
  test.serial(`backup, restore and logout through RemoteAuth ${label}`, async (t) => {
    const root = tempDir(t)
    const cwd = process.cwd()
    process.chdir(root)
    t.teardown(() => process.chdir(cwd))
    const dataPath = path.join(root, 'auth')
    const dir = path.join(root, 'store')

    // First start: nothing stored, RemoteAuth makes an empty profile; the browser would then fill it.
    const first = remoteAuth(pkg, { store: new RustStore({ dir, dataPath }), clientId: 'acct1', dataPath })
    await first.auth.beforeBrowserInitialized()
    const profile = first.auth.userDataDir
    t.is(profile, path.join(dataPath, 'RemoteAuth-acct1'))
    const kept = makeProfile(profile, { seed: 7 })
    const profileBytes = duSync(profile)

    await first.auth.storeRemoteSession({ emit: true })
    t.deepEqual(first.client.events.map(([name]) => name), ['remote_session_saved'])
    t.false(fs.existsSync(path.join(root, 'RemoteAuth-acct1.zip')), 'RemoteAuth removed its zip')
    t.false(fs.existsSync(path.join(dataPath, 'RemoteAuth-acct1.zip')), 'RemoteAuth removed its zip')

    // A new process: a new store on the same directory, the local profile gone.
    fs.rmSync(profile, { recursive: true, force: true })
    const store = new RustStore({ dir, dataPath })
    const [stored] = await store.listSessions()
    t.is(stored.session, 'RemoteAuth-acct1')
    t.true(stored.storedBytes <= stored.zipBytes, `stored ${stored.storedBytes} B > zip ${stored.zipBytes} B`)
    t.true(stored.storedBytes * 50 < profileBytes, `stored ${stored.storedBytes} B of a ${profileBytes} B profile`)

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
  })
}

test.serial('a failing backup from RemoteAuth never becomes an unhandled rejection', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const errors = []
  // 1 KB of unpacked data allowed: every real save fails, as a zip bomb would.
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath, maxUnpackedBytes: 1024, onError: (e) => errors.push(e) })
  const unhandled = []
  const onUnhandled = (reason) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))

  const { auth } = remoteAuth('whatsapp-web.js', { store, clientId: 'bomb', dataPath })
  await auth.beforeBrowserInitialized()
  makeProfile(auth.userDataDir, { junk: false })
  // RemoteAuth's interval calls this without anyone awaiting the promise.
  auth.storeRemoteSession()
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.deepEqual(unhandled, [])
  t.is(errors.length, 1)
  t.is(errors[0].code, 'ERR_ARCHIVE_LIMIT')
  t.false(await store.sessionExists({ session: 'RemoteAuth-bomb' }))
})
