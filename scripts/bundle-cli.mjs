// Bundles the p2p-rpc CLI into one ES module: dist/bundle/p2p-rpc.js.
// Why: a CLI call is a short-lived process, and resolving, reading and linking the
// ~600 ES modules of libp2p costs ~0.4 s of its ~0.6 s; one file loads in ~0.05 s.
// The bundle is only a faster copy of dist/src: bin/launch.cjs uses it only when it
// is at least as new as the tsc output, so a stale bundle can never run.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

await build({
  entryPoints: [join(root, 'dist/src/cli/p2p-rpc.js')],
  outfile: join(root, 'dist/bundle/p2p-rpc.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  logLevel: 'warning',
  // Less to parse at every start; identifiers stay, so stack traces still name functions.
  minifyWhitespace: true,
  minifySyntax: true,
  // CommonJS dependencies (pino) call require() for Node built-ins; an ES module has
  // no require, so give the bundle one.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" }
})
