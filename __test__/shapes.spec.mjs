// Property test of the restore path: generated kept trees, each backed up by whatsapp-web.js's own RemoteAuth into
// RustStore (defaults: embedded tier, saveErrors 'report') and restored by plain RemoteAuth, which unzips with a
// streaming parser that can drop a run of entries at the end of a zip: the profile must then hold exactly the saved
// tree, no file more (the pad) or less. RemoteAuth's own zip, restored through the same pipe, is the baseline.
// SafeRemoteAuth restores every shape as well. A fixed number of shapes in npm test, the first of them each forced
// into one family (FAMILIES), so every family goes through every version; `SHAPES=N SHAPES_SEED=S` or
// `npm run test:shapes-deep` (200 shapes) for deep runs.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { RustStore, require } from './helpers.mjs'

const unzipper = require('unzipper')

const { FAMILIES, makeShape, writeShape, differences, settle, savedTree, treeDifference } = require('../support/shapes.js')
const { fakeClient } = require('../support/remoteauth.js')
const { safeRemoteAuth } = require('../safe-remote-auth.js')

const SHAPES = Number(process.env.SHAPES ?? 30)
const SEED = Number(process.env.SHAPES_SEED ?? 20261201)
const VERSIONS = ['wwebjs-1.34.4', 'wwebjs-1.34.6', 'whatsapp-web.js']

/** A store that keeps RemoteAuth's zip byte for byte (what RemoteAuth restores from with a plain file store). */
class ZipKeeper {
  constructor(dir) {
    this.dir = dir
    fs.mkdirSync(dir, { recursive: true })
  }
  file(session) {
    return path.join(this.dir, `${path.basename(session)}.zip`)
  }
  async sessionExists({ session }) {
    return fs.existsSync(this.file(session))
  }
  async save() {}
  async extract({ session, path: to }) {
    fs.copyFileSync(this.file(session), to)
  }
  async delete({ session }) {
    fs.rmSync(this.file(session), { force: true })
  }
}

/** Saves into both stores from one RemoteAuth backup: RustStore gets it, and the keeper keeps the zip itself. */
function tee(rust, keeper, zipOf) {
  return {
    sessionExists: (args) => rust.sessionExists(args),
    async save(args) {
      fs.copyFileSync(zipOf(args.session), keeper.file(args.session))
      return rust.save(args)
    },
    extract: (args) => rust.extract(args),
    delete: (args) => rust.delete(args),
  }
}

function auth(Class, store, clientId, dataPath) {
  const strategy = new Class({ store, clientId, dataPath, backupSyncIntervalMs: 60_000 })
  strategy.setup(fakeClient())
  return strategy
}

/** Restores with `strategy`; the files that differ right when it resolved, and once its writes settled. */
async function restore(strategy, profile, shape) {
  await strategy.beforeBrowserInitialized()
  const atResolve = differences(profile, shape)
  if (atResolve.length === 0) return { atResolve, settled: [] }
  await settle(profile)
  return { atResolve, settled: differences(profile, shape) }
}

const BATCH = 15
const tally = { ours: [], oursLate: 0, early: [], inexact: [], theirs: [], safe: [], bigShapes: 0, restores: 0, families: {} }
let root

test.before((t) => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-shapes-'))
  process.chdir(root) // RemoteAuth 1.34.4 writes its zip into the cwd
})
test.after.always(() => fs.rmSync(root, { recursive: true, force: true }))

const stores = () =>
  VERSIONS.map((pkg) => {
    const dataPath = path.join(root, pkg)
    const rust = new RustStore({ dir: path.join(root, `store-${pkg}`), dataPath })
    return { pkg, dataPath, rust, keeper: new ZipKeeper(path.join(root, `zips-${pkg}`)) }
  })

