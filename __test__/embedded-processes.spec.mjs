// Several processes on one embedded store directory (PM2 cluster, the CLI beside a service): leases hold across
// them, a conditional write by one never undoes another's save or delete. Races are held open by a lock the test
// holds or SIGSTOP, never left to timing.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, eventually, profileZip, tempDir } from './helpers.mjs'
import { exitOf, holdLock, storeChild, waitsForLock } from './processes.mjs'

const bin = path.resolve('bin/wwebjs-rust-store.js')

test('two processes, one clientId, SafeRemoteAuth({ lease: true }): exactly one starts', async (t) => {
  const root = tempDir(t)
  const dir = path.join(root, 'store')
  const children = await Promise.all(['a', 'b'].map((name) => storeChild(t, { dir, dataPath: path.join(root, name) })))
  const starts = await Promise.allSettled(
    children.map((c, i) => c.call('safeStart', { clientId: 'acct', dataPath: path.join(root, `${'ab'[i]}`), lease: { ttlMs: 60_000 } })),
  )
  t.is(starts.filter((s) => s.status === 'fulfilled').length, 1, 'one owner')
  const refused = starts.find((s) => s.status === 'rejected')
  t.is(refused?.reason.code, 'ERR_LEASE_HELD')
  // And a third spelling of the directory, in this process, is refused too.
  fs.symlinkSync(dir, path.join(root, 'link'))
  for (const spelled of [path.join(root, 'link'), path.join(dir, '..', 'store')]) {
    const err = await t.throwsAsync(new RustStore({ dir: spelled }).acquireLease('RemoteAuth-acct'))
    t.is(err.code, 'ERR_LEASE_HELD', spelled)
  }
})

test('a holder killed with SIGKILL blocks the session until its ttl runs out, no longer', async (t) => {
  const dir = path.join(tempDir(t), 'store')
  const holder = await storeChild(t, { dir })
  // The ttl is long enough that the refusal below comes before it ends on a loaded machine (kill, a new store and
  // one acquire take well under a second); the acquire after it is waited for up to three ttls.
  await holder.call('acquireLease', 'RemoteAuth-k', { ttlMs: 5_000 })
  holder.proc.kill('SIGKILL')
  await new Promise((resolve) => holder.proc.once('exit', resolve))
  const store = new RustStore({ dir })
  t.is((await t.throwsAsync(store.acquireLease('RemoteAuth-k'))).code, 'ERR_LEASE_HELD', 'its token outlives it')
  const token = await eventually(() => store.acquireLease('RemoteAuth-k'), 150)
  t.regex(token, /^[0-9a-f]{32}$/)
})

test('a holder stopped past its ttl wakes fenced out: its save and renewal are refused, the new owner’s copy stands', async (t) => {
  const dir = path.join(tempDir(t), 'store')
  const zips = await Promise.all([1, 2, 3].map((seed) => profileZip(t, seed)))
  const stalled = await storeChild(t, { dir, saveErrors: 'reject' })
  const token = await stalled.call('acquireLease', 'RemoteAuth-s', { ttlMs: 1_000 })
  await stalled.call('save', { session: 'RemoteAuth-s', path: zips[0] })
  stalled.proc.kill('SIGSTOP')
  t.teardown(() => stalled.proc.kill('SIGCONT'))
  const owner = new RustStore({ dir, saveErrors: 'reject' })
  await eventually(() => owner.acquireLease('RemoteAuth-s', { ttlMs: 60_000 }), 100)
  const ours = await owner.save({ session: 'RemoteAuth-s', path: zips[1] })
  stalled.proc.kill('SIGCONT')
  const lost = await t.throwsAsync(stalled.call('save', { session: 'RemoteAuth-s', path: zips[2] }))
  t.is(lost.code, 'ERR_LEASE_LOST')
  t.is((await t.throwsAsync(stalled.call('renewLease', 'RemoteAuth-s', token, { ttlMs: 1_000 }))).code, 'ERR_LEASE_LOST')
  t.is((await t.throwsAsync(stalled.call('delete', { session: 'RemoteAuth-s' }))).code, 'ERR_LEASE_LOST')
  t.is((await owner.listSessions())[0].savedAt, ours.savedAt)
})

/** `rotate-key` from the CLI held open after it read the session and wrote its re-encrypted copy aside: it waits for
 * the session's lock, which the test holds as the service's save or delete holds it for its rename or unlink, and
 * `meanwhile()` makes that rename or unlink. (A stopped waiter cannot be used instead: some kernels hand the lock to
 * a waiter that is stopped.) Resolves the CLI's JSON report. */
async function rotateAround(t, dir, session, env, meanwhile) {
  const lock = path.join(dir, `.lock-${session}`)
  const held = await holdLock(t, lock)
  const cli = spawn(process.execPath, [bin, 'rotate-key', '--json'], { env: { PATH: process.env.PATH, SESSION_STORE_DIR: dir, ...env } })
  const done = exitOf(cli)
  t.teardown(() => cli.kill('SIGKILL'))
  await waitsForLock(cli.pid, lock) // it read the old copy and wrote the new one aside; only the swap is left
  await meanwhile()
  await held.release()
  const { code, stdout, stderr } = await done
  t.is(code, 0, stderr)
  return JSON.parse(stdout)
}

test('rotate-key beside a running service: a save made meanwhile wins, a logout meanwhile stays logged out', async (t) => {
  const root = tempDir(t)
  const dir = path.join(root, 'store')
  const [oldKey, newKey] = [0, 1].map(() => crypto.randomBytes(32).toString('base64'))
  const service = new RustStore({ dir, encryption: { key: oldKey }, saveErrors: 'reject' })
  // The service's next save, made whole beside the store; its rename into the directory lands under the lock.
  const elsewhere = new RustStore({ dir: path.join(root, 'elsewhere'), encryption: { key: oldKey }, saveErrors: 'reject' })
  const zips = await Promise.all([1, 2, 3].map((seed) => profileZip(t, seed)))
  const env = { SESSION_ENCRYPTION_KEY: newKey, SESSION_ENCRYPTION_PREVIOUS_KEYS: oldKey }
  const file = path.join(dir, 'RemoteAuth-r.wwrs')

  await service.save({ session: 'RemoteAuth-r', path: zips[0] })
  const saved = await elsewhere.save({ session: 'RemoteAuth-r', path: zips[1] })
  const report = await rotateAround(t, dir, 'RemoteAuth-r', env, () => {
    fs.copyFileSync(path.join(root, 'elsewhere', 'RemoteAuth-r.wwrs'), `${file}.saving`)
    fs.renameSync(`${file}.saving`, file)
  })
  t.is(report.primary.copied, 0, 'the copy it read was gone: nothing re-encrypted over the new save')
  const [listed] = await service.listSessions()
  t.is(listed.savedAt, saved.savedAt, "the service's save stands")
  t.is(listed.storedBytes, saved.storedBytes)

  await service.save({ session: 'RemoteAuth-r', path: zips[2] })
  await rotateAround(t, dir, 'RemoteAuth-r', env, () => fs.unlinkSync(file))
  t.false(await service.sessionExists({ session: 'RemoteAuth-r' }), 'still logged out')
  t.deepEqual(await service.listSessions(), [])
  // Unhindered, it rotates.
  await service.save({ session: 'RemoteAuth-r', path: zips[2] })
  const { code, stdout } = await exitOf(spawn(process.execPath, [bin, 'rotate-key', '--json'], { env: { PATH: process.env.PATH, SESSION_STORE_DIR: dir, ...env } }))
  t.is(code, 0)
  t.is(JSON.parse(stdout).primary.copied, 1)
})
