'use strict'
// wwebjs-aws-s3 from npm, configured as its README shows, pointed at the bench's S3 server.
const path = require('node:path')
const { PutObjectCommand, HeadObjectCommand, GetObjectCommand, DeleteObjectCommand } = require('@aws-sdk/client-s3')
const { s3Client } = require('./s3-client.js')
const { AwsS3Store } = require('wwebjs-aws-s3')
const { s3Bytes } = require('./measure.js')

const REMOTE_DIR = 'sessions/'
let client
let store
let s3

module.exports = {
  label: 'wwebjs-aws-s3',
  verify: 'zip',
  async setup(ctx) {
    s3 = ctx.s3
    client = s3Client(s3)
    store = new AwsS3Store({
      bucketName: s3.bucket,
      remoteDataPath: REMOTE_DIR,
      s3Client: client,
      putObjectCommand: PutObjectCommand,
      headObjectCommand: HeadObjectCommand,
      getObjectCommand: GetObjectCommand,
      deleteObjectCommand: DeleteObjectCommand,
    })
  },
  async save(session, zipPath) {
    // Its save() reads `${session}.zip` relative to the current directory, whatever RemoteAuth passes.
    if (zipPath !== path.resolve(`${session}.zip`)) throw new Error('this store reads <cwd>/<session>.zip only')
    await store.save({ session })
  },
  extract: (session, outPath) => store.extract({ session, path: outPath }),
  async storedBytes(session) {
    return { s3: await s3Bytes(s3.endpoint, s3.bucket, `${REMOTE_DIR}${session}.zip`) }
  },
  remove: (session) => store.delete({ session }),
  async teardown() {
    client.destroy()
  },
}
