'use strict'
// The embedded tier of an earlier build (BENCH_BEFORE_ADDON): tar + zstd archives, stored-entry zips on extract.
const { rustContender, beforeStore } = require('./rust.js')
module.exports = rustContender('embedded', 'RustStore embedded, before', beforeStore())
