/**
 * Logging goes to stderr only: stdout belongs to the CLI's single JSON document and
 * the daemons' start lines. pino is used for structured, cheap logging; libp2p's
 * components write through the same logger (node/component-logger.ts).
 *
 * LOG_FORMAT `json` is pino's own line per record; `pretty` is pino-pretty, loaded only
 * when chosen (a terminal by default), so JSON logging and short CLI runs never pay for it.
 */
import { createRequire } from 'node:module'
import { pino } from 'pino'
import type { DestinationStream, Logger as PinoLogger } from 'pino'
import type { PrettyOptions } from 'pino-pretty'
import { loadLogSettings } from './config/logging.js'
import type { LogFormat } from './config/logging.js'

export type Logger = PinoLogger

/**
 * A logger for `name`. Level and format default to LOG_LEVEL (else `info`) and
 * LOG_FORMAT; a bad value of either throws ConfigError naming the variable.
 */
export function createLogger (name: string, level?: string, format?: LogFormat): Logger {
  const fromEnv = level === undefined || format === undefined ? loadLogSettings(process.env) : undefined
  return pino({ name, level: level ?? fromEnv?.logLevel ?? 'info', base: { pid: process.pid } },
    destination(format ?? fromEnv?.logFormat ?? 'json'))
}

function destination (format: LogFormat): DestinationStream {
  if (format === 'json') return pino.destination({ fd: 2, sync: true })
  const pretty = createRequire(import.meta.url)('pino-pretty') as (options: PrettyOptions) => DestinationStream
  return pretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    // libp2p's and our components' lines name their component first, on one line.
    messageFormat: '{if component}{component}: {end}{msg}',
    ignore: 'pid,hostname,component'
  })
}

/** A logger that drops everything (library default: a library must not write to the host's stderr). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
