// `import --from redis://…` throughput: N sessions (default 3000) of ~400 KB RemoteAuth zips in the hand-written
// Redis store's layout (`wa:session:<session>` = gzip(zip)), imported into an embedded store by the CLI in a child
// process, then imported again (nothing changed: every value read and compared, nothing written).
// `node bench/import.mjs [sessions]`; build the release addon first (`npx napi build --platform --release`).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import { createRequire } from 'node:module'

import { startRedis } from '../__test__/servers.mjs'

const require = createRequire(import.meta.url)
const Redis = require('ioredis')
const { makeProfile } = require('../support/synthetic-profile.js')
const { zipProfile } = require('../support/zip-profile.js')

const sessions = Number(process.argv[2] ?? 3000)
const distinct = 16
const stops = []
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-import-bench-'))
try {
  const server = await startRedis({ teardown: (fn) => stops.push(fn) })
  const redis = new Redis(server.url)
  const zips = []
  for (let i = 0; i < distinct; i++) {
    const profile = path.join(root, `p${i}`)
    makeProfile(profile, { size: 'medium', seed: 100 + i, junk: false })
    const zip = path.join(root, `p${i}.zip`)
    await zipProfile(profile, zip)
    zips.push(zlib.gzipSync(fs.readFileSync(zip)))
  }
  const zipBytes = zips.reduce((sum, z) => sum + zlib.gunzipSync(z).length, 0) / distinct
  for (let n = 0; n < sessions; n += 500) {
    const batch = redis.pipeline()
    for (let i = n; i < Math.min(sessions, n + 500); i++) batch.setex(`wa:session:RemoteAuth-bench${i}`, 2592000, zips[i % distinct])
    await batch.exec()
  }
  await redis.quit()
  const run = () => {
    const started = process.hrtime.bigint()
    const args = ['bin/wwebjs-rust-store.js', 'import', '--from', server.url, '--dir', path.join(root, 'store'), '--execute', '--json']
    const res = spawnSync(process.execPath, args, { encoding: 'utf8', env: { PATH: process.env.PATH }, maxBuffer: 1 << 28 })
    const s = Number(process.hrtime.bigint() - started) / 1e9
    if (res.status !== 0) throw new Error(res.stderr)
    const report = JSON.parse(res.stdout)
    return { s, imported: report.imported, skipped: report.skipped, failed: report.failed }
  }
  const first = run()
  const second = run()
  const line = (name, r) =>
    `| ${name} | ${sessions} | ${r.imported} | ${r.skipped} | ${r.failed} | ${r.s.toFixed(1)} s | ${Math.round(sessions / r.s)} sessions/s |`
  console.log(`${sessions} sessions, zips of ${(zipBytes / 1024).toFixed(0)} KiB on average (gzip(zip) in Redis), ${os.cpus().length} cores`)
  console.log('| run | sessions | imported | skipped | failed | wall time | throughput |')
  console.log('|---|---|---|---|---|---|---|')
  console.log(line('first import', first))
  console.log(line('second import (nothing changed)', second))
} finally {
  while (stops.length) await stops.pop()()
  fs.rmSync(root, { recursive: true, force: true })
}
