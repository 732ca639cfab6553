// Issue 19, the save path: every save is verified (each kept entry inflated, CRC and size checked, real bytes
// against maxUnpackedBytes) before it can replace the stored copy, and `extract` refuses a stored archive whose
// names the save would refuse. Driven by `new RustStore()` defaults and plain whatsapp-web.js RemoteAuth restores.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { blake3 } from '@noble/hashes/blake3.js'
import { RustStore, require, tempDir, remoteAuth, waitForFiles } from './helpers.mjs'
import { startRedis } from './servers.mjs'

const { writeZip } = require('../support/zip-profile.js')
const { entries } = require('../support/zip-bytes.js')
const { settle } = require('../support/shapes.js')

const SESSION = 'RemoteAuth-acct'
const PAD = 'wwebjs-rust-store.pad'
const HEADER_LEN = 76

function goodFiles() {
  const files = {}
  for (let i = 0; i < 20; i++) files[`Default/IndexedDB/db.leveldb/${String(i).padStart(6, '0')}.ldb`] = Buffer.from(`record ${i} `.repeat(200 + i * 50))
  files['Default/Local Storage/leveldb/CURRENT'] = Buffer.from('MANIFEST-000001\n')
  files['Default/IndexedDB/db.leveldb/000099.log'] = Buffer.alloc(100_000, 7)
  return files
}

const zipOf = (files) => (archive) => {
  for (const [name, data] of Object.entries(files)) archive.append(data, { name })
}

/** Every file under `root` but the pad, relative. */
function tree(root) {
  const out = {}
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name !== PAD) out[path.relative(root, p).split(path.sep).join('/')] = fs.readFileSync(p)
    }
  }
  walk(root)
  return out
}

/** A store in `root` (the cwd: the embedded tier's default directory), with a good copy saved. */
async function setup(t, options = {}) {
  const root = tempDir(t)
  const cwd = process.cwd()
  process.chdir(root)
  t.teardown(() => process.chdir(cwd))
  const dataPath = path.join(root, 'auth')
  fs.mkdirSync(dataPath)
  // Defaults: a failed save resolves null and goes to onError (RemoteAuth's timer awaits nothing).
  const errors = []
  const store = new RustStore({ dataPath, onError: (err) => errors.push(err), ...options })
  const zipPath = path.join(dataPath, `${SESSION}.zip`)
  const good = goodFiles()
  await writeZip(zipPath, zipOf(good))
  const pristine = fs.readFileSync(zipPath)
  await store.save({ session: SESSION })
  t.deepEqual(errors, [])
  return { root, dataPath, store, zipPath, good, pristine, errors }
}

/** Plain RemoteAuth restores the stored session: the profile holds exactly `expected` (the pad aside). */
async function restoresWhole(t, { store, dataPath }, expected) {
  const { auth } = remoteAuth('whatsapp-web.js', { store, clientId: 'acct', dataPath })
  await auth.beforeBrowserInitialized()
  await waitForFiles(auth.userDataDir, expected)
  await settle(auth.userDataDir)
  t.deepEqual(tree(auth.userDataDir), expected)
}

/** `zip` is refused with one of `codes`, and the good copy still restores whole. */
async function refused(t, ctx, zip, codes) {
  fs.writeFileSync(ctx.zipPath, zip)
  t.is(await ctx.store.save({ session: SESSION }), null)
  const err = ctx.errors.pop()
  t.true(codes.includes(err?.code), `${err?.code}: ${err?.message}`)
  await restoresWhole(t, ctx, ctx.good)
}

const centralOf = (zip, name) => entries(zip).find((e) => e.name === name)

