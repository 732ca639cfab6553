// Faults, bounded in time: redis-server SIGKILLed under load, an S3 path that resets, stalls and answers 503,
// the Node process SIGKILLed mid-save, and one session hammered by 100 concurrent saves and extracts.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, tempDir, whichVersion, zips } from './helpers.mjs'
import { faultProxy } from './fault-proxy.mjs'
import { startMoto, startRedis } from './servers.mjs'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test.serial('redis-server SIGKILLed every 800 ms under saves and extracts: no acknowledged save lost, no corrupt read', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const versions = await zips(t, 3)
  const out = tempDir(t)
  const store = new RustStore({ redis: { url: redis.url, connectTimeoutMs: 500, commandTimeoutMs: 1000 }, saveErrors: 'reject' })
  const sessions = ['a', 'b', 'c', 'd'].map((s) => `RemoteAuth-${s}`)
  const acked = new Map()
  const counts = { saved: 0, saveFailed: 0, extracted: 0, extractFailed: 0, wrong: 0 }
  let running = true
  const worker = async (w) => {
    for (let i = 0; running; i++) {
      const session = sessions[(w + i) % sessions.length]
      try {
        const saved = await store.save({ session, path: versions[i % versions.length].zip })
        acked.set(session, Math.max(acked.get(session) ?? 0, saved.savedAt))
        counts.saved++
      } catch (err) {
        counts.saveFailed++
        if (!/^ERR_REDIS/.test(err.code)) throw err
      }
      const target = path.join(out, `${w}.zip`)
      try {
        await store.extract({ session, path: target })
        counts.extracted++
        if ((await whichVersion(target, versions)) < 0) counts.wrong++
      } catch (err) {
        counts.extractFailed++
        if (!/^ERR_REDIS|ERR_SESSION_NOT_FOUND/.test(err.code)) throw err
      }
    }
  }
  const killer = (async () => {
    for (let k = 0; k < 6; k++) {
      await sleep(800)
      await redis.kill()
      await sleep(150)
      await redis.start()
    }
    running = false
  })()
  await Promise.all([killer, worker(0), worker(1), worker(2)])
  t.log(counts)
  t.true(counts.saved > 10, 'saves ran through the outages')
  t.true(counts.saveFailed + counts.extractFailed > 0, 'and some met them (else the outages were not exercised)')
  t.is(counts.wrong, 0, 'every extract that succeeded was a whole version')
  for (const session of sessions) {
    const stored = (await store.listSessions()).find((s) => s.session === session)
    t.truthy(stored, `${session} survived`)
    t.true(stored.savedAt >= acked.get(session), `${session}: nothing older than its last acknowledged save`)
    await store.extract({ session, path: path.join(out, 'final.zip') })
    t.true((await whichVersion(path.join(out, 'final.zip'), versions)) >= 0)
  }
})

test.serial('S3 behind a proxy that resets, stalls and answers 503: every save lands on the primary, backups converge', async (t) => {
  const redis = await startRedis(t)
  const moto = await startMoto(t)
  const bucket = await moto.bucket('faulty')
  const proxy = await faultProxy(t, Number(new URL(moto.endpoint).port), { scheme: 'http' })
  const versions = await zips(t, 2)
  const errors = []
  const store = new RustStore({
    redis: { url: redis.url },
    s3: { endpoint: proxy.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 0, timeoutMs: 2000 },
    saveErrors: 'reject',
    onError: (err) => errors.push(err),
  })
  const sessions = Array.from({ length: 6 }, (_, i) => `RemoteAuth-s${i}`)
  for (const [round, mode] of ['reset', '503', 'stall', 'pass', 'reset', '503'].entries()) {
    proxy.mode = mode
    for (const session of sessions) {
      const saved = await store.save({ session, path: versions[round % 2].zip })
      t.truthy(saved, `${mode}: the save landed on the primary`)
    }
  }
  t.true(errors.length > 0, 'failed backups were reported')
  t.true(errors.every((e) => /^ERR_S3/.test(e.code)), errors.map((e) => e.code).join())
  proxy.mode = 'pass'
  const flushed = await store.close()
  t.is(flushed.failed, 0)
  const stats = await store.stats()
  t.is(stats.backupLag, 0, 'every session has a backup at least as new as its primary copy')
  t.is(stats.tiers.find((x) => x.tier === 's3').sessions, sessions.length)
})

test('the Node process SIGKILLed mid-save: the previous copy restores', async (t) => {
  const [small, large] = [...(await zips(t, 1)), ...(await zips(t, 1, 'large'))]
  const dir = path.join(tempDir(t), 'store')
  const seed = new RustStore({ dir, saveErrors: 'reject' })
  await seed.save({ session: 'RemoteAuth-k', path: small.zip })
  const script = `
    const { RustStore } = require(${JSON.stringify(path.resolve('index.js'))})
    const store = new RustStore({ dir: ${JSON.stringify(dir)}, saveErrors: 'reject' })
    ;(async () => { for (;;) { process.stdout.write('start\\n'); await store.save({ session: 'RemoteAuth-k', path: ${JSON.stringify(large.zip)} }) } })()`
  for (const delay of [5, 40, 120]) {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise((resolve) => child.stdout.once('data', resolve)) // a save has started
    await sleep(delay)
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    const after = new RustStore({ dir })
    const target = path.join(path.dirname(dir), `after-${delay}.zip`)
    await after.extract({ session: 'RemoteAuth-k', path: target })
    t.true((await whichVersion(target, [small, large])) >= 0, `killed ${delay} ms into a save: a whole version restores`)
  }
})

test('100 concurrent saves and extracts of one session: every extract is a whole version', async (t) => {
  const versions = await zips(t, 2)
  const out = tempDir(t)
  const store = new RustStore({ dir: path.join(out, 'store'), saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-hot', path: versions[0].zip })
  const save = (i) => store.save({ session: 'RemoteAuth-hot', path: versions[(i >> 1) % 2].zip })
  const extract = (i) => store.extract({ session: 'RemoteAuth-hot', path: path.join(out, `${i}.zip`) })
  await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? save(i) : extract(i))))
  for (let i = 0; i < 100; i += 2) t.true((await whichVersion(path.join(out, `${i}.zip`), versions)) >= 0, `extract ${i}`)
})
