// A CommonJS consumer of the installed package: every require path the README shows.
const { RustStore, runCli } = require('wwebjs-rust-store')
const browser = require('wwebjs-rust-store/browser')
const { SafeRemoteAuth } = require('wwebjs-rust-store/safe-remote-auth')

console.log(
  JSON.stringify({
    RustStore: typeof RustStore,
    runCli: typeof runCli,
    chromiumArgs: browser.chromiumArgs.length > 0,
    SafeRemoteAuth: typeof SafeRemoteAuth,
    // The pre-exports spelling still resolves, to the same module.
    sameBrowser: require('wwebjs-rust-store/browser.js') === browser,
  }),
)
