// Real servers for the specs, on loopback and free ports, started and stopped by the test that uses them.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function isFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 20000)
    if ((await isFree(port)) && (await isFree(port + 10000))) return port
  }
}

// scripts/test-servers.sh puts moto in a venv where the system Python refuses pip installs.
const motoVenv = path.resolve(import.meta.dirname, '../node_modules/.cache/moto-venv/bin/moto_server')
const motoServer = fs.existsSync(motoVenv) ? motoVenv : 'moto_server'

/** A server process; a missing program fails the test that needs it instead of crashing the worker. */
function spawnServer(cmd, args) {
  const proc = spawn(cmd, args, { stdio: 'ignore' })
  proc.on('error', (err) => {
    proc.spawnError = err
  })
  return proc
}

/** SIGTERM, then wait for the exit (a stopped server's port must be free again). */
async function stopProcess(proc) {
  // A SIGKILLed process has a signalCode and no exitCode: it is gone too.
  if (!proc || proc.exitCode !== null || proc.signalCode !== null || proc.spawnError) return
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  proc.kill('SIGTERM')
  await exited
}

function run(cmd, args) {
  const res = spawnSync(cmd, args, { encoding: 'utf8' })
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${res.stderr}`)
  return res.stdout
}

/** A CA and a server certificate for 127.0.0.1 and localhost, made with openssl in `dir`. */
export function makeCerts(dir) {
  const f = (name) => path.join(dir, name)
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=wwrs test CA', '-keyout', f('ca.key'), '-out', f('ca.crt')])
  run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', f('server.key'), '-out', f('server.csr')])
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.crt')])
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') }
}

/**
 * A redis-server in its own temp dir. `start()`/`stop()` can be called again (same port, same data) to simulate
 * an outage; the test's teardown stops it for good.
 */
export async function startRedis(t, { password, unixSocket = false, appendonly = false, tls = false, cluster = false, args: extra = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-redis-'))
  const port = cluster ? await freeClusterPort() : await freePort()
  const socket = unixSocket ? path.join(dir, 'redis.sock') : null
  const certs = tls ? makeCerts(dir) : null
  const args = ['--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', appendonly ? 'yes' : 'no']
  // With the append-only file on, every acknowledged write is on disk: what a crash test may count on.
  if (appendonly) args.push('--appendfsync', 'always')
  if (certs) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', certs.cert, '--tls-key-file', certs.key)
    args.push('--tls-ca-cert-file', certs.ca, '--tls-auth-clients', 'no')
  } else {
    args.push('--port', String(port))
  }
  if (password) args.push('--requirepass', password)
  if (socket) args.push('--unixsocket', socket, '--unixsocketperm', '700')
  args.push(...extra)
  if (cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--cluster-node-timeout', '3000')
  const scheme = certs ? 'rediss' : 'redis'
  const server = {
    port,
    socket,
    certs,
    url: `${scheme}://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`,
    proc: null,
    /** Runs redis-cli against the server and returns its trimmed output. */
    cli(...command) {
      const auth = password ? ['--no-auth-warning', '-a', password] : []
      const tlsArgs = certs ? ['--tls', '--cacert', certs.ca] : []
      const res = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...tlsArgs, ...auth, ...command], { encoding: 'utf8' })
      if (res.status !== 0) throw new Error(`redis-cli ${command.join(' ')}: ${res.stderr}`)
      return res.stdout.trim()
    },
    async start() {
      this.proc = spawnServer('redis-server', args)
      for (let i = 0; i < 200; i++) {
        try {
          if (this.cli('PING') === 'PONG') return
        } catch {}
        await sleep(25)
      }
      throw this.proc.spawnError ?? new Error('redis-server did not start')
    },
    stop() {
      return stopProcess(this.proc)
    },
    /** SIGKILL: a crash, no shutdown save. */
    async kill() {
      if (!this.proc || this.proc.exitCode !== null) return
      const exited = new Promise((resolve) => this.proc.once('exit', resolve))
      this.proc.kill('SIGKILL')
      await exited
    },
  }
  await server.start()
  t.teardown(async () => {
    await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return server
}

/** Three primaries joined into a Redis Cluster by `redis-cli --cluster create`. */
export async function startCluster(t) {
  const nodes = []
  for (let i = 0; i < 3; i++) nodes.push(await startRedis(t, { cluster: true }))
  run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'])
  for (let i = 0; i < 200; i++) {
    if (nodes.every((n) => n.cli('CLUSTER', 'INFO').includes('cluster_state:ok'))) return nodes
    await sleep(50)
  }
  throw new Error('the cluster did not reach cluster_state:ok')
}

// moto wants an Authorization header on object requests but checks no signature while it has no IAM users.
const unsigned = { authorization: 'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0' }

/** moto's S3-compatible server (from PyPI) on a free loopback port. `bucket(name)` creates a bucket. */
export async function startMoto(t) {
  const port = await freePort()
  const endpoint = `http://127.0.0.1:${port}`
  const server = {
    endpoint,
    proc: null,
    async start() {
      this.proc = spawnServer(motoServer, ['-H', '127.0.0.1', '-p', String(port)])
      for (let i = 0; i < 400; i++) {
        try {
          if ((await fetch(`${endpoint}/`)).ok) return
        } catch {}
        await sleep(25)
      }
      throw this.proc.spawnError ?? new Error('moto_server did not start')
    },
    stop() {
      return stopProcess(this.proc)
    },
    async bucket(name) {
      const res = await fetch(`${endpoint}/${name}`, { method: 'PUT' })
      if (!res.ok) throw new Error(`create bucket ${name}: ${res.status}`)
      return name
    },
    /** Object keys in a bucket under a prefix (moto does not check signatures while it has no IAM users). */
    async keys(bucket, prefix = '') {
      const res = await fetch(`${endpoint}/${bucket}?list-type=2&prefix=${encodeURIComponent(prefix)}`)
      const xml = await res.text()
      return [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]).sort()
    },
    /** `keys` without the marks a delete leaves (`<session>/<stamp>.gone`, zero bytes: see docs/reliability.md). */
    async liveKeys(bucket, prefix = '') {
      return (await this.keys(bucket, prefix)).filter((k) => !k.endsWith('.gone'))
    },
    /** Total size of the objects in a bucket under a prefix. */
    async bytes(bucket, prefix = '') {
      let [total, token] = [0, null]
      do {
        const page = token ? `&continuation-token=${encodeURIComponent(token)}` : ''
        const res = await fetch(`${endpoint}/${bucket}?list-type=2&prefix=${encodeURIComponent(prefix)}${page}`)
        const xml = await res.text()
        total += [...xml.matchAll(/<Size>(\d+)<\/Size>/g)].reduce((sum, m) => sum + Number(m[1]), 0)
        token = /<IsTruncated>true/.test(xml) ? xml.match(/<NextContinuationToken>([^<]*)</)[1] : null
      } while (token)
      return total
    },
    async putObject(bucket, key, body) {
      const res = await fetch(`${endpoint}/${bucket}/${key}`, { method: 'PUT', body, headers: unsigned })
      if (!res.ok) throw new Error(`put ${key}: ${res.status}`)
    },
    async getObject(bucket, key) {
      const res = await fetch(`${endpoint}/${bucket}/${key}`, { headers: unsigned })
      if (!res.ok) throw new Error(`get ${key}: ${res.status}`)
      return Buffer.from(await res.arrayBuffer())
    },
  }
  await server.start()
  t.teardown(() => server.stop())
  return server
}

