'use strict'
// The seed's disk as found in production: `sessions-shared/workspace_N/session-webjs_<user>_<unix-ts>_<rand>`,
// one ~19 MB Chromium profile per login of a user, plus a LocalAuth `session-<clientId>` folder.

const fs = require('node:fs')
const path = require('node:path')
const { makeProfile } = require('./synthetic-profile.js')

/**
 * Marks a profile as paired with a phone, as WhatsApp Web does: a `last-wid-md` key in Local Storage (what
 * `migrate --delete-source` takes for a login). Returns `kept` with the new file in it.
 */
function loggedIn(folder, kept, wid = '5511999990000:7@c.us') {
  const rel = 'Default/Local Storage/leveldb/000005.log'
  const data = Buffer.from(`_https://web.whatsapp.com\0\x01last-wid-md\x01"${wid}"`, 'latin1')
  fs.writeFileSync(path.join(folder, rel), data, { mode: 0o600 })
  return { ...kept, [rel]: data }
}

/**
 * Writes the tree under `root` and returns, per account, the newest folder and what RemoteAuth keeps of it.
 * @param {string} root
 * @param {{ users?: Record<string, number>, localAuth?: string[], junk?: boolean }} [opts] logins per user
 */
function makeWorkspace(root, { users = { ana: 3, bruno: 2 }, localAuth = ['shop'], junk = true } = {}) {
  const workspace = path.join(root, 'sessions-shared', 'workspace_1')
  const accounts = {}
  let seed = 1
  for (const [user, logins] of Object.entries(users)) {
    for (let i = 0; i < logins; i++) {
      const folder = path.join(workspace, `session-webjs_${user}_${1764000000 + i * 3600}_${(seed * 7919).toString(36)}`)
      const kept = loggedIn(folder, makeProfile(folder, { seed: seed++, junk }))
      accounts[`webjs_${user}`] = { folder, kept, folders: i + 1 }
    }
  }
  for (const clientId of localAuth) {
    const folder = path.join(workspace, `session-${clientId}`)
    accounts[clientId] = { folder, kept: loggedIn(folder, makeProfile(folder, { seed: seed++, junk })), folders: 1 }
  }
  return { workspace, accounts }
}

module.exports = { makeWorkspace, loggedIn }
