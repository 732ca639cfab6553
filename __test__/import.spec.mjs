// `import` / `export` against the stores services run today: sessions saved by whatsapp-web.js 1.34.7's real
// RemoteAuth into the real wwebjs-aws-s3 (moto) and into the hand-written Redis store (real redis-server), imported
// into RustStore, restored by plain RemoteAuth byte for byte; bad source entries reported per key.
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import test from 'ava'

import { RustStore, makeProfile, remoteAuth, require, tempDir, waitForFiles } from './helpers.mjs'
import { motoForFile, startRedis } from './servers.mjs'
import { assertRestores, cli, inDir, kept, saveLogin } from './switching.mjs'

const Redis = require('ioredis')
const { S3Client, PutObjectCommand, HeadObjectCommand, GetObjectCommand, DeleteObjectCommand } = require('@aws-sdk/client-s3')
const { AwsS3Store } = require('wwebjs-aws-s3')
const { HandwrittenRedisStore } = require('../support/handwritten-redis-store.js')
const { writeZip } = require('../support/zip-profile.js')

const moto = motoForFile(test)
const S3_ENV = () => ({ S3_ENDPOINT: moto.endpoint, S3_REGION: 'us-east-1', S3_FORCE_PATH_STYLE: 'true', S3_ACCESS_KEY_ID: 'test', S3_SECRET_ACCESS_KEY: 'test' })

const byKey = (report) => Object.fromEntries(report.sessions.map((s) => [s.key, s]))

test.serial('redis source (hand-written gzip store) -> embedded via the CLI: dry run, bad keys per key, restores, a re-run copies only what changed', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  t.teardown(() => redis.quit())
  const source = new HandwrittenRedisStore({ redis })
  const files = {}
  for (const [i, id] of ['ana', 'bruno', 'carla'].entries()) files[id] = await saveLogin(source, root, id, i + 1)
  t.is(zlib.gunzipSync(await redis.getBuffer('wa:session:RemoteAuth-ana')).subarray(0, 2).toString(), 'PK')

  // Bad entries beside the good ones.
  const zip = zlib.gunzipSync(await redis.getBuffer('wa:session:RemoteAuth-ana'))
  const tokens = { WABrowserId: '"abc=="', WASecretBundle: '{"key":"k","encKey":"e","macKey":"m"}', WAToken1: '"t1"', WAToken2: '"t2"' }
  const outside = path.join(root, 'outside.zip')
  await writeZip(outside, (a) => a.append('x'.repeat(100), { name: 'Default/Cache/data_0' }))
  const unsafe = path.join(root, 'unsafe.zip')
  await writeZip(unsafe, (a) => a.append('x', { name: 'Default/IndexedDB/../../../evil' }))
  await redis.set('wa:session:RemoteAuth-garbage', Buffer.from('\x00\x13not a session at all'))
  await redis.set('wa:session:RemoteAuth-truncated', zlib.gzipSync(zip.subarray(0, zip.length >> 1)))
  await redis.set('wa:session:RemoteAuth-tokens', zlib.gzipSync(JSON.stringify(tokens)))
  await redis.set('wa:session:RemoteAuth-outside', fs.readFileSync(outside))
  await redis.set('wa:session:RemoteAuth-unsafe', fs.readFileSync(unsafe))
  await redis.set('wa:session:private-dave', zlib.gzipSync(zip))
  // The importer's ACL user may read RemoteAuth-* keys only.
  server.cli('ACL', 'SETUSER', 'importer', 'on', '>imp-s3cret', 'resetkeys', '~wa:session:RemoteAuth-*', '+@read', '+@connection', '+scan', '+info')
  const from = `redis://importer:imp-s3cret@127.0.0.1:${server.port}`
  const storeDir = path.join(root, 'store')

  const dry = cli(root, ['import', '--from', from, '--dir', storeDir, '--json'])
  t.is(dry.code, 1, dry.stderr)
  t.false(dry.stdout.includes('imp-s3cret') || dry.stderr.includes('imp-s3cret'), 'no password in the output')
  t.deepEqual(await new RustStore({ dir: storeDir }).listSessions(), [], 'a dry run writes nothing')
  t.is(dry.json().imported, 3)

  const run = cli(root, ['import', '--from', from, '--dir', storeDir, '--json'].concat('--execute'))
  t.is(run.code, 1, run.stderr)
  const report = run.json()
  const keys = byKey(report)
  for (const id of ['ana', 'bruno', 'carla']) {
    t.is(keys[`wa:session:RemoteAuth-${id}`].status, 'imported')
    t.is(keys[`wa:session:RemoteAuth-${id}`].shape, 'gzip(zip)')
  }
  const code = (key) => keys[`wa:session:${key}`].error?.code
  t.is(code('RemoteAuth-garbage'), 'ERR_IMPORT_FORMAT')
  t.is(code('RemoteAuth-truncated'), 'ERR_ZIP_INVALID')
  t.is(code('RemoteAuth-tokens'), 'ERR_IMPORT_NO_LOGIN')
  t.regex(keys['wa:session:RemoteAuth-tokens'].error.message, /never the RemoteAuth profile.*WABrowserId|WABrowserId.*never the RemoteAuth profile/s)
  t.is(code('RemoteAuth-outside'), 'ERR_EMPTY_SESSION')
  t.is(code('RemoteAuth-unsafe'), 'ERR_ARCHIVE_ENTRY')
  t.is(code('private-dave'), 'ERR_REDIS_AUTH')
  t.deepEqual([report.imported, report.failed, report.skipped], [3, 6, 0])
  const table = cli(root, ['import', '--from', from, '--dir', storeDir])
  t.regex(table.stdout, /dry run: would import 0 of 9 sessions/)

  const store = new RustStore({ dir: storeDir })
  t.deepEqual((await store.listSessions()).map((s) => s.session).sort(), ['RemoteAuth-ana', 'RemoteAuth-bruno', 'RemoteAuth-carla'], 'nothing half-written')
  for (const id of ['ana', 'bruno', 'carla']) await assertRestores(t, store, root, id, files[id])
  t.truthy(await redis.get('wa:session:RemoteAuth-ana'), 'the source is left as it was')

  // The old service saves bruno again; the second run copies only bruno.
  const profile = path.join(root, 'RemoteAuth-bruno')
  await inDir(root, async () => {
    const { auth } = remoteAuth('whatsapp-web.js', { store: source, clientId: 'bruno', dataPath: root })
    await auth.beforeBrowserInitialized()
    await waitForFiles(profile, files.bruno) // its restore, done before the new login replaces it
    fs.rmSync(profile, { recursive: true, force: true })
    makeProfile(profile, { seed: 99, junk: false })
    await auth.storeRemoteSession({ emit: true })
  })
  files.bruno = kept(profile)
  fs.rmSync(profile, { recursive: true, force: true })
  const again = cli(root, ['import', '--from', from, '--dir', storeDir, '--execute', '--json']).json()
  const second = byKey(again)
  t.is(again.imported, 1)
  t.is(second['wa:session:RemoteAuth-bruno'].status, 'imported')
  t.is(second['wa:session:RemoteAuth-ana'].status, 'unchanged')
  t.is(second['wa:session:RemoteAuth-carla'].status, 'unchanged')
  await assertRestores(t, new RustStore({ dir: storeDir }), root, 'bruno', files.bruno)
})

