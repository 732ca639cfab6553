// Issue #14.10: `migrate --delete-source` removes an account's folders only when the imported (newest) folder
// holds a login, never because of the timestamp in its name alone.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { require, tempDir } from './helpers.mjs'

const { makeWorkspace, loggedIn } = require('../support/sessions-shared.js')
const bin = path.resolve('bin/wwebjs-rust-store.js')

function cli(cwd, args) {
  const res = spawnSync(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH }, encoding: 'utf8' })
  if (res.error) throw res.error
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

test('#10 an abandoned QR-code folder newer than the real login deletes nothing; a newest folder with a login does', (t) => {
  const root = tempDir(t)
  const { workspace, accounts } = makeWorkspace(root, { users: { ana: 2 }, localAuth: [], junk: false })
  const newest = accounts.webjs_ana.folder
  // The newest folder was opened, showed a QR code nobody scanned, and was left: no paired keys in it.
  fs.rmSync(path.join(newest, 'Default/Local Storage/leveldb/000005.log'))
  const folders = fs.readdirSync(workspace).sort()
  t.is(folders.length, 2)

  const run = cli(root, ['migrate', 'sessions-shared', '--execute', '--delete-source', '--json', '--dir', 'store-a'])
  t.is(run.code, 0, run.stderr)
  const [ana] = run.json().sessions
  t.is(ana.source, newest)
  t.is(ana.status, 'imported')
  t.deepEqual(ana.deleted, [])
  t.regex(ana.kept_because, /shows no login/)
  t.deepEqual(fs.readdirSync(workspace).sort(), folders, 'the older folder, the real login, is still there')

  loggedIn(newest, {})
  const again = cli(root, ['migrate', 'sessions-shared', '--execute', '--delete-source', '--json', '--dir', 'store-b'])
  t.is(again.code, 0, again.stderr)
  t.is(again.json().sessions[0].deleted.length, 2)
  t.deepEqual(fs.readdirSync(workspace), [])
})
