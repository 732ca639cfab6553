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

/**
 * A redis-server in its own temp dir. `start()`/`stop()` can be called again (same port, same data) to simulate
 * an outage; the test's teardown stops it for good.
 */
export async function startRedis(t, { password, unixSocket = false, appendonly = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-redis-'))
  const port = await freePort()
  const socket = unixSocket ? path.join(dir, 'redis.sock') : null
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', appendonly ? 'yes' : 'no']
  if (password) args.push('--requirepass', password)
  if (socket) args.push('--unixsocket', socket, '--unixsocketperm', '700')
  const server = {
    port,
    socket,
    url: `redis://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`,
    proc: null,
    /** Runs redis-cli against the server and returns its trimmed output. */
    cli(...command) {
      const auth = password ? ['--no-auth-warning', '-a', password] : []
      const res = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...command], { encoding: 'utf8' })
      if (res.status !== 0) throw new Error(`redis-cli ${command.join(' ')}: ${res.stderr}`)
      return res.stdout.trim()
    },
    async start() {
      this.proc = spawn('redis-server', args, { stdio: 'ignore' })
      for (let i = 0; i < 200; i++) {
        try {
          if (this.cli('PING') === 'PONG') return
        } catch {}
        await sleep(25)
      }
      throw new Error('redis-server did not start')
    },
    async stop() {
      if (!this.proc || this.proc.exitCode !== null) return
      const exited = new Promise((resolve) => this.proc.once('exit', resolve))
      this.proc.kill('SIGTERM')
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
