// A seeded mutation test of saveProfile: generated profiles mutated with links (to files, folders, outside,
// /dev/zero), FIFOs, sockets, unreadable files, long and odd names, and files changing or vanishing during the
// read. Every outcome is a coded error with the stored copy unchanged, or the restore gives back exactly what a
// correct reader keeps (the regular files and folders under the kept folders, no link followed).
// PROFILE_FUZZ_CASES / PROFILE_FUZZ_SEED for deep runs (`npm run fuzz:profile`).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, tempDir } from './helpers.mjs'

const CASES = Number(process.env.PROFILE_FUZZ_CASES ?? 40)
const SEED = Number(process.env.PROFILE_FUZZ_SEED ?? 19)
const KEPT = ['Default/IndexedDB', 'Default/Local Storage']
const IDB = 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb'
const LS = 'Default/Local Storage/leveldb'
const ROOT = process.getuid?.() === 0

function rng(seed) {
  let x = seed >>> 0 || 1
  return (n) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
}

/** What a correct reader keeps of `root`: every folder and regular file under the kept folders. */
function keptTree(root) {
  const out = {}
  const walk = (rel) => {
    const st = fs.lstatSync(path.join(root, rel))
    if (st.isDirectory()) {
      out[`${rel}/`] = true
      for (const name of fs.readdirSync(path.join(root, rel))) walk(`${rel}/${name}`)
    } else out[rel] = fs.readFileSync(path.join(root, rel)).toString('base64')
  }
  for (const keep of KEPT) if (fs.existsSync(path.join(root, keep))) walk(keep)
  out['Default/'] = true
  return out
}

/** Every folder and file below `root`. */
function tree(root) {
  const out = {}
  for (const rel of fs.readdirSync(root, { recursive: true })) {
    const st = fs.lstatSync(path.join(root, rel))
    const key = rel.split(path.sep).join('/')
    if (st.isDirectory()) out[`${key}/`] = true
    else out[key] = fs.readFileSync(path.join(root, rel)).toString('base64')
  }
  return out
}

