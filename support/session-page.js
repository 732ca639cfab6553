'use strict'
// The HTTPS server that stands in for web.whatsapp.com (Chromium maps the name to it on loopback). Its one page
// runs `?mode=write` (store the session data, then read it back) or `?mode=read` (read whatever the profile
// holds) and exposes the outcome as the promise `window.session`: `{ counts, digest }`, the page's signal
// that it is done.

const https = require('node:https')
const { sessionData, canonicalSession, sessionCounts } = require('./session-data.js')

// Runs in the page. Writes through the plain IndexedDB and localStorage APIs, as WhatsApp Web does.
async function pageMain() {
  const query = new URLSearchParams(location.search)
  const done = (req) =>
    new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result)
      req.onerror = () => reject(req.error)
    })
  const committed = (tx) =>
    new Promise((resolve, reject) => {
      tx.oncomplete = resolve
      tx.onerror = () => reject(tx.error)
      tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'))
    })

  if (query.get('mode') === 'write') {
    const data = sessionData({ seed: Number(query.get('seed')), messages: Number(query.get('messages')) })
    for (const [name, stores] of Object.entries(data.databases)) {
      const open = indexedDB.open(name, 1)
      open.onupgradeneeded = () => {
        for (const [store, { keyPath }] of Object.entries(stores)) open.result.createObjectStore(store, keyPath ? { keyPath } : undefined)
      }
      const db = await done(open)
      for (const [store, { keyPath, records }] of Object.entries(stores)) {
        const tx = db.transaction(store, 'readwrite')
        const os = tx.objectStore(store)
        for (const [key, value] of records) keyPath ? os.put(value) : os.put(value, key)
        await committed(tx)
      }
      db.close()
    }
    for (const [key, value] of Object.entries(data.localStorage)) localStorage.setItem(key, value)
  }

  // Everything the origin holds, from fresh connections: databases the page did not write count too.
  const snapshot = { databases: {}, localStorage: {} }
  for (const { name } of await indexedDB.databases()) {
    const db = await done(indexedDB.open(name))
    snapshot.databases[name] = {}
    for (const store of Array.from(db.objectStoreNames)) {
      const os = db.transaction(store, 'readonly').objectStore(store)
      const [keys, values] = await Promise.all([done(os.getAllKeys()), done(os.getAll())])
      snapshot.databases[name][store] = { records: keys.map((key, i) => [key, values[i]]) }
    }
    db.close()
  }
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i)
    snapshot.localStorage[key] = localStorage.getItem(key)
  }
  const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonicalSession(snapshot)))
  const digest = Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('')
  return { counts: sessionCounts(snapshot), digest }
}

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>WhatsApp</title>
<script>
${sessionData}
${canonicalSession}
${sessionCounts}
${pageMain}
window.session = pageMain()
</script>
`

/** Serves the page over HTTPS on a free loopback port; resolves `{ port, close() }`. */
function servePage({ key, cert }) {
  const server = https.createServer({ key, cert }, (req, res) => {
    if (new URL(req.url, 'https://web.whatsapp.com').pathname !== '/') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE)
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () =>
      resolve({ port: server.address().port, close: () => new Promise((done) => server.close(done)) }),
    )
  })
}

module.exports = { servePage }
