'use strict'
// The S3Client both S3 contenders point at the bench's S3 server (path-style, as moto and MinIO want).
const { S3Client } = require('@aws-sdk/client-s3')

function s3Client(s3) {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  })
}

module.exports = { s3Client }
