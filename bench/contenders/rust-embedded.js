'use strict'
module.exports = require('./rust.js').rustContender('embedded', 'RustStore embedded')