/** One shape through every version: RustStore and the baseline by plain RemoteAuth, SafeRemoteAuth on one. */
async function roundTrips(t, i, versions) {
  const seed = SEED + i
  const shape = makeShape(seed, i < FAMILIES.length ? [FAMILIES[i]] : [])
  if (Object.values(shape.files).some((data) => data.length >= 64 * 1024)) tally.bigShapes++
  for (const family of shape.families) tally.families[family] = (tally.families[family] ?? 0) + 1
  for (const [v, { pkg, dataPath, rust, keeper }] of versions.entries()) {
    const RemoteAuth = require(`${pkg}/src/authStrategies/RemoteAuth.js`)
    const clientId = `s${i}`
    const session = `RemoteAuth-${clientId}`
    const profile = path.join(dataPath, session)
    const zipOf = (name) => (pkg === 'wwebjs-1.34.4' ? path.join(root, `${name}.zip`) : path.join(dataPath, `${path.basename(name)}.zip`))
    const backup = auth(RemoteAuth, tee(rust, keeper, zipOf), clientId, dataPath)
    await backup.beforeBrowserInitialized() // nothing stored yet: RemoteAuth makes the empty profile
    writeShape(profile, shape)
    await backup.storeRemoteSession()
    t.true(await rust.sessionExists({ session }), `shape ${seed} on ${pkg} was saved`)
    // The saved tree is what RemoteAuth zipped (1.34.4 and 1.34.6 leave some empty folders out of their zips).
    const zipped = (await unzipper.Open.file(keeper.file(session))).files.map((f) => f.path)
    const saved = savedTree({ files: Object.fromEntries(zipped.filter((p) => !p.endsWith('/')).map((p) => [p, null])), dirs: zipped.filter((p) => p.endsWith('/')).map((p) => p.slice(0, -1)) })

    for (const [store, into] of [[rust, tally.ours], [keeper, tally.theirs]]) {
      fs.rmSync(profile, { recursive: true, force: true })
      const { atResolve, settled } = await restore(auth(RemoteAuth, store, clientId, dataPath), profile, shape)
      if (settled.length) into.push({ seed, pkg, lost: settled.length, of: Object.keys(shape.files).length, first: settled[0] })
      if (store === rust && atResolve.length) {
        tally.oursLate++
        // By design only the file written last can still be streaming when RemoteAuth resolves: the largest, of
        // 64 KiB or more (a smaller last file gets the pad behind it). Anything else was written too early.
        const late = (rel) => shape.files[rel].length >= 64 * 1024
        if (atResolve.length > 1 || !atResolve.every(late)) tally.early.push({ seed, pkg, atResolve: atResolve.slice(0, 3) })
      }
      if (store === rust) {
        // Exactly the saved tree: close() returns once the store's watch removed the pad behind RemoteAuth's unzip.
        await rust.close()
        // Empty folders too: unzipper 0.10 (1.34.4, 1.34.6) skips folder entries; the store's watch makes them.
        const { extra, missing } = treeDifference(profile, saved)
        if (extra.length || missing.length) tally.inexact.push({ seed, pkg, extra: extra.slice(0, 3), missing: missing.slice(0, 3) })
      }
    }
    tally.restores++
    // SafeRemoteAuth restores every shape (on one version each, in turn) and must be whole when it resolves.
    if (i % versions.length === v) {
      fs.rmSync(profile, { recursive: true, force: true })
      await auth(safeRemoteAuth(RemoteAuth), rust, clientId, dataPath).beforeBrowserInitialized()
      const { extra, missing } = treeDifference(profile, saved)
      if (extra.length || missing.length) tally.safe.push({ seed, pkg, extra: extra.slice(0, 3), missing: missing.slice(0, 3) })
      const lost = differences(profile, shape)
      if (lost.length) tally.safe.push({ seed, pkg, lost: lost.length, first: lost[0] })
    }
    fs.rmSync(profile, { recursive: true, force: true })
    await rust.delete({ session })
    await keeper.delete({ session })
  }
}

for (let from = 0; from < SHAPES; from += BATCH) {
  const to = Math.min(from + BATCH, SHAPES)
  test.serial(`shapes ${from}-${to - 1} restore exactly from RustStore through plain RemoteAuth 1.34.4 / 1.34.6 / 1.34.7 and SafeRemoteAuth`, async (t) => {
    t.timeout(10 * 60_000)
    const [ours, safe, early, inexact] = [tally.ours.length, tally.safe.length, tally.early.length, tally.inexact.length]
    const versions = stores()
    for (let i = from; i < to; i++) await roundTrips(t, i, versions)
    t.deepEqual(tally.ours.slice(ours), [], 'every shape comes back whole through plain RemoteAuth')
    t.deepEqual(tally.inexact.slice(inexact), [], 'and as exactly the saved tree: no pad, no file or folder more or less')
    t.deepEqual(tally.early.slice(early), [], 'when RemoteAuth resolved, every file but a large last one was written')
    t.deepEqual(tally.safe.slice(safe), [], 'SafeRemoteAuth: every shape exactly the saved tree when it resolves')
  })
}

test.serial('the same pipe loses files from RemoteAuth\'s own zips, never from RustStore\'s', (t) => {
  t.is(tally.restores, SHAPES * VERSIONS.length, 'every shape ran')
  t.log(`seed ${SEED}: ${SHAPES} shapes (${tally.bigShapes} with a file of 64 KiB or more) x ${VERSIONS.length} versions`, tally.families)
  if (SHAPES >= FAMILIES.length) t.deepEqual(FAMILIES.filter((f) => !tally.families[f]), [], 'every shape family ran')
  t.log(`RustStore: ${tally.ours.length} of ${tally.restores} restores lost files; ${tally.oursLate} not yet whole when RemoteAuth resolved`)
  t.log(`RemoteAuth's own zip: ${tally.theirs.length} of ${tally.restores} restores lost files`, tally.theirs.slice(0, 2))
  // The baseline shows the test reproduces the race RustStore's order and pad are there to defeat.
  t.true(tally.theirs.length > 0, 'RemoteAuth restoring its own zips lost files in some shapes')
  t.deepEqual(tally.ours, [])
})
