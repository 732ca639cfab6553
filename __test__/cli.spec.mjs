// `wwebjs-rust-store <command>` as an operator runs it: a real process, configured by flags and the same
// environment names as RustStore.fromEnv(), against the embedded tier, a real redis-server and moto.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, duSync, makeProfile, profileZip, remoteAuth, require, tempDir, waitForFiles } from './helpers.mjs'
import { startMoto, startRedis } from './servers.mjs'

const { makeWorkspace } = require('../support/sessions-shared.js')
const bin = path.resolve('bin/wwebjs-rust-store.js')

/** Runs the CLI in `cwd` with only the given store environment (nothing inherited that could configure it). */
function cli(cwd, args, env = {}) {
  const res = spawnSync(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
  if (res.error) throw res.error
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

test('migrate: dry run changes nothing; --execute imports the newest folder per account; --delete-source removes only verified folders', async (t) => {
  const root = tempDir(t)
  const { workspace, accounts } = makeWorkspace(root, { users: { ana: 3, bruno: 2 }, localAuth: ['shop', 'busy'] })
  // One account's newest folder has no login data (its older folder, with the login, is taken), one has a browser
  // running on it.
  fs.rmSync(path.join(accounts.webjs_bruno.folder, 'Default', 'IndexedDB'), { recursive: true })
  fs.rmSync(path.join(accounts.webjs_bruno.folder, 'Default', 'Local Storage'), { recursive: true })
  fs.symlinkSync('host-12345', path.join(accounts.busy.folder, 'SingletonLock'))
  const before = duSync(workspace)
  const listing = () => fs.readdirSync(workspace).sort()
  const folders = listing()
  t.is(folders.length, 7)

  const dry = cli(root, ['migrate', 'sessions-shared', '--json'])
  t.is(dry.code, 0, dry.stderr)
  const plan = dry.json()
  t.false(plan.execute)
  t.deepEqual(listing(), folders, 'a dry run touches no folder')
  t.false(fs.existsSync(path.join(root, '.wwebjs_store')) && fs.readdirSync(path.join(root, '.wwebjs_store')).length > 0)
  const bySession = Object.fromEntries(plan.sessions.map((s) => [s.session, s]))
  t.deepEqual(Object.keys(bySession).sort(), ['RemoteAuth-busy', 'RemoteAuth-shop', 'RemoteAuth-webjs_ana', 'RemoteAuth-webjs_bruno'])
  t.is(bySession['RemoteAuth-webjs_ana'].source, accounts.webjs_ana.folder, 'the newest of the three logins')
  t.is(bySession['RemoteAuth-webjs_ana'].folders, 3)
  t.is(bySession['RemoteAuth-webjs_ana'].status, 'planned')
  t.is(bySession['RemoteAuth-webjs_bruno'].status, 'planned')
  t.not(bySession['RemoteAuth-webjs_bruno'].source, accounts.webjs_bruno.folder, 'the older folder, which holds the login')
  t.is(plan.bytes_before, before)
  t.true(plan.stored_bytes * 50 < before, `${plan.stored_bytes} B stored of ${before} B`)

  const table = cli(root, ['migrate', 'sessions-shared'])
  t.regex(table.stdout, /dry run: would import 4 of 4 sessions/)
  t.regex(table.stdout, /RemoteAuth-webjs_ana\s+session-webjs_ana_1764007200_\w+\s+3\s/)

  const run = cli(root, ['migrate', 'sessions-shared', '--execute', '--delete-source', '--json'])
  t.is(run.code, 0, run.stderr)
  const done = Object.fromEntries(run.json().sessions.map((s) => [s.session, s]))
  t.is(done['RemoteAuth-shop'].status, 'imported')
  t.is(done['RemoteAuth-webjs_ana'].deleted.length, 3)
  t.is(done['RemoteAuth-busy'].status, 'imported')
  t.regex(done['RemoteAuth-busy'].kept_because, /session-busy is in use/)
  t.is(done['RemoteAuth-webjs_bruno'].status, 'imported')
  t.regex(done['RemoteAuth-webjs_bruno'].kept_because, /newer than or were written after the imported one/)
  const left = listing()
  t.deepEqual(left.filter((f) => f.startsWith('session-webjs_bruno')), [path.basename(accounts.webjs_bruno.folder)], 'the newer folder without a login is kept')
  t.true(left.includes('session-busy'), 'a profile in use is kept')
  t.false(left.some((f) => f.startsWith('session-webjs_ana') || f === 'session-shop'))

  // Migrating again finds the session stored and keeps it.
  fs.rmSync(path.join(accounts.busy.folder, 'SingletonLock'))
  const again = cli(root, ['migrate', 'sessions-shared', '--execute', '--json'])
  t.is(again.json().sessions.find((s) => s.session === 'RemoteAuth-busy').status, 'already-stored')

  // The imported session is what RemoteAuth restores: the real RemoteAuth, on a fresh data path.
  const dataPath = path.join(root, 'auth')
  const store = new RustStore({ dir: path.join(root, '.wwebjs_store'), dataPath })
  const { auth } = remoteAuth('whatsapp-web.js', { store, clientId: 'webjs_ana', dataPath })
  await auth.beforeBrowserInitialized()
  await waitForFiles(auth.userDataDir, accounts.webjs_ana.kept)
  for (const [rel, data] of Object.entries(accounts.webjs_ana.kept)) {
    t.true(fs.readFileSync(path.join(auth.userDataDir, rel)).equals(data), rel)
  }
  t.false(fs.existsSync(path.join(auth.userDataDir, 'Default', 'Cache')), 'caches are not migrated')
})

test('migrate --delete-source keeps the folders when the backup tier cannot be reached, and refuses an expiring only copy', async (t) => {
  const root = tempDir(t)
  const { workspace } = makeWorkspace(root, { users: {}, localAuth: ['shop'], junk: false })
  const deadS3 = {
    SESSION_STORE_DIR: path.join(root, 'store'),
    S3_BUCKET: 'nowhere',
    S3_ENDPOINT: 'http://127.0.0.1:9', // discard port: nothing listens
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'k',
    S3_SECRET_ACCESS_KEY: 'secret-never-printed',
  }
  const run = cli(root, ['migrate', 'sessions-shared', '--execute', '--delete-source', '--json'], deadS3)
  t.is(run.code, 1, run.stderr)
  const [shop] = run.json().sessions
  t.is(shop.status, 'failed', 'whether the session is stored cannot be known, so nothing is imported')
  t.regex(shop.error.code, /^ERR_S3/)
  t.deepEqual(shop.deleted, [])
  t.true(fs.existsSync(path.join(workspace, 'session-shop')), 'the folder stays')
  t.notRegex(run.stdout + run.stderr, /secret-never-printed/)

  const redisOnly = cli(root, ['migrate', 'sessions-shared', '--execute', '--delete-source'], { REDIS_URL: 'redis://127.0.0.1:9' })
  t.is(redisOnly.code, 2)
  t.regex(redisOnly.stderr, /expire/)
})

test('migrate --name maps accounts to other session names; a name that is not valid fails that account only', (t) => {
  const root = tempDir(t)
  makeWorkspace(root, { users: { ana: 1 }, localAuth: ['shop'], junk: false })
  const ok = cli(root, ['migrate', 'sessions-shared', '--name', 'tenant1-{account}', '--json'])
  t.deepEqual(ok.json().sessions.map((s) => s.session).sort(), ['tenant1-shop', 'tenant1-webjs_ana'])
  const bad = cli(root, ['migrate', 'sessions-shared', '--name', '../{account}', '--json'])
  t.is(bad.code, 1)
  t.true(bad.json().sessions.every((s) => s.error.code === 'ERR_SESSION_NAME'))
  const same = cli(root, ['migrate', 'sessions-shared', '--name', 'one', '--json'])
  t.true(same.json().sessions.every((s) => s.error.code === 'ERR_INVALID_OPTION'), 'two accounts, one name')
  t.is(cli(root, ['migrate', 'nowhere']).code, 2, 'a root that is no directory is a usage error')
  t.is(cli(root, ['migrate', 'sessions-shared', '--delete-source']).code, 2, '--delete-source needs --execute')
})

test('verify lists the one corrupted session and exits 1', async (t) => {
  const root = tempDir(t)
  const store = new RustStore({ dir: path.join(root, 'store'), saveErrors: 'reject' })
  for (const name of ['RemoteAuth-a', 'RemoteAuth-b', 'RemoteAuth-c']) {
    await store.save({ session: name, path: await profileZip(t, name.length + name.charCodeAt(11)) })
  }
  const env = { SESSION_STORE_DIR: path.join(root, 'store') }
  t.is(cli(root, ['verify']).code, 0, 'an empty default store verifies')
  const good = cli(root, ['verify', '--json'], env)
  t.is(good.code, 0)
  t.is(good.json().checked, 3)

  const file = path.join(root, 'store', 'RemoteAuth-b.wwrs')
  const bytes = fs.readFileSync(file)
  bytes[bytes.length - 10] ^= 0xff
  fs.writeFileSync(file, bytes)
  const bad = cli(root, ['verify'], env)
  t.is(bad.code, 1)
  t.regex(bad.stdout, /RemoteAuth-b\s+dir\s+-\s+ERR_ARCHIVE_CORRUPT/)
  t.regex(bad.stdout, /checked 3 stored copies: 2 good, 1 bad/)
  t.notRegex(bad.stdout, /RemoteAuth-a|RemoteAuth-c/)
})

test.serial('Redis + S3: stats --json and --prometheus, backup, restore, verify of every backup version, cleanup of stale sessions', async (t) => {
  const redis = await startRedis(t)
  const moto = await startMoto(t)
  const bucket = await moto.bucket('cli')
  const root = tempDir(t)
  const env = {
    REDIS_URL: redis.url,
    S3_BUCKET: bucket,
    S3_ENDPOINT: moto.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'test-key',
    S3_SECRET_ACCESS_KEY: 'test-secret',
    WWEBJS_DATA_PATH: path.join(root, 'auth'),
  }
  // Saved by a service whose interval backup has not run yet.
  const store = new RustStore({
    redis: { url: redis.url },
    s3: { endpoint: moto.endpoint, bucket, forcePathStyle: true, accessKeyId: 'k', secretAccessKey: 's', backupIntervalMs: 3_600_000 },
    saveErrors: 'reject',
  })
  const sizes = {}
  for (const [i, name] of ['RemoteAuth-x', 'RemoteAuth-y'].entries()) sizes[name] = (await store.save({ session: name, path: await profileZip(t, 40 + i) })).storedBytes

  const before = cli(root, ['stats', '--json'], env)
  t.is(before.code, 0, before.stderr)
  const s = before.json()
  t.deepEqual(s.tiers.map((x) => [x.tier, x.role, x.sessions]), [['redis', 'primary', 2], ['s3', 'backup', 0]])
  t.is(s.tiers[0].bytes, sizes['RemoteAuth-x'] + sizes['RemoteAuth-y'])
  t.is(s.backup_lag, 2)
  t.is(s.largest_session.bytes, Math.max(...Object.values(sizes)))
  t.is(s.average_session_bytes, Math.floor((sizes['RemoteAuth-x'] + sizes['RemoteAuth-y']) / 2))
  t.true(s.disk.free_bytes > 0 && s.disk.total_bytes >= s.disk.free_bytes)
  t.is(s.sessions_fit_estimate, null, 'only the embedded tier keeps sessions on a local disk')

  const backup = cli(root, ['backup'], env)
  t.is(backup.code, 0, backup.stderr)
  t.regex(backup.stdout, /backed up 2 of 2 sessions/)
  t.is((await moto.keys(bucket)).length, 2)
  const prom = cli(root, ['stats', '--prometheus'], env).stdout
  t.regex(prom, /^wwebjs_rust_store_tier_sessions\{role="backup",tier="s3"\} 2$/m)
  t.regex(prom, /^wwebjs_rust_store_backup_lag_sessions 0$/m)
  t.regex(prom, /^# TYPE wwebjs_rust_store_disk_free_bytes gauge$/m)

  // Redis loses everything; restore brings it back from the bucket.
  redis.cli('FLUSHALL')
  const restore = cli(root, ['restore', '--json'], env)
  t.is(restore.json().copied, 2)
  t.deepEqual((await store.listSessions()).map((x) => x.session).sort(), ['RemoteAuth-x', 'RemoteAuth-y'])

  // A session saved long ago, now only in the bucket; and a damaged backup version.
  const [xKey] = await moto.keys(bucket, 'whatsapp-sessions/RemoteAuth-x/')
  const archive = await moto.getObject(bucket, xKey)
  await moto.putObject(bucket, 'whatsapp-sessions/RemoteAuth-old/1600000000000-0a1b2c3d.wwrs', archive)
  await moto.putObject(bucket, 'whatsapp-sessions/RemoteAuth-y/1600000000000-0a1b2c3d.wwrs', archive.subarray(0, 100))
  const verify = cli(root, ['verify', '--json'], env)
  t.is(verify.code, 1)
  t.is(verify.json().checked, 2 + 4)
  t.deepEqual(verify.json().bad.map((b) => [b.session, b.tier, b.code]), [['RemoteAuth-y', 's3', 'ERR_ARCHIVE_CORRUPT']])

  const dry = cli(root, ['cleanup', '--json'], env)
  t.deepEqual(dry.json().stale_sessions.map((x) => x.session), ['RemoteAuth-old'])
  t.true(await store.sessionExists({ session: 'RemoteAuth-old' }), 'a dry run deletes nothing')
  const run = cli(root, ['cleanup', '--execute', '--older-than-days', '30'], env)
  t.is(run.code, 0, run.stderr)
  t.regex(run.stdout, /removed 1 stale sessions/)
  t.false(await store.sessionExists({ session: 'RemoteAuth-old' }))
  t.true(await store.sessionExists({ session: 'RemoteAuth-x' }))
})

test('cleanup removes stale zips, temp folders and orphan profiles under the data path, nothing fresh, stored or in use', async (t) => {
  const root = tempDir(t)
  const dataPath = path.join(root, 'auth')
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath, saveErrors: 'reject' })
  await store.save({ session: 'RemoteAuth-live', path: await profileZip(t, 3) })
  const old = new Date(Date.now() - 3 * 3600_000)
  const put = (rel, { dir = false, age = old } = {}) => {
    const p = path.join(dataPath, rel)
    if (dir) {
      makeProfile(p, { junk: false, seed: 5 })
    } else {
      fs.mkdirSync(path.dirname(p), { recursive: true })
      fs.writeFileSync(p, 'zip bytes')
    }
    for (const entry of [p, ...(dir ? fs.readdirSync(p, { recursive: true }).map((e) => path.join(p, e)) : [])]) fs.utimesSync(entry, age, age)
    return p
  }
  const gone = [put('RemoteAuth-crashed.zip'), put('wwebjs_temp_session_crashed', { dir: true }), put('RemoteAuth-loggedout', { dir: true })]
  const kept = [
    put('RemoteAuth-fresh.zip', { age: new Date() }),
    put('RemoteAuth-live', { dir: true }),
    put('RemoteAuth-new', { dir: true, age: new Date() }),
    put('RemoteAuth-running', { dir: true }),
    put('notes.txt'),
  ]
  fs.symlinkSync('host-1', path.join(dataPath, 'RemoteAuth-running', 'SingletonLock'))
  const env = { SESSION_STORE_DIR: path.join(root, 'store'), WWEBJS_DATA_PATH: dataPath }

  const cautious = cli(root, ['cleanup', '--json'], env)
  t.deepEqual(cautious.json().leftovers.map((l) => l.kind).sort(), ['temp-profile', 'zip'], 'orphans only on request')
  const dry = cli(root, ['cleanup', '--orphans', '--json'], env)
  t.is(dry.code, 0, dry.stderr)
  t.deepEqual(dry.json().leftovers.map((l) => [path.basename(l.path), l.kind]), [
    ['RemoteAuth-crashed.zip', 'zip'],
    ['RemoteAuth-loggedout', 'orphan-profile'],
    ['wwebjs_temp_session_crashed', 'temp-profile'],
  ])
  t.true(gone.every((p) => fs.existsSync(p)), 'a dry run removes nothing')
  const run = cli(root, ['cleanup', '--orphans', '--execute'], env)
  t.is(run.code, 0, run.stderr)
  t.regex(run.stdout, /removed 0 stale sessions, 3 local leftovers \(.*\) and 0 unreferenced backup packs/)
  const wrongStore = cli(root, ['cleanup', '--orphans'], { ...env, SESSION_STORE_DIR: path.join(root, 'empty') })
  t.is(wrongStore.code, 2, 'an empty store makes every profile look orphaned')
  t.regex(wrongStore.stderr, /ERR_INVALID_OPTION/)
  t.is(cli(root, ['cleanup', '--older-than-days', '999999999999']).code, 2, 'out of range')
  t.true(gone.every((p) => !fs.existsSync(p)))
  t.true(kept.every((p) => fs.existsSync(p)))
  t.true(await store.sessionExists({ session: 'RemoteAuth-live' }))
})
