'use strict'
// The seed's disk as found in production: `sessions-shared/workspace_N/session-webjs_<user>_<unix-ts>_<rand>`,
// one ~19 MB Chromium profile per login of a user, plus a LocalAuth `session-<clientId>` folder.

const fs = require('node:fs')
const path = require('node:path')
const { makeProfile } = require('./synthetic-profile.js')
const { varint, MAGIC: TABLE_MAGIC } = require('./leveldb-shape.js')

/**
 * Marks a profile as paired with a phone, as WhatsApp Web does: a `last-wid-md` key in Local Storage (what
 * `migrate --delete-source` takes for a login). Returns `kept` with the new file in it.
 */
function loggedIn(folder, kept, wid = '5511999990000:7@c.us') {
  const rel = 'Default/Local Storage/leveldb/000005.log'
  const data = Buffer.from(`_https://web.whatsapp.com\0\x01last-wid-md\x01"${wid}"`, 'latin1')
  fs.writeFileSync(path.join(folder, rel), data, { mode: 0o600 })
  return { ...kept, [rel]: data }
}

/**
 * Writes the tree under `root` and returns, per account, the newest folder and what RemoteAuth keeps of it.
 * @param {string} root
 * @param {{ users?: Record<string, number>, localAuth?: string[], junk?: boolean }} [opts] logins per user
 */
function makeWorkspace(root, { users = { ana: 3, bruno: 2 }, localAuth = ['shop'], junk = true } = {}) {
  const workspace = path.join(root, 'sessions-shared', 'workspace_1')
  const accounts = {}
  let seed = 1
  for (const [user, logins] of Object.entries(users)) {
    for (let i = 0; i < logins; i++) {
      const folder = path.join(workspace, `session-webjs_${user}_${1764000000 + i * 3600}_${(seed * 7919).toString(36)}`)
      const kept = loggedIn(folder, makeProfile(folder, { seed: seed++, junk }))
      accounts[`webjs_${user}`] = { folder, kept, folders: i + 1 }
    }
  }
  for (const clientId of localAuth) {
    const folder = path.join(workspace, `session-${clientId}`)
    accounts[clientId] = { folder, kept: loggedIn(folder, makeProfile(folder, { seed: seed++, junk })), folders: 1 }
  }
  return { workspace, accounts }
}

module.exports = { makeWorkspace, loggedIn }

/** A LevelDB block: entries prefix-compressed against the key before (as LevelDB stores them), one restart. */
function block(entries) {
  const parts = []
  let last = Buffer.alloc(0)
  for (const [key, value] of entries) {
    let shared = 0
    while (shared < key.length && shared < last.length && key[shared] === last[shared]) shared++
    parts.push(varint(shared), varint(key.length - shared), varint(value.length), key.subarray(shared), value)
    last = key
  }
  const tail = Buffer.alloc(8)
  tail.writeUInt32LE(1, 4)
  return Buffer.concat([...parts, tail])
}

/** Snappy's raw format with literals only (valid Snappy; what a compressor emits for data with no repeats). */
function snappyLiterals(data) {
  const parts = [varint(data.length)]
  for (let at = 0; at < data.length; at += 256) {
    const chunk = data.subarray(at, at + 256)
    parts.push(chunk.length <= 60 ? Buffer.from([(chunk.length - 1) << 2]) : Buffer.from([60 << 2, chunk.length - 1]), chunk)
  }
  return Buffer.concat(parts)
}

/**
 * Marks a profile as paired the way a compacted Local Storage holds it: the `last-wid-md` key only in a
 * Snappy-compressed table (`000007.ldb`), sharing its prefix with the key before, so the file's bytes never spell
 * it; the log with the key is removed. Returns `kept` with the table in it (and without the log).
 */
function loggedInTable(folder, kept, wid = '5511999990000:7@c.us') {
  const dir = 'Default/Local Storage/leveldb'
  fs.rmSync(path.join(folder, dir, '000005.log'), { force: true })
  const origin = Buffer.from('_https://web.whatsapp.com\0\x01', 'latin1')
  const seq = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0])
  const entry = (name, value) => [Buffer.concat([origin, Buffer.from(name), seq]), Buffer.from(`\x01${value}`, 'latin1')]
  const data = snappyLiterals(block([entry('last-wi', '""'), entry('last-wid-md', `"${wid}"`)]))
  const handle = Buffer.concat([varint(0), varint(data.length)])
  const meta = block([])
  const index = block([[Buffer.from('`'), handle]])
  const trailer = (type) => Buffer.from([type, 0, 0, 0, 0])
  const metaAt = data.length + 5
  const indexAt = metaAt + meta.length + 5
  const footer = Buffer.alloc(48)
  Buffer.concat([varint(metaAt), varint(meta.length), varint(indexAt), varint(index.length)]).copy(footer)
  TABLE_MAGIC.copy(footer, 40)
  const table = Buffer.concat([data, trailer(1), meta, trailer(0), index, trailer(0), footer])
  if (table.includes('last-wid')) throw new Error('the key must not be spelled out in the table')
  const rel = `${dir}/000007.ldb`
  fs.writeFileSync(path.join(folder, rel), table, { mode: 0o600 })
  const { [`${dir}/000005.log`]: _, ...rest } = kept
  return { ...rest, [rel]: table }
}

module.exports.loggedInTable = loggedInTable
