// browser.js: the Chromium switches and trimProfile(), whose page function runs for real in a vm context that
// stands in for the WhatsApp Web page. Never loads the native addon.
import { createRequire } from 'node:module'
import vm from 'node:vm'
import test from 'ava'

const require = createRequire(import.meta.url)
const { chromiumArgs, trimProfile, defaultTrimDatabases, defaultKeptCaches, protectedDatabases } =
  require('../browser.js')

// What WhatsApp Web keeps in a logged-in page (names from its own modules).
const CACHES = ['lru-media-array-buffer-cache', 'wa-stickers', 'wa-pp', 'wa2.2412.1', 'wa_web_user_prefs_cache_store']
const DATABASES = [
  'wawc',
  'wawc_db_enc',
  'signal-storage',
  'model-storage',
  'jobs-storage',
  'offd-storage',
  'fts-storage',
  'lru-media-storage-idb',
]
const LOCAL_STORAGE = { WANoiseInfo: '{"privKey":"x"}', WAWebEncKeySalt: 'salt', 'last-wid-md': '"1@c.us"' }

// A page with in-memory Cache Storage, IndexedDB and Local Storage. `blocked` names databases whose deletion is
// blocked by a connection WhatsApp does not close, as Chromium reports it (onblocked, no onsuccess).
function makePage({ caches = CACHES, databases = DATABASES, blocked = [] } = {}) {
  const cacheNames = new Set(caches)
  const dbNames = new Set(databases)
  const storage = new Map(Object.entries(LOCAL_STORAGE))
  const localStorageWrites = []
  const localStorage = {
    get length() {
      return storage.size
    },
    key: (i) => [...storage.keys()][i] ?? null,
    getItem: (k) => storage.get(k) ?? null,
    setItem: (k, v) => localStorageWrites.push(['setItem', k, v]),
    removeItem: (k) => localStorageWrites.push(['removeItem', k]),
    clear: () => localStorageWrites.push(['clear']),
  }
  const context = vm.createContext({
    localStorage,
    caches: {
      keys: async () => [...cacheNames],
      delete: async (name) => cacheNames.delete(name),
    },
    indexedDB: {
      databases: async () => [...dbNames].map((name) => ({ name, version: 1 })),
      // An IDBOpenDBRequest-like object whose events fire after the caller has attached its handlers.
      deleteDatabase(name) {
        const request = { readyState: 'pending', result: undefined, error: null }
        setTimeout(() => {
          if (blocked.includes(name)) return request.onblocked?.({ type: 'blocked', target: request })
          dbNames.delete(name)
          request.readyState = 'done'
          request.onsuccess?.({ type: 'success', target: request })
        }, 1)
        return request
      },
    },
  })
  // As puppeteer does: the function goes over as source text, the arguments as serialized values, and so does
  // the result; a function that used anything from browser.js's scope would fail here just as in the browser.
  const client = {
    pupPage: {
      evaluated: 0,
      async evaluate(fn, ...args) {
        this.evaluated += 1
        const result = await vm.runInContext(`(${fn.toString()})(...${JSON.stringify(args)})`, context)
        return JSON.parse(JSON.stringify(result))
      },
    },
  }
  return { client, cacheNames, dbNames, storage, localStorageWrites }
}

test('chromiumArgs is frozen and holds only switches', (t) => {
  t.true(Object.isFrozen(chromiumArgs))
  t.throws(() => chromiumArgs.push('--x'), { instanceOf: TypeError })
  t.true(chromiumArgs.length > 0)
  for (const arg of chromiumArgs) t.regex(arg, /^--[a-z0-9-]+(=\S+)?$/, arg)
  t.is(new Set(chromiumArgs.map((a) => a.split('=')[0])).size, chromiumArgs.length, 'no switch twice')
})

