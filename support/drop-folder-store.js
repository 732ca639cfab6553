'use strict'
// The negative control: a store that loses a folder of every session it saves (rewrites RemoteAuth's zip
// without the entries under `folder`, then hands it to the real store). A check that passes for it proves nothing.

const fs = require('node:fs')
const path = require('node:path')
const unzipper = require('unzipper')
const { writeZip } = require('./zip-profile.js')

async function rewriteZipWithout(zipPath, folder) {
  const prefix = `${folder.replace(/\/+$/, '')}/`
  const kept = []
  for (const entry of (await unzipper.Open.file(zipPath)).files) {
    if (entry.type === 'File' && !entry.path.startsWith(prefix)) kept.push([entry.path, await entry.buffer()])
  }
  const tmp = `${zipPath}.dropped`
  await writeZip(tmp, (archive) => {
    for (const [name, data] of kept) archive.append(data, { name })
  })
  fs.renameSync(tmp, zipPath)
}

/** Wraps a RemoteAuth store so that `save` drops `folder` from the zip RemoteAuth wrote under `dataPath`. */
function dropFolderStore(inner, { dataPath, folder }) {
  return {
    sessionExists: (args) => inner.sessionExists(args),
    extract: (args) => inner.extract(args),
    delete: (args) => inner.delete(args),
    async save(args) {
      await rewriteZipWithout(path.join(dataPath, `${args.session}.zip`), folder)
      return inner.save(args)
    },
  }
}

module.exports = { dropFolderStore }