test.serial('a zip bomb (declares 100 B, inflates to 16 MiB) is refused; the good copy stays', async (t) => {
  const ctx = await setup(t, { maxUnpackedBytes: 1_000_000 })
  const bomb = path.join(ctx.root, 'bomb.zip')
  await writeZip(bomb, zipOf({ ...ctx.good, 'Default/IndexedDB/db.leveldb/bomb': Buffer.alloc(16 << 20) }))
  const zip = fs.readFileSync(bomb)
  zip.writeUInt32LE(100, centralOf(zip, 'Default/IndexedDB/db.leveldb/bomb').at + 24)
  await refused(t, ctx, zip, ['ERR_ZIP_INVALID', 'ERR_ARCHIVE_LIMIT'])
})

test.serial('a wrong CRC and damaged deflate data are refused; the good copy stays', async (t) => {
  const ctx = await setup(t)
  const name = 'Default/IndexedDB/db.leveldb/000010.ldb'
  const crc = Buffer.from(ctx.pristine)
  const e = centralOf(crc, name)
  crc.writeUInt32LE((e.crc ^ 1) >>> 0, e.at + 16)
  await refused(t, ctx, crc, ['ERR_ZIP_INVALID'])
  const garbage = Buffer.from(ctx.pristine)
  const start = e.local + 30 + garbage.readUInt16LE(e.local + 26) + garbage.readUInt16LE(e.local + 28)
  garbage.fill(0xff, start + 2, start + Math.min(e.csize - 2, 40))
  await refused(t, ctx, garbage, ['ERR_ZIP_INVALID'])
})

test.serial('on Redis, plain and under a held lease (the fenced write), a wrong CRC and a bomb leave the good copy', async (t) => {
  const server = await startRedis(t)
  for (const leased of [false, true]) {
    const ctx = await setup(t, { redis: { url: server.url, prefix: `wa${leased ? 'leased' : 'plain'}:` }, maxUnpackedBytes: 1_000_000 })
    if (leased) await ctx.store.acquireLease(SESSION, { ttlMs: 60_000 })
    const stored = server.cli('GET', `wa${leased ? 'leased' : 'plain'}:${SESSION}`)
    t.true(stored.length > 0)
    const name = 'Default/IndexedDB/db.leveldb/000010.ldb'
    const crc = Buffer.from(ctx.pristine)
    const e = centralOf(crc, name)
    crc.writeUInt32LE((e.crc ^ 1) >>> 0, e.at + 16)
    await refused(t, ctx, crc, ['ERR_ZIP_INVALID'])
    const bomb = path.join(ctx.root, 'bomb.zip')
    await writeZip(bomb, zipOf({ ...ctx.good, 'Default/IndexedDB/db.leveldb/bomb': Buffer.alloc(16 << 20) }))
    const zip = fs.readFileSync(bomb)
    zip.writeUInt32LE(100, centralOf(zip, 'Default/IndexedDB/db.leveldb/bomb').at + 24)
    await refused(t, ctx, zip, ['ERR_ZIP_INVALID', 'ERR_ARCHIVE_LIMIT'])
    t.is(server.cli('GET', `wa${leased ? 'leased' : 'plain'}:${SESSION}`), stored, `the stored value is untouched (${leased ? 'leased' : 'plain'})`)
    await ctx.store.close()
  }
})

test.serial('a folder entry that carries data is refused (its restore would hang); the good copy stays', async (t) => {
  const ctx = await setup(t)
  const zipPath = path.join(ctx.root, 'dir.zip')
  await writeZip(zipPath, zipOf({ ...ctx.good, 'Default/IndexedDB/dd': Buffer.from('data '.repeat(500)) }))
  const zip = fs.readFileSync(zipPath)
  let hits = 0
  for (let i = zip.indexOf('Default/IndexedDB/dd'); i >= 0; i = zip.indexOf('Default/IndexedDB/dd', i + 1)) {
    zip.write('Default/IndexedDB/d/', i)
    hits++
  }
  t.is(hits, 2, 'local and central header')
  await refused(t, ctx, zip, ['ERR_ARCHIVE_ENTRY'])
})

