'use strict'
// A profile's files, to wait for a restore to land and to say exactly which files it lost or changed.

const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

/** `{ relativePath: size }` of every file under `root` (empty when `root` is missing). */
function fileSizes(root) {
  const sizes = {}
  const walk = (dir) => {
    let entries
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch (err) {
      if (err.code === 'ENOENT') return // a folder being written or removed meanwhile
      throw err
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.isFile()) {
        try {
          sizes[path.relative(root, full)] = fs.statSync(full).size
        } catch (err) {
          if (err.code !== 'ENOENT') throw err
        }
      }
    }
  }
  walk(root)
  return sizes
}

/** `{ relativePath: sha256 }` of the files under `root`'s `dirs` (paths relative to `root`). */
function fileHashes(root, dirs) {
  const hashes = {}
  for (const dir of dirs) {
    for (const rel of Object.keys(fileSizes(path.join(root, dir)))) {
      const file = path.join(dir, rel)
      hashes[file] = crypto.createHash('sha256').update(fs.readFileSync(path.join(root, file))).digest('hex')
    }
  }
  return hashes
}

/**
 * Waits until the files under `root` keep their names and sizes for `quietMs`: plain RemoteAuth resolves its
 * restore on unzipper's 'finish', before the last files are written. While some file of `expected`
 * (`{ relativePath: size }`) is missing or short, it waits for `incompleteQuietMs` of quiet instead, so a slow
 * disk is not taken for a loss (a real loss then costs that long). Throws after `timeoutMs`.
 */
async function waitForSettled(root, { expected = {}, quietMs = 200, incompleteQuietMs = 2000, timeoutMs = 15_000, pollMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs
  let [last, since] = [null, Date.now()]
  for (;;) {
    const sizes = fileSizes(root)
    const now = JSON.stringify(sizes)
    if (now !== last) [last, since] = [now, Date.now()]
    else {
      const complete = Object.entries(expected).every(([file, size]) => sizes[file] === size)
      if (Date.now() - since >= (complete ? quietMs : incompleteQuietMs)) return sizes
    }
    if (Date.now() > deadline) throw new Error(`${root} still changing after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, pollMs))
  }
}

/** `{ missing, changed, extra }` file lists of `actual` against `expected` (both from fileHashes). */
function fileLosses(expected, actual) {
  const missing = Object.keys(expected).filter((f) => !(f in actual)).sort()
  const changed = Object.keys(expected).filter((f) => f in actual && actual[f] !== expected[f]).sort()
  const extra = Object.keys(actual).filter((f) => !(f in expected)).sort()
  return { missing, changed, extra }
}

module.exports = { fileSizes, fileHashes, waitForSettled, fileLosses }
