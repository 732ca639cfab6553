// Types of safe-remote-auth.mjs: the CommonJS declarations, re-exported as an ES module.
import * as cjs from './safe-remote-auth.js'

export { Events, SafeRemoteAuth, SafeRemoteAuthClass, SafeRemoteAuthOptions, safeRemoteAuth } from './safe-remote-auth.js'
export default cjs
