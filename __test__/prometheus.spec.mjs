// Issue #22: a real Prometheus (Debian's package) scrapes the store's metrics, from the standalone port
// (`metricsPort`), from a Node HTTP server's handler (`store.metrics()`) and from `serve-metrics`, and the shipped
// alert rules pass `promtool check rules` and `promtool test rules`. One Prometheus for the file, scraping every
// second; real redis-server and moto on loopback.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, zipProfile } from './helpers.mjs'
import { freePort, startMoto, startRedis } from './servers.mjs'

const bin = path.resolve('bin/wwebjs-rust-store.js')
const rules = path.resolve('examples/prometheus')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Everything the file starts, stopped after its last test.
const stops = []
const fixture = { teardown: (stop) => stops.push(stop) }
const env = {}

/** The family names docs/operations.md's metrics table lists. */
function documentedFamilies() {
  const doc = fs.readFileSync(path.resolve('docs/operations.md'), 'utf8')
  // The fleet's families appear only on a store running a fleet worker: __test__/fleet.spec.mjs checks those.
  return [...doc.matchAll(/^\| `(wwebjs_rust_store_[a-z_]+)` \|/gm)].map((m) => m[1]).filter((n) => !n.startsWith('wwebjs_rust_store_fleet_'))
}

async function startPrometheus(targets) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-prom-'))
  const port = await freePort()
  const jobs = Object.entries(targets).map(
    ([job, target]) => `  - job_name: ${job}\n    static_configs:\n      - targets: ['${target}']\n`,
  )
  const config = `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n${jobs.join('')}`
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config)
  const args = [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`]
  args.push(`--web.listen-address=127.0.0.1:${port}`, '--log.level=warn')
  const proc = spawn('prometheus', args, { stdio: 'ignore' })
  const spawnFailed = new Promise((_, reject) => proc.once('error', reject))
  stops.push(async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      await exited
    }
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const url = `http://127.0.0.1:${port}`
  const ready = (async () => {
    for (let i = 0; i < 400; i++) {
      try {
        if ((await fetch(`${url}/-/ready`)).ok) return url
      } catch {}
      await sleep(25)
    }
    throw new Error('prometheus did not become ready')
  })()
  return Promise.race([ready, spawnFailed])
}

/** Prometheus' answer to an instant query: [{ metric, value }] with numeric values. */
async function query(q) {
  const res = await fetch(`${env.prometheus}/api/v1/query?query=${encodeURIComponent(q)}`)
  const body = await res.json()
  if (body.status !== 'success') throw new Error(`${q}: ${JSON.stringify(body)}`)
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
}

/** The query's answer once `ok(result)` holds (Prometheus scrapes every second), else the last answer. */
async function settled(q, ok, tries = 100) {
  let result
  for (let i = 0; i < tries; i++) {
    result = await query(q)
    if (ok(result)) return result
    await sleep(200)
  }
  return result
}

const one = (q, value) => settled(q, (r) => r.length === 1 && r[0].value === value)

test.before(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-prom-spec-'))
  stops.push(() => fs.rmSync(root, { recursive: true, force: true }))
  makeProfile(path.join(root, 'profile'), { junk: false, seed: 7 })
  env.zip = path.join(root, 'session.zip')
  await zipProfile(path.join(root, 'profile'), env.zip)
  makeProfile(path.join(root, 'profile2'), { junk: false, seed: 8 })
  env.zip2 = path.join(root, 'session2.zip')
  await zipProfile(path.join(root, 'profile2'), env.zip2)
  env.root = root

  // Store "port": Redis with a tiny maxmemory that evicts, in front of incremental S3 backups, on its metricsPort.
  env.redis = await startRedis(fixture)
  env.redis.cli('CONFIG', 'SET', 'maxmemory', '2mb')
  env.redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')
  const moto = await startMoto(fixture)
  env.bucket = await moto.bucket('prometheus')
  const s3 = { endpoint: moto.endpoint, bucket: env.bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's' }
  env.s3 = s3
  const portA = await freePort()
  env.portStore = new RustStore({
    redis: { url: env.redis.url },
    s3: { ...s3, backupIntervalMs: 0, incremental: true },
    dataPath: path.join(root, 'a'),
    saveErrors: 'reject',
    metricsPort: portA,
  })
  env.portUrl = `http://127.0.0.1:${portA}`

  // Store "handler": the embedded tier, backed up to an S3 endpoint where nothing listens (a stopped server), its
  // metrics mounted on a Node HTTP server as docs/operations.md shows.
  const deadPort = await freePort()
  env.errors = []
  const handlerOptions = {
    dir: path.join(root, 'store-b'),
    dataPath: path.join(root, 'b'),
    s3: { ...s3, endpoint: `http://127.0.0.1:${deadPort}`, backupIntervalMs: 0, timeoutMs: 2000 },
    diskAlert: { webhookUrl: `http://127.0.0.1:${deadPort}/hook`, minFreeBytes: 4096, checkIntervalMs: 3_600_000 },
    onError: (err) => env.errors.push(err.code),
  }
  env.handlerStore = new RustStore(handlerOptions)
  env.otherOwner = new RustStore({ ...handlerOptions, onError: () => {} })
  const store = env.handlerStore
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') return res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(await store.metrics())
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  stops.push(() => new Promise((resolve) => server.close(resolve)))

  // `serve-metrics`, in its own process, over store "handler"'s directory.
  const portC = await freePort()
  const cliArgs = [bin, '--dir', handlerOptions.dir, '--data-path', handlerOptions.dataPath, 'serve-metrics', '--port', String(portC)]
  const cli = spawn(process.execPath, cliArgs, { cwd: root, env: { PATH: process.env.PATH }, stdio: 'ignore' })
  stops.push(async () => {
    if (cli.exitCode !== null) return
    const exited = new Promise((resolve) => cli.once('exit', resolve))
    cli.kill('SIGTERM')
    await exited
  })

  env.prometheus = await startPrometheus({
    port: `127.0.0.1:${portA}`,
    handler: `127.0.0.1:${server.address().port}`,
    cli: `127.0.0.1:${portC}`,
  })
})

