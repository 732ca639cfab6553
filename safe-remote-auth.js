'use strict'

// SafeRemoteAuth: whatsapp-web.js's RemoteAuth with the defects a store cannot fix from its side closed
// (README, "SafeRemoteAuth"). Same constructor and events; it adds options and two events. It subclasses the
// RemoteAuth of the whatsapp-web.js the application installed, so it follows that release's own code paths.

const fs = require('node:fs')
const path = require('node:path')

/** Events this class adds (emitted on the client, like RemoteAuth's own `remote_session_saved`). */
const Events = Object.freeze({
  BACKUP_FAILED: 'remote_session_backup_failed',
  BACKUP_GAVE_UP: 'remote_session_backup_gave_up',
  /** Another replica took the session: this one stops backing it up (its saves and deletes are refused anyway). */
  LEASE_LOST: 'remote_session_lease_lost',
  /** The lease had expired (the store was unreachable for longer than its ttl) and nobody took it: it is ours again. */
  LEASE_RETAKEN: 'remote_session_lease_retaken',
  /** A lease renewal could not reach the store; it is tried again at the next tick. */
  LEASE_RENEW_FAILED: 'remote_session_lease_renew_failed',
})

/** whatsapp-web.js's `Events.REMOTE_SESSION_SAVED`, the same in every release this supports. */
const REMOTE_SESSION_SAVED = 'remote_session_saved'

async function exists(p) {
  try {
    await fs.promises.access(p)
    return true
  } catch {
    return false
  }
}

function invalid(message) {
  const err = new TypeError(message)
  err.code = 'ERR_INVALID_OPTION'
  return err
}

/** RustStore, if this package's addon loads (SafeRemoteAuth also runs over other stores). */
function rustStoreClass() {
  try {
    return require('./index.js').RustStore
  } catch {
    return null
  }
}

/**
 * The store as RemoteAuth sees it: its `save` rejects on failure whatever the store's `saveErrors`, so retries and
 * events see every failure. Other methods are the store's own.
 */
function rejectingSaves(store) {
  const save = (args) => store.save({ ...args, saveErrors: 'reject' })
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'save') return save
      const value = Reflect.get(target, prop)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/** The unzipper whatsapp-web.js itself uses (its dependency, not ours). */
function wwebjsUnzipper() {
  const from = path.dirname(require.resolve('whatsapp-web.js'))
  return require(require.resolve('unzipper', { paths: [from] }))
}

/**
 * Builds SafeRemoteAuth over a given RemoteAuth class (the application's; `require('whatsapp-web.js').RemoteAuth`).
 * @param {typeof import('whatsapp-web.js').RemoteAuth} RemoteAuth
 */
