// One job of the bench in its own process, forked by run.mjs with the contender's work dir as cwd, so that
// process.resourceUsage().maxRSS is that contender's alone. Every job loads the same harness (unzipper and
// every input in memory, for the checks); the 'baseline' job does only that, so its RSS is the harness's share.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

import { summarize } from './stats.mjs'

const require = createRequire(import.meta.url)
const unzipper = require('unzipper')
const { job, contender: name, ctx, inputs, plan } = JSON.parse(process.argv[2])
const log = (...args) => console.log(`  [${name ?? job}]`, ...args)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// The zip bytes (stores that must hand back the same zip) and the kept files (RustStore writes its own zip).
const zips = {}
const kept = {}
for (const [size, input] of Object.entries(inputs)) {
  zips[size] = fs.readFileSync(input.zip)
  kept[size] = new Map(input.files.map((rel) => [rel, fs.readFileSync(path.join(input.profileDir, rel))]))
}
const outDir = path.join(ctx.workDir, 'out')
fs.mkdirSync(outDir, { recursive: true })

/**
 * `<cwd>/<session>.zip`, a hard link to the input zip: where RemoteAuth <= 1.34.4 leaves it and the only place
 * wwebjs-aws-s3 and the seed store look. Every contender gets this same path.
 */
function zipFor(size, session) {
  const file = path.resolve(`${session}.zip`)
  if (!fs.existsSync(file)) fs.linkSync(inputs[size].zip, file)
  return file
}

async function verify(contender, size, file) {
  if (contender.verify === 'zip') {
    const got = fs.readFileSync(file)
    if (!got.equals(zips[size])) throw new Error(`extract returned other bytes (${got.length} B, the zip has ${zips[size].length} B)`)
    return
  }
  // RustStore's pad file (README, "Archive format") is not part of the profile.
  const files = (await unzipper.Open.file(file)).files.filter((f) => f.type === 'File' && f.path !== 'wwebjs-rust-store.pad')
  const want = kept[size]
  if (files.length !== want.size) throw new Error(`extract holds ${files.length} files, the profile kept ${want.size}`)
  for (const f of files) {
    const expected = want.get(f.path)
    if (!expected) throw new Error(`extract holds an unexpected file ${f.path}`)
    if (!(await f.buffer()).equals(expected)) throw new Error(`extract: ${f.path} differs from the profile`)
  }
}

/** Runs `op` on every item at once; records each latency (ms) and returns the wall time of the round. */
async function round(items, latencies, op) {
  const start = performance.now()
  await Promise.all(
    items.map(async (item, i) => {
      const t = performance.now()
      await op(item, i)
      latencies.push(performance.now() - t)
    }),
  )
  return performance.now() - start
}

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `RemoteAuth-${prefix}-${i}`)

/**
 * Rounds of `c` concurrent saves then `c` concurrent extracts of distinct sessions, until `ops` saves or the
 * time box. Sessions carry over between cells of a size, so most timed saves replace a stored copy, as
 * RemoteAuth's periodic backups do; the first save of each session is timed too (seeding 64 large sessions
 * untimed would cost minutes against moto). Each extract is checked after its round, outside the timings.
 */
async function cell(contender, size, c, ops, boxMs, used) {
  const sessions = names(size, c)
  const zipPaths = sessions.map((s) => zipFor(size, s))
  for (const s of sessions) used.add(s)

  const save = []
  const extract = []
  let saveMs = 0
  let extractMs = 0
  const start = performance.now()
  do {
    saveMs += await round(sessions, save, (s, i) => contender.save(s, zipPaths[i]))
    const outs = sessions.map((s) => path.join(outDir, `${s}.zip`))
    extractMs += await round(sessions, extract, (s, i) => contender.extract(s, outs[i]))
    for (const out of outs) {
      await verify(contender, size, out)
      fs.rmSync(out)
    }
  } while (save.length < ops && performance.now() - start < boxMs)
  return {
    save: summarize(save),
    extract: summarize(extract),
    saveRate: (save.length / saveMs) * 1000,
    extractRate: (extract.length / extractMs) * 1000,
  }
}

/**
 * The JS thread's time on a CPU and waiting in the run queue, in ns (Linux schedstat): tells a loop that is
 * busy (work on the JS thread) from one that is starved (other threads hold both cores).
 */
function jsThreadSched() {
  try {
    const [run, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number)
    return { run, wait }
  } catch {
    return null
  }
}

/** Event-loop delay while `n` first saves run at once (values include the 1 ms sampling interval). */
async function loopDelay(contender, size, n) {
  const sessions = names(`loop-${size}`, n)
  const zipPaths = sessions.map((s) => zipFor(size, s))
  const h = monitorEventLoopDelay({ resolution: 1 })
  const before = jsThreadSched()
  const start = performance.now()
  h.enable()
  await Promise.all(sessions.map((s, i) => contender.save(s, zipPaths[i])))
  h.disable()
  const wallMs = performance.now() - start
  const after = jsThreadSched()
  for (const s of sessions) await contender.remove(s)
  return {
    max: h.max / 1e6,
    p99: h.percentile(99) / 1e6,
    wallMs,
    jsCpuMs: after ? (after.run - before.run) / 1e6 : undefined,
    jsQueuedMs: after ? (after.wait - before.wait) / 1e6 : undefined,
  }
}

