'use strict'
// A Chromium user-data-dir shaped like WhatsApp Web's: LevelDB-like IndexedDB and Local Storage that hold the
// login (what RemoteAuth keeps), and multi-MB caches that must never come back from a restore.
// Deterministic for a given seed, so runs compare.

const fs = require('node:fs')
const path = require('node:path')

function rng(seed) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
}

function randomBytes(next, n) {
  const buf = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i += 4) buf.writeUInt32LE(next(), Math.min(i, n - 4))
  return buf
}

// LevelDB-ish records: readable keys and metadata around encrypted (incompressible) message bodies; with `json`,
// each record is one JSON value whose body is base64 text, as part of WhatsApp's IndexedDB values are (deflate
// and fast zstd then store about the same, so a recompression buys nothing).
function leveldbLog(next, bytes, encryptedShare, json = false) {
  const parts = []
  let size = 0
  for (let i = 0; size < bytes; i++) {
    const body = randomBytes(next, 40 + (next() % 200))
    const meta = `{"id":"3EB0${(next() % 1e8).toString(16).padStart(8, '0')}","t":${1764000000 + i},"from":"${next() % 1e10}@c.us","ack":${next() % 4},"type":"chat"}`
    const encrypted = next() % 100 < encryptedShare * 100
    const record = json
      ? Buffer.from(`${meta.slice(0, -1)},"body":"${encrypted ? body.toString('base64') : ''}"}`)
      : encrypted
        ? Buffer.concat([Buffer.from(meta), body])
        : Buffer.from(meta.repeat(2))
    const header = Buffer.alloc(7)
    header.writeUInt16LE(record.length, 4)
    parts.push(header, record)
    size += header.length + record.length
  }
  return Buffer.concat(parts).subarray(0, bytes)
}

function write(file, data) {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  fs.writeFileSync(file, data, { mode: 0o600 })
}

const SIZES = {
  // ~230 KB kept in a ~20 MB profile: a fresh login.
  small: { indexedDb: 200_000, localStorage: 30_000, junk: 19_000_000 },
  // a few weeks of chats
  medium: { indexedDb: 600_000, localStorage: 40_000, junk: 19_000_000 },
  // a long history: IndexedDB grows into many MB of mostly encrypted data
  large: { indexedDb: 14_000_000, localStorage: 60_000, junk: 19_000_000 },
  // a fresh login whose values are JSON with base64 bodies: a ~160 KB zip where zstd -3 does not beat deflate
  json: { indexedDb: 260_000, localStorage: 30_000, junk: 19_000_000, json: true },
}

/**
 * Writes a profile under `root` and returns the relative paths of the files RemoteAuth keeps.
 * @param {string} root
 * @param {{ size?: 'small'|'medium'|'large'|'json', seed?: number, junk?: boolean }} [opts]
 */
function makeProfile(root, { size = 'small', seed = 1, junk = true } = {}) {
  const next = rng(seed)
  const spec = SIZES[size]
  const kept = {}
  const put = (rel, data) => {
    write(path.join(root, rel), data)
    kept[rel] = Buffer.from(data)
  }
  const idb = 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb'
  const ldbBytes = Math.floor(spec.indexedDb * 0.7)
  const chunk = 2_000_000
  for (let i = 0, n = 5; i * chunk < ldbBytes; i++, n += 2) {
    put(`${idb}/${String(n).padStart(6, '0')}.ldb`, leveldbLog(next, Math.min(chunk, ldbBytes - i * chunk), 0.8, spec.json))
  }
  put(`${idb}/000004.log`, leveldbLog(next, spec.indexedDb - ldbBytes, 0.6, spec.json))
  put(`${idb}/CURRENT`, 'MANIFEST-000001\n')
  put(`${idb}/LOCK`, '')
  put(`${idb}/LOG`, '2026/11/28-10:00:00.000 1 Recovering log #3\n2026/11/28-10:00:00.001 1 Delete type=0 #3\n')
  put(`${idb}/MANIFEST-000001`, randomBytes(next, 211))
  put('Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/1/00/5', randomBytes(next, 3000))
  const ls = 'Default/Local Storage/leveldb'
  put(`${ls}/000003.log`, leveldbLog(next, spec.localStorage, 0.3))
  put(`${ls}/CURRENT`, 'MANIFEST-000001\n')
  put(`${ls}/LOCK`, '')
  put(`${ls}/MANIFEST-000001`, randomBytes(next, 120))

  if (junk) {
    const share = spec.junk / 19
    write(path.join(root, 'Default/Service Worker/CacheStorage/abc/index'), randomBytes(next, Math.floor(share * 12)))
    write(path.join(root, 'Default/Cache/Cache_Data/data_1'), randomBytes(next, Math.floor(share * 6.6)))
    write(path.join(root, 'Default/Code Cache/js/index'), randomBytes(next, Math.floor(share * 0.4)))
    write(path.join(root, 'Default/Preferences'), '{"profile":{"name":"Person 1"}}')
    write(path.join(root, 'Local State'), '{"browser":{}}')
  }
  return kept
}

