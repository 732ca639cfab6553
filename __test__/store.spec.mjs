// RustStore's own contract: coded errors, atomic extract, integrity, the embedded directory.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, tempDir, zipProfile, require } from './helpers.mjs'

const unzipper = require('unzipper')

/** A store with one saved session `RemoteAuth-s` made from a fresh synthetic profile. */
async function savedStore(t, options = {}) {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const dir = path.join(root, 'store')
  const profile = path.join(root, 'profile')
  const kept = makeProfile(profile, { junk: false, seed: 3 })
  fs.mkdirSync(dataPath)
  const zip = path.join(dataPath, 'RemoteAuth-s.zip')
  await zipProfile(profile, zip)
  const store = new RustStore({ dir, dataPath, saveErrors: 'reject', ...options })
  const saved = await store.save({ session: 'RemoteAuth-s' })
  return { root, dataPath, dir, zip, kept, store, saved }
}

async function zipEntries(file) {
  const directory = await unzipper.Open.file(file)
  const out = {}
  for (const entry of directory.files) {
    out[entry.path] = { mode: (entry.externalFileAttributes >>> 16) & 0o7777, type: entry.type, data: entry.type === 'File' ? await entry.buffer() : null }
  }
  return out
}

test('extract writes exactly to path, creating its directory, with bytes and modes of the original zip', async (t) => {
  const { root, zip, store, saved } = await savedStore(t)
  t.is(saved.session, 'RemoteAuth-s')
  const target = path.join(root, 'elsewhere', 'deep', 'x.zip')
  const info = await store.extract({ session: 'RemoteAuth-s', path: target })
  t.is(info.storedBytes, saved.storedBytes)
  const original = await zipEntries(zip)
  const restored = await zipEntries(target)
  t.deepEqual(Object.keys(restored).sort(), Object.keys(original).sort())
  for (const [name, entry] of Object.entries(original)) {
    t.is(restored[name].mode, entry.mode, `${name} mode`)
    t.is(restored[name].type, entry.type, name)
    if (entry.data) t.true(restored[name].data.equals(entry.data), name)
  }
  t.is(original['Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/CURRENT'].mode, 0o600)
  t.deepEqual(fs.readdirSync(path.dirname(target)), ['x.zip'], 'no temp file left beside it')
})

test('junk outside the keep-list is dropped, and the keep-list is configurable', async (t) => {
  const root = tempDir(t)
  const profile = path.join(root, 'profile')
  makeProfile(profile, { seed: 9 })
  const zip = path.join(root, 'RemoteAuth-j.zip')
  await zipProfile(profile, zip)
  const onlyLocalStorage = new RustStore({ dir: path.join(root, 'store'), keep: ['Default/Local Storage'], saveErrors: 'reject' })
  const saved = await onlyLocalStorage.save({ session: 'RemoteAuth-j', path: zip })
  t.true(saved.storedBytes < 20_000, `${saved.storedBytes}`)
  await onlyLocalStorage.extract({ session: 'RemoteAuth-j', path: path.join(root, 'out.zip') })
  const names = Object.keys(await zipEntries(path.join(root, 'out.zip')))
  t.true(names.includes('Default/Local Storage/leveldb/CURRENT'))
  t.false(names.some((n) => n.includes('IndexedDB') || n.includes('Cache') || n.includes('Service Worker')), names.join())
})

test('every method refuses names that could escape, with ERR_SESSION_NAME and nothing written', async (t) => {
  const { root, store, dir } = await savedStore(t)
  const before = fs.readdirSync(dir)
  for (const session of ['', '..', '../RemoteAuth-s', 'a/b', 'a\\b', 'x\0y', '.hidden', 'a'.repeat(201), 'RemoteAuth:1']) {
    for (const call of [
      () => store.sessionExists({ session }),
      () => store.save({ session }),
      () => store.extract({ session, path: path.join(root, 'o.zip') }),
      () => store.delete({ session }),
    ]) {
      const err = await t.throwsAsync(call())
      t.is(err.code, 'ERR_SESSION_NAME', JSON.stringify(session))
    }
  }
  t.deepEqual(fs.readdirSync(dir), before)
  t.false(fs.existsSync(path.join(root, 'o.zip')))
})

test('a flipped bit or a truncation in the stored copy is ERR_ARCHIVE_CORRUPT, and the file at path is untouched', async (t) => {
  const { root, dir, store } = await savedStore(t)
  const file = path.join(dir, 'RemoteAuth-s.wwrs')
  const good = fs.readFileSync(file)
  const target = path.join(root, 'restore', 'RemoteAuth-s.zip')
  fs.mkdirSync(path.dirname(target))
  fs.writeFileSync(target, 'previous')
  const flipped = Buffer.from(good)
  flipped[Math.floor(good.length / 2)] ^= 0x10
  for (const bad of [flipped, good.subarray(0, good.length - 100), good.subarray(0, 40), Buffer.alloc(0)]) {
    fs.writeFileSync(file, bad)
    const err = await t.throwsAsync(store.extract({ session: 'RemoteAuth-s', path: target }))
    t.is(err.code, 'ERR_ARCHIVE_CORRUPT', err.message)
    t.is(fs.readFileSync(target, 'utf8'), 'previous')
    t.deepEqual(fs.readdirSync(path.dirname(target)), ['RemoteAuth-s.zip'])
  }
})

