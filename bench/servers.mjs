// The bench's own redis-server and moto_server on free loopback ports. The specs' helpers already start and
// stop them correctly (wait for PING / HTTP 200, SIGTERM and wait for exit), so reuse them rather than copy.
import { startMoto, startRedis } from '../__test__/servers.mjs'

export async function startServers() {
  const stops = []
  // The helpers register their cleanup on an ava `t`; this stand-in collects it instead.
  const t = { teardown: (fn) => stops.push(fn) }
  try {
    const redis = await startRedis(t)
    const moto = await startMoto(t)
    return { redis, moto, stop: () => stopAll(stops) }
  } catch (err) {
    await stopAll(stops)
    throw err
  }
}

async function stopAll(stops) {
  while (stops.length) await stops.pop()()
}
