/**
 * Which patches to js-libp2p internals took effect in this process. Each patch reports
 * every time it is tried; the first time a patch applies, and the first time it is
 * skipped for a given reason, one debug line says so. Whether a patch applies depends on
 * the installed package versions, so this is a per-process fact.
 */
import type { Logger } from '../../logger.js'

/** Every patch by name, with the package whose internals it relies on. */
export const PATCHES = {
  'socket-write-batching': '@libp2p/tcp',
  'noise-quiet-length-decoder': '@chainsafe/libp2p-noise',
  'yamux-deferred-window-updates': '@chainsafe/libp2p-yamux',
  'unheard-idle-events': '@libp2p/utils',
  'optimistic-select': 'libp2p',
  'relay-reservation-store': '@libp2p/circuit-relay-v2',
  'mdns-socket': '@libp2p/mdns',
  'simultaneous-open-muxer-role': '@chainsafe/libp2p-yamux'
} as const

export type PatchName = keyof typeof PATCHES

const seen = new Set<string>()
let sink: Logger | null = null

/** Where the debug lines go (the first node's logger that asks). */
export function setPatchLogger (log: Logger): void {
  sink ??= log
}

/** Records one attempt: applied, or skipped with the reason (nothing is thrown either way). */
export function reportPatch (name: PatchName, applied: boolean, skipReason = 'not recognised'): boolean {
  const key = applied ? `${name} applied` : `${name} skipped ${skipReason}`
  if (!seen.has(key)) {
    seen.add(key)
    if (applied) sink?.debug({ patch: name, package: PATCHES[name] }, 'transport patch applied')
    else sink?.debug({ patch: name, package: PATCHES[name], reason: skipReason }, 'transport patch skipped')
  }
  return applied
}