test('a bad zip never replaces the good stored copy', async (t) => {
  const { root, zip, store, kept } = await savedStore(t)
  for (const [content, code] of [['not a zip', 'ERR_ZIP_INVALID'], [null, 'ERR_EMPTY_SESSION']]) {
    if (content === null) {
      const empty = path.join(root, 'empty')
      fs.mkdirSync(path.join(empty, 'Default', 'IndexedDB'), { recursive: true })
      await zipProfile(empty, zip)
    } else {
      fs.writeFileSync(zip, content)
    }
    const err = await t.throwsAsync(store.save({ session: 'RemoteAuth-s' }))
    t.is(err.code, code)
  }
  const small = new RustStore({ dir: path.join(root, 'store'), dataPath: path.dirname(zip), maxEntries: 3, saveErrors: 'reject' })
  await zipProfile(path.join(root, 'profile'), zip)
  t.is((await t.throwsAsync(small.save({ session: 'RemoteAuth-s' }))).code, 'ERR_ARCHIVE_LIMIT')

  const out = path.join(root, 'out.zip')
  await store.extract({ session: 'RemoteAuth-s', path: out })
  const restored = await zipEntries(out)
  for (const [rel, data] of Object.entries(kept)) t.true(restored[rel].data.equals(data), rel)
})

test('save reports instead of rejecting by default, to onError or stderr', async (t) => {
  const root = tempDir(t)
  const errors = []
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: root, onError: (e) => errors.push(e) })
  t.is(await store.save({ session: 'RemoteAuth-missing' }), null)
  t.is(errors.length, 1)
  t.true(errors[0] instanceof Error)
  t.is(errors[0].code, 'ERR_ZIP_NOT_FOUND')
  t.regex(errors[0].message, /RemoteAuth-missing\.zip/)
  // A throwing onError must not turn into a rejection either.
  const throwing = new RustStore({ dir: path.join(root, 'store'), dataPath: root, onError: () => { throw new Error('boom') } })
  t.is(await throwing.save({ session: 'RemoteAuth-missing' }), null)
})

test('a store whose directory vanished rejects every call instead of answering "no session"', async (t) => {
  const root = tempDir(t)
  const dir = path.join(root, 'store')
  const store = new RustStore({ dir })
  t.false(await store.sessionExists({ session: 'RemoteAuth-x' }))
  fs.rmSync(dir, { recursive: true })
  const err = await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-x' }))
  t.is(err.code, 'ERR_TIER_UNAVAILABLE')
  t.is((await t.throwsAsync(store.extract({ session: 'RemoteAuth-x', path: path.join(root, 'o.zip') }))).code, 'ERR_TIER_UNAVAILABLE')
  // A logout must not "succeed" against a vanished volume, nor a listing look empty.
  t.is((await t.throwsAsync(store.delete({ session: 'RemoteAuth-x' }))).code, 'ERR_TIER_UNAVAILABLE')
  t.is((await t.throwsAsync(store.listSessions())).code, 'ERR_TIER_UNAVAILABLE')
  const profile = path.join(root, 'profile')
  makeProfile(profile, { junk: false })
  await zipProfile(profile, path.join(root, 'RemoteAuth-x.zip'))
  const strict = new RustStore({ dir: path.join(root, 'other'), saveErrors: 'reject' })
  fs.rmSync(path.join(root, 'other'), { recursive: true })
  t.is((await t.throwsAsync(strict.save({ session: 'RemoteAuth-x', path: path.join(root, 'RemoteAuth-x.zip') }))).code, 'ERR_TIER_UNAVAILABLE')
})

test('the embedded directory: private files, atomic replace, idempotent delete, seen by a second instance', async (t) => {
  const { dir, dataPath, store, zip } = await savedStore(t)
  t.is(fs.statSync(dir).mode & 0o777, 0o700)
  t.is(fs.statSync(path.join(dir, 'RemoteAuth-s.wwrs')).mode & 0o777, 0o600)
  const other = new RustStore({ dir, dataPath, saveErrors: 'reject' })
  t.true(await other.sessionExists({ session: 'RemoteAuth-s' }))
  await other.save({ session: 'RemoteAuth-s', path: zip })
  t.deepEqual(fs.readdirSync(dir), ['RemoteAuth-s.wwrs'], 'no temp files left')
  await store.delete({ session: 'RemoteAuth-s' })
  await store.delete({ session: 'RemoteAuth-s' })
  t.false(await other.sessionExists({ session: 'RemoteAuth-s' }))
  t.is((await t.throwsAsync(other.extract({ session: 'RemoteAuth-s', path: zip }))).code, 'ERR_SESSION_NOT_FOUND')
})

test('bad options are refused with ERR_INVALID_OPTION', (t) => {
  const bad = [
    { compressionLevel: 0 }, { compressionLevel: 23 }, { compressionLevel: 3.5 }, { saveErrors: 'ignore' },
    { keep: ['../x'] }, { keep: [] }, { maxUnpackedBytes: -1 }, { maxEntries: -1 }, { maxEntries: NaN },
    { dir: 5 }, { onError: 'not a function' }, 'a string', 42,
  ]
  for (const options of bad) {
    const err = t.throws(() => new RustStore(options))
    t.is(err.code, 'ERR_INVALID_OPTION', JSON.stringify(options))
  }
})

test('arguments of the wrong shape reject with ERR_INVALID_ARG instead of throwing', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), saveErrors: 'reject' })
  for (const call of [
    () => store.sessionExists(),
    () => store.sessionExists({ session: 5 }),
    () => store.delete({}),
    () => store.extract({ session: 'RemoteAuth-x' }),
    () => store.save(null),
  ]) {
    const pending = call() // must not throw synchronously
    t.is((await t.throwsAsync(pending)).code, 'ERR_INVALID_ARG')
  }
})
