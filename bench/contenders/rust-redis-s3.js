'use strict'
module.exports = require('./rust.js').rustContender('redis-s3', 'RustStore Redis + S3')
