'use strict'
// The embedded tier of an earlier build (BENCH_BEFORE_ADDON; BENCH_BEFORE_LABEL says which), for before/after in one run.
const { rustContender, beforeStore } = require('./rust.js')
module.exports = rustContender('embedded', 'RustStore embedded, before', beforeStore())
