// Type-checked from a CommonJS module: require() resolves the same declarations.
import store = require('wwebjs-rust-store')
import browser = require('wwebjs-rust-store/browser')
import safe = require('wwebjs-rust-store/safe-remote-auth')

const s: store.RustStore = new store.RustStore({ dir: 'store' })
const args: readonly string[] = browser.chromiumArgs
const Auth: typeof safe.SafeRemoteAuthClass = safe.SafeRemoteAuth
export const used = [s, args, Auth]
