'use strict'
// A process that keeps writing a LevelDB-shaped folder the way LevelDB does, far faster than Chromium: appends to
// the log; flushes (a new log, a new table written in pieces, an edit naming both, the old log deleted); compactions
// (a merged table, an edit adding it and deleting its inputs, the inputs deleted); and now and then a new manifest
// (CURRENT replaced by rename, the old manifest deleted). A flush every 10 steps (tens of ms). `node leveldb-writer.js <dir>`; stop it with a signal.

const fs = require('node:fs')
const path = require('node:path')
const { record, edit, table, fileName } = require('./leveldb-shape.js')

const dir = process.argv[2]
fs.mkdirSync(dir, { recursive: true })
let next = 2
const live = new Map() // table number → size
let manifest = { number: next++, size: 0 }
let log = { number: next++, size: 0 }
let seed = 1
const rand = (n) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n)

function appendManifest(e) {
  const rec = record(manifest.size, edit(e))
  fs.appendFileSync(path.join(dir, `MANIFEST-${String(manifest.number).padStart(6, '0')}`), rec)
  manifest.size += rec.length
}

function appendLog(bytes) {
  const rec = record(log.size, bytes)
  fs.appendFileSync(path.join(dir, fileName(log.number, 'log')), rec)
  log.size += rec.length
}

/** Writes a table in pieces, as a compaction's output grows. */
function writeTable(n, size) {
  const fd = fs.openSync(path.join(dir, fileName(n, 'ldb')), 'w')
  const bytes = table(n, size)
  for (let at = 0; at < size; at += 16384) fs.writeSync(fd, bytes, at, Math.min(16384, size - at))
  fs.closeSync(fd)
}

function newManifest() {
  const old = manifest
  manifest = { number: next++, size: 0 }
  appendManifest({ logNumber: log.number, added: [...live] })
  const tmp = path.join(dir, `${String(manifest.number).padStart(6, '0')}.dbtmp`)
  fs.writeFileSync(tmp, `MANIFEST-${String(manifest.number).padStart(6, '0')}\n`)
  fs.renameSync(tmp, path.join(dir, 'CURRENT'))
  fs.rmSync(path.join(dir, `MANIFEST-${String(old.number).padStart(6, '0')}`), { force: true })
}

// A fresh database: its log and manifest, then CURRENT.
fs.writeFileSync(path.join(dir, 'LOCK'), '')
fs.writeFileSync(path.join(dir, fileName(log.number, 'log')), '')
appendManifest({ logNumber: log.number })
fs.writeFileSync(path.join(dir, 'CURRENT'), `MANIFEST-${String(manifest.number).padStart(6, '0')}\n`)

let steps = 0
function step() {
  for (let i = 0; i < 20; i++) appendLog(Buffer.alloc(200 + rand(4000), steps & 0xff))
  steps++
  if (steps % 10 === 0) {
    // Flush: new log first, then the table, the edit, and only then the old log goes.
    const old = log
    log = { number: next++, size: 0 }
    fs.writeFileSync(path.join(dir, fileName(log.number, 'log')), '')
    const n = next++
    const size = 20_000 + rand(150_000)
    writeTable(n, size)
    live.set(n, size)
    appendManifest({ logNumber: log.number, added: [[n, size]] })
    fs.rmSync(path.join(dir, fileName(old.number, 'log')), { force: true })
  }
  if (live.size > 8) {
    // Compaction: the four oldest tables merged into one; its inputs go once the edit names it.
    const inputs = [...live.keys()].slice(0, 4)
    const n = next++
    const size = 50_000 + rand(250_000)
    writeTable(n, size)
    for (const k of inputs) live.delete(k)
    live.set(n, size)
    appendManifest({ logNumber: log.number, added: [[n, size]], deleted: inputs })
    for (const k of inputs) fs.rmSync(path.join(dir, fileName(k, 'ldb')), { force: true })
  }
  if (steps % 40 === 0) newManifest()
  setTimeout(step, 2)
}
process.on('SIGTERM', () => process.exit(0))
process.send?.('ready')
step()
