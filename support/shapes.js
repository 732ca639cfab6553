'use strict'
// Generated kept trees (what RemoteAuth zips: Default/IndexedDB and Default/Local Storage) of many shapes, for
// property tests of the restore path. Deterministic for a seed.

const fs = require('node:fs')
const path = require('node:path')

/** mulberry32: a small seeded generator; `int(n)` is in [0, n). */
function random(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { next, int: (n) => Math.floor(next() * n), chance: (p) => next() < p }
}

const IDB = 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb'
const BLOBS = 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob'
const LOCAL = 'Default/Local Storage/leveldb'
const ODD_NAMES = ['ñandú é.ldb', '日本 語.log', 'with space', 'Ünïcödé', 'emoji 🙂 name', 'a b c d']

/** `n` bytes: incompressible, text-like (deflate finds repeats), or zeros. */
function content(rnd, n) {
  switch (rnd.int(3)) {
    case 0:
      return randomBytes(rnd, n)
    case 1: {
      const word = `{"id":"${rnd.int(1e9)}","body":"${randomBytes(rnd, 24).toString('base64')}"}`
      return Buffer.from(word.repeat(Math.ceil(n / word.length) || 1)).subarray(0, n)
    }
    default:
      return Buffer.alloc(n)
  }
}

function randomBytes(rnd, n) {
  const buf = Buffer.alloc(n + 4)
  for (let i = 0; i < n; i += 4) buf.writeUInt32LE(rnd.int(2 ** 32), i)
  return buf.subarray(0, n)
}

/** A size in bytes: mostly small, some tens of KB, now and then empty. */
function size(rnd) {
  if (rnd.chance(0.1)) return 0
  if (rnd.chance(0.9)) return rnd.int(2048)
  return 2048 + rnd.int(160 * 1024)
}

/** What a shape can be made of; `makeShape(seed, [family])` forces one, so a short run still covers them all. */
const FAMILIES = ['tiny-run', 'deep', 'odd-names', 'huge', 'empty-dir', 'single-file', 'many', 'small-only']

/**
 * One kept tree: `{ files: { rel: Buffer }, dirs: [rel], families: [name] }` (dirs: empty folders). Shapes vary in
 * file count (1–500), sizes (0 B – 4 MB), depth, names (spaces, non-ASCII), a long run of tiny files written last,
 * one huge file; `force` names families (`FAMILIES`) the shape must have.
 */
function makeShape(seed, force = []) {
  const rnd = random(seed)
  const forced = (family, p) => rnd.chance(p) || force.includes(family)
  const small = force.includes('small-only')
  const files = {}
  const dirs = []
  // A long run of tiny files at the end of the zip is what unzipper's race drops.
  const tiny = forced('tiny-run', 0.3) && !force.includes('single-file') ? 50 + rnd.int(150) : 0
  let count = Math.min(1 + Math.floor(Math.exp(rnd.next() * Math.log(500))), 500 - tiny)
  if (force.includes('single-file')) count = 1
  if (force.includes('many')) count = Math.max(count, 300 - tiny)
  const deep = forced('deep', 0.2)
  const odd = forced('odd-names', 0.3)
  const base = () => [IDB, LOCAL, BLOBS][rnd.int(3)]
  for (let i = 0; i < count; i++) {
    let dir = base()
    if (deep) for (let d = rnd.int(10); d > 0; d--) dir += `/d${rnd.int(4)}`
    const name = odd && (rnd.chance(0.3) || i === 0) ? `${ODD_NAMES[rnd.int(ODD_NAMES.length)]} ${i}` : `${String(i).padStart(6, '0')}.ldb`
    files[`${dir}/${name}`] = content(rnd, small ? Math.min(size(rnd), 60 * 1024) : size(rnd))
  }
  for (let i = tiny; i > 0; i--) files[`${LOCAL}/zz-tiny/${i}`] = content(rnd, rnd.int(100))
  const huge = forced('huge', 0.15) && !small && !force.includes('single-file')
  if (huge) files[`${IDB}/huge.log`] = content(rnd, 1024 * 1024 + rnd.int(3 * 1024 * 1024))
  if (forced('empty-dir', 0.2)) dirs.push(`${BLOBS}/empty-${seed}`)
  const sizes = Object.values(files).map((data) => data.length)
  const families = [
    tiny && 'tiny-run',
    deep && 'deep',
    odd && 'odd-names',
    huge && 'huge',
    dirs.length && 'empty-dir',
    count + tiny === 1 && 'single-file',
    count + tiny >= 300 && 'many',
    sizes.every((n) => n < 64 * 1024) && 'small-only',
  ].filter(Boolean)
  return { files, dirs, families }
}

/** Writes a shape under `profile` (a user-data-dir), with junk outside the kept folders. */
function writeShape(profile, { files, dirs }) {
  for (const [rel, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(profile, rel)), { recursive: true })
    fs.writeFileSync(path.join(profile, rel), data)
  }
  for (const rel of dirs) fs.mkdirSync(path.join(profile, rel), { recursive: true })
  fs.mkdirSync(path.join(profile, 'Default/Cache'), { recursive: true })
  fs.writeFileSync(path.join(profile, 'Default/Cache/data_1'), Buffer.alloc(1000, 1))
}

/** The files of `shape` that are missing or differ under `profile`. */
function differences(profile, { files }) {
  return Object.entries(files)
    .filter(([rel, data]) => {
      try {
        return !fs.readFileSync(path.join(profile, rel)).equals(data)
      } catch {
        return true
      }
    })
    .map(([rel]) => rel)
}

/** Every file and folder under `dir`, relative and sorted, folders with a trailing `/` ([] when it is missing). */
function tree(dir) {
  const out = []
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) {
        out.push(`${p}/`)
        walk(p)
      } else out.push(p)
    }
  }
  try {
    walk('')
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  return out.sort()
}

/** The tree a restore of `shape` must give back: its files, its empty folders and every folder above them. */
function savedTree({ files, dirs = [] }) {
  const out = new Set()
  for (const rel of [...Object.keys(files), ...dirs.map((d) => `${d}/x`)]) {
    const parts = rel.split('/')
    for (let i = 1; i < parts.length; i++) out.add(`${parts.slice(0, i).join('/')}/`)
  }
  for (const rel of Object.keys(files)) out.add(rel)
  return [...out].sort()
}

/** What `tree(profile)` has that `expected` lacks, and the reverse. */
function treeDifference(profile, expected) {
  const found = tree(profile)
  const want = new Set(expected)
  const have = new Set(found)
  return { extra: found.filter((p) => !want.has(p)), missing: expected.filter((p) => !have.has(p)) }
}

/** Waits until nothing under `dir` changes for `quietMs` (bounded), so a late write is not taken for a loss. */
async function settle(dir, quietMs = 200, maxMs = 5000) {
  const snapshot = () => {
    const out = []
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name)
        if (e.isDirectory()) walk(p)
        else out.push(`${p}:${fs.statSync(p).size}`)
      }
    }
    try {
      walk(dir)
    } catch {}
    return out.join('\n')
  }
  const deadline = Date.now() + maxMs
  let last = snapshot()
  let since = Date.now()
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25))
    const now = snapshot()
    if (now !== last) [last, since] = [now, Date.now()]
    else if (Date.now() - since >= quietMs) return
  }
}

module.exports = { FAMILIES, makeShape, writeShape, differences, settle, tree, savedTree, treeDifference }
