// The npm package as users get it: `npm pack` tarballs installed into an empty folder with no Rust toolchain.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { makeProfile, tempDir, zipProfile } from './helpers.mjs'

const repo = path.resolve(import.meta.dirname, '..')
const triple = 'linux-x64-gnu'
const addon = path.join(repo, `wwebjs-rust-store.${triple}.node`)
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64' && fs.existsSync(addon)

function run(t, cmd, args, options) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', timeout: 180_000, ...options })
  t.is(res.status, 0, `${cmd} ${args.join(' ')}\n${res.stdout}\n${res.stderr}`)
  return res.stdout
}

;(onLinuxX64 ? test : test.skip)('the packed package installs and round-trips a session without cargo on PATH', async (t) => {
  const root = tempDir(t)
  const platformDir = path.join(root, 'platform')
  fs.cpSync(path.join(repo, 'npm', triple), platformDir, { recursive: true })
  fs.copyFileSync(addon, path.join(platformDir, path.basename(addon)))
  const tarballs = path.join(root, 'tarballs')
  fs.mkdirSync(tarballs)
  run(t, 'npm', ['pack', '--silent', '--pack-destination', tarballs], { cwd: platformDir })
  run(t, 'npm', ['pack', '--silent', '--pack-destination', tarballs], { cwd: repo })
  const packed = fs.readdirSync(tarballs).map((f) => path.join(tarballs, f))
  t.is(packed.length, 2)

  const app = path.join(root, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "private": true }')
  // Only node's own directory and the system's: no ~/.cargo/bin.
  const PATH = [path.dirname(process.execPath), '/usr/bin', '/bin'].join(':')
  const env = { HOME: root, PATH, npm_config_cache: path.join(root, 'npm-cache') }
  t.not(spawnSync('cargo', ['--version'], { env }).status, 0, 'cargo must not be reachable')
  run(t, 'npm', ['install', '--offline', '--no-audit', '--no-fund', ...packed], { cwd: app, env })

  const profile = path.join(root, 'profile')
  const kept = makeProfile(profile, { junk: false })
  await zipProfile(profile, path.join(app, 'RemoteAuth-packed.zip'))
  const script = `
    const { RustStore } = require('wwebjs-rust-store')
    const store = new RustStore({ saveErrors: 'reject' })
    ;(async () => {
      const saved = await store.save({ session: 'RemoteAuth-packed' })
      await store.extract({ session: 'RemoteAuth-packed', path: 'restored/RemoteAuth-packed.zip' })
      console.log(JSON.stringify({ saved, exists: await store.sessionExists({ session: 'RemoteAuth-packed' }) }))
    })().catch((e) => { console.error(e.code, e.message); process.exit(1) })`
  const out = JSON.parse(run(t, process.execPath, ['-e', script], { cwd: app, env }))
  t.true(out.exists)
  t.is(out.saved.session, 'RemoteAuth-packed')
  t.is(out.saved.filesBytes, Object.values(kept).reduce((sum, b) => sum + b.length, 0))
  t.true(fs.statSync(path.join(app, 'restored', 'RemoteAuth-packed.zip')).size > 0)
  t.true(fs.existsSync(path.join(app, 'node_modules', `wwebjs-rust-store-${triple}`, path.basename(addon))))

  // The CLI and the browser helpers come with the package.
  const stats = JSON.parse(run(t, 'npx', ['--offline', 'wwebjs-rust-store', 'stats', '--json'], { cwd: app, env }))
  t.deepEqual(stats.tiers.map((x) => [x.tier, x.sessions]), [['dir', 1]])
  const browser = `console.log(require('wwebjs-rust-store/browser').chromiumArgs.length)`
  t.true(Number(run(t, process.execPath, ['-e', browser], { cwd: app, env })) > 0)
  const safe = `console.log(typeof require('wwebjs-rust-store/safe-remote-auth').safeRemoteAuth)`
  t.is(run(t, process.execPath, ['-e', safe], { cwd: app, env }).trim(), 'function')
})