test.serial('a name component over 255 bytes, a 65,535-byte name and a name twice are refused with codes', async (t) => {
  const ctx = await setup(t)
  for (const [label, extra] of [
    ['256-byte component', { [`Default/IndexedDB/${'x'.repeat(256)}`]: Buffer.from('1') }],
    ['65,535-byte name', { [`Default/IndexedDB/${'ab/'.repeat(21_839)}x`.slice(0, 65_535)]: Buffer.from('1') }],
  ]) {
    const zipPath = path.join(ctx.root, 'names.zip')
    await writeZip(zipPath, zipOf({ ...ctx.good, ...extra }))
    t.log(label)
    await refused(t, ctx, fs.readFileSync(zipPath), ['ERR_ARCHIVE_ENTRY'])
  }
  const zipPath = path.join(ctx.root, 'twice.zip')
  await writeZip(zipPath, (archive) => {
    zipOf(ctx.good)(archive)
    archive.append(Buffer.from('other'), { name: 'Default/IndexedDB/db.leveldb/000001.ldb' })
  })
  await refused(t, ctx, fs.readFileSync(zipPath), ['ERR_ARCHIVE_ENTRY'])
})

/** Rewrites the stored plain archive as someone with write access to the tier could: bytes replaced, hash redone. */
function tamper(root, edit) {
  const file = path.join(root, '.wwebjs_store', `${SESSION}.wwrs`)
  const bytes = fs.readFileSync(file)
  edit(bytes.subarray(HEADER_LEN))
  const digest = blake3(Buffer.concat([bytes.subarray(0, 44), bytes.subarray(HEADER_LEN)]))
  Buffer.from(digest).copy(bytes, 44)
  fs.writeFileSync(file, bytes)
}

test.serial('extract refuses a stored plain archive holding ../RemoteAuth-other/...; nothing lands outside', async (t) => {
  const ctx = await setup(t)
  const evil = '../RemoteAuth-other/Default/IndexedDB/x'
  const benign = `Default/IndexedDB/${'y'.repeat(evil.length - 18)}`
  await writeZip(ctx.zipPath, zipOf({ ...ctx.good, [benign]: Buffer.from('payload') }))
  await ctx.store.save({ session: SESSION })
  tamper(ctx.root, (payload) => {
    for (let i = payload.indexOf(benign); i >= 0; i = payload.indexOf(benign, i + 1)) payload.write(evil, i)
  })
  const err = await t.throwsAsync(ctx.store.extract({ session: SESSION, path: path.join(ctx.root, 'out.zip') }))
  t.is(err.code, 'ERR_ARCHIVE_ENTRY', err.message)
  t.false(fs.existsSync(path.join(ctx.root, 'out.zip')))
  const { auth } = remoteAuth('whatsapp-web.js', { store: ctx.store, clientId: 'acct', dataPath: ctx.dataPath })
  await t.throwsAsync(auth.beforeBrowserInitialized(), { code: 'ERR_ARCHIVE_ENTRY' })
  t.false(fs.existsSync(path.join(ctx.dataPath, 'RemoteAuth-other')), 'no other session written')
  const dir = path.join(ctx.root, 'profile')
  t.is((await t.throwsAsync(ctx.store.restoreProfile({ session: SESSION, dir }))).code, 'ERR_ARCHIVE_ENTRY')
})

test.serial('restoreProfile of a stored copy with damaged deflate data is ERR_ARCHIVE_CORRUPT', async (t) => {
  const ctx = await setup(t)
  tamper(ctx.root, (payload) => {
    const e = entries(payload).find((x) => x.name.endsWith('000099.log'))
    const start = e.local + 30 + payload.readUInt16LE(e.local + 26) + payload.readUInt16LE(e.local + 28)
    payload.fill(0xff, start + 2, start + 30)
  })
  const dir = path.join(ctx.root, 'profile')
  const err = await t.throwsAsync(ctx.store.restoreProfile({ session: SESSION, dir }))
  t.is(err.code, 'ERR_ARCHIVE_CORRUPT', err.message)
})
