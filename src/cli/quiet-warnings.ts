/**
 * Imported first by the entry points: node:sqlite prints an ExperimentalWarning on
 * every start, which would clutter stderr of every CLI call. Node prints warnings
 * through a default 'warning' listener; we replace it with one that drops only that
 * warning and prints every other one as Node would.
 */
process.removeAllListeners('warning')
process.on('warning', (warning: Error) => {
  if (warning.name === 'ExperimentalWarning' && warning.message.includes('SQLite')) return
  process.stderr.write(`(node:${process.pid}) ${warning.name}: ${warning.message}\n`)
})
export {}
