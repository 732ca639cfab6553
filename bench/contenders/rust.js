'use strict'
// The three RustStore contenders differ only in options and in where their bytes end up.
const fs = require('node:fs')
const path = require('node:path')
// BENCH_BEFORE_ADDON names a .node of an earlier release build: the "before" contender loads it instead.
const { RustStore } = require('../../index.js')
const before = process.env.BENCH_BEFORE_ADDON
const { redisBytes, s3Bytes } = require('./measure.js')

const s3Options = ({ s3 }) => ({
  endpoint: s3.endpoint,
  bucket: s3.bucket,
  region: s3.region,
  forcePathStyle: true,
  accessKeyId: s3.accessKeyId,
  secretAccessKey: s3.secretAccessKey,
  backupIntervalMs: 0, // back up within every save, as the JS S3 store does
})

/** @param {'embedded'|'redis'|'redis-s3'} variant */
function rustContender(variant, label, Store = RustStore) {
  let store
  let ctx
  return {
    label,
    verify: 'files', // RustStore's extract writes its own (stored) zip: compare the unzipped files
    async setup(context) {
      ctx = context
      const options = { dataPath: ctx.workDir, saveErrors: 'reject' } // reject: a failed save must fail the cell
      if (variant === 'embedded') options.dir = path.join(ctx.workDir, 'store')
      else options.redis = { url: ctx.redisUrl }
      if (variant === 'redis-s3') options.s3 = s3Options(ctx)
      store = new Store(options)
    },
    save: (session, zipPath) => store.save({ session, path: zipPath }),
    extract: (session, outPath) => store.extract({ session, path: outPath }),
    async storedBytes(session) {
      if (variant === 'embedded') return { dir: { bytes: fs.statSync(path.join(ctx.workDir, 'store', `${session}.wwrs`)).size } }
      const bytes = { redis: redisBytes(ctx.redisUrl, `wa:session:${session}`) }
      if (variant === 'redis-s3') bytes.s3 = await s3Bytes(ctx.s3.endpoint, ctx.s3.bucket, `whatsapp-sessions/${session}/`)
      return bytes
    },
    remove: (session) => store.delete({ session }),
    async teardown() {
      await store.close()
    },
  }
}

/** RustStore from the addon at BENCH_BEFORE_ADDON (an earlier build), for before/after figures in one run. */
function beforeStore() {
  if (!before) throw new Error('BENCH_BEFORE_ADDON is not set')
  return require(path.resolve(before)).RustStore
}

module.exports = { rustContender, s3Options, RustStore, beforeStore }
