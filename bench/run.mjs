// `npm run bench`: RustStore against the RemoteAuth stores people use today, on the same Redis and S3 server.
// Starts its own redis-server and moto_server, runs every contender in its own child process (worker.mjs),
// writes bench/results.md and bench/chart.svg. To try the harness: `--quick` runs a few ops per figure,
// `--only=name,name` runs only those contenders (file names under bench/contenders/).
import { execFileSync, fork, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'

import { barChart } from './chart.mjs'
import { startServers } from './servers.mjs'

const here = import.meta.dirname
const require = createRequire(import.meta.url)
const { zipProfile } = require('../support/zip-profile.js')
const { makeProfile } = require('../support/synthetic-profile.js')
const quick = process.argv.includes('--quick')
const SIZES = ['small', 'medium', 'large', 'json']

const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',')
const ALL_CONTENDERS = [
  { name: 'rust-embedded', color: '#1f6feb', rust: true },
  { name: 'rust-redis', color: '#0a3d91', rust: true },
  { name: 'rust-redis-s3', color: '#6e40c9', rust: true },
  // The same embedded tier from an earlier build, when BENCH_BEFORE_ADDON names its .node: before/after in one run.
  ...(process.env.BENCH_BEFORE_ADDON ? [{ name: 'rust-embedded-before', color: '#79c0ff' }] : []),
  { name: 'seed-redis-store', color: '#d9822b', alt: true },
  { name: 'wwebjs-aws-s3', color: '#c4432b', alt: true },
  { name: 'floor-redis', color: '#8c959f', floor: true },
  { name: 'floor-s3', color: '#57606a', floor: true },
]
const CONTENDERS = ALL_CONTENDERS.filter((c) => !only || only.includes(c.name))

// Ops per cell (saves; as many extracts), capped by a time box per cell so the whole run stays near 10 min on
// 2 cores. A cell always completes at least one round of `c` concurrent sessions.
const PLAN = {
  concurrency: [1, 16, 64],
  ops: quick
    ? { small: { 1: 5, 16: 16, 64: 64 }, medium: { 1: 3, 16: 16, 64: 64 }, large: { 1: 2, 16: 16, 64: 64 }, json: { 1: 5, 16: 16, 64: 64 } }
    : { small: { 1: 200, 16: 256, 64: 256 }, medium: { 1: 100, 16: 128, 64: 128 }, large: { 1: 12, 16: 32, 64: 64 }, json: { 1: 200, 16: 256, 64: 256 } },
  boxMs: quick ? { small: 500, medium: 500, large: 500, json: 500 } : { small: 2500, medium: 2500, large: 4000, json: 2500 },
  loopSizes: ['small', 'medium'],
  loopSaves: 100,
  restoreSessions: quick ? 200 : 3000,
}
const WORKER_TIMEOUT_MS = 300_000

const sh = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8' }).trim()


/** Profiles at three sizes, zipped as RemoteAuth zips them, and the `tar | zstd -19` size of the kept files. */
async function makeInputs(root) {
  if (spawnSync('zstd', ['--version']).error) throw new Error('the zstd CLI is missing: apt-get install -y zstd')
  const inputs = {}
  for (const size of SIZES) {
    const profileDir = path.join(root, 'inputs', size)
    const kept = makeProfile(profileDir, { size, junk: false, seed: 1 })
    const zip = path.join(root, 'inputs', `${size}.zip`)
    await zipProfile(profileDir, zip)
    const tar = spawnSync('tar', ['-C', profileDir, '-cf', '-', 'Default/IndexedDB', 'Default/Local Storage'], { maxBuffer: 1 << 30 })
    const zst = spawnSync('zstd', ['-19', '-q', '-c'], { input: tar.stdout, maxBuffer: 1 << 30 })
    if (tar.status !== 0 || zst.status !== 0) throw new Error(`tar | zstd -19 failed: ${tar.stderr}${zst.stderr}`)
    inputs[size] = {
      profileDir,
      zip,
      files: Object.keys(kept),
      keptBytes: Object.values(kept).reduce((a, b) => a + b.length, 0),
      zipBytes: fs.statSync(zip).size,
      zstd19Bytes: zst.stdout.length,
    }
    console.log(`input ${size}: ${inputs[size].files.length} files, ${kb(inputs[size].keptBytes)} kept, zip ${kb(inputs[size].zipBytes)}, tar|zstd -19 ${kb(inputs[size].zstd19Bytes)}`)
  }
  return inputs
}

