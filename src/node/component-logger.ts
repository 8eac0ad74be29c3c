/**
 * libp2p's `ComponentLogger` written through our pino logger, so libp2p's own parts
 * (transports, identify, the DHT, circuit relay, AutoNAT, DCUtR) and ours (NAT,
 * rendezvous, discovery) log through the one sink the queue uses, with its levels.
 *
 * libp2p's channels map to pino levels: the plain call and `.error` to `debug` (libp2p
 * reports expected network failures — refused dials, reset streams — through `.error`;
 * they are diagnostics, not faults of this process, and must not reach a daemon's
 * stderr at `info`), `.trace` to `trace`. Each line carries `component`.
 *
 * Below `debug` every component gets one shared no-op logger. Why: js-libp2p creates a
 * scoped logger for every connection, stream, protocol negotiation and handshake;
 * building real ones when nothing would print cost about half a millisecond of a
 * client's first call. With DEBUG set, libp2p's own `debug`-style logger is used
 * instead, so `DEBUG=libp2p:*` works as before.
 */
import { inspect } from 'node:util'
import type { ComponentLogger, Logger as Libp2pLogger } from '@libp2p/interface'
import { base58btc } from 'multiformats/bases/base58'
import { base32 } from 'multiformats/bases/base32'
import { base64 } from 'multiformats/bases/base64'
import type { Logger } from '../logger.js'

type Line = (formatter: unknown, ...args: unknown[]) => void

function silent (): Libp2pLogger {
  const off = (): void => {}
  const log: Libp2pLogger = Object.assign(off, {
    enabled: false,
    error: off,
    trace: off,
    newScope: (): Libp2pLogger => log
  })
  return log
}

const SILENT = silent()
const SILENT_COMPONENTS: ComponentLogger = { forComponent: () => SILENT }

/**
 * The ComponentLogger for a node: pino-backed when `log` is at `debug` or below, a
 * no-op otherwise (or without a logger); undefined (libp2p's default) when DEBUG is set.
 */
export function componentLogger (log: Logger | undefined, env: Readonly<Record<string, string | undefined>> = process.env): ComponentLogger | undefined {
  if ((env.DEBUG ?? '').trim() !== '') return undefined
  if (log === undefined || !log.isLevelEnabled('debug')) return SILENT_COMPONENTS
  return { forComponent: (name) => pinoComponent(log, name) }
}

function pinoComponent (root: Logger, name: string): Libp2pLogger {
  // The child is made on the first line only: most scoped loggers never write one.
  let child: Logger | undefined
  const sink = (): Logger => { child ??= root.child({ component: name }); return child }
  const debug: Line = (formatter, ...args) => { sink().debug(render(formatter, args)) }
  const error: Line = (formatter, ...args) => { sink().debug({ error: true }, render(formatter, args)) }
  const trace: Line = root.isLevelEnabled('trace') ? (formatter, ...args) => { sink().trace(render(formatter, args)) } : () => {}
  return Object.assign(debug, {
    enabled: true,
    error,
    trace,
    newScope: (scope: string): Libp2pLogger => pinoComponent(root, `${name}:${scope}`)
  })
}

/** libp2p's printf-style message: Node's %s/%d/%o/%O/%j plus its own %p %a %c %k %b %t %m %e. */
export function render (formatter: unknown, args: readonly unknown[]): string {
  if (typeof formatter !== 'string') return [formatter, ...args].map(show).join(' ')
  let used = 0
  const text = formatter.replace(/%([a-zA-Z%])/g, (match, code: string) => {
    if (code === '%') return '%'
    if (used >= args.length) return match
    const v = args[used++]
    if (v === null || v === undefined) return String(v)
    switch (code) {
      case 's': return typeof v === 'object' && v.toString === Object.prototype.toString ? show(v) : String(v)
      case 'p': case 'a': case 'c': case 'k': return String(v)
      case 'd': case 'i': return String(Number(v))
      case 'b': return v instanceof Uint8Array ? base58btc.baseEncode(v) : String(v)
      case 't': return v instanceof Uint8Array ? base32.baseEncode(v) : String(v)
      case 'm': return v instanceof Uint8Array ? base64.baseEncode(v) : String(v)
      case 'e': return v instanceof Error ? (v.stack ?? v.message) : String(v)
      default: return show(v)
    }
  })
  return [text, ...args.slice(used).map(show)].join(' ')
}

function show (v: unknown): string {
  if (typeof v === 'string') return v
  if (v instanceof Error) return v.stack ?? v.message
  return inspect(v, { depth: 3, breakLength: Infinity })
}
