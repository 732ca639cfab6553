// Conditional writes on Redis (an import over an older copy, a first import, and what `cleanup` deletes) are one
// step on the server: a save by a running service that lands after the store compared never loses to the older
// decision. The race is held open by a proxy that stops the store's write command before Redis sees it; the
// service's save lands while it is held.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import test from 'ava'

import { RustStore, profileZip } from './helpers.mjs'
import { startRedis } from './servers.mjs'

const SESSION = 'RemoteAuth-ana'
const KEY = `wa:session:${SESSION}`

/** A zip of a profile (seed `seed`) as `<dir>/<SESSION>.zip`, dated an hour ahead so no stored copy is newer. */
async function sessionZip(t, seed) {
  const zip = await profileZip(t, seed, `${SESSION}.zip`)
  const later = new Date(Date.now() + 3600_000)
  fs.utimesSync(zip, later, later)
  return { dir: path.dirname(zip), zip }
}

/**
 * A TCP proxy to Redis at `port` that, once `arm()`ed, holds the first command that writes (`SET`, `DEL`, or a
 * script, `EVAL`) and everything after it: `held` resolves when it holds one, `release()` lets it all through.
 */
async function writeHoldingProxy(t, port) {
  const WRITES = ['$3\r\nSET\r\n', '$3\r\nDEL\r\n', '$4\r\nEVAL\r\n'].map((s) => Buffer.from(s))
  const proxy = { armed: false, queue: null, sockets: new Set() }
  proxy.held = new Promise((resolve) => (proxy.onHeld = resolve))
  const server = net.createServer((client) => {
    const redis = net.connect(port, '127.0.0.1')
    for (const socket of [client, redis]) {
      proxy.sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => (client.destroy(), redis.destroy()))
    }
    redis.pipe(client)
    proxy.forward = (chunk) => redis.write(chunk)
    client.on('data', (chunk) => {
      if (proxy.queue) return proxy.queue.push([redis, chunk])
      if (proxy.armed && WRITES.some((w) => chunk.includes(w))) {
        proxy.armed = false
        proxy.queue = [[redis, chunk]]
        return proxy.onHeld()
      }
      redis.write(chunk)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of proxy.sockets) socket.destroy()
    server.close()
  })
  proxy.url = `redis://127.0.0.1:${server.address().port}`
  proxy.arm = () => (proxy.armed = true)
  proxy.release = () => {
    const queue = proxy.queue ?? []
    proxy.queue = null
    for (const [redis, chunk] of queue) redis.write(chunk)
  }
  return proxy
}

/** A store straight on Redis (the running service) and one through the holding proxy (the CLI or an import). */
async function twoStores(t) {
  const redis = await startRedis(t)
  const proxy = await writeHoldingProxy(t, redis.port)
  const service = new RustStore({ redis: { url: redis.url }, saveErrors: 'reject' })
  const held = new RustStore({ redis: { url: proxy.url }, saveErrors: 'reject' })
  return { redis, proxy, service, held }
}

/** The stored value of the session, raw. */
function stored(redis) {
  return redis.cli('GETRANGE', KEY, '0', '-1')
}

test.serial('an import over an older copy keeps a save the service made after the import compared', async (t) => {
  const { redis, proxy, service, held } = await twoStores(t)
  const older = await sessionZip(t, 1)
  const source = await sessionZip(t, 2)
  const newer = await sessionZip(t, 3)
  await service.save({ session: SESSION, path: older.zip })
  proxy.arm()
  const importing = held.importFrom(source.dir, { execute: true, overwrite: true })
  await proxy.held
  await service.save({ session: SESSION, path: newer.zip })
  const saved = stored(redis)
  proxy.release()
  const report = await importing
  t.is(report.sessions.length, 1)
  t.is(report.sessions[0].status, 'failed', JSON.stringify(report.sessions[0]))
  t.is(report.sessions[0].error?.code, 'ERR_SESSION_CHANGED')
  t.is(stored(redis), saved, "the service's save stands")
  t.true(Number(redis.cli('PTTL', KEY)) > 0, 'with its TTL')
})

test.serial('a first import keeps a save the service made meanwhile; an import that wins gets the TTL a save gets', async (t) => {
  const { redis, proxy, service, held } = await twoStores(t)
  const source = await sessionZip(t, 2)
  const newer = await sessionZip(t, 3)
  proxy.arm()
  const importing = held.importFrom(source.dir, { execute: true })
  await proxy.held
  await service.save({ session: SESSION, path: newer.zip })
  const saved = stored(redis)
  proxy.release()
  const report = await importing
  t.is(report.sessions[0].error?.code, 'ERR_SESSION_CHANGED', JSON.stringify(report.sessions[0]))
  t.is(stored(redis), saved, "the service's save stands")

  // Unhindered, the import replaces the copy it compared, and the key expires as a saved one does.
  redis.cli('PEXPIRE', KEY, '600000')
  const again = await held.importFrom(source.dir, { execute: true, overwrite: true })
  t.is(again.sessions[0].status, 'imported', JSON.stringify(again.sessions[0]))
  t.not(stored(redis), saved)
  t.true(Number(redis.cli('PTTL', KEY)) > 600_000, 'the TTL of a save')
})