/** p50 of writing `bytes` to a temp file, fsync, rename, fsync the directory: what a durable replace costs here. */
function fsyncCostMs(dir, bytes, n = 20) {
  const times = []
  for (let i = 0; i < n; i++) {
    const start = performance.now()
    const tmp = path.join(dir, `.fsync-${i}`)
    const fd = fs.openSync(tmp, 'w')
    fs.writeSync(fd, bytes)
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    fs.renameSync(tmp, path.join(dir, 'fsync-probe'))
    const dfd = fs.openSync(dir, 'r')
    fs.fsyncSync(dfd)
    fs.closeSync(dfd)
    times.push(performance.now() - start)
  }
  return times.sort((a, b) => a - b)[n >> 1]
}

/** Forks worker.mjs for one job; a crash or timeout becomes `{ failed }`. */
function runWorker(config) {
  fs.mkdirSync(config.ctx.workDir, { recursive: true })
  return new Promise((resolve) => {
    const child = fork(path.join(here, 'worker.mjs'), [JSON.stringify(config)], { cwd: config.ctx.workDir, stdio: 'inherit' })
    let result = null
    const timer = setTimeout(() => {
      result = { failed: `timed out after ${WORKER_TIMEOUT_MS / 1000} s` }
      child.kill('SIGKILL')
    }, WORKER_TIMEOUT_MS)
    child.on('message', (msg) => (result ??= msg))
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve(result ?? { failed: `worker exited (${signal ?? code}) without a result` })
    })
  })
}

async function main() {
  const started = performance.now()
  const loadAtStart = os.loadavg()[0]
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-bench-'))
  const servers = await startServers()
  const stop = async () => {
    await servers.stop()
    fs.rmSync(root, { recursive: true, force: true })
  }
  process.once('SIGINT', () => stop().finally(() => process.exit(130)))
  try {
    const { redis, moto } = servers
    const inputs = await makeInputs(root)
    const ctxFor = async (name) => ({
      workDir: path.join(root, name),
      redisUrl: redis.url,
      s3: { endpoint: moto.endpoint, bucket: await moto.bucket(`bench-${name}`), region: 'us-east-1', accessKeyId: 'bench', secretAccessKey: 'bench' },
    })
    const results = {}
    for (const { name } of CONTENDERS) {
      console.log(`${name} ...`)
      redis.cli('FLUSHALL') // each contender starts from an empty Redis
      results[name] = await runWorker({ job: 'figures', contender: name, ctx: await ctxFor(name), inputs, plan: PLAN })
    }
    console.log('baseline (harness alone) ...')
    const baseline = await runWorker({ job: 'baseline', ctx: await ctxFor('baseline'), inputs, plan: PLAN })
    let restore = { failed: 'not run' }
    if (CONTENDERS.some((c) => c.name === 'rust-redis-s3')) {
      console.log(`restoreAll of ${PLAN.restoreSessions} small sessions ...`)
      redis.cli('FLUSHALL')
      restore = await runWorker({ job: 'restoreAll', ctx: await ctxFor('restore'), inputs, plan: PLAN })
    }

    const fsyncMs = fsyncCostMs(root, Buffer.alloc(inputs.small.keptBytes, 1))
    const runtimeS = (performance.now() - started) / 1000
    const load = { start: loadAtStart, end: os.loadavg()[0] }
    const report = render({ inputs, results, baseline, restore, runtimeS, fsyncMs, load, redisVersion: sh('redis-server', ['--version']) })
    fs.writeFileSync(path.join(here, 'results.md'), report.markdown)
    fs.writeFileSync(path.join(here, 'chart.svg'), report.svg)
    console.log(`\n${report.targets}\nwrote bench/results.md and bench/chart.svg in ${runtimeS.toFixed(0)} s`)
  } finally {
    await stop()
  }
}

