// The typings tell the truth: an application written against every type the package exports (index.d.ts,
// safe-remote-auth.d.ts / .d.mts, browser.d.ts) compiles under `tsc --strict` with the package's own declarations
// checked, as the package resolves through its exports map. Only third-party declarations are excused
// (whatsapp-web.js's want @types/node-fetch and an older puppeteer): theirs to fix. No @types/node: the package's
// declarations must not need it, and the consumer gets console from lib.dom as a browser-ish app would.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { tempDir } from './helpers.mjs'

const repo = path.resolve(import.meta.dirname, '..')
const consumer = path.join(repo, '__test__', 'consumer', 'strict.mts')
const declarations = ['index.d.ts', 'safe-remote-auth.d.ts', 'browser.d.ts']

/** Names a declaration file exports. */
function exported(file) {
  const text = fs.readFileSync(path.join(repo, file), 'utf8')
  const names = text.matchAll(/^export (?:declare )?(?:class|interface|type|function|const) (\w+)/gm)
  return [...names].map((m) => m[1])
}

test('the consumer uses every exported name', (t) => {
  const source = fs.readFileSync(consumer, 'utf8')
  const names = declarations.flatMap(exported)
  t.true(names.length > 50, `found ${names.length} exports`)
  for (const name of names) t.regex(source, new RegExp(`\\b${name}\\b`), `${name} is exported but not used by the consumer`)
})

test('tsc --strict compiles the consumer with the package declarations checked (no skipLibCheck)', (t) => {
  t.timeout(300_000) // each compile loads whatsapp-web.js's and puppeteer's declarations: ~30 s on a busy machine
  const app = tempDir(t)
  const modules = path.join(app, 'node_modules')
  fs.mkdirSync(modules)
  fs.symlinkSync(repo, path.join(modules, 'wwebjs-rust-store'))
  fs.symlinkSync(path.join(repo, 'node_modules', 'whatsapp-web.js'), path.join(modules, 'whatsapp-web.js'))
  fs.copyFileSync(consumer, path.join(app, 'strict.mts'))
  const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc')
  // Node's own resolution and a bundler's (registry.spec.mjs also compiles the installed package under node16).
  for (const [module, moduleResolution] of [['nodenext', 'nodenext'], ['preserve', 'bundler']]) {
    const compilerOptions = { module, moduleResolution, strict: true, noEmit: true, types: [], lib: ['es2022', 'dom'], skipLibCheck: false }
    fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['strict.mts'] }))
    const res = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles', '--pretty', 'false'], { cwd: app, encoding: 'utf8' })
    const lines = res.stdout.split('\n')
    const checked = lines.filter((l) => l.startsWith('/')).map((l) => fs.realpathSync(l))
    for (const file of ['index.d.ts', 'browser.d.ts', 'safe-remote-auth.d.mts']) {
      t.true(checked.includes(fs.realpathSync(path.join(repo, file))), `${module}: ${file} was not compiled`)
    }
    const errors = lines.filter((l) => /error TS\d+/.test(l))
    const ours = errors.filter((l) => !l.includes('node_modules/') || l.includes('node_modules/wwebjs-rust-store/'))
    t.deepEqual(ours, [], `${module}/${moduleResolution}:\n${ours.join('\n')}`)
  }
})
