// Issue #14.10 and #28.1/#28.2: `migrate` takes, per account, the newest folder that holds a login (`last-wid-md`
// in Local Storage, in its log or only in a compressed table), says which folder it takes and why and which it
// skips, stores no account without a login unless asked, lets --overwrite replace a stored copy without a login,
// and `--delete-source` after a plain `--execute` removes what the store holds identically.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { require, tempDir } from './helpers.mjs'
import { cli } from './switching.mjs'

const unzipper = require('unzipper')
const { makeWorkspace, loggedInTable } = require('../support/sessions-shared.js')

/** Two folders of ana: the older holds the login, the newer is a QR code nobody scanned (no paired key). */
function twoFolders(root) {
  const { workspace, accounts } = makeWorkspace(root, { users: { ana: 2 }, localAuth: [], junk: false })
  const folders = fs.readdirSync(workspace).sort().map((f) => path.join(workspace, f))
  const [older, newer] = folders
  if (newer !== accounts.webjs_ana.folder) throw new Error('the fixture sorts by login time')
  fs.rmSync(path.join(newer, 'Default/Local Storage/leveldb/000005.log'))
  return { workspace, older, newer }
}

/** The stored session's Local Storage files, as `extract` writes them. */
async function storedLocalStorage(root, args) {
  const out = path.join(root, `x-${Date.now()}-${Math.random()}.zip`)
  const run = cli(root, ['extract', 'RemoteAuth-webjs_ana', '--out', out, ...args])
  if (run.code !== 0) throw new Error(run.stderr)
  const files = {}
  for (const entry of (await unzipper.Open.file(out)).files) {
    if (entry.type === 'File' && entry.path.startsWith('Default/Local Storage/')) files[entry.path] = await entry.buffer()
  }
  return files
}

for (const where of ['log', 'compressed table']) {
  test(`the newest folder holding a login is taken, not a newer QR-code folder (login in the ${where})`, async (t) => {
    const root = tempDir(t)
    const { workspace, older, newer } = twoFolders(root)
    if (where !== 'log') loggedInTable(older, {})
    const store = ['--dir', path.join(root, 'store')]

    const dry = cli(root, ['migrate', 'sessions-shared', '--json', ...store])
    t.is(dry.code, 0, dry.stdout + dry.stderr)
    const [plan] = dry.json().sessions
    t.deepEqual([plan.source, plan.status, plan.login], [older, 'planned', true])
    t.regex(plan.why, /newest folder that shows a login \(1 newer show none\)/)
    t.deepEqual(plan.skipped.map((s) => [s.path, s.login]), [[newer, false]])
    t.regex(plan.skipped[0].why, /QR code never scanned/)
    const table = cli(root, ['migrate', 'sessions-shared', ...store]).stdout
    t.regex(table, new RegExp(`RemoteAuth-webjs_ana: ${path.basename(older)} \\(the newest folder that shows a login`))
    t.regex(table, new RegExp(`skipped ${path.basename(newer)}: newer, but shows no login`))

    const run = cli(root, ['migrate', 'sessions-shared', '--execute', '--json', ...store])
    t.is(run.code, 0, run.stderr)
    t.is(run.json().sessions[0].status, 'imported')
    const stored = await storedLocalStorage(root, store)
    if (where === 'log') t.true(Object.values(stored).some((data) => data.includes('last-wid-md')), 'the login is what is stored')
    else t.true(stored['Default/Local Storage/leveldb/000007.ldb'].equals(fs.readFileSync(path.join(older, 'Default/Local Storage/leveldb/000007.ldb'))))

    // #28.2: --delete-source after the plain --execute: the store holds this very copy, so its folder goes; the
    // newer QR-code folder stays, with the reason.
    const del = cli(root, ['migrate', 'sessions-shared', '--execute', '--delete-source', '--json', ...store])
    t.is(del.code, 0, del.stderr)
    const [ana] = del.json().sessions
    t.is(ana.status, 'already-stored')
    t.regex(ana.why, /holds this very copy/)
    t.deepEqual(ana.deleted, [older])
    t.regex(ana.kept_because, /newer than or were written after the imported one/)
    t.deepEqual(fs.readdirSync(workspace), [path.basename(newer)])
  })
}

