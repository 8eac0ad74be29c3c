/**
 * Logging goes to stderr only: stdout belongs to the CLI's single JSON document and
 * the daemons' start lines. pino is used for structured, cheap logging.
 */
import { pino } from 'pino'
import type { Logger as PinoLogger } from 'pino'

export type Logger = PinoLogger

export function createLogger (name: string, level: string = process.env.TASKQUEUE_P2P_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }))
}

/** A logger that drops everything (library default: a library must not write to the host's stderr). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
