'use strict'

// Helpers for the live Chromium profile behind a whatsapp-web.js Client, as `require('wwebjs-rust-store/browser')`.
// RemoteAuth only ever stores `Default/IndexedDB` and `Default/Local Storage`; everything else in the profile is
// cache that Chromium and WhatsApp Web let grow for as long as the browser runs. Nothing here loads the native addon.

// Chromium switches that keep the profile from growing, for `new Client({ puppeteer: { args: [...chromiumArgs] } })`.
// Each one is read by current Chromium; see the notes after the list for the ones left out on purpose.
const chromiumArgs = Object.freeze([
  // The HTTP cache (`Default/Cache`; Chrome also sizes its shared-dictionary cache from it) capped at 1 byte.
  // Not 0: 0, a negative number or anything unparsable means "no limit given", and the disk cache then picks
  // its own size from the free disk space (disk_cache::PreferredCacheSize, 80 MB and up), so `=0` is the
  // default, not "off". 1 is the smallest real cap: an entry may still be written (the simple backend, Linux's,
  // lets one entry reach 5 MiB whatever the cap) but the cache is over its cap at once and evicts it, so the
  // directory stays near empty instead of growing to hundreds of MB.
  '--disk-cache-size=1',
  // `Default/GPUCache` and the other shader/program caches: compiled shaders, worthless to a headless client.
  '--disable-gpu-shader-disk-cache',
  // chrome://components (CRLSets, Safe Browsing lists, hyphenation data, Widevine, ...) are not downloaded or
  // updated into the user-data directory. Chrome for Testing, which puppeteer downloads, already skips updates;
  // this matters with `executablePath` pointing at a system Chrome or Chromium. Bundled components then do not
  // load either; puppeteer passed this switch by default from 2022 to 23.6 (October 2024), so whatsapp-web.js
  // clients ran with it for two years.
  '--disable-component-update',
])

// Left out on purpose:
// - `--media-cache-size`: removed in Chromium 78 (the media cache went away); current Chrome ignores it.
// - `--disable-application-cache`: AppCache itself was removed from Chrome (fully by ~M95); the switch does nothing.
// - `--aggressive-cache-discard`: not a switch on desktop Chrome, only a ChromeOS memory-pressure setting, and it
//   is about memory, not disk.
// - `--disable-features=MediaRouter,OptimizationHints,Translate`: puppeteer (which whatsapp-web.js pins at 24.x)
//   already disables all three and merges any `--disable-features` you pass into its own list. Puppeteer from
//   before October 2023 does not merge, and Chrome keeps only the last `--disable-features`, so adding ours
//   there would silently switch puppeteer's own list back on.
// - `--disk-cache-dir=/dev/null` and other ways of pointing cache directories at nothing: a cache directory that
//   leads nowhere has been reported to make WhatsApp Web fail with "Failed to execute 'open' on 'CacheStorage'".
// - Anything that disables service workers: WhatsApp Web does not work without them.

// IndexedDB databases trimProfile deletes by default: only ones confirmed to be caches WhatsApp Web refills.
// `lru-media-storage-idb` is the bookkeeping (and, without Cache Storage, the bytes) of WhatsApp's LRU media cache,
// whose bytes live in the Cache Storage cache `lru-media-array-buffer-cache`; both go together so neither points
// at entries the other no longer has. Not listed because they hold state, not cache: `jobs-storage` (pending
// jobs), `offd-storage` (receipts and device sync not yet delivered), `worker-storage` (deferred messages),
// `status-storage`; `fts-storage` (the search index) because nothing confirms WhatsApp rebuilds it.
const defaultTrimDatabases = Object.freeze(['lru-media-storage-idb'])

// Never deleted, whatever `databases` says: the login itself (user, Noise and Signal keys, the key that decrypts
// message bodies) and the chats. Deleting one of them logs the account out or loses its history.
const protectedDatabases = Object.freeze(['wawc', 'wawc_db_enc', 'signal-storage', 'model-storage'])

// Cache Storage caches kept by default. WhatsApp mirrors user preferences into this one for its workers, the
// Noise key pair among them (WAWebUserPrefsCacheStorage): it is small, and it holds key material.
const defaultKeptCaches = Object.freeze(['wa_web_user_prefs_cache_store'])

function invalid(message) {
  const err = new TypeError(message)
  err.code = 'ERR_INVALID_ARG'
  return err
}

function stringList(value, name) {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) {
    throw invalid(`trimProfile: options.${name} must be an array of non-empty strings`)
  }
  return [...value]
}

// Runs inside the WhatsApp Web page. Puppeteer sends its source text, not a closure: it may use nothing from
// this module, only its arguments and the page's globals.
async function trimInPage(databases, keepCaches) {
  const cachesDeleted = []
  for (const name of await caches.keys()) {
    // A Cache object WhatsApp already opened keeps working on the deleted cache; Chromium frees the bytes once
    // the page lets go of it, at the latest on the next reload.
    if (!keepCaches.includes(name) && (await caches.delete(name))) cachesDeleted.push(name)
  }
  // Only databases that exist: deleteDatabase() of an unknown name also "succeeds", which would be a false report.
  const existing = new Set((await indexedDB.databases()).map((db) => db.name))
  const databasesDeleted = []
  for (const name of databases) {
    if (!existing.has(name)) continue
    const deleted = await new Promise((resolve) => {
      const request = indexedDB.deleteDatabase(name)
      request.onsuccess = () => resolve(true)
      request.onerror = () => resolve(false)
      // WhatsApp still has the database open and did not close it when asked. The browser deletes it once it
      // does (at the latest on the next page load), but it is not gone now, so it is not reported as deleted.
      request.onblocked = () => resolve(false)
    })
    if (deleted) databasesDeleted.push(name)
  }
  return { cachesDeleted, databasesDeleted }
}

// Deletes WhatsApp Web's caches from the live page; call it after the client's `ready` event (before it the page
// may not be WhatsApp's yet). Local Storage is never touched: it holds the login. Resolves with what the page
// reports as deleted.
async function trimProfile(client, options = {}) {
  const page = client == null ? undefined : client.pupPage
  if (page == null || typeof page.evaluate !== 'function') {
    throw invalid('trimProfile: client.pupPage is missing; call trimProfile after the client is ready')
  }
  if (options === null || typeof options !== 'object') throw invalid('trimProfile: options must be an object')
  const databases =
    options.databases === undefined ? [...defaultTrimDatabases] : stringList(options.databases, 'databases')
  const keepCaches =
    options.keepCaches === undefined ? [...defaultKeptCaches] : stringList(options.keepCaches, 'keepCaches')
  const refused = databases.filter((name) => protectedDatabases.includes(name))
  if (refused.length > 0) throw invalid(`trimProfile: refusing to delete ${refused.join(', ')}: it holds the login`)
  return page.evaluate(trimInPage, databases, keepCaches)
}

module.exports = { chromiumArgs, trimProfile, defaultTrimDatabases, defaultKeptCaches, protectedDatabases }
