// The WhatsApp-like page over HTTPS for the real-browser specs: one server per spec file, on a free port, with a
// throwaway self-signed certificate. `page.port` once the file's `before` hook has run.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

import { makeCerts } from './servers.mjs'

const { servePage } = createRequire(import.meta.url)('../support/session-page.js')

export function pageServerForFile(test) {
  const page = { server: null, get port() { return this.server.port } }
  let certDir
  test.before(async () => {
    certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwrs-certs-'))
    const { cert, key } = makeCerts(certDir)
    page.server = await servePage({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) })
  })
  test.after.always(async () => {
    await page.server?.close()
    if (certDir) fs.rmSync(certDir, { recursive: true, force: true })
  })
  return page
}
