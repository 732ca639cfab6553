'use strict'
// Restores one stored session into a profile folder and reports when it starts and ends: the crash test kills
// it (SIGKILL) at points in between. `node restore-profile-child.js <store dir> <session> <profile dir>`.
const { RustStore } = require('../index.js')

const [storeDir, session, dir] = process.argv.slice(2)
const store = new RustStore({ dir: storeDir })
process.send('start')
store.restoreProfile({ session, dir }).then(
  () => process.send('done', () => process.exit(0)),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
