'use strict'
// Debian's Chromium (scripts/test-servers.sh installs it; puppeteer-core never downloads one) on a given
// profile, with web.whatsapp.com mapped to the test's HTTPS server, so the profile gets WhatsApp Web's real
// folder names (Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb, Default/Local Storage/leveldb).

const puppeteer = require('puppeteer-core')

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

function chromiumArgs(port) {
  return [
    // root on a CI machine: no sandbox. The rest keeps Chromium quiet and off every network but loopback.
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--host-resolver-rules=MAP web.whatsapp.com:443 127.0.0.1:${port}`,
    // the test's self-signed certificate
    '--ignore-certificate-errors',
  ]
}

/**
 * Opens https://web.whatsapp.com/?<query> in a headless Chromium on `profileDir`, waits for the page's
 * `window.session`, and closes the browser cleanly (so LevelDB and localStorage are flushed) before resolving it.
 */
async function visitPage(profileDir, { port, query, timeoutMs = 60_000 }) {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profileDir,
    args: chromiumArgs(port),
    timeout: timeoutMs,
    protocolTimeout: timeoutMs,
  })
  try {
    const page = await browser.newPage()
    const url = `https://web.whatsapp.com/?${new URLSearchParams(query)}`
    await page.goto(url, { waitUntil: 'load', timeout: timeoutMs })
    const origin = await page.evaluate(() => location.origin)
    if (origin !== 'https://web.whatsapp.com') throw new Error(`the page ran on ${origin}`)
    return await page.evaluate(() => window.session)
  } finally {
    await browser.close()
  }
}

module.exports = { visitPage, chromiumArgs }
