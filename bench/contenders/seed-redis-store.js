'use strict'
// The Redis store the project started from ("the seed"), as people write it for RemoteAuth today: the zip
// gzipped on the event loop into one Redis string with a 30-day TTL. Kept as the reference to beat.
const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')
const Redis = require('ioredis')
const { redisBytes } = require('./measure.js')

const TTL_SECONDS = 2592000

class SeedRedisStore {
  constructor({ redis, prefix = 'remoteauth:' }) {
    this.redis = redis
    this.prefix = prefix
  }

  async sessionExists({ session }) {
    return (await this.redis.exists(this.prefix + session)) === 1
  }

  // RemoteAuth (<= 1.34.4) leaves `<session>.zip` in the current directory.
  async save({ session }) {
    const zip = await fs.promises.readFile(path.resolve(`${session}.zip`))
    await this.redis.setex(this.prefix + session, TTL_SECONDS, zlib.gzipSync(zip))
  }

  async extract({ session, path: out }) {
    const data = await this.redis.getBuffer(this.prefix + session)
    if (!data) throw new Error(`no session ${session}`)
    await fs.promises.writeFile(out, zlib.gunzipSync(data))
  }

  async delete({ session }) {
    await this.redis.del(this.prefix + session)
  }
}

let redis
let store
let url

module.exports = {
  SeedRedisStore,
  label: "seed's JS Redis store",
  verify: 'zip',
  async setup(ctx) {
    url = ctx.redisUrl
    redis = new Redis(url, { lazyConnect: true })
    await redis.connect()
    store = new SeedRedisStore({ redis })
  },
  async save(session, zipPath) {
    if (zipPath !== path.resolve(`${session}.zip`)) throw new Error('this store reads <cwd>/<session>.zip only')
    await store.save({ session })
  },
  extract: (session, outPath) => store.extract({ session, path: outPath }),
  async storedBytes(session) {
    return { redis: redisBytes(url, store.prefix + session) }
  },
  remove: (session) => store.delete({ session }),
  async teardown() {
    await redis.quit()
  },
}
