// Issue #28.3: a service that ran the hand-written Redis store (`wa:session:<session>` = gzip(zip), SETEX 30 days,
// through its own code) swaps in `new RustStore({ redis: { url } })` on the same Redis with no step: every login
// restores through plain RemoteAuth, the old value stays as it was until RustStore's next save replaces it whole,
// verify / stats / cleanup see legacy sessions (not corrupt ones), and import from that same Redis converts them.
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import test from 'ava'

import { RustStore, makeProfile, require, tempDir } from './helpers.mjs'
import { startRedis } from './servers.mjs'
import { assertRestores, cli, kept, saveLogin } from './switching.mjs'

const Redis = require('ioredis')
const unzipper = require('unzipper')
const { HandwrittenRedisStore } = require('../support/handwritten-redis-store.js')

test.serial('the hand-written store\'s sessions restore through plain RemoteAuth + default RustStore; the next save re-stores them; verify, stats, cleanup and import agree', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  t.teardown(() => redis.quit())
  const old = new HandwrittenRedisStore({ redis })
  const files = {}
  for (const [i, id] of ['ana', 'bruno', 'carla'].entries()) files[id] = await saveLogin(old, root, id, i + 1)
  const before = {}
  for (const id of ['ana', 'bruno', 'carla']) before[id] = await redis.getBuffer(`wa:session:RemoteAuth-${id}`)
  t.is(before.ana.subarray(0, 2).toString('hex'), '1f8b', 'gzip, as the hand-written store writes it')
  // The same logins in the other shapes such stores write: the zip itself, and base64 of it.
  const zipOf = zlib.gunzipSync(before.carla)
  await redis.set('wa:session:RemoteAuth-carla', zipOf.toString('base64'), 'EX', 30 * 86_400)
  before.carla = await redis.getBuffer('wa:session:RemoteAuth-carla')

  const store = new RustStore({ redis: { url: server.url } })
  for (const id of ['ana', 'bruno', 'carla']) t.true(await store.sessionExists({ session: `RemoteAuth-${id}` }), id)
  const restored = {}
  for (const id of ['ana', 'bruno', 'carla']) restored[id] = await assertRestores(t, store, root, id, files[id])
  for (const id of ['ana', 'bruno', 'carla']) {
    t.true((await redis.getBuffer(`wa:session:RemoteAuth-${id}`)).equals(before[id]), `${id}: the old value is untouched by reads`)
    t.true((await redis.ttl(`wa:session:RemoteAuth-${id}`)) > 29 * 86_400, `${id}: and keeps its expiry`)
  }
  t.deepEqual((await store.listSessions()).map((s) => s.session).sort(), ['RemoteAuth-ana', 'RemoteAuth-bruno', 'RemoteAuth-carla'])

  // The operator's commands on the same Redis, default prefix.
  const env = { REDIS_URL: server.url }
  const verify = cli(root, ['verify', '--json'], env)
  t.is(verify.code, 0, verify.stdout + verify.stderr)
  t.deepEqual([verify.json().checked, verify.json().bad, verify.json().legacy], [3, [], 3])
  const stats = cli(root, ['stats', '--json'], env)
  t.is(stats.code, 0, stats.stderr)
  t.deepEqual([stats.json().sessions, stats.json().legacy_sessions, stats.json().tiers[0].sessions], [3, 3, 3])
  t.regex(cli(root, ['stats'], env).stdout, /legacy sessions\s+3/)
  // The JS side counts them as the CLI does.
  const js = await store.stats()
  t.deepEqual([js.sessions, js.legacySessions], [3, 3])
  const cleanup = cli(root, ['cleanup', '--older-than-days', '1', '--execute', '--json'], env)
  t.is(cleanup.code, 0, cleanup.stderr)
  t.deepEqual(cleanup.json().stale_sessions, [], 'a legacy session has no known save time: never stale')
  t.is(await redis.exists('wa:session:RemoteAuth-ana'), 1)

  // RemoteAuth's next save of ana (its restored profile, changed since) stores RustStore's own format.
  // (a store told the dataPath RemoteAuth writes its zip to, as a service configures it).
  makeProfile(restored.ana.profile, { seed: 42, junk: false })
  restored.ana.auth.store = new RustStore({ redis: { url: server.url }, dataPath: restored.ana.dataPath, saveErrors: 'reject' })
  await restored.ana.auth.storeRemoteSession({ emit: true })
  const saved = await redis.getBuffer('wa:session:RemoteAuth-ana')
  t.is(saved.subarray(0, 4).toString(), 'WWRS')
  await assertRestores(t, new RustStore({ redis: { url: server.url } }), root, 'ana', kept(restored.ana.profile))

  // import from that same Redis re-stores what is still legacy, in place; ana is RustStore's already.
  const dry = cli(root, ['import', '--from', server.url, '--json'], env)
  t.is(dry.code, 0, dry.stdout + dry.stderr)
  const status = (report) => Object.fromEntries(report.sessions.map((s) => [s.session, s.status]))
  t.deepEqual(status(dry.json()), { 'RemoteAuth-ana': 'unchanged', 'RemoteAuth-bruno': 'planned', 'RemoteAuth-carla': 'planned' })
  t.true((await redis.getBuffer('wa:session:RemoteAuth-bruno')).equals(before.bruno), 'a dry run writes nothing')
  const run = cli(root, ['import', '--from', server.url, '--execute', '--json'], env)
  t.is(run.code, 0, run.stdout + run.stderr)
  t.deepEqual(status(run.json()), { 'RemoteAuth-ana': 'unchanged', 'RemoteAuth-bruno': 'imported', 'RemoteAuth-carla': 'imported' })
  for (const id of ['bruno', 'carla']) {
    t.is((await redis.getBuffer(`wa:session:RemoteAuth-${id}`)).subarray(0, 4).toString(), 'WWRS', id)
    await assertRestores(t, store, root, id, files[id])
  }
  const again = cli(root, ['import', '--from', server.url, '--execute', '--json'], env)
  t.deepEqual([again.code, again.json().imported, again.json().skipped], [0, 0, 3])
  t.is(cli(root, ['verify', '--json'], env).json().legacy, 0)
  t.is((await store.stats()).legacySessions, 0, 'imported: none left')
})

