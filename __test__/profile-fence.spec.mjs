// restoreProfile / saveProfile are fenced: a dir that is (or holds, or links to) the cwd, dataPath or the store's
// folder is refused and they survive; a linked dir is restored through; restores of one dir take turns, in one
// process and across processes, and a killed holder of the lock blocks no one.
import { fork, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, require, tempDir } from './helpers.mjs'

const CHILD = require.resolve('../support/restore-profile-child.js')

/** Every file and folder below `root`: `{ 'rel/': true, 'rel/file': Buffer }`. */
function tree(root) {
  const out = {}
  for (const rel of fs.readdirSync(root, { recursive: true })) {
    const full = path.join(root, rel)
    const key = rel.split(path.sep).join('/')
    const st = fs.lstatSync(full)
    if (st.isDirectory()) out[`${key}/`] = true
    else out[key] = st.isFile() ? fs.readFileSync(full).toString('base64') : `special ${st.mode}`
  }
  return out
}

test.serial('restoreProfile refuses the cwd, dataPath, the store and what holds or links to them; all survive', async (t) => {
  const root = tempDir(t)
  const app = path.join(root, 'app')
  fs.mkdirSync(app)
  const cwd = process.cwd()
  process.chdir(app)
  t.teardown(() => process.chdir(cwd))
  const store = new RustStore() // the defaults: ./.wwebjs_store, dataPath ./.wwebjs_auth
  const profile = path.join('.wwebjs_auth', 'RemoteAuth-a')
  makeProfile(profile, { seed: 2, junk: false })
  fs.writeFileSync('app.js', 'the app')
  await store.saveProfile({ session: 'RemoteAuth-a', dir: profile })
  fs.symlinkSync(app, path.join(root, 'to-app'))
  fs.symlinkSync('..', path.join(app, '.wwebjs_auth', 'up'))
  const before = tree(app)
  t.true(Object.keys(before).some((f) => f.startsWith('.wwebjs_store/')), 'the embedded store is in the cwd')
  const dirs = ['', '.', './', app, '..', root, '.wwebjs_auth', '.wwebjs_store', '.wwebjs_store/RemoteAuth-a',
    path.join(root, 'to-app'), '.wwebjs_auth/up', 'missing/..']
  for (const dir of dirs) {
    const err = await t.throwsAsync(store.restoreProfile({ session: 'RemoteAuth-a', dir }), undefined, `dir ${JSON.stringify(dir)}`)
    t.is(err.code, 'ERR_INVALID_ARG', `${JSON.stringify(dir)}: ${err.message}`)
  }
  for (const dir of ['', '.', app, '..', '.wwebjs_store', path.join(root, 'to-app')]) {
    const err = await t.throwsAsync(store.saveProfile({ session: 'RemoteAuth-a', dir }))
    t.is(err.code, 'ERR_INVALID_ARG', `save ${JSON.stringify(dir)}: ${err.message}`)
  }
  t.deepEqual(tree(app), before, 'the cwd, the store and the profile are exactly as they were')
  await store.restoreProfile({ session: 'RemoteAuth-a', dir: profile }) // and the real profile still restores
  t.true(fs.existsSync('app.js'))
})

test('a dir that is a link is restored through: the target gets the profile, the link stays a link', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth') })
  const volume = path.join(root, 'volume', 'RemoteAuth-v')
  const kept = makeProfile(volume, { seed: 5, junk: false })
  fs.mkdirSync(path.join(root, 'auth'))
  const link = path.join(root, 'auth', 'RemoteAuth-v')
  fs.symlinkSync(volume, link)
  await store.saveProfile({ session: 'RemoteAuth-v', dir: link })
  const saved = tree(volume)
  fs.writeFileSync(path.join(volume, 'Default/IndexedDB/after-the-save'), 'must go')
  await store.restoreProfile({ session: 'RemoteAuth-v', dir: link })
  t.true(fs.lstatSync(link).isSymbolicLink(), 'still a link')
  t.is(fs.readlinkSync(link), volume)
  t.deepEqual(tree(volume), saved, 'the target holds exactly the saved tree')
  t.true(Object.keys(kept).every((f) => fs.existsSync(path.join(link, f))))
  t.deepEqual(fs.readdirSync(path.join(root, 'volume')), ['RemoteAuth-v'], 'nothing left beside the target')
  t.deepEqual(fs.readdirSync(path.join(root, 'auth')), ['RemoteAuth-v'])
})