/**
 * Ten minutes of use of a profile `makeProfile` wrote, as LevelDB does it: the IndexedDB log grows by appended
 * records (~3 KB of chat), Local Storage's log by a few hundred bytes; every 4th step the log is flushed into a
 * new table (new bytes: sorted and compressed) and a new log starts, every 8th the two newest tables are merged.
 * Far more often than LevelDB does it (it flushes a log at ~4 MB), so each compaction's cost shows. `step` counts
 * from 1.
 * @param {string} root
 * @param {{ step: number, seed?: number, chatBytes?: number }} opts
 */
function evolveProfile(root, { step, seed = 1, chatBytes = 3000 }) {
  const next = rng(seed * 7919 + step)
  const idb = path.join(root, 'Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb')
  const numbered = (ext) =>
    fs.readdirSync(idb).filter((f) => f.endsWith(ext)).sort().map((f) => path.join(idb, f))
  const newest = (ext) => numbered(ext).at(-1)
  const nextNumber = () => {
    const all = fs.readdirSync(idb).map((f) => parseInt(f, 10)).filter((n) => !Number.isNaN(n))
    return String(Math.max(...all) + 1).padStart(6, '0')
  }
  fs.appendFileSync(newest('.log'), leveldbLog(next, chatBytes, 0.6))
  fs.appendFileSync(path.join(root, 'Default/Local Storage/leveldb/000003.log'), leveldbLog(next, 300, 0.3))
  fs.appendFileSync(path.join(idb, 'LOG'), `2026/11/28-10:${String(step % 60).padStart(2, '0')}:00.000 1 step ${step}\n`)
  // A table is the log's records sorted and block-compressed: new bytes, not a copy (XOR stands in for that; a
  // merge uses another mask, so merging tables never gives back a log's bytes).
  const rewritten = (buf, mask = 0x5a) => buf.map((byte) => byte ^ mask)
  if (step % 4 === 0) {
    const log = newest('.log')
    fs.writeFileSync(path.join(idb, `${nextNumber()}.ldb`), rewritten(fs.readFileSync(log)), { mode: 0o600 })
    fs.rmSync(log)
    fs.writeFileSync(path.join(idb, `${nextNumber()}.log`), leveldbLog(next, 500, 0.6), { mode: 0o600 })
    const manifest = `MANIFEST-${nextNumber()}`
    for (const old of fs.readdirSync(idb).filter((f) => f.startsWith('MANIFEST-'))) fs.rmSync(path.join(idb, old))
    fs.writeFileSync(path.join(idb, manifest), randomBytes(next, 211 + step), { mode: 0o600 })
    fs.writeFileSync(path.join(idb, 'CURRENT'), `${manifest}\n`)
  }
  if (step % 8 === 0) {
    // Level-0 compaction: the two newest (small) tables merged into one.
    const [a, b] = numbered('.ldb').slice(-2)
    if (a && b) {
      const merged = rewritten(Buffer.concat([fs.readFileSync(a), fs.readFileSync(b)]), 0xa5 ^ (step & 0xff))
      fs.writeFileSync(path.join(idb, `${nextNumber()}.ldb`), merged, { mode: 0o600 })
      fs.rmSync(a)
      fs.rmSync(b)
    }
  }
}

/** Total bytes of the regular files under `dir`. */
function duSync(dir) {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size
  }
  return total
}

module.exports = { makeProfile, evolveProfile, duSync, SIZES }
