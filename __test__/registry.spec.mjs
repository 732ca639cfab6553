// `npm install wwebjs-rust-store` as a user gets it: the release scripts publish the root and the linux-x64-gnu
// package into a real registry on loopback, and an empty project with no Rust toolchain installs it from there.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { tempDir } from './helpers.mjs'
import { startRegistry } from './registry.mjs'

const repo = path.resolve(import.meta.dirname, '..')
const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'))
const triple = 'linux-x64-gnu'
const binary = `wwebjs-rust-store.${triple}.node`
const addon = path.join(repo, binary)
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64' && fs.existsSync(addon)
const linuxTest = onLinuxX64 ? test : test.skip

function run(t, cmd, args, options) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20, ...options })
  t.is(res.status, 0, `${cmd} ${args.join(' ')}\n${res.stdout}\n${res.stderr}`)
  return res.stdout
}

/** Whether a binary needs no GLIBC_x.y symbol version above 2.17 (objdump -T); the newest one it needs. */
function glibcFloor(t, file) {
  const versions = [...run(t, 'objdump', ['-T', file]).matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [+m[1], +m[2]])
  t.true(versions.length > 0, 'objdump found no GLIBC symbols')
  const [major, minor] = versions.reduce((a, b) => (a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]) ? a : b), [0, 0])
  return { ok: major < 2 || (major === 2 && minor <= 17), newest: `GLIBC_${major}.${minor}` }
}

linuxTest('the linux-x64-gnu addon loads on glibc 2.17 (Debian 9+, Ubuntu 18.04+, RHEL 7+, Amazon Linux 2)', (t) => {
  const floor = glibcFloor(t, addon)
  t.true(floor.ok, `needs ${floor.newest}: build it with scripts/build-addon.sh (npm test does), not natively`)
})

test('every npm/<triple> package is what `napi create-npm-dirs` makes of package.json', (t) => {
  const stage = tempDir(t)
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(stage, 'package.json'))
  run(t, process.execPath, [path.join(repo, 'node_modules/@napi-rs/cli/dist/cli.js'), 'create-npm-dirs'], { cwd: stage })
  const dirs = fs.readdirSync(path.join(stage, 'npm')).sort()
  t.deepEqual(fs.readdirSync(path.join(repo, 'npm')).sort(), dirs)
  t.is(dirs.length, manifest.napi.targets.length)
  for (const dir of dirs) {
    const read = (root) => JSON.parse(fs.readFileSync(path.join(root, 'npm', dir, 'package.json'), 'utf8'))
    t.deepEqual(read(repo), read(stage), `npm/${dir}/package.json is stale: run npx napi create-npm-dirs`)
  }
})

