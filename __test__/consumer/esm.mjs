// An ES module consumer of the installed package: named imports of every export, and a RemoteAuth round trip
// (whatsapp-web.js's RemoteAuth under SafeRemoteAuth, over RustStore's embedded tier) with them.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { RustStore, runCli } from 'wwebjs-rust-store'
import { chromiumArgs, defaultKeptCaches, defaultTrimDatabases, protectedDatabases, trimProfile } from 'wwebjs-rust-store/browser'
import sra, { Events, SafeRemoteAuth, safeRemoteAuth } from 'wwebjs-rust-store/safe-remote-auth'

const require = createRequire(import.meta.url)
const support = process.env.SUPPORT_DIR
const { makeProfile } = require(path.join(support, 'synthetic-profile.js'))
const { fakeClient, waitForFiles } = require(path.join(support, 'remoteauth.js'))

for (const [name, value] of Object.entries({ runCli, trimProfile, safeRemoteAuth })) {
  if (typeof value !== 'function') throw new Error(`${name} is ${typeof value}`)
}
for (const list of [chromiumArgs, defaultKeptCaches, defaultTrimDatabases, protectedDatabases]) {
  if (!Array.isArray(list)) throw new Error('a browser list is missing')
}

const dataPath = path.resolve('auth')
const options = { dir: path.resolve('store'), dataPath }
const auth = (store) => {
  const client = fakeClient()
  const strategy = new SafeRemoteAuth({ store, clientId: 'app', dataPath, backupSyncIntervalMs: 60_000 })
  strategy.setup(client)
  return { strategy, client }
}

const first = auth(new RustStore(options))
await first.strategy.beforeBrowserInitialized()
const kept = makeProfile(first.strategy.userDataDir, { junk: false })
const backedUp = await first.strategy.backup({ emit: true })
await first.strategy.close()
fs.rmSync(first.strategy.userDataDir, { recursive: true, force: true })

// A restarted process: a new store on the same directory restores the profile.
const second = auth(new RustStore(options))
await second.strategy.beforeBrowserInitialized()
await waitForFiles(second.strategy.userDataDir, kept)
const restored = Object.entries(kept).every(([rel, data]) => fs.readFileSync(path.join(second.strategy.userDataDir, rel)).equals(data))
await second.strategy.close()

console.log(
  JSON.stringify({
    backedUp,
    restored,
    events: first.client.events.map(([name]) => name),
    sameClass: sra.SafeRemoteAuth === SafeRemoteAuth,
    leaseLost: Events.LEASE_LOST,
  }),
)
