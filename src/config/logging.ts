/**
 * LOG_LEVEL and LOG_FORMAT: read like every other variable, and also on their own,
 * before the rest, because the logger that reports the other variables' warnings is
 * built from them.
 */
import { EnvReader, P } from './env.js'
import type { Env } from './env.js'

/** pino's levels, most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
export const LOG_FORMATS = ['json', 'pretty'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

export const LOG_LEVEL_VAR = `${P}LOG_LEVEL`
export const LOG_FORMAT_VAR = `${P}LOG_FORMAT`
/** The name tests and benches used before LOG_LEVEL was a configuration variable; still read, last. */
export const OLD_LOG_LEVEL_VAR = 'TASKQUEUE_P2P_LOG_LEVEL'

export interface LogSettings {
  /** Null = not set: each command has its own default (daemons `info`, p2p-rpc `warn`). */
  readonly logLevel: LogLevel | null
  /** Default: `pretty` when stderr is a terminal, else `json` (one object per line). */
  readonly logFormat: LogFormat
}

const LEVEL_PROBLEM = `is not a log level (use ${LOG_LEVELS.join(', ')})`
const parseLevel = (text: string): LogLevel | undefined => LOG_LEVELS.find((l) => l === text.trim().toLowerCase())

/** Reads both variables through `r` (so they are validated and their sources recorded). */
export function readLogSettings (r: EnvReader, stderrIsTty: boolean): LogSettings {
  const level = r.custom<LogLevel | null>(LOG_LEVEL_VAR, null, parseLevel, LEVEL_PROBLEM)
  return {
    logLevel: level ?? r.custom<LogLevel | null>(OLD_LOG_LEVEL_VAR, null, parseLevel, LEVEL_PROBLEM),
    logFormat: r.enum(LOG_FORMAT_VAR, LOG_FORMATS, stderrIsTty ? 'pretty' : 'json')
  }
}

/** The log settings alone; throws ConfigError (one line naming the variable) for a bad value. */
export function loadLogSettings (env: Env, stderrIsTty: boolean = process.stderr.isTTY === true): LogSettings {
  return readLogSettings(new EnvReader(env, () => {}), stderrIsTty)
}