async function idleLoop(ms) {
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  await sleep(ms)
  h.disable()
  return { max: h.max / 1e6, p99: h.percentile(99) / 1e6 }
}

/** Runs `fn`; a throw becomes `{ failed }` so one broken figure does not hide the others. */
async function attempt(what, fn) {
  try {
    return await fn()
  } catch (err) {
    log(`${what}: FAILED: ${err.message}`)
    return { failed: String(err.message).split('\n')[0].slice(0, 200) }
  }
}

async function figures() {
  const contender = require(`./contenders/${name}.js`)
  const result = { cells: {}, stored: {}, loop: {} }
  const setup = await attempt('setup', () => contender.setup(ctx))
  if (setup?.failed) return { failed: setup.failed }

  // Warm up connections and JIT before the first timed op.
  await attempt('warm-up', async () => {
    const zip = zipFor('small', 'RemoteAuth-warmup')
    for (let i = 0; i < 10; i++) {
      await contender.save('RemoteAuth-warmup', zip)
      await contender.extract('RemoteAuth-warmup', path.join(outDir, 'warmup.zip'))
    }
    await verify(contender, 'small', path.join(outDir, 'warmup.zip'))
    await contender.remove('RemoteAuth-warmup')
  })

  // Before the big cells, whose leftover garbage would put the collector into these figures.
  result.loop.idle = await idleLoop(500)
  for (const size of plan.loopSizes) {
    result.loop[size] = await attempt(`event loop ${size}`, () => loopDelay(contender, size, plan.loopSaves))
  }

  for (const size of Object.keys(inputs)) {
    const used = new Set()
    result.cells[size] = {}
    for (const c of plan.concurrency) {
      result.cells[size][c] = await attempt(`${size} c=${c}`, () => cell(contender, size, c, plan.ops[size][c], plan.boxMs[size], used))
      const r = result.cells[size][c]
      if (!r.failed) {
        log(`${size} c=${c}: save p50 ${r.save.p50.toFixed(1)} ms p99 ${r.save.p99.toFixed(1)} ms, extract p50 ${r.extract.p50.toFixed(1)} ms p99 ${r.extract.p99.toFixed(1)} ms (n=${r.save.n})`)
      }
    }
    // Bytes held for one session saved once (one backup version).
    result.stored[size] = await attempt(`${size} stored bytes`, async () => {
      const session = `RemoteAuth-${size}-bytes`
      await contender.save(session, zipFor(size, session))
      const bytes = await contender.storedBytes(session)
      // What extract writes for RemoteAuth to read back.
      const out = path.join(outDir, `${session}.zip`)
      await contender.extract(session, out)
      bytes.transient = { bytes: fs.statSync(out).size }
      fs.rmSync(out)
      await contender.remove(session)
      return bytes
    })
    // Remove this size's sessions so Redis and moto stay small for the next size.
    await attempt(`${size} cleanup`, async () => {
      for (const s of used) await contender.remove(s)
    })
  }

  await attempt('teardown', () => contender.teardown())
  return result
}

/** RustStore.restoreAll of `n` small sessions from S3 into an empty Redis. */
async function restoreAll(n) {
  const { RustStore, s3Options } = require('./contenders/rust.js')
  const { redisCli } = require('./contenders/measure.js')
  const zip = inputs.small.zip
  const sessions = names('restore', n)

  // Fill the bucket: saves with S3 as the only tier, 64 at a time.
  const fill = new RustStore({ primary: 'none', s3: s3Options(ctx), saveErrors: 'reject' })
  const fillStart = performance.now()
  for (let i = 0; i < n; i += 64) await Promise.all(sessions.slice(i, i + 64).map((session) => fill.save({ session, path: zip })))
  const fillMs = performance.now() - fillStart
  log(`filled the bucket with ${n} sessions in ${(fillMs / 1000).toFixed(1)} s`)

  redisCli(ctx.redisUrl, 'FLUSHALL')
  const store = new RustStore({ redis: { url: ctx.redisUrl }, s3: s3Options(ctx), saveErrors: 'reject' })
  const start = performance.now()
  const summary = await store.restoreAll({ concurrency: 64 })
  const ms = performance.now() - start
  if (summary.copied !== n || summary.failed !== 0) throw new Error(`restoreAll copied ${summary.copied} of ${n}, ${summary.failed} failed`)
  const keys = Number(redisCli(ctx.redisUrl, 'DBSIZE'))
  if (keys !== n) throw new Error(`Redis holds ${keys} keys after restoreAll, expected ${n}`)
  // Spot-check what landed in Redis.
  for (const session of [sessions[0], sessions[n - 1]]) {
    const out = path.join(outDir, `${session}.zip`)
    await store.extract({ session, path: out })
    await verify({ verify: 'files' }, 'small', out)
  }
  await store.close()
  log(`restoreAll: ${n} sessions in ${(ms / 1000).toFixed(1)} s`)
  return { sessions: n, ms, rate: (n / ms) * 1000, bytes: summary.bytes, fillMs }
}

let result
if (job === 'figures') result = await figures()
else if (job === 'restoreAll') result = await attempt('restoreAll', () => restoreAll(plan.restoreSessions))
else result = {} // baseline: the harness alone
result.maxRssKB = process.resourceUsage().maxRSS
process.send(result, () => process.exit(0))
