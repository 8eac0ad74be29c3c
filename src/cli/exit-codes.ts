/**
 * Exit codes of cli.md §1.4 (and §2 for the daemons), and the mapping from a thrown
 * error to a code plus the `error` string printed with it. Classification is by class
 * and `code`, never by message text (B16).
 */
import { ConfigError } from '../config/index.js'
import { ClientError, DeadlineError, DialError, DiscoveryError, ProtocolError, ProtocolNotSupportedError, RemoteError } from '../client/errors.js'
import { UsageError } from './args.js'

/** The reply was ok:true (task-wait: terminal; task-get: the task exists). */
export const EXIT_OK = 0
/** The service said no (`ok:false`). */
export const EXIT_REMOTE_ERROR = 1
/** Bad usage or configuration. */
export const EXIT_USAGE = 2
/** No peer found, dial failed, or the deadline passed before a reply. */
export const EXIT_UNREACHABLE = 3
/** The peer answered, but not as a TaskQueue service. */
export const EXIT_PROTOCOL = 4
/** task-wait: the task was not terminal at the deadline. */
export const EXIT_WAIT_TIMEOUT = 5
/** A bug in the CLI. */
export const EXIT_INTERNAL = 6

export type ExitCode = 0 | 1 | 2 | 3 | 4 | 5 | 6

export interface Failure {
  exitCode: ExitCode
  /** The `error` member printed on stdout. */
  error: string
  message: string
}

/** Maps anything thrown to its exit code and printed `error`. */
export function classifyError (err: unknown): Failure {
  const message = err instanceof Error ? err.message : String(err)
  if (err instanceof UsageError) return { exitCode: EXIT_USAGE, error: 'usage', message }
  if (err instanceof ConfigError) return { exitCode: EXIT_USAGE, error: 'invalid_config', message }
  if (err instanceof RemoteError) return { exitCode: EXIT_REMOTE_ERROR, error: err.code, message }
  if (err instanceof DiscoveryError || err instanceof DialError || err instanceof DeadlineError) {
    return { exitCode: EXIT_UNREACHABLE, error: err.code, message }
  }
  if (err instanceof ProtocolError || err instanceof ProtocolNotSupportedError) {
    return { exitCode: EXIT_PROTOCOL, error: err.code, message }
  }
  // A ClientError subclass added later without a mapping is still a CLI bug to fix here.
  if (err instanceof ClientError) return { exitCode: EXIT_INTERNAL, error: 'internal_error', message: `${err.code}: ${message}` }
  return { exitCode: EXIT_INTERNAL, error: 'internal_error', message }
}