// ---------------------------------------------------------------- report

const kb = (b) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`)
const ms = (v) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0))
const label = (name) => LABELS[name]
const LABELS = {
  'rust-embedded': 'RustStore embedded',
  'rust-redis': 'RustStore Redis',
  'rust-redis-s3': 'RustStore Redis + S3 every save',
  'rust-embedded-before': `RustStore embedded, before (${process.env.BENCH_BEFORE_LABEL ?? 'an earlier build'})`,
  'seed-redis-store': "seed's JS Redis store",
  'wwebjs-aws-s3': 'wwebjs-aws-s3',
  'floor-redis': 'floor: raw ioredis SET/GET',
  'floor-s3': 'floor: raw S3 Put/GetObject',
}

/**
 * A figure of every contender with its ratios: to the floor (the better of the two raw baselines) and to the
 * best alternative (the better of the seed store and wwebjs-aws-s3). `get(name)` returns a number or undefined
 * (failed); `higher` says that more is better (throughput); `reference(name)` gives the floor's and the
 * alternatives' figure when it is read elsewhere (stored bytes kept in another system).
 */
function figure(get, format, higher = false, reference = get) {
  const better = (a, b) => (higher ? Math.max(a, b) : Math.min(a, b))
  const pick = (pred) => CONTENDERS.filter(pred).map((c) => reference(c.name)).filter(Number.isFinite).reduce(better, higher ? -Infinity : Infinity)
  const floor = pick((c) => c.floor)
  const alt = pick((c) => c.alt)
  return (name) => {
    const v = get(name)
    if (!Number.isFinite(v)) return 'FAILED'
    const r = (ref) => (Number.isFinite(ref) ? `${(v / ref).toFixed(2)}×` : '–')
    return `${format(v)} (${r(floor)} · ${r(alt)})`
  }
}

/** A markdown table; the first `left` columns are text, the rest numbers (right-aligned). */
function table(header, rows, left = 1) {
  const rule = header.map((_, i) => (i < left ? '---' : '---:')).join('|')
  return [`| ${header.join(' | ')} |`, `|${rule}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

const failure = (x) => x?.failed