test('chromiumArgs caps the disk cache at 1 byte and carries no switch current Chromium ignores', (t) => {
  t.true(chromiumArgs.includes('--disk-cache-size=1'))
  // 0 means "pick a size from the free disk", the opposite of what is wanted.
  t.false(chromiumArgs.some((a) => a.startsWith('--disk-cache-size=') && a !== '--disk-cache-size=1'))
  for (const gone of ['--media-cache-size', '--disable-application-cache', '--aggressive-cache-discard']) {
    t.false(chromiumArgs.some((a) => a.split('=')[0] === gone), gone)
  }
  // puppeteer merges its own list; an older one would be overridden by a second --disable-features.
  t.false(chromiumArgs.some((a) => a.startsWith('--disable-features')))
})

test('trimProfile rejects a client without pupPage with ERR_INVALID_ARG', async (t) => {
  for (const client of [undefined, null, {}, { pupPage: null }, { pupPage: {} }]) {
    await t.throwsAsync(trimProfile(client), { instanceOf: TypeError, code: 'ERR_INVALID_ARG' }, JSON.stringify(client))
  }
})

test('trimProfile rejects databases that are not an array of strings, and login databases, before the page', async (t) => {
  const { client } = makePage()
  for (const databases of ['lru-media-storage-idb', [1], [null], [''], { 0: 'x' }, null]) {
    await t.throwsAsync(trimProfile(client, { databases }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG' })
  }
  await t.throwsAsync(trimProfile(client, { keepCaches: 'wa-pp' }), { code: 'ERR_INVALID_ARG' })
  await t.throwsAsync(trimProfile(client, null), { code: 'ERR_INVALID_ARG' })
  for (const name of ['wawc', 'signal-storage', 'model-storage', 'wawc_db_enc']) {
    t.true(protectedDatabases.includes(name))
    const err = await t.throwsAsync(trimProfile(client, { databases: ['fts-storage', name] }), {
      code: 'ERR_INVALID_ARG',
    })
    t.true(err.message.includes(name))
  }
  t.is(client.pupPage.evaluated, 0)
})

test('the page function deletes the caches and only the listed databases, and never Local Storage', async (t) => {
  const page = makePage()
  const result = await trimProfile(page.client, { databases: ['lru-media-storage-idb', 'fts-storage'], keepCaches: [] })

  t.deepEqual(result, { cachesDeleted: CACHES, databasesDeleted: ['lru-media-storage-idb', 'fts-storage'] })
  t.deepEqual([...page.cacheNames], [])
  t.deepEqual(
    [...page.dbNames],
    DATABASES.filter((n) => n !== 'lru-media-storage-idb' && n !== 'fts-storage'),
  )
  for (const login of ['wawc', 'wawc_db_enc', 'signal-storage', 'model-storage']) t.true(page.dbNames.has(login))
  t.deepEqual(Object.fromEntries(page.storage), LOCAL_STORAGE)
  t.deepEqual(page.localStorageWrites, [])
  t.is(page.client.pupPage.evaluated, 1)
})

test('by default the media cache goes and the cache holding the Noise keys stays', async (t) => {
  const page = makePage()
  const result = await trimProfile(page.client)

  t.deepEqual(defaultTrimDatabases, ['lru-media-storage-idb'])
  t.deepEqual(defaultKeptCaches, ['wa_web_user_prefs_cache_store'])
  t.deepEqual(result, {
    cachesDeleted: CACHES.filter((n) => n !== 'wa_web_user_prefs_cache_store'),
    databasesDeleted: ['lru-media-storage-idb'],
  })
  t.deepEqual([...page.cacheNames], ['wa_web_user_prefs_cache_store'])
  t.deepEqual([...page.dbNames], DATABASES.filter((n) => n !== 'lru-media-storage-idb'))
  t.deepEqual(page.localStorageWrites, [])
})

test('a blocked or missing database is not reported as deleted', async (t) => {
  const page = makePage({ blocked: ['lru-media-storage-idb'] })
  const result = await trimProfile(page.client, { databases: ['lru-media-storage-idb', 'no-such-db', 'fts-storage'] })

  t.deepEqual(result.databasesDeleted, ['fts-storage'])
  t.true(page.dbNames.has('lru-media-storage-idb'))
})
