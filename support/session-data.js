'use strict'
// The login data the Chromium test page stores, shaped like WhatsApp Web's (IndexedDB databases of JSON records
// with base64 keys and bodies, plus localStorage tokens), and the digest both sides compute over it.
// Deterministic for a seed, and each function is self-contained: the page gets them as source text
// (Function.prototype.toString), so Node and Chromium run the very same code.

/** `{ databases: { db: { store: { keyPath, records: [[key, value]] } } }, localStorage: { key: value } }` */
function sessionData({ seed = 1, messages = 6000 } = {}) {
  let x = seed >>> 0 || 1
  const next = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
  const b64 = (n) => {
    let s = ''
    for (let i = 0; i < n; i++) s += String.fromCharCode(next() & 255)
    return btoa(s)
  }
  const hex = (n) => (next() % 16 ** Math.min(n, 7)).toString(16).padStart(n, '0')
  const phone = () => `${(10_000_000_000 + (next() % 9_000_000_000)).toString()}@c.us`

  const contacts = Array.from({ length: Math.max(3, Math.ceil(messages / 10)) }, phone)
  const me = phone()
  const message = []
  for (let i = 0; i < messages; i++) {
    const from = contacts[next() % contacts.length]
    const fromMe = next() % 2 === 0
    const id = `${fromMe}_${from}_3EB0${hex(7)}${hex(7)}${String(i).padStart(6, '0')}`
    // Encrypted bodies are incompressible, as in WhatsApp's store; media messages carry a key and a thumbnail.
    const value = { id, t: 1764000000 + i, from: fromMe ? me : from, to: fromMe ? from : me, ack: next() % 4, type: 'chat', body: b64(150 + (next() % 400)) }
    if (next() % 5 === 0) Object.assign(value, { type: 'image', mediaKey: b64(32), thumb: b64(300 + (next() % 300)) })
    message.push([id, value])
  }
  const chat = contacts.map((id, i) => [id, { id, t: 1764000000 + i, unreadCount: next() % 20, archive: next() % 10 === 0, name: `Contact ${i}` }])
  const contact = contacts.map((id, i) => [id, { id, pushname: `Contact ${i}`, isMyContact: true, verifiedLevel: next() % 3 }])
  const user = [
    ['me', { wid: me, pushname: 'Test User', platform: 'android' }],
    ['routingInfo', { edge: next() % 256, dc: next() % 8 }],
  ]
  const identity = contacts.map((id) => [`${id}.0`, { id: `${id}.0`, identityKey: b64(33) }])
  const session = contacts.map((id) => [`${id}.0`, { id: `${id}.0`, session: b64(400 + (next() % 500)) }])
  // Out-of-line numeric keys, as the pre-key store has: exercises key ordering across number and string keys.
  const prekey = Array.from({ length: Math.max(2, Math.ceil(messages / 30)) }, (_, i) => [i + 1, { keyId: i + 1, keyPair: { pubKey: b64(33), privKey: b64(32) } }])

  return {
    databases: {
      wawc: {
        user: { keyPath: null, records: user },
        message: { keyPath: 'id', records: message },
        chat: { keyPath: 'id', records: chat },
        contact: { keyPath: 'id', records: contact },
      },
      'signal-storage': {
        'identity-store': { keyPath: 'id', records: identity },
        'session-store': { keyPath: 'id', records: session },
        'prekey-store': { keyPath: null, records: prekey },
      },
    },
    localStorage: {
      WABrowserId: JSON.stringify(b64(16)),
      WASecretBundle: JSON.stringify({ key: b64(32), encKey: b64(32), macKey: b64(32) }),
      WAToken1: JSON.stringify(b64(32)),
      WAToken2: JSON.stringify(`1@${b64(60)}`),
      'last-wid-md': JSON.stringify(`${me.split('@')[0]}:${next() % 90}@c.us`),
      WANoiseInfo: JSON.stringify({ privKey: b64(32), pubKey: b64(32), recoveryToken: b64(24) }),
      WAWebEncKeySalt: b64(32),
      'WALangPref': '"en"',
    },
  }
}

/**
 * A snapshot as a canonical string: databases, stores and localStorage keys sorted by name, records in
 * IndexedDB key order (numbers before strings), values as JSON.
 * @param {{ databases: Record<string, Record<string, { records: [unknown, unknown][] }>>, localStorage: Record<string, string> }} snapshot
 */
function canonicalSession(snapshot) {
  const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0)
  const byKey = ([a], [b]) => (typeof a !== typeof b ? (typeof a === 'number' ? -1 : 1) : byName(a, b))
  const lines = []
  for (const db of Object.keys(snapshot.databases).sort(byName)) {
    for (const store of Object.keys(snapshot.databases[db]).sort(byName)) {
      for (const [key, value] of [...snapshot.databases[db][store].records].sort(byKey)) {
        lines.push(`idb ${JSON.stringify(db)} ${JSON.stringify(store)} ${JSON.stringify(key)} ${JSON.stringify(value)}`)
      }
    }
  }
  for (const key of Object.keys(snapshot.localStorage).sort(byName)) {
    lines.push(`ls ${JSON.stringify(key)} ${JSON.stringify(snapshot.localStorage[key])}`)
  }
  return lines.join('\n')
}

/** Records per `db/store` and the localStorage key count: what a loss shows up in first. */
function sessionCounts(snapshot) {
  const counts = {}
  for (const [db, stores] of Object.entries(snapshot.databases)) {
    for (const [store, { records }] of Object.entries(stores)) counts[`${db}/${store}`] = records.length
  }
  counts.localStorage = Object.keys(snapshot.localStorage).length
  return counts
}

/** What Node expects the page to read back: counts and the SHA-256 of the canonical string. */
function expectedSession(params) {
  const snapshot = sessionData(params)
  const digest = require('node:crypto').createHash('sha256').update(canonicalSession(snapshot)).digest('hex')
  return { counts: sessionCounts(snapshot), digest }
}

/** Human-readable differences between two `{ counts, digest }`; empty when the login came back whole. */
function sessionDifferences(expected, actual) {
  const diffs = []
  const names = new Set([...Object.keys(expected.counts), ...Object.keys(actual.counts)])
  for (const name of [...names].sort()) {
    const [want, got] = [expected.counts[name] ?? 0, actual.counts[name] ?? 0]
    if (want !== got) diffs.push(`${name}: ${got} read back, ${want} written`)
  }
  if (expected.digest !== actual.digest) diffs.push('digest: the values read back differ from those written')
  return diffs
}

module.exports = { sessionData, canonicalSession, sessionCounts, expectedSession, sessionDifferences }
