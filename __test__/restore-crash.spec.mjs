// restoreProfile killed (SIGKILL) at points through its run: the profile folder is always the old profile or the
// new one, whole, never a mix; the next restore cleans up what the killed one left beside it.
import { fork } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, require, tempDir } from './helpers.mjs'

const CHILD = require.resolve('../support/restore-profile-child.js')

/** The folder as `relative path → sha256`, or null when it is not there. */
function digest(root) {
  if (!fs.existsSync(root)) return null
  const out = {}
  for (const rel of fs.readdirSync(root, { recursive: true }).sort()) {
    const full = path.join(root, rel)
    if (fs.statSync(full).isFile()) out[rel] = crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex')
  }
  return out
}

/** Runs the restore in a child; kills it `killAfterMs` after it starts (never, when null). Resolves its run time. */
function restoreIn(storeDir, profile, killAfterMs) {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [storeDir, 'RemoteAuth-crash', profile], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    let started
    child.on('message', (m) => {
      if (m === 'start') {
        started = process.hrtime.bigint()
        if (killAfterMs !== null) setTimeout(() => child.kill('SIGKILL'), killAfterMs)
      }
    })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) return reject(new Error(`restore child exited ${code}`))
      resolve(Number(process.hrtime.bigint() - (started ?? process.hrtime.bigint())) / 1e6)
    })
  })
}

test('a restore killed at any point leaves the old profile or the new one', async (t) => {
  const root = tempDir(t)
  const storeDir = path.join(root, 'store')
  const auth = path.join(root, 'auth')
  const profile = path.join(auth, 'RemoteAuth-crash')
  const store = new RustStore({ dir: storeDir, dataPath: auth })
  const source = path.join(root, 'source')
  makeProfile(source, { size: 'large', seed: 4, junk: false })
  await store.saveProfile({ session: 'RemoteAuth-crash', dir: source })
  const fresh = digest(source)

  const writeOld = () => {
    fs.rmSync(profile, { recursive: true, force: true })
    makeProfile(profile, { seed: 9 })
  }
  writeOld()
  const old = digest(profile)
  t.notDeepEqual(old, fresh)
  const runMs = await restoreIn(storeDir, profile, null)
  t.deepEqual(digest(profile), fresh, 'an uninterrupted restore')
  t.log(`a restore takes ${runMs.toFixed(0)} ms here`)

  const outcomes = { old: 0, new: 0, partial: 0 }
  for (let i = 0; i <= 12; i++) {
    writeOld()
    const killAt = Math.round((runMs * 2.5 * i) / 12)
    await restoreIn(storeDir, profile, killAt)
    const after = digest(profile)
    if (fs.readdirSync(auth).some((f) => f.startsWith('.RemoteAuth-crash.restore-'))) outcomes.partial++
    const which = JSON.stringify(after) === JSON.stringify(old) ? 'old' : JSON.stringify(after) === JSON.stringify(fresh) ? 'new' : null
    t.truthy(which, `killed after ${killAt} ms: the folder is neither the old profile nor the new one`)
    if (which) outcomes[which]++
    // The next restore repairs and cleans: the new profile, nothing beside it.
    await store.restoreProfile({ session: 'RemoteAuth-crash', dir: profile })
    t.deepEqual(digest(profile), fresh)
    t.deepEqual(fs.readdirSync(auth), ['RemoteAuth-crash'], `killed after ${killAt} ms: leftovers cleaned`)
  }
  t.log(`killed 13 times: ${outcomes.old} left the old profile (${outcomes.partial} with a partial restore beside it), ${outcomes.new} the new one`)
  t.true(outcomes.old > 0, 'some kills landed before the swap')
})
