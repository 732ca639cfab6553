// ESM entry of safe-remote-auth.js: the same objects (one class, whichever way it is loaded). The CommonJS
// SafeRemoteAuth is a getter that loads whatsapp-web.js on first use, which Node's named-export detection
// cannot see, so it is named here.
import cjs from './safe-remote-auth.js'

export const { Events, safeRemoteAuth } = cjs

function loadDefault() {
  try {
    return cjs.SafeRemoteAuth
  } catch (err) {
    // `Events` and `safeRemoteAuth(RemoteAuth)` work without whatsapp-web.js (an optional peer); a program
    // that constructs SafeRemoteAuth without it gets the same error as the CommonJS getter would give.
    if (err?.code !== 'MODULE_NOT_FOUND') throw err
    return class SafeRemoteAuth {
      constructor() {
        throw err
      }
    }
  }
}

export const SafeRemoteAuth = loadDefault()
export default cjs
