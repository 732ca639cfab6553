// Helpers for specs that run several processes on one embedded store directory.
import { fork, spawn } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const CHILD = require.resolve('../support/store-child.js')

/** A RustStore in a child process: `await child.call('acquireLease', session, opts)` resolves its value or
 * rejects with an error carrying the child's `code`. Killed when the test ends. */
export async function storeChild(t, options) {
  const proc = fork(CHILD, [JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  t.teardown(() => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'))
  const pending = new Map()
  let next = 0
  proc.on('message', (m) => {
    const waiting = pending.get(m.id)
    if (!waiting) return
    pending.delete(m.id)
    if (m.code) waiting.reject(Object.assign(new Error(m.message), { code: m.code }))
    else waiting.resolve(m.value)
  })
  await new Promise((resolve, reject) => {
    proc.once('message', resolve)
    proc.once('exit', (code) => reject(new Error(`store child exited ${code}`)))
  })
  const call = (method, ...args) =>
    new Promise((resolve, reject) => {
      const id = next++
      pending.set(id, { resolve, reject })
      proc.send({ id, method, args })
    })
  return { proc, call, pid: proc.pid }
}

/** Resolves once `pid` waits for the `flock` of `file` (as /proc/locks lists waiters): the step is held open. */
export async function waitsForLock(pid, file, timeoutMs = 30_000) {
  const ino = fs.statSync(file, { bigint: true }).ino
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const waiting = fs
      .readFileSync('/proc/locks', 'utf8')
      .split('\n')
      .some((line) => line.includes('->') && line.split(/\s+/).includes(String(pid)) && line.includes(`:${ino} `))
    if (waiting) return
    if (Date.now() > deadline) throw new Error(`process ${pid} never waited for the lock on ${file}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Holds an exclusive `flock` on `file` in another process (util-linux `flock`) until `release()`. */
export async function holdLock(t, file) {
  const holder = spawn('flock', ['--exclusive', file, 'sh', '-c', 'echo held; read line'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => holder.once('exit', resolve))
  t.teardown(() => holder.kill('SIGKILL'))
  await new Promise((resolve, reject) => {
    holder.stdout.once('data', resolve)
    holder.once('error', reject)
  })
  return {
    release: async () => {
      holder.stdin.end('\n')
      await exited
    },
  }
}

/** Resolves when `proc` exits, with its code and collected stdout/stderr. */
export function exitOf(proc) {
  let stdout = ''
  let stderr = ''
  proc.stdout?.on('data', (d) => (stdout += d))
  proc.stderr?.on('data', (d) => (stderr += d))
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })))
}
