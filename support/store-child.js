'use strict'
// A RustStore in a process of its own, driven over IPC by a multi-process spec: `fork(store-child.js, [json
// options])`, then `{ id, method, args }` messages call `store[method](...args)` and are answered `{ id, value }`
// or `{ id, code, message }`. `{ id, method: 'safeStart', args: [{ clientId, dataPath, lease }] }` runs a
// SafeRemoteAuth's `beforeBrowserInitialized()` on this store instead.
const { RustStore } = require('../index.js')
const { safeRemoteAuth } = require('../safe-remote-auth.js')
const { fakeClient } = require('./remoteauth.js')

const store = new RustStore(JSON.parse(process.argv[2]))
const auths = []

async function call(method, args) {
  if (method === 'safeStart') {
    const SafeRemoteAuth = safeRemoteAuth(require('whatsapp-web.js/src/authStrategies/RemoteAuth.js'))
    const auth = new SafeRemoteAuth({ store, backupSyncIntervalMs: 60_000, ...args[0] })
    auth.setup(fakeClient())
    auths.push(auth)
    await auth.beforeBrowserInitialized()
    return auth.userDataDir
  }
  return store[method](...args)
}

process.on('message', ({ id, method, args }) => {
  call(method, args).then(
    (value) => process.send({ id, value: value ?? null }),
    (err) => process.send({ id, code: err.code ?? 'ERR_UNCODED', message: String(err.message) }),
  )
})
process.send({ ready: true })
