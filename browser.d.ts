/**
 * Helpers for the live Chromium profile behind a whatsapp-web.js `Client`:
 * `require('wwebjs-rust-store/browser')`. Loading this module never loads the native addon.
 */

/**
 * Chromium switches that stop a running profile from growing on disk: the HTTP cache capped at 1 byte
 * (`--disk-cache-size=0` would mean "default size", not "off"), no GPU shader cache, no component downloads.
 * Frozen; spread it into your own list:
 *
 * ```js
 * new Client({ authStrategy, puppeteer: { args: [...chromiumArgs, '--no-sandbox'] } })
 * ```
 */
export declare const chromiumArgs: readonly string[]

/** IndexedDB databases {@link trimProfile} deletes when `options.databases` is not given: `['lru-media-storage-idb']`. */
export declare const defaultTrimDatabases: readonly string[]

/** Cache Storage caches {@link trimProfile} keeps when `options.keepCaches` is not given: `['wa_web_user_prefs_cache_store']`. */
export declare const defaultKeptCaches: readonly string[]

/**
 * IndexedDB databases that hold the login or the chats (`wawc`, `wawc_db_enc`, `signal-storage`, `model-storage`):
 * naming one in `options.databases` is refused with `ERR_INVALID_ARG`.
 */
export declare const protectedDatabases: readonly string[]

export interface TrimProfileOptions {
  /**
   * IndexedDB databases to delete, by exact name. Default {@link defaultTrimDatabases}. Names that do not exist
   * are skipped; names in {@link protectedDatabases} are refused.
   */
  databases?: string[]
  /**
   * Cache Storage caches to keep; every other cache is deleted. Default {@link defaultKeptCaches}, which holds a
   * copy of WhatsApp's Noise key pair: pass `[]` only if you know you want that gone too.
   */
  keepCaches?: string[]
}

/** What the page reported as deleted. */
export interface TrimProfileResult {
  /** Cache Storage caches deleted. */
  cachesDeleted: string[]
  /**
   * IndexedDB databases deleted. A database WhatsApp still holds open and does not close is left out: the
   * browser deletes it once WhatsApp lets go of it (at the latest on the next page load).
   */
  databasesDeleted: string[]
}

/** The part of a whatsapp-web.js `Client` that {@link trimProfile} uses. */
export interface TrimmableClient {
  /** Set by whatsapp-web.js once the browser is up; missing or `null` before `initialize()`. */
  pupPage?: {
    // Loose on purpose: puppeteer's own generic signature must fit it.
    evaluate(fn: (...args: any[]) => unknown, ...args: any[]): Promise<any>
  } | null
}

/**
 * Deletes WhatsApp Web's caches from the live page: every Cache Storage cache except `keepCaches`, and the
 * IndexedDB databases named in `databases`. Never touches Local Storage. Call it after the client's `ready` event.
 *
 * ```js
 * client.on('ready', async () => console.log(await trimProfile(client)))
 * ```
 *
 * Rejects with a `TypeError` with `code: 'ERR_INVALID_ARG'` when `client.pupPage` is missing, when `databases` or
 * `keepCaches` is not an array of non-empty strings, or when `databases` names a protected database.
 */
export declare function trimProfile(client: TrimmableClient, options?: TrimProfileOptions): Promise<TrimProfileResult>