function s3Client() {
  return new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } })
}

function awsStore(client, bucket) {
  return new AwsS3Store({ bucketName: bucket, remoteDataPath: 'sessions/', s3Client: client, putObjectCommand: PutObjectCommand, headObjectCommand: HeadObjectCommand, getObjectCommand: GetObjectCommand, deleteObjectCommand: DeleteObjectCommand })
}

test.serial('wwebjs-aws-s3 source -> Redis and Redis + S3 via importFrom; export to S3 restores through the real wwebjs-aws-s3', async (t) => {
  const root = tempDir(t)
  const bucket = await moto.bucket('import-src')
  const client = s3Client()
  t.teardown(() => client.destroy())
  const source = awsStore(client, bucket)
  const files = {}
  for (const [i, id] of ['eva', 'fritz'].entries()) files[id] = await saveLogin(source, root, id, 10 + i)
  t.deepEqual(await moto.keys(bucket, 'sessions/'), ['sessions/RemoteAuth-eva.zip', 'sessions/RemoteAuth-fritz.zip'])
  const s3 = { endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'test', secretAccessKey: 'test' }

  const server = await startRedis(t)
  await moto.bucket('import-backup')
  const targets = {
    redis: new RustStore({ redis: { url: server.url, prefix: 'a:' } }),
    'redis+s3': new RustStore({ redis: { url: server.url, prefix: 'b:' }, s3: { ...s3, bucket: 'import-backup', backupIntervalMs: 0 } }),
  }
  for (const [name, store] of Object.entries(targets)) {
    const dry = await store.importFrom(`s3://${bucket}/sessions`, { s3 })
    t.deepEqual([dry.imported, dry.failed, (await store.listSessions()).length], [2, 0, 0], name)
    const report = await store.importFrom(`s3://${bucket}/sessions`, { s3, execute: true })
    t.deepEqual(report.sessions.map((s) => [s.session, s.status, s.shape]), [['RemoteAuth-eva', 'imported', 'zip'], ['RemoteAuth-fritz', 'imported', 'zip']], name)
    t.true(report.bytesBefore > 0 && report.bytesAfter > 0)
    for (const id of ['eva', 'fritz']) await assertRestores(t, store, root, id, files[id])
    // A second run: the same entries are stored already, nothing is written.
    const again = await store.importFrom(`s3://${bucket}/sessions/`, { s3, execute: true })
    t.deepEqual([again.imported, again.skipped], [0, 2], name)
    const compared = await store.importFrom(`s3://${bucket}/sessions/`, { s3, execute: true, overwrite: true })
    t.deepEqual(compared.sessions.map((s) => s.status), ['unchanged', 'unchanged'], name)
  }
  t.true((await moto.keys('import-backup')).length >= 2, 'the import was backed up')

  // Leaving: export to another bucket in wwebjs-aws-s3's layout; the real wwebjs-aws-s3 restores it.
  const out = await moto.bucket('import-out')
  const exported = await targets['redis+s3'].exportTo(`s3://${out}/sessions/`, { s3 })
  t.deepEqual([exported.exported, exported.failed], [2, 0])
  t.deepEqual(await moto.keys(out), ['sessions/RemoteAuth-eva.zip', 'sessions/RemoteAuth-fritz.zip'])
  const back = awsStore(client, out)
  for (const id of ['eva', 'fritz']) await assertRestores(t, back, root, id, files[id])
  t.deepEqual(await moto.keys(bucket, 'sessions/'), ['sessions/RemoteAuth-eva.zip', 'sessions/RemoteAuth-fritz.zip'], 'the source is left as it was')
})