function render({ inputs, results, baseline, restore, runtimeS, fsyncMs, load, redisVersion }) {
  const cell = (name, size, c) => (failure(results[name]) ? results[name] : results[name]?.cells?.[size]?.[c]) ?? { failed: 'not run' }
  const num = (pick) => (x) => (failure(x) ? undefined : pick(x))
  const pkg = (name) => JSON.parse(fs.readFileSync(path.join(here, '..', 'node_modules', name, 'package.json'), 'utf8')).version
  const dirty = sh('git', ['status', '--porcelain']) ? ' (with uncommitted changes)' : ''
  const md = []

  md.push('# Benchmarks: RustStore against the RemoteAuth stores people use today')
  md.push('')
  md.push('Generated by `npm run bench` (bench/run.mjs); do not edit by hand.')
  md.push('')
  md.push(`- machine: ${sh('lscpu', []).match(/Model name:\s*(.*)/)?.[1] ?? os.cpus()[0].model}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}`)
  md.push(`- Node ${process.version}, ${redisVersion.split(' ').slice(0, 3).join(' ')}, moto_server (S3), ioredis ${pkg('ioredis')}, @aws-sdk/client-s3 ${pkg('@aws-sdk/client-s3')}, wwebjs-aws-s3 ${pkg('wwebjs-aws-s3')}`)
  md.push(`- date ${new Date().toISOString()}, commit ${sh('git', ['rev-parse', '--short', 'HEAD'])}${dirty}, release build of the addon, total runtime ${runtimeS.toFixed(0)} s${quick ? ', **--quick run**' : ''}${only ? `, **only ${only.join(', ')}**` : ''}`)
  md.push('')
  md.push(`- 1-minute load average ${load.start.toFixed(2)} when the run started (${load.end.toFixed(2)} at its end, the bench's own load). On a shared 2-core VM timings vary between runs by tens of percent: compare contenders within one run, not across runs.`)
  md.push('')
  md.push('Every contender runs in its own Node process against the same redis-server and moto S3 server on loopback. Every extract is checked: RustStore hands back the kept entries of the zip (reordered, without the other folders), so its files are unzipped and compared with the profile\'s; every other store must hand back the very bytes it was given. A contender that errs or returns wrong bytes shows as FAILED.')
  md.push('')
  md.push('Contenders: **RustStore embedded** (`{ dir }`), **RustStore Redis** (`{ redis: { url } }`), **RustStore Redis + S3 every save** (`backupIntervalMs: 0`); **seed\'s JS Redis store** (bench/contenders/seed-redis-store.js: readFile, `zlib.gzipSync`, `SETEX`; `GET`, `gunzipSync`, writeFile); **wwebjs-aws-s3** (its `AwsS3Store` with an `S3Client`: HEAD + DELETE + PUT per save, GET per extract); and the floors, **raw ioredis** `SET`/`GET` and **raw S3** `PutObject`/`GetObject` of the zip bytes (each with the readFile/writeFile every file-in, file-out store needs; no checks, no fsync).')
  md.push('')
  md.push('Reading these numbers:')
  md.push('')
  md.push(`- **Durability differs.** RustStore writes every file it leaves behind through a temp file, fsync, rename and a directory fsync: the embedded tier's archive on save, and the zip on every extract. The JS stores and the floors never fsync. On this machine one such durable replace of a small profile's size costs ${fsyncMs.toFixed(1)} ms (p50, measured at the end of the run).`)
  md.push('- **moto is not S3.** It is a Python mock on loopback, sharing the 2 cores: an S3 request costs it a few ms of CPU, where AWS S3 adds tens of ms of latency per request and no CPU here. The S3 figures rank the clients\' work against moto, not S3.')
  md.push(`- **Where the CPU work runs.** RustStore reads the zip's central directory, copies the kept entries' compressed bytes as they are, inflates every kept file to check its CRC and size (on every core, while the copy is written; only the commit waits) and checksums (BLAKE3) on Rust worker threads; the "before" build is the one BENCH_BEFORE_ADDON named (${process.env.BENCH_BEFORE_LABEL ?? 'an earlier build'}); the seed store gzips on the JS thread; the floors do no work beyond copying.`)
  md.push('')
  md.push('Ratios in parentheses: **(× floor · × best alternative)**, where the floor is the better of the two raw baselines and the best alternative the better of the seed store and wwebjs-aws-s3, per figure. For times below 1 is better; for rates above 1 is better.')
  md.push('')

  md.push('## Inputs')
  md.push('')
  md.push('Synthetic WhatsApp Web profiles (support/synthetic-profile.js, seed 1), the kept directories zipped by archiver exactly as RemoteAuth does; message bodies are encrypted, so they compress poorly. *json*: a fresh login whose LevelDB records are JSON values with base64 bodies, where zstd -3 does not beat the zip\'s deflate.')
  md.push('')
  md.push(table(['size', 'kept files', 'kept bytes', 'zip RemoteAuth hands to save()', '`tar \\| zstd -19` of the kept files'], SIZES.map((s) => [s, inputs[s].files.length, kb(inputs[s].keptBytes), kb(inputs[s].zipBytes), kb(inputs[s].zstd19Bytes)])))
  md.push('')

  md.push('## Save and extract: latency and throughput')
  md.push('')
  md.push(`Rounds of *c* concurrent saves, then *c* concurrent extracts, of *c* distinct sessions; sessions carry over from cell to cell, so most timed saves replace a stored copy as RemoteAuth's periodic backups do (each session's first save is timed too), until ${PLAN.ops.small[1]} / ${PLAN.ops.medium[1]} / ${PLAN.ops.large[1]} ops at c = 1 (small / medium / large) or a time box of ${PLAN.boxMs.small / 1000}–${PLAN.boxMs.large / 1000} s per cell, at least one round. Latencies in ms; *n* is the number of saves (and of extracts). p99 is nearest-rank: with few samples it is the slowest op.`)
  for (const size of SIZES) {
    md.push('')
    md.push(`### ${size} (zip ${kb(inputs[size].zipBytes)})`)
    md.push('')
    const rows = []
    for (const c of PLAN.concurrency) {
      const get = (pick) => (name) => num(pick)(cell(name, size, c))
      const cols = [
        figure(get((r) => r.save.p50), ms),
        figure(get((r) => r.save.p99), ms),
        figure(get((r) => r.extract.p50), ms),
        figure(get((r) => r.extract.p99), ms),
        figure(get((r) => r.save.p50 + r.extract.p50), ms),
        figure(get((r) => r.saveRate), (v) => v.toFixed(0), true),
        figure(get((r) => r.extractRate), (v) => v.toFixed(0), true),
      ]
      for (const { name } of CONTENDERS) {
        const r = cell(name, size, c)
        rows.push([label(name), c, r.save?.n ?? '–', ...cols.map((f) => f(name))])
        if (failure(r)) rows[rows.length - 1][3] = `FAILED: ${r.failed.replace(/\|/g, '/')}`
      }
    }
    md.push(table(['contender', 'c', 'n', 'save p50', 'save p99', 'extract p50', 'extract p99', 'save + extract p50', 'saves/s', 'extracts/s'], rows))
  }
  md.push('')
  md.push('![save + extract p50 per contender and size](chart.svg)')
  md.push('')

  md.push('## Event-loop delay during 100 concurrent saves')
  md.push('')
  md.push('`perf_hooks.monitorEventLoopDelay({ resolution: 1 })` in the contender\'s process while 100 first saves of distinct sessions run at once. Values are the intervals between 1 ms timer ticks, so an idle loop reads ~1 ms; "idle" is the same process at rest for 0.5 s (the machine\'s own noise). ms.')
  md.push('')
  const loop = (name) => (failure(results[name]) ? undefined : results[name]?.loop)
  const during = (size, pick) => (n) => num(pick)(loop(n)?.[size] ?? { failed: 1 })
  const loopCols = [
    figure((n) => loop(n)?.idle?.max, ms),
    ...PLAN.loopSizes.flatMap((size) => [figure(during(size, (x) => x.max), ms), figure(during(size, (x) => x.p99), ms)]),
  ]
  md.push(table(['contender', 'idle max', ...PLAN.loopSizes.flatMap((s) => [`${s}: max`, `${s}: p99`])], CONTENDERS.map(({ name }) => [label(name), ...loopCols.map((f) => f(name))])))
  md.push('')
  md.push('Where the JS thread\'s time went during those saves (Linux `/proc/self/task/<pid>/schedstat`): *on CPU* is work done on the JS thread (JS, and native code called from it); *queued* is time it was ready to run but both cores were taken, by the store\'s own worker threads or by other processes. A loop that is queued, not busy, is starved rather than blocked. ms.')
  md.push('')
  const sched = (size) => (n) => {
    const x = loop(n)?.[size]
    return !x || failure(x) || x.jsCpuMs === undefined ? 'FAILED' : `${x.wallMs.toFixed(0)} / ${x.jsCpuMs.toFixed(0)} / ${x.jsQueuedMs.toFixed(0)}`
  }
  md.push(table(['contender', ...PLAN.loopSizes.map((s) => `${s}: wall / on CPU / queued`)], CONTENDERS.map(({ name }) => [label(name), ...PLAN.loopSizes.map((s) => sched(s)(name))])))
  md.push('')

  md.push('## Stored bytes per session')
  md.push('')
  md.push('One session saved once (one backup version), measured in each system: Redis `STRLEN` of the key (and `MEMORY USAGE`, what Redis spends including allocator rounding), S3 object sizes from ListObjectsV2, embedded: the file size. The floors store the zip as is.')
  md.push('')
  const stored = (name, size) => (failure(results[name]) ? undefined : results[name]?.stored?.[size])
  const systems = [
    [(s) => s?.redis?.bytes, 'Redis STRLEN'],
    [(s) => s?.redis?.memory, 'Redis MEMORY USAGE'],
    [(s) => s?.s3?.bytes, 'S3 object'],
    [(s) => s?.dir?.bytes, 'file in dir'],
    [(s) => s?.transient?.bytes, 'zip `extract` writes'],
  ]
  const storedRows = []
  // Stored bytes compare with what the floors and the alternatives keep, in whichever system they keep it.
  const payload = (s) => s?.redis?.bytes ?? s?.s3?.bytes ?? s?.dir?.bytes
  for (const [pick, where] of systems) {
    const reference = where === 'Redis MEMORY USAGE' || where.startsWith('zip') ? pick : payload
    const cols = SIZES.map((size) => figure((n) => pick(stored(n, size)), kb, false, (n) => reference(stored(n, size))))
    for (const { name } of CONTENDERS) {
      if (SIZES.some((size) => pick(stored(name, size)) !== undefined)) storedRows.push([label(name), where, ...cols.map((f) => f(name))])
    }
  }
  for (const { name } of CONTENDERS) {
    if (SIZES.every((size) => !stored(name, size) || failure(stored(name, size)))) {
      storedRows.push([label(name), '–', ...SIZES.map((size) => `FAILED: ${failure(stored(name, size)) ?? failure(results[name]) ?? 'not run'}`)])
    }
  }
  storedRows.push(['reference', 'the zip RemoteAuth hands to save()', ...SIZES.map((s) => kb(inputs[s].zipBytes))])
  storedRows.push(['reference', '`tar \\| zstd -19` of the kept files', ...SIZES.map((s) => kb(inputs[s].zstd19Bytes))])
  md.push(table(['contender', 'where', ...SIZES], storedRows, 2))
  md.push('')

  md.push('## Peak RSS')
  md.push('')
  md.push(`\`process.resourceUsage().maxRSS\` of each contender's process over its whole run (all sizes, up to 64 large sessions at once). Every process also holds the harness: the inputs in memory and unzipper for the checks; that share alone is ${failure(baseline) ? 'FAILED' : `${(baseline.maxRssKB / 1024).toFixed(0)} MiB`} (a process that loads only the harness).`)
  md.push('')
  const rss = figure((n) => (failure(results[n]) ? undefined : results[n]?.maxRssKB / 1024), (v) => `${v.toFixed(0)} MiB`)
  md.push(table(['contender', 'peak RSS'], CONTENDERS.map(({ name }) => [label(name), rss(name)])))
  md.push('')

  md.push(`## restoreAll: ${PLAN.restoreSessions} small sessions from S3 into an empty Redis`)
  md.push('')
  md.push('The bucket is filled by saves with S3 as the only tier (`primary: \'none\'`), Redis is flushed, then `store.restoreAll({ concurrency: 64 })` of a `{ redis, s3 }` store is timed; Redis then holds every session (spot-checked by extract). The JS stores have no equivalent.')
  md.push('')
  const restoreCell = failure(restore) ? `FAILED: ${restore.failed}` : `${restore.rate.toFixed(0)} sessions/s (${(restore.ms / 1000).toFixed(1)} s, ${kb(restore.bytes)}; filling the bucket took ${(restore.fillMs / 1000).toFixed(1)} s)`
  md.push(table(['contender', 'restoreAll'], CONTENDERS.map(({ name }) => [label(name), name === 'rust-redis-s3' ? restoreCell : 'n/a'])))
  md.push('')

  const targets = renderTargets({ inputs, results, cell, stored, loop })
  md.push(targets)
  const svg = barChart({
    title: 'save + extract p50, one session at a time (ms, log scale; lower is better)',
    unit: 'ms',
    groups: SIZES.map((s) => `${s} (zip ${kb(inputs[s].zipBytes)})`),
    series: CONTENDERS.map(({ name, color }) => ({
      label: label(name),
      color,
      values: SIZES.map((size) => num((r) => r.save.p50 + r.extract.p50)(cell(name, size, 1)) ?? null),
    })),
  })
  return { markdown: md.join('\n') + '\n', svg, targets }
}

