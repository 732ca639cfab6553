'use strict'
// The Redis store many services write by hand for RemoteAuth (a widely shared storage guide's, adapted to the
// zip): `wa:session:<session>` = gzip(zip), SETEX 30 days, through ioredis. The import tests' source.
const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')

const TTL_SECONDS = 30 * 24 * 3600

class HandwrittenRedisStore {
  constructor({ redis, prefix = 'wa:session:' }) {
    this.redis = redis
    this.prefix = prefix
  }

  async sessionExists({ session }) {
    return (await this.redis.exists(this.prefix + session)) === 1
  }

  // Like the guide: `<session>.zip` from the current directory (RemoteAuth <= 1.34.4, or dataPath = cwd).
  async save({ session }) {
    const zip = await fs.promises.readFile(path.resolve(`${path.basename(session)}.zip`))
    await this.redis.setex(this.prefix + path.basename(session), TTL_SECONDS, zlib.gzipSync(zip))
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

module.exports = { HandwrittenRedisStore }
