// Seeded mutation test of the save path through the real parts (issue 19): RemoteAuth-style zips (archiver) of
// generated profiles, mutated at random (support/zip-bytes.js), saved into `new RustStore()` defaults. Every
// outcome is a coded error with the previous good copy still restoring whole through plain RemoteAuth's unzip,
// or an accepted save whose RemoteAuth restore gives exactly the files the zip really holds (read by our own JS
// reader with node's zlib, not by the code under test). Most cases run Rust-side (src/archive/tests/mutation.rs);
// `FUZZ_CASES=N npm run fuzz` runs N there and N/10 here. A failing seed becomes a fixed input in REGRESSIONS.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { RustStore, require, tempDir, remoteAuth, waitForFiles } from './helpers.mjs'

const { writeZip } = require('../support/zip-profile.js')
const { reallyHolds, mutate, rng } = require('../support/zip-bytes.js')
const { settle } = require('../support/shapes.js')

const CASES = process.env.FUZZ_CASES ? Math.ceil(Number(process.env.FUZZ_CASES) / 10) : 400
const SEED = Number(process.env.FUZZ_SEED ?? 19)
/** Seeds (case numbers under SEED 19 or their own) that once found a bug. */
const REGRESSIONS = []
const SESSION = 'RemoteAuth-m'
const PAD = 'wwebjs-rust-store.pad'
/** Refused saves whose good copy is restored and compared (every one would cost a restore each). */
const CHECK_REFUSED_EVERY = 8

function profile(r) {
  const files = {}
  const n = 3 + r.int(25)
  for (let i = 0; i < n; i++) {
    const dir = ['Default/IndexedDB/db.leveldb', 'Default/Local Storage/leveldb', 'Default/IndexedDB/blob/1/00'][r.int(3)]
    const size = r.next() < 0.1 ? 70_000 + r.int(50_000) : r.int(6000)
    const body = Buffer.alloc(size)
    for (let j = 0; j < size; j++) body[j] = r.next() < 0.7 ? 97 + (j % 7) : r.int(256)
    files[`${dir}/${String(i).padStart(6, '0')}.ldb`] = body
  }
  files['Default/Cache/data_1'] = Buffer.alloc(3000, 1)
  return files
}

function tree(root) {
  const out = new Map()
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name !== PAD) out.set(path.relative(root, p).split(path.sep).join('/'), fs.readFileSync(p))
    }
  }
  walk(root)
  return out
}

const same = (a, b) => a.size === b.size && [...a].every(([k, v]) => b.has(k) && b.get(k).equals(v))

test.serial('mutated RemoteAuth zips are refused with a code (good copy intact) or stored exactly', async (t) => {
  const root = tempDir(t)
  const cwd = process.cwd()
  process.chdir(root)
  t.teardown(() => process.chdir(cwd))
  const dataPath = path.join(root, 'auth')
  fs.mkdirSync(dataPath)
  const errors = []
  const store = new RustStore({ dataPath, onError: (err) => errors.push(err) })
  const zipPath = path.join(dataPath, `${SESSION}.zip`)

  const r = rng(SEED)
  const bases = []
  for (let i = 0; i < 3; i++) {
    const files = profile(r)
    await writeZip(zipPath, (archive) => {
      for (const [name, data] of Object.entries(files)) archive.append(data, { name })
    })
    bases.push(fs.readFileSync(zipPath))
  }
  await store.save({ session: SESSION })
  let current = reallyHolds(bases[2])
  t.truthy(current)

  const restoresAs = async (expected, label) => {
    const { auth } = remoteAuth('whatsapp-web.js', { store, clientId: 'm', dataPath })
    await auth.beforeBrowserInitialized()
    await waitForFiles(auth.userDataDir, Object.fromEntries(expected))
    await settle(auth.userDataDir, 60)
    const got = tree(auth.userDataDir)
    if (!same(got, expected)) t.fail(`${label}: restored ${[...got.keys()].join(', ')}; expected ${[...expected.keys()].join(', ')}`)
  }

  let [accepted, refused] = [0, 0]
  const cases = [...REGRESSIONS, ...Array.from({ length: CASES }, (_, i) => SEED * 1_000_003 + i)]
  for (const c of cases) {
    const cr = rng(c)
    let zip = bases[cr.int(bases.length)]
    const done = []
    for (let k = 1 + cr.int(3); k > 0 && zip.length > 0; k--) {
      let what
      ;[zip, what] = mutate(zip, cr)
      done.push(what)
    }
    const label = `case ${c} (${done.join('; ')})`
    fs.writeFileSync(zipPath, zip)
    const expected = reallyHolds(zip)
    // Defaults: a failed save resolves null and goes to onError.
    const saved = await store.save({ session: SESSION })
    if (saved === null) {
      const err = errors.pop()
      if (!/^ERR_/.test(err?.code ?? '') || err.code === 'ERR_INTERNAL') t.fail(`${label}: ${err?.code} ${err?.message}`)
      refused++
      if (refused % CHECK_REFUSED_EVERY === 0) await restoresAs(current, `${label}, the good copy`)
      continue
    }
    accepted++
    if (!expected) {
      t.fail(`${label}: accepted a zip whose kept files do not all read back`)
      continue
    }
    current = expected
    await restoresAs(current, label)
  }
  await restoresAs(current, 'at the end')
  t.log(`${accepted} accepted, ${refused} refused`)
  t.true(accepted > 0 && refused > 0)
})
