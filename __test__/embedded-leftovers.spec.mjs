// The embedded store beside other processes on one host: restoreProfile against a live browser and another
// process's restore, leftovers of killed writes cleaned once no live process owns them, and a store directory
// shared between root (the CLI) and the service's user. Steps are held open by locks the test holds, never timing.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, tempDir, zipProfile } from './helpers.mjs'
import { holdLock, storeChild, waitsForLock } from './processes.mjs'

const bin = path.resolve('bin/wwebjs-rust-store.js')
const cli = (args, env) => spawnSync(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
const sameFiles = (t, dir, kept) => {
  for (const [rel, data] of Object.entries(kept)) t.true(fs.readFileSync(path.join(dir, rel)).equals(data), rel)
}
const deadPid = () => spawnSync('true').pid // reaped: the pid names no process now
const aged = (file) => fs.utimesSync(file, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000))

test('restoreProfile refuses a folder a live browser holds; a crashed browser’s lock does not block', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth') })
  const stored = makeProfile(path.join(root, 'source'), { junk: false, seed: 1 })
  await store.saveProfile({ session: 'RemoteAuth-b', dir: path.join(root, 'source') })
  const profile = path.join(root, 'auth', 'RemoteAuth-b')
  const live = makeProfile(profile, { junk: false, seed: 2 })
  const lock = path.join(profile, 'SingletonLock')
  fs.symlinkSync(`${os.hostname()}-${process.pid}`, lock)
  const err = await t.throwsAsync(store.restoreProfile({ session: 'RemoteAuth-b', dir: profile }))
  t.is(err.code, 'ERR_PROFILE_IN_USE')
  sameFiles(t, profile, live) // the browser's files are all there
  t.true(fs.lstatSync(lock).isSymbolicLink())

  fs.unlinkSync(lock)
  fs.symlinkSync(`${os.hostname()}-${deadPid()}`, lock)
  await store.restoreProfile({ session: 'RemoteAuth-b', dir: profile })
  sameFiles(t, profile, stored)
})

test('a restore waiting for another process’s restore of the folder restores the newest copy; saveProfile waits too', async (t) => {
  const root = tempDir(t)
  const [dir, dataPath] = [path.join(root, 'store'), path.join(root, 'auth')]
  const store = new RustStore({ dir, dataPath })
  makeProfile(path.join(root, 'v1'), { junk: false, seed: 1 })
  const v2 = makeProfile(path.join(root, 'v2'), { junk: false, seed: 2 })
  await store.saveProfile({ session: 'RemoteAuth-c', dir: path.join(root, 'v1') })
  const profile = path.join(dataPath, 'RemoteAuth-c')
  fs.mkdirSync(dataPath, { recursive: true })
  const folderLock = path.join(dataPath, '.RemoteAuth-c.lock')

  const restorer = await storeChild(t, { dir, dataPath })
  let held = await holdLock(t, folderLock) // another process restoring the folder
  const restoring = restorer.call('restoreProfile', { session: 'RemoteAuth-c', dir: profile })
  await waitsForLock(restorer.pid, folderLock)
  await store.saveProfile({ session: 'RemoteAuth-c', dir: path.join(root, 'v2') }) // saved while it waits
  await held.release()
  await restoring
  sameFiles(t, profile, v2) // fetched once the folder was its own: the newer copy

  const saver = await storeChild(t, { dir, dataPath })
  held = await holdLock(t, folderLock)
  const saving = saver.call('saveProfile', { session: 'RemoteAuth-c', dir: profile })
  await waitsForLock(saver.pid, folderLock) // does not read the folder while it is being swapped
  await held.release()
  t.truthy((await saving).savedAt)
})