/**
 * One moto for the whole spec file (it takes seconds to start), stopped after its last test; each test uses its
 * own bucket. The handle forwards to the server once the file's `before` hook has run.
 */
export function motoForFile(test) {
  let server
  const stops = []
  test.before(async () => {
    server = await startMoto({ teardown: (stop) => stops.push(stop) })
  })
  test.after.always(async () => {
    for (const stop of stops) await stop()
  })
  return new Proxy({}, { get: (_, prop) => (typeof server?.[prop] === 'function' ? server[prop].bind(server) : server?.[prop]) })
}

/**
 * A primary, one replica and three sentinels (`redis-sentinel`, Debian's package) on loopback, with short
 * failover timings so a SIGKILLed primary is replaced within seconds. `password` guards the data nodes,
 * `sentinelPassword` the sentinels. `primaryPort()` asks a sentinel which node is the primary now. A long
 * `failoverTimeoutMs` also keeps the sentinels from re-pointing, for that long, a replica a spec pointed elsewhere.
 */
export async function startSentinels(t, { name = 'mymaster', password, sentinelPassword, failoverTimeoutMs = 4000 } = {}) {
  // No 5 s diskless-sync delay (Redis 7's default): the replica is in sync as soon as it connects.
  const auth = [...(password ? ['--masterauth', password] : []), '--repl-diskless-sync-delay', '0']
  const primary = await startRedis(t, { password, args: auth })
  const replica = await startRedis(t, { password, args: [...auth, '--replicaof', '127.0.0.1', String(primary.port)] })
  const sentinels = []
  for (let i = 0; i < 3; i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-sentinel-'))
    const port = await freePort()
    const conf = path.join(dir, 'sentinel.conf')
    const lines = [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`]
    lines.push(`sentinel down-after-milliseconds ${name} 1000`, `sentinel failover-timeout ${name} ${failoverTimeoutMs}`)
    if (password) lines.push(`sentinel auth-pass ${name} ${JSON.stringify(password)}`)
    if (sentinelPassword) lines.push(`requirepass ${JSON.stringify(sentinelPassword)}`, `sentinel sentinel-pass ${JSON.stringify(sentinelPassword)}`)
    fs.writeFileSync(conf, lines.join('\n') + '\n')
    const sentinel = {
      port,
      addr: `127.0.0.1:${port}`,
      proc: spawnServer('redis-sentinel', [conf]),
      cli(...command) {
        const a = sentinelPassword ? ['--no-auth-warning', '-a', sentinelPassword] : []
        const res = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...a, ...command], { encoding: 'utf8' })
        if (res.status !== 0) throw new Error(`redis-cli ${command.join(' ')}: ${res.stderr}`)
        return res.stdout.trim()
      },
    }
    sentinels.push(sentinel)
    t.teardown(async () => {
      await stopProcess(sentinel.proc)
      fs.rmSync(dir, { recursive: true, force: true })
    })
  }
  const set = {
    name,
    primary,
    replica,
    sentinels,
    nodes: [primary, replica],
    addrs: sentinels.map((s) => s.addr),
    /** The port of the node the sentinels call primary now, by the first sentinel that answers. */
    primaryPort() {
      for (const s of sentinels) {
        try {
          const [, port] = s.cli('SENTINEL', 'get-master-addr-by-name', name).split('\n')
          if (port) return Number(port)
        } catch {}
      }
      return null
    },
    /** Until every live sentinel knows the others and a replica of the primary on `port` (a failover needs both). */
    async settled(port = this.primaryPort(), replicas = 1) {
      for (let i = 0; i < 600; i++) {
        const dead = sentinels.find((s) => s.proc.exitCode !== null || s.proc.signalCode !== null || s.proc.spawnError)
        if (dead) throw dead.proc.spawnError ?? new Error(`redis-sentinel on port ${dead.port} exited`)
        const ready = sentinels.every((s) => {
          try {
            const info = s.cli('SENTINEL', 'master', name).split('\n')
            const field = (k) => info[info.indexOf(k) + 1]
            return Number(field('port')) === port && Number(field('num-other-sentinels')) === 2 && Number(field('num-slaves')) >= replicas && !field('flags').includes('down')
          } catch {
            return false
          }
        })
        if (ready) return
        await sleep(50)
      }
      throw new Error('the sentinels did not settle')
    },
  }
  for (let i = 0; !replica.cli('INFO', 'replication').includes('master_link_status:up'); i++) {
    if (i > 400) throw new Error('the replica did not sync')
    await sleep(25)
  }
  await set.settled(primary.port)
  return set
}
