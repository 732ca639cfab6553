'use strict'
// The zip RemoteAuth 1.34.7 makes: archiver over a folder holding only the kept directories. Shared by the specs
// and the bench (which must not load the addon in its parent process, hence no import from __test__).

const fs = require('node:fs')
const archiver = require('archiver')

/** Writes a zip to `zipPath` with archiver (as RemoteAuth does); `fill(archive)` adds the entries. */
function writeZip(zipPath, fill) {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(zipPath)
    const archive = archiver('zip')
    out.once('close', resolve)
    out.once('error', reject)
    archive.once('error', reject)
    archive.pipe(out)
    fill(archive)
    archive.finalize()
  })
}

/** Zips the contents of `profileDir` (not the folder itself) into `zipPath`. */
function zipProfile(profileDir, zipPath) {
  return writeZip(zipPath, (archive) => archive.directory(profileDir, false))
}

module.exports = { zipProfile, writeZip }