/** The goals, each as met / not met per RustStore variant and input, as ratios within this run. */
function renderTargets({ inputs, results, cell, stored, loop }) {
  const rust = CONTENDERS.filter((c) => c.rust).map((c) => c.name)
  const p50 = (name, size, c, part) => {
    const r = cell(name, size, c)
    return failure(r) ? NaN : part === 'both' ? r.save.p50 + r.extract.p50 : r[part].p50
  }
  const both = (name, size, c) => p50(name, size, c, 'both')
  // Like-for-like floor: what the variant's save and extract must do at least over the network.
  const floorOf = (name, size, c) =>
    name === 'rust-redis-s3'
      ? p50('floor-redis', size, c, 'save') + p50('floor-s3', size, c, 'save') + p50('floor-redis', size, c, 'extract')
      : both('floor-redis', size, c)
  const verdict = (ok, text) => `${text} ${ok ? '**met**' : '**not met**'}`
  const ratioRows = (goal, limit, ref) =>
    SIZES.map((size) => [goal, size, ...rust.map((name) => PLAN.concurrency.map((c) => {
      const q = both(name, size, c) / ref(name, size, c)
      return Number.isFinite(q) ? verdict(q <= limit, `${q.toFixed(2)}×`) : 'FAILED'
    }).join(' / '))])
  const bytesRows = (goal, pick) =>
    SIZES.map((size) => [goal, size, ...rust.map((name) => {
      const v = pick(stored(name, size))
      return Number.isFinite(v) ? verdict(v <= inputs[size].zipBytes, `${kb(v)} vs ${kb(inputs[size].zipBytes)}`) : 'FAILED'
    })])
  const rows = [
    ...ratioRows('save + extract p50 ≤ 1.3× the raw floor (c = 1 / 16 / 64)', 1.3, floorOf),
    ...ratioRows("save + extract p50 ≤ the seed's JS Redis store (c = 1 / 16 / 64)", 1, (_, s, c) => both('seed-redis-store', s, c)),
    ...bytesRows('stored bytes ≤ the zip RemoteAuth hands to save()', (s) => s?.dir?.bytes ?? s?.redis?.bytes),
    ...bytesRows('the zip `extract` writes ≤ the zip RemoteAuth hands to save()', (s) => s?.transient?.bytes),
    ...PLAN.loopSizes.map((size) => ['event-loop max ≤ 5 ms during 100 concurrent saves', size, ...rust.map((name) => {
      const v = loop(name)?.[size]?.max
      return Number.isFinite(v) ? verdict(v <= 5, `${ms(v)} ms`) : 'FAILED'
    })]),
  ]
  return [
    '## Targets',
    '',
    'Speed goals compare save + extract p50 within this run, at each concurrency. The floor is raw Redis SET + GET for the embedded and Redis variants; for Redis + S3 it is raw Redis SET + raw S3 PutObject + raw Redis GET (that variant writes both on every save and extracts from Redis). Stored bytes: the primary copy (file or Redis value).',
    '',
    table(['target', 'input', ...rust.map(label)], rows, 2),
    '',
  ].join('\n')
}

await main()
