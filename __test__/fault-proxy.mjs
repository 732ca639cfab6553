// A TCP proxy before a server (Redis, S3) whose mode the spec sets at any time, for every connection open or new:
//   pass    forward both ways;
//   hold    forward nothing and close nothing (a partition that drops packets): what arrives meanwhile is queued
//           and delivered once the mode is pass again, as TCP's retransmissions would;
//   reset   reset every connection (RST), and each new one at once;
//   refuse  close every connection, and each new one at once (connection refused);
//   delay   forward each chunk `delayMs` late;
//   stall   new connections wait 300 ms before they pass (a slow accept);
//   503     answer each new connection's first request with an HTTP 503.
// `holdAfter(marker)` passes until a client's chunk holding `marker` went through, then holds from the next chunk
// any client sends (a cut that falls between two steps: after a lease is taken, before what its taker sends next).
import net from 'node:net'

export async function faultProxy(t, port, { scheme = 'tcp', delayMs = 200 } = {}) {
  const pairs = new Set()
  const proxy = {
    mode: 'pass',
    delayMs,
    connections: 0,
    armed: null,
    holdAfter(marker) {
      proxy.armed = { marker: Buffer.from(marker), seen: false }
    },
    /** Sets the mode; reset and refuse act on the open connections too, pass flushes what hold queued. */
    set(mode) {
      proxy.mode = mode
      for (const pair of pairs) {
        if (mode === 'reset') pair.reset()
        if (mode === 'refuse') pair.close()
        if (mode === 'pass') pair.flush()
      }
    },
  }
  const server = net.createServer((client) => {
    proxy.connections++
    client.on('error', () => {})
    const mode = proxy.mode
    if (mode === 'reset') return client.resetAndDestroy()
    if (mode === 'refuse') return client.destroy()
    if (mode === '503') {
      client.once('data', () => client.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'))
      return
    }
    const connect = () => {
      const upstream = net.connect(port, '127.0.0.1')
      upstream.on('error', () => {})
      const queued = []
      const send = (to, chunk) => {
        if (proxy.mode === 'hold') return queued.push([to, chunk])
        if (proxy.mode === 'delay') return setTimeout(() => to.destroyed || to.write(chunk), proxy.delayMs)
        to.write(chunk)
      }
      const pair = {
        reset() {
          client.resetAndDestroy()
          upstream.resetAndDestroy()
        },
        close() {
          client.destroy()
          upstream.destroy()
        },
        flush() {
          for (const [to, chunk] of queued.splice(0)) if (!to.destroyed) to.write(chunk)
        },
      }
      pairs.add(pair)
      client.on('data', (chunk) => {
        const armed = proxy.armed
        if (armed?.seen) {
          proxy.armed = null
          proxy.mode = 'hold'
        }
        send(upstream, chunk)
        if (armed && !armed.seen && chunk.includes(armed.marker)) armed.seen = true
      })
      upstream.on('data', (chunk) => send(client, chunk))
      for (const s of [client, upstream]) {
        s.on('close', () => {
          pairs.delete(pair)
          pair.close()
        })
      }
    }
    mode === 'stall' ? setTimeout(connect, 300) : connect()
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const pair of pairs) pair.close()
    server.close()
  })
  proxy.port = server.address().port
  proxy.url = `${scheme === 'tcp' ? 'redis' : scheme}://127.0.0.1:${proxy.port}`
  proxy.endpoint = `http://127.0.0.1:${proxy.port}`
  return proxy
}
