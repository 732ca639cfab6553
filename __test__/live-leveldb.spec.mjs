// Backups of a LevelDB that a live process keeps writing, flushing and compacting (support/leveldb-writer.js):
// every snapshot saveProfile stores restores into a database that opens as LevelDB would open it (every table its
// manifest lists there and whole, its log there). A plain copy of the folder, as RemoteAuth makes, is torn.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, require, tempDir } from './helpers.mjs'

const { check } = require('../support/leveldb-shape.js')
const DBS = ['Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb', 'Default/Local Storage/leveldb']

function startWriter(t, dir) {
  const child = fork(require.resolve('../support/leveldb-writer.js'), [dir], { stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  return new Promise((resolve) => child.once('message', () => resolve(child)))
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('every snapshot of a live LevelDB is self-consistent; a plain copy is not', async (t) => {
  const root = tempDir(t)
  const profile = path.join(root, 'auth', 'RemoteAuth-live')
  const writers = await Promise.all(DBS.map((db) => startWriter(t, path.join(profile, db))))
  await sleep(300)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth') })

  const seen = DBS.map(() => new Set())
  let [stored, changing] = [0, 0]
  for (let i = 0; i < 25; i++) {
    try {
      await store.saveProfile({ session: 'RemoteAuth-live', dir: profile })
      stored++
    } catch (err) {
      t.is(err.code, 'ERR_PROFILE_CHANGING', err.message)
      changing++
      continue
    }
    const restored = path.join(root, `restored-${i}`)
    await store.restoreProfile({ session: 'RemoteAuth-live', dir: restored })
    DBS.forEach((db, at) => {
      const state = check(path.join(restored, db)) // throws what is inconsistent
      seen[at].add(state.logNumber)
    })
    fs.rmSync(restored, { recursive: true })
  }
  t.log(`${stored} snapshots stored and consistent, ${changing} backups refused as ERR_PROFILE_CHANGING`)
  t.true(stored >= 15, `only ${stored} of 25 backups stored`)
  for (const logs of seen) t.true(logs.size >= 5, 'the database moved on between the snapshots')

  // The same folder copied file by file, as RemoteAuth does before it zips.
  let torn = 0
  for (let i = 0; i < 60 && torn === 0; i++) {
    const copy = path.join(root, 'copy')
    fs.rmSync(copy, { recursive: true, force: true })
    try {
      fs.cpSync(path.join(profile, DBS[0]), copy, { recursive: true })
      check(copy)
    } catch {
      torn++
    }
  }
  t.true(torn > 0, 'the writer is live enough to tear a plain copy')
  for (const writer of writers) writer.kill('SIGKILL')
})