test.serial('folder source: zip bombs refused per file; export -> import into a fresh store round trips every session (CLI, S3 from the environment)', async (t) => {
  const root = tempDir(t)
  const first = new RustStore({ dir: path.join(root, 'one'), maxUnpackedBytes: 20_000_000 })
  const files = {}
  for (const [i, id] of ['gil', 'hana', 'ivo'].entries()) files[id] = await saveLogin(first, root, id, 20 + i)
  const folder = path.join(root, 'zips')
  const exported = await first.exportTo(folder)
  t.deepEqual(exported.sessions.map((s) => s.key), ['gil', 'hana', 'ivo'].map((id) => path.join(folder, `RemoteAuth-${id}.zip`)))
  await writeZip(path.join(folder, 'RemoteAuth-bomb.zip'), (a) => a.append(Buffer.alloc(40_000_000), { name: 'Default/IndexedDB/x/000005.ldb' }))
  fs.writeFileSync(path.join(folder, 'RemoteAuth-gzbomb.zip'), zlib.gzipSync(Buffer.alloc(40_000_000)))
  fs.writeFileSync(path.join(folder, 'notes.txt'), 'not a session')
  // A link is not followed, but reported (#28.6): the operator meant it as a session.
  fs.symlinkSync(path.join(folder, 'RemoteAuth-gil.zip'), path.join(folder, 'RemoteAuth-link.zip'))

  const fresh = new RustStore({ dir: path.join(root, 'two'), maxUnpackedBytes: 20_000_000 })
  const report = await fresh.importFrom(folder, { execute: true })
  const keys = byKey(report)
  t.is(keys['RemoteAuth-bomb.zip'].error.code, 'ERR_ARCHIVE_LIMIT')
  t.is(keys['RemoteAuth-gzbomb.zip'].error.code, 'ERR_ARCHIVE_LIMIT')
  t.is(keys['RemoteAuth-link.zip'].error.code, 'ERR_IMPORT_FORMAT')
  t.regex(keys['RemoteAuth-link.zip'].error.message, /a symlink, not followed/)
  t.deepEqual([report.imported, report.failed, report.sessions.length], [3, 3, 6])
  t.deepEqual((await fresh.listSessions()).map((s) => s.session).sort(), ['RemoteAuth-gil', 'RemoteAuth-hana', 'RemoteAuth-ivo'])
  for (const id of ['gil', 'hana', 'ivo']) await assertRestores(t, fresh, root, id, files[id])

  // The CLI: export to S3 (settings from S3_* variables), then import that into a third store.
  const bucket = await moto.bucket('import-cli')
  const env = S3_ENV()
  const out = cli(root, ['export', '--to', `s3://${bucket}/wa`, '--dir', path.join(root, 'two'), 'RemoteAuth-gil', 'RemoteAuth-ivo'], env)
  t.is(out.code, 0, out.stderr)
  t.regex(out.stdout, /exported 2 of 2 sessions/)
  t.deepEqual(await moto.keys(bucket), ['wa/RemoteAuth-gil.zip', 'wa/RemoteAuth-ivo.zip'])
  const imp = cli(root, ['import', '--from', `s3://${bucket}/wa/`, '--dir', path.join(root, 'three'), '--execute', '--json'], env)
  t.is(imp.code, 0, imp.stderr)
  t.is(imp.json().imported, 2)
  const third = new RustStore({ dir: path.join(root, 'three') })
  for (const id of ['gil', 'ivo']) await assertRestores(t, third, root, id, files[id])
})
