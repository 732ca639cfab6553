'use strict'
// Drives whatsapp-web.js's real RemoteAuth through its backup, restore and logout paths without a browser:
// RemoteAuth only needs `client.options.puppeteer` and `client.emit` for these.

const fs = require('node:fs')
const path = require('node:path')

function fakeClient() {
  const events = []
  return { events, options: { puppeteer: {} }, emit: (name, ...args) => events.push([name, ...args]) }
}

/** A RemoteAuth from the given whatsapp-web.js package (name or alias), set up on a fake client. */
function remoteAuth(pkg, { store, clientId, dataPath }) {
  const RemoteAuth = require(`${pkg}/src/authStrategies/RemoteAuth.js`)
  const auth = new RemoteAuth({ store, clientId, dataPath, backupSyncIntervalMs: 60_000 })
  const client = fakeClient()
  auth.setup(client)
  return { auth, client }
}

/**
 * RemoteAuth resolves its restore on unzipper's 'finish', before every file is written
 * (a known upstream defect); wait until each expected file has its full size.
 */
async function waitForFiles(root, expected, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const missing = Object.entries(expected).filter(([rel, data]) => {
      try {
        return fs.statSync(path.join(root, rel)).size !== data.length
      } catch {
        return true
      }
    })
    if (missing.length === 0) return
    if (Date.now() > deadline) throw new Error(`restore incomplete: ${missing.map(([rel]) => rel).join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** An auth strategy of `Class` (RemoteAuth, SafeRemoteAuth, …) on a fake client, after its start (restore). */
async function started(Class, { store, dataPath, clientId = 'acct', ...options }) {
  const auth = new Class({ store, dataPath, clientId, backupSyncIntervalMs: 60_000, ...options })
  const client = fakeClient()
  auth.setup(client)
  await auth.beforeBrowserInitialized()
  return { auth, client }
}

module.exports = { fakeClient, remoteAuth, started, waitForFiles }
