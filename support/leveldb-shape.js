'use strict'
// LevelDB's on-disk formats, as far as a snapshot's consistency goes (leveldb doc/log_format.md,
// db/version_edit.cc, table/format.h): log-format records, version edits, tables that end in the table magic.
// The live writer (support/leveldb-writer.js) writes with them; `check` reads a folder the way LevelDB opens it.

const fs = require('node:fs')
const path = require('node:path')

const BLOCK = 32 * 1024
const HEADER = 7
const MAGIC = Buffer.from('57fb808b247547db', 'hex')

const CRC = new Uint32Array(256).map((_, i) => {
  let c = i
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32c(buf) {
  let c = ~0 >>> 0
  for (const b of buf) c = (CRC[(c ^ b) & 0xff] ^ (c >>> 8)) >>> 0
  return ~c >>> 0
}
const mask = (crc) => (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0

/** `data` as records appended to a file of `offset` bytes, fragmented across blocks as LevelDB's writer does. */
function record(offset, data) {
  const parts = []
  let [left, first] = [data, true]
  for (;;) {
    const room = BLOCK - (offset % BLOCK)
    if (room < HEADER) {
      parts.push(Buffer.alloc(room))
      offset += room
      continue
    }
    const take = Math.min(left.length, room - HEADER)
    const last = take === left.length
    const type = first ? (last ? 1 : 2) : last ? 4 : 3
    const typed = Buffer.concat([Buffer.from([type]), left.subarray(0, take)])
    const head = Buffer.alloc(6)
    head.writeUInt32LE(mask(crc32c(typed)), 0)
    head.writeUInt16LE(take, 4)
    parts.push(head, typed)
    offset += HEADER + take
    left = left.subarray(take)
    first = false
    if (last) return Buffer.concat(parts)
  }
}

function varint(n) {
  const out = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Buffer.from(out)
}

/** A version edit: log number, tables added `[number, size]`, tables deleted. */
function edit({ logNumber, added = [], deleted = [] }) {
  const key = (c) => Buffer.from(`${c}\x01\0\0\0\0\0\0\0`, 'latin1')
  const parts = [varint(1), varint(26), Buffer.from('leveldb.BytewiseComparator'), varint(2), varint(logNumber)]
  for (const n of deleted) parts.push(varint(6), varint(0), varint(n))
  for (const [n, size] of added) parts.push(varint(7), varint(0), varint(n), varint(size), varint(9), key('a'), varint(9), key('z'))
  return Buffer.concat(parts)
}

/** A table's bytes: a pattern its number and size fix, so a torn or mixed copy shows. */
function table(number, size) {
  const buf = Buffer.alloc(size)
  for (let i = 0; i < size - 8; i++) buf[i] = (number * 31 + i) & 0xff
  MAGIC.copy(buf, size - 8)
  return buf
}

const fileName = (n, ext) => `${String(n).padStart(6, '0')}.${ext}`

function readVarint(buf, at) {
  let [value, mul] = [0, 1]
  for (;;) {
    if (at.i >= buf.length) throw new Error('varint past the end')
    const b = buf[at.i++]
    value += (b & 0x7f) * mul
    if (!(b & 0x80)) return value
    mul *= 128
  }
}

/** The logical records of a log-format file; throws on anything but a clean end. */
function records(buf) {
  const out = []
  let [at, pending] = [0, null]
  while (at < buf.length) {
    const room = BLOCK - (at % BLOCK)
    if (room < HEADER) {
      at += room
      continue
    }
    if (at + HEADER > buf.length) throw new Error(`torn record header at ${at}`)
    const len = buf.readUInt16LE(at + 4)
    const type = buf[at + 6]
    if (at + HEADER + len > buf.length) throw new Error(`torn record at ${at}`)
    if (buf.readUInt32LE(at) !== mask(crc32c(buf.subarray(at + 6, at + HEADER + len)))) throw new Error(`bad checksum at ${at}`)
    const data = buf.subarray(at + HEADER, at + HEADER + len)
    at += HEADER + len
    if (type === 1) out.push(data)
    else if (type === 2) pending = [data]
    else if (type === 3) pending.push(data)
    else if (type === 4) out.push(Buffer.concat([...pending, data])), (pending = null)
    else throw new Error(`record type ${type}`)
  }
  if (pending) throw new Error('a record without its last fragment')
  return out
}

/**
 * Checks a LevelDB folder as LevelDB opens it: CURRENT names a manifest that parses to its end; every table its
 * edits leave live is there, whole (its listed size, its pattern, the magic); the manifest's log is there.
 * Returns `{ tables, logNumber }`; throws what is wrong.
 */
function check(dir) {
  const current = fs.readFileSync(path.join(dir, 'CURRENT'), 'latin1')
  if (!/^MANIFEST-\d+\n$/.test(current)) throw new Error(`CURRENT holds ${JSON.stringify(current)}`)
  const live = new Map()
  let logNumber = 0
  for (const rec of records(fs.readFileSync(path.join(dir, current.trim())))) {
    const at = { i: 0 }
    while (at.i < rec.length) {
      const tag = readVarint(rec, at)
      const skip = () => {
        const len = readVarint(rec, at)
        at.i += len
      }
      if (tag === 1) skip()
      else if (tag === 2) logNumber = readVarint(rec, at)
      else if (tag === 6) readVarint(rec, at), live.delete(readVarint(rec, at))
      else if (tag === 7) {
        readVarint(rec, at)
        const n = readVarint(rec, at)
        live.set(n, readVarint(rec, at))
        skip()
        skip()
      } else throw new Error(`edit tag ${tag}`)
    }
  }
  for (const [n, size] of live) {
    const file = path.join(dir, fileName(n, 'ldb'))
    if (!fs.existsSync(file)) throw new Error(`table ${n} listed but missing`)
    if (!fs.readFileSync(file).equals(table(n, size))) throw new Error(`table ${n} is not whole`)
  }
  if (!fs.existsSync(path.join(dir, fileName(logNumber, 'log')))) throw new Error(`log ${logNumber} missing`)
  return { tables: [...live.keys()].sort((a, b) => a - b), logNumber }
}

module.exports = { record, edit, table, fileName, check, records, varint, MAGIC }
