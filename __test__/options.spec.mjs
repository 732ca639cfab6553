// Every option mistake names itself: unknown keys at every level are refused with the nearest valid key, wrong
// types are said in JavaScript terms, and a seeded mutation run over whole option objects ends, every time, in a
// working store or an ERR_INVALID_OPTION whose message names the option. Serial: the mutation run changes the cwd.
import crypto from 'node:crypto'
import path from 'node:path'
import test from 'ava'

import { RustStore, tempDir } from './helpers.mjs'
import { startRedis } from './servers.mjs'

/** What no option error may say: napi's own conversion messages, a client's internals, a repeated prefix. */
const INTERNALS = /Failed to convert|Missing field|Failed to get|InvalidClientConfig|rust type|invalid option (\S+): invalid option \1/

function refused(t, make, message, label = String(message)) {
  const err = t.throws(make, undefined, label)
  if (!err) return
  t.is(err.code, 'ERR_INVALID_OPTION', `${label}: ${err.message}`)
  t.notRegex(err.message, INTERNALS)
  if (typeof message === 'string') t.is(err.message, message)
  else t.regex(err.message, message)
}

async function rejected(t, pending, message) {
  const err = await t.throwsAsync(pending)
  t.is(err.code, 'ERR_INVALID_OPTION', err.message)
  t.is(err.message, message)
}

const key = () => crypto.randomBytes(32).toString('base64')

test.serial('unknown keys are refused at every level with the nearest valid key', async (t) => {
  const root = tempDir(t)
  const dir = path.join(root, 'store')
  refused(t, () => new RustStore({ dirr: './x' }), 'unknown option `dirr`; did you mean `dir`?')
  refused(t, () => new RustStore({ dir, redis: { url: 'redis://127.0.0.1:1', ttl: 5 } }),
    'unknown option `redis.ttl`; did you mean `redis.ttlSeconds`?')
  refused(t, () => new RustStore({ redis: { url: 'rediss://127.0.0.1:1', tls: { cafile: 'ca.pem' } } }),
    'unknown option `redis.tls.cafile`; did you mean `redis.tls.caFile`?')
  refused(t, () => new RustStore({ dir, s3: { bucket: 'b', keepVersion: 3 } }),
    'unknown option `s3.keepVersion`; did you mean `s3.keepVersions`?')
  refused(t, () => new RustStore({ dir, encryption: { key: key(), previousKey: [] } }),
    'unknown option `encryption.previousKey`; did you mean `encryption.previousKeys`?')
  refused(t, () => new RustStore({ dir, diskAlert: { webhook: 'http://127.0.0.1:1/' } }),
    'unknown option `diskAlert.webhook`; did you mean `diskAlert.webhookUrl`?')
  refused(t, () => RustStore.fromEnv({ dir, metricPort: 0 }), 'unknown option `metricPort`; did you mean `metricsPort`?')
  refused(t, () => new RustStore({ dir, zzqx: 1 }), /^unknown option `zzqx`; valid here: dataPath, dir, redis, s3,/)

  const server = await startRedis(t)
  const store = new RustStore({ redis: { url: server.url }, dataPath: root })
  const noop = async () => {}
  refused(t, () => store.fleet({ workerId: 'w', capacty: 2, capacity: 1, onStart: noop, onStop: noop }),
    'unknown option `fleet.capacty`; did you mean `fleet.capacity`?')
  refused(t, () => store.fleet({ workerId: 'w', capacity: 1, onStart: noop, onStop: noop, onEvents: noop }),
    'unknown option `fleet.onEvents`; did you mean `fleet.onEvent`?')
  await rejected(t, store.acquireLease('RemoteAuth-a', { ttl: 5000 }), 'unknown option `ttl`; did you mean `ttlMs`?')
  await rejected(t, store.renewLease('RemoteAuth-a', 't', { ttlMS: 5000 }), 'unknown option `ttlMS`; did you mean `ttlMs`?')
  const local = new RustStore({ dir, dataPath: root })
  await rejected(t, local.restoreAll({ concurency: 2 }), 'unknown option `concurency`; did you mean `concurrency`?')
  await rejected(t, local.importFrom(root, { exec: true }), 'unknown option `exec`; did you mean `execute`?')
  await rejected(t, local.exportTo(path.join(root, 'out'), { session: ['a'] }), 'unknown option `session`; did you mean `sessions`?')
  await rejected(t, local.importFrom('s3://b/p/', { s3: { endpoint: 'http://127.0.0.1:1', forcePathstyle: true } }),
    'unknown option `s3.forcePathstyle`; did you mean `s3.forcePathStyle`?')
})

