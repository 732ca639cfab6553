// A restore gives back exactly the saved tree: the pad file `extract` adds for plain RemoteAuth's streaming unzip
// (`wwebjs-rust-store.pad`, docs/archive-format.md) is gone once the restore is over. RustStore with its defaults
// (embedded tier in ./.wwebjs_store, dataPath ./.wwebjs_auth), as a user writes it.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { RustStore, require, eventually } from './helpers.mjs'

const { writeShape, savedTree, treeDifference, differences } = require('../support/shapes.js')
const { started } = require('../support/remoteauth.js')
const { safeRemoteAuth } = require('../safe-remote-auth.js')

const IDB = 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb'
const LOCAL = 'Default/Local Storage/leveldb'
/** Small files only: the zip's last file is small, so `extract` appends the pad. */
const shape = {
  files: {
    [`${IDB}/CURRENT`]: Buffer.from('MANIFEST-000001\n'),
    [`${IDB}/MANIFEST-000001`]: Buffer.alloc(300, 7),
    [`${IDB}/000003.log`]: Buffer.alloc(5000, 'w'),
    [`${LOCAL}/CURRENT`]: Buffer.from('MANIFEST-000001\n'),
    [`${LOCAL}/000003.log`]: Buffer.from('local storage'),
  },
  dirs: [],
}
const saved = savedTree(shape)

let root
test.before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-pad-'))
  process.chdir(root) // the defaults are relative to the cwd; RemoteAuth 1.34.4 writes its zip there too
})
test.after.always(() => fs.rmSync(root, { recursive: true, force: true }))

/** Backs `shape` up through `pkg`'s own RemoteAuth into `store`; the profile folder it lives in. */
async function backedUp(pkg, store, clientId) {
  const RemoteAuth = require(`${pkg}/src/authStrategies/RemoteAuth.js`)
  const { auth } = await started(RemoteAuth, { store, clientId, dataPath: undefined }) // nothing stored yet
  writeShape(auth.userDataDir, shape)
  await auth.storeRemoteSession()
  fs.rmSync(auth.userDataDir, { recursive: true, force: true })
  return { RemoteAuth, profile: auth.userDataDir }
}

for (const pkg of ['wwebjs-1.34.4', 'whatsapp-web.js']) {
  test.serial(`${pkg}: plain RemoteAuth's restore from new RustStore() leaves exactly the saved tree`, async (t) => {
    const store = new RustStore()
    const clientId = `pad-${pkg.replace(/\W/g, '')}`
    const { RemoteAuth, profile } = await backedUp(pkg, store, clientId)
    t.is(profile, path.join(root, '.wwebjs_auth', `RemoteAuth-${clientId}`))

    await started(RemoteAuth, { store, clientId, dataPath: undefined })
    t.deepEqual(differences(profile, shape), [], 'every file whole when RemoteAuth resolves (the pad held the parser back)')
    // The pad goes once RemoteAuth has deleted the zip, a moment after it resolved; nothing else changes.
    const left = await eventually(() => {
      const diff = treeDifference(profile, saved)
      if (diff.extra.length || diff.missing.length) throw new Error(JSON.stringify(diff))
      return diff
    }, 200)
    t.deepEqual(left, { extra: [], missing: [] })

    // Restored again, then close(): the store ends its watch only after the pad is gone.
    await started(RemoteAuth, { store, clientId, dataPath: undefined })
    await store.close()
    t.deepEqual(treeDifference(profile, saved), { extra: [], missing: [] }, 'exactly the saved tree after close()')
    t.false(fs.existsSync(`${profile}.zip`) || fs.existsSync(path.join(root, `RemoteAuth-${clientId}.zip`)), 'the zip went')
  })
}

test.serial('SafeRemoteAuth with directProfile: false (the zip path) also ends with no pad', async (t) => {
  const store = new RustStore()
  const clientId = 'pad-safe'
  const { RemoteAuth, profile } = await backedUp('whatsapp-web.js', store, clientId)
  await started(safeRemoteAuth(RemoteAuth), { store, clientId, dataPath: undefined, directProfile: false })
  t.deepEqual(differences(profile, shape), [], 'whole when it resolves')
  await store.close()
  t.deepEqual(treeDifference(profile, saved), { extra: [], missing: [] })
})

test('a keep list with a folder inside another, or twice, is refused at construction', (t) => {
  const lists = [
    ['Default/IndexedDB', 'Default/IndexedDB/sub'],
    ['Default/IndexedDB/sub', 'Default/IndexedDB'],
    ['Default/IndexedDB', 'Default/IndexedDB'],
    ['Default/IndexedDB', 'Default/IndexedDB/'],
    ['wwebjs-rust-store.pad'],
  ]
  for (const keep of lists) {
    for (const make of [() => new RustStore({ keep }), () => RustStore.fromEnv({ keep })]) {
      const err = t.throws(make, undefined, JSON.stringify(keep))
      t.is(err.code, 'ERR_INVALID_OPTION', JSON.stringify(keep))
      t.regex(err.message, /keep/)
    }
  }
  t.notThrows(() => new RustStore({ keep: ['Default/IndexedDB', 'Default/IndexedDBx'] }))
})
