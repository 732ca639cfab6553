// An HTTP proxy in front of S3 (moto) for fault specs. Per request, `mode` decides: pass, reset (the connection
// dropped), stall (300 ms, then pass) or 503. Chosen requests can also be held open (`hold`: the reply is
// fetched, then kept back until released, so a race happens every time), trickled (`trickle`: the reply body at
// a few bytes per second) or cut short (`truncate`: half the body, then the connection dropped).
import http from 'node:http'

/** `match({ method, url })` picks requests; `url` is the path and query (path-style: `/<bucket>/<key>?...`). */
export async function faultyProxy(t, port) {
  const rules = []
  const proxy = { mode: 'pass', requests: 0, rules }

  /** Holds the next reply to a matching request; `reached` resolves when it is held, `release()` sends it. */
  proxy.hold = (match) => {
    let release
    const released = new Promise((resolve) => (release = resolve))
    const reached = new Promise((resolve) => rules.push({ match, once: true, action: 'hold', reached: resolve, released }))
    return { reached, release }
  }
  /** Every matching reply's body at `bytesPerSecond` (until the rule is removed with the function returned). */
  proxy.trickle = (match, bytesPerSecond) => remover({ match, action: 'trickle', bytesPerSecond })
  /** Every matching reply is cut off halfway through its body. */
  proxy.truncate = (match) => remover({ match, action: 'truncate' })
  const remover = (rule) => {
    rules.push(rule)
    return () => rules.splice(rules.indexOf(rule), 1)
  }

  const server = http.createServer((req, res) => {
    proxy.requests++
    req.on('error', () => {})
    res.on('error', () => {})
    const mode = proxy.mode
    if (mode === 'reset') return req.socket.resetAndDestroy()
    if (mode === '503') {
      req.resume()
      return res.writeHead(503, { 'content-length': 0, connection: 'close' }).end()
    }
    const at = rules.findIndex((r) => r.match({ method: req.method, url: req.url }))
    const rule = at >= 0 ? rules[at] : null
    if (rule?.once) rules.splice(at, 1)
    const forward = () => {
      const upstream = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, async (reply) => {
        if (rule?.action === 'hold') {
          rule.reached()
          await rule.released
        }
        if (rule?.action === 'trickle' || rule?.action === 'truncate') return slowly(reply, res, rule)
        res.writeHead(reply.statusCode, reply.headers)
        reply.pipe(res)
      })
      upstream.on('error', () => req.socket.destroy())
      req.pipe(upstream)
    }
    mode === 'stall' ? setTimeout(forward, 300) : forward()
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  proxy.endpoint = `http://127.0.0.1:${server.address().port}`
  return proxy
}

/** A reply's body at `rule.bytesPerSecond`, or (truncate) half of it before the connection drops. */
async function slowly(reply, res, rule) {
  const chunks = []
  for await (const chunk of reply) chunks.push(chunk)
  const body = Buffer.concat(chunks)
  res.writeHead(reply.statusCode, reply.headers)
  if (rule.action === 'truncate') {
    res.write(body.subarray(0, body.length >> 1))
    return setTimeout(() => res.socket?.destroy(), 50)
  }
  const step = Math.max(1, Math.round(rule.bytesPerSecond / 10))
  for (let at = 0; at < body.length && !res.destroyed; at += step) {
    res.write(body.subarray(at, at + step))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  res.end()
}