test.serial('wrong types and values say which option, what it got and what it wants', async (t) => {
  const root = tempDir(t)
  const dir = path.join(root, 'store')
  refused(t, () => new RustStore({ dir: 42 }), 'dir must be a string, got number 42')
  refused(t, () => new RustStore({ dir, keep: 'Default/IndexedDB' }), 'keep must be an array, got a string')
  refused(t, () => new RustStore({ dir, keep: ['Default/IndexedDB', 7] }), 'keep[1] must be a string, got number 7')
  refused(t, () => new RustStore({ dir, s3: {} }), 's3.bucket is required')
  refused(t, () => new RustStore({ dir, s3: { bucket: 5 } }), 's3.bucket must be a string, got number 5')
  refused(t, () => new RustStore({ dir, redis: 'redis://127.0.0.1' }), 'redis must be an object, got a string')
  refused(t, () => new RustStore({ dir, onError: 'log' }), 'onError must be a function, got a string')
  refused(t, () => new RustStore({ dir, encryption: { key: key(), acceptPlain: 'yes' } }),
    'encryption.acceptPlain must be a boolean, got a string')
  refused(t, () => new RustStore(42), 'options must be an object, got number 42')
  refused(t, () => new RustStore({ dir, compressionLevel: 2.5 }), 'invalid option compressionLevel: 2.5 is not a whole number from 1 to 22')
  // The URL, which may carry a password, is not echoed.
  const url = 'http://user:hunter2@127.0.0.1:1'
  refused(t, () => new RustStore({ redis: { url } }),
    'invalid option redis.url: must start with redis://, rediss:// or unix:// (valkey:// works too)')
  refused(t, () => new RustStore({ dir, s3: { bucket: 'b', secretAccessKey: 42 } }), 's3.secretAccessKey must be a string, got number 42')

  const server = await startRedis(t)
  const store = new RustStore({ redis: { url: server.url }, dataPath: root })
  const noop = async () => {}
  refused(t, () => store.fleet({ workerId: 'w', capacity: 1.5, onStart: noop, onStop: noop }),
    'invalid option fleet.capacity: 1.5 is not a whole number from 1 to 100000')
  refused(t, () => store.fleet({ workerId: 'w', capacity: 1, onStart: 'no', onStop: noop }),
    'fleet.onStart must be a function, got a string')
  refused(t, () => store.fleet({ workerId: 'w', capacity: 1, onStart: noop }), 'fleet.onStop is required')
  refused(t, () => store.fleet(), 'fleet must be an object, got undefined')
  refused(t, () => store.fleet(42), 'fleet must be an object, got number 42')
  await rejected(t, store.acquireLease('RemoteAuth-a', { ttlMs: '5000' }), 'ttlMs must be a number, got a string')
  // RemoteAuth's own arguments say the same, as ERR_INVALID_ARG (rejections: RemoteAuth does not catch throws).
  for (const [call, message] of [
    [() => store.sessionExists({ session: 5 }), 'invalid argument: session must be a string, got number 5'],
    [() => store.extract({ session: 'RemoteAuth-a' }), 'invalid argument: path is required'],
    [() => store.delete(undefined), 'invalid argument: expected an object like { session }'],
  ]) {
    const err = await t.throwsAsync(call())
    t.is(err.code, 'ERR_INVALID_ARG')
    t.is(err.message, message)
  }
})

// --- the seeded mutation run ---

/** A small deterministic PRNG (mulberry32), so a failing case can be replayed by its seed. */
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let r = Math.imul(a ^ (a >>> 15), 1 | a)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
}

/** Options that make a working store (in the cwd, a temp directory), as a new user would write them. */
function base(redisUrl, onError) {
  const options = {
    dataPath: 'auth',
    dir: 'store',
    keep: ['Default/IndexedDB', 'Default/Local Storage'],
    maxEntries: 20000,
    maxUnpackedBytes: 1 << 30,
    compressionLevel: 3,
    saveErrors: 'report',
    onError,
    encryption: { key: key(), previousKeys: [key()], acceptPlain: true },
    diskAlert: { webhookUrl: 'http://127.0.0.1:9/', minFreeBytes: 1, checkIntervalMs: 3_600_000, repeatIntervalMs: 3_600_000 },
    metricsHost: '127.0.0.1',
  }
  if (redisUrl) {
    delete options.dir
    options.redis = { url: redisUrl, prefix: 'mut:', ttlSeconds: 3600, connectTimeoutMs: 5000, commandTimeoutMs: 10000 }
  }
  return options
}

/** Every object path in `o` (arrays as their own nodes). */
function paths(o, at = []) {
  const out = []
  for (const [k, v] of Object.entries(o)) {
    out.push([...at, k])
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...paths(v, [...at, k]))
  }
  return out
}

const OTHER_VALUES = [4242, -1, 2.5, NaN, Infinity, 1e300, '', 'x', true, false, [], [1], {}, { a: 1 }, () => {}, Symbol('s'), 10n]

function typo(name, rand) {
  const i = Math.floor(rand() * name.length)
  switch (Math.floor(rand() * 4)) {
    case 0: return name.slice(0, i) + name.slice(i + 1) // drop a letter
    case 1: return name.slice(0, i) + name[i] + name.slice(i) // double a letter
    case 2: return name.toLowerCase() === name ? name.toUpperCase() : name.toLowerCase()
    default: return name + 's'
  }
}

