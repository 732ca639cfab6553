// A seeded interleaving of leases, saves and deletes by three processes on one embedded store directory, with
// `rotate-key` run by the CLI beside them in some rounds, checked after every round against a reference model:
// never two lease holders, no acknowledged save lost, no deleted session back (a rotation keeps save times, so it
// changes nothing the model sees). Each round runs one operation per process at once; the budget is fixed (seed
// and rounds below).
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import path from 'node:path'
import test from 'ava'

import { RustStore, makeProfile, tempDir, zipProfile } from './helpers.mjs'
import { exitOf, storeChild } from './processes.mjs'

const SEED = 0x27e1
const ROUNDS = 40
const SESSIONS = ['RemoteAuth-m1', 'RemoteAuth-m2']
const bin = path.resolve('bin/wwebjs-rust-store.js')

function rng(seed) {
  let s = seed >>> 0
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % n
  }
}

test(`three processes, seed ${SEED}, ${ROUNDS} rounds: one holder per session, every acknowledged write stands`, async (t) => {
  const root = tempDir(t)
  const dir = path.join(root, 'store')
  const zips = []
  for (const seed of [1, 2, 3]) {
    makeProfile(path.join(root, `p${seed}`), { junk: false, seed, size: seed === 3 ? 'medium' : 'small' })
    await zipProfile(path.join(root, `p${seed}`), path.join(root, `${seed}.zip`))
    zips.push(path.join(root, `${seed}.zip`))
  }
  // Two keys: processes 0 and 2 still save under the old one, so a rotation always has copies to rewrite.
  const [oldKey, newKey] = [0, 1].map(() => crypto.randomBytes(32).toString('base64'))
  const keys = [oldKey, newKey, oldKey]
  const procs = await Promise.all(
    keys.map((key) => storeChild(t, { dir, saveErrors: 'reject', encryption: { key, previousKeys: [key === oldKey ? newKey : oldKey] } })),
  )
  const observer = new RustStore({ dir, encryption: { key: newKey, previousKeys: [oldKey] } })
  const rotate = async () => {
    const env = { PATH: process.env.PATH, SESSION_STORE_DIR: dir, SESSION_ENCRYPTION_KEY: newKey, SESSION_ENCRYPTION_PREVIOUS_KEYS: oldKey }
    const { code, stderr } = await exitOf(spawn(process.execPath, [bin, 'rotate-key', '--json'], { env }))
    t.is(code, 0, stderr)
    counts.rotations++
  }
  const next = rng(SEED)
  const holder = new Map() // session → process index
  const tokens = new Map() // `${i}:${session}` → token
  const stored = new Map() // session → savedAt of the last acknowledged save (absent: none or deleted)
  const counts = { acquired: 0, refused: 0, saves: 0, deletes: 0, releases: 0, rotations: 0 }

  for (let round = 0; round < ROUNDS; round++) {
    const ops = procs.map((proc, i) => {
      const mine = SESSIONS.find((s) => holder.get(s) === i)
      if (!mine) {
        const session = SESSIONS[next(SESSIONS.length)]
        return async () => {
          try {
            const token = await proc.call('acquireLease', session, { ttlMs: 600_000 })
            t.false(holder.has(session) && holder.get(session) !== i, `round ${round}: ${session} had two holders`)
            holder.set(session, i)
            tokens.set(`${i}:${session}`, token)
            counts.acquired++
          } catch (err) {
            t.is(err.code, 'ERR_LEASE_HELD', `round ${round}`)
            counts.refused++
          }
        }
      }
      const op = next(5)
      const token = tokens.get(`${i}:${mine}`)
      if (op < 3) {
        const zip = zips[next(zips.length)]
        return async () => {
          const saved = await proc.call('save', { session: mine, path: zip })
          stored.set(mine, saved.savedAt)
          counts.saves++
        }
      }
      if (op === 3) {
        return async () => {
          await proc.call('delete', { session: mine })
          stored.delete(mine)
          counts.deletes++
        }
      }
      return async () => {
        holder.delete(mine) // given up before the call: another may take it while this runs
        await proc.call('releaseLease', mine, token)
        counts.releases++
      }
    })
    // Acquires of a session another process is releasing this round are judged by the model after the release.
    if (next(3) === 0) ops.push(rotate)
    await Promise.all(ops.map((op) => op()))
    const listed = new Map((await observer.listSessions()).map((s) => [s.session, s.savedAt]))
    for (const session of SESSIONS) t.is(listed.get(session), stored.get(session), `round ${round}: ${session}`)
  }
  t.log(`seed ${SEED}: ${JSON.stringify(counts)}`)
  t.true(counts.acquired > 2 && counts.refused > 0 && counts.saves > 5 && counts.deletes > 0 && counts.rotations > 3, JSON.stringify(counts))
})
