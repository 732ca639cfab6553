// Issue #28.4/#28.5: REDIS_PASSWORD / REDIS_USERNAME beside a REDIS_URL without credentials reach Redis (the URL's
// own win), in fromEnv() and every CLI command; configuration errors exit 2, and --json prints them as JSON.
import path from 'node:path'
import test from 'ava'

import { RustStore, tempDir } from './helpers.mjs'
import { startRedis } from './servers.mjs'
import { cli, saveLogin } from './switching.mjs'

test.serial('REDIS_PASSWORD and REDIS_USERNAME beside a bare REDIS_URL log in; the URL\'s own credentials win', async (t) => {
  const root = tempDir(t)
  const server = await startRedis(t, { password: 'pw-28/4 s3cret' })
  server.cli('ACL', 'SETUSER', 'svc', 'on', '>svc-pass', '~*', '+@all')
  const bare = `redis://127.0.0.1:${server.port}`
  const saved = { REDIS_URL: bare, REDIS_PASSWORD: 'pw-28/4 s3cret' }
  // Without the variable the store fails to log in (what users saw before).
  t.is(cli(root, ['stats', '--json'], { REDIS_URL: bare }).json().error.code, 'ERR_REDIS_AUTH')

  const env = (vars, fn) => {
    const old = { ...process.env }
    Object.assign(process.env, vars)
    try {
      return fn()
    } finally {
      for (const k of Object.keys(vars)) if (old[k] === undefined) delete process.env[k]
      Object.assign(process.env, old)
    }
  }
  const store = env({ ...saved, REDIS_USERNAME: '' }, () => RustStore.fromEnv({ dataPath: root }))
  await saveLogin(store, root, 'pw', 3)
  t.true(await store.sessionExists({ session: 'RemoteAuth-pw' }))

  for (const args of [['stats', '--json'], ['verify', '--json'], ['cleanup', '--json'], ['delete', 'RemoteAuth-pw', '--json']]) {
    const run = cli(root, args, saved)
    t.not(run.stdout + run.stderr, '', args[0])
    t.false((run.stdout + run.stderr).includes('ERR_REDIS_AUTH'), `${args[0]}: ${run.stdout}${run.stderr}`)
    t.false((run.stdout + run.stderr).includes('s3cret'), `${args[0]}: no password in the output`)
  }
  t.is(cli(root, ['stats', '--json'], saved).json().sessions, 1)
  t.is(cli(root, ['stats', '--json'], { ...saved, REDIS_USERNAME: 'svc', REDIS_PASSWORD: 'svc-pass' }).json().sessions, 1, 'an ACL user')
  const flag = cli(root, ['stats', '--json', '--redis-url', bare], { REDIS_PASSWORD: 'pw-28/4 s3cret' })
  t.is(flag.json().sessions, 1, '--redis-url takes the password from the environment too')
  const own = cli(root, ['stats', '--json'], { REDIS_URL: `redis://:wrong@127.0.0.1:${server.port}`, REDIS_PASSWORD: 'pw-28/4 s3cret' })
  t.is(own.json().error.code, 'ERR_REDIS_AUTH', 'the URL\'s own password wins')
})

test('configuration errors exit 2 (backup, restore, rotate-key, versions without their tier or key), as JSON with --json', (t) => {
  const root = tempDir(t)
  const dir = ['--dir', path.join(root, 'store')]
  for (const command of [['backup'], ['restore'], ['rotate-key'], ['versions', 'RemoteAuth-a']]) {
    const run = cli(root, [...command, ...dir])
    t.is(run.code, 2, `${command[0]}: ${run.stdout}${run.stderr}`)
    t.regex(run.stderr, /ERR_INVALID_OPTION/, command[0])
    const json = cli(root, [...command, '--json', ...dir])
    t.is(json.code, 2)
    t.is(json.json().error.code, 'ERR_INVALID_OPTION', command[0])
  }
  const stats = cli(root, ['stats', '--json'], { REDIS_URL: 'redis://127.0.0.1:1', SESSION_TTL_SECONDS: 'soon' })
  t.deepEqual([stats.code, stats.json().error.code], [2, 'ERR_INVALID_OPTION'])
  t.is(cli(root, ['extract', '../x', '--out', 'x.zip', ...dir]).code, 2, 'a session name that is not one')
})

test('a server that is not Redis is ERR_REDIS_PROTOCOL, naming host:port and no secret', async (t) => {
  const net = await import('node:net')
  const server = net.createServer((socket) => socket.on('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const { port } = server.address()
  const store = new RustStore({ redis: { url: `redis://:not-shown@127.0.0.1:${port}`, connectTimeoutMs: 1000 } })
  const err = await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-a' }))
  t.is(err.code, 'ERR_REDIS_PROTOCOL', err.message)
  t.regex(err.message, new RegExp(`the server at redis://127\\.0\\.0\\.1:${port}/? did not answer as Redis`))
  t.false(err.message.includes('not-shown'))
})

test('a server that accepts and never answers fails ERR_REDIS_TIMEOUT within about connectTimeoutMs, not a multiple of it', async (t) => {
  const net = await import('node:net')
  const sockets = []
  const server = net.createServer((socket) => sockets.push(socket)) // accepts, reads, never answers
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const store = new RustStore({ redis: { url: `redis://127.0.0.1:${server.address().port}`, connectTimeoutMs: 1000 } })
  const started = process.hrtime.bigint()
  const err = await t.throwsAsync(store.sessionExists({ session: 'RemoteAuth-a' }))
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.is(err.code, 'ERR_REDIS_TIMEOUT', err.message)
  t.regex(err.message, /connectTimeoutMs \(1000 ms\)/)
  // Bounded as a whole: before, the manager's per-attempt timeouts and retries took 3.6 s. 2.5x leaves room for a
  // loaded machine without letting a retry through.
  t.true(ms >= 900 && ms < 2500, `${ms} ms`)
})
