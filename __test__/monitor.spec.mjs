// store.stats() and the low-disk webhook, against a local HTTP server.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import test from 'ava'

import { RustStore, eventually, makeProfile, tempDir, zipProfile } from './helpers.mjs'

/** A webhook receiver on a free loopback port; `status` is what it answers. */
async function webhook(t, status = 204) {
  const received = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, type: req.headers['content-type'], body: JSON.parse(body) })
      res.writeHead(server.status).end()
    })
  })
  server.status = status
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  return { server, received, url: `http://127.0.0.1:${server.address().port}/hooks/disk?token=s3cr3t` }
}

test('stats() reports tiers, sizes, free disk and the embedded tier\'s headroom', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth'), saveErrors: 'reject' })
  const empty = await store.stats()
  t.is(empty.sessions, 0)
  t.is(empty.sessionsFitEstimate, undefined)
  const sizes = []
  for (const seed of [1, 2]) {
    makeProfile(path.join(root, `p${seed}`), { junk: false, seed })
    await zipProfile(path.join(root, `p${seed}`), path.join(root, `${seed}.zip`))
    sizes.push((await store.save({ session: `RemoteAuth-${seed}`, path: path.join(root, `${seed}.zip`) })).storedBytes)
  }
  const stats = await store.stats()
  t.deepEqual(stats.tiers, [{ tier: 'dir', role: 'primary', sessions: 2, objects: 2, bytes: sizes[0] + sizes[1] }])
  t.is(stats.sessions, 2)
  t.is(stats.largestSession.bytes, Math.max(...sizes))
  t.is(stats.averageSessionBytes, Math.floor((sizes[0] + sizes[1]) / 2))
  t.is(stats.disk.path, path.join(root, 'auth'))
  t.true(stats.disk.freeBytes > 0 && stats.disk.freeBytes <= stats.disk.totalBytes)
  t.is(stats.backupLag, undefined, 'no backup tier')
  const dirDisk = fs.statfsSync(path.join(root, 'store'))
  const expected = Math.floor(((dirDisk.bavail * dirDisk.bsize) / 5) * 4 / stats.averageSessionBytes)
  t.true(Math.abs(stats.sessionsFitEstimate - expected) / expected < 0.01, `${stats.sessionsFitEstimate} vs ${expected}`)
})

test('low disk: one JSON POST per repeat interval, nothing while space is above the threshold', async (t) => {
  const hook = await webhook(t)
  const root = tempDir(t)
  const alertOn = (minFreeBytes) => ({
    dir: path.join(root, 'store'),
    dataPath: root,
    diskAlert: { webhookUrl: hook.url, minFreeBytes, checkIntervalMs: 50, repeatIntervalMs: 600_000 },
  })
  const quiet = new RustStore(alertOn(0)) // nothing has less than 0 bytes free
  const low = new RustStore(alertOn(Number.MAX_SAFE_INTEGER))
  const [alert] = await eventually(() => (hook.received.length ? hook.received : Promise.reject(new Error('no alert'))))
  t.is(alert.method, 'POST')
  t.is(alert.url, '/hooks/disk?token=s3cr3t')
  t.is(alert.type, 'application/json')
  t.is(alert.body.event, 'low_disk')
  t.is(alert.body.path, root)
  t.is(alert.body.min_free_bytes, Number.MAX_SAFE_INTEGER)
  t.true(alert.body.free_bytes > 0 && alert.body.total_bytes >= alert.body.free_bytes)
  t.true(Math.abs(alert.body.at - Date.now()) < 60_000)
  // Twenty more checks later: still the one alert (the repeat interval is 10 minutes).
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  t.is(hook.received.length, 1)
  await low.close()
  await quiet.close()
})

test('a failing webhook is reported to onError without its URL, and retried at the next check', async (t) => {
  const hook = await webhook(t, 500)
  const errors = []
  const store = new RustStore({
    dir: path.join(tempDir(t), 'store'),
    diskAlert: { webhookUrl: hook.url, minFreeBytes: Number.MAX_SAFE_INTEGER, checkIntervalMs: 50 },
    onError: (err) => errors.push(err),
  })
  await eventually(() => (errors.length >= 2 ? true : Promise.reject(new Error(`${errors.length} errors`))))
  t.true(hook.received.length >= 2, 'retried')
  t.is(errors[0].code, 'ERR_WEBHOOK')
  t.regex(errors[0].message, /500/)
  t.notRegex(errors[0].message, /s3cr3t|127\.0\.0\.1/)
  await store.close()
})

test('disk alert options are checked', (t) => {
  for (const [diskAlert, name] of [
    [{ webhookUrl: 'not a url' }, /webhookUrl/],
    [{ webhookUrl: 'ftp://x/' }, /webhookUrl/],
    [{ webhookUrl: 'http://x/', checkIntervalMs: 0 }, /checkIntervalMs/],
    [{ webhookUrl: 'http://x/', minFreeBytes: -1 }, /minFreeBytes/],
  ]) {
    const dir = path.join(tempDir(t), 'store')
    const err = t.throws(() => new RustStore({ dir, diskAlert }))
    t.is(err.code, 'ERR_INVALID_OPTION')
    t.regex(err.message, name)
    t.false(fs.existsSync(dir), 'nothing created for a store that was refused')
  }
})