/** The files of a zip, by name. */
async function unzipFiles(file) {
  const dir = await unzipper.Open.file(file)
  const out = {}
  for (const entry of dir.files) if (entry.type === 'File' && !entry.path.endsWith('wwebjs-rust-store.pad')) out[entry.path] = await entry.buffer()
  return out
}

test.serial('seeded mutations of legacy values under the prefix: each one restores whole or is a coded error, and no value is changed or deleted', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  t.teardown(() => redis.quit())
  const files = await saveLogin(new HandwrittenRedisStore({ redis }), root, 'm', 5)
  const zip = zlib.gunzipSync(await redis.getBuffer('wa:session:RemoteAuth-m'))
  const shapes = [zip, zlib.gzipSync(zip), Buffer.from(zlib.gzipSync(zip).toString('base64'))]
  const store = new RustStore({ redis: { url: server.url } })
  let seed = 0x28_03
  const next = (n) => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return seed % Math.max(n, 1)
  }
  const outcomes = {}
  for (let i = 0; i < 90; i++) {
    const shape = i % shapes.length
    let value = Buffer.from(shapes[shape])
    switch (next(4)) {
      // Changes a reader must take in its stride: gzip's mtime, base64 wrapped at 76 as MIME does, bytes after a zip.
      case 3:
        if (shape === 1) value[4 + next(4)] ^= 0xff
        else if (shape === 2) value = Buffer.from(value.toString().replace(/.{76}/g, '$&\r\n'))
        else value = Buffer.concat([value, Buffer.alloc(next(32))])
        break
      case 0: value[next(value.length)] ^= 1 << next(8); break
      case 1: value = value.subarray(0, next(value.length)); break
      default: {
        const at = next(value.length)
        value = Buffer.concat([value.subarray(0, at), Buffer.alloc(1 + next(64), next(256)), value.subarray(at)])
      }
    }
    await redis.set('wa:session:RemoteAuth-m', value)
    const out = path.join(root, `m-${i}.zip`)
    try {
      await store.extract({ session: 'RemoteAuth-m', path: out })
      const got = await unzipFiles(out)
      t.deepEqual(Object.keys(got).sort(), Object.keys(files).sort(), `mutation ${i}`)
      for (const [rel, data] of Object.entries(files)) t.true(got[rel].equals(data), `mutation ${i}: ${rel}`)
      outcomes.restored = (outcomes.restored ?? 0) + 1
    } catch (err) {
      t.regex(err.code ?? '', /^ERR_(ZIP_INVALID|ARCHIVE_CORRUPT|ARCHIVE_LIMIT|ARCHIVE_ENTRY|EMPTY_SESSION|IMPORT_NO_LOGIN)$/, `mutation ${i}: ${err.code} ${err.message}`)
      t.false(fs.existsSync(out), `mutation ${i}: nothing written on a refusal`)
      outcomes[err.code] = (outcomes[err.code] ?? 0) + 1
    }
    t.true((await redis.getBuffer('wa:session:RemoteAuth-m')).equals(value), `mutation ${i}: the value is as it was`)
    t.true(await store.sessionExists({ session: 'RemoteAuth-m' }))
  }
  t.true(outcomes.restored > 0 && Object.keys(outcomes).length > 1, JSON.stringify(outcomes))
})