test('an account with no login anywhere is reported and not stored unless --include-logged-out; --overwrite replaces a stored copy without a login; delete <session>', async (t) => {
  const root = tempDir(t)
  const { workspace, older, newer } = twoFolders(root)
  const store = ['--dir', path.join(root, 'store')]
  // Before the fix, migrate stored the QR-code folder: done here with the login folder out of sight.
  const aside = path.join(root, 'aside')
  fs.renameSync(older, aside)
  const none = cli(root, ['migrate', 'sessions-shared', '--execute', '--json', ...store])
  t.is(none.code, 1)
  const [report] = none.json().sessions
  t.deepEqual([report.status, report.error.code], ['no-login', 'ERR_IMPORT_NO_LOGIN'])
  t.regex(cli(root, ['migrate', 'sessions-shared', ...store]).stdout, /no-login: ERR_IMPORT_NO_LOGIN/)
  t.false(cli(root, ['delete', 'RemoteAuth-webjs_ana', '--json', ...store]).json().stored, 'nothing was stored')
  const forced = cli(root, ['migrate', 'sessions-shared', '--execute', '--include-logged-out', '--json', ...store])
  t.is(forced.code, 0, forced.stderr)
  t.deepEqual([forced.json().sessions[0].status, forced.json().sessions[0].login], ['imported', false])

  fs.renameSync(aside, older)
  const kept = cli(root, ['migrate', 'sessions-shared', '--execute', '--json', ...store]).json().sessions[0]
  t.is(kept.status, 'already-stored')
  t.regex(kept.why, /--overwrite replaces it/)
  const dry = cli(root, ['migrate', 'sessions-shared', '--overwrite', '--json', ...store]).json().sessions[0]
  t.deepEqual([dry.status, dry.source], ['planned', older])
  t.regex(dry.why, /replaces the stored copy, which shows no login/)
  const over = cli(root, ['migrate', 'sessions-shared', '--overwrite', '--execute', '--json', ...store])
  t.is(over.code, 0, over.stderr)
  t.is(over.json().sessions[0].status, 'imported')
  t.true(Object.values(await storedLocalStorage(root, store)).some((d) => d.includes('last-wid-md')))

  // The way out for a copy that should not be there at all: delete, a dry run first.
  const plan = cli(root, ['delete', 'RemoteAuth-webjs_ana', ...store])
  t.regex(plan.stdout, /dry run: would delete RemoteAuth-webjs_ana/)
  const gone = cli(root, ['delete', 'RemoteAuth-webjs_ana', '--execute', '--json', ...store])
  t.deepEqual([gone.code, gone.json().stored, gone.json().execute], [0, true, true])
  t.is(cli(root, ['extract', 'RemoteAuth-webjs_ana', '--out', path.join(root, 'y.zip'), ...store]).code, 1)
  t.deepEqual(fs.readdirSync(workspace).sort(), [path.basename(older), path.basename(newer)].sort(), 'no folder touched')
})

test('a --name template without the RemoteAuth- prefix is warned about in the dry run', (t) => {
  const root = tempDir(t)
  makeWorkspace(root, { users: { ana: 1 }, localAuth: [], junk: false })
  const run = cli(root, ['migrate', 'sessions-shared', '--name', '{parent}-{account}', '--dir', path.join(root, 's')])
  t.regex(run.stdout, /warning: --name "\{parent\}-\{account\}" makes session names without the RemoteAuth- prefix/)
  const good = cli(root, ['migrate', 'sessions-shared', '--name', 'RemoteAuth-{parent}-{account}', '--json', '--dir', path.join(root, 's')])
  t.deepEqual([good.json().sessions[0].session, good.json().warnings], ['RemoteAuth-workspace_1-webjs_ana', []])
})
