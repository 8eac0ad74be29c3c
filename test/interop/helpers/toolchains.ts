/**
 * The foreign peers of the interop suite and how a test gets them: a Python venv with
 * py-libp2p (`.venv-interop/`) and binaries built from `test/interop/go` and `test/interop/rust`, made
 * by `test/interop/setup.sh` (which `.ci/run` calls). A test whose peer is missing says
 * so loudly and skips; under CI=true it fails, so a missing toolchain never looks green.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { ROOT } from '../../helpers/procs.js'

export const INTEROP_SRC = join(ROOT, 'test/interop')

export interface Found { path: string | null, reason: string }

let python: Found | undefined

/** The venv's interpreter, once it has shown that it can import the pinned py-libp2p. */
export function interopPython (): Found {
  if (python !== undefined) return python
  const path = process.env.TASKQUEUE_INTEROP_PYTHON ?? join(ROOT, '.venv-interop/bin/python')
  if (!existsSync(path)) {
    python = { path: null, reason: `${path} missing (run test/interop/setup.sh python)` }
    return python
  }
  const probe = spawnSync(path, ['-c', 'import importlib.metadata as m; print(m.version("libp2p"))'], { encoding: 'utf8', timeout: 60_000 })
  python = probe.status === 0
    ? { path, reason: `py-libp2p ${probe.stdout.trim()}` }
    : { path: null, reason: `${path} cannot import libp2p: ${probe.stderr.trim().split('\n').pop() ?? ''}` }
  return python
}

/** Where setup.sh leaves a built peer: a path recorded in the clone, the binary outside it. */
function builtPeer (name: 'go' | 'rust'): Found {
  const pointer = join(ROOT, `.interop-bin/${name}-peer.path`)
  if (!existsSync(pointer)) return { path: null, reason: `${pointer} missing (run test/interop/setup.sh ${name})` }
  const path = readFileSync(pointer, 'utf8').trim()
  return existsSync(path) ? { path, reason: 'built' } : { path: null, reason: `${path} missing (run test/interop/setup.sh ${name})` }
}

/** The go-libp2p peer (test/interop/go). */
export function interopGoPeer (): Found {
  return builtPeer('go')
}

/** The rust-libp2p peer (test/interop/rust). */
export function interopRustPeer (): Found {
  return builtPeer('rust')
}

/** True when the peer is there; otherwise a loud skip, or a failure under CI=true. */
export function requirePeer (t: TestContext, what: string, found: Found): found is { path: string, reason: string } {
  if (found.path !== null) return true
  const line = `INTEROP TEST NOT RUN (${what}): ${found.reason}`
  const bar = '!'.repeat(Math.min(100, line.length + 8))
  process.stderr.write(`\n${bar}\n!!! ${line} !!!\n${bar}\n\n`)
  if (process.env.CI === 'true') throw new Error(`${line} (CI=true: interop tests are mandatory)`)
  t.skip(found.reason)
  return false
}
