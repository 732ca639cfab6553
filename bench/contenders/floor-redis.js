'use strict'
// The floor over Redis: read the zip, SET its bytes, GET them, write them out. No checks, no compression,
// no fsync; any store with the same file-in/file-out interface does at least this much work.
const fs = require('node:fs')
const Redis = require('ioredis')
const { redisBytes } = require('./measure.js')

const PREFIX = 'raw:'
let redis
let url

module.exports = {
  label: 'floor: raw ioredis SET/GET',
  verify: 'zip',
  async setup(ctx) {
    url = ctx.redisUrl
    redis = new Redis(url, { lazyConnect: true })
    await redis.connect()
  },
  async save(session, zipPath) {
    await redis.set(PREFIX + session, await fs.promises.readFile(zipPath))
  },
  async extract(session, outPath) {
    await fs.promises.writeFile(outPath, await redis.getBuffer(PREFIX + session))
  },
  async storedBytes(session) {
    return { redis: redisBytes(url, PREFIX + session) }
  },
  remove: (session) => redis.del(PREFIX + session),
  async teardown() {
    await redis.quit()
  },
}
