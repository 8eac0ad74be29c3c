import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PACKAGE_NAME, packageRoot } from './package-root.js'

/** The package version, read once from our package.json. */
function readVersion (): string {
  const root = packageRoot(import.meta.url)
  if (root === undefined) return '0.0.0'
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0'
  } catch {
    return '0.0.0'
  }
}

export const VERSION = readVersion()
export const IMPL_NAME = PACKAGE_NAME