async function saved(t, name) {
  const root = tempDir(t)
  const storeDir = path.join(root, 'store')
  const auth = path.join(root, 'auth')
  const store = new RustStore({ dir: storeDir, dataPath: auth })
  const profile = path.join(auth, name)
  makeProfile(profile, { seed: 7, junk: false })
  await store.saveProfile({ session: name, dir: profile })
  return { root, storeDir, auth, store, profile, want: tree(profile) }
}

test('three restores of one dir at once, five rounds, in one process: each succeeds in turn', async (t) => {
  const { root, storeDir, auth, store, profile, want } = await saved(t, 'RemoteAuth-c')
  const other = new RustStore({ dir: storeDir, dataPath: auth })
  for (let round = 0; round < 5; round++) {
    fs.writeFileSync(path.join(profile, 'Default/IndexedDB/stray'), `round ${round}`)
    const results = await Promise.allSettled([store, other, store].map((s) => s.restoreProfile({ session: 'RemoteAuth-c', dir: profile })))
    t.deepEqual(results.map((r) => r.status === 'fulfilled' ? 'ok' : `${r.reason.code} ${r.reason.message}`), ['ok', 'ok', 'ok'], `round ${round}`)
    t.deepEqual(tree(profile), want, `round ${round}: exactly the saved tree`)
    t.deepEqual(fs.readdirSync(auth), ['RemoteAuth-c'], `round ${round}: nothing left beside it`)
  }
  t.truthy(root)
})

function childRestore(storeDir, session, profile) {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [storeDir, session, profile], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, stderr }))
  })
}

test('three processes restoring one dir at once, five rounds: each succeeds in turn', async (t) => {
  const { storeDir, auth, profile, want } = await saved(t, 'RemoteAuth-p')
  for (let round = 0; round < 5; round++) {
    fs.writeFileSync(path.join(profile, 'Default/IndexedDB/stray'), `round ${round}`)
    const runs = await Promise.all([0, 1, 2].map(() => childRestore(storeDir, 'RemoteAuth-p', profile)))
    t.deepEqual(runs, [0, 1, 2].map(() => ({ code: 0, stderr: '' })), `round ${round}`)
    t.deepEqual(tree(profile), want, `round ${round}: exactly the saved tree`)
    t.deepEqual(fs.readdirSync(auth), ['RemoteAuth-p'], `round ${round}: nothing left beside it`)
  }
})

test('a restore waits for another process holding the dir, and a killed holder blocks nothing', async (t) => {
  const { store, auth, profile, want } = await saved(t, 'RemoteAuth-k')
  fs.writeFileSync(path.join(profile, 'Default/IndexedDB/stray'), 'old')
  const lock = path.join(auth, '.RemoteAuth-k.lock')
  // flock(1) holding the lock file itself (-o: not passed on to sleep), as a restoring process would.
  const holder = spawn('flock', ['-o', lock, 'sleep', '600'], { stdio: 'ignore' })
  t.teardown(() => holder.kill('SIGKILL'))
  while (!fs.existsSync(lock)) await new Promise((resolve) => setTimeout(resolve, 20))
  await new Promise((resolve) => setTimeout(resolve, 100)) // flock(1) creates the file, then locks it
  const restore = store.restoreProfile({ session: 'RemoteAuth-k', dir: profile })
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.is(fs.readFileSync(path.join(profile, 'Default/IndexedDB/stray'), 'utf8'), 'old', 'not replaced while another holds it')
  holder.kill('SIGKILL') // dies holding it: the system drops the lock
  await restore
  t.deepEqual(tree(profile), want)
  t.deepEqual(fs.readdirSync(auth), ['RemoteAuth-k'], 'the lock file went with the restore')
})
