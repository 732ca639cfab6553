'use strict'
// The main job on the embedded default: whatsapp-web.js's real RemoteAuth backs a ~20 MB Chromium profile up
// into `new RustStore()`, the profile is wiped, and RemoteAuth restores it. Prints what each step weighed.
// Runs in a temp directory; no browser and no server needed.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { RustStore } = require('..')
const { makeProfile, duSync } = require('../support/synthetic-profile.js')
const { remoteAuth, waitForFiles } = require('../support/remoteauth.js')

const kb = (n) => `${(n / 1024).toFixed(1)} KB`

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'wwebjs-rust-store-example-'))
  process.chdir(work) // RustStore's defaults (./.wwebjs_store, ./.wwebjs_auth) are relative to the cwd, as RemoteAuth's are
  const size = process.argv[2] || 'small'

  const first = remoteAuth('whatsapp-web.js', { store: new RustStore(), clientId: 'example' })
  await first.auth.beforeBrowserInitialized()
  const profile = first.auth.userDataDir
  const kept = makeProfile(profile, { size })
  const profileBytes = duSync(profile)
  let t0 = process.hrtime.bigint()
  await first.auth.storeRemoteSession({ emit: true })
  const saveMs = Number(process.hrtime.bigint() - t0) / 1e6

  fs.rmSync(profile, { recursive: true, force: true })
  const store = new RustStore() // a restarted process
  const [stored] = await store.listSessions()
  t0 = process.hrtime.bigint()
  const second = remoteAuth('whatsapp-web.js', { store, clientId: 'example' })
  await second.auth.beforeBrowserInitialized()
  await waitForFiles(profile, kept)
  const restoreMs = Number(process.hrtime.bigint() - t0) / 1e6
  const identical = Object.entries(kept).every(([rel, data]) => fs.readFileSync(path.join(profile, rel)).equals(data))

  const keptBytes = Object.values(kept).reduce((sum, b) => sum + b.length, 0)
  console.log(`RemoteAuth round trip through RustStore (embedded tier at ${path.join(work, '.wwebjs_store')})`)
  console.table({
    'Chromium profile on disk': { size: kb(profileBytes) },
    'kept by RemoteAuth (IndexedDB + Local Storage)': { size: kb(keptBytes) },
    'zip RemoteAuth handed to save()': { size: kb(stored.zipBytes) },
    'stored by RustStore': { size: kb(stored.storedBytes) },
  })
  console.log(`stored/profile: ${((100 * stored.storedBytes) / profileBytes).toFixed(2)} %, stored/zip: ${((100 * stored.storedBytes) / stored.zipBytes).toFixed(1)} %`)
  console.log(`backup (RemoteAuth zip + save) ${saveMs.toFixed(0)} ms, restore (extract + unzip) ${restoreMs.toFixed(0)} ms`)
  console.log(`restored ${Object.keys(kept).length} files, byte-identical: ${identical}`)
  fs.rmSync(work, { recursive: true, force: true })
  if (!identical) process.exit(1)
}

main().catch((err) => {
  console.error(err.code || '', err.message)
  process.exit(1)
})
