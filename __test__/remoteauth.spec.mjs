// The real whatsapp-web.js RemoteAuth, three releases that disagree on where the zip lives, against RustStore.
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, remoteAuth, remoteAuthRoundTrip, tempDir } from './helpers.mjs'

const releases = [
  ['whatsapp-web.js', '1.34.7: zip in dataPath, bare session name'],
  ['wwebjs-1.34.6', '1.34.6: zip in dataPath, absolute path as session'],
  ['wwebjs-1.34.4', '1.34.4: zip in the current directory'],
]

// Each test changes the working directory (1.34.4 writes its zip there), so they run one at a time.
for (const [pkg, label] of releases) {
  test.serial(`backup, restore and logout through RemoteAuth ${label}`, async (t) => {
    const root = tempDir(t)
    await remoteAuthRoundTrip(t, { pkg, root, storeOptions: { dir: path.join(root, 'store') } })
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