linuxTest('published to a registry, npm install resolves the binary through optionalDependencies', async (t) => {
  const root = tempDir(t)
  const registryDir = path.join(root, 'registry')
  fs.mkdirSync(registryDir)
  const { url, npmrc, log } = await startRegistry(t, registryDir)
  t.teardown(() => log() && t.log(log()))
  // Only node's own directory and the system's: no ~/.cargo/bin. HOME and the npmrc keep real credentials out.
  const PATH = [path.dirname(process.execPath), '/usr/bin', '/bin'].join(':')
  const env = {
    HOME: root,
    PATH,
    npm_config_userconfig: npmrc,
    npm_config_registry: url,
    npm_config_cache: path.join(root, 'npm-cache'),
    npm_config_provenance: 'false',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  }
  t.not(spawnSync('cargo', ['--version'], { env }).status, 0, 'cargo must not be reachable')

  // The release as CI's publish job makes it, with the one artifact built here: the package's files and its
  // npm/ folder, the addon in npm/linux-x64-gnu (debug info stripped, as a release build is), and only that
  // target configured, since `napi prepublish` publishes every configured target.
  const stage = path.join(root, 'stage')
  for (const file of [...manifest.files, 'package.json', 'README.md', 'LICENSE', `npm/${triple}`]) {
    fs.cpSync(path.join(repo, file), path.join(stage, file), { recursive: true })
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(stage, 'node_modules'))
  run(t, 'objcopy', ['--strip-debug', addon, path.join(stage, 'npm', triple, binary)])
  const staged = JSON.parse(fs.readFileSync(path.join(stage, 'package.json'), 'utf8'))
  t.is(staged.optionalDependencies, undefined, 'optionalDependencies are written at release, not committed')
  // npm would publish to publishConfig.registry over the local one.
  if (staged.publishConfig?.registry) throw new Error('package.json must not set publishConfig.registry')
  staged.napi.targets = ['x86_64-unknown-linux-gnu']
  fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(staged, null, 2))
  // npm publish runs prepublishOnly (`napi prepublish`), which publishes npm/linux-x64-gnu first.
  run(t, 'npm', ['publish'], { cwd: stage, env })

  const packument = (name) => JSON.parse(run(t, 'npm', ['view', '--json', name], { cwd: root, env }))
  const published = packument('wwebjs-rust-store')
  t.deepEqual(published.optionalDependencies, { [`wwebjs-rust-store-${triple}`]: manifest.version })
  t.deepEqual(published.exports, manifest.exports)
  t.deepEqual(packument(`wwebjs-rust-store-${triple}`).os, ['linux'])

  const app = path.join(root, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "version": "1.0.0", "private": true }')
  run(t, 'npm', ['install', 'wwebjs-rust-store'], { cwd: app, env })
  const installed = path.join(app, 'node_modules', `wwebjs-rust-store-${triple}`, binary)
  t.true(fs.existsSync(installed), 'the platform package came with the root')
  const floor = glibcFloor(t, installed)
  t.true(floor.ok, `the binary users get needs ${floor.newest}`)
  const lock = JSON.parse(fs.readFileSync(path.join(app, 'package-lock.json'), 'utf8'))
  t.true(lock.packages[`node_modules/wwebjs-rust-store-${triple}`].optional)

  // Without whatsapp-web.js (an optional peer) the helpers still import; only SafeRemoteAuth needs it.
  const bare = `import { Events, SafeRemoteAuth, safeRemoteAuth } from 'wwebjs-rust-store/safe-remote-auth'
    try { new SafeRemoteAuth({}) } catch (e) { console.log(JSON.stringify([Events.BACKUP_FAILED, typeof safeRemoteAuth, e.code])) }`
  const withoutPeer = run(t, process.execPath, ['--input-type=module', '-e', bare], { cwd: app, env })
  t.deepEqual(JSON.parse(withoutPeer), ['remote_session_backup_failed', 'function', 'MODULE_NOT_FOUND'])

  // whatsapp-web.js is the application's own; this registry has no copy, so lend the repo's.
  fs.symlinkSync(path.join(repo, 'node_modules', 'whatsapp-web.js'), path.join(app, 'node_modules', 'whatsapp-web.js'))
  for (const name of ['esm.mjs', 'cjs.cjs', 'types.mts', 'types.cts']) {
    fs.copyFileSync(path.join(repo, '__test__', 'consumer', name), path.join(app, name))
  }
  const appEnv = { ...env, SUPPORT_DIR: path.join(repo, 'support') }
  const cjs = JSON.parse(run(t, process.execPath, ['cjs.cjs'], { cwd: app, env: appEnv }))
  t.deepEqual(cjs, { RustStore: 'function', runCli: 'function', chromiumArgs: true, SafeRemoteAuth: 'function', sameBrowser: true })
  const esm = JSON.parse(run(t, process.execPath, ['esm.mjs'], { cwd: app, env: appEnv }))
  t.deepEqual(esm, { backedUp: true, restored: true, events: ['remote_session_saved'], sameClass: true, leaseLost: 'remote_session_lease_lost' })

  // skipLibCheck: whatsapp-web.js' own declarations want @types/node-fetch; ours are checked where they are used.
  const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc')
  for (const [module, moduleResolution] of [['nodenext', 'nodenext'], ['node16', 'node16'], ['preserve', 'bundler']]) {
    const compilerOptions = { module, moduleResolution, strict: true, noEmit: true, types: [], skipLibCheck: true }
    fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['types.mts', 'types.cts'] }))
    run(t, process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, env })
  }

  const help = run(t, 'npx', ['--offline', 'wwebjs-rust-store', '--help'], { cwd: app, env })
  t.regex(help, /migrate/)
})
