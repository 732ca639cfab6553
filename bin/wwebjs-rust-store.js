#!/usr/bin/env node
// The CLI lives in the native addon (see `wwebjs-rust-store --help`); this only hands it the arguments.
const { runCli } = require('..')

runCli(process.argv.slice(2)).then(({ code, stdout, stderr }) => {
  process.stdout.write(stdout)
  process.stderr.write(stderr)
  process.exitCode = code
})
