// Issue #16 with a real browser: while Debian's Chromium keeps writing an IndexedDB database (its LevelDB logging,
// flushing and compacting), SafeRemoteAuth's direct path (saveProfile) backs the live profile up several times;
// every snapshot restores (restoreProfile) into a profile where Chromium opens that database with its rows and
// reads the WhatsApp-Web-like login back exactly.
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { RustStore, require, tempDir } from './helpers.mjs'
import { pageServerForFile } from './page-server.mjs'

const puppeteer = require('puppeteer-core')
const { visitPage, chromiumArgs } = require('../support/chromium-page.js')
const { expectedSession, sessionDifferences } = require('../support/session-data.js')

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const LOGIN = { seed: 13, messages: 3000 }

const page = pageServerForFile(test)

const launch = (profile) =>
  puppeteer.launch({ executablePath: CHROMIUM, headless: true, userDataDir: profile, args: chromiumArgs(page.port), timeout: 60_000, protocolTimeout: 60_000 })

// A second origin (the same server by its address), so its database is not part of the login the page checks.
const liveUrl = () => `https://127.0.0.1:${page.port}/`

/** Rows of the live database as Chromium reads them from `profile`. */
async function liveRows(profile) {
  const browser = await launch(profile)
  try {
    const page = await browser.newPage()
    await page.goto(liveUrl(), { waitUntil: 'load' })
    return await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const open = indexedDB.open('live')
          open.onupgradeneeded = () => reject(new Error('the live database is not there'))
          open.onerror = () => reject(open.error)
          open.onsuccess = () => {
            const count = open.result.transaction('rows').objectStore('rows').count()
            count.onsuccess = () => resolve(count.result)
            count.onerror = () => reject(count.error)
          }
        }),
    )
  } finally {
    await browser.close()
  }
}

test.serial('snapshots of a profile Chromium is writing restore into profiles Chromium opens whole', async (t) => {
  const root = tempDir(t)
  const profile = path.join(root, 'auth', 'RemoteAuth-live')
  const store = new RustStore({ dir: path.join(root, 'store'), dataPath: path.join(root, 'auth') })
  const expected = expectedSession(LOGIN)
  t.deepEqual(sessionDifferences(expected, await visitPage(profile, { port: page.port, query: { mode: 'write', ...LOGIN } })), [])

  // Chromium writes 256 KB transactions into the live database for as long as the backups run.
  const browser = await launch(profile)
  const snapshots = []
  try {
    const page = await browser.newPage()
    await page.goto(liveUrl(), { waitUntil: 'load' })
    await page.evaluate(() => {
      const open = indexedDB.open('live', 1)
      open.onupgradeneeded = () => open.result.createObjectStore('rows')
      open.onsuccess = () => {
        const db = open.result
        window.written = 0
        const body = 'x'.repeat(4096)
        const next = () => {
          if (window.halt) return
          const tx = db.transaction('rows', 'readwrite')
          for (let i = 0; i < 64; i++) tx.objectStore('rows').put(`${body}${window.written}-${i}`, window.written * 64 + i)
          tx.oncomplete = () => {
            window.written++
            setTimeout(next, 0)
          }
        }
        next()
      }
    })
    await page.waitForFunction(() => window.written >= 10, { timeout: 60_000 })
    for (let i = 0; i < 4; i++) {
      const saved = await store.saveProfile({ session: 'RemoteAuth-live', dir: profile })
      const dir = path.join(root, `restored-${i}`, 'RemoteAuth-live')
      await store.restoreProfile({ session: 'RemoteAuth-live', dir })
      snapshots.push({ dir, written: await page.evaluate(() => window.written), bytes: saved.filesBytes })
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    await page.evaluate(() => (window.halt = true))
  } finally {
    await browser.close()
  }
  const grew = snapshots.at(-1).written - snapshots[0].written
  t.true(grew > 0, 'Chromium kept writing between the snapshots')
  t.log(`snapshots: ${snapshots.map((s) => `${s.written} tx, ${Math.round(s.bytes / 1024)} KiB`).join('; ')}`)

  for (const [i, snapshot] of snapshots.entries()) {
    const rows = await liveRows(snapshot.dir)
    t.true(rows > 0, `snapshot ${i}: Chromium opens the live database with its rows (${rows})`)
    t.is(rows % 64, 0, `snapshot ${i}: whole transactions only`)
    const read = await visitPage(snapshot.dir, { port: page.port, query: { mode: 'read' } })
    t.deepEqual(sessionDifferences(expected, read), [], `snapshot ${i}: the login reads back exactly`)
  }
})
