// What the switching specs share: the CLI run as a user runs it, and whatsapp-web.js's real RemoteAuth saving a
// login into a store (the old one) and restoring it from another (RustStore), file by file.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { makeProfile, remoteAuth, waitForFiles } from './helpers.mjs'

const bin = path.resolve('bin/wwebjs-rust-store.js')

/** Runs the CLI in `cwd` with only PATH and `env` set (nothing leaks in from the test's environment). */
export function cli(cwd, args, env = {}) {
  const res = spawnSync(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
  if (res.error) throw res.error
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

/** Runs `fn` with `dir` as the cwd: the npm stores read `<cwd>/<session>.zip`, so dataPath is the cwd. */
export async function inDir(dir, fn) {
  const cwd = process.cwd()
  process.chdir(dir)
  try {
    return await fn()
  } finally {
    process.chdir(cwd)
  }
}

/** whatsapp-web.js's RemoteAuth saves a login into `store`; the files it holds (what a restore must give back). */
export async function saveLogin(store, root, clientId, seed) {
  return inDir(root, async () => {
    const { auth } = remoteAuth('whatsapp-web.js', { store, clientId, dataPath: root })
    const profile = path.join(root, `RemoteAuth-${clientId}`)
    await auth.beforeBrowserInitialized()
    makeProfile(profile, { seed, junk: false })
    await auth.storeRemoteSession({ emit: true })
    const files = kept(profile)
    fs.rmSync(profile, { recursive: true, force: true })
    return files
  })
}

/** What RemoteAuth zips of a profile: its IndexedDB and Local Storage files. */
export function kept(profile) {
  return { ...readTree(path.join(profile, 'Default/IndexedDB'), 'Default/IndexedDB'), ...readTree(path.join(profile, 'Default/Local Storage'), 'Default/Local Storage') }
}

/** Every file under `dir`, by path relative to its parent. */
export function readTree(dir, rel = '') {
  const out = {}
  if (!fs.existsSync(dir)) return out
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const r = rel ? `${rel}/${entry.name}` : entry.name
    if (entry.isDirectory()) Object.assign(out, readTree(path.join(dir, entry.name), r))
    else out[r] = fs.readFileSync(path.join(dir, entry.name))
  }
  return out
}

/** Plain RemoteAuth restores `clientId` from `store` into a fresh dataPath: every file byte for byte. */
export async function assertRestores(t, store, root, clientId, files) {
  const dataPath = fs.mkdtempSync(path.join(root, 'restore-'))
  const { auth } = remoteAuth('whatsapp-web.js', { store, clientId, dataPath })
  await auth.beforeBrowserInitialized()
  const profile = path.join(dataPath, `RemoteAuth-${clientId}`)
  await waitForFiles(profile, files)
  t.deepEqual(Object.keys(kept(profile)).sort(), Object.keys(files).sort(), clientId)
  for (const [rel, data] of Object.entries(files)) t.true(fs.readFileSync(path.join(profile, rel)).equals(data), `${clientId}: ${rel}`)
  return { auth, dataPath, profile }
}
