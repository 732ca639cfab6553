'use strict'
module.exports = require('./rust.js').rustContender('redis', 'RustStore Redis')
