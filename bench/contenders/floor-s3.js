'use strict'
// The floor over S3: read the zip, PutObject its bytes, GetObject them, write them out.
const fs = require('node:fs')
const { PutObjectCommand, GetObjectCommand, DeleteObjectCommand } = require('@aws-sdk/client-s3')
const { s3Client } = require('./s3-client.js')
const { s3Bytes } = require('./measure.js')

const PREFIX = 'raw/'
let client
let s3

module.exports = {
  label: 'floor: raw S3 PutObject/GetObject',
  verify: 'zip',
  async setup(ctx) {
    s3 = ctx.s3
    client = s3Client(s3)
  },
  async save(session, zipPath) {
    const Body = await fs.promises.readFile(zipPath)
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}${session}.zip`, Body }))
  },
  async extract(session, outPath) {
    const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}${session}.zip` }))
    await fs.promises.writeFile(outPath, await res.Body.transformToByteArray())
  },
  async storedBytes(session) {
    return { s3: await s3Bytes(s3.endpoint, s3.bucket, `${PREFIX}${session}.zip`) }
  },
  remove: (session) => client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}${session}.zip` })),
  async teardown() {
    client.destroy()
  },
}
