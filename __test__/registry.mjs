// A real npm registry for the install spec: verdaccio (a devDependency) on loopback, no uplinks, its storage in
// a temp folder, so nothing is fetched from or published to anywhere else.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { freePort } from './servers.mjs'

const verdaccio = path.resolve(import.meta.dirname, '../node_modules/verdaccio/bin/verdaccio')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts verdaccio in `dir`, adds a user, and writes an npmrc whose registry and token are this one's only. */
export async function startRegistry(t, dir) {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const config = path.join(dir, 'verdaccio.yaml')
  fs.writeFileSync(
    config,
    [
      `storage: ${path.join(dir, 'storage')}`,
      `auth: { htpasswd: { file: ${path.join(dir, 'htpasswd')}, max_users: 10 } }`,
      'uplinks: {}',
      "packages: { '**': { access: $all, publish: $authenticated, unpublish: $authenticated } }",
      // The debug addon is large, and the spec publishes it whole.
      'max_body_size: 1gb',
      'web: { enable: false }',
      'log: { type: stdout, format: pretty, level: error }',
      '',
    ].join('\n'),
  )
  // --no-warnings: verdaccio warns about running as root, which CI does.
  const proc = spawn(process.execPath, ['--no-warnings', verdaccio, '--config', config, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += d))
  t.teardown(async () => {
    if (proc.exitCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGTERM')
    await exited
  })
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}-/ping`)).ok) break
    } catch {}
    if (i > 600 || proc.exitCode !== null) throw new Error(`verdaccio did not start: ${stderr}`)
    await sleep(50)
  }
  // npm adduser's request: a throwaway user on a throwaway registry; the token stays in the npmrc.
  const res = await fetch(`${url}-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', password: 'ci-password', type: 'user', roles: [] }),
  })
  const { token } = await res.json()
  if (!res.ok || !token) throw new Error(`verdaccio refused the user: ${res.status}`)
  const npmrc = path.join(dir, 'npmrc')
  fs.writeFileSync(npmrc, `registry=${url}\n//127.0.0.1:${port}/:_authToken=${token}\n`)
  return { url, npmrc, log: () => stderr }
}
