/**
 * libp2p's component logger when nobody asked for its debug output.
 *
 * Why: js-libp2p creates a scoped debug logger for every connection, stream, protocol
 * negotiation and handshake, and each one costs a `weald` debug instance (with an
 * `isatty` system call) even though, without DEBUG, it never prints. That was about
 * half a millisecond of a client's first call. With DEBUG set, libp2p's own logger is
 * used, so `DEBUG=libp2p:*` works as before.
 */
import type { ComponentLogger, Logger } from '@libp2p/interface'

function silent (): Logger {
  const off = (): void => {}
  const log = Object.assign(off, {
    enabled: false,
    error: Object.assign((): void => {}, { enabled: false }),
    trace: Object.assign((): void => {}, { enabled: false }),
    newScope: (): Logger => log
  })
  return log
}

const SILENT = silent()
const SILENT_COMPONENTS: ComponentLogger = { forComponent: () => SILENT }

/** A silent logger unless DEBUG is set; undefined means libp2p's default. */
export function libp2pLogger (env: Readonly<Record<string, string | undefined>> = process.env): ComponentLogger | undefined {
  return (env.DEBUG ?? '').trim() === '' ? SILENT_COMPONENTS : undefined
}
