'use strict'
// Reading and mutating zip bytes for the save-path specs: a small reader of its own (central directory, local
// headers, node's zlib for inflate and CRC-32), independent of the Rust code under test.

const zlib = require('node:zlib')

const u16 = (b, i) => b.readUInt16LE(i)
const u32 = (b, i) => b.readUInt32LE(i)

/** The central directory records of `buf` ({ at, name, method, crc, csize, usize, local }), or null. */
function entries(buf) {
  let eocd = -1
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65_557); i--) {
    if (u32(buf, i) === 0x06054b50) {
      eocd = i
      break
    }
  }
  if (eocd < 0) return null
  const count = u16(buf, eocd + 10)
  let at = u32(buf, eocd + 16)
  const out = []
  for (let n = 0; n < count; n++) {
    if (at + 46 > buf.length || u32(buf, at) !== 0x02014b50) return null
    const [nameLen, extraLen, commentLen] = [u16(buf, at + 28), u16(buf, at + 30), u16(buf, at + 32)]
    if (at + 46 + nameLen > buf.length) return null
    out.push({
      at,
      nameRaw: buf.subarray(at + 46, at + 46 + nameLen),
      name: buf.toString('utf8', at + 46, at + 46 + nameLen),
      flags: u16(buf, at + 8),
      method: u16(buf, at + 10),
      crc: u32(buf, at + 16),
      csize: u32(buf, at + 20),
      usize: u32(buf, at + 24),
      local: u32(buf, at + 42),
    })
    at += 46 + nameLen + extraLen + commentLen
  }
  return out
}

const SAFE = (name) => {
  const path = name.replace(/\/$/, '')
  return (
    !/[\\:\0]/.test(name) &&
    !name.startsWith('/') &&
    name.length <= 1024 &&
    path.split('/').every((p) => p !== '' && p !== '.' && p !== '..' && Buffer.byteLength(p) <= 255) &&
    Buffer.from(name, 'utf8').toString('utf8') === name
  )
}

/**
 * The files the zip really holds in the `keep` folders (name → Buffer), each inflated and checked against its
 * CRC and size; null when any kept entry is damaged, unsafe or named twice (a save must refuse that zip).
 */
function reallyHolds(buf, keep = ['Default/IndexedDB', 'Default/Local Storage']) {
  const list = entries(buf)
  if (!list) return null
  const files = new Map()
  const seen = new Set()
  for (const e of list) {
    if (!SAFE(e.name) || !Buffer.from(e.name, 'utf8').equals(e.nameRaw)) {
      if (keep.some((k) => e.name.startsWith(`${k}/`))) return null
      continue
    }
    const path = e.name.replace(/\/$/, '')
    if (seen.has(path)) return null
    seen.add(path)
    const isDir = e.name.endsWith('/')
    if (!keep.some((k) => path === k || path.startsWith(`${k}/`))) continue
    if (isDir) {
      if (e.csize !== 0 || e.usize !== 0) return null
      continue
    }
    if (e.flags & 1) return null
    if (e.local + 30 > buf.length || u32(buf, e.local) !== 0x04034b50) return null
    const start = e.local + 30 + u16(buf, e.local + 26) + u16(buf, e.local + 28)
    if (start + e.csize > buf.length) return null
    const data = buf.subarray(start, start + e.csize)
    let bytes
    try {
      if (e.method === 0) bytes = data
      else if (e.method === 8) bytes = zlib.inflateRawSync(data, { maxOutputLength: e.usize + 1 })
      else return null
    } catch {
      return null
    }
    if (bytes.length !== e.usize || zlib.crc32(bytes) !== e.crc) return null
    files.set(path, Buffer.from(bytes))
  }
  for (const p of files.keys()) {
    for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) if (files.has(p.slice(0, i))) return null
  }
  return files
}

/** A seeded generator: next() in [0, 1), int(n) in [0, n). */
function rng(seed) {
  let s = seed >>> 0 || 1
  const next = () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 32
  }
  return { next, int: (n) => Math.floor(next() * Math.max(1, n)) }
}

/** One random mutation of a copy of `buf`: data bytes, CRCs, sizes, offsets, names, extra fields, methods,
 *  truncation, names made equal. Returns [the mutated zip, what was done]. */
function mutate(input, r) {
  const buf = Buffer.from(input)
  const list = entries(buf) || []
  const pick = () => list[r.int(list.length)]
  const kind = r.int(10)
  const e = pick()
  if (!e && kind !== 0 && kind !== 7) return [buf, 'none']
  switch (kind) {
    case 0: {
      const at = r.int(buf.length)
      buf[at] ^= 1 << r.int(8)
      return [buf, `flip byte ${at}`]
    }
    case 1: {
      if (e.local + 30 > buf.length) return [buf, 'none']
      const start = e.local + 30 + u16(buf, e.local + 26) + u16(buf, e.local + 28)
      const at = start + r.int(Math.max(1, e.csize))
      if (at < buf.length) buf[at] = r.int(256)
      return [buf, `data byte ${at} of ${e.name}`]
    }
    case 2:
      buf.writeUInt32LE((e.crc ^ (1 << r.int(32))) >>> 0, e.at + 16)
      return [buf, `crc of ${e.name}`]
    case 3: {
      const off = r.int(2) ? 20 : 24
      const v = [r.int(2 ** 32), (u32(buf, e.at + off) + r.int(9) - 4) >>> 0, 0][r.int(3)]
      buf.writeUInt32LE(v >>> 0, e.at + off)
      return [buf, `size ${off} of ${e.name} = ${v}`]
    }
    case 4:
      buf.writeUInt32LE((e.local + r.int(64) - 32) >>> 0, e.at + 42)
      return [buf, `offset of ${e.name}`]
    case 5: {
      const n = e.nameRaw.length
      if (n) buf[e.at + 46 + r.int(n)] = [0x2f, 0x2e, 0x5c, 0x3a, 0, 0x78, 0xff][r.int(7)]
      return [buf, `name byte of ${e.name}`]
    }
    case 6:
      if (e.local + 30 <= buf.length) buf.writeUInt16LE(r.int(40), e.local + 28)
      return [buf, `local extra length of ${e.name}`]
    case 7: {
      const len = 1 + r.int(buf.length - 1)
      return [buf.subarray(0, len), `truncated to ${len}`]
    }
    case 8:
      buf.writeUInt16LE([0, 8, 12, 99][r.int(4)], e.at + 10)
      return [buf, `method of ${e.name}`]
    default: {
      const other = list.find((o) => o !== e && o.nameRaw.length === e.nameRaw.length)
      if (other) e.nameRaw.copy(buf, other.at + 46)
      return [buf, `name of ${other?.name} = ${e.name}`]
    }
  }
}

module.exports = { entries, reallyHolds, mutate, rng }
