import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

export const require = createRequire(import.meta.url)
export const { RustStore } = require('../index.js')
export const { makeProfile, duSync } = require('../support/synthetic-profile.js')
export const { remoteAuth, waitForFiles } = require('../support/remoteauth.js')

/** A fresh temp directory, removed when the test ends. */
export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Builds a zip the way RemoteAuth 1.34.7 does (archiver over a staged copy of the kept dirs). */
export async function zipProfile(profileDir, zipPath) {
  const archiver = require('archiver')
  await new Promise((resolve, reject) => {
    const out = fs.createWriteStream(zipPath)
    const archive = archiver('zip')
    out.once('close', resolve)
    out.once('error', reject)
    archive.once('error', reject)
    archive.pipe(out)
    archive.directory(profileDir, false)
    archive.finalize()
  })
}
