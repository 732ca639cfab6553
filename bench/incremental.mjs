// `npm run bench:incremental` (also the last part of `npm run bench`): bytes a backup uploads and a bucket stores,
// incremental versions against whole archives, over ten ten-minute versions of an evolving profile (appended
// LevelDB logs, a compaction every 4th version, a table merge every 8th). Writes bench/incremental.md.
// Every other store people use (wwebjs-aws-s3, the Redis stores) uploads RemoteAuth's zip whole each backup: the
// zip sizes are listed beside ours.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'

import { startMoto } from '../__test__/servers.mjs'

const here = import.meta.dirname
const require = createRequire(import.meta.url)
const { RustStore } = require('../index.js')
const { zipProfile } = require('../support/zip-profile.js')
const { makeProfile, evolveProfile } = require('../support/synthetic-profile.js')

const VERSIONS = 10
const kb = (n) => `${(n / 1024).toFixed(1)} KB`
const pct = (a, b) => `${((100 * a) / b).toFixed(1)} %`

async function run(moto, root, size) {
  const profile = path.join(root, size)
  makeProfile(profile, { size, junk: false, seed: 3 })
  const buckets = { incremental: await moto.bucket(`inc-${size}`), whole: await moto.bucket(`whole-${size}`) }
  const s3 = (bucket, incremental) => ({
    endpoint: moto.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's',
    backupIntervalMs: 0, keepVersions: VERSIONS, incremental,
  })
  const stores = {
    incremental: new RustStore({ dir: path.join(root, `a-${size}`), s3: s3(buckets.incremental, true), saveErrors: 'reject' }),
    whole: new RustStore({ dir: path.join(root, `b-${size}`), s3: s3(buckets.whole, false), saveErrors: 'reject' }),
  }
  const rows = []
  for (let step = 0; step < VERSIONS; step++) {
    if (step > 0) evolveProfile(profile, { step, seed: 3 })
    const zip = path.join(root, `${size}-${step}.zip`)
    await zipProfile(profile, zip)
    const row = { step, zip: fs.statSync(zip).size }
    for (const [name, store] of Object.entries(stores)) {
      const before = await moto.bytes(buckets[name])
      await store.save({ session: 'RemoteAuth-bench', path: zip })
      row[name] = (await moto.bytes(buckets[name])) - before
    }
    rows.push(row)
  }
  const stored = { incremental: await moto.bytes(buckets.incremental), whole: await moto.bytes(buckets.whole) }
  const stats = await stores.incremental.stats()
  // A restore from the bucket (a new machine: empty primary), median of 5: one GET per chunk against one GET.
  const restoreMs = {}
  for (const [name, bucket] of Object.entries(buckets)) {
    const times = []
    for (let i = 0; i < 5; i++) {
      const fresh = new RustStore({ dir: path.join(root, `restore-${size}-${name}-${i}`), s3: s3(bucket, name === 'incremental') })
      const start = performance.now()
      await fresh.extract({ session: 'RemoteAuth-bench', path: path.join(root, `restored-${size}-${name}.zip`) })
      times.push(performance.now() - start)
    }
    restoreMs[name] = times.sort((a, b) => a - b)[2]
  }
  return { size, rows, stored, restoreMs, kept: stats.incremental.logicalBytes / VERSIONS }
}

function report(results) {
  const lines = [
    '# Incremental backups',
    '',
    `${VERSIONS} ten-minute versions of an evolving synthetic profile (\`support/synthetic-profile.js\`: ~3 KB of chat`,
    'appended to the IndexedDB log per version, a compaction into a new table every 4th, a merge of two tables every',
    '8th), backed up by RustStore to moto as incremental versions and, in another bucket, as whole archives.',
    `Run on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${new Date().toISOString().slice(0, 10)}.`,
    '',
    '| profile (kept files) | uploaded per later backup, incremental | whole archive | RemoteAuth zip (other stores) | incremental / whole | between compactions | 10 versions stored, incremental | 10 whole archives | incremental / one archive |',
    '|---|---|---|---|---|---|---|---|---|',
  ]
  const targets = []
  for (const r of results) {
    const later = r.rows.slice(1)
    const mean = (k, rows = later) => rows.reduce((a, row) => a + row[k], 0) / rows.length
    const quiet = later.filter((row) => row.step % 4 !== 0)
    const one = r.stored.whole / VERSIONS
    lines.push(
      `| ${r.size} (${kb(r.kept)}) | ${kb(mean('incremental'))} | ${kb(mean('whole'))} | ${kb(mean('zip'))} | ${pct(mean('incremental'), mean('whole'))} | ${pct(mean('incremental', quiet), mean('whole', quiet))} | ${kb(r.stored.incremental)} | ${kb(r.stored.whole)} | ${(r.stored.incremental / one).toFixed(2)}× |`,
    )
    const share = mean('incremental') / mean('whole')
    const limit = r.size === 'large' ? 0.05 : 0.15
    targets.push(`- ${r.size}: uploaded per backup ${pct(mean('incremental'), mean('whole'))} of a whole archive with a compaction every 4th version, ${pct(mean('incremental', quiet), mean('whole', quiet))} between compactions (target ≤ ${limit * 100} %): ${share <= limit ? 'met' : 'not met'}; 10 versions ${(r.stored.incremental / one).toFixed(2)}× one archive (target ≤ 2×): ${r.stored.incremental <= 2 * one ? 'met' : 'not met'}`)
  }
  lines.push(
    '',
    '## Restore from the bucket',
    '',
    'The newest version extracted by a store with an empty primary (a new machine), median of 5, moto on loopback:',
    'an incremental version is one GET per pack (32 at a time) and a rebuild; a whole archive is one GET.',
    '',
    '| profile | incremental | whole archive |',
    '|---|---|---|',
    ...results.map((r) => `| ${r.size} | ${r.restoreMs.incremental.toFixed(0)} ms | ${r.restoreMs.whole.toFixed(0)} ms |`),
  )
  lines.push('', '## Per version', '')
  for (const r of results) {
    lines.push(`### ${r.size}`, '', '| version | incremental upload | whole archive | zip |', '|---|---|---|---|')
    for (const row of r.rows) lines.push(`| ${row.step} | ${kb(row.incremental)} | ${kb(row.whole)} | ${kb(row.zip)} |`)
    lines.push('')
  }
  lines.push('## Targets', '', ...targets, '')
  return { markdown: lines.join('\n'), targets: targets.join('\n') }
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-incremental-'))
const stops = []
try {
  const moto = await startMoto({ teardown: (fn) => stops.push(fn) })
  const results = []
  for (const size of ['medium', 'large']) results.push(await run(moto, root, size))
  const out = report(results)
  fs.writeFileSync(path.join(here, 'incremental.md'), out.markdown)
  console.log(`${out.targets}\nwrote bench/incremental.md`)
} finally {
  while (stops.length) await stops.pop()()
  fs.rmSync(root, { recursive: true, force: true })
}