test.after.always(async () => {
  for (const store of [env.portStore, env.handlerStore, env.otherOwner]) await store?.close()
  for (const stop of stops.reverse()) await stop()
})

test.serial('the shipped rules pass promtool check rules and promtool test rules', (t) => {
  const check = spawnSync('promtool', ['check', 'rules', 'alerts.yml'], { cwd: rules, encoding: 'utf8' })
  t.is(check.status, 0, check.stdout + check.stderr)
  const alerts = fs.readFileSync(path.join(rules, 'alerts.yml'), 'utf8').match(/^\s+- alert: /gm).length
  t.true(alerts >= 12, `${alerts} alerts`)
  t.regex(check.stdout, new RegExp(`SUCCESS: ${alerts} rules found`))
  // Every alert has a unit test that expects it to fire.
  const names = [...fs.readFileSync(path.join(rules, 'alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1])
  const tested = fs.readFileSync(path.join(rules, 'alerts.test.yml'), 'utf8')
  t.deepEqual(names.filter((n) => !new RegExp(`alertname: ${n}\\n\\s+exp_alerts:\\n\\s+- exp_labels`).test(tested)), [])
  const unit = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: rules, encoding: 'utf8' })
  t.is(unit.status, 0, unit.stdout + unit.stderr)
  const config = spawnSync('promtool', ['check', 'config', 'prometheus.yml'], { cwd: rules, encoding: 'utf8' })
  t.is(config.status, 0, config.stdout + config.stderr)
})

test.serial('the standalone port serves the text format at /metrics only', async (t) => {
  const res = await fetch(`${env.portUrl}/metrics`)
  t.is(res.status, 200)
  t.is(res.headers.get('content-type'), 'text/plain; version=0.0.4')
  const text = await res.text()
  const version = JSON.parse(fs.readFileSync('package.json', 'utf8')).version
  t.true(text.includes(`wwebjs_rust_store_info{version="${version}"} 1\n`), text)
  t.regex(text, /^# TYPE wwebjs_rust_store_saves_total counter$/m)
  t.is((await fetch(`${env.portUrl}/`)).status, 404)
  t.is((await fetch(`${env.portUrl}/metrics`, { method: 'POST' })).status, 405)
  t.is(await env.portStore.metrics().then((m) => m.split('\n')[0].startsWith('# HELP ')), true)
})

test.serial('saves, backups, evictions and a fallback to the backup tier, as Prometheus scraped them', async (t) => {
  const store = env.portStore
  const names = Array.from({ length: 16 }, (_, i) => `RemoteAuth-p${i}`)
  for (const session of names) await store.save({ session, path: env.zip })
  // A second version of one session: an incremental backup with a predecessor.
  await store.save({ session: names[0], path: env.zip2 })
  const evicted = names.find((n) => env.redis.cli('EXISTS', `wa:session:${n}`) === '0')
  t.truthy(evicted, 'Redis evicted a session')
  await store.extract({ session: evicted, path: path.join(env.root, 'evicted.zip') })

  const saves = await one('wwebjs_rust_store_saves_total{job="port",result="ok"}', 17)
  t.is(saves[0]?.value, 17, JSON.stringify(saves))
  t.is((await one('wwebjs_rust_store_saves_total{job="port",result="failed"}', 0))[0]?.value, 0)
  t.is((await one('wwebjs_rust_store_backups_total{job="port",result="ok"}', 17))[0]?.value, 17)
  t.is((await one('wwebjs_rust_store_restore_fallbacks_total{job="port",reason="missing"}', 1))[0]?.value, 1)
  // Redis' own figures, as INFO gives them now.
  const info = (field) => Number(env.redis.cli('INFO').match(new RegExp(`^${field}:(\\d+)`, 'm'))[1])
  const evictions = await settled('wwebjs_rust_store_redis_evicted_keys_total{job="port"}', (r) => r[0]?.value === info('evicted_keys'))
  t.true(evictions[0].value > 0 && evictions[0].value === info('evicted_keys'), JSON.stringify(evictions))
  t.is(evictions[0].metric.policy, 'allkeys-lru')
  t.is((await one('wwebjs_rust_store_redis_maxmemory_bytes{job="port"}', 2 * 1024 * 1024))[0]?.value, 2 * 1024 * 1024)
  const used = await query('wwebjs_rust_store_redis_used_memory_bytes{job="port"}')
  t.true(used[0].value > 0 && used[0].value <= 2 * 1024 * 1024, JSON.stringify(used))
  // Every session's newest backup, in seconds, no later than now.
  const times = await settled('wwebjs_rust_store_session_last_backup_timestamp_seconds{job="port"}', (r) => r.length === 16)
  t.deepEqual(times.map((r) => r.metric.session).sort(), [...names].sort())
  t.true(times.every((r) => r.value > 1.7e9 && r.value <= Date.now() / 1000), JSON.stringify(times[0]))
  t.is((await one('wwebjs_rust_store_backup_interval_seconds{job="port"}', 0))[0]?.value, 0)
})

test.serial('failed backups, the disk threshold and leases lost or retaken on the handler', async (t) => {
  const store = env.handlerStore
  for (let i = 0; i < 3; i++) t.truthy(await store.save({ session: `RemoteAuth-h${i}`, path: env.zip }))
  t.is(env.errors.length, 3, `each failed backup was reported: ${env.errors}`)
  t.is((await one('wwebjs_rust_store_saves_total{job="handler",result="ok"}', 3))[0]?.value, 3)
  t.is((await one('wwebjs_rust_store_backups_total{job="handler",result="failed"}', 3))[0]?.value, 3)
  t.is((await one('wwebjs_rust_store_backups_total{job="handler",result="ok"}', 0))[0]?.value, 0)
  t.is((await one('wwebjs_rust_store_tier_up{job="handler",tier="s3"}', 0))[0]?.value, 0, 'nothing answers there')
  t.is((await one('wwebjs_rust_store_tier_up{job="handler",tier="dir"}', 1))[0]?.value, 1)
  t.is((await one('wwebjs_rust_store_disk_min_free_bytes{job="handler"}', 4096))[0]?.value, 4096)
  const free = await query('wwebjs_rust_store_disk_free_bytes{job="handler"}')
  t.is(free[0]?.metric.path, path.join(env.root, 'b'))
  t.true(free[0].value > 4096, JSON.stringify(free))

  // A lease that expired while nobody else took it is retaken; one another owner took meanwhile is lost.
  const retaken = await store.acquireLease('RemoteAuth-h0', { ttlMs: 200 })
  const lost = await store.acquireLease('RemoteAuth-h1', { ttlMs: 200 })
  await sleep(400)
  t.is(await store.renewLease('RemoteAuth-h0', retaken, { ttlMs: 60_000 }), 'retaken')
  await env.otherOwner.acquireLease('RemoteAuth-h1', { ttlMs: 60_000 })
  const err = await t.throwsAsync(store.renewLease('RemoteAuth-h1', lost, { ttlMs: 60_000 }))
  t.is(err.code, 'ERR_LEASE_LOST')
  t.is((await one('wwebjs_rust_store_leases_retaken_total{job="handler"}', 1))[0]?.value, 1)
  t.is((await one('wwebjs_rust_store_leases_lost_total{job="handler"}', 1))[0]?.value, 1)
  // serve-metrics reads the same tiers from another process; it counted nothing itself.
  t.is((await one('wwebjs_rust_store_tier_sessions{job="cli",role="primary",tier="dir"}', 3))[0]?.value, 3)
  const fit = await settled('wwebjs_rust_store_sessions_fit_estimate{job="cli"}', (r) => r.length === 1)
  t.true(fit[0]?.value > 0, JSON.stringify(fit))
  t.is((await one('wwebjs_rust_store_saves_total{job="cli",result="ok"}', 0))[0]?.value, 0)
})

test.serial('every family docs/operations.md lists is scraped', async (t) => {
  const families = documentedFamilies()
  t.true(families.length >= 25, `the docs table lists ${families.length} families`)
  const missing = []
  for (const name of families) {
    const found = await settled(`count({__name__="${name}"})`, (r) => r.length === 1)
    if (found.length !== 1) missing.push(name)
  }
  t.deepEqual(missing, [])
  // And nothing is scraped that the docs leave out.
  const names = await (await fetch(`${env.prometheus}/api/v1/label/__name__/values`)).json()
  const ours = names.data.filter((n) => n.startsWith('wwebjs_rust_store_'))
  t.deepEqual(ours.filter((n) => !families.includes(n)), [])
})

test.serial('a tier that stops answering turns its tier_up gauge to 0, the scrape still answers', async (t) => {
  await env.redis.stop()
  const down = await one('wwebjs_rust_store_tier_up{job="port",tier="redis",role="primary"}', 0)
  t.is(down[0]?.value, 0, JSON.stringify(down))
  t.is((await one('wwebjs_rust_store_up{job="port"}', 0))[0]?.value, 0)
  t.is((await one('up{job="port"}', 1))[0]?.value, 1, 'the endpoint itself still answers')
  t.is((await one('wwebjs_rust_store_tier_up{job="port",tier="s3",role="backup"}', 1))[0]?.value, 1)
})