/** One mutation of `options` in place; returns what it did and the option names its refusal may mention. */
function mutate(options, rand) {
  const all = paths(options)
  const at = all[Math.floor(rand() * all.length)]
  const parent = at.slice(0, -1).reduce((o, k) => o[k], options)
  const name = at[at.length - 1]
  const kind = ['delete', 'rename', 'retype', 'add'][Math.floor(rand() * 4)]
  if (kind === 'delete') {
    delete parent[name]
    return { kind, at, mentions: [name] }
  }
  if (kind === 'rename') {
    const renamed = typo(name, rand)
    if (renamed === name || renamed in parent) return { kind: 'none', at }
    parent[renamed] = parent[name]
    delete parent[name]
    // The refusal may name the new key (unknown) or the old one (now missing).
    return { kind, at, mentions: [renamed, name], mustRefuse: true }
  }
  if (kind === 'add') {
    const extra = `x${Math.floor(rand() * 1e6)}`
    parent[extra] = OTHER_VALUES[Math.floor(rand() * OTHER_VALUES.length)]
    return { kind, at, mentions: [extra], mustRefuse: true }
  }
  const before = parent[name]
  const value = [null, undefined, ...OTHER_VALUES][Math.floor(rand() * (OTHER_VALUES.length + 2))]
  parent[name] = value
  // Absent, or the same JS type with a value its range accepts, may still make a working store.
  const sameType = typeof value === typeof before && Array.isArray(value) === Array.isArray(before)
  return { kind, at, mentions: [name], mustRefuse: value != null && !sameType }
}

/**
 * `cases` seeded mutations of `base(i, rand)`, each handed to `make`: it must throw ERR_INVALID_OPTION naming a
 * mutated option (`root` prefixes the names: a refusal of the top level names `root`), or give something `use`
 * proves working. Returns how many of each.
 */
async function mutations(t, { name, cases, base, make, use, root }) {
  const seed = Number(process.env.OPTIONS_SEED ?? 20261207)
  t.log(`OPTIONS_SEED=${seed} OPTIONS_CASES=${cases} (${name})`)
  const rand = prng(seed)
  const outcomes = { working: 0, refused: 0 }
  for (let i = 0; i < cases; i++) {
    const options = base(i, rand)
    const steps = [mutate(options, rand)]
    if (rand() < 0.3) steps.push(mutate(options, rand))
    const label = `${name} case ${i} (seed ${seed}): ${JSON.stringify(steps)}`
    let made
    try {
      made = make(options)
    } catch (err) {
      outcomes.refused++
      t.is(err.code, 'ERR_INVALID_OPTION', `${label}: ${err.message}`)
      t.notRegex(err.message, INTERNALS, label)
      const named = steps.some((s) => s.mentions?.some((m) => err.message.includes(m)))
      t.true(named || err.message.startsWith(`${root} `), `${label}: ${err.message} names none of the mutated options`)
      continue
    }
    outcomes.working++
    // A second step may undo the first (delete the key the first added), so only single steps are held to it.
    t.false(steps.length === 1 && Boolean(steps[0].mustRefuse), `${label}: accepted`)
    await use(made, i, label)
  }
  t.log(outcomes)
  // Both outcomes occur: the run explores accepted objects as well as refused ones.
  t.true(outcomes.working > 0 && outcomes.refused > cases / 3, JSON.stringify(outcomes))
}

test.serial('seeded mutations of whole option objects: a working store or a coded error naming the option', async (t) => {
  const root = tempDir(t)
  const cwd = process.cwd()
  process.chdir(root)
  t.teardown(() => process.chdir(cwd))
  const server = await startRedis(t)
  await mutations(t, {
    name: 'store',
    root: 'options',
    cases: Number(process.env.OPTIONS_CASES ?? 240),
    base: (i, rand) => base(rand() < 0.3 ? server.url : null, () => {}),
    make: (options) => new RustStore(options),
    // Working means working: it answers, and a closed store lets go of its port and timers.
    use: async (store, i, label) => {
      t.false(await store.sessionExists({ session: `RemoteAuth-m${i}` }), label)
      await store.close()
    },
  })
})

test.serial('seeded mutations of fleet options: a worker that joins and leaves, or a coded error naming the option', async (t) => {
  const server = await startRedis(t)
  const store = new RustStore({ redis: { url: server.url, prefix: 'fleet-mut:' }, dataPath: tempDir(t) })
  t.teardown(() => store.close())
  const noop = async () => {}
  await mutations(t, {
    name: 'fleet',
    root: 'fleet',
    cases: Number(process.env.OPTIONS_CASES ?? 240) / 3,
    // A group per case: no case sees another's worker.
    base: (i) => ({ workerId: `w${i}`, capacity: 2, group: `g${i}`, maxConcurrentStarts: 4, unassignedAlertMs: 60_000, onStart: noop, onStop: noop, onEvent: () => {} }),
    make: (options) => store.fleet(options),
    use: async (fleet, i, label) => {
      t.is(typeof fleet.status().workerId, 'string', label)
      await fleet.close()
    },
  })
})