const pick = (next, list) => list[next(list.length)]
const keptFolder = (next) => pick(next, [IDB, LS, 'Default/IndexedDB', 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/1/00'])
const replaceable = (next) => pick(next, [`${IDB}/CURRENT`, `${IDB}/000004.log`, `${IDB}/MANIFEST-000001`, `${LS}/CURRENT`, `${LS}/000003.log`, `${IDB}/000005.ldb`])

/** A file of the profile that is still a regular file (never a link: a chmod or truncate must not reach /dev). */
function regular(p, next) {
  const file = path.join(p, replaceable(next))
  try {
    if (fs.lstatSync(file).isFile() && fs.realpathSync(file) === file) return file
  } catch {}
  return null
}

function replaceWith(p, file, make) {
  fs.rmSync(path.join(p, file), { force: true })
  make(path.join(p, file))
}

/**
 * Mutations: each changes the profile `p` and says what the save must do: `refuse` (a coded ERR_ARCHIVE_ENTRY),
 * `coded` (any coded error but ERR_INTERNAL), or nothing (stored exactly as the kept tree then is).
 */
const MUTATIONS = {
  linkToFile: (p, next) => (fs.symlinkSync(path.join(p, `${LS}/CURRENT`), path.join(p, keptFolder(next), 'l')), 'refuse'),
  linkToFolder: (p, next) => (fs.symlinkSync('..', path.join(p, keptFolder(next), 'up')), 'refuse'),
  linkOutside: (p, next) => (fs.symlinkSync('/etc/hostname', path.join(p, keptFolder(next), 'host')), 'refuse'),
  replacedByLink: (p, next) => (replaceWith(p, replaceable(next), (f) => fs.symlinkSync('/dev/zero', f)), 'refuse'),
  danglingLink: (p, next) => (fs.symlinkSync('/nonexistent', path.join(p, keptFolder(next), 'gone')), 'refuse'),
  fifo: (p, next) => (execFileSync('mkfifo', [path.join(p, keptFolder(next), 'fifo')]), 'refuse'),
  replacedByFifo: (p, next) => (replaceWith(p, replaceable(next), (f) => execFileSync('mkfifo', [f])), 'refuse'),
  socket: async (p, next, t) => {
    const server = net.createServer().listen(path.join(p, keptFolder(next), 'sock'))
    await new Promise((resolve) => server.once('listening', resolve))
    t.teardown(() => server.close())
    return 'refuse'
  },
  linkedDefault: (p) => {
    fs.renameSync(path.join(p, 'Default'), `${p}-elsewhere`)
    fs.symlinkSync(`${p}-elsewhere`, path.join(p, 'Default'))
    return 'refuse'
  },
  linkedKeptFolder: (p, next) => {
    const keep = pick(next, KEPT)
    fs.renameSync(path.join(p, keep), `${p}-kept`)
    fs.symlinkSync(`${p}-kept`, path.join(p, keep))
    return 'refuse'
  },
  // Outside the kept folders: never looked at, so never refused.
  specialsOutside: (p) => {
    fs.mkdirSync(path.join(p, 'Default/Cache'), { recursive: true })
    fs.symlinkSync('/dev/zero', path.join(p, 'Default/Cache/zero'))
    execFileSync('mkfifo', [path.join(p, 'Default/Cache/fifo')])
    fs.symlinkSync('host-1', path.join(p, 'SingletonLock'))
  },
  // Root reads a mode-000 file anyway (CAP_DAC_OVERRIDE): then it is stored; anyone else gets a coded error.
  unreadable: (p, next) => {
    const file = regular(p, next)
    if (!file) return
    fs.chmodSync(file, 0o000)
    return ROOT ? undefined : 'coded'
  },
  longName: (p, next) => fs.writeFileSync(path.join(p, keptFolder(next), 'n'.repeat(200 + next(56))), 'long'),
  oddName: (p, next) => fs.writeFileSync(path.join(p, keptFolder(next), pick(next, ['sp ace', 'ünï', '#%&', 'a.b.c', '-x'])), 'odd'),
  emptyFile: (p, next) => fs.writeFileSync(path.join(p, keptFolder(next), 'empty'), ''),
  emptyFolder: (p, next) => fs.mkdirSync(path.join(p, keptFolder(next), 'hollow')),
  truncated: (p, next) => {
    const file = regular(p, next)
    if (file) fs.truncateSync(file, next(fs.statSync(file).size + 1))
  },
  deepFolder: (p, next) => {
    const deep = path.join(p, keptFolder(next), ...Array.from({ length: 8 + next(20) }, (_, i) => `d${i}`))
    fs.mkdirSync(deep, { recursive: true })
    fs.writeFileSync(path.join(deep, 'leaf'), 'deep')
  },
}

/** Changes files while the save runs: appends to one, removes and writes back another. */
function liveChanges(p, next) {
  const grows = path.join(p, 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/1/00/5')
  const flickers = path.join(p, `${LS}/flicker`)
  fs.writeFileSync(flickers, 'here')
  const before = { grows: fs.readFileSync(grows) }
  let on = true
  const step = () => {
    if (!on) return
    fs.appendFileSync(grows, Buffer.alloc(1 + next(3000), 7))
    if (fs.existsSync(flickers)) fs.rmSync(flickers)
    else fs.writeFileSync(flickers, 'here')
    setImmediate(step)
  }
  setImmediate(step)
  return { stop: () => (on = false), grows: path.relative(p, grows).split(path.sep).join('/'), flickers: `${LS}/flicker`, before }
}

test(`saveProfile: ${CASES} seeded mutated profiles (seed ${SEED}), each refused with a code or stored exactly`, async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth') })
  const names = Object.keys(MUTATIONS)
  const outcomes = { refused: 0, stored: 0, changing: 0 }
  for (let i = 0; i < CASES; i++) {
    const next = rng(SEED * 7919 + i)
    const session = `RemoteAuth-f${i}`
    const p = path.join(root, 'auth', session)
    makeProfile(p, { seed: SEED + i, junk: false })
    await store.saveProfile({ session, dir: p })
    const good = keptTree(p)
    const applied = Array.from({ length: 1 + next(3) }, () => pick(next, names))
    const label = `case ${i} (PROFILE_FUZZ_SEED=${SEED}): ${applied.join(', ')}`
    let want
    for (const name of applied) {
      try {
        const says = await MUTATIONS[name](p, next, t)
        if (says === 'refuse' || (says === 'coded' && want !== 'refuse')) want = says
      } catch (err) {
        if (err.code !== 'EEXIST' && err.code !== 'ENOENT') throw err // the same mutation twice, or on a moved folder
      }
    }
    const live = !want && next(4) === 0 ? liveChanges(p, next) : null
    const result = await store.saveProfile({ session, dir: p }).then(() => null, (err) => err)
    live?.stop()
    const back = path.join(root, 'back', session)
    if (result) {
      t.not(result.code, 'ERR_INTERNAL', `${label}: ${result.message}`)
      t.truthy(result.code, `${label}: coded`)
      if (want === 'refuse') t.is(result.code, 'ERR_ARCHIVE_ENTRY', `${label}: ${result.message}`)
      else if (live) t.is(result.code, 'ERR_PROFILE_CHANGING', `${label}: ${result.message}`)
      else if (!want) t.fail(`${label}: refused a profile a correct reader stores: ${result.code} ${result.message}`)
      await store.restoreProfile({ session, dir: back })
      t.deepEqual(tree(back), good, `${label}: the stored copy is the good one, unchanged`)
      outcomes[result.code === 'ERR_PROFILE_CHANGING' ? 'changing' : 'refused']++
    } else {
      t.falsy(want, `${label}: stored although it must be refused`)
      await store.restoreProfile({ session, dir: back })
      const got = tree(back)
      const expected = keptTree(p)
      if (live) {
        // The growing file as some prefix present during the read, the flickering one there whole or not at all.
        const grown = Buffer.from(got[live.grows] ?? '', 'base64')
        t.true(grown.length >= live.before.grows.length && grown.equals(Buffer.from(expected[live.grows], 'base64').subarray(0, grown.length)), `${label}: a prefix`)
        t.true(got[live.flickers] === undefined || got[live.flickers] === Buffer.from('here').toString('base64'), `${label}: whole or absent`)
        for (const f of [live.grows, live.flickers]) delete got[f], delete expected[f]
      }
      t.deepEqual(got, expected, `${label}: exactly the kept tree`)
      outcomes.stored++
    }
    fs.rmSync(path.join(root, 'back'), { recursive: true, force: true })
    fs.rmSync(p, { recursive: true, force: true })
    for (const extra of ['-elsewhere', '-kept']) fs.rmSync(p + extra, { recursive: true, force: true })
  }
  t.log(outcomes)
  if (CASES >= 20) t.true(outcomes.refused > 0 && outcomes.stored > 0, 'both outcomes were exercised')
})
