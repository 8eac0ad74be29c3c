'use strict'
// Runs a dist/ entry point under Node >= 22. Started by an older node (a plain shell
// on a machine whose system node is 20), it re-executes itself with the project's
// pinned node from node_modules, forwarding arguments, stdio, signals and exit code.
// CommonJS and ES5-level syntax on purpose: this file must load on any node.
const path = require('node:path')
const fs = require('node:fs')
const { spawn } = require('node:child_process')

// `bundle`, when given, is a one-file build of `entry` (scripts/bundle-cli.mjs) that
// starts several times faster. In a checkout (src/ beside dist/) it is used only when
// at least as new as `entry`, so after a plain `tsc` the fresh modules run, never an
// old bundle. An installed package has no src/ and no tsc run after its build, and
// npm's unpacking leaves the two files' mtimes in any order: there the bundle is used.
function freshBundle (root, entry, bundle) {
  if (bundle === undefined) return undefined
  try {
    const b = fs.statSync(path.join(root, bundle))
    if (!fs.existsSync(path.join(root, 'src'))) return bundle
    const e = fs.statSync(path.join(root, entry))
    return b.mtimeMs >= e.mtimeMs ? bundle : undefined
  } catch (err) {
    return undefined
  }
}

module.exports = function launch (entry, bundle) {
  const root = path.resolve(__dirname, '..')
  const major = Number(process.versions.node.split('.')[0])
  if (major >= 22) {
    // Bytecode cache for the few hundred libp2p modules: CLI start-up drops by ~40%.
    const mod = require('node:module')
    if (typeof mod.enableCompileCache === 'function') mod.enableCompileCache()
    // node:sqlite warns that it is experimental while the ES module graph is linked,
    // before any of our modules runs, so the filter must be in place here.
    process.removeAllListeners('warning')
    process.on('warning', function (warning) {
      if (warning.name === 'ExperimentalWarning' && /SQLite/.test(warning.message)) return
      process.stderr.write('(node:' + process.pid + ') ' + warning.name + ': ' + warning.message + '\n')
    })
    const file = freshBundle(root, entry, bundle) || entry
    return import(require('node:url').pathToFileURL(path.join(root, file)).href)
  }
  const candidates = [
    path.join(root, 'node_modules', 'node', 'bin', 'node'),
    path.join(root, 'node_modules', '.bin', 'node')
  ]
  const pinned = candidates.find((p) => fs.existsSync(p))
  if (pinned === undefined) {
    process.stderr.write(`taskqueue-p2p needs Node.js >= 22 (this is ${process.version}); run 'npm ci' to install the pinned runtime\n`)
    process.exit(6)
  }
  const child = spawn(pinned, [process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal)
    else process.exit(code === null ? 6 : code)
  })
}
