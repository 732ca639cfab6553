'use strict'
// What each system holds for a session, asked from outside the store: redis-cli for Redis and a plain
// ListObjectsV2 request for S3, so no extra client library is loaded into the contender's process (its peak
// RSS is measured).
const { spawnSync } = require('node:child_process')

function redisCli(url, ...args) {
  const res = spawnSync('redis-cli', ['-u', url, ...args], { encoding: 'utf8' })
  if (res.status !== 0 || res.stdout.startsWith('ERR')) throw new Error(`redis-cli ${args.join(' ')}: ${res.stderr || res.stdout}`)
  return res.stdout.trim()
}

/** Value length (STRLEN) and what Redis spends on the key (MEMORY USAGE, allocator rounding included). */
function redisBytes(url, key) {
  const bytes = Number(redisCli(url, 'STRLEN', key))
  if (!bytes) throw new Error(`redis key ${key} is missing or empty`)
  return { bytes, memory: Number(redisCli(url, 'MEMORY', 'USAGE', key, 'SAMPLES', '0')) }
}

/** Sum of object sizes under `prefix` (moto checks no signatures while it has no IAM users). */
async function s3Bytes(endpoint, bucket, prefix) {
  const res = await fetch(`${endpoint}/${bucket}?list-type=2&prefix=${encodeURIComponent(prefix)}`)
  if (!res.ok) throw new Error(`ListObjectsV2 ${bucket}/${prefix}: HTTP ${res.status}`)
  const sizes = [...(await res.text()).matchAll(/<Size>(\d+)<\/Size>/g)].map((m) => Number(m[1]))
  if (!sizes.length) throw new Error(`no S3 object under ${prefix}`)
  return { bytes: sizes.reduce((a, b) => a + b, 0), objects: sizes.length }
}

module.exports = { redisCli, redisBytes, s3Bytes }
