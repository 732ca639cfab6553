// The metrics port for orchestrators: `metricsAddress()` tells the port `metricsPort: 0` picked; `/healthz` answers
// while the process does, Redis or not; `/readyz` follows the primary (a real redis-server, killed and started
// again on its port) and a fleet worker's connection.
import path from 'node:path'
import test from 'ava'

import { RustStore, eventually, tempDir } from './helpers.mjs'
import { startRedis } from './servers.mjs'

async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(20_000) })
  return { status: res.status, body: await res.text() }
}

test('metricsAddress() gives the bound address after metricsPort: 0, and null without a port', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: root, metricsPort: 0 })
  t.teardown(() => store.close())
  const address = store.metricsAddress()
  t.is(address.host, '127.0.0.1')
  t.true(Number.isInteger(address.port) && address.port > 0, JSON.stringify(address))
  t.is(address.url, `http://127.0.0.1:${address.port}`)
  const metrics = await get(`${address.url}/metrics`)
  t.is(metrics.status, 200)
  t.regex(metrics.body, /^wwebjs_rust_store_info\{version="[^"]+"\} 1$/m)
  // The embedded tier answers: ready.
  t.deepEqual(await get(`${address.url}/readyz`), { status: 200, body: 'ready\n' })
  t.is((await get(`${address.url}/nope`)).status, 404)
  t.is(new RustStore({ dir: path.join(root, 'other'), dataPath: root }).metricsAddress(), null)
})

test.serial('readyz follows Redis down and back; healthz stays 200 throughout', async (t) => {
  const root = tempDir(t)
  const redis = await startRedis(t)
  const store = new RustStore({ redis: { url: redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }, dataPath: root, metricsPort: 0 })
  t.teardown(() => store.close())
  const { url } = store.metricsAddress()
  t.deepEqual(await get(`${url}/healthz`), { status: 200, body: 'ok\n' })
  t.deepEqual(await get(`${url}/readyz`), { status: 200, body: 'ready\n' })

  await redis.kill()
  const downAt = Date.now()
  // Within a few seconds (each probe itself is bounded at 2 s), generously on a loaded machine.
  const down = await eventually(async () => {
    const res = await get(`${url}/readyz`)
    if (res.status !== 503) throw new Error(`readyz ${res.status}`)
    return res
  }, 150)
  t.log(`readyz 503 after ${Date.now() - downAt} ms`)
  t.regex(down.body, /^not ready: the primary tier \(redis\) did not answer within 2s\n$/)
  t.deepEqual(await get(`${url}/healthz`), { status: 200, body: 'ok\n' })

  await redis.start()
  await eventually(async () => {
    const res = await get(`${url}/readyz`)
    if (res.status !== 200) throw new Error(`readyz ${res.status}: ${res.body}`)
  }, 150)
  t.deepEqual(await get(`${url}/healthz`), { status: 200, body: 'ok\n' })
})

test.serial('with a fleet, readyz says ready while the worker is connected, and not while it drains', async (t) => {
  const root = tempDir(t)
  const redis = await startRedis(t)
  const store = new RustStore({ redis: { url: redis.url }, dataPath: root, metricsPort: 0 })
  t.teardown(() => store.close())
  const { url } = store.metricsAddress()
  const fleet = store.fleet({ workerId: 'probe-w1', capacity: 1, ttlMs: 3000, onStart: async () => {}, onStop: async () => {} })
  t.teardown(() => fleet.close())
  await eventually(() => {
    if (!fleet.status().connected) throw new Error('not connected yet')
  }, 100)
  t.deepEqual(await get(`${url}/readyz`), { status: 200, body: 'ready\n' })
  // A draining worker is leaving: not ready, though Redis answers.
  await fleet.drain()
  const draining = await eventually(async () => {
    const res = await get(`${url}/readyz`)
    if (res.status !== 503) throw new Error(`readyz ${res.status}`)
    return res
  }, 150)
  t.is(draining.body, 'not ready: fleet worker probe-w1 is draining\n')
  t.deepEqual(await get(`${url}/healthz`), { status: 200, body: 'ok\n' })
  // Gone from the fleet, the store alone is ready again.
  await fleet.close()
  t.deepEqual(await get(`${url}/readyz`), { status: 200, body: 'ready\n' })
})