test('leftovers of killed writes are counted, then cleaned once no live process owns them', async (t) => {
  const root = tempDir(t)
  const [dir, dataPath] = [path.join(root, 'store'), path.join(root, 'auth')]
  makeProfile(path.join(root, 'p'), { junk: false, seed: 3 })
  await zipProfile(path.join(root, 'p'), path.join(root, 's.zip'))

  // A save killed (SIGKILL) once its copy is written aside and it waits to swap it in: held there by the lock.
  const store = new RustStore({ dir, dataPath })
  const sessionLock = path.join(dir, '.lock-RemoteAuth-k')
  const held = await holdLock(t, sessionLock)
  const saver = await storeChild(t, { dir, dataPath })
  const saving = saver.call('save', { session: 'RemoteAuth-k', path: path.join(root, 's.zip') }).catch(() => {})
  await waitsForLock(saver.pid, sessionLock)
  const [temp] = fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-'))
  t.truthy(temp, 'its copy lies aside')
  aged(path.join(dir, temp))
  t.is((await store.stats()).crashLeftovers.files, 0, 'a live writer owns it, however old')
  saver.proc.kill('SIGKILL')
  await new Promise((resolve) => saver.proc.once('exit', resolve))
  void saving
  await held.release()

  // What a killed extract and a killed restoreProfile leave in dataPath; one more temp file a live process holds.
  fs.mkdirSync(path.join(dataPath, '.RemoteAuth-x.restore-AbC12', 'Default'), { recursive: true })
  fs.writeFileSync(path.join(dataPath, '.RemoteAuth-x.restore-AbC12', 'Default', 'f'), 'x'.repeat(100))
  fs.writeFileSync(path.join(dataPath, '.RemoteAuth-x.lock'), '')
  fs.writeFileSync(path.join(dataPath, '.tmp-zip1'), 'z'.repeat(50))
  fs.writeFileSync(path.join(dataPath, '.tmp-live'), 'l')
  for (const f of ['.tmp-zip1', '.tmp-live']) aged(path.join(dataPath, f))
  const live = await holdLock(t, path.join(dataPath, '.tmp-live'))

  const stats = await store.stats()
  // The killed save's copy, the session lock file the test held, the restore folder, its lock, the extract zip.
  t.is(stats.crashLeftovers.files, 5)
  t.true(stats.crashLeftovers.bytes > 150)
  const env = { SESSION_STORE_DIR: dir, WWEBJS_DATA_PATH: dataPath }
  const dry = cli(['cleanup', '--json'], env)
  t.is(dry.status, 0, dry.stderr)
  t.is(JSON.parse(dry.stdout).crash_leftovers.length, 5)
  t.true(fs.existsSync(path.join(dir, temp)), 'a dry run removes nothing')
  const run = cli(['cleanup', '--execute', '--json'], env)
  t.is(run.status, 0, run.stderr)
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), [], 'the store directory is clean')
  t.deepEqual(fs.readdirSync(dataPath).sort(), ['.tmp-live'], 'only what a live process holds is left')
  await live.release()
  t.is((await new RustStore({ dir, dataPath }).stats()).crashLeftovers.files, 1, 'the released temp is now a leftover')

  // A restarted store writes and lists as before.
  const restarted = new RustStore({ dir, dataPath })
  await restarted.save({ session: 'RemoteAuth-k', path: path.join(root, 's.zip') })
  t.deepEqual((await restarted.listSessions()).map((s) => s.session), ['RemoteAuth-k'])
})

test('root beside a service run as nobody: files keep the directory’s owner, one unreadable session does not fail the listing, a loose directory is tightened', async (t) => {
  const root = tempDir(t)
  fs.chmodSync(root, 0o755)
  const dir = path.join(root, 'store')
  fs.mkdirSync(dir, { mode: 0o777 })
  fs.chmodSync(dir, 0o777)
  fs.chownSync(dir, 65534, 65534)
  makeProfile(path.join(root, 'p'), { junk: false, seed: 5 })
  await zipProfile(path.join(root, 'p'), path.join(root, 's.zip'))
  fs.chmodSync(path.join(root, 's.zip'), 0o644)

  const asRoot = new RustStore({ dir, dataPath: path.join(root, 'auth') }) // the CLI, run by root
  t.is(fs.statSync(dir).mode & 0o777, 0o700, 'tightened when opened')
  await asRoot.acquireLease('RemoteAuth-u', { ttlMs: 60_000 }).then((token) => asRoot.releaseLease('RemoteAuth-u', token))
  await asRoot.save({ session: 'RemoteAuth-u', path: path.join(root, 's.zip') })
  // And the CLI itself, run by root: `import --execute` of a folder of RemoteAuth zips.
  fs.mkdirSync(path.join(root, 'in'))
  fs.copyFileSync(path.join(root, 's.zip'), path.join(root, 'in', 'RemoteAuth-cli.zip'))
  const imported = cli(['import', '--from', path.join(root, 'in'), '--execute', '--json'], { SESSION_STORE_DIR: dir })
  t.is(imported.status, 0, imported.stderr)
  for (const f of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, f))
    t.deepEqual([st.uid, st.gid], [65534, 65534], `${f} belongs to the directory's owner`)
  }
  // One session nobody cannot read (written by hand as root).
  fs.copyFileSync(path.join(dir, 'RemoteAuth-u.wwrs'), path.join(dir, 'RemoteAuth-root.wwrs'))
  fs.chownSync(path.join(dir, 'RemoteAuth-root.wwrs'), 0, 0)
  fs.chmodSync(path.join(dir, 'RemoteAuth-root.wwrs'), 0o600)

  fs.mkdirSync(path.join(root, 'out'))
  fs.chownSync(path.join(root, 'out'), 65534, 65534)
  const service = spawnSync(
    'setpriv',
    ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', `
      const { RustStore } = require(${JSON.stringify(path.resolve('index.js'))})
      const store = new RustStore({ dir: ${JSON.stringify(dir)}, dataPath: ${JSON.stringify(path.join(root, 'out'))} })
      ;(async () => {
        const listed = (await store.listSessions()).map((s) => s.session)
        const info = await store.extract({ session: 'RemoteAuth-u', path: ${JSON.stringify(path.join(root, 'out', 'u.zip'))} })
        const denied = await store.extract({ session: 'RemoteAuth-root', path: 'x.zip' }).catch((e) => e.code)
        await store.save({ session: 'RemoteAuth-u', path: ${JSON.stringify(path.join(root, 's.zip'))} })
        console.log(JSON.stringify({ listed, extracted: info.session, denied }))
      })().catch((e) => { console.error(e.code, e.message); process.exit(1) })`],
    { encoding: 'utf8', cwd: path.join(root, 'out') },
  )
  t.is(service.status, 0, service.stderr)
  t.deepEqual(JSON.parse(service.stdout), { listed: ['RemoteAuth-cli', 'RemoteAuth-u'], extracted: 'RemoteAuth-u', denied: 'ERR_IO' })
})
