// A fleet worker as deployment.yaml runs it: the store from the environment (RustStore.fromEnv(): REDIS_URL,
// S3_*, SESSION_ENCRYPTION_KEY, METRICS_PORT / METRICS_HOST for the probes and the scrape), one whatsapp-web.js
// client per session the fleet gives this pod, and a drain on SIGTERM. Copy it next to examples/Dockerfile as
// your-service.js.
const { Client } = require('whatsapp-web.js')
const { RustStore } = require('wwebjs-rust-store')
const { chromiumArgs } = require('wwebjs-rust-store/browser')
const { SafeRemoteAuth } = require('wwebjs-rust-store/safe-remote-auth')

const store = RustStore.fromEnv()
const clients = new Map()

const fleet = store.fleet({
  // The pod's name, from the downward API: unique in the fleet and stable for the pod's life.
  workerId: process.env.WORKER_ID,
  capacity: Number(process.env.WORKER_CAPACITY ?? 5),
  async onStart(start) {
    const client = new Client({
      authStrategy: SafeRemoteAuth.forFleet(start, { store, dataPath: process.env.WWEBJS_DATA_PATH, backupSyncIntervalMs: 300_000 }),
      puppeteer: { args: [...chromiumArgs, '--no-sandbox'] },
    })
    clients.set(start.session, client)
    await client.initialize()
  },
  async onStop(session) {
    await clients.get(session)?.destroy()
    clients.delete(session)
  },
  onEvent: (event) => console.warn('fleet', event.type, event.session, event.message ?? ''),
})

// Kubernetes sends SIGTERM after the preStop hook; terminationGracePeriodSeconds covers all of this.
process.once('SIGTERM', async () => {
  await fleet.drain() // hand every session to the other pods
  await fleet.close()
  await store.close() // upload what the backup timer still holds
  process.exit(0)
})
