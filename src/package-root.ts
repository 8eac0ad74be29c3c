import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PACKAGE_NAME = 'taskqueue-p2p'

/**
 * The directory of our package.json, found by walking up from a module of ours. A fixed
 * number of `..` would tie every caller to one layout, and the same code runs from
 * dist/src/... (tsc output) and from dist/bundle/ (the bundled CLI).
 */
export function packageRoot (moduleUrl: string): string | undefined {
  let dir = dirname(fileURLToPath(moduleUrl))
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir
      } catch {}
    }
    const up = dirname(dir)
    if (up === dir) return undefined
    dir = up
  }
}