function safeRemoteAuth(RemoteAuth, { unzipper = wwebjsUnzipper() } = {}) {
  return class SafeRemoteAuth extends RemoteAuth {
    /**
     * @param {object} options RemoteAuth's options, plus:
     * @param {number} [options.firstBackupDelayMs=60000] wait before the first backup of a new login (RemoteAuth: a
     *   silent 60 s); 0 backs up at once
     * @param {number[]} [options.retryDelaysMs=[5000, 30000, 120000]] waits between attempts of a failed backup
     * @param {boolean} [options.deleteOnDisconnect=false] delete the stored session when WhatsApp disconnects the
     *   client (CONFLICT, UNPAIRED, …), as RemoteAuth does; by default only `logout()` deletes it
     * @param {boolean} [options.backupOnDestroy=true] back up once more in `destroy()`
     * @param {boolean | { ttlMs?: number, renewEveryMs?: number, token?: string }} [options.lease] own the session
     *   through the store's lease (RustStore's `acquireLease`): a second replica's `initialize()` fails with
     *   ERR_LEASE_HELD instead of both running it (WhatsApp answers two with CONFLICT). Default ttl 30 s, renewed
     *   every third. With `token` (a fleet's, see `forFleet`) the lease is the fleet's: adopted, never renewed or
     *   released here.
     * @param {boolean} [options.directProfile=true] with a store that has `saveProfile` / `restoreProfile`
     *   (RustStore), back up and restore the profile folder directly: no temp copy, no zip, each LevelDB read as a
     *   consistent snapshot, the restored folder swapped in whole. `false` keeps RemoteAuth's zip path.
     */
    constructor(options = {}) {
      super(options)
      // A RustStore resolves a failed save by default ('report'): RemoteAuth would take it for a success.
      const RustStore = rustStoreClass()
      if (RustStore && this.store instanceof RustStore) this.store = rejectingSaves(this.store)
      const { firstBackupDelayMs = 60_000, retryDelaysMs = [5_000, 30_000, 120_000] } = options
      if (!Number.isSafeInteger(firstBackupDelayMs) || firstBackupDelayMs < 0) {
        throw invalid('firstBackupDelayMs must be a whole number of ms, 0 or more')
      }
      if (!Array.isArray(retryDelaysMs) || !retryDelaysMs.every((ms) => Number.isSafeInteger(ms) && ms >= 0)) {
        throw invalid('retryDelaysMs must be an array of whole numbers of ms')
      }
      this.firstBackupDelayMs = firstBackupDelayMs
      this.retryDelaysMs = [...retryDelaysMs]
      this.deleteOnDisconnect = options.deleteOnDisconnect === true
      this.backupOnDestroy = options.backupOnDestroy !== false
      if (options.directProfile !== undefined && typeof options.directProfile !== 'boolean') {
        throw invalid('directProfile must be true or false')
      }
      const direct = typeof this.store.saveProfile === 'function' && typeof this.store.restoreProfile === 'function'
      this.directProfile = options.directProfile !== false && direct
      this.backupRunning = null
      this.ready = false
      // Set by disconnect/logout/destroy: nothing started before may back up or wait any longer.
      this.closed = false
      this.sleepers = new Set()
      this.lease = null
      if (options.lease) {
        const { ttlMs = 30_000, renewEveryMs = Math.floor(ttlMs / 3) } = options.lease === true ? {} : options.lease
        if (typeof this.store.acquireLease !== 'function') throw invalid('lease: the store has no acquireLease()')
        const whole = (ms, max) => Number.isSafeInteger(ms) && ms >= 1 && ms <= max
        if (!whole(ttlMs, 86_400_000) || !whole(renewEveryMs, ttlMs - 1)) {
          throw invalid('lease: ttlMs must be 1 ms to 24 h, and renewEveryMs shorter than ttlMs')
        }
        const { token: fleetToken = null } = options.lease === true ? {} : options.lease
        if (fleetToken !== null && (typeof fleetToken !== 'string' || fleetToken === '')) {
          throw invalid('lease.token must be the token the fleet passed to onStart')
        }
        this.lease = { ttlMs, renewEveryMs, session: null, token: null, timer: null, lost: false, fleetToken }
      }
    }

    /**
     * The auth strategy for a session a fleet started: `onStart`'s argument gives the client id and the lease, which
     * the fleet already holds and renews (one renewal per session, not two) and releases after `onStop`.
     * @param {{ clientId: string, token: string, ttlMs: number, renewEveryMs: number }} start `onStart`'s argument
     * @param {object} options as the constructor's (`store` the one the fleet runs on)
     */
    static forFleet({ clientId, token, ttlMs, renewEveryMs }, options = {}) {
      return new this({ ...options, clientId, lease: { ttlMs, renewEveryMs, token } })
    }

    /** A wait that `close()` cuts short, and that never keeps the process alive by itself. */
    sleep(ms) {
      // A wait that starts after close() (a slow sessionExists during destroy) would otherwise run its full length.
      if (this.closed) return Promise.resolve()
      return new Promise((resolve) => {
        const wake = () => {
          clearTimeout(timer)
          this.sleepers.delete(wake)
          resolve()
        }
        const timer = setTimeout(wake, ms)
        timer.unref?.()
        this.sleepers.add(wake)
      })
    }

    /** Stops timers and waits, and lets a running backup finish (its retries end at once). */
    async close() {
      this.closed = true
      this.ready = false
      clearInterval(this.backupSync)
      for (const wake of [...this.sleepers]) wake()
      await this.backupRunning
    }

    // The lease first: a replica that cannot own the session must not even restore it.
    async beforeBrowserInitialized() {
      this.closed = false
      if (this.lease) {
        // RemoteAuth sets sessionName only once it gets that far; a failed start releases it by this name.
        const session = this.clientId ? `RemoteAuth-${this.clientId}` : 'RemoteAuth'
        this.lease.session = session
        // Taking it again on the store that holds it renews it and hands back the holder's token.
        this.lease.token = await this.store.acquireLease(session, { ttlMs: this.lease.ttlMs })
        this.lease.lost = false
        clearInterval(this.lease.timer)
        if (this.lease.fleetToken) {
          if (this.lease.token !== this.lease.fleetToken) {
            await this.releaseLease()
            throw invalid('lease.token is not held by this store: pass forFleet the store the fleet runs on')
          }
        } else {
          this.lease.timer = setInterval(() => this.renewLease(session), this.lease.renewEveryMs)
          this.lease.timer.unref?.()
        }
      }
      try {
        return await super.beforeBrowserInitialized()
      } catch (err) {
        await this.releaseLease() // a failed restore must not hold the session for the life of the process
        throw err
      }
    }

    async renewLease(session) {
      try {
        const renewed = await this.store.renewLease(session, this.lease.token, { ttlMs: this.lease.ttlMs })
        if (renewed === 'retaken') this.client.emit(Events.LEASE_RETAKEN, { session })
      } catch (err) {
        if (!this.lease.token) return // released while this renewal was on its way
        if (err.code === 'ERR_LEASE_LOST') return this.leaseLost(err)
        this.client.emit(Events.LEASE_RENEW_FAILED, err)
      }
    }

    leaseLost(err) {
      if (this.lease.lost) return
      this.lease.lost = true
      clearInterval(this.lease.timer)
      clearInterval(this.backupSync)
      this.client.emit(Events.LEASE_LOST, err)
    }

    async releaseLease() {
      if (!this.lease?.token) return
      clearInterval(this.lease.timer)
      const token = this.lease.token
      this.lease.token = null
      // The fleet's lease is the fleet's to release (after onStop), so no other worker starts it before that.
      if (token === this.lease.fleetToken) return
      // Best effort: an unreleased lease expires by itself after ttlMs.
      await this.store.releaseLease(this.lease.session, token).catch(() => {})
    }

    // Called without `await` by the client: nothing may reject out of it.
    async afterAuthReady() {
      this.ready = true
      try {
        const exists = await this.store.sessionExists({ session: this.sessionName })
        if (!exists) {
          await this.sleep(this.firstBackupDelayMs)
          if (this.closed) return
          await this.backup({ emit: true })
        }
      } catch (err) {
        this.client.emit(Events.BACKUP_FAILED, err)
      }
      if (this.closed || this.lease?.lost) return
      clearInterval(this.backupSync)
      this.backupSync = setInterval(() => this.backup(), this.backupSyncIntervalMs)
      this.backupSync.unref?.()
    }

    /**
     * One backup with retries; never rejects. Overlapping calls share the running one (RemoteAuth's timer has no
     * overlap guard, and two zips of one profile at once would race on the same temp folder).
     */
    backup(options) {
      if (this.closed || this.lease?.lost) return Promise.resolve(false)
      this.backupRunning ??= this.backupWithRetries(options).finally(() => (this.backupRunning = null))
      return this.backupRunning
    }

    async backupWithRetries(options) {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.storeOnce(options)
          return true
        } catch (err) {
          err.attempt = attempt + 1
          this.client.emit(Events.BACKUP_FAILED, err)
          if (err.code === 'ERR_LEASE_LOST') {
            this.leaseLost(err) // another replica owns it: retrying cannot help
            return false
          }
          if (attempt >= this.retryDelaysMs.length || this.closed) {
            this.client.emit(Events.BACKUP_GAVE_UP, err)
            return false
          }
          await this.sleep(this.retryDelaysMs[attempt])
          if (this.closed) return false
        }
      }
    }

    /** One backup attempt: the profile folder straight to the store, or RemoteAuth's copy, zip and save. */
    async storeOnce(options) {
      if (!this.directProfile) return super.storeRemoteSession(options)
      // As RemoteAuth: no profile (logged out, removed), nothing to back up.
      if (!(await exists(this.userDataDir))) return
      await this.store.saveProfile({ session: this.sessionName, dir: this.userDataDir })
      if (options?.emit) this.client.emit(REMOTE_SESSION_SAVED)
    }

    // As RemoteAuth's (a stored session comes back, else a fresh empty profile), but straight from the store into
    // a sibling folder that replaces the profile only once it is whole; a failed restore leaves the old profile.
    async extractRemoteSession() {
      if (!this.directProfile) return super.extractRemoteSession()
      if (await this.store.sessionExists({ session: this.sessionName })) {
        await this.store.restoreProfile({ session: this.sessionName, dir: this.userDataDir })
        return
      }
      await this.removeProfile()
      await fs.promises.mkdir(this.userDataDir, { recursive: true })
    }

    // RemoteAuth's own entry point (its timer, and callers of the old name) goes through the guarded path.
    async storeRemoteSession(options) {
      await this.backup(options)
    }

    // RemoteAuth resolves on unzipper's 'finish', before every file is written; this resolves after the last
    // file is closed, so Chromium never starts on a half-restored profile.
    async unCompressSession(compressedSessionPath) {
      const directory = await unzipper.Open.file(compressedSessionPath)
      await directory.extract({ path: this.userDataDir, concurrency: 10 })
      await fs.promises.unlink(compressedSessionPath)
    }

    // WhatsApp disconnects the client on CONFLICT (the session opened elsewhere), UNPAIRED, …: the login may still
    // be good, so the stored copy stays unless asked otherwise. The local profile goes, as in RemoteAuth, but only
    // after a running backup is done with it (a half-deleted profile must never be saved over the good copy).
    async disconnect() {
      await this.close()
      if (this.deleteOnDisconnect) return this.deleteSession()
      await this.removeProfile()
    }

    // An explicit logout (the client's `logout()`, or WhatsApp's logout page) ends the login: delete it, and give
    // the lease up (after WhatsApp's logout page the client starts a fresh login, which takes it again).
    async logout() {
      await this.close()
      await this.deleteSession()
      await this.releaseLease()
    }

    // RemoteAuth's delete; a store that lost the lease refuses it (ERR_LEASE_LOST, nothing deleted): the session is
    // the new owner's, so that is told in an event, not thrown into the client's disconnect handling.
    async deleteSession() {
      try {
        await super.disconnect()
      } catch (err) {
        if (err.code !== 'ERR_LEASE_LOST' || !this.lease) throw err
        this.leaseLost(err)
        await this.removeProfile()
      }
    }

    async removeProfile() {
      const rm = { recursive: true, force: true, maxRetries: this.rmMaxRetries }
      await fs.promises.rm(this.userDataDir, rm).catch(() => {})
    }

    // RemoteAuth only clears its timer: up to an interval of changes would be lost on every restart. One last
    // attempt (no retries: shutdown has a deadline), then the lease goes.
    async destroy() {
      const wasReady = this.ready
      await this.close()
      if (this.backupOnDestroy && wasReady && !this.lease?.lost) {
        await this.storeOnce().catch((err) => this.client.emit(Events.BACKUP_FAILED, err))
      }
      await this.releaseLease()
    }
  }
}

let defaultClass
module.exports = {
  Events,
  safeRemoteAuth,
  /** SafeRemoteAuth over `require('whatsapp-web.js').RemoteAuth`. */
  get SafeRemoteAuth() {
    defaultClass ??= safeRemoteAuth(require(require.resolve('whatsapp-web.js/src/authStrategies/RemoteAuth.js')))
    return defaultClass
  },
}
